"""The notebook-side Python API against a real Jupyter server with the extension (real Docker runs).

The server runs on the test's event loop, so every blocking client call goes through a thread.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

import jupyter_actors

from .conftest import TEST_MEMORY_MB, off

PRODUCER = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        data = await Actor.get_input() or {}
        n = int(data.get("n", 3))
        print("producing", n, flush=True)
        await Actor.push_data([{"index": i, "square": i * i, "name": f"row {i}", "ratio": i / 2,
                                "even": i % 2 == 0, "meta": {"tag": "t", "depth": {"level": i}}} for i in range(n)])
        await Actor.set_value("OUTPUT", {"rows": n})
        await Actor.set_value("notes.txt", "plain text", content_type="text/plain")
        await Actor.set_value("blob", b"\\x00\\x01binary", content_type="application/octet-stream")

asyncio.run(main())
"""




async def test_define_call_and_read_storages(client):
    await off(jupyter_actors.define, "producer", PRODUCER, client=client)
    await off(jupyter_actors.build, "producer", client=client)
    run = await off(jupyter_actors.call, "producer", {"n": 7}, memory=TEST_MEMORY_MB, timeout=120, client=client)
    log = await off(run.log)
    assert run.data["status"] == "SUCCEEDED", log
    assert "producing 7" in log
    assert await off(lambda: run.output) == {"rows": 7}

    store = run.key_value_store
    assert await off(lambda: store["notes.txt"]) == "plain text"
    assert await off(lambda: store["blob"]) == b"\x00\x01binary"
    assert await off(lambda: store.get("missing")) is None
    keys = await off(store.to_pandas)
    assert set(keys["key"]) >= {"OUTPUT", "notes.txt", "blob", "INPUT"}
    assert str(keys["size"].dtype) == "int64"
    types = dict(zip(keys["key"], keys["contentType"], strict=True))
    assert types["notes.txt"].startswith("text/plain") and types["OUTPUT"].startswith("application/json")

    dataset = run.dataset
    assert await off(len, dataset) == 7
    frame = await off(dataset.to_pandas)
    assert frame.shape == (7, 6)
    assert list(frame.columns) == ["index", "square", "name", "ratio", "even", "meta"]
    assert frame["square"].dtype == "int64" and frame["ratio"].dtype == "float64"
    assert frame["even"].dtype == "bool" and frame["square"].tolist() == [i * i for i in range(7)]
    flat = await off(dataset.to_pandas, flatten=True, limit=3, offset=2)
    assert flat.shape == (3, 7) and "meta.depth.level" in flat.columns
    assert flat["index"].tolist() == [2, 3, 4] and flat["meta.depth.level"].dtype == "int64"
    picked = await off(dataset.to_pandas, fields=["name", "index"])
    assert list(picked.columns) == ["name", "index"]
    nested = await off(dataset.to_pandas, fields=["name", "meta"], flatten=True)
    assert list(nested.columns) == ["name", "meta.tag", "meta.depth.level"]
    empty = await off(jupyter_actors.Dataset(run.data["defaultDatasetId"], client=client).to_pandas, offset=100)
    assert empty.shape == (0, 0)
    items = await off(lambda: list(dataset.iter_items(page_size=3)))
    assert [item["index"] for item in items] == list(range(7))

    runs = await off(jupyter_actors.runs, client=client)
    assert runs.loc[0, "id"] == run.id and runs.loc[0, "actor"] == "producer"
    assert runs.loc[0, "status"] == "SUCCEEDED" and runs.loc[0, "memoryMbytes"] == TEST_MEMORY_MB
    assert isinstance(runs["startedAt"].dtype, pd.DatetimeTZDtype)
    assert str(runs["exitCode"].dtype) == "Int64" and runs.loc[0, "exitCode"] == 0
    again = await off(jupyter_actors.run, run.id, client=client)
    assert again.data["defaultDatasetId"] == run.data["defaultDatasetId"]
    assert again.container_url and "/actors/web/" in again.container_url

    # Deleting: the run goes with its default storages; runs() no longer lists it.
    await off(run.delete)
    with pytest.raises(jupyter_actors.NotFoundError):
        await off(jupyter_actors.run, run.id, client=client)
    with pytest.raises(jupyter_actors.NotFoundError) as info:
        await off(lambda: dict(run.key_value_store))
    assert "was deleted" in str(info.value)
    listed = await off(jupyter_actors.runs, client=client)
    assert listed.empty or run.id not in set(listed["id"])
    await off(jupyter_actors.delete_actor, "producer", client=client)
    with pytest.raises(jupyter_actors.NotFoundError):
        await off(jupyter_actors.call, "producer", client=client)


async def test_errors_are_plain_actors_errors(client, monkeypatch):
    with pytest.raises(jupyter_actors.NotFoundError, match="'nope' was not found"):
        await off(jupyter_actors.run, "nope", client=client)
    with pytest.raises(jupyter_actors.NotFoundError, match="Actor 'ghost' was not found"):
        await off(jupyter_actors.form, "ghost", client=client)
    with pytest.raises(jupyter_actors.InvalidInputError, match="not allowed"):
        await off(jupyter_actors.define, "Bad_Name", "print(1)", client=client)
    await off(jupyter_actors.define, "tiny", "print('hi')", client=client)
    await off(jupyter_actors.build, "tiny", client=client)
    with pytest.raises(jupyter_actors.InvalidInputError, match="power of two"):
        await off(jupyter_actors.start, "tiny", memory=1000, client=client)
    error = jupyter_actors.ActorsError("plain message")
    assert error._render_traceback_() == ["ActorsError: plain message"]

    monkeypatch.delenv("JUPYTER_ACTORS_API_URL", raising=False)
    monkeypatch.delenv("JUPYTER_ACTORS_TOKEN", raising=False)
    monkeypatch.setattr("jupyter_actors.notebook.client._default", None)
    with pytest.raises(jupyter_actors.ServerNotFound, match="jupyter_actors.connect"):
        jupyter_actors.runs()


async def test_build_failure_shows_the_build_log(client):
    await off(jupyter_actors.define, "broken", "print(1)", requirements="no-such-package-xyz-123==9.9\n",
              client=client)
    with pytest.raises(jupyter_actors.BuildFailed) as failed:
        await off(jupyter_actors.build, "broken", client=client)
    message = str(failed.value)
    assert message.startswith("Build 0.0.1 of broken FAILED") and "no-such-package-xyz-123" in message, message


def test_public_names_are_guarded():
    import jupyter_actors.notebook as notebook

    public = {"connect", "call", "start", "run", "runs", "key_value_store", "dataset", "define", "build", "form",
              "delete_actor", "delete_build", "task", "Task",
              "load_ipython_extension", "default_client", "Client", "Run", "RunForm", "KeyValueStore", "Dataset",
              "ActorsError", "ApiError", "NotFoundError", "InvalidInputError", "BuildFailed", "InputValidationError",
              "ServerNotFound"}
    assert set(jupyter_actors.__all__) == set(notebook.__all__) == public
    assert all(issubclass(getattr(jupyter_actors, name), jupyter_actors.ActorsError)
               for name in public if name.endswith(("Error", "Failed", "NotFound")))
    for name in jupyter_actors.__all__:
        assert getattr(jupyter_actors, name) is not None
    assert callable(jupyter_actors._jupyter_server_extension_points)


async def test_unchanged_source_reuses_its_build(client):
    await off(jupyter_actors.define, "same", "print('same')", client=client)
    first = await off(jupyter_actors.build, "same", client=client)
    await off(jupyter_actors.define, "same", "print('same')", client=client)
    again = await off(jupyter_actors.build, "same", client=client)
    assert again["id"] == first["id"] and again["buildNumber"] == "0.0.1"
    await off(jupyter_actors.define, "same", "print('changed')", client=client)
    changed = await off(jupyter_actors.build, "same", client=client)
    assert changed["buildNumber"] == "0.0.2"


async def test_million_items_to_pandas_within_1_5x_of_local_read_json(client, tmp_path):
    """The benchmark of the issue: a 1M-item dataset over HTTP against pandas.read_json on a local file."""
    import orjson

    meta = await off(client.post, "/datasets", name="bench")
    count, chunk = 1_000_000, 100_000  # the most items one push may hold
    lines = [orjson.dumps({"index": i, "square": i * i, "greeting": f"Hello #{i}", "ratio": i / 3, "even": i % 2 == 0})
             for i in range(count)]
    for start in range(0, count, chunk):
        body = b"[" + b",".join(lines[start:start + chunk]) + b"]"
        await off(client.request, "POST", f"/datasets/{meta['id']}/items", content=body,
                  headers={"Content-Type": "application/json"})
    path = tmp_path / "items.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    del lines

    started = time.perf_counter()
    local = pd.read_json(path, lines=True)
    local_secs = time.perf_counter() - started
    dataset = await off(jupyter_actors.dataset, "bench", client=client)
    started = time.perf_counter()
    frame = await off(dataset.to_pandas)
    remote_secs = time.perf_counter() - started
    assert frame.shape == local.shape == (count, 5)
    assert list(frame.dtypes.astype(str)) == list(local.dtypes.astype(str))
    assert remote_secs <= 1.5 * local_secs, f"to_pandas {remote_secs:.2f} s vs read_json {local_secs:.2f} s"


def test_import_stays_light():
    """The server imports the package too: pandas, ipywidgets and httpx load only when used."""
    import subprocess
    import sys

    code = ("import sys, jupyter_actors\nheavy = ('pandas', 'ipywidgets', 'httpx', 'IPython')\n"
            "print(sorted(m for m in heavy if m in sys.modules))\njupyter_actors.connect\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.stdout.split("\n")[:2] == ["[]", "['httpx']"]


def test_notebook_side_speaks_only_http():
    """The notebook package never imports Docker, the platform or the server: HTTP is its only way in."""
    import ast
    from pathlib import Path

    import jupyter_actors.notebook as notebook

    for path in Path(notebook.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = ["." * node.level + (node.module or "")]
            else:
                continue
            for module in modules:
                assert not module.startswith(("docker", "..", "jupyter_actors.platform", "jupyter_actors.api",
                                              "jupyter_actors.server")), f"{path.name} imports {module}"
