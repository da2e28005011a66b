"""The OpenAPI document of one build (``GET /v2/actor-builds/{id}/openapi.json``): how to run its actor.

Apify generates one per build for code generators and LLM tools; here it documents the one way this
API runs an actor (``POST /acts/{username~name}/runs``) with the build's input schema as the body.
"""

from __future__ import annotations

from typing import Any

from ..platform.input_schema import to_json_schema
from ..platform.models import USERNAME, Actor, Build

#: Apify's input-schema keywords that mean something to a reader of the document (kept beside the value ones).
DESCRIBING = ("title", "description", "default", "example")


def build_openapi(actor: Actor, build: Build, input_schema: dict[str, Any] | None, api_url: str) -> dict[str, Any]:
    """``input_schema``: the built version's (None: any JSON object); ``api_url``: the public API's base."""
    body = {"type": "object"} if input_schema is None else _described(input_schema)
    run_ref = f"{USERNAME}~{actor['name']}"
    query = [
        {"name": name, "in": "query", "required": False, "description": text, "schema": {"type": kind}}
        for name, kind, text in (
            ("build", "string", f"Build tag or number; this document is of build {build['build_number']}"),
            ("memory", "integer", "Memory in megabytes"),
            ("timeout", "integer", "Timeout in seconds"),
            ("waitForFinish", "integer", "Seconds to wait for the run to finish (at most 60)"))
    ]
    return {
        "openapi": "3.0.1",
        "info": {"title": actor["title"] or actor["name"], "description": actor["description"] or "",
                 "version": build["build_number"], "x-build-id": build["id"]},
        "servers": [{"url": f"{api_url.rstrip('/')}/v2"}],
        "paths": {f"/acts/{run_ref}/runs": {"post": {
            "operationId": "runs", "x-openai-isConsequential": False,
            "summary": f"Run {actor['title'] or actor['name']} and return the run (its storages' ids)",
            "tags": ["Run Actor"],
            "parameters": query,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/inputSchema"}}}},
            "responses": {"201": {"description": "The run", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/runsResponseSchema"}}}}},
        }}},
        "components": {"schemas": {
            "inputSchema": body,
            "runsResponseSchema": {"type": "object", "properties": {"data": {"type": "object", "properties": {
                name: {"type": "string"} for name in ("id", "actId", "status", "defaultDatasetId",
                                                      "defaultKeyValueStoreId", "defaultRequestQueueId")}}}},
        }},
    }


def _described(input_schema: dict[str, Any]) -> dict[str, Any]:
    """The input schema as plain JSON Schema (what the runs check), with each field's title and description."""
    schema = to_json_schema(input_schema)
    for name, spec in (input_schema.get("properties") or {}).items():
        prop = schema["properties"][name]
        prop.update({key: spec[key] for key in DESCRIBING if key in spec})
        if isinstance(prop.get("type"), list):  # nullable: OpenAPI 3.0 says it with a flag
            prop["type"], prop["nullable"] = prop["type"][0], True
    if not schema["required"]:
        del schema["required"]  # OpenAPI 3.0 wants a non-empty list
    return schema
