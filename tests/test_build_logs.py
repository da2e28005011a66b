"""Builds you can watch: the build log streamed line by line while it builds, and builds on the live stream."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from .test_labextension_stream import EventReader, stream


def slow_dockerfile(token: str) -> str:
    # The token keeps Docker's layer cache (and the platform's build reuse) from skipping the steps.
    return (f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN echo first-step-{token}\n"
            f"RUN sleep 6 && echo slow-step-{token}\nCOPY . /usr/src/app\n")


async def test_a_running_build_log_streams_line_by_line_and_builds_are_on_the_live_stream(api_url, api_token):
    token = uuid.uuid4().hex[:12]
    headers = {"Authorization": f"Bearer {api_token}"}
    version = {"versionNumber": "0.0", "sourceType": "SOURCE_FILES", "buildTag": "latest",
               "sourceFiles": [{"name": "main.py", "format": "TEXT", "content": "print(1)\n"},
                               {"name": "Dockerfile", "format": "TEXT", "content": slow_dockerfile(token)}]}
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers=headers,
                                 timeout=httpx.Timeout(30, read=120)) as client, \
            stream(client, api_url) as events_response:
        events = EventReader(events_response)
        kind, snapshot = await asyncio.wait_for(events.next(), 30)
        assert kind == "snapshot" and snapshot["builds"] == []
        assert (await client.post("/acts", json={"name": "slow-build", "versions": [version]})).status_code == 201
        build = (await client.post("/acts/slow-build/builds")).json()["data"]
        assert build["status"] == "RUNNING"

        seen_first_while_running = False
        text = ""
        async with client.stream("GET", f"/actor-builds/{build['id']}/log?stream=1") as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
            async for line in response.aiter_lines():
                text += line + "\n"
                if f"first-step-{token}" in line and not seen_first_while_running:
                    status = (await client.get(f"/actor-builds/{build['id']}")).json()["data"]["status"]
                    assert status == "RUNNING", text  # the build had not finished: the log came live
                    seen_first_while_running = True
        assert seen_first_while_running, text
        finished = (await client.get(f"/actor-builds/{build['id']}")).json()["data"]
        assert finished["status"] == "SUCCEEDED", text
        assert f"slow-step-{token}" in text and "Built image" in text  # followed until the end
        assert text == (await client.get(f"/actor-builds/{build['id']}/log")).text
        # Apify's /v2/logs/{id} serves a build's log too, streamed or not.
        assert (await client.get(f"/logs/{build['id']}?stream=1")).text == text
        assert (await client.get("/logs/no-such-id")).status_code == 404

        # The live stream announced the build when it started and when it ended.
        _, started = await events.until(lambda k, d: k == "build" and d["id"] == build["id"], 30)
        assert started["status"] == "RUNNING" and started["actorName"] == "slow-build"
        _, ended = await events.until(lambda k, d: k == "build" and d["id"] == build["id"], 30)
        assert ended["status"] == "SUCCEEDED"
