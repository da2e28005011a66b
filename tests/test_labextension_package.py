"""The JupyterLab extension as installed: listed and enabled, the current build, its unit tests green.

`pip install` of the project (the bootstrap's editable install included) builds labextension/ into
labextension/prebuilt and installs it as shared data; these tests check that result in this venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "labextension"
NAME = "jupyter-actors-labextension"
BIN = Path(sys.executable).parent
INSTALLED = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / NAME


def run(*command: str, cwd: Path = ROOT, timeout: float = 300) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    output = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{output[-4000:]}"
    return output


def test_the_extension_is_installed_and_enabled():
    version = json.loads((SOURCE / "package.json").read_text())["version"]
    listing = run(str(BIN / "jupyter-labextension"), "list")
    assert re.search(rf"{NAME} v{re.escape(version)} enabled\s+OK \(python, jupyter-actors\)", listing), listing
    servers = run(str(BIN / "jupyter-server"), "extension", "list")
    assert re.search(r"jupyter_actors enabled", servers), servers


def test_the_installed_extension_is_the_current_build():
    built = SOURCE / "prebuilt" / "package.json"
    if not built.exists():
        pytest.skip("labextension/prebuilt is not built here (installed from a wheel)")
    installed = json.loads((INSTALLED / "package.json").read_text())["jupyterlab"]["_build"]
    current = json.loads(built.read_text())["jupyterlab"]["_build"]
    # remoteEntry's name carries a hash of the bundle: equal names, equal code.
    assert installed == current, (
        "the venv has an older build of the extension than labextension/prebuilt: "
        "run `bash labextension/build.sh --install` (or `.venv/bin/pip install -e .`)"
    )
    assert (INSTALLED / "install.json").exists()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is needed for the TypeScript unit tests")
@pytest.mark.timeout(700)  # two jlpm commands of up to 300 s each (install may download)
def test_typescript_unit_tests_pass():
    run(str(BIN / "jlpm"), "install", "--immutable", cwd=SOURCE)
    output = run(str(BIN / "jlpm"), "test", cwd=SOURCE)
    assert re.search(r"Tests\s+\d+ passed", output), output
    assert "failed" not in output, output
