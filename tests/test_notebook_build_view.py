"""``%%actor`` in a real kernel: the build shown live before the run, a reused build said so, a failed
build as its log and a plain exception, and the run's end as peak memory against the limit with a hint."""

from __future__ import annotations

import re

import pytest

from jupyter_actors.notebook.sizing import peak_line

from .conftest import TEST_MEMORY_MB, off
from .test_notebook_kernel import KernelDriver, define_cell, plain, view_state

BUILD_MIME = "application/vnd.jupyter-actors.build+json"
# Holds about 100 MB for a few samples: far under a 1024 MB limit.
HOG = ("import time\ndata = b'x' * (100 * 2**20)\nprint('holding', len(data) // 2**20, 'MB', flush=True)\n"
       "time.sleep(3)\n")


@pytest.fixture
def jp_server_config(tmp_path, base_image):
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_actors": True}},
        "ActorsExtension": {"data_dir": str(tmp_path / "server-data"), "stop_grace_secs": 2.0,
                            "usage_sample_secs": 0.5},
    }


@pytest.fixture
def kernel(api_url, api_token, tmp_path):
    driver = KernelDriver(api_url, api_token, str(tmp_path))
    yield driver
    driver.shutdown()


def build_state(msg: dict) -> dict | None:
    if msg["msg_type"] not in ("display_data", "update_display_data"):
        return None
    return msg["content"]["data"].get(BUILD_MIME)


async def test_build_shown_live_then_reused_and_the_peak_with_a_hint(kernel):
    await off(kernel.run, "%load_ext jupyter_actors")
    reply, messages = await off(kernel.run, define_cell("hog", HOG, "--timeout 120 --out first"), 300)
    assert reply["content"]["status"] == "ok", reply["content"]
    builds = [m for m in messages if build_state(m) is not None]
    first_run = next(i for i, m in enumerate(messages) if view_state(m) is not None)
    # The build's view came first and showed log lines (the image being built) before the run's view.
    logged = [m for m in messages[:first_run] if build_state(m) is not None and len(plain(m).splitlines()) > 1]
    assert logged, [plain(m) for m in builds]
    assert not build_state(builds[0])["reused"] and build_state(builds[-1])["status"] == "SUCCEEDED"
    assert plain(builds[-1]).startswith("Build 0.0.1 of hog: SUCCEEDED")
    assert all(messages.index(m) < first_run for m in builds)

    final = [m for m in messages if view_state(m) is not None][-1]
    state = view_state(final)
    assert state["status"] == "SUCCEEDED"
    reply, printed = await off(kernel.run, "print(first.data['stats']['memMaxBytes'])")
    peak = int("".join(m["content"]["text"] for m in printed if m["msg_type"] == "stream"))
    assert 100 * 2**20 < peak < 256 * 2**20
    expected = peak_line(peak, TEST_MEMORY_MB)
    assert re.fullmatch(r"peak \d+ MB of 1024 MB - a (256|512) MB limit would do", expected), expected
    assert state["peak"] == expected and expected in plain(final) and expected in final["content"]["data"]["text/html"]
    assert len(state["spark"]["memMb"]) >= 2 and "<svg" in final["content"]["data"]["text/html"]

    # The same source again: the cell says it reused the build and shows no build log.
    reply, messages = await off(kernel.run, define_cell("hog", HOG, "--timeout 120"), 300)
    assert reply["content"]["status"] == "ok", reply["content"]
    builds = [m for m in messages if build_state(m) is not None]
    assert len(builds) == 1 and build_state(builds[0])["reused"], [plain(m) for m in builds]
    assert plain(builds[0]) == "Reused build 0.0.1 of hog: the source is unchanged."


async def test_a_failed_build_shows_its_log_and_raises_plainly(kernel, tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM jupyter-actors/python:3.11\nRUN echo broken-step-output && exit 3\n")
    await off(kernel.run, "%load_ext jupyter_actors")
    reply, messages = await off(kernel.run, define_cell("broken", "print(1)", f"--dockerfile {dockerfile}"), 300)
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "BuildFailed", reply["content"]
    builds = [m for m in messages if build_state(m) is not None]
    assert build_state(builds[-1])["status"] == "FAILED" and "broken-step-output" in plain(builds[-1])
    assert "broken-step-output" in builds[-1]["content"]["data"]["text/html"]
    assert not any(view_state(m) for m in messages)  # no run was started
    error = next(m["content"] for m in messages if m["msg_type"] == "error")
    assert error["traceback"][0].startswith("BuildFailed: Build 0.0.1 of broken FAILED"), error["traceback"]
    assert "Traceback" not in "\n".join(error["traceback"])
