"""The actor's input schema is enforced on every start, as Apify does: defaults filled in, each bad field named."""

from __future__ import annotations

import httpx
import pytest
from apify_client import ApifyClientAsync
from apify_client.errors import ApifyApiError

from jupyter_actors.platform.errors import InvalidInput
from jupyter_actors.platform.input_schema import check_input, schema_problems

SCHEMA = {
    "title": "Crawl", "type": "object", "schemaVersion": 1,
    "properties": {
        "url": {"title": "URL", "type": "string", "editor": "textfield", "pattern": "^https?://",
                "prefill": "https://example.com", "sectionCaption": "Where"},
        "count": {"title": "Count", "type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "mode": {"title": "Mode", "type": "string", "enum": ["fast", "slow"], "enumTitles": ["Fast", "Slow"],
                 "nullable": True},
        "tags": {"title": "Tags", "type": "array", "editor": "stringList"},
        "sources": {"title": "Start URLs", "type": "array", "editor": "requestListSources"},
        "password": {"title": "Password", "type": "string", "isSecret": True, "editor": "textfield",
                     "minLength": 8},
    },
    "required": ["url"],
}
MAIN = "from apify import Actor\nimport asyncio\n\nasync def main():\n    async with Actor:\n" \
       "        await Actor.set_value('GOT', await Actor.get_input())\n\nasyncio.run(main())\n"


def test_defaults_are_filled_and_every_bad_field_is_named():
    ok = check_input(SCHEMA, {"url": "https://a.b", "mode": None})
    assert ok.valid and ok.value == {"url": "https://a.b", "mode": None, "count": 3}
    assert "url" not in check_input(SCHEMA, {"url": "https://x"}).value.get("prefill", {})  # prefill is UI only
    bad = check_input(SCHEMA, {"count": 11, "mode": "medium", "tags": ["a", 1],
                               "sources": [{"url": "https://a"}, {"method": "GET"}], "password": "s3cr"})
    text = "; ".join(bad.errors)
    assert not bad.valid
    for field in ("input.url is required", "input.count", "input.mode", "input.tags[1]", "input.sources[1]",
                  "input.password"):
        assert field in text, (field, text)
    assert "s3cr" not in text  # a secret's value is never echoed
    assert check_input(SCHEMA, [1, 2]).errors == ["Field input must be a JSON object, not list"]


def test_a_broken_schema_is_refused_with_what_to_fix():
    assert schema_problems({"type": "object", "properties": {"n": {"type": "integer", "editor": "textarea"}}})
    assert schema_problems({"properties": {"n": {"title": "no type"}}})
    assert schema_problems(SCHEMA) == []
    with pytest.raises(InvalidInput, match="input schema is not valid"):
        check_input({"properties": {"n": {"type": "integer", "isSecret": True}}}, {})


async def test_starts_and_validate_input_enforce_the_schema(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    version = {"versionNumber": "0.0", "sourceType": "SOURCE_FILES", "buildTag": "latest", "inputSchema": SCHEMA,
               "sourceFiles": [{"name": "main.py", "format": "TEXT", "content": MAIN}]}
    await client.actors().create(name="crawl", versions=[version])
    actor = client.actor("local/crawl")

    # Before any build, validate-input checks against the newest version's schema.
    assert await actor.validate_input({"url": "https://example.com"}) is True
    with pytest.raises(ApifyApiError) as refused:
        await actor.validate_input({"count": 0, "password": "short"})
    assert refused.value.status_code == 400 and refused.value.type == "invalid-input"
    for field in ("input.url is required", "input.count", "input.password"):
        assert field in refused.value.message
    assert "short" not in refused.value.message

    build = await actor.build(version_number="0.0", wait_for_finish=120)
    assert (build.status.value if hasattr(build.status, "value") else build.status) == "SUCCEEDED"
    headers = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers=headers, timeout=60) as http:
        stores_before = (await http.get("/key-value-stores")).json()["data"]["total"]
        for body in ({"url": "ftp://nope", "count": "3"}, None):
            response = await http.post("/acts/crawl/runs", json=body)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["type"] == "invalid-input" and "input.url" in error["message"]
        text = await http.post("/acts/crawl/runs", content=b"plain", headers={"Content-Type": "text/plain"})
        assert text.status_code == 400 and "application/json" in text.json()["error"]["message"]
        # Nothing was started or stored for the refused starts.
        assert (await http.get("/actor-runs")).json()["data"]["total"] == 0
        assert (await http.get("/key-value-stores")).json()["data"]["total"] == stores_before

    run = await actor.call(run_input={"url": "https://example.com", "tags": ["x"]}, memory_mbytes=1024,
                           logger=None)
    assert (run.status.value if hasattr(run.status, "value") else run.status) == "SUCCEEDED"
    store = client.key_value_store(run.default_key_value_store_id)
    expected = {"url": "https://example.com", "tags": ["x"], "count": 3}
    assert (await store.get_record("INPUT"))["value"] == expected
    assert (await store.get_record("GOT"))["value"] == expected  # the actor saw the defaults too
