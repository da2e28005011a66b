"""Host crash images of a data directory taken mid-workload: the platform opens each one consistent.

A writer process creates actors (registry), named datasets (catalog), pushes items and puts records
(storage files) and prints each acknowledged write. At several instants the test freezes it (SIGSTOP:
no write is half-done in the page cache then) and copies its data files without their ``-shm`` (shared
memory, gone with the host), in two images:

- the kill -9 image keeps every WAL: all that was acknowledged must be there.
- the power-loss image keeps the WALs of the registry and the catalog (``synchronous=FULL``: a commit's
  WAL frames are on disk before it is acknowledged) and drops those of the storage files (``NORMAL``:
  after a power loss a storage file may be back at its last checkpoint, or at its empty first page).
  The registry and the catalog must hold every acknowledged write; each storage file must be whole and
  open, pushes whole, records whole, the items of a dataset a gap-free prefix of those acknowledged. A
  storage file frozen in the middle of a checkpoint keeps its WAL (without it the file is torn; on a real
  host its WAL, synced before any checkpoint, is there), so the image stays one a power loss can leave.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from jupyter_actors.platform.config import PlatformConfig
from jupyter_actors.platform.core import Platform
from jupyter_actors.platform.storages import DATASETS, KEY_VALUE_STORES

PER_PUSH = 20
#: Acknowledged writes at which an image is taken (the last ones after storage files' first checkpoints).
INSTANTS = (5, 60, 400, 1200, 2000)
WAIT_SECS = 120.0

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from jupyter_actors.platform.config import PlatformConfig
    from jupyter_actors.platform.core import Platform
    from jupyter_actors.platform.sources import inline_actor

    platform = Platform(PlatformConfig(data_dir=Path(sys.argv[1])))
    storages = platform.storages
    storages.create_dataset("main")
    storages.create_kvs("main")
    n = 0
    while True:
        if n % 10 == 0:
            platform.create_actor(inline_actor(f"actor-{n}", "print(1)"))
            print(f"actor {n}", flush=True)
        if n % 5 == 0:
            storages.create_dataset(f"ds-{n}")
            storages.push_items(f"ds-{n}", {"n": n})
            print(f"dataset {n}", flush=True)
        storages.push_items("main", [{"n": n, "i": i, "pad": "x" * 200} for i in range(PER_PUSH)])
        print(f"push {n}", flush=True)
        storages.set_record("main", f"r{n}", b"%08d" % n * 2048, "application/octet-stream")
        print(f"record {n}", flush=True)
        n += 1
    """
).replace("PER_PUSH", str(PER_PUSH))


class Acks:
    """The writer's acknowledged writes, read from its stdout without blocking."""

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stdout is not None
        self.child, self.fd = child, child.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.pending = b""
        self.writes: dict[str, list[int]] = {"actor": [], "dataset": [], "push": [], "record": []}

    def count(self) -> int:
        return sum(len(values) for values in self.writes.values())

    def read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            assert chunk, f"the writer died (exit {self.child.poll()})"
            *lines, self.pending = (self.pending + chunk).split(b"\n")
            for line in lines:
                kind, n = line.decode().split()
                self.writes[kind].append(int(n))

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + WAIT_SECS
        while self.count() < count:
            assert time.monotonic() < deadline, f"the writer acknowledged {self.count()} writes of {count}"
            self.read()
            time.sleep(0.01)


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")


def checkpoint_in_progress(database: Path) -> bool:
    """Whether a checkpoint was copying WAL frames into ``database`` (its ``-shm``'s checkpoint info:
    nBackfillAttempted, set before the copy, is ahead of nBackfill, set after; sqlite.org/walformat.html)."""
    shm = Path(f"{database}-shm")
    if not shm.exists() or shm.stat().st_size < 136:
        return False
    header = shm.read_bytes()[:136]
    backfilled, = struct.unpack_from("=I", header, 96)
    attempted, = struct.unpack_from("=I", header, 128)
    return attempted > backfilled


def take_images(data_dir: Path, target: Path) -> tuple[Path, Path]:
    """Copy the (frozen) data directory into a kill -9 image and a power-loss image; returns both."""
    killed, power_loss = target / "killed", target / "power-loss"
    storages = data_dir / "storages"
    for path in sorted(data_dir.rglob("*")):
        if path.is_dir() or path.name.endswith("-shm"):
            continue
        relative = path.relative_to(data_dir)
        for image in (killed, power_loss):
            if (image is power_loss and path.name.endswith("-wal") and storages in path.parents
                    and path.name != "storages.sqlite-wal"
                    and not checkpoint_in_progress(path.with_name(path.name.removesuffix("-wal")))):
                continue  # a storage file's WAL frames past its last sync: lost
            (image / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, image / relative)
    return killed, power_loss


def check_integrity(image: Path) -> None:
    for database in [image / "registry.sqlite", *sorted((image / "storages").rglob("*.sqlite"))]:
        if not database.exists():
            continue
        connection = sqlite3.connect(database)
        try:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)], database
        finally:
            connection.close()


def check_image(image: Path, acks: dict[str, list[int]], *, storages_complete: bool) -> tuple[int, int]:
    """The registry and the catalog hold every acknowledged write; the storages too if ``storages_complete``,
    else what they hold is whole and a prefix of what was acknowledged. Returns the pushes and records held."""
    check_integrity(image)
    platform = Platform(PlatformConfig(data_dir=image))
    try:
        storages = platform.storages
        actors = {actor["name"] for actor in platform.list_actors()}
        assert {f"actor-{n}" for n in acks["actor"]} <= actors
        assert len(actors) <= len(acks["actor"]) + 1  # at most the one in flight besides
        for actor in actors:
            assert platform.versions(actor), actor  # an actor is stored with its version, never without
        for kind in (DATASETS, KEY_VALUE_STORES):  # every catalog entry opens
            for entry in storages.list_storages(kind, unnamed=True, limit=1000)["items"]:
                storages.get(kind, entry["id"])
        named = {entry["name"] for entry in storages.list_storages(DATASETS, limit=1000)["items"]}
        assert {"main"} | {f"ds-{n}" for n in acks["dataset"]} <= named
        for name in named - {"main"}:
            n = int(name.removeprefix("ds-"))
            acked = storages_complete and n in acks["dataset"]  # else its push may be in flight, or lost
            assert storages.list_items(name).items() in (([{"n": n}],) if acked else ([], [{"n": n}])), name
        items = storages.list_items("main").items()
        assert len(items) % PER_PUSH == 0, "a push was partly stored"
        pushes = len(items) // PER_PUSH
        assert [(item["n"], item["i"]) for item in items] == [(p, i) for p in range(pushes) for i in range(PER_PUSH)]
        assert all(item["pad"] == "x" * 200 for item in items)
        assert pushes <= len(acks["push"]) + 1  # at most the push in flight besides
        keys: list[str] = []
        while True:
            page = storages.list_keys("main", exclusive_start_key=keys[-1] if keys else None)
            keys += [item["key"] for item in page["items"]]
            if not page["isTruncated"]:
                break
        for key in keys:
            assert storages.get_record("main", key).value == b"%08d" % int(key[1:]) * 2048, key
        if storages_complete:
            assert pushes >= len(acks["push"])
            assert {f"r{n}" for n in acks["record"]} <= set(keys)
        else:  # a prefix: a checkpoint copies whole commits, in order
            assert {f"r{n}" for n in range(len(keys))} == set(keys)
        storages.push_items("main", {"after": "crash"})  # and writable again
    finally:
        platform.close()
    return pushes, len(keys)


def test_crash_images_taken_mid_workload_open_consistent(tmp_path: Path, docker_client) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(data_dir)], stdout=subprocess.PIPE, env=env)
    acks = Acks(child)
    taken = []
    try:
        for index, count in enumerate(INSTANTS):
            acks.wait_for(count)
            child.send_signal(signal.SIGSTOP)
            deadline = time.monotonic() + WAIT_SECS
            while not stopped(child.pid):
                assert time.monotonic() < deadline, "the writer did not stop"
                time.sleep(0.001)
            acks.read()  # acknowledged before the freeze, still in the pipe
            images = take_images(data_dir, tmp_path / f"image-{index}")
            taken.append((images, {kind: list(values) for kind, values in acks.writes.items()}))
            child.send_signal(signal.SIGCONT)
    finally:
        child.kill()
        child.wait(timeout=30)
    held = []
    for (killed, power_loss), acked in taken:
        check_image(killed, acked, storages_complete=True)
        held.append(check_image(power_loss, acked, storages_complete=False))
    print("acknowledged (pushes, records) and held after a power loss:",
          [((len(acked["push"]), len(acked["record"])), kept) for (_, acked), kept in zip(taken, held, strict=True)])
    # The last images come after the storage files' first checkpoints: they keep some of their writes.
    assert held[-1][0] > 0 and held[-1][1] > 0, held
