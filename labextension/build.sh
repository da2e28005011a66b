#!/usr/bin/env bash
# Builds the JupyterLab extension from source into labextension/prebuilt (what the wheel ships, see
# pyproject.toml) after its unit tests. Needs node and the npm registry; jlpm comes from the project's
# venv. With --install, also refreshes the copy in the venv (.venv/share/jupyter/labextensions).
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)
if [ -x "$root/.venv/bin/jlpm" ]; then
    export PATH="$root/.venv/bin:$PATH"
fi
if ! command -v jlpm >/dev/null; then
    echo "build.sh: jlpm not found; run scripts/bootstrap.sh first (or pip install jupyter-builder)" >&2
    exit 1
fi
jlpm install --immutable  # exactly the committed yarn.lock
jlpm test
jlpm build:prod
if [ "${1:-}" = "--install" ]; then
    "$root/.venv/bin/python" -m pip install --quiet --no-deps -e "$root"
fi
echo "build.sh: built $(pwd)/prebuilt"
