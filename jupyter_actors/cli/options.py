"""The platform settings as global options of the CLI (``data_dir`` -> ``--data-dir``), from their declaration."""

from __future__ import annotations

import argparse

from ..platform.config import CLI, PlatformConfig, settings
from ..platform.errors import PlatformError


def given_settings(args: argparse.Namespace) -> dict:
    """The platform settings given on the command line, converted; the rest keep their defaults."""
    values = {}
    for item in settings(CLI):
        given = getattr(args, item.name, None)
        if given is None:
            continue
        if item.kind is dict:
            given = {**(item.factory() if item.factory else item.default), **dict(map(_mapping, given))}
        values[item.name] = item.convert(given)
    return values


def _config(args: argparse.Namespace) -> PlatformConfig:
    """The platform settings given as global options; the rest keep their defaults."""
    return PlatformConfig(**given_settings(args))


def _mapping(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` of a repeatable mapping option, e.g. ``--base-image-map apify/actor-node=my/node:24``."""
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise PlatformError(f"Expected KEY=VALUE (e.g. apify/actor-node=my/node:24), not {text!r}.")
    return key, value


def option_name(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _add_setting_options(parser: argparse.ArgumentParser) -> None:
    """One option per platform setting the CLI exposes (``data_dir`` -> ``--data-dir``), from its declaration:
    a setting that is on by default is turned off with ``--no-<name>``, a mapping is given as repeated KEY=VALUE."""
    for item in settings(CLI):
        option = option_name(item.name)
        if item.kind is bool:
            flag = f"--no-{item.name.replace('_', '-')}" if item.default else option
            parser.add_argument(flag, dest=item.name, action="store_const", const=not item.default, help=item.help)
        elif item.kind is dict:
            parser.add_argument(option, dest=item.name, action="append", metavar="KEY=VALUE", help=item.help)
        else:
            parser.add_argument(option, dest=item.name, choices=item.choices, help=item.help)
