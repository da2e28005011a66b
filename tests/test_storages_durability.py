"""Storages under concurrent writers (threads and processes) and under ``kill -9`` mid-write."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import traceback
from collections import Counter
from pathlib import Path

import orjson
import pytest

from jupyter_actors.platform.registry import MIGRATIONS, Registry
from jupyter_actors.platform.storages import DATASETS, KEY_VALUE_STORES, REQUEST_QUEUES, Storages

THREADS = 8
#: Deadline for the threads' start barrier and for each thread to finish.
THREAD_WAIT_SECS = 120.0


def run_threads(target, count: int = THREADS) -> None:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def wrapped(index: int) -> None:
        try:
            barrier.wait(THREAD_WAIT_SECS)
            target(index)
        except BaseException as error:  # reported below
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=wrapped, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=THREAD_WAIT_SECS)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads), f"writers still busy after {THREAD_WAIT_SECS}s"


def all_keys(storages: Storages, store: str) -> list[str]:
    keys: list[str] = []
    while True:
        page = storages.list_keys(store, exclusive_start_key=keys[-1] if keys else None)
        keys += [item["key"] for item in page["items"]]
        if not page["isTruncated"]:
            return keys


def check_dataset_items(storages: Storages, dataset: str, writers: dict[str, int], per_push: int) -> None:
    """Every writer's pushes are all there, each push whole and in the writer's order."""
    items = storages.list_items(dataset).items()
    assert len(items) == sum(writers.values()) * per_push
    by_writer: dict[str, list[int]] = {}
    for item in items:
        by_writer.setdefault(item["w"], []).append(item["push"] * per_push + item["i"])
    for writer, pushes in writers.items():
        assert by_writer[writer] == list(range(pushes * per_push)), writer
    assert storages.get(DATASETS, dataset)["itemCount"] == len(items)


# -- threads ---------------------------------------------------------------------------------------


def test_threads_pushing_to_one_dataset_lose_nothing(tmp_path: Path) -> None:
    storages = Storages(tmp_path)
    dataset = storages.create_dataset()["id"]
    pushes, per_push = 150, 3

    def push(index: int) -> None:
        for n in range(pushes):
            batch = [{"w": f"t{index}", "push": n, "i": i} for i in range(per_push)]
            storages.push_items(dataset, orjson.dumps(batch) if n % 2 else batch)  # raw body or parsed

    run_threads(push)
    check_dataset_items(storages, dataset, {f"t{i}": pushes for i in range(THREADS)}, per_push)


def test_threads_writing_one_store_lose_nothing(tmp_path: Path) -> None:
    storages = Storages(tmp_path)
    store = storages.create_kvs()["id"]
    values = {index: bytes([index]) * 100_000 for index in range(THREADS)}

    def write(index: int) -> None:
        for n in range(40):
            storages.set_record(store, f"t{index}-{n}", f"{index}:{n}".encode(), "text/plain")
            storages.set_record(store, "shared", values[index], "application/octet-stream")

    run_threads(write)
    assert len(all_keys(storages, store)) == THREADS * 40 + 1
    for index in range(THREADS):
        for n in range(40):
            assert storages.get_record(store, f"t{index}-{n}").value == f"{index}:{n}".encode()
    assert storages.get_record(store, "shared").value in values.values()  # one whole value, not a mix


def test_threads_adding_overlapping_requests_count_each_once(tmp_path: Path) -> None:
    storages = Storages(tmp_path)
    queue = storages.create_request_queue()["id"]
    fresh: Counter[str] = Counter()
    lock = threading.Lock()

    def add(index: int) -> None:
        for start in range(0, 200, 20):
            urls = [f"https://site/{n}" for n in range(start, start + 20)]
            result = storages.add_requests(queue, [{"url": url} for url in urls], client_key=f"c{index}")
            with lock:
                fresh.update(p["uniqueKey"] for p in result["processedRequests"] if not p["wasAlreadyPresent"])

    run_threads(add)
    assert len(fresh) == 200 and set(fresh.values()) == {1}
    meta = storages.get(REQUEST_QUEUES, queue)
    assert (meta["totalRequestCount"], meta["pendingRequestCount"], meta["hadMultipleClients"]) == (200, 200, True)
    assert len(storages.list_head(queue, limit=1000)["items"]) == 200


# -- processes -------------------------------------------------------------------------------------

#: Writer processes and rounds: every round all writers open the files at the same instant (the moment
#: SQLite switches a new file to WAL and another process's last close checkpoints), so opens race
#: opens, closes and writes dozens of times. Before the fix it failed 10 runs out of 10, in round 1 to 40.
PROCESS_WRITERS, PROCESS_ROUNDS = 4, 80
PROCESS_PUSHES, PROCESS_PER_PUSH, PROCESS_RECORDS = 20, 4, 5
#: Deadline for any cross-process wait: a writer that died must fail the test, not hang it.
PROCESS_WAIT_SECS = 60.0


def race_rounds(root: str, writer: str, start: multiprocessing.synchronize.Barrier, body) -> None:  # type: ignore[name-defined,no-untyped-def]
    """Runs in a separate process: ``body`` once per round, all writers released together.

    A failure is written to ``<writer>.error`` and breaks the barrier so the others stop at once.
    """
    round_ = -1
    try:
        for round_ in range(PROCESS_ROUNDS):
            start.wait(PROCESS_WAIT_SECS)
            body(Path(root), writer, round_)
    except threading.BrokenBarrierError:
        sys.exit(1)  # another writer failed and said why
    except BaseException:  # written for the parent, then exit 1
        Path(root, f"{writer}.error").write_text(f"{writer} failed in round {round_}:\n{traceback.format_exc()}")
        start.abort()
        sys.exit(1)


def run_racing_writers(root: Path, body) -> list[str]:  # type: ignore[no-untyped-def]
    """Run ``body`` in ``PROCESS_WRITERS`` processes for ``PROCESS_ROUNDS`` rounds; their names."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESS_WRITERS)
    names = [f"p{i}" for i in range(PROCESS_WRITERS)]
    writers = [context.Process(target=race_rounds, args=(str(root), name, start, body)) for name in names]
    try:
        for process in writers:
            process.start()
        for process in writers:
            process.join(timeout=PROCESS_WAIT_SECS * PROCESS_ROUNDS)
        errors = sorted(path.read_text() for path in root.glob("*.error"))
        assert not errors, "\n".join(errors)
        assert [process.exitcode for process in writers] == [0] * PROCESS_WRITERS
    finally:
        for process in writers:
            if process.is_alive():
                process.kill()
                process.join(timeout=10)
    return names


def write_storages_round(root: Path, writer: str, round_: int) -> None:
    """Open the storages, create this round's by name (get-or-create races too), write, close."""
    storages = Storages(root)
    dataset = storages.get_or_create(DATASETS, f"data-{round_}")[0]["id"]
    store = storages.get_or_create(KEY_VALUE_STORES, f"store-{round_}")[0]["id"]
    queue = storages.get_or_create(REQUEST_QUEUES, f"queue-{round_}")[0]["id"]
    for n in range(PROCESS_PUSHES):
        storages.push_items(dataset, [{"w": writer, "push": n, "i": i} for i in range(PROCESS_PER_PUSH)])
        if n < PROCESS_RECORDS:
            storages.set_record(store, f"{writer}-{n}", f"{writer}{n}".encode(), "text/plain")
        if n % 10 == 0:
            storages.add_requests(queue, [{"url": f"https://site/{n + i}"} for i in range(10)], client_key=writer)
    storages.close()


def test_processes_opening_and_writing_the_same_storages_lose_nothing(tmp_path: Path) -> None:
    names = run_racing_writers(tmp_path, write_storages_round)
    storages = Storages(tmp_path)
    assert storages.list_storages(DATASETS, unnamed=True)["total"] == PROCESS_ROUNDS  # one get-or-create won
    for round_ in range(PROCESS_ROUNDS):
        check_dataset_items(storages, f"data-{round_}", dict.fromkeys(names, PROCESS_PUSHES), PROCESS_PER_PUSH)
        for name in names:
            for n in range(PROCESS_RECORDS):
                assert storages.get_record(f"store-{round_}", f"{name}-{n}").value == f"{name}{n}".encode()
        queue = storages.get(REQUEST_QUEUES, f"queue-{round_}")
        assert queue["totalRequestCount"] == PROCESS_PUSHES and queue["hadMultipleClients"] is True


def open_registry_round(root: Path, writer: str, round_: int) -> None:
    registry = Registry(root / f"registry-{round_}.sqlite")  # a new file: every writer switches it to WAL
    for n in range(PROCESS_PUSHES):  # writes while the others are still opening
        registry.set_meta(writer, f"{round_}-{n}")
    registry.close()


def test_processes_opening_one_new_registry_all_succeed(tmp_path: Path) -> None:
    names = run_racing_writers(tmp_path, open_registry_round)
    for round_ in range(PROCESS_ROUNDS):
        registry = Registry(tmp_path / f"registry-{round_}.sqlite")
        assert registry.schema_version == len(MIGRATIONS)
        assert [registry.get_meta(name) for name in names] == [f"{round_}-{PROCESS_PUSHES - 1}"] * PROCESS_WRITERS
        registry.close()


# -- kill -9 in the middle of a tight write loop ---------------------------------------------------

CRASH_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from jupyter_actors.platform.storages import Storages

    storages = Storages(Path(sys.argv[1]))
    mode = sys.argv[2]
    dataset = storages.get_or_create("datasets", "crash")[0]["id"]
    store = storages.get_or_create("key_value_stores", "crash")[0]["id"]
    n = 0
    while True:
        if mode == "dataset":
            storages.push_items(dataset, [{"push": n, "i": i, "pad": "x" * 300} for i in range(50)])
        else:
            storages.set_record(store, f"r{n}", (b"%08d" % n) * 8192, "application/octet-stream")
            storages.set_record(store, "latest", b"%d" % n, "text/plain")
        sys.stdout.write(f"{n}\\n")  # acknowledged: the call above returned
        sys.stdout.flush()
        n += 1
    """
)


def kill_writer_after(root: Path, mode: str, acknowledged: int) -> int:
    """Start the writer, SIGKILL it once it reports ``acknowledged`` writes; returns the acked count."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, str(root), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert child.stdout is not None
    last = -1
    try:
        while last + 1 < acknowledged:
            line = child.stdout.readline()
            assert line, child.stderr.read().decode() if child.stderr else "writer died"
            last = int(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    for line in child.stdout.read().split():  # acknowledged before the kill, still in the pipe
        last = int(line)
    return last + 1


@pytest.mark.parametrize("acknowledged", [1, 40, 250])
def test_dataset_survives_kill_9_mid_push(tmp_path: Path, acknowledged: int) -> None:
    acked = kill_writer_after(tmp_path, "dataset", acknowledged)
    storages = Storages(tmp_path)
    items = storages.list_items("crash").items()  # every item parses: none is half-written
    assert len(items) % 50 == 0, "a push was partly stored"
    pushes = len(items) // 50
    assert pushes >= acked  # every acknowledged push is there (and at most the one in flight besides)
    assert pushes <= acked + 1
    assert [(item["push"], item["i"]) for item in items] == [(p, i) for p in range(pushes) for i in range(50)]
    assert all(item["pad"] == "x" * 300 for item in items)
    assert storages.get(DATASETS, "crash")["itemCount"] == len(items)
    storages.push_items("crash", {"after": "restart"})  # and it is writable again
    assert storages.get(DATASETS, "crash")["itemCount"] == len(items) + 1


@pytest.mark.parametrize("acknowledged", [1, 100])
def test_key_value_store_survives_kill_9_mid_write(tmp_path: Path, acknowledged: int) -> None:
    acked = kill_writer_after(tmp_path, "kvs", acknowledged)
    storages = Storages(tmp_path)
    records = [key for key in all_keys(storages, "crash") if key.startswith("r")]
    assert len(records) >= acked
    for key in records:
        n = int(key[1:])
        assert storages.get_record("crash", key).value == (b"%08d" % n) * 8192  # whole, never torn
    for n in range(acked):
        assert storages.record_exists("crash", f"r{n}")
    assert int(storages.get_record("crash", "latest").value) >= acked - 1


def test_registry_and_catalog_commit_fully_by_default_and_the_setting_is_checked(tmp_path: Path) -> None:
    """Power loss: the registry and the catalog run ``synchronous=FULL`` (2) unless set otherwise, each
    storage's file NORMAL (1); the catalog entry is then on disk before its storage file exists, so
    orphan removal after a host crash never takes a file whose catalog row was lost."""
    from jupyter_actors.platform.config import PlatformConfig
    from jupyter_actors.platform.registry import Registry
    from jupyter_actors.platform.storages.kvs import KeyValueStoreFile

    def synchronous(connection) -> int:
        return connection.execute("PRAGMA synchronous").fetchone()[0]

    assert synchronous(Registry(tmp_path / "registry.sqlite")._db) == 2
    assert synchronous(Registry(tmp_path / "normal.sqlite", synchronous="NORMAL")._db) == 1
    storages = Storages(tmp_path / "storages")
    kvs = storages.create_kvs("durable")["id"]
    storages.set_record(kvs, "k", b"v", "text/plain")
    with storages._catalog.read() as db:
        assert synchronous(db) == 2
    with storages._use(KeyValueStoreFile, kvs) as file, file.read() as db:
        assert synchronous(db) == 1
    storages.close()
    assert PlatformConfig(data_dir=tmp_path, sqlite_synchronous="normal").sqlite_synchronous == "NORMAL"
    assert PlatformConfig(data_dir=tmp_path).sqlite_synchronous == "FULL"
    with pytest.raises(ValueError, match="sqlite_synchronous must be one of FULL, NORMAL, EXTRA"):
        PlatformConfig(data_dir=tmp_path, sqlite_synchronous="OFF")
