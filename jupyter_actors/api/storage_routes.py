"""The URL table of the storages: by id or name, and as a run's default storages."""

from __future__ import annotations

from ..platform.storages import (
    DATASETS,
    KEY_VALUE_STORES,
    REQUEST_QUEUES,
)
from .base import Route
from .request_queue_handlers import (
    HeadHandler,
    HeadLockHandler,
    RequestHandler,
    RequestLockHandler,
    RequestsBatchHandler,
    RequestsHandler,
    UnlockRequestsHandler,
)
from .storages_handlers import (
    ID,
    PATH_OF_KIND,
    CollectionHandler,
    ItemsHandler,
    KeysHandler,
    RecordHandler,
    StatisticsHandler,
    StorageAccess,
    StorageHandler,
)

ROUTES: list[Route] = []
for _kind, _path in PATH_OF_KIND.items():
    ROUTES += [
        (f"/{_path}", CollectionHandler, {"kind": _kind}),
        (rf"/{_path}/{ID}", StorageHandler, {"kind": _kind}),
    ]
_SUBPATHS: list[tuple[str, str, type[StorageAccess]]] = [
    (KEY_VALUE_STORES, r"/keys", KeysHandler),
    (KEY_VALUE_STORES, rf"/records/{ID}", RecordHandler),
    (DATASETS, r"/items", ItemsHandler),
    (DATASETS, r"/statistics", StatisticsHandler),
    (REQUEST_QUEUES, r"/requests", RequestsHandler),
    (REQUEST_QUEUES, r"/requests/batch", RequestsBatchHandler),
    (REQUEST_QUEUES, r"/requests/unlock", UnlockRequestsHandler),
    (REQUEST_QUEUES, rf"/requests/{ID}", RequestHandler),
    (REQUEST_QUEUES, rf"/requests/{ID}/lock", RequestLockHandler),
    (REQUEST_QUEUES, r"/head", HeadHandler),
    (REQUEST_QUEUES, r"/head/lock", HeadLockHandler),
]
for _kind, _sub, _handler in _SUBPATHS:
    ROUTES.append((rf"/{PATH_OF_KIND[_kind]}/{ID}{_sub}", _handler, {}))
_SINGULAR = {KEY_VALUE_STORES: "key-value-store", DATASETS: "dataset", REQUEST_QUEUES: "request-queue"}


def run_storage_routes(run_prefix: str, run_ref: str) -> list[Route]:
    """A run's default storages under ``run_prefix`` (``/actor-runs/{runId}`` or ``/acts/{actorId}/runs/last``):
    ``.../key-value-store/...``, ``.../dataset/...``, ``.../request-queue/...``."""
    routes: list[Route] = [(f"{run_prefix}/{name}", StorageHandler, {"run_ref": run_ref, "kind": kind})
                           for kind, name in _SINGULAR.items()]
    routes += [(f"{run_prefix}/{_SINGULAR[kind]}{sub}", handler, {"run_ref": run_ref})
               for kind, sub, handler in _SUBPATHS]
    return routes
