#!/usr/bin/env bash
# Sets up everything on a fresh machine: a virtualenv with the project (which builds the JupyterLab
# extension from source), a Docker engine and the base image. `--for-tests` also installs Debian's
# chromium for the browser tests, and configurable-http-proxy (npm) for the JupyterHub test. Idempotent: a second run reuses what exists and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests also need Debian's chromium (browser tests) and docker-registry (image pushes for cluster runs).
if [ "${1:-}" = "--for-tests" ] && { ! command -v chromium >/dev/null 2>&1 || ! command -v docker-registry >/dev/null 2>&1; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium docker-registry >/dev/null
    else
        echo "The tests need Debian's chromium and docker-registry: apt-get install chromium docker-registry" >&2
    fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# The JupyterHub test's proxy (configurable-http-proxy, from npm) goes into the virtualenv's bin.
if [ "${1:-}" = "--for-tests" ] && [ ! -x .venv/bin/configurable-http-proxy ]; then
    if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    fi
    npm install --global --prefix .venv --silent --no-fund --no-audit configurable-http-proxy
fi
# Engine (installed and started when none answers) and the base image (built offline, reused).
.venv/bin/jupyter-actors setup
