"""Hostile load on a real server: eight runs, or eight clients, each send 100 MiB at once (issue 19).

    PYTHONPATH=. .venv/bin/python benchmarks/hostile_load.py [--mib 100] [--clients 8]

While they do, a probe GETs Jupyter's ``/api/status`` every 50 ms (its slowest answer is the event
loop's worst stall) and the server's resident memory is sampled (and its peak read from the kernel).
Scenarios: record PUTs, dataset pushes of ~1 KiB items, gzip-compressed pushes, and hostile pushes of
``[{},{},...]`` (refused before parsing). Targets: no stall over 100 ms, server under 500 MB.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import psutil

from jupyter_actors.server.process import ServerProcess

MiB = 1024 * 1024


class Probe(threading.Thread):
    """Polls ``/api/status`` every 50 ms and samples the server's RSS, until stopped."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.process = psutil.Process(server.process.pid)
        self.stop_event = threading.Event()
        self.latencies: list[float] = []
        self.rss: list[int] = []

    def run(self) -> None:
        with httpx.Client(headers={"Authorization": f"token {self.server.token}"}, timeout=60) as client:
            while not self.stop_event.is_set():
                started = time.perf_counter()
                client.get(f"{self.server.url}api/status").raise_for_status()
                self.latencies.append(time.perf_counter() - started)
                self.rss.append(self.process.memory_info().rss)
                self.stop_event.wait(max(0.0, 0.05 - (time.perf_counter() - started)))


def bodies(kind: str, size: int) -> tuple[bytes, dict]:
    if kind == "record":
        return b"x" * size, {"Content-Type": "application/octet-stream"}
    if kind in ("push", "push-gzip"):
        item = b'{"pad": "' + b"y" * 1014 + b'"}'  # 1 KiB: 100 MiB is 102 400 items... over the cap
        count = min(size // (len(item) + 1), 100_000)
        body = b"[" + b",".join([item] * count) + b"]"
        if kind == "push-gzip":
            return gzip.compress(body, 1), {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return body, {"Content-Type": "application/json"}
    if kind == "push-tiny":
        count = size // 3
        return b"[" + b",".join([b"{}"] * count) + b"]", {"Content-Type": "application/json"}
    raise ValueError(kind)


def send(job: tuple) -> int:
    api_url, token, kind, store, body, headers = job
    path = f"/key-value-stores/{store}/records/big" if kind == "record" else f"/datasets/{store}/items"
    with httpx.Client(base_url=api_url + "/v2", headers={"Authorization": f"Bearer {token}"}, timeout=600) as client:
        return client.request("PUT" if kind == "record" else "POST", path, content=body, headers=headers).status_code


def scenario(server: ServerProcess, kind: str, clients: int, size: int) -> dict:
    body, headers = bodies(kind, size)
    with server.client() as client:
        stores = []
        for i in range(clients):
            collection = "key-value-stores" if kind == "record" else "datasets"
            stores.append(client.post(f"/{collection}", params={"name": f"{kind}-{i}"}).json()["data"]["id"])
    probe = Probe(server)
    probe.start()
    time.sleep(0.5)  # a baseline of probes before the load

    started = time.perf_counter()
    # Processes, not threads: a sender's GIL would delay the probe and count as the server's stall.
    with ProcessPoolExecutor(clients) as pool:
        jobs = [(server.api_url, server.token, kind, store, body, headers) for store in stores]
        statuses = list(pool.map(send, jobs))
    elapsed = time.perf_counter() - started
    time.sleep(0.5)
    probe.stop_event.set()
    probe.join()
    peak = max(probe.rss)
    return {"scenario": kind, "body_mib": round(len(body) / MiB, 1), "statuses": sorted(set(statuses)),
            "seconds": round(elapsed, 1), "max_stall_ms": round(max(probe.latencies) * 1000),
            "probes": len(probe.latencies), "peak_rss_mb": round(peak / 1e6)}


#: Each run pushes ``--mib`` of ~1 KiB items the way the SDKs do: in pushes just under a run's 9 MiB cap.
PUSHER = """import json, os, time, urllib.request
total = PUSH_MIB * 2**20
item = {"pad": "y" * 1014}
batch = json.dumps([item] * 8500).encode()  # 8.3 MiB
url = f"{os.environ['APIFY_API_BASE_URL']}/v2/datasets/{os.environ['APIFY_DEFAULT_DATASET_ID']}/items"
headers = {"Authorization": f"Bearer {os.environ['APIFY_TOKEN']}", "Content-Type": "application/json"}
sent = 0
while sent < total:
    urllib.request.urlopen(urllib.request.Request(url, data=batch, headers=headers), timeout=600).read()
    sent += len(batch)
print("pushed", sent // 2**20, "MiB", flush=True)
"""


def runs_scenario(server: ServerProcess, runs: int, size: int) -> dict:
    """``runs`` actor runs each push ``size`` bytes through the actor API with their own tokens."""
    from jupyter_actors.notebook import Client, actors

    client = Client(server.api_url, server.token)
    actors.define("pusher", PUSHER.replace("PUSH_MIB", str(size // MiB)), client=client)
    actors.build("pusher", client=client)
    probe = Probe(server)
    probe.start()
    time.sleep(0.5)  # a baseline of probes before the load
    started = time.perf_counter()
    with server.client() as http:
        ids = [http.post("/acts/pusher/runs", params={"memory": 1024}).json()["data"]["id"] for _ in range(runs)]
        finished = [http.get(f"/actor-runs/{run_id}", params={"waitForFinish": 60}).json()["data"] for run_id in ids]
        while any(run["status"] in ("READY", "RUNNING") for run in finished):
            finished = [http.get(f"/actor-runs/{run['id']}", params={"waitForFinish": 60}).json()["data"]
                        for run in finished]
        items = [http.get(f"/datasets/{run['defaultDatasetId']}").json()["data"]["itemCount"] for run in finished]
    elapsed = time.perf_counter() - started
    probe.stop_event.set()
    probe.join()
    client.close()
    return {"scenario": f"{runs} runs push", "pushed_mib": size // MiB,
            "statuses": sorted({run["status"] for run in finished}), "items": sorted(set(items)),
            "seconds": round(elapsed, 1), "max_stall_ms": round(max(probe.latencies) * 1000),
            "probes": len(probe.latencies), "peak_rss_mb": round(max(probe.rss) / 1e6)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--scenarios", default="runs,record,push,push-gzip,push-tiny",
                        help="runs: actor runs push with their own tokens (a run's 9 MiB body cap); the others: "
                             "clients send one body each with the user's token")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with ServerProcess(root) as server:
            for kind in args.scenarios.split(","):
                if kind == "runs":
                    print(runs_scenario(server, args.clients, args.mib * MiB), flush=True)
                else:
                    print(scenario(server, kind, args.clients, args.mib * MiB), flush=True)
        remove_images(server.instance_id())


def remove_images(instance: str | None) -> None:
    """The pusher's images (its runs' containers are gone with the runs)."""
    import docker

    if instance is None:
        return
    client = docker.from_env()
    for image in client.api.images(filters={"label": f"jupyter-actors.instance={instance}"}):
        client.api.remove_image(image["Id"], force=True)


if __name__ == "__main__":
    main()
