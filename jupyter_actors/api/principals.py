"""Who is calling and what they may do: the user may do everything, a run only what its run may."""

from __future__ import annotations

from dataclasses import dataclass

from ..platform.errors import Forbidden
from ..platform.models import Run


@dataclass(frozen=True)
class UserPrincipal:
    """The Jupyter user: full access."""

    def may_read_run(self, run: Run, children: set[str]) -> bool:
        return True

    def may_abort_run(self, run: Run, children: set[str]) -> bool:
        return True

    def may_update_run(self, run: Run) -> bool:
        return True

    def may_access_storage(self, meta: dict, children: set[str]) -> bool:
        return True

    def may_read_actor(self, actor_id: str) -> bool:
        return True

    may_manage_actors = True
    may_manage_runs = True
    may_publish_web = True
    may_manage_webhooks = True
    run_id: str | None = None


@dataclass(frozen=True)
class RunPrincipal:
    """An actor authenticated with its run's token (the README's security model).

    It may read and update its own run, read its own actor and builds, use its own storages, named
    storages and storages it created, start other actors (never with a public web server), and read
    and abort the runs it started (and use their storages). Nothing else: no listing or reading
    other actors, their sources, env vars or builds; no deleting, resurrecting or changing runs.
    """

    run_id: str
    actor_id: str | None = None

    def may_read_run(self, run: Run, children: set[str]) -> bool:
        return run["id"] == self.run_id or run["id"] in children

    def may_abort_run(self, run: Run, children: set[str]) -> bool:
        return self.may_read_run(run, children)

    def may_update_run(self, run: Run) -> bool:
        """Only its own status message (what the SDK's set_status_message, fail and exit send)."""
        return run["id"] == self.run_id

    def may_access_storage(self, meta: dict, children: set[str]) -> bool:
        if meta.get("name"):
            return True
        owner = meta.get("actRunId")
        return owner is not None and (owner == self.run_id or owner in children)

    def may_read_actor(self, actor_id: str) -> bool:
        return actor_id == self.actor_id

    may_manage_actors = False
    may_manage_runs = False
    may_publish_web = False
    may_manage_webhooks = False  # it may only add webhooks of its own run (Actor.add_webhook)


@dataclass(frozen=True)
class SignedPrincipal:
    """Someone with a signed public URL of one storage (no token): reads that storage, nothing else."""

    storage_id: str

    def may_read_run(self, run: Run, children: set[str]) -> bool:
        return False

    def may_abort_run(self, run: Run, children: set[str]) -> bool:
        return False

    def may_update_run(self, run: Run) -> bool:
        return False

    def may_access_storage(self, meta: dict, children: set[str]) -> bool:
        return bool(meta.get("id") == self.storage_id)

    def may_read_actor(self, actor_id: str) -> bool:
        return False

    may_manage_actors = False
    may_manage_runs = False
    may_publish_web = False
    may_manage_webhooks = False
    run_id: str | None = None


Principal = UserPrincipal | RunPrincipal | SignedPrincipal


def require(allowed: bool, what: str) -> None:
    if not allowed:
        raise Forbidden(f"This token may not {what}.")
