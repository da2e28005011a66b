"""``/v2/users/me``: the one user of this platform, with the proxy password the SDKs read, its limits
(the memory quota) and its monthly usage.

Apify's SDKs fetch the user when ``APIFY_PROXY_PASSWORD`` is not set; a run gets its own proxy password,
the user (the user-facing API) the user's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..platform.account import Limits, MonthlyUsage
from ..platform.clock import iso
from ..platform.core import USERNAME
from ..platform.errors import InvalidInput, NotFound
from ..platform.proxy import Credentials, run_proxy_password
from .base import ApiHandlerMixin
from .principals import require

#: What the limits show for a limit this platform does not have (a number, as Apify's clients expect one).
UNLIMITED = 1_000_000_000
_NUMBER = (int, float)
LIMITS_FIELDS: dict[str, type | tuple[type, ...]] = {
    "maxMonthlyUsageUsd": (*_NUMBER, type(None)), "dataRetentionDays": (int, type(None)),
    "maxActorMemoryGbytes": (*_NUMBER, type(None)),  # ours: the memory quota
}


def check_user(ref: str) -> None:
    if ref not in ("me", USERNAME):
        raise NotFound(f"User {ref!r} was not found; the only user here is {USERNAME!r} (or say 'me').",
                       type="user-or-token-not-found")


class UserHandler(ApiHandlerMixin):
    async def get(self, ref: str) -> None:
        check_user(ref)
        user = {"id": USERNAME, "username": USERNAME, "profile": {}, "isPaying": False}
        if getattr(self.platform, "proxy_endpoint", None) is not None:
            password = await self.call(self._proxy_password)
            user["proxy"] = {"password": password, "groups": []}
        self.send_data(user)

    def _proxy_password(self) -> str:
        if self.principal.run_id is None:
            return Credentials(self.platform).user_password()
        return run_proxy_password(self.platform.get_run(self.principal.run_id))


def limits_view(limits: Limits, cycle: MonthlyUsage) -> dict[str, Any]:
    """Apify's account limits: the memory quota and the counts are real; what is not limited here shows
    UNLIMITED, and nothing is charged (0 USD)."""
    return {
        "monthlyUsageCycle": {"startAt": iso(cycle.start), "endAt": iso(cycle.end)},
        "limits": {
            "maxMonthlyUsageUsd": UNLIMITED, "maxMonthlyActorComputeUnits": UNLIMITED,
            "maxMonthlyExternalDataTransferGbytes": UNLIMITED, "maxMonthlyProxySerps": UNLIMITED,
            "maxMonthlyResidentialProxyGbytes": UNLIMITED, "maxActorMemoryGbytes": limits.memory_limit_mb / 1024,
            "maxActorCount": UNLIMITED, "maxActorTaskCount": UNLIMITED, "maxScheduleCount": UNLIMITED,
            "maxConcurrentActorJobs": UNLIMITED, "maxTeamAccountSeatCount": 0,
            "dataRetentionDays": round(limits.retention_days),
        },
        "current": {
            "monthlyUsageUsd": 0, "monthlyActorComputeUnits": limits.month_compute_units,
            "monthlyExternalDataTransferGbytes": 0, "monthlyProxySerps": 0, "monthlyResidentialProxyGbytes": 0,
            "actorMemoryGbytes": limits.memory_in_use_mb / 1024, "actorCount": limits.actor_count,
            "actorTaskCount": limits.task_count, "scheduleCount": limits.schedule_count,
            "activeActorJobCount": limits.active_job_count, "teamAccountSeatCount": 0,
        },
    }


def usage_view(usage: MonthlyUsage) -> dict[str, Any]:
    """Apify's monthly usage: compute units (and, ours, the counts of runs and builds), day by day; 0 USD."""

    def services(compute_units: float, runs: int, builds: int) -> dict[str, Any]:
        return {name: {"quantity": quantity, "baseAmountUsd": 0, "baseUnitPriceUsd": 0,
                       "amountAfterVolumeDiscountUsd": 0}
                for name, quantity in (("ACTOR_COMPUTE_UNITS", compute_units), ("ACTOR_RUNS", runs),
                                       ("ACTOR_BUILDS", builds))}

    return {
        "usageCycle": {"startAt": iso(usage.start), "endAt": iso(usage.end)},
        "monthlyServiceUsage": services(usage.compute_units, usage.runs, usage.builds),
        "dailyServiceUsages": [
            {"date": iso(dt.datetime(day.date.year, day.date.month, day.date.day, tzinfo=dt.timezone.utc)),
             "serviceUsage": services(day.compute_units, day.runs, day.builds), "totalUsageCreditsUsd": 0}
            for day in usage.days],
        "totalUsageCreditsUsdBeforeVolumeDiscount": 0,
        "totalUsageCreditsUsdAfterVolumeDiscount": 0,
    }


class UserLimitsHandler(ApiHandlerMixin):
    async def get(self, ref: str) -> None:
        check_user(ref)
        self.send_data(await self.call(self._view))

    async def put(self, ref: str) -> None:
        """Set the memory quota (``maxActorMemoryGbytes``); Apify's other limits are refused unless unchanged."""
        check_user(ref)
        require(self.principal.may_manage_actors, "change the account's limits")
        body = await self.json_object(LIMITS_FIELDS, required=True)
        if body.get("maxMonthlyUsageUsd") is not None:
            raise InvalidInput("maxMonthlyUsageUsd is not supported here: nothing is charged. "
                               "Limit memory with maxActorMemoryGbytes instead.")
        retention = self.platform.account.retention_days
        if body.get("dataRetentionDays") not in (None, round(retention)):
            raise InvalidInput(f"dataRetentionDays cannot be changed through the API here: it is the server's "
                               f"retention_days setting ({retention:g} days).")
        memory_gb = body.get("maxActorMemoryGbytes")
        if memory_gb is not None:
            if isinstance(memory_gb, bool) or memory_gb <= 0:
                raise InvalidInput("maxActorMemoryGbytes must be a positive number of gigabytes, e.g. 8.")
            await self.call(self.platform.account.set_memory_limit, round(memory_gb * 1024))
        self.send_data(await self.call(self._view))

    def _view(self) -> dict[str, Any]:
        account = self.platform.account
        return limits_view(account.limits(), account.monthly_usage())


class UserMonthlyUsageHandler(ApiHandlerMixin):
    async def get(self, ref: str) -> None:
        """``date`` (YYYY-MM-DD): a day of the month to show; today's month by default."""
        check_user(ref)
        self.reject_unknown_query({"date"})
        text = self.query("date")
        try:
            day = dt.date.fromisoformat(text[:10]) if text else None
        except ValueError:
            raise InvalidInput(f"date must be a day as YYYY-MM-DD, not {str(text)[:40]!r}.") from None
        self.send_data(usage_view(await self.call(self.platform.account.monthly_usage, day)))
