"""The real JavaScript ``apify`` SDK (3.x) in the Node.js image the platform builds: one actor calls a task
defined beforehand and then metamorphs into another actor, all in one run chain."""

from __future__ import annotations

import json
from datetime import timedelta

from apify_client import ApifyClientAsync

from .conftest import TEST_MEMORY_MB
from .test_api_sdk import CHILD, create_and_build, status

#: Calls the task it is given, stores what came back, then becomes the actor it is given.
JS_CALLS_A_TASK_AND_METAMORPHS = """
import { Actor } from 'apify';

await Actor.init();
const { taskId, targetActorId } = await Actor.getInput();
const called = await Actor.callTask(taskId, { x: 4 }, { memory: 1024 });
const store = await Actor.apifyClient.keyValueStore(called.defaultKeyValueStoreId).getRecord('OUTPUT');
await Actor.setValue('CALLED', { runId: called.id, status: called.status, output: store.value });
console.log('metamorphing');
await Actor.metamorph(targetActorId, { x: 21 });
console.log('still the caller');
await Actor.exit();
"""

JS_DOCKERFILE = 'FROM apify/actor-node:24\nCOPY --chown=myuser:myuser . ./\nCMD ["npm", "start", "--silent"]\n'


def js_version(name: str, main_js: str) -> dict:
    """A SOURCE_FILES version of a Node.js actor on Apify's Node.js image, with the apify 3.x SDK."""
    files = {"Dockerfile": JS_DOCKERFILE, "main.js": main_js,
             "package.json": json.dumps({"name": name, "version": "0.0.1", "type": "module",
                                         "dependencies": {"apify": "^3"}, "scripts": {"start": "node main.js"}})}
    return {"versionNumber": "0.0", "sourceType": "SOURCE_FILES",
            "sourceFiles": [{"name": path, "format": "TEXT", "content": text} for path, text in files.items()]}


async def test_javascript_actor_calls_a_task_and_metamorphs(api_url, api_token, apify_images, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "js-child", CHILD)  # doubles input.x into OUTPUT
    child = await client.actor("local/js-child").get()
    task = await client.tasks().create(actor_id=child.id, name="js-doubler", task_input={"x": 1},
                                       memory_mbytes=TEST_MEMORY_MB)
    caller = await client.actors().create(name="js-caller", versions=[js_version("js-caller",
                                                                                  JS_CALLS_A_TASK_AND_METAMORPHS)])
    build = await client.actor(caller.id).build(version_number="0.0", wait_for_finish=300)
    assert str(build.status).endswith("SUCCEEDED"), await client.build(build.id).log().get()

    run = await client.actor(caller.id).call(run_input={"taskId": task.id, "targetActorId": child.id},
                                             memory_mbytes=TEST_MEMORY_MB, run_timeout=timedelta(seconds=300),
                                             logger=None)
    log = await client.run(run.id).log().get()
    assert status(run) == "SUCCEEDED", log
    assert "metamorphing" in log and "still the caller" not in log

    # The task's run: started by the task (its input overridden by the call's), finished before the metamorph.
    task_run = await client.task(task.id).last_run().get()
    store = client.run(run.id).key_value_store()
    called = (await store.get_record("CALLED"))["value"]
    assert called == {"runId": task_run.id, "status": "SUCCEEDED", "output": {"double": 8}}
    assert task_run.act_id == child.id and task_run.actor_task_id == task.id and status(task_run) == "SUCCEEDED"

    # The metamorph: the same run (id and storages) went on as the child, with its input as INPUT-METAMORPH-1.
    assert run.act_id == caller.id and run.stats.metamorph == 1
    assert [m.actor_id for m in run.metamorphs] == [child.id]
    assert (await store.get_record("INPUT-METAMORPH-1"))["value"] == {"x": 21}
    assert (await store.get_record("OUTPUT"))["value"] == {"double": 42}
    assert (await store.get_record("INPUT"))["value"] == {"taskId": task.id, "targetActorId": child.id}
    assert (await client.actor(caller.id).last_run().get()).id == run.id
    assert [r.id for r in (await client.actor(child.id).runs().list()).items] == [task_run.id]
