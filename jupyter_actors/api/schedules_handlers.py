"""Schedules (``/v2/schedules``): CRUD and the log of firings; thin HTTP over platform/schedules.py."""

from __future__ import annotations

from typing import Any

from ..platform.errors import InvalidInput
from .base import ApiHandlerMixin
from .principals import require

#: Apify's schedule fields with the registry column each one sets.
SCHEDULE_FIELDS = {"name": "name", "cronExpression": "cron_expression", "timezone": "timezone",
                   "isEnabled": "is_enabled", "isExclusive": "is_exclusive", "title": "title",
                   "description": "description", "actions": "actions"}


def checked_schedule_body(body: object) -> dict[str, Any]:
    """Apify's create/update-schedule body as platform fields; ``notifications`` can only be off here."""
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object: a schedule with name, cronExpression and actions.")
    unknown = set(body) - set(SCHEDULE_FIELDS) - {"notifications"}
    if unknown:
        raise InvalidInput(f"Unknown schedule field(s): {', '.join(sorted(unknown))}. "
                           f"Allowed: {', '.join([*SCHEDULE_FIELDS, 'notifications'])}.")
    notifications = body.get("notifications")
    if notifications is not None and (not isinstance(notifications, dict) or set(notifications) - {"email"}
                                      or notifications.get("email") not in (None, False)):
        raise InvalidInput("This server sends no e-mail: notifications.email must be false or left out.")
    return {SCHEDULE_FIELDS[key]: value for key, value in body.items() if key in SCHEDULE_FIELDS}


class ScheduleAccess(ApiHandlerMixin):
    def require_manage(self, what: str) -> None:
        """Schedules are the user's: a run token may not read or change them."""
        require(self.principal.may_manage_actors, what)


class ScheduleListHandler(ScheduleAccess):
    async def get(self) -> None:
        self.require_manage("list schedules")
        self.reject_unknown_query({"offset", "limit", "desc"})
        offset, limit, desc = self.paging()
        schedules = await self.call(self.platform.list_schedules)
        if desc:
            schedules.reverse()
        page = schedules[offset: offset + limit if limit is not None else None]
        self.send_list([self.views.schedule(s) for s in page], total=len(schedules), offset=offset, limit=limit,
                       desc=desc)

    async def post(self) -> None:
        self.require_manage("create schedules")
        fields = checked_schedule_body(await self.json_body(default={}))
        schedule = await self.call(self.platform.create_schedule, fields)
        self.send_data(self.views.schedule(schedule), 201)


class ScheduleHandler(ScheduleAccess):
    async def get(self, schedule_id: str) -> None:
        self.require_manage("read schedules")
        self.send_data(self.views.schedule(await self.call(self.platform.get_schedule, schedule_id)))

    async def put(self, schedule_id: str) -> None:
        """Update what the body has; a new expression, time zone or enabling counts from now."""
        self.require_manage("change schedules")
        fields = checked_schedule_body(await self.json_body(default={}))
        self.send_data(self.views.schedule(await self.call(self.platform.update_schedule, schedule_id, fields)))

    async def delete(self, schedule_id: str) -> None:
        self.require_manage("delete schedules")
        await self.call(self.platform.delete_schedule, schedule_id)
        self.set_status(204)
        self.finish()


class ScheduleLogHandler(ScheduleAccess):
    async def get(self, schedule_id: str) -> None:
        self.require_manage("read schedules")
        entries = await self.call(self.platform.schedule_log, schedule_id)
        self.send_data([{"message": e["message"], "level": e["level"], "createdAt": e["created_at"]}
                        for e in entries])
