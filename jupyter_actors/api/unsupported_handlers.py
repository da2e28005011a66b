"""Endpoints of Apify's API that real clients can call but this platform has no counterpart for: they
answer 501 in Apify's error shape saying so, never a 404 that reads like a typo in the client."""

from __future__ import annotations

from ..platform.errors import PlatformError
from .base import ApiHandlerMixin
from .runs_handlers import RunAccess


class NotSupportedHere(PlatformError):
    status = 501
    type = "not-supported"


class StoreHandler(ApiHandlerMixin):
    """``GET /v2/store``: Apify Store lists public actors of all users; a local platform has none."""

    async def get(self) -> None:
        raise NotSupportedHere("Apify Store is not supported here: this platform has only your own actors "
                               "(list them with GET /v2/acts).")


class RunChargeHandler(RunAccess):
    """``POST .../charge``: pay-per-event charging; runs here are never charged (a run that is not there is
    still a 404, as anywhere else)."""

    async def post(self, ref: str) -> None:
        await self.load_run(ref)
        raise NotSupportedHere("Charging events is not supported here: runs are not charged "
                               "(pay-per-event pricing needs Apify's platform).")
