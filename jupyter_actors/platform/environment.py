"""The environment variables a run's container sees: the seed's APIFY_* names and the modern ACTOR_* ones.

A variable whose service does not answer yet is left out: the real SDK refuses to start when, for
example, the events URL is set but unreachable.
"""

from __future__ import annotations

import json
from typing import Any

from .clock import iso, parse_iso
from .models import Actor, Build, Run


def run_environment(run: Run, actor: Actor, build: Build, token: str, *, api_url: str | None, events_url: str | None,
                    container_url: str | None, container_port: int, custom: list[dict[str, Any]],
                    persist_state_interval_secs: float = 60.0, proxy: dict[str, str] | None = None,
                    public_api_url: str | None = None) -> dict[str, str]:
    """``proxy``: the APIFY_PROXY_* variables of the runs' proxy (none when it is not served).
    ``public_api_url``: where the user reaches the API, for the public URLs the SDKs make (default: api_url)."""
    started_at = iso(parse_iso(run["started_at"])) or ""
    timeout_at = iso(parse_iso(run["timeout_at"])) if run["timeout_at"] else ""
    max_items = json.loads(run.get("options") or "{}").get("maxItems")
    pairs: dict[tuple[str, ...], str | None] = {
        ("APIFY_ACTOR_ID", "ACTOR_ID"): actor["id"],
        ("APIFY_ACTOR_RUN_ID", "ACTOR_RUN_ID"): run["id"],
        ("APIFY_ACTOR_TASK_ID", "ACTOR_TASK_ID"): run.get("actor_task_id") or "",
        ("APIFY_ACTOR_BUILD_ID", "ACTOR_BUILD_ID"): build["id"],
        ("APIFY_ACTOR_BUILD_NUMBER", "ACTOR_BUILD_NUMBER"): build["build_number"],
        ("ACTOR_FULL_NAME",): f"{actor['username']}/{actor['name']}",
        ("APIFY_DEFAULT_DATASET_ID", "ACTOR_DEFAULT_DATASET_ID"): run["default_dataset_id"],
        ("APIFY_DEFAULT_KEY_VALUE_STORE_ID", "ACTOR_DEFAULT_KEY_VALUE_STORE_ID"): run["default_key_value_store_id"],
        ("APIFY_DEFAULT_REQUEST_QUEUE_ID", "ACTOR_DEFAULT_REQUEST_QUEUE_ID"): run["default_request_queue_id"],
        ("APIFY_INPUT_KEY", "ACTOR_INPUT_KEY"): run["input_key"],
        ("APIFY_HEADLESS",): "1",
        ("APIFY_IS_AT_HOME",): "1",
        ("APIFY_MEMORY_MBYTES", "ACTOR_MEMORY_MBYTES"): str(run["memory_mb"]),
        ("APIFY_DEDICATED_CPUS",): f"{run['cpu_cores']:g}",
        ("APIFY_STARTED_AT", "ACTOR_STARTED_AT"): started_at,
        ("APIFY_TIMEOUT_AT", "ACTOR_TIMEOUT_AT"): timeout_at,
        ("APIFY_TOKEN",): token,
        ("APIFY_USER_ID",): actor["username"],
        ("APIFY_CONTAINER_PORT", "ACTOR_WEB_SERVER_PORT"): str(container_port),
        ("APIFY_CONTAINER_URL", "ACTOR_WEB_SERVER_URL"): container_url,
        ("APIFY_ACTOR_EVENTS_WS_URL", "ACTOR_EVENTS_WEBSOCKET_URL"): events_url,
        # Apify's maxItems as Apify hands it to the actor (None: unset, left out).
        ("APIFY_MAX_PAID_DATASET_ITEMS", "ACTOR_MAX_PAID_DATASET_ITEMS"):
            str(max_items) if max_items is not None else None,
        ("APIFY_API_BASE_URL",): api_url,
        # Public URLs (Actor.get_public_url, signed) are for the user's browser: the user-facing API.
        ("APIFY_API_PUBLIC_BASE_URL",): public_api_url.rstrip("/") if public_api_url else api_url,
        ("APIFY_PERSIST_STATE_INTERVAL_MILLIS", "CRAWLEE_PERSIST_STATE_INTERVAL_MILLIS"):
            str(int(persist_state_interval_secs * 1000)),
    }
    env: dict[str, str] = {}
    for names, value in pairs.items():
        if value is None:
            continue
        for name in names:
            env[name] = value
    env.update(proxy or {})
    # Per-version variables (Apify's envVars) may override defaults such as APIFY_CONTAINER_PORT (or point
    # APIFY_PROXY_* at another proxy).
    for variable in custom:
        env[variable["name"]] = str(variable.get("value", ""))
    return env
