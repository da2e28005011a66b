"""Project-level promises: the README's commands are what CI runs; the extension is enabled on install."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text[: text.index("## ")]  # the two commands open the README
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", head, re.S)]


def test_readme_opens_with_setup_and_test_commands_and_ci_runs_the_test_command():
    setup, tests = readme_commands()[:2]
    assert "bootstrap" in setup and "quickstart" in setup
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines()


def test_server_extension_is_enabled_on_install():
    result = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"],
                            capture_output=True, text=True, timeout=120)
    listing = result.stdout + result.stderr
    assert re.search(r"jupyter_actors\s+\S*enabled", listing), listing


def test_nothing_depends_on_the_shared_folder():
    offenders = []
    for path in list((ROOT / "jupyter_actors").rglob("*.py")) + list((ROOT / "tests").rglob("*.py")) + [ROOT / ".ci" / "run"]:
        if path.name == "test_project.py":
            continue
        if "../shared" in path.read_text(errors="replace") or "/shared/" in path.read_text(errors="replace"):
            offenders.append(str(path))
    assert offenders == []
