"""``Run``: a handle on a run that lives on the server, so it survives kernel restarts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .client import Client, resolve
from .errors import NotFoundError
from .live import TAIL_LINES, LiveView
from .status import TERMINAL
from .storages import Dataset, KeyValueStore

if TYPE_CHECKING:
    import pandas


MAX_WAIT_SECS = 60  # the server's cap on one waitForFinish long-poll
USAGE_COLUMNS = ["at", "memBytes", "cpuUsage"]


class Run:
    """A run by id; ``data`` is the last snapshot of Apify's run object, ``status`` asks the server."""

    def __init__(self, run_id: str, *, client: Client | None = None, data: dict | None = None) -> None:
        self.id = run_id
        self.client = resolve(client)
        self.data: dict = data if data is not None else self.client.get(f"/actor-runs/{run_id}")

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.data.get('status')}>"

    def _repr_html_(self) -> str:
        """The last snapshot as a card (no request: a repr must not block on the server)."""
        from .reprs import run_html

        return run_html(self.data)

    def refresh(self, wait: float = 0) -> dict:
        """Fetch the run again; with ``wait`` > 0 the server holds the answer until it ends (max 60 s)."""
        self.data = self.client.get(f"/actor-runs/{self.id}", waitForFinish=int(wait) if wait else None)
        return self.data

    @property
    def status(self) -> str:
        return self.refresh()["status"]

    @property
    def is_terminal(self) -> bool:
        return self.data["status"] in TERMINAL

    def wait(self, timeout: float | None = None) -> Run:
        """Block until the run ends (or ``timeout`` seconds pass); long-polls, never busy-waits."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.refresh()
        while not self.is_terminal:
            remaining = MAX_WAIT_SECS if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                break
            self.refresh(wait=max(1, min(MAX_WAIT_SECS, remaining)))
        return self

    def abort(self, gracefully: bool = False) -> Run:
        """Stop the run (with ``gracefully``, SIGTERM first so it can save its state)."""
        self.data = self.client.post(f"/actor-runs/{self.id}/abort", gracefully=gracefully)
        return self

    def resurrect(self, *, build: str | None = None, memory: int | None = None, timeout: int | None = None) -> Run:
        """Start a finished run again with the same storages."""
        self.data = self.client.post(f"/actor-runs/{self.id}/resurrect", build=build, memory=memory, timeout=timeout)
        return self

    def delete(self) -> None:
        """Delete this finished run with its default storages and log (named storages stay)."""
        self.client.request("DELETE", f"/actor-runs/{self.id}")

    @property
    def container_url(self) -> str | None:
        """Where the run's web server is reachable through Jupyter (with your login)."""
        return self.data.get("containerUrl")

    def log(self) -> str:
        """The whole log so far (each line starts with its ISO timestamp)."""
        return self.client.request("GET", f"/actor-runs/{self.id}/log").text

    def follow_log(self, stop: Any = None) -> Iterator[str]:
        """Log lines from the start, then as they are written, until the run ends."""
        return self.client.stream_lines(f"/actor-runs/{self.id}/log", stop=stop, stream=True)

    def show(self, *, tail: int | None = None) -> LiveView:
        """Display the live view of this run (re-attaches to a run started in an earlier kernel)."""
        view = LiveView(self, tail=tail or TAIL_LINES)
        view.display()
        view.start()
        return view

    def usage(self) -> pandas.DataFrame:
        """The run's memory and CPU samples (``GET .../stats-samples``) as a DataFrame indexed by UTC time:
        ``memBytes`` in use and ``cpuUsage`` in percent of one core; ``attrs`` holds the run's
        ``memoryLimitBytes`` and ``cpuCores``. The server keeps a bounded, evenly spaced series."""
        import pandas

        data = self.usage_samples()
        frame = pandas.DataFrame(data["items"], columns=USAGE_COLUMNS)
        frame["at"] = pandas.to_datetime(frame["at"], utc=True, format="ISO8601")
        frame = frame.set_index("at").astype({"memBytes": "int64", "cpuUsage": "float64"})
        frame.attrs.update(memoryLimitBytes=data["memoryLimitBytes"], cpuCores=data["cpuCores"],
                           intervalSecs=data["intervalSecs"])
        return frame

    def usage_samples(self) -> dict:
        """The server's ``stats-samples`` answer as it is (``items``, ``memoryLimitBytes``, ``cpuCores``, ...)."""
        return self.client.get(f"/actor-runs/{self.id}/stats-samples")

    def plot_usage(self) -> Any:
        """Memory and CPU over time against the run's limits (a matplotlib Figure; needs matplotlib)."""
        from .usage_plot import plot_usage

        return plot_usage(self.usage(), title=f"Run {self.id}")

    @property
    def key_value_store(self) -> KeyValueStore:
        return KeyValueStore(self.data["defaultKeyValueStoreId"], client=self.client)

    @property
    def dataset(self) -> Dataset:
        return Dataset(self.data["defaultDatasetId"], client=self.client)

    @property
    def output(self) -> Any:
        """The decoded OUTPUT record, or None when the run set none."""
        return self.key_value_store.get("OUTPUT")


def run(run_id: str, *, client: Client | None = None) -> Run:
    """Get any run back by its id (from this kernel or an earlier one)."""
    try:
        return Run(run_id, client=client)
    except NotFoundError:
        raise NotFoundError(f"Run {run_id!r} was not found.", status=404, type="record-not-found") from None


RUN_COLUMNS = ["id", "actor", "status", "startedAt", "finishedAt", "durationSecs", "memoryMbytes",
               "timeoutSecs", "buildNumber", "exitCode", "statusMessage"]


def runs(*, limit: int | None = None, status: str | None = None, client: Client | None = None) -> pandas.DataFrame:
    """All runs on the server as a DataFrame, newest first."""
    import pandas

    client = resolve(client)
    names = {actor["id"]: actor["name"] for actor in client.iter_pages("/actors")}
    rows = []
    for item in client.iter_pages("/actor-runs", desc=True, status=status):
        rows.append({
            "id": item["id"], "actor": names.get(item["actId"], item["actId"]), "status": item["status"],
            "startedAt": item["startedAt"], "finishedAt": item["finishedAt"],
            "durationSecs": (item.get("stats") or {}).get("durationMillis", 0) / 1000,
            "memoryMbytes": item["options"]["memoryMbytes"], "timeoutSecs": item["options"]["timeoutSecs"],
            "buildNumber": item.get("buildNumber"), "exitCode": item.get("exitCode"),
            "statusMessage": item.get("statusMessage"),
        })
        if limit is not None and len(rows) >= limit:
            break
    frame = pandas.DataFrame(rows, columns=RUN_COLUMNS)
    for column in ("startedAt", "finishedAt"):
        frame[column] = pandas.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame.astype({"durationSecs": "float64", "memoryMbytes": "int64", "timeoutSecs": "int64",
                         "exitCode": "Int64"})
