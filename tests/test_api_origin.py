"""Nothing an actor writes may act on Jupyter's origin through the user API, and no run token reaches a log.

Every user-API response carries bytes some actor controls (records, items, logs, names in listings):
each is sandboxed and unsniffed, and record types a browser would run are downloads. The browser
side of the same promise (a real chromium opening such a record, directly and through the run's web
server) is in test_web_server.py.
"""

from __future__ import annotations

import httpx
from apify_client import ApifyClientAsync

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
