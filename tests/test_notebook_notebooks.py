"""Every notebook in notebooks/ runs headless (nbclient) against a real server with real runs.

``run_notebook`` starts its own ``jupyter server`` subprocess; afterwards no container of that
server's instance may be left.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import nbformat
import pytest

from jupyter_actors.headless import run_notebook

from .conftest import cleanup_instance

MIME = "application/vnd.jupyter-actors.run+json"
NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def instance_id(data_dir: Path) -> str:
    with sqlite3.connect(data_dir / "registry.sqlite") as db:
        return db.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()[0]


def outputs(notebook) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def test_there_are_notebooks():
    assert any(path.name == "quickstart.ipynb" for path in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_executes_and_leaves_no_containers(path, tmp_path, docker_client, base_image):
    data_dir = tmp_path / "data"
    executed = tmp_path / path.name
    try:
        run_notebook(path, executed, data_dir=data_dir)
    finally:
        if (data_dir / "registry.sqlite").exists():
            label = f"jupyter-actors.instance={instance_id(data_dir)}"
            left = docker_client.api.containers(all=True, filters={"label": label})
            cleanup_instance(docker_client, instance_id(data_dir))
    assert left == [], f"containers left behind: {[c['Names'] for c in left]}"
    notebook = nbformat.read(executed, as_version=4)
    assert not [o for o in outputs(notebook) if o.output_type == "error"]
    assert all(cell.execution_count for cell in notebook.cells if cell.cell_type == "code")
    if path.name == "quickstart.ipynb":
        check_quickstart(notebook)


def check_quickstart(notebook) -> None:
    texts = "".join(o.get("text", "") for o in outputs(notebook) if o.output_type == "stream")
    assert "first: 1 second: 2" in texts  # the counter's named store, fresh for this server
    runs = [o.data for o in outputs(notebook) if MIME in o.get("data", {})]
    assert len(runs) == 2 and all(data[MIME]["status"] == "SUCCEEDED" for data in runs)  # the saved final states
    html = [data["text/html"] for data in runs]
    assert "Pushed rows 15-19" in html[0] and "sumOfSquares" in html[0] and "\x1b[" not in html[0]
    assert "<table" in html[0]  # the first dataset rows
    if importlib.util.find_spec("matplotlib"):  # the plot (the notebook says how to get it otherwise)
        assert any("image/png" in o.get("data", {}) for o in outputs(notebook))
    assert not any("Abort" in o.get("data", {}).get("text/plain", "") for o in outputs(notebook))
