#!/usr/bin/env bash
# Sets up everything on a fresh machine: a virtualenv with the project, a Docker engine and the
# base image. Idempotent: a second run reuses what exists and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# Engine (installed and started when none answers) and the base image (built offline, reused).
.venv/bin/jupyter-actors setup
