"""``GET /v2/users/me``: the one user of this platform, with the proxy password the SDKs read.

Apify's SDKs fetch it when ``APIFY_PROXY_PASSWORD`` is not set; a run gets its own proxy password, the
user (the user-facing API) the user's.
"""

from __future__ import annotations

from ..platform.core import USERNAME
from ..platform.errors import NotFound
from ..platform.proxy import Credentials, run_proxy_password
from .base import ApiHandlerMixin


class UserHandler(ApiHandlerMixin):
    async def get(self, ref: str) -> None:
        if ref not in ("me", USERNAME):
            raise NotFound(f"User {ref!r} was not found; the only user here is {USERNAME!r} (or say 'me').",
                           type="user-or-token-not-found")
        user = {"id": USERNAME, "username": USERNAME, "profile": {}, "isPaying": False}
        if getattr(self.platform, "proxy_endpoint", None) is not None:
            password = await self.call(self._proxy_password)
            user["proxy"] = {"password": password, "groups": []}
        self.send_data(user)

    def _proxy_password(self) -> str:
        if self.principal.run_id is None:
            return Credentials(self.platform).user_password()
        return run_proxy_password(self.platform.get_run(self.principal.run_id))
