"""The notebook experience in a real kernel (jupyter_client) against a real server and real runs.

The kernel gets the server's address through JUPYTER_ACTORS_API_URL/TOKEN, as kernels started by
the server do. The server runs on the test's event loop: blocking kernel calls go through threads.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from jupyter_client import KernelManager

from .conftest import TEST_MEMORY_MB, off

SLEEPER = "import time\nfor i in range(3):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.2)\ntime.sleep(600)\n"

# Prints five lines, waits for a GO record in its default store (set by the test), prints five more.
GATED = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        for i in range(5):
            print(f"line {i}", flush=True)
        while await Actor.get_value("GO") is None:
            await asyncio.sleep(0.2)
        for i in range(5, 10):
            print(f"line {i}", flush=True)
        await Actor.set_value("OUTPUT", {"lines": 10})

asyncio.run(main())
"""



class KernelDriver:
    """A real ipykernel; a thread collects every iopub message so tests can wait on what arrived."""

    def __init__(self, api_url: str, token: str, cwd: str) -> None:
        self.env = {**os.environ, "JUPYTER_ACTORS_API_URL": api_url, "JUPYTER_ACTORS_TOKEN": token}
        self.cwd = cwd
        self.messages: list[dict] = []
        self.starts: dict[str, int] = {}
        self._changed = threading.Condition()
        self._closed = threading.Event()
        self.km = KernelManager(kernel_name="python3")
        self._start()

    def _start(self) -> None:
        self.km.start_kernel(env=self.env, cwd=self.cwd)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self._collector = threading.Thread(target=self._collect, args=(self.kc,), daemon=True)
        self._collector.start()

    def _collect(self, kc) -> None:
        while not self._closed.is_set():
            try:
                msg = kc.get_iopub_msg(timeout=0.2)
            except Exception:  # queue.Empty, or the channel closed on restart
                if not kc.channels_running:
                    return
                continue
            with self._changed:
                self.messages.append(msg)
                self._changed.notify_all()

    def execute(self, code: str) -> str:
        with self._changed:
            start = len(self.messages)
        msg_id = self.kc.execute(code, allow_stdin=False)
        self.starts[msg_id] = start  # message ids may repeat across a kernel restart
        return msg_id

    def of_cell(self, msg_id: str) -> list[dict]:
        """The iopub messages of the latest cell sent with ``msg_id``."""
        with self._changed:
            return [m for m in self.messages[self.starts[msg_id]:] if m["parent_header"].get("msg_id") == msg_id]

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 120, what: str = "",
                 start: int = 0) -> dict:
        """The first iopub message from ``start`` on matching ``predicate`` (waits on arrivals, with a deadline)."""
        deadline = time.monotonic() + timeout
        seen = start
        with self._changed:
            while True:
                for msg in self.messages[seen:]:
                    if predicate(msg):
                        return msg
                seen = len(self.messages)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    kinds = [(m["msg_type"], str(m["content"])[:200]) for m in self.messages[-15:]]
                    raise AssertionError(f"timed out waiting for {what}; last messages: {kinds}")
                self._changed.wait(remaining)

    def reply(self, msg_id: str, timeout: float = 180) -> dict:
        """The execute_reply of ``msg_id`` once the kernel went idle after it."""
        self.wait_for(lambda m: m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                      and m["content"]["execution_state"] == "idle", timeout, f"cell {msg_id} to finish",
                      start=self.starts[msg_id])
        while True:  # skip stray replies (wait_for_ready may leave extra kernel_info replies queued)
            reply = self.kc.get_shell_msg(timeout=10)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def run(self, code: str, timeout: float = 180) -> tuple[dict, list[dict]]:
        msg_id = self.execute(code)
        reply = self.reply(msg_id, timeout)
        return reply, self.of_cell(msg_id)

    def restart(self) -> None:
        self.kc.stop_channels()
        self._collector.join(5)
        self.km.restart_kernel(now=True)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self._collector = threading.Thread(target=self._collect, args=(self.kc,), daemon=True)
        self._collector.start()

    def shutdown(self) -> None:
        self._closed.set()
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(api_url, api_token, tmp_path):
    # Starting and stopping a kernel never needs the server, so this may block the (idle) loop.
    driver = KernelDriver(api_url, api_token, str(tmp_path))
    yield driver
    driver.shutdown()


def stream_text(messages: list[dict], name: str | None = None) -> str:
    return "".join(m["content"]["text"] for m in messages
                   if m["msg_type"] == "stream" and (name is None or m["content"]["name"] == name))


def view_state(msg: dict) -> dict | None:
    """The run state a live-view message carries (None for other messages)."""
    if msg["msg_type"] not in ("display_data", "update_display_data"):
        return None
    return msg["content"]["data"].get("application/vnd.jupyter-actors.run+json")


def plain(msg: dict) -> str:
    return msg["content"]["data"].get("text/plain", "")


async def api_get(api_url: str, token: str, path: str) -> dict:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        response = await client.get(f"{api_url}/v2{path}")
        response.raise_for_status()
        return response.json()["data"]


async def api_post(api_url: str, token: str, path: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        response = await client.post(f"{api_url}/v2{path}", **kwargs)
        response.raise_for_status()
        return response


def define_cell(name: str, body: str, options: str = "") -> str:
    return f"%%actor {name} --memory {TEST_MEMORY_MB} {options}\n{body}"


# -- tests ------------------------------------------------------------------------------------------


async def test_magic_usage_errors_without_traceback(kernel):
    await off(kernel.run, "%load_ext jupyter_actors")
    cases = {
        "%%actor\nprint(1)": "the following arguments are required: name",
        "%%actor x --memory 1000\nprint(1)": "memory must be one of 128, 256",
        "%%actor x --frobnicate\nprint(1)": "unrecognized arguments: --frobnicate",
        "%%actor x --input '{bad'\nprint(1)": "--input is not valid JSON",
        "%%actor x --input '{}' --input-var v\nprint(1)": "not allowed with argument",
        "%%actor x --timeout soon\nprint(1)": "timeout must be a whole number",
        "%%actor x --input-var missing\nprint(1)": "no such variable",
        "%%actor x --out 1abc\nprint(1)": "--out needs a Python variable name",
        "%actor_form": "usage: %actor_form NAME",
    }
    for cell, expected in cases.items():
        reply, messages = await off(kernel.run, cell)
        content = reply["content"]
        assert content["status"] == "error" and content["ename"] == "UsageError", (cell, content)
        # IPython prints a UsageError to stderr as one message, with no traceback.
        shown = stream_text(messages, "stderr") + "".join(
            "\n".join(m["content"]["traceback"]) for m in messages if m["msg_type"] == "error")
        assert expected in shown, (cell, shown)
        assert "Traceback" not in shown and "File " not in shown, shown
    # A server refusal is an ActorsError shown as one plain line, not a traceback either.
    reply, messages = await off(kernel.run, "import jupyter_actors\njupyter_actors.run('no-such-run')")
    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert reply["content"]["status"] == "error" and errors[0]["ename"] == "NotFoundError"
    assert errors[0]["traceback"] == ["NotFoundError: Run 'no-such-run' was not found."]


async def test_the_magic_documents_every_option(kernel):
    from jupyter_actors.notebook.magic import ActorMagics

    flags = [flag for action in ActorMagics.actor.parser._actions for flag in action.option_strings]
    assert len(flags) >= 15, flags  # the walk found the options
    await off(kernel.run, "%load_ext jupyter_actors")
    reply, _ = await off(kernel.run, "%%actor?\n")
    shown = "".join(page["data"]["text/plain"] for page in reply["content"]["payload"] if "data" in page)
    missing = [flag for flag in flags if flag not in shown]
    assert not missing and "Define an actor from the cell" in shown, (missing, shown[:2000])


async def test_live_output_arrives_while_the_run_is_running(kernel, api_url, api_token):
    await off(kernel.run, "%load_ext jupyter_actors")
    msg_id = await off(kernel.execute, define_cell("sleeper", SLEEPER, "--timeout 300 --out live_run"))
    first = await off(kernel.wait_for, lambda m: view_state(m) is not None, 180, "the live view",
                      start=kernel.starts[msg_id])
    assert first["parent_header"]["msg_id"] == msg_id
    run_id = view_state(first)["id"]
    ticking = await off(kernel.wait_for, lambda m: m["msg_type"] == "update_display_data" and "tick 2" in plain(m),
                        120, "an update with the log line 'tick 2'")
    assert ticking["parent_header"]["msg_id"] == msg_id  # routed to the cell that started the view
    assert ticking["content"]["transient"]["display_id"] == first["content"]["transient"]["display_id"]
    assert view_state(ticking)["status"] == "RUNNING"
    assert (await api_get(api_url, api_token, f"/actor-runs/{run_id}"))["status"] == "RUNNING"
    assert "<progress" in ticking["content"]["data"]["text/html"]
    assert "/actors/web/" in view_state(ticking)["containerUrl"]  # the run's web server link
    assert "Web server:" in ticking["content"]["data"]["text/html"]
    assert view_state(ticking)["timeoutSecs"] == 300 and view_state(ticking)["memoryMbytes"] == TEST_MEMORY_MB

    await api_post(api_url, api_token, f"/actor-runs/{run_id}/abort")
    reply = await off(kernel.reply, msg_id)
    assert reply["content"]["status"] == "ok"
    final = [m for m in kernel.messages if view_state(m) and view_state(m)["id"] == run_id][-1]
    assert view_state(final)["status"] == "ABORTED" and "ABORTED" in final["content"]["data"]["text/html"]
    reply, messages = await off(kernel.run, "print(live_run.id, live_run.status)")
    assert stream_text(messages).split() == [run_id, "ABORTED"]


async def test_interrupt_detaches_and_the_run_goes_on(kernel, api_url, api_token):
    await off(kernel.run, "%load_ext jupyter_actors")
    msg_id = await off(kernel.execute, define_cell("sleeper", SLEEPER, "--timeout 300"))
    ticking = await off(kernel.wait_for, lambda m: m["msg_type"] == "update_display_data" and "tick 0" in plain(m),
                        180, "the first log line in the view")
    run_id = view_state(ticking)["id"]
    await off(kernel.km.interrupt_kernel)
    reply = await off(kernel.reply, msg_id, 60)
    assert reply["content"]["status"] == "ok", reply["content"]  # the cell returned; no KeyboardInterrupt
    detached = await off(kernel.wait_for, lambda m: view_state(m) is not None and "Detached" in view_state(m)["note"],
                         30, "the view to say it detached")
    assert view_state(detached)["id"] == run_id
    results = [m for m in kernel.of_cell(msg_id) if m["msg_type"] == "execute_result"]
    assert results and run_id in plain(results[0])  # the cell's value is the Run handle
    run = await api_get(api_url, api_token, f"/actor-runs/{run_id}?waitForFinish=2")
    assert run["status"] == "RUNNING"  # interrupting the kernel did not stop the run
    await api_post(api_url, api_token, f"/actor-runs/{run_id}/abort")


async def test_kernel_restart_reattaches_without_duplicate_lines(kernel, api_url, api_token):
    await off(kernel.run, "%load_ext jupyter_actors")
    reply, messages = await off(kernel.run, define_cell("gated", GATED, "--timeout 300 --detach --out r") + "\n",
                                240)
    assert reply["content"]["status"] == "ok", messages
    reply, messages = await off(kernel.run, "print(r.id)")
    run_id = stream_text(messages).strip()

    async def log_has(text: str) -> bool:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {api_token}"}) as client:
            return text in (await client.get(f"{api_url}/v2/actor-runs/{run_id}/log")).text

    deadline = time.monotonic() + 120
    while not await log_has("line 4"):
        assert time.monotonic() < deadline, "the run never printed line 4"
        await asyncio.sleep(0.2)  # polling the server's state with a deadline, not timing the run

    await off(kernel.restart)
    reply, messages = await off(kernel.run, (
        "import jupyter_actors\n"
        "frame = jupyter_actors.runs()\n"
        f"print(frame.loc[frame.id == {run_id!r}, 'status'].tolist())\n"
        f"view = jupyter_actors.run({run_id!r}).show()\n"
    ))
    assert reply["content"]["status"] == "ok", messages
    assert stream_text(messages).strip() == "['RUNNING']"
    show_id = reply["parent_header"]["msg_id"]
    await off(kernel.wait_for, lambda m: view_state(m) is not None and "line 4" in plain(m)
              and m["parent_header"].get("msg_id") == show_id, 60, "the re-attached view to show line 4",
              start=kernel.starts[show_id])

    store = (await api_get(api_url, api_token, f"/actor-runs/{run_id}"))["defaultKeyValueStoreId"]
    await api_post(api_url, api_token, f"/key-value-stores/{store}/records/GO", content=b"true",
                   headers={"Content-Type": "application/json"})
    reply, messages = await off(kernel.run, "print(view.wait(120), view.run.data['status'])")
    assert stream_text(messages).split() == ["True", "SUCCEEDED"]
    final = [m for m in kernel.of_cell(show_id) if view_state(m) and view_state(m)["id"] == run_id][-1]
    text = plain(final)
    lines = [line.split(" ", 1)[1] for line in text.splitlines() if " line " in f" {line}" and line[:4].isdigit()]
    assert lines == [f"line {i}" for i in range(10)], text
    assert "OUTPUT" in text and '"lines": 10' in text


async def test_input_variable_content_type_and_image_override(kernel, api_url, api_token):
    echo = ("import asyncio\nfrom apify import Actor\n\nasync def main():\n    async with Actor:\n"
            "        value = await Actor.get_input()\n"
            "        await Actor.set_value('OUTPUT', {'input': value, 'type': type(value).__name__})\n\n"
            "asyncio.run(main())\n")
    await off(kernel.run, "%load_ext jupyter_actors\npayload = 'plain words'")
    reply, messages = await off(kernel.run, define_cell(
        "echo-text", echo, "--input-var payload --content-type text/plain --image jupyter-actors/python:3.11 --out e"))
    assert reply["content"]["status"] == "ok", messages
    reply, messages = await off(kernel.run, "print(e.status, e.output)")
    assert stream_text(messages).strip() == "SUCCEEDED {'input': 'plain words', 'type': 'str'}"
    versions = await api_get(api_url, api_token, "/actors/echo-text/versions")
    files = {f["name"]: f["content"] for f in versions["items"][0]["sourceFiles"]}
    assert files["Dockerfile"].startswith("FROM jupyter-actors/python:3.11\n") and files["main.py"] == echo


async def test_kernels_started_by_the_server_find_it(jp_serverapp, api_url, api_token):
    """No variables set by hand: a kernel the server starts inherits its API address and token."""
    assert os.environ["JUPYTER_ACTORS_API_URL"] == api_url and os.environ["JUPYTER_ACTORS_TOKEN"] == api_token
    manager = jp_serverapp.kernel_manager
    kernel_id = await manager.start_kernel()  # with the server process's environment, as from a browser
    client = manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        msg_id = client.execute(
            "import jupyter_actors\nprint(len(jupyter_actors.runs()), jupyter_actors.default_client().url)")
        text, deadline = "", time.monotonic() + 60
        while True:
            msg = await client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] in ("stream", "error"):
                text += msg["content"].get("text", "") + "\n".join(msg["content"].get("traceback", []))
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert text.split() == ["0", api_url], text
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(kernel_id, now=True)


async def test_dockerfile_and_requirements_options(kernel, api_url, api_token, tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nENV GREETING=from-my-dockerfile\n"
        "COPY --chown=1000:1000 . /usr/src/app\n"
        "RUN pip install --no-cache-dir --no-index --find-links .wheels -r requirements.txt\n"
        'CMD ["python", "main.py"]\n'
    )
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\n")  # downloaded on the host, installed offline in the image
    body = "import os, six\nprint('greeting', os.environ['GREETING'], 'six', six.__version__)\n"
    await off(kernel.run, "%load_ext jupyter_actors")
    reply, messages = await off(kernel.run, define_cell(
        "custom-image", body, f"--dockerfile {dockerfile} --requirements {requirements} --out c"))
    assert reply["content"]["status"] == "ok", messages
    reply, messages = await off(kernel.run, "print(c.status)\nprint(c.log())")
    text = stream_text(messages)
    assert text.startswith("SUCCEEDED") and "greeting from-my-dockerfile six 1.16.0" in text, text


JS_CELL = """\
import { Actor } from 'apify';
import * as cheerio from 'cheerio';

await Actor.init();
const $ = cheerio.load('<html><head><title>From a cell</title></head></html>');
console.log(`title: ${$('title').text()} on Node.js ${process.version}`);
await Actor.setValue('OUTPUT', { title: $('title').text(), node: process.version });
await Actor.exit();
"""


async def test_javascript_cell_runs_on_the_node_image_with_its_packages(kernel, apify_images, api_url, api_token):
    await off(kernel.run, "%load_ext jupyter_actors")
    reply, messages = await off(kernel.run, define_cell("js-cell", JS_CELL, "--node --package cheerio@^1 --out js_run"),
                                600)
    assert reply["content"]["status"] == "ok", reply["content"]
    reply, messages = await off(kernel.run, "print(js_run.status, js_run.output['title'], js_run.output['node'][:4])")
    assert stream_text(messages).split() == ["SUCCEEDED", "From", "a", "cell", "v24."]
    reply, messages = await off(kernel.run, "print('title: From a cell' in js_run.log())")
    assert stream_text(messages).strip() == "True"
    # The actor's source is Apify's Node.js layout: main.js, a package.json with the packages, a Dockerfile.
    actor = await api_get(api_url, api_token, "/acts/js-cell")
    version = await api_get(api_url, api_token, f"/acts/{actor['id']}/versions/0.0")
    files = {entry["name"]: entry["content"] for entry in version["sourceFiles"]}
    assert files["main.js"].rstrip("\n") == JS_CELL.rstrip("\n")
    assert '"cheerio": "^1"' in files["package.json"] and '"apify": "^3"' in files["package.json"]
    assert files["Dockerfile"].startswith("FROM apify/actor-node:24\n")
    # Python-only options are refused with what to use instead.
    reply, messages = await off(kernel.run, define_cell("js-cell", JS_CELL, "--node --requirements r.txt"))
    assert reply["content"]["ename"] == "UsageError" and "--package" in stream_text(messages, "stderr")


async def test_input_schema_option_refuses_bad_input_plainly_and_fills_defaults(kernel, api_url, api_token,
                                                                               tmp_path):
    schema = ('{"title": "In", "type": "object", "schemaVersion": 1, "required": ["url"], "properties": {'
              '"url": {"title": "URL", "type": "string", "editor": "textfield"},'
              '"count": {"title": "Count", "type": "integer", "minimum": 1, "default": 2}}}')
    (tmp_path / "schema.json").write_text(schema)
    echo = ("import asyncio\nfrom apify import Actor\n\nasync def main():\n    async with Actor:\n"
            "        await Actor.set_value('OUTPUT', await Actor.get_input())\n\nasyncio.run(main())\n")
    await off(kernel.run, "%load_ext jupyter_actors")
    reply, messages = await off(kernel.run, define_cell("schema-echo", echo, f"--input-schema '{schema}' "
                                                        "--input '{\"count\": 0}'"))
    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert reply["content"]["status"] == "error" and errors[0]["ename"] == "InvalidInputError", messages
    shown = "\n".join(errors[0]["traceback"])
    assert "input.url is required" in shown and "input.count" in shown and "Traceback" not in shown, shown
    assert (await api_get(api_url, api_token, "/actor-runs"))["total"] == 0  # nothing was started
    reply, messages = await off(kernel.run, define_cell(
        "schema-echo", echo, f"--input-schema {tmp_path / 'schema.json'} --input '{{\"url\": \"u\"}}' --out s"))
    assert reply["content"]["status"] == "ok", messages
    reply, messages = await off(kernel.run, "print(s.status, s.output)")
    assert stream_text(messages).strip() == "SUCCEEDED {'url': 'u', 'count': 2}"
