"""Execute a notebook headless against a real server: ``run_notebook(path, output_path)``.

Above the layers (like the CLI): it starts a server process and a kernel; the notebook package
itself only ever speaks HTTP.

It starts ``jupyter server`` with the extension (``server.process``) on a free port with a fresh token, runs the
notebook with nbclient in a kernel pointed at that server (the same variables a server gives its kernels),
writes the executed copy with its outputs and stops the server.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .platform.config import default_data_dir
from .server.process import ServerProcess, ServerStartFailed
from .notebook.errors import ActorsError, ServerNotFound

STARTUP_TIMEOUT_SECS = 60
CELL_TIMEOUT_SECS = 600


def execute_notebook(path: Path | str, output_path: Path | str, env: dict[str, str], *,
                     cell_timeout: int = CELL_TIMEOUT_SECS) -> None:
    """Run every cell with nbclient in a kernel started with ``env``; the copy is written even on failure."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    source = Path(path)
    notebook = nbformat.read(source, as_version=4)
    client = NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(source.resolve().parent)}})
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        raise ActorsError(f"{source.name} failed:\n{exc}") from None
    finally:
        Path(output_path).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, output_path)


def run_notebook(path: Path | str, output_path: Path | str, *, data_dir: Path | str | None = None,
                 cell_timeout: int = CELL_TIMEOUT_SECS, startup_timeout: float = STARTUP_TIMEOUT_SECS) -> Path:
    """Execute ``path`` headless against a fresh server and write the executed copy to ``output_path``."""
    with tempfile.TemporaryDirectory(prefix="jupyter-actors-server-") as tmp:
        # Runs land in the user's own platform data unless told otherwise, as with `jupyter server`.
        server = ServerProcess(Path(tmp), notebook_dir=Path(path).resolve().parent,
                               data_dir=Path(data_dir) if data_dir is not None else default_data_dir())
        server.options.pop("stop_grace_secs")
        try:
            server.start(timeout=startup_timeout)
        except ServerStartFailed as exc:
            raise ServerNotFound(str(exc)) from None
        try:
            execute_notebook(path, output_path, server.kernel_env(), cell_timeout=cell_timeout)
        finally:
            server.stop()
    return Path(output_path)
