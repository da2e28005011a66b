"""``%%actor`` (define, build, run and watch an actor) and ``%actor_form`` (the run-settings form).

Bad options end in IPython's UsageError (a message, no traceback); server errors are ActorsErrors,
which IPython also shows without a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from . import actors
from .build_view import build_live
from .runs import Run
from .sizing import ALLOWED_MEMORY_MB

MEMORY_CHOICES = ", ".join(str(m) for m in ALLOWED_MEMORY_MB)


def _memory(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value not in ALLOWED_MEMORY_MB:
        raise argparse.ArgumentTypeError(f"memory must be one of {MEMORY_CHOICES} (MB), not {text!r}")
    return value


def _timeout(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"timeout must be a whole number of seconds (0 = none), not {text!r}")
    return int(text)


#: Options that exclude each other (the decorators of ``ActorMagics.actor`` cannot group them).
EXCLUSIVE = (("input_json", "--input", "input_var", "--input-var"), ("image", "--image", "dockerfile", "--dockerfile"),
             ("packages", "--package", "package_json", "--package-json"))


def _usage_error(problem: str) -> UsageError:
    usage = ActorMagics.actor.parser.format_usage().split("::", 1)[-1].strip()
    return UsageError(f"usage: {usage}\n%%actor: {problem}")


def parse_line(line: str) -> argparse.Namespace:
    """The magic's options (declared with IPython's magic_arguments); UsageError on anything wrong."""
    parser = ActorMagics.actor.parser
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise _usage_error(str(exc)) from None
    if "-h" in words or "--help" in words:
        raise UsageError(parser.format_help().replace("::\n\n  ", "usage: ", 1))
    try:
        args = parser.parse_args(words)
    except UsageError as exc:
        raise _usage_error(str(exc)) from None
    for first, first_flag, second, second_flag in EXCLUSIVE:
        if getattr(args, first) is not None and getattr(args, second) is not None:
            raise _usage_error(f"argument {second_flag}: not allowed with argument {first_flag}")
    if args.input_json is not None and not args.content_type:
        try:
            json.loads(args.input_json)
        except ValueError as exc:
            raise UsageError(
                f"%%actor: --input is not valid JSON ({exc}); quote it like --input '{{\"a\": 1}}'.") from None
    if args.out is not None and not args.out.isidentifier():
        raise UsageError(f"%%actor: --out needs a Python variable name, not {args.out!r}.")
    if not args.node and (args.packages or args.package_json):
        raise UsageError("%%actor: --package and --package-json are for JavaScript cells: add --node.")
    if args.node and (args.requirements or args.image):
        raise UsageError("%%actor: --requirements and --image are for Python cells; with --node use --package, "
                         "--package-json or --dockerfile.")
    return args


def _read(path: str, what: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except OSError as exc:
        raise UsageError(f"%%actor: cannot read the {what} {path}: {exc.strerror}") from None


def resolve_input_schema(args: argparse.Namespace) -> dict | None:
    """``--input-schema``: inline JSON when it starts with ``{``, else a path to a JSON file."""
    text = args.input_schema
    if text is None:
        return None
    source = "--input-schema"
    if not text.lstrip().startswith("{"):
        source, text = f"the input schema {text}", _read(text, "input schema")
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"%%actor: {source} is not valid JSON ({exc}).") from None
    if not isinstance(schema, dict):
        raise UsageError(f"%%actor: {source} must be a JSON object (Apify's input_schema.json).")
    return schema


def resolve_input(args: argparse.Namespace, namespace: dict[str, Any]) -> Any:
    if args.input_var is not None:
        if args.input_var not in namespace:
            raise UsageError(f"%%actor: --input-var {args.input_var}: no such variable in the notebook.")
        return namespace[args.input_var]
    if args.input_json is not None and not args.content_type:
        return json.loads(args.input_json)
    return args.input_json


def run_cell(args: argparse.Namespace, cell: str, namespace: dict[str, Any]) -> Run:
    """Define, build (reused when unchanged), start and show; waits unless ``--detach``."""
    run_input = resolve_input(args, namespace)
    schema = resolve_input_schema(args)
    dockerfile = actors.image_dockerfile(args.image) if args.image else (
        _read(args.dockerfile, "Dockerfile") if args.dockerfile else None)
    requirements = _read(args.requirements, "requirements file") if args.requirements else None
    files = None
    if args.node:
        package_json = _read(args.package_json, "package.json") if args.package_json else None
        files = actors.node_source_files(cell, args.packages, package_json, dockerfile)
    actors.define(args.name, cell, requirements, dockerfile=dockerfile, files=files, input_schema=schema)
    build_live(args.name, version=actors.VERSION, tag=args.build)
    run = actors.start(args.name, run_input, memory=args.memory, timeout=args.timeout, build=args.build,
                       content_type=args.content_type)
    if args.out:
        namespace[args.out] = run
    view = run.show()
    if not args.detach:
        try:
            view.wait()
        except KeyboardInterrupt:
            view.detach()
    return run


@magics_class
class ActorMagics(Magics):
    @magic_arguments(name="%actor")
    @argument("name", help="actor name: lowercase letters, digits and dashes")
    @argument("--memory", type=_memory, metavar="MB", help=f"memory in MB ({MEMORY_CHOICES})")
    @argument("--timeout", type=_timeout, metavar="SECS", help="timeout in seconds (0 = none)")
    @argument("--input", dest="input_json", metavar="JSON",
              help="run input as inline JSON (or text with --content-type); not with --input-var")
    @argument("--input-var", metavar="VAR", help="name of a Python variable holding the input")
    @argument("--input-schema", metavar="PATH|JSON",
              help="the actor's input schema (Apify's input_schema.json): a file path or inline JSON; "
                   "the server checks every start's input against it and fills in its defaults")
    @argument("--content-type", metavar="TYPE", help="content type of the input (default application/json)")
    @argument("--build", default="latest", metavar="TAG", help="build tag to create and run (default latest)")
    @argument("--image", help="build on this image instead of the default base image; not with --dockerfile")
    @argument("--dockerfile", metavar="PATH", help="use this Dockerfile instead of the generated one")
    @argument("--requirements", metavar="PATH", help="a requirements.txt to install in the image")
    @argument("--node", action="store_true",
              help="the cell is JavaScript: main.js (an ES module) on Apify's Node.js image")
    @argument("--package", dest="packages", nargs="+", action="extend", metavar="SPEC",
              help="with --node: npm packages to install, e.g. apify@^3 cheerio; not with --package-json")
    @argument("--package-json", metavar="PATH", help="with --node: a package.json for the dependencies")
    @argument("--detach", action="store_true", help="return at once; the view keeps updating")
    @argument("--out", metavar="NAME", help="also bind the Run to this variable")
    @cell_magic
    def actor(self, line: str, cell: str) -> Run:
        """Define an actor from the cell (its main.py, or main.js with --node), build it (an unchanged source
        reuses its build) and run it, showing the build and the run live."""
        return run_cell(parse_line(line), cell, self.shell.user_ns)  # type: ignore[union-attr]

    @line_magic
    def actor_form(self, line: str) -> Any:
        """%actor_form NAME: the run-settings form of an actor."""
        name = line.strip()
        if not name or len(name.split()) != 1:
            raise UsageError("usage: %actor_form NAME")
        from .form import form

        return form(name)


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(ActorMagics)
