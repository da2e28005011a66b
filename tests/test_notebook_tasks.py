"""``jupyter_actors.task(...)`` in a real kernel: save a task, update it by name, call and start it."""

from __future__ import annotations

from .conftest import TEST_MEMORY_MB, off
from .test_notebook_kernel import KernelDriver, api_get, define_cell, kernel, stream_text

__all__ = ["KernelDriver", "kernel"]  # the fixture, imported for pytest

ECHO = ("import asyncio, os\nfrom apify import Actor\n\nasync def main():\n    async with Actor:\n"
        "        await Actor.set_value('OUTPUT', {'input': await Actor.get_input(),\n"
        "                                         'task': os.environ['APIFY_ACTOR_TASK_ID']})\n\n"
        "asyncio.run(main())\n")


async def test_task_saved_updated_and_run_from_a_kernel(kernel, api_url, api_token):
    reply, messages = await off(kernel.run, "%load_ext jupyter_actors\nimport jupyter_actors as ja")
    assert reply["content"]["status"] == "ok", messages
    reply, messages = await off(kernel.run, define_cell("nb-task-echo", ECHO))
    assert reply["content"]["status"] == "ok", messages

    code = (f"t = ja.task('nb-echo', actor='nb-task-echo', input={{'a': 1, 'b': 1}}, memory={TEST_MEMORY_MB}, "
            "timeout=120)\n"
            "r = t.call({'b': 2})\n"
            "print(r.status, r.output, r.refresh()['actorTaskId'] == t.id, r.refresh()['options']['timeoutSecs'])")
    reply, messages = await off(kernel.run, code)
    assert reply["content"]["status"] == "ok", (reply["content"], stream_text(messages))
    task = await api_get(api_url, api_token, "/actor-tasks/nb-echo")
    expected = f"SUCCEEDED {{'input': {{'a': 1, 'b': 2}}, 'task': '{task['id']}'}} True 120"
    assert stream_text(messages).strip() == expected

    # Saving again by name updates only what is passed; start() returns at once, wait() finishes it.
    code = ("t2 = ja.task('nb-echo', input={'a': 5}, timeout=60)\n"
            "r2 = t2.start().wait()\n"
            "print(t2.id == t.id, t2.options['memoryMbytes'], t2.options['timeoutSecs'], r2.status, r2.output)")
    reply, messages = await off(kernel.run, code)
    assert reply["content"]["status"] == "ok", messages
    assert stream_text(messages).strip() == (f"True {TEST_MEMORY_MB} 60 SUCCEEDED "
                                             f"{{'input': {{'a': 5}}, 'task': '{task['id']}'}}")
    runs = await api_get(api_url, api_token, f"/actor-tasks/{task['id']}/runs")
    assert runs["total"] == 2

    # Mistakes are said plainly: no actor for a new task, another actor for an existing one.
    reply, messages = await off(kernel.run, "ja.task('nb-missing')")
    assert reply["content"]["status"] == "error" and "pass actor= to create it" in reply["content"]["evalue"]
    reply, messages = await off(kernel.run, "ja.task('nb-echo', actor='no-such-actor')")
    assert reply["content"]["status"] == "error" and "no-such-actor" in reply["content"]["evalue"]
    assert len((await api_get(api_url, api_token, "/actor-tasks"))["items"]) == 1
