"""Registry rows and storage metadata turned into Apify's JSON objects (camelCase, tz-aware, valid URLs)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ..platform.clock import iso, parse_iso, utcnow
from ..platform.core import USERNAME, Platform
from ..platform.lifecycle import RunStatus
from ..platform.models import Actor, Build, Run, Schedule, Task, Version
from ..platform.runs.handover import metamorphs
from ..platform.runs.usage import RunUsage

#: What crawlee's ``Request`` model needs present (it calls ``headers.items()``): a request added with
#: just a url, by apify-client or plain HTTP, must still come back with these when the SDK reads it.
REQUEST_DEFAULTS = {"method": "GET", "retryCount": 0, "noRetry": False, "headers": {}, "userData": {}}


def iso_ms(at_ms: int) -> str:
    """Unix milliseconds as Apify's ISO UTC time with milliseconds."""
    return iso(dt.datetime.fromtimestamp(at_ms / 1000, tz=dt.timezone.utc)) or ""


class Views:
    def __init__(self, platform: Platform, public_api_url: str) -> None:
        self.platform = platform
        self.api_url = public_api_url.rstrip("/")

    def console_url(self, kind: str, id_: str) -> str:
        return f"{self.api_url}/v2/{kind}/{id_}"

    def run(self, row: Run) -> dict[str, Any]:
        started = parse_iso(row["started_at"])
        finished = parse_iso(row["finished_at"])
        end = finished or utcnow()
        duration_ms = int((end - started).total_seconds() * 1000) if started else 0
        options = json.loads(row.get("options") or "{}")
        return {
            "id": row["id"],
            "actId": row["actor_id"],
            "userId": USERNAME,
            "actorTaskId": row.get("actor_task_id"),
            "startedAt": row["started_at"],
            "finishedAt": row["finished_at"],
            "status": row["status"],
            "statusMessage": row["status_message"],
            "isStatusMessageTerminal": bool(row["status_message_terminal"]),
            "meta": {"origin": row["origin"]},
            "stats": {
                "durationMillis": duration_ms,
                "runTimeSecs": duration_ms / 1000,
                "restartCount": row["restart_count"],
                "resurrectCount": row["resurrect_count"],
                "rebootCount": row["reboot_count"],
                "metamorph": len(metamorphs(row)),
                "computeUnits": row["memory_mb"] / 1024 * duration_ms / 3_600_000,
                **RunUsage.loads(row.get("usage")).stats(running=not RunStatus(row["status"]).is_terminal),
            },
            "options": {
                "build": options.get("build") or "latest",
                "timeoutSecs": row["timeout_secs"],
                "memoryMbytes": row["memory_mb"],
                "diskMbytes": row["disk_mb"],
                "cpuCores": row["cpu_cores"],
                "cpuMode": row["cpu_mode"],
                **({"maxItems": options["maxItems"]} if options.get("maxItems") is not None else {}),
                "restartOnError": bool(options.get("restartOnError")),
            },
            "buildId": row["build_id"],
            "buildNumber": row["build_number"],
            "exitCode": row["exit_code"],
            "defaultKeyValueStoreId": row["default_key_value_store_id"],
            "defaultDatasetId": row["default_dataset_id"],
            "defaultRequestQueueId": row["default_request_queue_id"],
            "timeoutAt": row["timeout_at"],
            "parentRunId": row["parent_run_id"],
            "usage": {},
            "usageTotalUsd": 0,
            "consoleUrl": self.console_url("actor-runs", row["id"]),
            "containerUrl": self.platform.web_url(row),
            "webServerPublic": bool(row.get("web_public")),
            "isTerminal": RunStatus(row["status"]).is_terminal,
            "metamorphs": metamorphs(row),  # the last one names the actor the run's container runs now
        }

    def stats_samples(self, row: Run, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """The run's sampled memory and CPU series with the limits they are plotted against (beyond Apify)."""
        return {
            "runId": row["id"],
            "memoryLimitBytes": row["memory_mb"] * 1024 * 1024,
            "cpuCores": row["cpu_cores"],
            "intervalSecs": self.platform.config.usage_sample_secs,
            "count": len(samples),
            "items": [{"at": iso_ms(sample["at_ms"]), "memBytes": sample["mem_bytes"],
                       "cpuUsage": sample["cpu_usage"]} for sample in samples],
        }

    def build(self, row: Build) -> dict[str, Any]:
        return {
            "id": row["id"],
            "actId": row["actor_id"],
            "userId": USERNAME,
            "startedAt": row["started_at"],
            "finishedAt": row["finished_at"],
            "status": row["status"],
            "statusMessage": row["status_message"],
            "meta": {"origin": "API"},
            "stats": {},
            "options": {"memoryMbytes": row["memory_mb"], "useCache": True},
            "buildNumber": row["build_number"],
            "usage": {},
            "usageTotalUsd": 0,
            "imageName": row["image"],
            "consoleUrl": self.console_url("actor-builds", row["id"]),
        }

    @staticmethod
    def env_var(var: dict[str, Any]) -> dict[str, Any]:
        """A version's environment variable as Apify shows it: a secret one without its value."""
        secret = bool(var.get("isSecret"))
        return {"name": var["name"], "isSecret": secret, **({} if secret else {"value": var.get("value", "")})}

    def version(self, row: Version, *, with_files: bool = True) -> dict[str, Any]:
        env_vars = [self.env_var(var) for var in json.loads(row["env_vars"])]
        view = {
            "versionNumber": row["version_number"],
            "sourceType": row["source_type"],
            "buildTag": row["build_tag"],
            "envVars": env_vars,
            "applyEnvVarsToBuild": False,
        }
        if with_files:
            view["sourceFiles"] = json.loads(row["source_files"])
        input_schema = row["input_schema"]
        if input_schema:
            view["inputSchema"] = json.loads(input_schema)
        return view

    def actor(self, row: Actor, versions: list[Version], tags: dict[str, str],
              builds: dict[str, Build]) -> dict[str, Any]:
        """``builds``: the actor's builds by id (for its tagged builds)."""
        tagged = {}
        for tag, build_id in tags.items():
            build = builds.get(build_id)
            if build:
                tagged[tag] = {"buildId": build_id, "buildNumber": build["build_number"],
                               "finishedAt": build["finished_at"]}
        return {
            "id": row["id"],
            "userId": USERNAME,
            "name": row["name"],
            "username": row["username"],
            "title": row["title"],
            "description": row["description"],
            "isPublic": False,
            "createdAt": row["created_at"],
            "modifiedAt": row["modified_at"],
            "stats": {},
            "versions": [self.version(version, with_files=False) for version in versions],
            "defaultRunOptions": {
                "build": row["default_build"],
                "timeoutSecs": row["default_timeout_secs"],
                "memoryMbytes": row["default_memory_mb"],
            },
            "taggedBuilds": tagged,
        }

    def task(self, row: Task, actor: Actor, total_runs: int) -> dict:
        """Apify's task object (also its list item: ``actName`` and ``actUsername`` included)."""
        return {
            "id": row["id"],
            "userId": USERNAME,
            "actId": row["actor_id"],
            "actName": actor["name"],
            "actUsername": actor["username"],
            "name": row["name"],
            "username": USERNAME,
            "title": row["title"],
            "description": row["description"],
            "createdAt": row["created_at"],
            "modifiedAt": row["modified_at"],
            "stats": {"totalRuns": total_runs},
            "options": json.loads(row["options"]),
            "input": json.loads(row["input"]),
            "isPublic": False,
            "consoleUrl": self.console_url("actor-tasks", row["id"]),
        }

    def schedule(self, row: Schedule) -> dict:
        """Apify's schedule object (also its list item)."""
        return {
            "id": row["id"],
            "userId": USERNAME,
            "name": row["name"],
            "title": row["title"],
            "description": row["description"],
            "cronExpression": row["cron_expression"],
            "timezone": row["timezone"],
            "isEnabled": bool(row["is_enabled"]),
            "isExclusive": bool(row["is_exclusive"]),
            "createdAt": row["created_at"],
            "modifiedAt": row["modified_at"],
            "nextRunAt": row["next_run_at"],
            "lastRunAt": row["last_run_at"],
            "notifications": {"email": False},
            "actions": json.loads(row["actions"]),
            "consoleUrl": self.console_url("schedules", row["id"]),
        }

    def request(self, body: dict) -> dict:
        """A stored request as the SDKs read it: missing or null fields get crawlee's defaults, other nulls
        are left out (JavaScript crawlee's Request refuses ``handledAt: null`` and the like)."""
        present = {key: value for key, value in body.items() if value is not None}
        return {**present, **{key: value for key, value in REQUEST_DEFAULTS.items() if key not in present}}

    def storage(self, kind: str, meta: dict) -> dict:
        """Storage metadata from the storage layer, with the fields Apify's clients require."""
        view = {**meta, "userId": USERNAME, "username": USERNAME, "consoleUrl": self.console_url(kind, meta["id"])}
        if kind == "key-value-stores":
            view["keysPublicUrl"] = f"{self.console_url(kind, meta['id'])}/keys"
        if kind == "datasets":
            view.setdefault("cleanItemCount", meta.get("itemCount", 0))
        if kind == "request-queues":
            view.setdefault("hadMultipleClients", False)
        return view
