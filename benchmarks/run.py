"""jupyter-actors benchmarks: each figure side by side with the raw alternative, measured in one run.

    .venv/bin/python benchmarks/run.py            # full sizes (minutes)
    .venv/bin/python benchmarks/run.py --smoke    # tiny sizes (the test suite runs this)
    .venv/bin/python benchmarks/run.py --only start_latency datasets --items 100000 --reps 5

Prints one table (median, min, max over repetitions after a warm-up; raw; ratio; target) and writes
the same as JSON (``--json``, default benchmarks/results/latest.json) so two runs can be compared,
with a PNG chart beside it (start-latency distributions, dataset read times).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import docker
import httpx
import orjson
import pandas as pd

from jupyter_actors.platform.config import DEFAULT_BASE_IMAGE
from jupyter_actors.platform.core import LABEL_RUN, NETWORK_NAME
from jupyter_actors.platform.limits import limits_for
from jupyter_actors.server.process import ServerProcess

TRIVIAL = """
import json, os, time, urllib.request
base = os.environ.get("APIFY_API_BASE_URL")
if base:  # the raw alternative runs the same image without an API
    started = time.perf_counter()
    request = urllib.request.Request(
        f"{base}/v2/key-value-stores/{os.environ['APIFY_DEFAULT_KEY_VALUE_STORE_ID']}/records/OUTPUT",
        data=b'{"ok": true}', method="PUT",
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["APIFY_TOKEN"]})
    urllib.request.urlopen(request).read()
    print(f"PUT {time.perf_counter() - started:.4f}")  # the actor's own work the raw run does not do
print("done")
"""

PRINTER = """
import os, sys
n = int(os.environ.get("LINES", "200000"))
out = sys.stdout
for i in range(n):
    out.write(f"line {i}\\n")
"""

PUSHER = """
import json, os, time, urllib.request
n, batch = int(os.environ["ITEMS"]), 1000
url = f"{os.environ['APIFY_API_BASE_URL']}/v2/datasets/{os.environ['APIFY_DEFAULT_DATASET_ID']}/items"
headers = {"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["APIFY_TOKEN"]}
started = time.monotonic()
for start in range(0, n, batch):
    items = [{"i": i, "name": f"item {i}", "value": i * 0.5} for i in range(start, min(n, start + batch))]
    urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(items).encode(), headers=headers)).read()
print(f"PUSHED {n} {time.monotonic() - started:.3f}")
"""

PUSHER_SDK = """
import asyncio, os, time
from apify import Actor

async def main():
    async with Actor:
        n, batch = int(os.environ["ITEMS"]), 1000
        started = time.monotonic()
        for start in range(0, n, batch):
            await Actor.push_data([{"i": i, "name": f"item {i}", "value": i * 0.5}
                                   for i in range(start, min(n, start + batch))])
        print(f"PUSHED {n} {time.monotonic() - started:.3f}")

asyncio.run(main())
"""


KERNEL_CONSUMER = """
import time, jupyter_actors
started = time.perf_counter()
run = jupyter_actors.start("printer", memory=1024)
count, last = 0, -1
for line in run.follow_log():
    text = line.split(" ", 1)[-1]
    if text.startswith("line "):
        number = int(text[5:])
        assert number == last + 1, f"lost or reordered: {last} -> {number}"
        last, count = number, count + 1
print("KERNEL", count, time.perf_counter() - started)
"""


@dataclass
class Row:
    name: str
    unit: str
    ours: list[float]
    raw: list[float] = field(default_factory=list)
    target: str = ""
    note: str = ""
    lower_is_better: bool = True
    max_ratio: float | None = None  # target: ours / raw at most this
    min_ratio: float | None = None  # target: ours / raw at least this
    max_value: float | None = None  # target: ours (median) at most this

    def verdict(self) -> str:
        summary = self.summary()
        median, ratio = (summary["ours_stats"] or {}).get("median"), summary["ratio"]
        checks = [
            (self.max_ratio, lambda: ratio is not None and ratio <= self.max_ratio),
            (self.min_ratio, lambda: ratio is not None and ratio >= self.min_ratio),
            (self.max_value, lambda: median is not None and median <= self.max_value),
        ]
        relevant = [check for limit, check in checks if limit is not None]
        if not relevant:
            return ""
        return "met" if all(check() for check in relevant) else "MISSED"

    def summary(self) -> dict:
        def stats(values):
            return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None
        ours, raw = stats(self.ours), stats(self.raw)
        ratio = ours["median"] / raw["median"] if ours and raw and raw["median"] else None
        return {**asdict(self), "ours_stats": ours, "raw_stats": raw, "ratio": ratio}

    def report(self) -> dict:
        return {**self.summary(), "verdict": self.verdict()}


def machine() -> dict:
    client = docker.from_env()
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "docker": client.version().get("Version"),
        "python": sys.version.split()[0],
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


class Bench:
    def __init__(self, root: Path, smoke: bool, reps: int, items: int | None = None) -> None:
        self.root, self.smoke, self.reps, self.items = root, smoke, reps, items
        self.dataset_reads: dict[str, list[float]] = {}
        self.server = ServerProcess(root / "server")
        (root / "server").mkdir(parents=True)
        self.docker = docker.from_env()
        self.rows: list[Row] = []

    # -- helpers ----------------------------------------------------------------------------------

    def define(self, name: str, main_py: str, env: dict[str, str] | None = None,
               server: ServerProcess | None = None) -> str:
        """Create and build an actor (environment variables through its version, as Apify does)."""
        with (server or self.server).client() as client:
            body = {"name": name, "versions": [{"versionNumber": "0.0", "sourceType": "SOURCE_FILES",
                    "envVars": [{"name": k, "value": v} for k, v in (env or {}).items()],
                    "sourceFiles": [{"name": "main.py", "format": "TEXT", "content": main_py}]}]}
            client.post("/actors", json=body).raise_for_status()
            build = client.post(f"/actors/{name}/builds", params={"waitForFinish": 60}).json()["data"]
            assert build["status"] == "SUCCEEDED", build
            return build["imageName"]

    def start_run(self, client: httpx.Client, name: str, memory: int, env_input: dict | None = None) -> dict:
        response = client.post(f"/actors/{name}/runs", params={"memory": memory, "timeout": 600}, json=env_input)
        response.raise_for_status()
        return response.json()["data"]

    def wait_status(self, client: httpx.Client, run_id: str, done, *, long_poll: bool = True) -> dict:
        """Long-poll for terminal statuses; poll every 5 ms for others (the API long-polls only to the end)."""
        while True:
            params = {"waitForFinish": 5} if long_poll else {}
            run = client.get(f"/actor-runs/{run_id}", params=params).json()["data"]
            if done(run):
                return run
            if not long_poll:
                time.sleep(0.005)

    def raw_run(self, image: str, memory: int, command=None, env=None) -> tuple[float, float, object]:
        limits = limits_for(memory)
        started = time.perf_counter()
        container = self.docker.containers.create(image, command=command, environment=env or {},
                                                  mem_limit=limits.memory_bytes, memswap_limit=limits.memory_bytes,
                                                  nano_cpus=limits.nano_cpus, init=True, network=NETWORK_NAME)
        container.start()
        running = time.perf_counter() - started
        return started, running, container

    def server_pid(self) -> int:
        return self.server.process.pid  # type: ignore[union-attr]

    def proc_status(self, key: str) -> int:
        for line in Path(f"/proc/{self.server_pid()}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.server_pid()}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    # -- 1. start latency -------------------------------------------------------------------------

    def start_latency(self) -> None:
        image = self.define("trivial", TRIVIAL)
        for memory in (1024, 128):
            to_running, to_done, raw_running, raw_done, overhead, actor_put = [], [], [], [], [], []
            with self.server.client() as client:
                for rep in range(self.reps + 1):
                    since = time.time()
                    started = time.perf_counter()
                    run = self.start_run(client, "trivial", memory)
                    run = self.wait_status(client, run["id"], lambda r: r["status"] != "READY", long_poll=False)
                    running = time.perf_counter() - started
                    run = self.wait_status(client, run["id"], lambda r: r["isTerminal"])
                    record = client.get(f"/key-value-stores/{run['defaultKeyValueStoreId']}/records/OUTPUT")
                    assert run["status"] == "SUCCEEDED" and record.status_code == 200, run
                    done = time.perf_counter() - started
                    ours_alive = self.container_lifetime(since, {"label": f"{LABEL_RUN}={run['id']}"})
                    log = client.get(f"/actor-runs/{run['id']}/log").text
                    put_secs = float(log.split("PUT ", 1)[1].split()[0])
                    since = time.time()
                    t0, raw_run_s, container = self.raw_run(image, memory)
                    container.wait()
                    raw_total = time.perf_counter() - t0
                    raw_alive = self.container_lifetime(since, {"container": container.id})
                    container.remove(force=True)
                    if rep == 0:
                        continue  # warm-up
                    to_running.append(running)
                    to_done.append(done)
                    raw_running.append(raw_run_s)
                    raw_done.append(raw_total)
                    # Time outside the container, ours minus raw: the actor's own run time (seconds of
                    # CPU-starved Python start at 128 MB, varying by as much) drops out of the figure.
                    overhead.append((done - ours_alive) - (raw_total - raw_alive))
                    actor_put.append(put_secs)
            self.rows += [
                Row(f"start -> RUNNING, {memory} MB", "s", to_running, raw_running, note="raw: create+start"),
                Row(f"start -> SUCCEEDED + OUTPUT, {memory} MB", "s", to_done, raw_done, target="<= 1.3x raw",
                    note="raw: create+start+wait", max_ratio=1.3),
                Row(f"platform overhead, {memory} MB", "s", overhead, target="< 0.050 s median", max_value=0.050,
                    note="time outside the container (engine start->die), ours minus raw"),
                Row(f"  the actor's own OUTPUT PUT, {memory} MB", "s", actor_put,
                    note=f"inside the container's time, at its {memory / 4096:g}-core quota"),
            ]

    def container_lifetime(self, since: float, filters: dict) -> float:
        """Seconds between the engine's start and die events of one container (its own run time)."""
        events = self.docker.api.events(since=since - 1, until=time.time() + 0.001, decode=True,
                                        filters={**filters, "type": "container", "event": ["start", "die"]})
        stamps = {event["Action"]: event["timeNano"] for event in events}
        return (stamps["die"] - stamps["start"]) / 1e9

    def startup_boost(self) -> None:
        """The optional boost (off by default): one core for a run's first seconds, then its share."""
        boosted = ServerProcess(self.root / "boost-server", startup_boost_secs=5.0)
        try:
            boosted.start()
            image = self.define("trivial", TRIVIAL, server=boosted)
            ours, raw = [], []
            with boosted.client() as client:
                for rep in range(self.reps + 1):
                    started = time.perf_counter()
                    run = self.wait_status(client, self.start_run(client, "trivial", 128)["id"],
                                           lambda r: r["isTerminal"])
                    assert run["status"] == "SUCCEEDED", run
                    done = time.perf_counter() - started
                    t0, _, container = self.raw_run(image, 128)
                    container.wait()
                    raw_total = time.perf_counter() - t0
                    container.remove(force=True)
                    if rep:
                        ours.append(done)
                        raw.append(raw_total)
            self.rows.append(Row("start -> SUCCEEDED + OUTPUT, 128 MB, start-up boost 5 s", "s", ours, raw,
                                 note="raw: create+start+wait at the 1/32-core share, no boost"))
        finally:
            boosted.stop()
            instance = boosted.instance_id()
            if instance:
                self.remove_instance(instance)

    # -- 2. log streaming -------------------------------------------------------------------------

    def log_streaming(self) -> None:
        lines = 2000 if self.smoke else 200_000
        image = self.define("printer", PRINTER, {"LINES": str(lines)})
        ours, raw, growth = [], [], []
        for rep in range(max(1, self.reps // 2) + 1):
            with self.server.client() as client:
                rss_before = self.proc_status("VmRSS")
                started = time.perf_counter()
                run = self.start_run(client, "printer", 1024)
                count, last = 0, -1
                with client.stream("GET", f"/actor-runs/{run['id']}/log", params={"stream": "true"}) as response:
                    for line in response.iter_lines():
                        if " line " in f" {line.split(' ', 1)[-1]}":
                            number = int(line.rsplit(" ", 1)[1])
                            assert number == last + 1, f"lost or reordered: {last} -> {number}"
                            last, count = number, count + 1
                elapsed = time.perf_counter() - started
                assert count == lines, (count, lines)
                growth_mb = (self.proc_status("VmRSS") - rss_before) / 2**20
            t0, _, container = self.raw_run(image, 1024, env={"LINES": str(lines)})
            raw_count = sum(1 for _ in container.logs(stream=True, follow=True))
            raw_elapsed = time.perf_counter() - t0
            container.remove(force=True)
            if rep == 0:
                continue
            ours.append(count / elapsed)
            raw.append(raw_count / raw_elapsed if raw_count else float("nan"))
            growth.append(growth_mb)
        kernel = self.kernel_log_rates(lines, max(1, self.reps // 2))
        self.rows += [
            Row(f"log stream, {lines} lines", "lines/s", ours, raw, target=">= 0.5x raw", lower_is_better=False,
                note="raw: docker logs -f; zero lines lost or reordered (checked)", min_ratio=0.5),
            Row(f"log stream into a notebook kernel, {lines} lines", "lines/s", kernel, raw, target=">= 0.5x raw",
                lower_is_better=False, min_ratio=0.5,
                note="Run.follow_log() in a real ipykernel; order checked there"),
            Row("server memory growth during log stream", "MB", growth, target="< 50 MB", max_value=50),
        ]

    def kernel_log_rates(self, lines: int, reps: int) -> list[float]:
        """Lines/s of ``Run.follow_log()`` executed in a real kernel (start to last line, as a user sees it)."""
        from jupyter_client.manager import start_new_kernel

        code = KERNEL_CONSUMER.replace("{lines}", str(lines))
        env = {**os.environ, "JUPYTER_ACTORS_API_URL": self.server.api_url, "JUPYTER_ACTORS_TOKEN": self.server.token}
        manager, client = start_new_kernel(kernel_name="python3", env=env)
        rates = []
        try:
            for rep in range(reps + 1):
                printed: list[str] = []

                def collect(msg, printed=printed):
                    if msg["msg_type"] == "stream":
                        printed.append(msg["content"].get("text", ""))

                reply = client.execute_interactive(code, timeout=600, output_hook=collect)
                assert reply["content"]["status"] == "ok", reply["content"]
                count, seconds = "".join(printed).split("KERNEL ", 1)[1].split()[:2]
                assert int(count) == lines, (count, lines)
                if rep:
                    rates.append(lines / float(seconds))
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
        return rates

    # -- 3. dataset write, 4. dataset read -------------------------------------------------------

    def datasets(self) -> None:
        items = self.items or (10_000 if self.smoke else 1_000_000)
        self.define("pusher", PUSHER, {"ITEMS": str(items)})
        with self.server.client() as client:
            run = self.start_run(client, "pusher", 4096)
            run = self.wait_status(client, run["id"], lambda r: r["isTerminal"])
            log = client.get(f"/actor-runs/{run['id']}/log").text
            assert run["status"] == "SUCCEEDED", log
            pushed = float(log.split("PUSHED ", 1)[1].split()[1])
            self.rows.append(Row(f"dataset write, {items} items in batches of 1000 (HTTP)", "items/s",
                                 [items / pushed], lower_is_better=False, note="from inside a container"))
            sdk_items = items if self.smoke else items // 5
            self.define("sdk-pusher", PUSHER_SDK, {"ITEMS": str(sdk_items)})
            sdk_run = self.wait_status(client, self.start_run(client, "sdk-pusher", 4096)["id"],
                                       lambda r: r["isTerminal"])
            sdk_log = client.get(f"/actor-runs/{sdk_run['id']}/log").text
            assert sdk_run["status"] == "SUCCEEDED", sdk_log
            sdk_secs = float(sdk_log.split("PUSHED ", 1)[1].split()[1])
            self.rows.append(Row(f"dataset write, {sdk_items} items with the apify SDK's push_data", "items/s",
                                 [sdk_items / sdk_secs], lower_is_better=False, note="batches of 1000, br-compressed"))
            dataset_id = run["defaultDatasetId"]
            local = self.root / "items.jsonl"
            with (client.stream("GET", f"/datasets/{dataset_id}/items", params={"format": "jsonl"}) as response,
                  open(local, "wb") as handle):
                for chunk in response.iter_bytes():
                    handle.write(chunk)
            crawlee = self.root / "crawlee-dataset"
            crawlee.mkdir()
            with open(local, "rb") as handle:
                for index, line in enumerate(handle, start=1):
                    (crawlee / f"{index:09d}.json").write_bytes(line)
            arrow, as_json, raw, per_file = self.read_times(dataset_id, local, crawlee)
            self.dataset_reads = {"Arrow (format=arrow)": arrow, "JSON (no pyarrow in the kernel)": as_json,
                                  "pandas.read_json(lines=True), local file": raw}
            self.rows += [
                Row(f"dataset read to pandas, Arrow path, {items} items", "s", arrow, raw,
                    target="<= 0.5x pandas.read_json(lines=True) of a local file", max_ratio=0.5,
                    note="Dataset.to_pandas() with pyarrow in the kernel; the server builds the table per read"),
                Row(f"dataset read to pandas, JSON path, {items} items", "s", as_json, raw,
                    target="<= 1.5x pandas.read_json(lines=True) of a local file", max_ratio=1.5,
                    note="Dataset.to_pandas() without pyarrow: format=json, orjson, from_records"),
                Row(f"dataset read, crawlee-style one file per item, {items} items", "s", per_file,
                    arrow, target="ours >= 10x faster", note="'raw' column = ours (Arrow) here", min_ratio=10),
            ]
            shutil.rmtree(crawlee)  # a million files: gone before the next section measures anything
            local.unlink()

    def read_times(self, dataset_id: str, local: Path, crawlee: Path) -> tuple[list[float], ...]:
        """Seconds to a DataFrame: ``to_pandas()`` through Arrow and through JSON (as a kernel without
        pyarrow takes it), ``pandas.read_json`` of the local file, and one JSON file per item; the two
        paths' frames are checked equal. The first repetition is a warm-up."""
        from unittest import mock

        from jupyter_actors.notebook import Client, storages

        notebook = Client(self.server.api_url, self.server.token)
        dataset = storages.Dataset(dataset_id, client=notebook)
        arrow, as_json, raw, per_file = [], [], [], []
        try:
            for rep in range(max(1, self.reps // 2) + 1):
                started = time.perf_counter()
                frame = dataset.to_pandas()
                arrow.append(time.perf_counter() - started)
                with mock.patch.object(storages, "_have_pyarrow", lambda: False):
                    started = time.perf_counter()
                    json_frame = dataset.to_pandas()
                    as_json.append(time.perf_counter() - started)
                started = time.perf_counter()
                reference = pd.read_json(local, lines=True)
                raw.append(time.perf_counter() - started)
                if rep == 0 or not self.smoke or rep == 1:
                    started = time.perf_counter()
                    rows = [orjson.loads(path.read_bytes()) for path in sorted(crawlee.iterdir())]
                    pd.DataFrame(rows)
                    per_file.append(time.perf_counter() - started)
                assert frame.shape == reference.shape
                pd.testing.assert_frame_equal(frame, json_frame)
                del frame, json_frame, reference
        finally:
            notebook.close()
        return arrow[1:] or arrow, as_json[1:] or as_json, raw[1:] or raw, per_file

    # -- 5. key-value records ---------------------------------------------------------------------

    def records(self) -> None:
        """Set and get over the user API beside a plain file, and Jupyter's own floor measured in the same
        loop: per-request figures on a shared VM drift with its load, the paired difference much less."""
        n = 20 if self.smoke else 200
        status_url = self.server.api_url.removesuffix("actors/api") + "api/status"
        with self.server.client() as client:
            store = client.post("/key-value-stores", params={"name": "bench-records"}).json()["data"]["id"]
            for size, label in ((1024, "1 KB"), (1024 * 1024, "1 MB")):
                payload = os.urandom(size)
                put, get, fput, fget, floor = [], [], [], [], []
                path = self.root / "record.bin"
                for i in range(n):
                    started = time.perf_counter()
                    client.put(f"/key-value-stores/{store}/records/r{i % 10}", content=payload,
                               headers={"Content-Type": "application/octet-stream"}).raise_for_status()
                    put.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    assert len(client.get(f"/key-value-stores/{store}/records/r{i % 10}").content) == size
                    get.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    client.get(status_url).raise_for_status()  # no jupyter-actors code on this path
                    floor.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    with open(path, "wb") as handle:
                        handle.write(payload)
                        handle.flush()
                        os.fsync(handle.fileno())
                    fput.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    path.read_bytes()
                    fget.append(time.perf_counter() - started)
                if size == 1024:
                    self.rows.append(Row("Jupyter's own GET /api/status (reference)", "s", floor,
                                         note="no jupyter-actors code: the server's per-request floor"))
                for name, ours, raw, raw_name in (("set", put, fput, "write+fsync"), ("get", get, fget, "read")):
                    p99 = sorted(ours)[max(0, int(len(ours) * 0.99) - 1)]
                    self.rows.append(Row(f"record {name} {label} (p99 {p99 * 1000:.1f} ms)", "s", ours, raw,
                                         target="low single-digit ms" if size == 1024 else "",
                                         note=f"raw: file {raw_name}",
                                         max_value=0.005 if size == 1024 else None))
                    if size == 1024:
                        self.rows.append(Row(f"  record {name} {label} above Jupyter's floor", "s",
                                             [mine - base for mine, base in zip(ours, floor, strict=True)],
                                             note="paired with the /api/status call of the same iteration"))

    # -- 6. concurrency ---------------------------------------------------------------------------

    def concurrency(self) -> None:
        count = 3 if self.smoke else 50
        self.define("trivial", TRIVIAL)
        with self.server.client() as client:
            cpu_before, rss_before = self.cpu_seconds(), self.proc_status("VmRSS")
            started = time.perf_counter()
            runs = [self.start_run(client, "trivial", 128) for _ in range(count)]
            pending = {run["id"] for run in runs}
            all_running = None
            statuses = {}
            while True:
                listing = client.get("/actor-runs", params={"desc": "true", "limit": count}).json()["data"]["items"]
                statuses = {run["id"]: run["status"] for run in listing if run["id"] in pending}
                if all_running is None and all(s != "READY" for s in statuses.values()):
                    all_running = time.perf_counter() - started
                if all(s in ("SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED") for s in statuses.values()):
                    break
                time.sleep(0.2)  # a polling benchmark loop, not test synchronisation
            total = time.perf_counter() - started
            succeeded = sum(1 for s in statuses.values() if s == "SUCCEEDED")
            peak = self.proc_status("VmHWM")
            cpu = self.cpu_seconds() - cpu_before
            per_run = (self.proc_status("VmRSS") - rss_before) / count / 2**20
        self.rows += [
            Row(f"{count} runs of 128 MB: time until all RUNNING", "s", [all_running or total],
                note=f"{succeeded}/{count} SUCCEEDED in {total:.1f} s"),
            Row(f"{count} runs: server CPU", "s", [cpu]),
            Row(f"{count} runs: server peak memory", "MB", [peak / 2**20]),
            Row(f"{count} runs: server memory per run", "MB", [per_run]),
        ]

    # -- 7. resume --------------------------------------------------------------------------------

    def resume(self) -> None:
        count = 2 if self.smoke else 10
        self.server.kill()
        started = time.perf_counter()
        self.server.start()
        bare_start = time.perf_counter() - started  # the reference: nothing to adopt
        self.define("sleeper", "import time\nprint('up', flush=True)\ntime.sleep(600)\n")
        with self.server.client() as client:
            runs = [self.start_run(client, "sleeper", 128) for _ in range(count)]
            for run in runs:
                self.wait_status(client, run["id"], lambda r: r["status"] == "RUNNING")
        self.server.kill()
        started = time.perf_counter()
        self.server.start()  # reconciliation runs before the server answers
        adopted = time.perf_counter() - started
        with self.server.client() as client:
            statuses = [client.get(f"/actor-runs/{run['id']}").json()["data"]["status"] for run in runs]
            for run in runs:
                client.post(f"/actor-runs/{run['id']}/abort")
        assert statuses == ["RUNNING"] * count, statuses
        self.rows.append(Row(f"server start until {count} running runs adopted", "s", [adopted], [bare_start],
                             note="after kill -9 of the server; raw: the same server start with no runs"))
        self.lost_runs(2 if self.smoke else 5)

    def lost_runs(self, count: int) -> None:
        """Kill the server and every run's container (as a host crash would); time the restarts."""

        def crash(server: ServerProcess, containers: list[str]) -> None:
            server.kill()
            for container_id in containers:
                self.docker.api.kill(container_id)  # SIGKILL, no stop intent: lost

        self.time_lost_runs(self.server, count, crash, "host crash",
                            "server kill -9, containers SIGKILLed: restarted with the same id and storages")

    def engine_restart(self) -> None:
        """The same after a real engine restart: dockerd stops its containers, the server is down meanwhile.
        On a private engine (tests/private_engine.py), so the engine everything else uses is never touched."""
        sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
        from private_engine import PrivateEngine

        engine = PrivateEngine()
        server = ServerProcess(self.root / "engine-server")
        (self.root / "engine-server").mkdir(parents=True)
        try:
            engine.start()
            engine.prepare_for_runs(self.docker, DEFAULT_BASE_IMAGE)
            server.env["DOCKER_HOST"] = engine.docker_host
            server.start()

            def crash(server: ServerProcess, containers: list[str]) -> None:
                server.kill()
                engine.restart()  # SIGTERM to dockerd: without live-restore it stops every container

            self.time_lost_runs(server, 2 if self.smoke else 5, crash, "engine restart",
                                "dockerd restarted while the server was down (engine stop "
                                "{stop_secs:.1f} s, start {start_secs:.1f} s)", timings=engine.timings)
        finally:
            server.stop()
            instance = server.instance_id()
            if instance and engine.client is not None:
                self.remove_instance(instance, engine.client)  # its builds first: they sit on the base image
            left = engine.cleanup()
            if left:
                print(f"the private engine left things behind: {left}", file=sys.stderr)

    def time_lost_runs(self, server: ServerProcess, count: int, crash, what: str, note: str,
                       timings: dict | None = None) -> None:
        """Counters past their first save, then ``crash``; time from the next server start until every
        run resumed from its persisted position, and count the steps it redid."""
        from jupyter_actors.cli import EXAMPLES_DIR

        self.define("lost-counter", (EXAMPLES_DIR / "plain-http-state" / "main.py").read_text(), server=server)
        with server.client() as client:
            runs = [client.post("/actors/lost-counter/runs", params={"memory": 1024, "timeout": 600},
                                json={"n": 10_000, "pause": 0.2}).json()["data"] for _ in range(count)]
            deadline = time.monotonic() + 300
            for run in runs:  # past its first save (every 5 s at most)
                while "count 40" not in client.get(f"/actor-runs/{run['id']}/log").text:
                    assert time.monotonic() < deadline, "the counters did not get going"
                    time.sleep(0.1)  # benchmark pacing, not test synchronisation
            containers = [self.container_of(server, run["id"]) for run in runs]
        crash(server, containers)
        started = time.perf_counter()
        server.start()
        restarted_at, last_counts = {}, {}
        with server.client() as client:
            for run in runs:
                log = client.get(f"/actor-runs/{run['id']}/log").text
                last_counts[run["id"]] = max(int(line.rsplit(" ", 1)[1]) for line in log.splitlines()
                                             if line.split(" ", 1)[1].startswith("count "))
            deadline = time.monotonic() + 300
            while len(restarted_at) < count:
                assert time.monotonic() < deadline, f"only {len(restarted_at)} of {count} lost runs resumed"
                for run in runs:
                    if run["id"] not in restarted_at and "resuming from" in client.get(
                            f"/actor-runs/{run['id']}/log").text:
                        restarted_at[run["id"]] = time.perf_counter() - started
                time.sleep(0.1)
            redone = []
            for run in runs:
                log = client.get(f"/actor-runs/{run['id']}/log").text
                resumed = int(log.split("resuming from ", 1)[1].split()[0])
                redone.append(last_counts[run["id"]] - resumed)
                client.post(f"/actor-runs/{run['id']}/abort")
        self.rows += [
            Row(f"{what}: server start until {count} lost runs resumed", "s", [max(restarted_at.values())],
                note=note.format(**(timings or {}))),
            Row(f"{what}: work redone after a lost run restarted", "steps of 0.2 s", redone,
                target="<= one persist interval (5 s = 25 steps)", max_value=25),
        ]

    def container_of(self, server: ServerProcess, run_id: str) -> str:
        from jupyter_actors.platform.registry import Registry

        registry = Registry(server.data_dir / "registry.sqlite")
        try:
            return registry.query_one("SELECT container_id FROM runs WHERE id = ?", (run_id,))["container_id"]
        finally:
            registry.close()

    # -- 8. the same on Docker Swarm ---------------------------------------------------------------

    def swarm(self) -> None:
        """Start latency and 10 concurrent runs on a single-node swarm beside the local engine."""
        state = self.docker.info()["Swarm"]
        created = state["LocalNodeState"] == "inactive"
        if created:
            self.docker.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        elif not state.get("ControlAvailable"):
            print("skipping swarm: this engine is in a swarm but not a manager", file=sys.stderr)
            return
        swarm = ServerProcess(self.root / "swarm-server", backend="swarm")
        (self.root / "swarm-server").mkdir(parents=True)
        try:
            swarm.start()
            single, concurrent = {}, {}
            count = 3 if self.smoke else 10
            for label, server in (("local", self.server), ("swarm", swarm)):
                self.define("trivial", TRIVIAL, server=server)
                with server.client() as client:
                    single[label] = []
                    for rep in range(self.reps + 1):
                        started = time.perf_counter()
                        run = self.wait_status(client, self.start_run(client, "trivial", 1024)["id"],
                                               lambda r: r["isTerminal"])
                        assert run["status"] == "SUCCEEDED", run
                        if rep:
                            single[label].append(time.perf_counter() - started)
                    started = time.perf_counter()
                    runs = [self.start_run(client, "trivial", 1024) for _ in range(count)]
                    finals = [self.wait_status(client, run["id"], lambda r: r["isTerminal"]) for run in runs]
                    assert all(run["status"] == "SUCCEEDED" for run in finals), finals
                    concurrent[label] = [time.perf_counter() - started]
            self.rows += [
                Row("swarm: start -> SUCCEEDED, 1024 MB", "s", single["swarm"], single["local"],
                    note="'raw' column = the local engine through the same API"),
                Row(f"swarm: {count} concurrent runs of 1024 MB until all SUCCEEDED", "s", concurrent["swarm"],
                    concurrent["local"], note="'raw' column = the local engine"),
            ]
        finally:
            swarm.stop()
            instance = swarm.instance_id()
            if instance:
                for service in self.docker.api.services(filters={"label": f"jupyter-actors.instance={instance}"}):
                    self.docker.api.remove_service(service["ID"])
                self.remove_instance(instance)
            if created:
                self.docker.swarm.leave(force=True)

    # -- report -----------------------------------------------------------------------------------

    def run_all(self, only: list[str] | None) -> None:
        self.server.start()
        try:
            for name in ("start_latency", "startup_boost", "log_streaming", "datasets", "records", "concurrency",
                         "resume", "engine_restart", "swarm"):
                if only and name not in only:
                    continue
                print(f"... {name}", file=sys.stderr, flush=True)
                os.sync()  # write back what earlier sections left dirty, so it does not land in this one's figures
                getattr(self, name)()
        finally:
            self.server.stop()
            instance = self.server.instance_id()
            if instance:
                self.remove_instance(instance)

    def remove_instance(self, instance: str, client: docker.DockerClient | None = None) -> None:
        """Containers and images a benchmark server made (on ``client``'s engine, default the main one)."""
        api = (client or self.docker).api
        label = f"jupyter-actors.instance={instance}"
        for container in api.containers(all=True, filters={"label": label}):
            api.remove_container(container["Id"], force=True)
        for image in api.images(filters={"label": label}):
            with contextlib.suppress(docker.errors.APIError):
                api.remove_image(image["Id"], force=True)


def render(rows: list[Row], info: dict) -> str:
    lines = [f"machine: {info['cores']} cores, {info['memory_gb']} GiB, Docker {info['docker']}, "
             f"Python {info['python']}",
             f"{'figure':58} {'unit':8} {'ours median [min-max]':28} {'raw median':12} {'ratio':7} {'verdict':7} "
             "target / note"]
    for row in rows:
        summary = row.summary()
        ours = summary["ours_stats"]
        raw = summary["raw_stats"]

        def fmt(v):
            return f"{v:,.4g}"

        ours_text = f"{fmt(ours['median'])} [{fmt(ours['min'])}-{fmt(ours['max'])}]" if ours else "-"
        raw_text = fmt(raw["median"]) if raw else "-"
        ratio = f"{summary['ratio']:.2f}x" if summary["ratio"] else "-"
        verdict = row.verdict()
        lines.append(f"{row.name:58} {row.unit:8} {ours_text:28} {raw_text:12} {ratio:7} {verdict:7} {row.target} "
                     f"{row.note}".rstrip())
    return "\n".join(lines)


def write_chart(rows: list[Row], dataset_reads: dict[str, list[float]], path: Path) -> Path | None:
    """A PNG beside the JSON: start-to-SUCCEEDED distributions (ours against raw, per memory size) and
    the dataset read times of both to_pandas paths against pandas.read_json. None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        return None
    starts = [row for row in rows if row.name.startswith("start -> SUCCEEDED + OUTPUT, ") and row.raw
              and "boost" not in row.name]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    series, labels = [], []
    for row in starts:
        memory = row.name.rsplit(", ", 1)[1]
        series += [row.ours, row.raw]
        labels += [f"ours\n{memory}", f"raw docker-py\n{memory}"]
    if series:
        left.boxplot(series, showfliers=True)
        left.set_xticks(range(1, len(labels) + 1), labels)
    left.set_title("start -> SUCCEEDED (trivial actor)")
    left.set_ylabel("seconds")
    if dataset_reads:
        names = list(dataset_reads)
        medians = [statistics.median(values) if values else 0 for values in dataset_reads.values()]
        bars = right.bar(range(len(names)), medians, color=["tab:green", "tab:blue", "tab:gray"][:len(names)])
        for index, values in enumerate(dataset_reads.values()):
            right.scatter([index] * len(values), values, color="black", s=12, zorder=3)
        right.bar_label(bars, fmt="%.3f s")
        right.set_xticks(range(len(names)), [name.replace(" (", "\n(").replace(", ", ",\n") for name in names])
    item_rows = [row.name for row in rows if row.name.startswith("dataset read to pandas, Arrow path")]
    right.set_title("dataset to DataFrame" + (f" ({item_rows[0].rsplit(', ', 1)[1]})" if item_rows else ""))
    right.set_ylabel("seconds (median; dots: each repetition)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, few repetitions")
    parser.add_argument("--reps", type=int, help="repetitions after the warm-up")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks")
    parser.add_argument("--items", type=int, help="dataset size for the write and read figures "
                        "(default 1,000,000; 10,000 with --smoke)")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "latest.json",
                        help="where the JSON goes; the PNG chart is written beside it (same name, .png)")
    args = parser.parse_args(argv)
    reps = args.reps or (2 if args.smoke else 5)
    with tempfile.TemporaryDirectory(prefix="ja-bench-") as tmp:
        bench = Bench(Path(tmp), args.smoke, reps, args.items)
        bench.run_all(args.only)
    info = machine()
    print(render(bench.rows, info))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": info, "smoke": args.smoke, "items": args.items,
                                     "rows": [row.report() for row in bench.rows]}, indent=2))
    chart = write_chart(bench.rows, bench.dataset_reads, args.json.with_suffix(".png"))
    if chart:
        print(f"chart: {chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
