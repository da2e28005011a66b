"""The ways into the API: Jupyter's auth for the user, a per-run token for actors, a CLI's own credential."""

from __future__ import annotations

import asyncio
import hmac

from tornado import web

from ..platform.errors import Unauthorized
from ..platform.lifecycle import RunStatus
from ..platform.runs.handover import current_actor_id
from .principals import Principal, RunPrincipal, UserPrincipal

#: Settings key of the per-process credential that opens the user API to the CLI (see platform/datadir.py)
#: and to the kernels of a Jupyter server that has no token of its own (see server/app.py).
CLI_CREDENTIAL = "jupyter_actors_cli_credential"


def bearer_token(handler: web.RequestHandler) -> str | None:
    header = handler.request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    return handler.get_query_argument("token", None)


class RunTokenAuthBase(web.RequestHandler):
    """Bearer-token base: the token of a run that has not finished (the actor-facing API), or, on the API
    a CLI serves itself, that process's own credential, which is the user."""

    principal: Principal

    def check_xsrf_cookie(self) -> None:  # token auth, no cookies: XSRF does not apply
        return

    async def prepare(self) -> None:
        if has_cli_credential(self):
            self.principal = UserPrincipal()
            return
        token = bearer_token(self)
        if not token:
            raise Unauthorized(
                "Authentication required: send the run's APIFY_TOKEN as 'Authorization: Bearer <token>'.")
        platform = self.settings["jupyter_actors_platform"]
        run = await asyncio.to_thread(platform.run_for_token, token)  # SQLite: not on the event loop
        if run is None or RunStatus(run["status"]).is_terminal:
            raise Unauthorized("The token is not valid (unknown, or its run has finished).",
                               type="user-or-token-not-found")
        self.principal = RunPrincipal(run_id=run["id"], actor_id=current_actor_id(run))  # its code's actor


def has_cli_credential(handler: web.RequestHandler) -> bool:
    """Whether the request carries this process's own credential (compared in constant time)."""
    expected = handler.settings.get(CLI_CREDENTIAL)
    token = bearer_token(handler)
    return bool(expected and token and hmac.compare_digest(token.encode(), expected.encode()))

