"""The run-settings form, driven through its widget objects in-process, against a real server and runs."""

from __future__ import annotations

import asyncio

import ipywidgets

import jupyter_actors
from jupyter_actors.notebook.form import RunForm, apify_to_json_schema

from .conftest import TEST_MEMORY_MB, off

ECHO = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        await Actor.set_value("OUTPUT", await Actor.get_input())

asyncio.run(main())
"""
SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"

SCHEMA = {
    "title": "Echo input", "type": "object", "schemaVersion": 1,
    "properties": {
        "query": {"title": "Query", "type": "string", "editor": "textfield", "pattern": "^[a-z]+$",
                  "description": "lowercase words"},
        "greeting": {"title": "Greeting", "type": "string", "editor": "textfield", "default": "hello"},
        "count": {"title": "Count", "type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "ratio": {"title": "Ratio", "type": "number", "editor": "number"},
        "verbose": {"title": "Verbose", "type": "boolean", "default": False},
        "mode": {"title": "Mode", "type": "string", "editor": "select", "enum": ["fast", "slow"],
                 "enumTitles": ["Fast", "Slow"], "default": "fast"},
        "urls": {"title": "URLs", "type": "array", "editor": "json", "prefill": ["https://example.com"],
                 "maxItems": 2},
        "secret": {"title": "Hidden", "type": "string", "editor": "hidden"},
    },
    "required": ["query"],
}




async def test_schema_form_fields_defaults_and_validation(client):
    await off(jupyter_actors.define, "echo", ECHO, input_schema=SCHEMA, client=client)
    await off(jupyter_actors.build, "echo", client=client)
    await off(jupyter_actors.define, "echo", ECHO + "\n# changed\n", input_schema=SCHEMA, client=client)
    await off(jupyter_actors.build, "echo", client=client)
    await off(client.data, "PUT", "/actors/echo",
              json={"defaultRunOptions": {"memoryMbytes": TEST_MEMORY_MB, "timeoutSecs": 120}})

    form: RunForm = await off(jupyter_actors.form, "echo", client=client)
    assert form.memory.value == TEST_MEMORY_MB and form.timeout.value == 120
    assert [value for _, value in form.memory.options] == [2**i for i in range(7, 16)]
    assert isinstance(form.timeout, ipywidgets.BoundedIntText) and form.timeout.min == 0
    assert list(form.build.options) == ["latest", "0.0.2", "0.0.1"] and form.build.value == "latest"
    assert form.content_type.disabled  # a schema means JSON input

    fields = {field.name: field.widget for field in form.schema_input.fields}
    assert "secret" not in fields  # hidden editor
    assert isinstance(fields["query"], ipywidgets.Text) and fields["query"].value == ""
    assert fields["query"].description == "Query *"
    assert fields["greeting"].value == "hello"
    assert isinstance(fields["count"], ipywidgets.BoundedIntText)
    assert (fields["count"].min, fields["count"].max) == (1, 10)
    assert fields["count"].value == 3
    assert isinstance(fields["ratio"], ipywidgets.FloatText)
    assert isinstance(fields["verbose"], ipywidgets.Checkbox) and fields["verbose"].value is False
    assert isinstance(fields["mode"], ipywidgets.Dropdown) and fields["mode"].value == "fast"
    assert [label for label, _ in fields["mode"].options] == ["", "Fast", "Slow"]
    assert isinstance(fields["urls"], ipywidgets.Textarea) and '"https://example.com"' in fields["urls"].value

    # Invalid input never reaches the server: the message line says what is wrong.
    assert await off(form.run_button.click) is None and form.run is None
    assert form.last_message == "input: 'query' is a required property"
    assert "required property" in form.message.value and "#c62828" in form.message.value
    fields["query"].value = "Not Lower"
    await off(form.run_button.click)
    assert form.run is None and "does not match" in form.last_message
    fields["query"].value = "books"
    fields["urls"].value = "[not json"
    await off(form.run_button.click)
    assert form.run is None and "URLs: not valid JSON" in form.last_message
    fields["urls"].value = '["a", "b", "c"]'
    await off(form.run_button.click)
    assert form.run is None and "urls: ['a', 'b', 'c'] is too long" in form.last_message
    assert (await off(jupyter_actors.runs, client=client)).empty

    fields["urls"].value = '["https://a.example"]'
    fields["ratio"].value = 0.5
    fields["verbose"].value = True
    form.build.value = "0.0.1"
    await off(form.run_button.click)
    assert form.run is not None and "Started run" in form.last_message
    assert await off(form.view.wait, 120)
    run = form.run
    assert run.data["status"] == "SUCCEEDED" and run.data["buildNumber"] == "0.0.1"
    assert run.data["options"]["memoryMbytes"] == TEST_MEMORY_MB and run.data["options"]["timeoutSecs"] == 120
    expected = {"query": "books", "greeting": "hello", "count": 3, "ratio": 0.5, "verbose": True, "mode": "fast",
                "urls": ["https://a.example"]}
    assert await off(lambda: run.output) == expected
    assert "SUCCEEDED" in form.output.value and "OUTPUT" in form.output.value


async def test_json_form_runs_aborts_and_resurrects(client):
    await off(jupyter_actors.define, "sleepy", SLEEPER, client=client)
    await off(jupyter_actors.build, "sleepy", client=client)
    form: RunForm = await off(RunForm, "sleepy", client=client)
    assert form.schema_input is None and form.abort_button.disabled and form.resurrect_button.disabled
    form.memory.value = TEST_MEMORY_MB
    form.timeout.value = 300
    form.json_input.widget.value = "{'single': 'quotes'}"
    await off(form.run_button.click)
    assert form.run is None and "not valid JSON" in form.last_message
    form.json_input.widget.value = '{"n": 1}'
    await off(form.run_button.click)
    run = form.run
    assert run is not None and not form.abort_button.disabled

    deadline = asyncio.get_running_loop().time() + 120
    while "sleeping" not in form.output.value:  # the view's widget fills in from its thread
        assert asyncio.get_running_loop().time() < deadline, form.output.value
        await asyncio.sleep(0.1)
    assert "RUNNING" in form.output.value
    await off(form.abort_button.click)
    assert await off(form.view.wait, 60) and run.data["status"] == "ABORTED"
    assert "ABORTED" in form.output.value and "Aborting run" in form.last_message

    await off(form.resurrect_button.click)
    assert "Resurrected run" in form.last_message and form.run.data["status"] in ("READY", "RUNNING")
    assert await off(lambda: run.status) in ("READY", "RUNNING")
    await off(form.abort_button.click)
    assert await off(form.view.wait, 60) and form.run.data["status"] == "ABORTED"
    assert (await off(form.run.dataset.to_pandas)).shape == (0, 0)


def test_apify_schema_becomes_json_schema():
    converted = apify_to_json_schema({"properties": {"a": {"type": "string", "editor": "textfield", "nullable": True,
                                                           "title": "A", "minLength": 2}}, "required": ["a"]})
    assert converted == {"type": "object", "properties": {"a": {"type": ["string", "null"], "minLength": 2}},
                         "required": ["a"]}
