"""A version's environment variables (Apify's ``envVars``): checked, and changed one by one.

Each change is a pure function of the stored list, so the store applies it inside one transaction.
Secret values are stored like the others (the runs need them) and never shown by the API.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import Conflict, InvalidInput, NotFound
from .fields import FieldTypes, checked_fields

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_NAME_CHARS = 200
MAX_VALUE_CHARS = 50_000
FIELD_TYPES: FieldTypes = {"name": (str, type(None)), "value": (str, type(None)), "isSecret": (bool, type(None))}

EnvVar = dict[str, Any]


def check_env_var(body: object, *, existing: EnvVar | None = None) -> EnvVar:
    """``{name, value, isSecret}`` checked; a field left out keeps ``existing``'s (a secret keeps its value)."""
    body = checked_fields(body, FIELD_TYPES, what="An environment variable")
    base = existing or {}
    name = body.get("name") or base.get("name")
    value = body["value"] if body.get("value") is not None else base.get("value")
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"Environment variable name {name!r} is not allowed: use letters, digits and "
                           "underscores, not starting with a digit (e.g. MY_VAR).")
    if not isinstance(value, str):
        raise InvalidInput(f"The environment variable {name} needs a value (a string).")
    if len(value) > MAX_VALUE_CHARS:
        raise InvalidInput(f"The value of {name} is longer than {MAX_VALUE_CHARS} characters.")
    secret = body["isSecret"] if body.get("isSecret") is not None else bool(base.get("isSecret"))
    return {"name": name, "value": value, "isSecret": secret}


def find(env_vars: list[EnvVar], name: str) -> EnvVar:
    for var in env_vars:
        if var["name"] == name:
            return var
    raise NotFound(f"Environment variable {name!r} was not found in this version.", type="record-not-found")


def added(env_vars: list[EnvVar], var: EnvVar) -> list[EnvVar]:
    if any(other["name"] == var["name"] for other in env_vars):
        raise Conflict(f"Environment variable {var['name']} exists already; change it with PUT "
                       f".../env-vars/{var['name']}.", type="record-or-token-already-exists")
    return [*env_vars, var]


def replaced(env_vars: list[EnvVar], name: str, var: EnvVar) -> list[EnvVar]:
    """``name`` replaced by ``var`` (which may rename it, to a name not taken)."""
    find(env_vars, name)
    if var["name"] != name and any(other["name"] == var["name"] for other in env_vars):
        raise Conflict(f"Environment variable {var['name']} exists already.", type="record-or-token-already-exists")
    return [var if other["name"] == name else other for other in env_vars]


def removed(env_vars: list[EnvVar], name: str) -> list[EnvVar]:
    find(env_vars, name)
    return [other for other in env_vars if other["name"] != name]
