"""How a route names a run: by id (``/actor-runs/{runId}/...``), as an actor's last run
(``/acts/{actorId}/runs/last/...``) or as a task's (``/actor-tasks/{taskId}/runs/last/...``). Run, log
and storage handlers all resolve through here, so every sub-path of a run works the same under each."""

from __future__ import annotations

from ..platform.errors import InvalidInput, NotFound
from ..platform.lifecycle import RunStatus
from ..platform.models import Run
from .base import ApiHandlerMixin

#: Route kwargs: ``{"run_ref": BY_ID}``, ``{"run_ref": LAST_OF_ACTOR}`` or ``{"run_ref": LAST_OF_TASK}``.
BY_ID = "id"
LAST_OF_ACTOR = "last"
LAST_OF_TASK = "last-of-task"
#: Query options of every ``/runs/last`` path (apify-client repeats them on each sub-resource call).
LAST_RUN_QUERY = {"status", "origin"}


class RunAddressing(ApiHandlerMixin):
    """Resolves the path's run reference; ``run_ref`` None means the path names no run (a storage by id)."""

    run_ref: str | None = None

    def initialize(self, run_ref: str | None = None) -> None:
        self.run_ref = run_ref

    def run_statuses(self) -> list[str] | None:
        """``status``: one status or a comma list, each one of Apify's run statuses."""
        statuses = self.query_list("status")
        known = [s.value for s in RunStatus]
        for status in statuses or ():
            if status not in known:
                allowed = ", ".join(known)
                raise InvalidInput(f"status {status!r} is not a run status; use one or more of {allowed}.")
        return statuses

    def query_options(self, allowed: set[str]) -> set[str]:
        """The query options a handler accepts, plus the last-run filters on ``/runs/last`` paths."""
        return allowed | LAST_RUN_QUERY if self.run_ref in (LAST_OF_ACTOR, LAST_OF_TASK) else allowed

    def find_run(self, ref: str) -> Run:
        """Blocking (call it in a worker thread): the run row the path names; NotFound if none."""
        if self.run_ref not in (LAST_OF_ACTOR, LAST_OF_TASK):
            return self.platform.get_run(ref)
        statuses, origin = self.run_statuses(), self.query("origin") or None
        actor, task = (ref, None) if self.run_ref == LAST_OF_ACTOR else (None, ref)
        if self.principal.run_id is None:
            return self.platform.last_run(actor, status=statuses, origin=origin, task=task)
        # A run token: the newest run it may read, so it learns nothing of runs it did not start.
        children = self.platform.child_run_ids(self.principal.run_id)
        for run in self.platform.list_runs(actor, status=statuses, origin=origin, desc=True, task=task):
            if self.principal.may_read_run(run, children):
                return run
        raise NotFound(f"{'Actor' if task is None else 'Actor task'} {ref} has no run this token may read yet.")
