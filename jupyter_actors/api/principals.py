"""Who is calling and what they may do: the user may do everything, a run only what its run may."""

from __future__ import annotations

from dataclasses import dataclass

from ..platform.errors import Forbidden


@dataclass(frozen=True)
class UserPrincipal:
    """The Jupyter user: full access."""

    def may_read_run(self, run: dict, children: set[str]) -> bool:
        return True

    def may_control_run(self, run: dict, children: set[str]) -> bool:
        return True

    def may_access_storage(self, meta: dict, children: set[str]) -> bool:
        return True

    may_manage_actors = True
    run_id: str | None = None


@dataclass(frozen=True)
class RunPrincipal:
    """An actor authenticated with its run's token.

    It may read and update its own run, use its own storages, named storages and storages it
    created, start other actors and read the runs it started (and their storages). Nothing else.
    """

    run_id: str

    def may_read_run(self, run: dict, children: set[str]) -> bool:
        return run["id"] == self.run_id or run["id"] in children

    def may_control_run(self, run: dict, children: set[str]) -> bool:
        return self.may_read_run(run, children)

    def may_access_storage(self, meta: dict, children: set[str]) -> bool:
        if meta.get("name"):
            return True
        owner = meta.get("actRunId")
        return owner is not None and (owner == self.run_id or owner in children)

    may_manage_actors = False


Principal = UserPrincipal | RunPrincipal


def require(allowed: bool, what: str) -> None:
    if not allowed:
        raise Forbidden(f"This token may not {what}.")
