"""``jupyter-actors``: set up the engine, build and run actors, list runs, read logs, abort.

Until a server is running, the CLI hosts the platform in-process: it serves the actor-facing API
itself for as long as it waits for a run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .platform.config import PlatformConfig
from .platform.errors import PlatformError

EXAMPLES_DIR = Path(__file__).parent / "examples"
REPO_NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def _config(args: argparse.Namespace) -> PlatformConfig:
    config = PlatformConfig()
    if getattr(args, "data_dir", None):
        config.data_dir = Path(args.data_dir)
    if getattr(args, "cpu_mode", None):
        config.cpu_mode = args.cpu_mode
    if getattr(args, "backend", None):
        config.backend = args.backend
    if getattr(args, "registry", None):
        config.registry = args.registry
    if getattr(args, "no_build_network", False):
        config.build_network = False
    if getattr(args, "ca_bundle", None) is not None:
        config.ca_bundle = args.ca_bundle or None
    for mapping in getattr(args, "base_image_map", None) or []:
        source, sep, local = mapping.partition("=")
        if not sep or not source or not local:
            raise PlatformError(f"--base-image-map takes REPOSITORY=IMAGE (e.g. apify/actor-node=my/node:24), not {mapping!r}")
        config.base_image_map[source] = local
    return config


@contextmanager
def local_platform(args: argparse.Namespace, *, serve_api: bool = True) -> Iterator:
    """A Platform in this process, with the actor-facing API served from a background loop."""
    from .api.actor_server import ActorApiServer, LoopThread
    from .platform.core import Platform

    platform = Platform(_config(args))
    loop = server = None
    try:
        if serve_api:
            loop = LoopThread()
            server = ActorApiServer(platform, platform.network_gateway())
            loop.call(server.start, loop.loop)
            platform.start_background()
        yield platform
    finally:
        if server is not None and loop is not None:
            loop.call(server.stop)
        if loop is not None:
            loop.stop()
        platform.close()


def cmd_setup(args: argparse.Namespace) -> int:
    from .platform.engine_setup import ensure_engine
    from .platform.images import ensure_actor_python_image, ensure_base_image
    from .platform.node_image import ensure_node_image

    config = _config(args)
    started = time.monotonic()
    client = ensure_engine(config.docker_base_url)
    work_dir = config.data_dir / "images"
    options = {"work_dir": work_dir, "rebuild": args.rebuild, "ca_bundle": config.ca_bundle}
    # The Apify-style Python image first: the default image's build then reuses its cached venv stage.
    python = ensure_actor_python_image(client, **options)
    image = ensure_base_image(client, config.base_image, **options)
    node = ensure_node_image(client, **options)
    print(f"Docker engine answers; base image {config.base_image} is {image[:19]}, Apify-style images "
          f"{python[:19]} (Python) and {node[:19]} (Node.js) ({time.monotonic() - started:.1f} s)")
    return 0


def _build_dir(platform, directory: Path) -> dict:
    from .platform.sources import load_actor_dir

    actor = platform.create_actor(load_actor_dir(directory))
    build = platform.build(actor["id"])
    if build["status"] != "SUCCEEDED":
        sys.stderr.write(platform.build_log(build["id"]).decode(errors="replace"))
        raise PlatformError(f"Build {build['build_number']} of {actor['name']} failed: {build['status_message']}")
    print(f"Built {actor['name']} {build['build_number']} ({build['image']})")
    return build


def cmd_build(args: argparse.Namespace) -> int:
    with local_platform(args, serve_api=False) as platform:
        _build_dir(platform, Path(args.directory))
    return 0


def _follow_and_wait(platform, run_id: str, *, out=sys.stdout) -> dict:
    """Print the run's log as it grows until the run is finished."""
    path = platform.log_path(run_id)
    position = 0
    while True:
        run = platform.wait_run(run_id, timeout=0.2)
        if path.exists():
            with open(path, "rb") as handle:
                handle.seek(position)
                chunk = handle.read()
            position += len(chunk)
            out.write(chunk.decode(errors="replace"))
            out.flush()
        if run["status"] in ("SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED"):
            return run


def _print_output(platform, run: dict) -> None:
    print(f"Run {run['id']}: {run['status']} - {run['status_message']}")
    try:
        body, content_type = platform.storages.get_record(run["default_key_value_store_id"], "OUTPUT")
    except PlatformError:
        print("OUTPUT: (none)")
        return
    text = body.decode(errors="replace")
    if content_type.startswith("application/json"):
        text = json.dumps(json.loads(body), indent=2)
    print(f"OUTPUT ({content_type}):\n{text}")


def cmd_run(args: argparse.Namespace) -> int:
    run_input = args.input
    if run_input and run_input.startswith("@"):
        run_input = Path(run_input[1:]).read_text()
    with local_platform(args) as platform:
        run = platform.start_run(
            args.name, build=args.build, memory_mb=args.memory, timeout_secs=args.timeout,
            input=run_input, content_type=args.content_type,
        )
        print(f"Started run {run['id']} of {args.name} ({run['memory_mb']} MB, timeout {run['timeout_secs']} s)")
        run = _follow_and_wait(platform, run["id"])
        _print_output(platform, run)
        return 0 if run["status"] == "SUCCEEDED" else 1


def cmd_runs(args: argparse.Namespace) -> int:
    with local_platform(args, serve_api=False) as platform:
        rows = platform.list_runs(args.actor, limit=args.limit)
        names = {actor["id"]: actor["name"] for actor in platform.list_actors()}
        print(f"{'RUN':18} {'ACTOR':20} {'STATUS':10} {'MB':>6} {'STARTED':25} MESSAGE")
        for row in rows:
            print(f"{row['id']:18} {names.get(row['actor_id'], '?'):20} {row['status']:10} {row['memory_mb']:>6} "
                  f"{row['started_at']:25} {row['status_message'] or ''}")
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    with local_platform(args, serve_api=False) as platform:
        sys.stdout.write(platform.run_log(args.run).decode(errors="replace"))
    return 0


def cmd_abort(args: argparse.Namespace) -> int:
    with local_platform(args, serve_api=False) as platform:
        run = platform.abort_run(args.run, gracefully=args.gracefully)
        print(f"Run {run['id']}: {run['status']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """A headless Jupyter server with the extension: the platform's long-lived home (runs, API, UI)."""
    import os

    argv = [sys.executable, "-m", "jupyter_server", "--no-browser", f"--ServerApp.ip={args.ip}",
            f"--ServerApp.port={args.port}", "--ServerApp.jpserver_extensions={'jupyter_actors': True}"]
    if args.data_dir:
        argv.append(f"--ActorsExtension.data_dir={args.data_dir}")
    if args.cpu_mode:
        argv.append(f"--ActorsExtension.cpu_mode={args.cpu_mode}")
    if args.backend:
        argv.append(f"--ActorsExtension.backend={args.backend}")
    if args.registry:
        argv.append(f"--ActorsExtension.registry={args.registry}")
    if os.geteuid() == 0:
        argv.append("--allow-root")
    os.execv(sys.executable, argv + list(args.jupyter_args))
    return 0  # pragma: no cover - execv does not return


def cmd_hello(args: argparse.Namespace) -> int:
    """Build the shipped example actor (Apify's layout) and run it with a 256 MB limit; print its OUTPUT."""
    with local_platform(args) as platform:
        build = _build_dir(platform, EXAMPLES_DIR / "hello-world")
        run = platform.start_run("hello-world", build=build["build_number"], memory_mb=256, timeout_secs=300,
                                 input={"name": "Jupyter", "count": 5})
        print(f"Started run {run['id']} of hello-world (256 MB)")
        run = _follow_and_wait(platform, run["id"])
        _print_output(platform, run)
        return 0 if run["status"] == "SUCCEEDED" else 1


def cmd_quickstart(args: argparse.Namespace) -> int:
    """Set up, then execute the quickstart notebook headless against a real server; keep the executed copy."""
    from .headless import run_notebook

    notebook = Path(args.notebook)
    if not notebook.is_file():
        raise PlatformError(f"{notebook} does not exist; pass --notebook PATH (the repository has notebooks/quickstart.ipynb).")
    cmd_setup(argparse.Namespace(**{**vars(args), "rebuild": False}))
    output = Path(args.output) if args.output else notebook.with_name(notebook.stem + ".executed.ipynb")
    print(f"Executing {notebook} against a headless Jupyter server with the extension ...", flush=True)
    started = time.monotonic()
    run_notebook(notebook, output, data_dir=args.data_dir)
    import nbformat

    executed = nbformat.read(output, as_version=4)
    for cell in executed.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                print(out.get("text", ""), end="")
    print(f"\nDone in {time.monotonic() - started:.0f} s; the executed notebook with its outputs: {output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupyter-actors", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="platform data directory (default: under Jupyter's data dir)")
    parser.add_argument("--cpu-mode", choices=["quota", "shares"], help="hard CPU quota (default) or weights")
    parser.add_argument("--backend", choices=["docker", "swarm", "kubernetes"],
                        help="where runs go: this machine's Docker engine (default), a swarm, or Kubernetes")
    parser.add_argument("--registry", help="push built images to this registry (host:port[/path]) for cluster nodes")
    parser.add_argument("--no-build-network", action="store_true",
                        help="builds get no network (air-gapped hosts); default: as `docker build`")
    parser.add_argument("--ca-bundle", help="host CA bundle copied into the images built here "
                        "(default /etc/ssl/certs/ca-certificates.crt; empty: none)")
    parser.add_argument("--base-image-map", action="append", metavar="REPOSITORY=IMAGE",
                        help="local image used for FROM REPOSITORY:<any tag> when the engine cannot pull it "
                        "(repeatable; defaults map apify/actor-python and apify/actor-node)")
    commands = parser.add_subparsers(dest="command", required=True)

    setup = commands.add_parser("setup", help="make sure a Docker engine answers and the base images exist")
    setup.add_argument("--rebuild", action="store_true", help="rebuild the base image even if it exists")
    setup.set_defaults(func=cmd_setup)

    build = commands.add_parser("build", help="create/update an actor from a directory in Apify's layout and build it")
    build.add_argument("directory")
    build.set_defaults(func=cmd_build)

    run = commands.add_parser("run", help="run an actor, follow its log and print its OUTPUT")
    run.add_argument("name")
    run.add_argument("--build", help="build tag or number (default: the actor's default, latest)")
    run.add_argument("--memory", type=int, help="memory in MB: a power of two from 128 to 32768")
    run.add_argument("--timeout", type=int, help="timeout in seconds, 0 for none")
    run.add_argument("--input", help="input JSON, or @file")
    run.add_argument("--content-type", help="content type of the input (default application/json)")
    run.set_defaults(func=cmd_run)

    runs = commands.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--actor")
    runs.add_argument("--limit", type=int, default=50)
    runs.set_defaults(func=cmd_runs)

    log = commands.add_parser("log", help="print a run's log")
    log.add_argument("run")
    log.set_defaults(func=cmd_log)

    abort = commands.add_parser("abort", help="abort a run")
    abort.add_argument("run")
    abort.add_argument("--gracefully", action="store_true")
    abort.set_defaults(func=cmd_abort)

    serve = commands.add_parser("serve", help="run a headless Jupyter server with the actors extension")
    serve.add_argument("--ip", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8888)
    serve.add_argument("jupyter_args", nargs=argparse.REMAINDER, help="passed on to jupyter server")
    serve.set_defaults(func=cmd_serve)

    hello = commands.add_parser("hello", help="build and run the shipped example actor (256 MB), print its OUTPUT")
    hello.set_defaults(func=cmd_hello)

    quickstart = commands.add_parser("quickstart", help="set up and execute the quickstart notebook headless")
    quickstart.add_argument("--notebook", default=str(REPO_NOTEBOOKS / "quickstart.ipynb"))
    quickstart.add_argument("--output", help="where to write the executed copy (default: beside the notebook)")
    quickstart.set_defaults(func=cmd_quickstart)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PlatformError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
