"""The developer API through the real apify-client: versions changed and deleted, their environment
variables (secret values reach the run, never the API)."""

from __future__ import annotations

import httpx
import pytest
from apify_client import ApifyClientAsync
from apify_client.errors import ApifyApiError

from .conftest import TEST_MEMORY_MB
from .test_api_sdk import source_version, status

#: Stores the variables it sees, as its container sees them.
ENV_ECHO = """
import asyncio, os
from apify import Actor

async def main():
    async with Actor:
        await Actor.set_value("OUTPUT", {name: os.environ.get(name) for name in ("PLAIN", "SECRET", "RENAMED")})

asyncio.run(main())
"""


async def run_output(client: ApifyClientAsync, actor_id: str) -> dict:
    await client.actor(actor_id).build(version_number="0.0", wait_for_finish=60)
    run = await client.actor(actor_id).call(memory_mbytes=TEST_MEMORY_MB, logger=None)
    assert status(run) == "SUCCEEDED", await client.run(run.id).log().get()
    return (await client.key_value_store(run.default_key_value_store_id).get_record("OUTPUT"))["value"]


async def test_versions_and_env_vars(api_url, api_token, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    actor = await client.actors().create(name="dev-env", versions=[source_version(ENV_ECHO)])
    version = client.actor(actor.id).version("0.0")
    env_vars = version.env_vars()

    plain = await env_vars.create(name="PLAIN", value="visible")
    secret = await env_vars.create(name="SECRET", value="s3cret", is_secret=True)
    assert (plain.value, plain.is_secret) == ("visible", False)
    assert (secret.value, secret.is_secret) == (None, True)  # never shown, not even when created
    listed = await env_vars.list()
    assert [(v.name, v.value, v.is_secret) for v in listed.items] == [("PLAIN", "visible", False),
                                                                      ("SECRET", None, True)]
    assert (await version.env_var("SECRET").get()).value is None
    assert await version.env_var("NOPE").get() is None
    assert all(v.value is None for v in (await version.get()).env_vars if v.is_secret)
    with pytest.raises(ApifyApiError, match="exists already"):
        await env_vars.create(name="PLAIN", value="again")
    with pytest.raises(ApifyApiError, match="not allowed"):
        await env_vars.create(name="BAD-NAME", value="x")
    assert await run_output(client, actor.id) == {"PLAIN": "visible", "SECRET": "s3cret", "RENAMED": None}

    # Change (and rename) one; the secret is changed through the version, sent back as listed (no value).
    renamed = await version.env_var("PLAIN").update(name="RENAMED", value="changed")
    assert (renamed.name, renamed.value) == ("RENAMED", "changed")
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        shown = (await http.get(f"/acts/{actor.id}/versions/0.0")).json()["data"]
        response = await http.put(f"/acts/{actor.id}/versions/0.0", json={"envVars": shown["envVars"],
                                                                           "buildTag": "beta"})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["buildTag"] == "beta"
        for body, words in (({"versionNumber": "1.0"}, "fixed"), ({"gitRepoUrl": "https://x"}, "gitRepoUrl"),
                            ({"applyEnvVarsToBuild": True}, "applyEnvVarsToBuild"),
                            ({"sourceCode": "x"}, "sourceCode")):
            refused = await http.put(f"/acts/{actor.id}/versions/0.0", json=body)
            assert refused.status_code == 400 and words in refused.json()["error"]["message"], refused.text
    assert await run_output(client, actor.id) == {"PLAIN": None, "SECRET": "s3cret", "RENAMED": "changed"}
    await version.env_var("SECRET").delete()
    assert [v.name for v in (await env_vars.list()).items] == ["RENAMED"]

    # New source files through the client's version update; a second version, deleted; the last one stays.
    updated = await version.update(source_files=source_version("print('v2')\n")["sourceFiles"])
    assert updated.source_files[0].content == "print('v2')\n" and updated.build_tag == "beta"
    assert [v.name for v in updated.env_vars] == ["RENAMED"]
    await client.actor(actor.id).versions().create(version_number="0.1", source_type="SOURCE_FILES",
                                                   source_files=source_version("print(1)\n")["sourceFiles"])
    await client.actor(actor.id).version("0.1").delete()
    assert [v.version_number for v in (await client.actor(actor.id).versions().list()).items] == ["0.0"]
    with pytest.raises(ApifyApiError, match="only version"):
        await version.delete()
