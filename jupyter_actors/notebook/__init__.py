"""The notebook side of jupyter-actors: an HTTP client of the server's API and what a notebook shows.

Nothing here touches Docker or the platform: every call goes over HTTP to ``.../actors/api/v2``.
pandas and ipywidgets are imported only by the functions that need them.
"""

from __future__ import annotations

from .actors import build, call, define, delete_actor, delete_build, start
from .client import Client, connect, default_client
from .errors import (
    ActorsError,
    ApiError,
    BuildFailed,
    InputValidationError,
    InvalidInputError,
    NotFoundError,
    ServerNotFound,
)
from .form import RunForm, form
from .runs import Run, run, runs
from .storages import Dataset, KeyValueStore, dataset, key_value_store
from .tasks import Task, task


def load_ipython_extension(ipython) -> None:  # an InteractiveShell
    """``%load_ext jupyter_actors``: registers ``%%actor`` and ``%actor_form``."""
    from .magic import load_ipython_extension as load

    load(ipython)


__all__ = [
    "ActorsError", "ApiError", "BuildFailed", "Client", "Dataset", "InputValidationError", "InvalidInputError",
    "KeyValueStore", "NotFoundError", "Run", "RunForm", "ServerNotFound", "Task", "build", "call", "connect",
    "dataset", "default_client", "define", "delete_actor", "delete_build", "form", "key_value_store",
    "load_ipython_extension", "run", "runs", "start", "task",
]
