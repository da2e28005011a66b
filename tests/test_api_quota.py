"""The memory quota seen through the user API: a start that does not fit is refused with Apify's
``actor-memory-limit-exceeded`` error, nothing is stored, and apify-client reports it as such."""

from __future__ import annotations

import httpx
import pytest
from apify_client import ApifyClientAsync
from apify_client.errors import ApifyApiError

from .conftest import TEST_MEMORY_MB, extension_config, define_actor, wait_until
from .test_api_hostile import SLEEPER, assert_error, snapshot

QUOTA_MB = 2 * TEST_MEMORY_MB


@pytest.fixture
def jp_server_config(tmp_path, base_image):
    return extension_config(tmp_path / "server-data", memory_limit_mb=QUOTA_MB)


async def test_start_over_the_quota_is_refused_with_apify_error_type(api_url, api_token, actors_app):
    platform = actors_app.platform
    define_actor(platform, "sleeper", SLEEPER)
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    first = await client.actor("local/sleeper").start(memory_mbytes=TEST_MEMORY_MB)
    await client.actor("local/sleeper").start(memory_mbytes=TEST_MEMORY_MB)
    before = snapshot(platform)

    with pytest.raises(ApifyApiError) as refused:
        await client.actor("local/sleeper").start(memory_mbytes=TEST_MEMORY_MB, run_input={"x": 1})
    assert refused.value.type == "actor-memory-limit-exceeded"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {api_token}"}) as raw:
        response = await raw.post(f"{api_url}/v2/actors/local~sleeper/runs?memory=128", json={"x": 1})
        error = assert_error(response, 402, "actor-memory-limit-exceeded")
        assert f"{QUOTA_MB} MB" in error["message"]
    assert snapshot(platform) == before

    # Freeing memory makes room again.
    await client.run(first.id).abort()
    wait_until(lambda: platform.get_run(first.id)["status"] == "ABORTED", 60)
    again = await client.actor("local/sleeper").start(memory_mbytes=TEST_MEMORY_MB)
    assert getattr(again.status, "value", again.status) in ("READY", "RUNNING")
    for run in platform.list_runs():
        if run["status"] in ("READY", "RUNNING"):
            await client.run(run["id"]).abort()
