"""The two ways into the API: Jupyter's auth for the user, a per-run token for actors."""

from __future__ import annotations

import asyncio
import hmac

from tornado import web

from ..platform.errors import Unauthorized
from ..platform.lifecycle import RunStatus
from .principals import RunPrincipal, UserPrincipal

#: Settings key of the per-process credential that opens the user API to the CLI (see platform/datadir.py).
CLI_CREDENTIAL = "jupyter_actors_cli_credential"


def bearer_token(handler: web.RequestHandler) -> str | None:
    header = handler.request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    return handler.get_query_argument("token", None)


class RunTokenAuthBase(web.RequestHandler):
    """Actor-facing base: the caller must present the token of a run that has not finished."""

    def check_xsrf_cookie(self) -> None:  # token auth, no cookies: XSRF does not apply
        return

    async def prepare(self) -> None:
        token = bearer_token(self)
        if not token:
            raise Unauthorized(
                "Authentication required: send the run's APIFY_TOKEN as 'Authorization: Bearer <token>'.")
        platform = self.settings["jupyter_actors_platform"]
        run = await asyncio.to_thread(platform.run_for_token, token)  # SQLite: not on the event loop
        if run is None or RunStatus(run["status"]).is_terminal:
            raise Unauthorized("The token is not valid (unknown, or its run has finished).",
                               type="user-or-token-not-found")
        self.principal = RunPrincipal(run_id=run["id"], actor_id=run["actor_id"])


def has_cli_credential(handler: web.RequestHandler) -> bool:
    """Whether the request carries this process's CLI credential (compared in constant time)."""
    expected = handler.settings.get(CLI_CREDENTIAL)
    token = bearer_token(handler)
    return bool(expected and token and hmac.compare_digest(token.encode(), expected.encode()))


class CliCredentialAuthBase(web.RequestHandler):
    """User-facing base of the API a CLI serves itself (no Jupyter): its own credential is the user."""

    def check_xsrf_cookie(self) -> None:  # bearer credential, no cookies: XSRF does not apply
        return

    async def prepare(self) -> None:
        if not has_cli_credential(self):
            raise Unauthorized("Authentication required: send this process's credential as 'Authorization: Bearer'.")
        self.principal = UserPrincipal()
