"""Runs: get (with waitForFinish long-polling), update status message, abort, resurrect, reboot, log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from tornado.iostream import StreamClosedError

from ..platform.clock import iso, parse_iso
from ..platform.errors import InvalidInput
from ..platform.lifecycle import RunStatus
from ..platform.models import Run
from ..platform.runlog import LogFollower
from .base import ApiHandlerMixin, check_general_access
from .principals import require
from .run_refs import RunAddressing

LOG_POLL_SECS = 0.05
#: PUT /actor-runs/{id}: what the SDK sends (set_status_message, fail, exit) and nothing else.
#: ``level`` is sent by the JavaScript SDK's setStatusMessage (its log level there); accepted and not stored.
RUN_UPDATE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "statusMessage": str, "isStatusMessageTerminal": bool, "generalAccess": (str, type(None)),
    "level": (str, type(None)),
}
RESURRECT_OPTIONS = {"build", "memory", "timeout", "restartOnError"}


class RunAccess(RunAddressing):
    async def load_run(self, ref: str, *, access: str = "read") -> Run:
        """The run the path names (by id, or an actor's last run), if the caller may ``access`` it: read,
        abort, update (status) or manage (delete, resurrect)."""
        run = await self.call(self.find_run, ref)
        run_id = run["id"]
        children = await self.children()
        require(self.principal.may_read_run(run, children), f"read run {run_id}")
        allowed = {
            "read": True,
            "abort": self.principal.may_abort_run(run, children),
            "update": self.principal.may_update_run(run),
            "manage": self.principal.may_manage_runs,
        }[access]
        require(allowed, f"{'delete or resurrect' if access == 'manage' else access} run {run_id}")
        return run

    async def wait_for_finish(self, run: Run, wait: int) -> Run:
        """Hold the request until the run is terminal or ``wait`` seconds passed (see ``wait_secs``)."""
        deadline = time.monotonic() + wait
        while not RunStatus(run["status"]).is_terminal:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await self.run_events.wait(run["id"], remaining)
            run = await self.call(self.platform.get_run, run["id"])
        return run


class RunListing(RunAccess):
    async def send_runs(self, actor_id: str | None, *, task: str | None = None) -> None:
        """One page of runs (all, one actor's or one task's), newest first with ``desc``; a run token sees only
        its own."""
        offset, limit, desc = self.paging()
        runs = await self.call(
            self.platform.list_runs, actor_id, status=self.run_statuses(), desc=desc,
            started_before=self.query_time("startedBefore"), started_after=self.query_time("startedAfter"),
            task=task,
        )
        if self.principal.run_id:
            children = await self.children()
            runs = [run for run in runs if self.principal.may_read_run(run, children)]
        page = runs[offset: offset + limit if limit is not None else None]
        views = await self.call(lambda: [self.views.run(run) for run in page])
        self.send_list(views, total=len(runs), offset=offset, limit=limit, desc=desc)


    def query_time(self, name: str) -> str | None:
        """An ISO 8601 date-time (``Z`` or an offset; no zone means UTC) in the stored format, to compare."""
        text = self.query(name)
        if not text:
            return None
        try:
            return iso(parse_iso(text))
        except ValueError:
            raise InvalidInput(f"{name} must be an ISO 8601 date and time such as 2024-01-31T12:00:00Z, "
                               f"not {text!r}.") from None


class RunListHandler(RunListing):
    async def get(self) -> None:
        await self.send_runs(None)


class RunHandler(RunAccess):
    async def get(self, ref: str) -> None:
        wait = self.wait_secs()
        run = await self.wait_for_finish(await self.load_run(ref), wait)
        self.send_data(await self.call(self.views.run, run))

    async def delete(self, ref: str) -> None:
        """Delete a finished run with its default storages and log (409 while it runs)."""
        run = await self.load_run(ref, access="manage")
        await self.call(self.platform.delete_run, run["id"])
        self.set_status(204)
        self.finish()

    async def put(self, ref: str) -> None:
        run = await self.load_run(ref, access="update")
        body = await self.json_object(RUN_UPDATE_FIELDS)
        check_general_access(body.get("generalAccess"))
        if "statusMessage" in body:
            run = await self.call(
                self.platform.set_status_message, run["id"], body["statusMessage"],
                terminal=bool(body.get("isStatusMessageTerminal")),
            )
        self.send_data(await self.call(self.views.run, run))


class RunAbortHandler(RunAccess):
    async def post(self, ref: str) -> None:
        self.reject_unknown_query(self.query_options({"gracefully"}))
        gracefully = self.query_bool("gracefully")
        run = await self.load_run(ref, access="abort")
        run = await self.call(self.platform.abort_run, run["id"], gracefully=gracefully)
        self.send_data(await self.call(self.views.run, run))


class RunResurrectHandler(RunAccess):
    async def post(self, ref: str) -> None:
        self.reject_unknown_query(self.query_options(RESURRECT_OPTIONS))
        run = await self.load_run(ref, access="manage")
        run = await self.call(
            self.platform.resurrect_run, run["id"], build=self.query("build"),
            memory_mb=self.query("memory"), timeout_secs=self.query("timeout"),
            restart_on_error=self.query_bool("restartOnError") if self.query("restartOnError") else None,
        )
        self.send_data(await self.call(self.views.run, run))


class RunRebootHandler(RunAccess):
    """``POST /v2/actor-runs/{id}/reboot``: the running run's container restarts (same input and storages); the run
    itself (its token) or the user may reboot it."""

    async def post(self, ref: str) -> None:
        self.reject_unknown_query(self.query_options(set()))
        run = await self.load_run(ref, access="update")
        run = await self.call(self.platform.reboot_run, run["id"])
        self.send_data(await self.call(self.views.run, run))


class RunStatsSamplesHandler(RunAccess):
    """``GET /v2/actor-runs/{id}/stats-samples`` (beyond Apify): the run's memory and CPU over time."""

    async def get(self, ref: str) -> None:
        self.reject_unknown_query(set())
        run = await self.load_run(ref)
        samples = await self.call(self.platform.run_samples, run["id"])
        self.send_data(self.views.stats_samples(run, samples))


class LogStreaming(ApiHandlerMixin):
    """A stored log (a run's or a build's), whole or, with ``stream``, followed until its owner ends."""

    def check_log_options(self) -> None:
        """Refuse a bad ``raw`` or ``stream`` before anything is looked up."""
        self.query_bool("raw")  # Apify's option; the log is always raw here, but a bad value is still refused
        self.query_bool("stream")

    async def send_log(self, path: Path, whole: Callable[[], bytes], finished: Callable[[], bool]) -> None:
        """``whole`` and ``finished`` block (the registry, the file): they run in a worker thread."""
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if not self.query_bool("stream"):
            self.finish(await self.call(whole))
            return
        follower = LogFollower(path)
        done = await self.call(finished)
        while True:
            chunk = await self.call(follower.read)
            if chunk:
                self.write(chunk)
                try:
                    await self.flush()
                except StreamClosedError:  # the follower went away (Ctrl-C in the CLI): nothing to answer
                    return
                continue
            if done:
                # Read to the end once more: the writer stores the last lines before the final status.
                while chunk := await self.call(follower.read):
                    self.write(chunk)
                break
            stream = self.client_stream()
            if stream is None or stream.closed():
                return
            await asyncio.sleep(LOG_POLL_SECS)
            done = await self.call(finished)
        self.finish()


class RunLogHandler(RunAccess, LogStreaming):
    """The stored log; with ``stream=true`` the response stays open and follows until the run ends."""

    async def get(self, ref: str) -> None:
        self.check_log_options()
        await self.send_run_log(await self.load_run(ref))

    async def send_run_log(self, run: Run) -> None:
        run_id = run["id"]
        await self.send_log(self.platform.log_path(run_id), lambda: self.platform.run_log(run_id),
                            lambda: RunStatus(self.platform.get_run(run_id)["status"]).is_terminal)
