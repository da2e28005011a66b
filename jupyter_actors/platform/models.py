"""Typed records of the registry: one per table, with the columns as they are stored.

They are ``TypedDict``s so a record still is the plain ``dict`` every caller (API views, the CLI,
tests) reads today, while the type checker knows each field. Stores (``stores.py``) return them.
"""

from __future__ import annotations

from typing import TypedDict

#: The only user of a local platform (Apify's ``username``).
USERNAME = "local"


class Actor(TypedDict):
    id: str
    name: str
    username: str
    title: str | None
    description: str | None
    created_at: str
    modified_at: str
    default_build: str
    default_memory_mb: int
    default_timeout_secs: int
    min_memory_mb: int | None  # the memory range runs may ask for (actor.json minMemoryMbytes/maxMemoryMbytes)
    max_memory_mb: int | None


class Version(TypedDict):
    actor_id: str
    version_number: str
    source_type: str
    source_files: str  # JSON list of {name, format, content}
    env_vars: str  # JSON list of {name, value, isSecret}
    build_tag: str
    dockerfile: str | None
    input_schema: str | None
    dataset_schema: str | None  # JSON of actor.json storages.dataset (views), if any
    key_value_store_schema: str | None  # JSON of actor.json storages.keyValueStore (collections), if any
    created_at: str
    modified_at: str


class Build(TypedDict):
    id: str
    actor_id: str
    version_number: str
    build_number: str
    status: str
    status_message: str | None
    source_hash: str
    image: str | None
    memory_mb: int
    started_at: str
    finished_at: str | None


class Run(TypedDict):
    id: str
    actor_id: str
    build_id: str
    build_number: str
    status: str
    status_message: str | None
    status_message_terminal: int
    exit_code: int | None
    created_at: str
    started_at: str
    finished_at: str | None
    timeout_secs: int
    timeout_at: str | None
    memory_mb: int
    disk_mb: int
    cpu_cores: float
    cpu_mode: str
    input_key: str
    content_type: str | None
    default_key_value_store_id: str
    default_dataset_id: str
    default_request_queue_id: str
    token_hash: str  # sha256 of the run's API token (ids.token_hash); the token itself is never stored
    container_name: str
    container_id: str | None
    stop_intent: str | None
    origin: str
    parent_run_id: str | None
    restart_count: int
    resurrect_count: int
    options: str  # JSON object
    web_id: str | None
    web_public: int
    container_port: int | None
    host_port: int | None
    web_host: str | None
    usage: str | None  # JSON of runs.usage.RunUsage: the run's resource totals so far
    actor_task_id: str | None  # the task the run was started from, if any
    metamorphs: str  # JSON list of {createdAt, actorId, buildId, inputKey}; the last names the current actor
    reboot_count: int


class Task(TypedDict):
    id: str
    actor_id: str
    name: str
    title: str | None
    description: str | None
    options: str  # JSON object {build, timeoutSecs, memoryMbytes, restartOnError}
    input: str  # JSON object
    created_at: str
    modified_at: str


class Schedule(TypedDict):
    id: str
    name: str
    title: str | None
    description: str | None
    cron_expression: str
    timezone: str
    is_enabled: int
    is_exclusive: int
    actions: str  # JSON list of Apify's actions (RUN_ACTOR, RUN_ACTOR_TASK), each with its id
    created_at: str
    modified_at: str
    next_run_at: str | None
    last_run_at: str | None
    last_run_ids: str  # JSON list: the runs its last firing started


class ScheduleLogEntry(TypedDict):
    schedule_id: str
    created_at: str
    level: str
    message: str


class Tombstone(TypedDict):
    id: str
    kind: str  # run, key_value_stores, datasets, request_queues, build, actor
    reason: str  # expired, deleted
    deleted_at: str
