"""The developer API through the real apify-client: versions changed and deleted, their environment
variables (secret values reach the run, never the API)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from apify_client import ApifyClientAsync
from apify_client.errors import ApifyApiError
from openapi_spec_validator import validate as validate_document

from jupyter_actors.platform.account import Account
from jupyter_actors.platform.quota import Admission

from .conftest import TEST_MEMORY_MB, wait_until
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
                            ({"envVars": [{"name": "NEW", "isSecret": True}]}, "needs a value"),
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


#: A build that logs a line every 0.1 s for a minute: long enough to abort, chatty enough to stop at once.
SLOW_DOCKERFILE = """ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN for i in $(seq 1 600); do echo dev-slow-tick-$i; sleep 0.1; done
"""


def tick_containers(docker_client) -> list:
    return [c for c in docker_client.containers.list(all=True)
            if "dev-slow-tick" in " ".join(c.attrs["Config"].get("Cmd") or [])]


async def test_builds_listed_default_and_aborted(api_url, api_token, actors_app, docker_client):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await client.actors().create(name="dev-quick", versions=[source_version("print('quick')\n")])
    quick = await client.actor("local~dev-quick").build(version_number="0.0", wait_for_finish=60)
    assert status(quick) == "SUCCEEDED"
    slow_actor = await client.actors().create(name="dev-slow", versions=[{
        "versionNumber": "0.0", "sourceType": "SOURCE_FILES", "buildTag": "latest",
        "sourceFiles": [{"name": "Dockerfile", "format": "TEXT", "content": SLOW_DOCKERFILE}]}])

    # The default build: the one the default tag names, waited for with waitForFinish.
    default = await client.actor("local~dev-quick").default_build(wait_for_finish=5)
    assert (await default.get()).id == quick.id
    with pytest.raises(ApifyApiError, match="no build"):
        await client.actor(slow_actor.id).default_build()

    # A running build aborted: it ends ABORTED, its log says so, the engine's build step is gone.
    slow = await client.actor(slow_actor.id).build(version_number="0.0")
    assert status(slow) == "RUNNING"

    async def ticking():
        while "dev-slow-tick-3" not in (await client.build(slow.id).log().get() or ""):
            await asyncio.sleep(0.1)

    await asyncio.wait_for(ticking(), 120)
    assert tick_containers(docker_client)  # the engine runs the step
    await client.build(slow.id).abort()
    aborted = await client.build(slow.id).wait_for_finish(wait_duration=timedelta(seconds=120))
    assert status(aborted) == "ABORTED" and aborted.finished_at is not None
    assert "aborted" in (await client.build(slow.id).log().get())
    wait_until(lambda: not tick_containers(docker_client), 60)
    # A finished build is answered as it is (Apify), unchanged.
    assert status(await client.build(quick.id).abort()) == "SUCCEEDED"
    assert status(await client.build(slow.id).abort()) == "ABORTED"

    # Every build of every actor, paged.
    listed = await client.builds().list()
    assert [b.id for b in listed.items] == [quick.id, slow.id] and listed.total == 2
    newest = await client.builds().list(desc=True, limit=1)
    assert [b.id for b in newest.items] == [slow.id] and newest.total == 2
    assert [b.id for b in (await client.builds().list(offset=1)).items] == [slow.id]


async def test_build_openapi_document_runs_the_actor(api_url, api_token, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    schema = {"title": "Greeter", "type": "object", "schemaVersion": 1, "required": ["name"], "properties": {
        "name": {"title": "Name", "type": "string", "description": "Whom to greet", "editor": "textfield",
                 "prefill": "Ada"},
        "times": {"title": "Times", "type": "integer", "minimum": 1, "default": 1, "editor": "number",
                  "nullable": True}}}
    main = ("import asyncio\nfrom apify import Actor\n\nasync def main():\n    async with Actor:\n"
            "        i = await Actor.get_input()\n        await Actor.set_value('OUTPUT', i['name'] * i['times'])\n\n"
            "asyncio.run(main())\n")
    await client.actors().create(name="dev-openapi", title="Dev greeter",
                                 versions=[{**source_version(main), "inputSchema": schema}])
    build = await client.actor("local~dev-openapi").build(version_number="0.0", wait_for_finish=60)
    document = await client.build(build.id).get_open_api_definition()
    validate_document(document)
    assert document["info"]["title"] == "Dev greeter" and document["info"]["x-build-id"] == build.id
    body = document["components"]["schemas"]["inputSchema"]
    assert body["required"] == ["name"] and "editor" not in body["properties"]["name"]
    assert body["properties"]["name"]["description"] == "Whom to greet"
    assert body["properties"]["times"] == {"type": "integer", "nullable": True, "minimum": 1, "default": 1,
                                           "title": "Times"}

    # The document is true: the operation it describes runs the actor.
    (path, item), = document["paths"].items()
    url = document["servers"][0]["url"] + path
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {api_token}"}, timeout=90) as http:
        response = await http.post(url, params={"memory": TEST_MEMORY_MB, "waitForFinish": 60},
                                   json={"name": "ab", "times": 2})
        assert response.status_code == 201, response.text
        run = response.json()["data"]
        assert run["status"] == "SUCCEEDED"
        refused = await http.post(url, params={"memory": TEST_MEMORY_MB}, json={"times": 2})
        assert refused.status_code == 400 and "name" in refused.json()["error"]["message"]
        missing = await http.get(f"{api_url}/v2/actor-builds/nope/openapi.json")
        assert missing.status_code == 404
    assert (await client.key_value_store(run["defaultKeyValueStoreId"]).get_record("OUTPUT"))["value"] == "abab"


async def test_limits_and_monthly_usage(api_url, api_token, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    user = client.user()
    platform = actors_app.platform
    limits = await user.limits()
    assert limits.limits.max_actor_memory_gbytes == platform.config.memory_limit_mb / 1024
    assert (limits.current.actor_count, limits.current.monthly_actor_compute_units) == (0, 0)
    empty = await user.monthly_usage()
    assert empty.monthly_service_usage["ACTOR_COMPUTE_UNITS"].quantity == 0 and empty.daily_service_usages == []
    assert (empty.usage_cycle.start_at.day, empty.usage_cycle.start_at.hour) == (1, 0)

    # A build and a run: their compute units (GB x hours, as the run's stats say), counted on their day.
    await client.actors().create(name="dev-usage", versions=[source_version("import time\ntime.sleep(1)\n")])
    build = await client.actor("local~dev-usage").build(version_number="0.0", wait_for_finish=60)
    run = await client.actor("local~dev-usage").call(memory_mbytes=TEST_MEMORY_MB, logger=None)
    assert status(run) == "SUCCEEDED"
    build_units = (build.options.memory_mbytes / 1024
                   * (build.finished_at - build.started_at).total_seconds() / 3600)
    expected = run.stats.compute_units + build_units
    usage = await user.monthly_usage()
    services = usage.monthly_service_usage
    assert services["ACTOR_COMPUTE_UNITS"].quantity == pytest.approx(expected, rel=1e-3)
    assert (services["ACTOR_RUNS"].quantity, services["ACTOR_BUILDS"].quantity) == (1, 1)
    (today,) = usage.daily_service_usages
    assert today.date.date() == run.started_at.date()
    assert today.service_usage["ACTOR_COMPUTE_UNITS"].quantity == pytest.approx(expected, rel=1e-3)
    assert usage.total_usage_credits_usd_after_volume_discount == 0
    limits = await user.limits()
    assert limits.current.actor_count == 1 and limits.current.active_actor_job_count == 0
    assert limits.current.monthly_actor_compute_units == pytest.approx(expected, rel=1e-3)

    # Apify's writable limits: refused unless unchanged; the memory quota (ours) is set and outlives restarts.
    with pytest.raises(ApifyApiError, match="nothing is charged"):
        await user.update_limits(max_monthly_usage_usd=100)
    with pytest.raises(ApifyApiError, match="retention_days"):
        await user.update_limits(data_retention_days=limits.limits.data_retention_days + 1)
    await user.update_limits(data_retention_days=limits.limits.data_retention_days)
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        for body, words in (({"maxActorMemoryGbytes": 0}, "positive"), ({"maxActorMemoryGbytes": 0.05}, "128 MB"),
                            ({"maxActorMemoryGbytes": "8"}, "maxActorMemoryGbytes"), ({"nope": 1}, "nope")):
            refused = await http.put("/users/me/limits", json=body)
            assert refused.status_code == 400 and words in refused.json()["error"]["message"], refused.text
        changed = await http.put("/users/me/limits", json={"maxActorMemoryGbytes": 0.5})
        assert changed.status_code == 200 and changed.json()["data"]["limits"]["maxActorMemoryGbytes"] == 0.5
        over = await http.post("/acts/local~dev-usage/runs", params={"memory": TEST_MEMORY_MB})
        assert over.status_code == 402 and "512 MB" in over.json()["error"]["message"], over.text
        for query, code in (("?date=2001-02-03", 200), ("?date=yesterday", 400), ("?month=1", 400)):
            response = await http.get(f"/users/me/usage/monthly{query}")
            assert response.status_code == code, response.text
        past = (await http.get("/users/me/usage/monthly?date=2001-02-03")).json()["data"]
        assert past["usageCycle"] == {"startAt": "2001-02-01T00:00:00.000Z", "endAt": "2001-02-28T23:59:59.999Z"}
        assert past["dailyServiceUsages"] == []
        assert (await http.get("/users/someone/limits")).status_code == 404
    restarted = Admission(platform.stores.runs, platform.config.memory_limit_mb)
    Account(platform.stores, restarted, retention_days=platform.config.retention_days)
    assert restarted.limit_mb == 512


async def test_actor_renamed_and_its_tags_moved(api_url, api_token, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    actor = await client.actors().create(name="dev-tags", versions=[source_version("print('zero')\n")])
    first = await client.actor(actor.id).build(version_number="0.0", wait_for_finish=60)
    await client.actor(actor.id).versions().create(
        version_number="0.1", source_type="SOURCE_FILES", build_tag="beta",
        source_files=[{"name": "main.py", "format": "TEXT", "content": "print('one')\n"}])
    second = await client.actor(actor.id).build(version_number="0.1", wait_for_finish=60)
    assert status(first) == status(second) == "SUCCEEDED"
    other = await client.actors().create(name="dev-other", versions=[source_version("print('other')\n")])
    foreign = await client.actor(other.id).build(version_number="0.0", wait_for_finish=60)
    run = await client.actor(actor.id).call(memory_mbytes=TEST_MEMORY_MB, logger=None)
    assert run.build_id == first.id

    # taggedBuilds: latest moves to the second build, beta is removed; runs of `latest` use the second build.
    updated = await client.actor(actor.id).update(tagged_builds={"latest": {"buildId": second.id}})
    assert {tag: value.build_id for tag, value in updated.tagged_builds.items()} == {"latest": second.id,
                                                                                      "beta": second.id}
    # apify-client drops None from the body (_clean_json_payload), so removing a tag is sent as Apify documents it.
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        response = await http.put(f"/acts/{actor.id}", json={"taggedBuilds": {"beta": None}})
    assert response.status_code == 200, response.text
    tags = response.json()["data"]["taggedBuilds"]
    assert list(tags) == ["latest"] and tags["latest"]["buildId"] == second.id
    moved = await client.actor(actor.id).call(build="latest", memory_mbytes=TEST_MEMORY_MB, logger=None)
    assert moved.build_id == second.id and status(moved) == "SUCCEEDED"
    with pytest.raises(ApifyApiError, match="beta"):
        await client.actor(actor.id).start(build="beta", memory_mbytes=TEST_MEMORY_MB)
    for tagged, words in (({"latest": {"buildId": foreign.id}}, "not a build of this actor"),
                          ({"latest": {"buildId": "nope"}}, "not a build of this actor"),
                          ({"latest": "x"}, "buildId")):
        with pytest.raises(ApifyApiError, match=words) as refused:
            await client.actor(actor.id).update(tagged_builds=tagged)
        assert refused.value.status_code == 400
    assert set((await client.actor(actor.id).get()).tagged_builds) == {"latest"}  # nothing changed

    # A rename keeps the id, the runs and the builds; the new name (and username~name) resolves, the old does not.
    renamed = await client.actor(actor.id).update(name="dev-renamed", title="Renamed")
    assert (renamed.id, renamed.name, renamed.title) == (actor.id, "dev-renamed", "Renamed")
    for ref in ("dev-renamed", "local~dev-renamed", actor.id):
        assert (await client.actor(ref).get()).id == actor.id
    assert await client.actor("dev-tags").get() is None
    assert {r.id for r in (await client.actor("dev-renamed").runs().list()).items} == {run.id, moved.id}
    assert {b.id for b in (await client.actor("dev-renamed").builds().list()).items} == {first.id, second.id}
    assert (await client.actor("dev-renamed").call(memory_mbytes=TEST_MEMORY_MB, logger=None)).build_id == second.id
    # The old name is free again: an actor made with it builds its own image; the renamed one's builds keep theirs.
    reused = await client.actors().create(name="dev-tags", versions=[source_version("print('reused')\n")])
    reused_build = await client.actor(reused.id).build(version_number="0.0", wait_for_finish=60)
    assert reused_build.build_number == first.build_number == "0.0.1"
    images = {build_id: actors_app.platform.get_build(build_id)["image"] for build_id in (first.id, reused_build.id)}
    assert images[first.id] != images[reused_build.id], images
    old_build = await client.actor("dev-renamed").call(build="0.0.1", memory_mbytes=TEST_MEMORY_MB, logger=None)
    assert "zero" in await client.run(old_build.id).log().get()
    with pytest.raises(ApifyApiError, match="exists already") as clash:
        await client.actor(actor.id).update(name="dev-other")
    assert clash.value.status_code == 409 and clash.value.type == "actor-name-not-unique"
    with pytest.raises(ApifyApiError, match="not allowed") as bad:
        await client.actor(actor.id).update(name="Bad Name")
    assert bad.value.status_code == 400
    assert (await client.actor(actor.id).get()).name == "dev-renamed"
