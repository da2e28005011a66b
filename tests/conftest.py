"""Shared fixtures: a real Docker engine, the real base image, and one platform per test.

Each test's platform has its own data directory (so its own instance id and container labels);
teardown removes every container and image that instance made.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from jupyter_actors.platform.config import DEFAULT_BASE_IMAGE, PlatformConfig
from jupyter_actors.server.process import ServerProcess

from .webhook_receiver import Receiver

TEST_MEMORY_MB = 1024  # tests not about limits: a hard CPU quota makes small runs slow


def wait_until(condition: Callable[[], object], timeout: float = 60, interval: float = 0.05,
               message: str = "") -> object:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or condition}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    from jupyter_actors.platform.engine_setup import ensure_engine

    client = ensure_engine(install=os.environ.get("CI") == "true")
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client, tmp_path_factory) -> str:
    from jupyter_actors.platform.images import ensure_base_image

    work_dir = Path(os.environ.get("JUPYTER_ACTORS_IMAGE_WORK_DIR", tmp_path_factory.mktemp("images")))
    ensure_base_image(docker_client, DEFAULT_BASE_IMAGE, work_dir=work_dir)
    return DEFAULT_BASE_IMAGE


@pytest.fixture(scope="session")
def apify_images(docker_client, tmp_path_factory) -> dict[str, str]:
    """The local equivalents of Apify's base images (built once per engine, reused after)."""
    from jupyter_actors.platform.images import ensure_actor_python_image
    from jupyter_actors.platform.node_image import ensure_node_image

    work_dir = Path(os.environ.get("JUPYTER_ACTORS_IMAGE_WORK_DIR") or tmp_path_factory.mktemp("apify-images"))
    return {"python": ensure_actor_python_image(docker_client, work_dir=work_dir),
            "node": ensure_node_image(docker_client, work_dir=work_dir)}


def cleanup_instance(client: docker.DockerClient, instance_id: str) -> None:
    label = f"jupyter-actors.instance={instance_id}"
    if client.info()["Swarm"].get("ControlAvailable"):  # runs on a swarm are services
        for service in client.api.services(filters={"label": label}):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_service(service["ID"])
    for container in client.api.containers(all=True, filters={"label": label}):
        try:
            client.api.remove_container(container["Id"], force=True)
        except docker.errors.APIError as exc:  # 404 gone, 409 removal already in progress
            if exc.status_code not in (404, 409):
                raise
    wait_until(lambda: not client.api.containers(all=True, filters={"label": label}), 30,
               message=f"containers of {instance_id} removed")
    for image in client.api.images(filters={"label": label}):
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_image(image["Id"], force=True)


@pytest.fixture(scope="session")
def swarm(docker_client) -> Iterator[docker.DockerClient]:
    """A single-node swarm on the test engine: initialised on loopback when none is active, left as found."""
    state = docker_client.info()["Swarm"]["LocalNodeState"]
    created = state == "inactive"
    if created:
        docker_client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    elif not docker_client.info()["Swarm"].get("ControlAvailable"):
        pytest.skip(f"the engine is in a swarm ({state}) but not a manager")
    yield docker_client
    if created:
        docker_client.swarm.leave(force=True)


@pytest.fixture
def platform_factory(docker_client, base_image, tmp_path):
    """Make platforms (each with the actor API served); all are closed and cleaned up afterwards."""
    from jupyter_actors.api.actor_server import ActorApiServer, LoopThread
    from jupyter_actors.platform.core import Platform

    made = []

    def make(data_dir: Path | None = None, serve_api: bool = True, clock=None, **config) -> Platform:
        """``clock``: the time the platform's schedules fire by (default the real one)."""
        config.setdefault("stop_grace_secs", 2)
        platform = Platform(PlatformConfig(data_dir=data_dir or tmp_path / f"platform{len(made)}", **config),
                            **({"clock": clock} if clock is not None else {}))
        loop = server = None
        if serve_api:
            loop = LoopThread()
            server = ActorApiServer(platform, platform.network_gateway())
            loop.call(server.start, loop.loop)
            platform.start_background()
        made.append((platform, loop, server))
        return platform

    yield make
    for platform, loop, server in made:
        if platform.closed:  # shut down by the test itself; its containers are cleaned up below
            platform = Platform(platform.config)
        for run in platform.list_runs():
            if run["status"] not in ("SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED") and run["container_id"]:
                with contextlib.suppress(docker.errors.APIError):
                    docker_client.api.kill(run["container_id"])
        platform.close()
        if server is not None:
            loop.call(server.stop)
            loop.stop()
        cleanup_instance(docker_client, platform.instance_id)


@pytest.fixture
def platform(platform_factory):
    return platform_factory()


def define_actor(platform, name: str, main_py: str, requirements: str | None = None, **options) -> dict:
    """Create an inline actor and build it; returns the SUCCEEDED build."""
    from jupyter_actors.platform.sources import inline_actor

    platform.create_actor(inline_actor(name, main_py, requirements, **options))
    build = platform.build(name)
    assert build["status"] == "SUCCEEDED", platform.build_log(build["id"]).decode()
    return build


# -- a real Jupyter server with the extension --------------------------------------------------------

pytest_plugins = ["pytest_jupyter.jupyter_server"]


def extension_config(data_dir, **settings) -> dict:
    """A pytest-jupyter server config with the extension on its own data directory; ``settings`` are more
    ActorsExtension options (a short stop grace unless they say otherwise)."""
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_actors": True}},
        "ActorsExtension": {"data_dir": str(data_dir), "stop_grace_secs": 2.0, **settings},
    }


@pytest.fixture
def jp_server_config(tmp_path, base_image):
    return extension_config(tmp_path / "server-data")


@contextlib.contextmanager
def server_process(tmp_path, docker_client, **settings) -> Iterator[ServerProcess]:
    """A Jupyter server in a process of its own (to be killed and restarted); stopped, and its instance's
    containers and images removed, at the end."""
    made = ServerProcess(tmp_path, **settings)
    try:
        yield made
    finally:
        made.stop()
        instance = made.instance_id()
        if instance:
            cleanup_instance(docker_client, instance)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback that answers 200 and keeps what it got."""
    made = Receiver().start()
    yield made
    made.stop()


@pytest.fixture
def actors_app(jp_serverapp, docker_client):
    """The running ActorsExtension; its containers and images are removed after the test."""
    extension = jp_serverapp.extension_manager.extension_points["jupyter_actors"].app
    yield extension
    for run in extension.platform.list_runs():
        if run["container_id"] and run["status"] not in ("SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED"):
            with contextlib.suppress(docker.errors.APIError):
                docker_client.api.kill(run["container_id"])
    cleanup_instance(docker_client, extension.platform.instance_id)


@pytest.fixture
def api_url(jp_serverapp, actors_app, jp_fetch, jp_http_port, jp_base_url):
    # jp_fetch starts the HTTP listener on jp_http_port; jp_serverapp alone does not listen.
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}actors/api"


@pytest.fixture
def api_token(jp_serverapp):
    return jp_serverapp.identity_provider.token


# -- the notebook side's client against that server ---------------------------------------------------


async def off(function, *args, **kwargs):
    """Run a blocking call in a worker thread, off the event loop that serves the test's Jupyter server.

    Not asyncio.to_thread: it copies the context, and jupyter_client's sync wrappers keep their event
    loop in a ContextVar (the test loop's, here).
    """
    import asyncio
    import functools

    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(function, *args, **kwargs))


@pytest.fixture
def client(api_url, api_token):
    """The notebook-side HTTP client, pointed at the test's server."""
    from jupyter_actors.notebook import Client

    made = Client(api_url, api_token)
    yield made
    made.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The project's static checks (ruff, mypy, import contracts, the README's commands) run first: a lint
    or type error fails CI in the first minute, not after the engine tests."""
    items.sort(key=lambda item: item.path.name != "test_project.py")  # stable: the rest keep their order
