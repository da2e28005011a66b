"""User-facing base handler: Jupyter's authentication and authorization on every request."""

from __future__ import annotations

from jupyter_server.base.handlers import JupyterHandler

from ..api.auth import has_cli_credential
from ..api.principals import Principal, SignedPrincipal, UserPrincipal
from ..platform.errors import Forbidden, Unauthorized

AUTH_RESOURCE = "actors"


class JupyterAuthBase(JupyterHandler):
    """Every request must carry a Jupyter user (token or cookie) allowed on the ``actors`` resource,
    or the server's own credential (``server.json`` in the data directory, and the environment of its
    kernels when it has no token: the CLI and those kernels are the owner)."""

    auth_resource = AUTH_RESOURCE
    principal: Principal

    def check_xsrf_cookie(self) -> None:
        """XSRF guards a logged-in browser's cookie; a request with no user at all gets the 401 of ``prepare``.

        Jupyter checks it before authentication fails, so a token-less or wrong-token POST, PUT or
        DELETE would otherwise answer 403 "'_xsrf' argument missing" instead of Apify's 401.
        """
        if getattr(self, "_jupyter_current_user", None) is None:
            return None
        return super().check_xsrf_cookie()

    async def signed_principal(self) -> SignedPrincipal | None:
        """The reader of a signed public URL, on routes that take one (storage reads); None elsewhere.
        Raises when the request carries a signature that is not valid."""
        return None

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare(_redirect_to_login=False)
        if not self.check_origin():
            raise Forbidden("Cross-origin requests are not allowed.")
        if self.current_user is None and has_cli_credential(self):
            self.principal = UserPrincipal()
            return
        if self.current_user is None:
            signed = await self.signed_principal()
            if signed is not None:  # a signed public URL of one storage: readable without a login
                self.principal = signed
                return
            raise Unauthorized(
                "Authentication required: send the Jupyter server's token as 'Authorization: Bearer <token>'."
            )
        action = "read" if self.request.method in ("GET", "HEAD", "OPTIONS") else "write"
        if not self.authorizer.is_authorized(self, self.current_user, action, self.auth_resource):
            raise Forbidden(f"User {self.current_user.username} may not {action} actors.")
        self.principal = UserPrincipal()
