"""Keeping state across restarts without the SDK: only the standard library and the HTTP API.

Read the state from the default key-value store at start, save it periodically, and save it once
more on SIGTERM: when no events socket is connected, the platform's graceful stop (migration on a
server shutdown, a graceful abort) sends SIGTERM first and waits its grace period before SIGKILL.
"""

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

API = os.environ["APIFY_API_BASE_URL"] + "/v2"
STORE = os.environ["APIFY_DEFAULT_KEY_VALUE_STORE_ID"]
HEADERS = {"Authorization": "Bearer " + os.environ["APIFY_TOKEN"]}


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {**HEADERS, **({"Content-Type": "application/json"} if body is not None else {})}
    with urllib.request.urlopen(urllib.request.Request(API + path, data=data, method=method, headers=headers)) as r:
        return r.read()


def load(key, default):
    try:
        return json.loads(call("GET", f"/key-value-stores/{STORE}/records/{key}"))
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return default
        raise


def save(key, value):
    call("PUT", f"/key-value-stores/{STORE}/records/{key}", value)


actor_input = load("INPUT", {}) or {}
state = load("STATE", {"position": 0})
if state["position"]:
    print(f"resuming from {state['position']}", flush=True)


def on_sigterm(signum, frame):
    save("STATE", state)
    print(f"saved {state['position']} on SIGTERM", flush=True)
    sys.exit(143)


signal.signal(signal.SIGTERM, on_sigterm)
last_save = time.monotonic()
while state["position"] < actor_input.get("n", 20):
    state["position"] += 1
    print(f"count {state['position']}", flush=True)
    if time.monotonic() - last_save > 5:
        save("STATE", state)
        last_save = time.monotonic()
    time.sleep(actor_input.get("pause", 0.5))
save("STATE", state)
save("OUTPUT", {"final": state["position"]})
