"""``jupyter-actors``: set up the engine, build and run actors, list runs, read logs, abort.

The CLI uses the Jupyter server that serves its data directory when one runs (its runs show live in
Lab); otherwise it hosts the platform in-process, holding the directory's lock while it does.
"""

from __future__ import annotations

import argparse
import sys

from ..notebook.errors import ActorsError
from ..platform.errors import PlatformError
from .commands import (
    EXAMPLES_DIR,
    LOCAL_INPUT,
    REPO_NOTEBOOKS,
    cmd_abort,
    cmd_build,
    cmd_hello,
    cmd_log,
    cmd_quickstart,
    cmd_run,
    cmd_runs,
    cmd_serve,
    cmd_setup,
)
from .hosting import local_platform
from .options import _add_setting_options, _config

__all__ = ["EXAMPLES_DIR", "_config", "build_parser", "local_platform", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupyter-actors", description=__doc__.splitlines()[0])
    _add_setting_options(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    setup = commands.add_parser("setup", help="make sure a Docker engine answers and the base images exist")
    setup.add_argument("--rebuild", action="store_true", help="rebuild the base image even if it exists")
    setup.set_defaults(func=cmd_setup)

    build = commands.add_parser("build", help="create/update an actor from a directory in Apify's layout and build it")
    build.add_argument("directory")
    build.add_argument("--json", action="store_true", help="print the build record as JSON (messages go to stderr)")
    build.set_defaults(func=cmd_build)

    run = commands.add_parser("run", help="run an actor (an actor directory: build it first), follow its log "
                                          "and print its OUTPUT")
    run.add_argument("target", nargs="?", metavar="NAME|DIRECTORY", help=(
        "an actor's name, or a directory in Apify's layout to build and run (default: this directory); "
        f"a directory's input is {LOCAL_INPUT} in it unless --input is given"))
    run.add_argument("--build", help="build tag or number (default: the actor's default, latest)")
    run.add_argument("--memory", type=int, help="memory in MB: a power of two from 128 to 32768")
    run.add_argument("--timeout", type=int, help="timeout in seconds, 0 for none")
    run.add_argument("--input", help="input JSON, or @file")
    run.add_argument("--content-type", help="content type of the input (default application/json)")
    run.add_argument("--json", action="store_true",
                     help="print the final run record as JSON on stdout (the log and messages go to stderr)")
    run.set_defaults(func=cmd_run)

    runs = commands.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--actor")
    runs.add_argument("--limit", type=int, default=50)
    runs.add_argument("--json", action="store_true", help="print the runs as a JSON array of Apify run objects")
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
    except ActorsError as exc:  # the server's refusal, over HTTP
        print(f"error: {exc}", file=sys.stderr)
        return 2
