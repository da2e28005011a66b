"""Fields of Apify's actor object that apify-client can send but this platform has no counterpart for
(the Store, standby mode, pricing, per-actor run defaults it does not keep): set to anything but their
empty value, they are refused with a message, so none is silently ignored."""

from __future__ import annotations

from typing import Any

from ..platform.errors import InvalidInput

#: Field -> why it is refused; each is accepted only empty (null, false, an empty list or object).
UNSUPPORTED_ACTOR_FIELDS = {
    "isPublic": "actors are not published here (there is no Store); isPublic must be false",
    "isDeprecated": "there is no Store to deprecate an actor in; isDeprecated must be false",
    "categories": "Store categories are not supported here; leave categories empty",
    "seoTitle": "Store SEO texts are not supported here; use title and description",
    "seoDescription": "Store SEO texts are not supported here; use title and description",
    "actorStandby": "Standby mode is not supported here; leave actorStandby empty",
    "pricingInfos": "runs are not charged here; leave pricingInfos empty",
    "actorPermissionLevel": "permission levels are not supported here; leave actorPermissionLevel unset",
    "exampleRunInput": "an example run input is not kept here; put defaults in the input schema (prefill)",
    "restartOnError": "an actor-wide restartOnError is not kept here; set it per run or on a task",
}
#: ``defaultRunOptions`` fields beyond build, memory and timeout, refused likewise.
UNSUPPORTED_RUN_DEFAULTS = {
    "maxItems": "a default maxItems is not kept here; set it per run or on a task",
    "restartOnError": "a default restartOnError is not kept here; set it per run or on a task",
    "forcePermissionLevel": "permission levels are not supported here; leave forcePermissionLevel unset",
}


def refuse_unsupported_actor_fields(body: dict[str, Any]) -> None:
    """400 naming the first field set to something this platform would otherwise ignore."""
    defaults = body.get("defaultRunOptions") or {}
    for values, reasons, prefix in ((body, UNSUPPORTED_ACTOR_FIELDS, ""),
                                    (defaults, UNSUPPORTED_RUN_DEFAULTS, "defaultRunOptions.")):
        for field, why in reasons.items():
            if values.get(field) not in (None, False, [], {}):
                raise InvalidInput(f"{prefix}{field}: {why}.")
