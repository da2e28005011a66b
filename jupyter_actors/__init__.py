"""jupyter-actors: Apify-style actors run as resource-limited Docker containers from Jupyter.

The notebook API (``connect``, ``call``, ``start``, ``run``, ``runs``, ``define``, ``form``, ``task``,
``key_value_store``, ``dataset``, ...) lives in ``jupyter_actors.notebook`` and is re-exported here
lazily, so importing the package (as the server extension does) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .notebook import (
        ActorsError,
        ApiError,
        BuildFailed,
        Client,
        Dataset,
        InputValidationError,
        InvalidInputError,
        KeyValueStore,
        NotFoundError,
        Run,
        RunForm,
        ServerNotFound,
        Task,
        build,
        call,
        connect,
        dataset,
        default_client,
        define,
        form,
        key_value_store,
        run,
        runs,
        start,
        task,
    )

__all__ = [
    "ActorsError", "ApiError", "BuildFailed", "Client", "Dataset", "InputValidationError", "InvalidInputError",
    "KeyValueStore", "NotFoundError", "Run", "RunForm", "ServerNotFound", "Task", "build", "call", "connect",
    "dataset", "default_client", "define", "delete_actor", "delete_build", "form", "key_value_store",
    "load_ipython_extension", "run", "runs", "start", "task",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'jupyter_actors' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_actors``: registers the ``%%actor`` and ``%actor_form`` magics."""
    from .notebook.magic import load_ipython_extension as load

    load(ipython)


def _jupyter_server_extension_points() -> list[dict]:
    from .server.app import ActorsExtension

    return [{"module": "jupyter_actors.server.app", "app": ActorsExtension}]
