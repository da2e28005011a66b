"""Nothing an actor writes may act on Jupyter's origin through the user API, and no run token reaches a log.

Every user-API response carries bytes some actor controls (records, items, logs, names in listings):
each is sandboxed and unsniffed, and record types a browser would run are downloads. The browser
side of the same promise (a real chromium opening such a record, directly and through the run's web
server) is in test_web_server.py.
"""

from __future__ import annotations

import logging

import httpx
from apify_client import ApifyClientAsync

from .test_api_sdk import create_and_build, status
from .test_web_server import start_mischief


def assert_sandboxed(response: httpx.Response) -> None:
    policy = response.headers.get("content-security-policy", "")
    assert policy.split(";")[0].strip() == "sandbox", (str(response.url), policy)
    assert "allow-same-origin" not in policy and "allow-scripts" not in policy
    assert response.headers.get("x-content-type-options") == "nosniff", str(response.url)


async def test_actor_written_bytes_come_sandboxed_and_runnable_types_as_downloads(api_url, api_token, actors_app):
    run = await start_mischief(actors_app.platform)
    store, dataset = run["default_key_value_store_id"], run["default_dataset_id"]
    auth = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers=auth, timeout=30) as client:
        for key, stored in (("attack", "text/html; charset=utf-8"), ("drawing", "image/svg+xml")):
            for method in ("GET", "HEAD"):
                record = await client.request(method, f"/key-value-stores/{store}/records/{key}")
                assert record.status_code == 200 and record.headers["content-type"] == stored
                assert record.headers["content-disposition"] == f'attachment; filename="{key}"', (method, key)
                assert_sandboxed(record)
        for key, stored in (("data", "application/json; charset=utf-8"), ("pixel", "image/png")):
            record = await client.get(f"/key-value-stores/{store}/records/{key}")
            assert record.headers["content-type"] == stored and "content-disposition" not in record.headers, key
            assert_sandboxed(record)
        for path in (f"/datasets/{dataset}/items", f"/datasets/{dataset}/items?format=csv",
                     f"/datasets/{dataset}/items?format=jsonl", f"/actor-runs/{run['id']}/log", f"/logs/{run['id']}",
                     f"/actor-runs/{run['id']}/key-value-store/records/attack", f"/key-value-stores/{store}/keys",
                     "/key-value-stores", "/datasets", f"/actor-runs/{run['id']}", "/actor-runs",
                     f"/actor-builds/{run['build_id']}/log", "/no-such-endpoint",
                     f"/key-value-stores/{store}/records/missing"):
            response = await client.get(path)
            assert response.status_code in (200, 404), (path, response.status_code)
            assert_sandboxed(response)

    # The SDK and apify-client still read the stored type back unchanged.
    records = ApifyClientAsync(token=api_token, api_url=api_url).key_value_store(store)
    attack = await records.get_record("attack")
    assert attack["content_type"] == "text/html; charset=utf-8" and "<script>" in attack["value"]
    data = await records.get_record("data")
    assert data["content_type"] == "application/json; charset=utf-8" and data["value"] == {"a": 1}


EVENTS_ACTOR = """
import asyncio, os
from apify import Actor

async def main():
    async with Actor:
        await Actor.set_value("TOKEN", os.environ["APIFY_TOKEN"], content_type="text/plain")

asyncio.run(main())
"""


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage() + (self.format(record) if record.exc_info else ""))


async def test_no_run_token_in_the_server_log(api_url, api_token, jp_serverapp):
    capture = Lines()
    loggers = [logging.getLogger(), logging.getLogger("tornado"), logging.getLogger("tornado.access"), jp_serverapp.log]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(capture)
        logger.setLevel(logging.DEBUG)
    try:
        client = ApifyClientAsync(token=api_token, api_url=api_url)
        await create_and_build(client, "events-user", EVENTS_ACTOR)
        run = await client.actor("local/events-user").call(memory_mbytes=1024, logger=None)
        assert status(run) == "SUCCEEDED", await client.run(run.id).log().get()
        token = (await client.key_value_store(run.default_key_value_store_id).get_record("TOKEN"))["value"]
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(capture)
            logger.setLevel(level)
    assert len(token) >= 20
    events = [line for line in capture.lines if f"/v2/actor-runs/{run.id}/events" in line]
    assert events, "the SDK's events socket was not logged at all (the capture misses the access log)"
    leaks = [line for line in capture.lines if token in line]
    assert not leaks, leaks[:3]
