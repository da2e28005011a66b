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
    sources = [*(ROOT / "jupyter_actors").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), ROOT / ".ci" / "run"]
    for path in sources:
        if path.name == "test_project.py":
            continue
        if "../shared" in path.read_text(errors="replace") or "/shared/" in path.read_text(errors="replace"):
            offenders.append(str(path))
    assert offenders == []


def _package_imports() -> dict[str, set[str]]:
    """Module -> package modules it imports, at any depth (functions and TYPE_CHECKING blocks too)."""
    import ast

    modules = {}
    for path in (ROOT / "jupyter_actors").rglob("*.py"):
        if "examples" in path.parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = name.split(".") if is_package else name.split(".")[:-1]
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + [node.module] if node.module else base) if node.level else node.module or ""
                candidates = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            for candidate in candidates:
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    graph[name].add(candidate)
    return graph


def test_the_import_graph_has_no_cycle():
    graph = _package_imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            assert cycle is None, " -> ".join(cycle)


def test_the_layers_import_contracts_hold():
    """server above api above platform; the notebook side imports none of them (pyproject.toml)."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_nothing():
    """The lint rules in pyproject.toml hold for the package and the tests (ruff is a test dependency)."""
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--output-format", "concise", "jupyter_actors", "tests", "benchmarks"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    """The package type-checks under the mypy settings in pyproject.toml (strict on ``platform/``)."""
    mypy = Path(sys.executable).with_name("mypy")
    result = subprocess.run([str(mypy)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_route_has_a_concrete_handler_on_both_servers():
    """A route added to api/routes.py without its two classes would stop the extension from loading."""
    from jupyter_actors.api.routes import ROUTES, make_handlers
    from jupyter_actors.api.run_token_handlers import HANDLERS as TOKEN_HANDLERS
    from jupyter_actors.server.user_handlers import HANDLERS as USER_HANDLERS

    for table in (TOKEN_HANDLERS, USER_HANDLERS):
        assert len(make_handlers("/", table)) == len(ROUTES) + 1  # every route, plus the 404 catch-all
