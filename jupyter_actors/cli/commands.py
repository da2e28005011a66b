"""The commands: each talks to the platform through a ``Client`` of the user API (see ``hosting``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from urllib.parse import quote

from ..notebook.actors import start
from ..notebook.client import Client
from ..notebook.errors import NotFoundError
from ..notebook.runs import Run
from ..platform.errors import PlatformError
from .hosting import HostedClient, platform_client
from .options import _config
from .output import Output

EXAMPLES_DIR = Path(__file__).parent.parent / "examples"
REPO_NOTEBOOKS = Path(__file__).parent.parent.parent / "notebooks"
BUILD_WAIT_SECS = 60
ABORT_WAIT_SECS = 60


def _ref(name: str) -> str:
    return quote(name, safe="~")


def cmd_setup(args: argparse.Namespace) -> int:
    from ..platform.engine_setup import ensure_engine
    from ..platform.images import ensure_actor_python_image, ensure_base_image
    from ..platform.node_image import ensure_node_image

    config = _config(args)
    out = Output()
    started = time.monotonic()
    work_dir = config.data_dir / "images"
    options = {"work_dir": work_dir, "rebuild": args.rebuild, "ca_bundle": config.ca_bundle}
    with out.steps(4) as step:
        step("Docker engine")
        client = ensure_engine(config.docker_base_url)
        # The Apify-style Python image first: the default image's build then reuses its cached venv stage.
        step("Apify-style Python image")
        python = ensure_actor_python_image(client, **options)
        step(f"base image {config.base_image}")
        image = ensure_base_image(client, config.base_image, **options)
        step("Apify-style Node.js image")
        node = ensure_node_image(client, **options)
    out.say(f"Docker engine answers; base image {config.base_image} is {image[:19]}, Apify-style images "
            f"{python[:19]} (Python) and {node[:19]} (Node.js) ({time.monotonic() - started:.1f} s)")
    return 0


def build_dir(client: Client, directory: Path, out: Output) -> dict:
    """Create or update the actor from a directory in Apify's layout and build it; raises if the build fails."""
    from ..platform.sources import load_actor_dir

    definition = load_actor_dir(directory)
    version = {"versionNumber": definition.version, "sourceType": "SOURCE_FILES",
               "buildTag": definition.build_tag, "sourceFiles": definition.files}
    try:
        client.data("PUT", f"/actors/{_ref(definition.name)}", json={"versions": [version]})
    except NotFoundError:
        client.post("/actors", json={"name": definition.name, "versions": [version]})
    with out.status(f"Building {definition.name} {definition.version} ...") as update:
        # On a terminal the spinner shows the build log's last line, so the wait is short; else one long-poll.
        wait = 2 if out.rich else BUILD_WAIT_SECS
        build = client.post(f"/actors/{_ref(definition.name)}/builds", version=definition.version,
                            tag=definition.build_tag, waitForFinish=wait)
        while build["status"] in ("READY", "RUNNING"):
            if out.rich:
                log = client.request("GET", f"/actor-builds/{build['id']}/log").text.strip().splitlines()
                update(log[-1][:100] if log else "")
            build = client.get(f"/actor-builds/{build['id']}", waitForFinish=wait)
    if build["status"] != "SUCCEEDED":
        sys.stderr.write(client.request("GET", f"/actor-builds/{build['id']}/log").text)
        raise PlatformError(f"Build {build['buildNumber']} of {definition.name} failed: {build['statusMessage']}")
    build["actorName"] = definition.name
    out.say(f"Built {definition.name} {build['buildNumber']} ({build['imageName']})")
    return build


def cmd_build(args: argparse.Namespace) -> int:
    out = Output(args.json)
    with platform_client(args) as client:
        build = build_dir(client, Path(args.directory), out)
    if out.as_json:
        out.data(build)
    return 0


def follow_and_wait(run: Run, out: Output) -> dict:
    """Write the run's log as it grows until the run is finished; returns the final run record."""
    for line in run.follow_log():
        out.write(line + "\n")
    return run.wait().data


def print_output(client: Client, run: dict, out: Output) -> None:
    out.say(f"Run {run['id']}: {run['status']} - {run['statusMessage']}")
    try:
        response = client.request("GET", f"/key-value-stores/{run['defaultKeyValueStoreId']}/records/OUTPUT")
    except NotFoundError:
        out.say("OUTPUT: (none)")
        return
    content_type = response.headers.get("Content-Type", "")
    text = response.text
    if content_type.startswith("application/json"):
        text = json.dumps(response.json(), indent=2)
    out.say(f"OUTPUT ({content_type}):\n{text}")


def run_and_report(client: Client, name: str, out: Output, *, run_input=None, build: str | None = None,
                   memory: int | None = None, timeout: int | None = None, content_type: str | None = None) -> int:
    """Start a run, follow its log, print its OUTPUT (``--json``: then the final run record); exit code 0
    when it SUCCEEDED."""
    run = start(name, run_input, memory=memory, timeout=timeout, build=build, content_type=content_type,
                client=client)
    options = run.data["options"]
    out.say(f"Started run {run.id} of {name} ({options['memoryMbytes']} MB, timeout {options['timeoutSecs']} s)")
    try:
        final = follow_and_wait(run, out)
    except KeyboardInterrupt:
        if isinstance(client, HostedClient):  # nothing would watch it, nor serve its API, once we exit
            run.abort().wait(ABORT_WAIT_SECS)  # ABORTING until the watcher sees the container stop
            out.say(f"Run {run.id}: {run.data['status']}; this command hosts the platform, so the run cannot "
                    "outlive it.")
        else:
            out.say(f"Stopped following run {run.id}; it keeps running on the server "
                    f"(`jupyter-actors abort {run.id}` stops it).")
        return 130
    print_output(client, final, out)
    if out.as_json:
        out.data(final)
    return 0 if final["status"] == "SUCCEEDED" else 1


#: Where the Apify CLI keeps a local run's input (``apify run`` reads it when no input is given).
LOCAL_INPUT = Path("storage", "key_value_stores", "default", "INPUT.json")


def run_target(target: str | None) -> Path | None:
    """The actor directory ``run`` builds first (none given: this one), or None for an actor's name."""
    if target is None:
        return Path.cwd()
    path = Path(target)
    return path if path.is_dir() else None


def cmd_run(args: argparse.Namespace) -> int:
    run_input = args.input
    if run_input and run_input.startswith("@"):
        run_input = Path(run_input[1:]).read_text()
    directory = run_target(args.target)
    if directory is not None and args.build:
        raise PlatformError(f"{directory} is built and run as it is now; --build chooses a build of an actor "
                            "given by name: drop --build, or give the actor's name.")
    if directory is not None and run_input is None and (directory / LOCAL_INPUT).is_file():
        run_input = (directory / LOCAL_INPUT).read_text()
    out = Output(args.json)
    with platform_client(args, runs=True) as client:
        name, build = args.target, args.build
        if directory is not None:
            built = build_dir(client, directory, out)
            name, build = built["actorName"], built["buildNumber"]
        return run_and_report(client, name, out, run_input=run_input, build=build, memory=args.memory,
                              timeout=args.timeout, content_type=args.content_type)


RUN_COLUMNS = (("RUN", 18), ("ACTOR", 20), ("STATUS", 10), ("MB", -6), ("STARTED", 25), ("MESSAGE", 0))


def cmd_runs(args: argparse.Namespace) -> int:
    out = Output(args.json)
    with platform_client(args) as client:
        path = f"/actors/{_ref(args.actor)}/runs" if args.actor else "/actor-runs"
        rows = client.get(path, desc=True, limit=args.limit)["items"]
        if out.as_json:
            out.data(rows)
            return 0
        names = {actor["id"]: actor["name"] for actor in client.iter_pages("/actors")}
    out.table(RUN_COLUMNS, [[row["id"], names.get(row["actId"], "?"), row["status"],
                             str(row["options"]["memoryMbytes"]), row["startedAt"] or "", row["statusMessage"] or ""]
                            for row in rows], status_column=2)
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    with platform_client(args) as client:
        sys.stdout.write(client.request("GET", f"/actor-runs/{_ref(args.run)}/log").text)
    return 0


def cmd_abort(args: argparse.Namespace) -> int:
    with platform_client(args) as client:
        run = client.post(f"/actor-runs/{_ref(args.run)}/abort", gracefully=args.gracefully)
        print(f"Run {run['id']}: {run['status']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """A headless Jupyter server with the extension: the platform's long-lived home (runs, API, UI)."""
    import os

    from ..platform.config import CLI, settings

    argv = [sys.executable, "-m", "jupyter_server", "--no-browser", f"--ServerApp.ip={args.ip}",
            f"--ServerApp.port={args.port}", "--ServerApp.jpserver_extensions={'jupyter_actors': True}"]
    for item in settings(CLI):
        value = getattr(args, item.name, None)
        if value:
            argv.append(f"--ActorsExtension.{item.name}={value}")
    if os.geteuid() == 0:
        argv.append("--allow-root")
    os.execv(sys.executable, argv + list(args.jupyter_args))
    return 0  # pragma: no cover - execv does not return


def cmd_hello(args: argparse.Namespace) -> int:
    """Build the shipped example actor (Apify's layout) and run it with a 256 MB limit; print its OUTPUT."""
    out = Output()
    with platform_client(args, runs=True) as client:
        build = build_dir(client, EXAMPLES_DIR / "hello-world", out)
        return run_and_report(client, "hello-world", out, build=build["buildNumber"], memory=256, timeout=300,
                              run_input={"name": "Jupyter", "count": 5})


def cmd_quickstart(args: argparse.Namespace) -> int:
    """Set up, then execute the quickstart notebook headless against a real server; keep the executed copy."""
    from ..headless import run_notebook

    notebook = Path(args.notebook)
    if not notebook.is_file():
        raise PlatformError(
            f"{notebook} does not exist; pass --notebook PATH (the repository has notebooks/quickstart.ipynb)."
        )
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
