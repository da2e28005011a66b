"""Storages: every operation round-tripped through real files in tmp_path (no mocks)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import random
import re
import sqlite3
from pathlib import Path

import pytest

from jupyter_actors.platform.errors import Conflict, InvalidInput, NotFound
from jupyter_actors.platform.storages import (
    DATASETS,
    KEY_VALUE_STORES,
    MAX_RECORD_BYTES,
    REQUEST_QUEUES,
    Storages,
    unique_key_to_request_id,
)
from jupyter_actors.platform.storages.catalog import Catalog
from jupyter_actors.platform.storages.datasets import CHUNK_MAX_BYTES, CHUNK_MAX_ITEMS, TAIL_MERGE_ROWS
from jupyter_actors.platform.storages.kvs import KeyValueStoreFile

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def storages(tmp_path: Path) -> Storages:
    manager = Storages(tmp_path / "storages")
    yield manager
    manager.close()


def files_of(root: Path, storage_id: str) -> list[Path]:
    return [path for path in root.rglob("*") if path.name.startswith(storage_id)]


# -- catalog: create, look up, list, rename, delete ------------------------------------------------


@pytest.mark.parametrize("kind", [KEY_VALUE_STORES, DATASETS, REQUEST_QUEUES])
def test_create_returns_apify_shaped_metadata(storages: Storages, kind: str) -> None:
    meta = storages.create(kind, run_id="run1", actor_id="act1")
    assert re.fullmatch(r"[a-zA-Z0-9]{17}", meta["id"])
    assert meta["name"] is None
    assert meta["actRunId"] == "run1" and meta["actId"] == "act1"
    for field in ("createdAt", "modifiedAt", "accessedAt"):
        assert ISO.match(meta[field]), meta[field]
    assert meta["createdAt"] <= meta["modifiedAt"] <= meta["accessedAt"]
    extra = {
        KEY_VALUE_STORES: {"stats"},
        DATASETS: {"itemCount", "cleanItemCount"},
        REQUEST_QUEUES: {"totalRequestCount", "handledRequestCount", "pendingRequestCount", "hadMultipleClients"},
    }[kind]
    assert extra <= meta.keys()
    assert storages.get(kind, meta["id"])["id"] == meta["id"]


def test_lookup_by_id_or_name_and_kind(storages: Storages) -> None:
    dataset = storages.create(DATASETS, "my-data")
    assert storages.get(DATASETS, "my-data")["id"] == dataset["id"]
    assert storages.get(DATASETS, dataset["id"])["name"] == "my-data"
    with pytest.raises(NotFound, match="Key-value store 'my-data' was not found"):
        storages.get(KEY_VALUE_STORES, "my-data")  # the same name in another kind is another storage
    with pytest.raises(NotFound):
        storages.get(DATASETS, "nope")
    assert storages.find(DATASETS, "nope") is None
    with pytest.raises(ValueError, match="Unknown storage kind"):
        storages.get("tables", "x")  # type: ignore[arg-type]


def test_get_or_create_is_idempotent(storages: Storages) -> None:
    first, created = storages.get_or_create(KEY_VALUE_STORES, "state")
    again, created_again = storages.get_or_create(KEY_VALUE_STORES, "state")
    assert created and not created_again and again["id"] == first["id"]
    unnamed_a, created_a = storages.get_or_create(KEY_VALUE_STORES, None)
    unnamed_b, created_b = storages.get_or_create(KEY_VALUE_STORES, None)
    assert created_a and created_b and unnamed_a["id"] != unnamed_b["id"]
    with pytest.raises(Conflict, match="already exists"):
        storages.create(KEY_VALUE_STORES, "state")


@pytest.mark.parametrize("name", ["", "-a", "a-", "a_b", "a b", "__default__", "a/b", "ä", "a.b", "x" * 257, 5])
def test_invalid_names_are_refused_and_nothing_is_stored(storages: Storages, name: object) -> None:
    with pytest.raises(InvalidInput, match="not allowed"):
        storages.create(DATASETS, name)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        storages.get_or_create(DATASETS, name)  # type: ignore[arg-type]
    assert storages.list_storages(DATASETS, unnamed=True)["total"] == 0


@pytest.mark.parametrize("name", ["a", "A1", "my-store-2", "a" * 63])
def test_valid_names_are_accepted(storages: Storages, name: str) -> None:
    assert storages.create(DATASETS, name)["name"] == name


def test_list_storages_pages_named_ones_unless_unnamed(storages: Storages) -> None:
    named = [storages.create(DATASETS, f"ds-{i}")["id"] for i in range(5)]
    storages.create(DATASETS)
    storages.create(KEY_VALUE_STORES, "other-kind")
    page = storages.list_storages(DATASETS)
    assert page["total"] == 5 and page["count"] == 5 and [m["id"] for m in page["items"]] == named
    assert storages.list_storages(DATASETS, unnamed=True)["total"] == 6
    page = storages.list_storages(DATASETS, offset=1, limit=2, desc=True)
    assert [m["id"] for m in page["items"]] == named[::-1][1:3]
    assert (page["offset"], page["limit"], page["desc"], page["count"]) == (1, 2, True, 2)
    assert "itemCount" in page["items"][0]


def test_rename(storages: Storages) -> None:
    store = storages.create(KEY_VALUE_STORES, "old")
    storages.create(KEY_VALUE_STORES, "taken")
    assert storages.rename(KEY_VALUE_STORES, "old", "new")["name"] == "new"
    assert storages.get(KEY_VALUE_STORES, "new")["id"] == store["id"]
    with pytest.raises(NotFound):
        storages.get(KEY_VALUE_STORES, "old")
    with pytest.raises(Conflict):
        storages.rename(KEY_VALUE_STORES, store["id"], "taken")
    with pytest.raises(InvalidInput):
        storages.rename(KEY_VALUE_STORES, store["id"], "bad name")
    assert storages.rename(KEY_VALUE_STORES, store["id"], None)["name"] is None


@pytest.mark.parametrize("kind", [KEY_VALUE_STORES, DATASETS, REQUEST_QUEUES])
def test_delete_removes_files_and_later_calls_get_not_found(storages: Storages, kind: str) -> None:
    meta = storages.create(kind, "doomed")
    if kind == KEY_VALUE_STORES:
        storages.set_record("doomed", "k", b"v")
    elif kind == DATASETS:
        storages.push_items("doomed", b'[{"a":1}]')
    else:
        storages.add_requests("doomed", [{"url": "https://example.com"}])
    assert files_of(storages.root, meta["id"])
    storages.delete(kind, "doomed")
    assert files_of(storages.root, meta["id"]) == []
    with pytest.raises(NotFound):
        storages.get(kind, meta["id"])
    with pytest.raises(NotFound):
        storages.delete(kind, meta["id"])
    assert storages.create(kind, "doomed")["id"] != meta["id"]  # the name is free again


def test_storages_persist_across_managers_and_schema_is_versioned(tmp_path: Path) -> None:
    root = tmp_path / "s"
    first = Storages(root)
    store = first.create(KEY_VALUE_STORES, "keep")
    first.set_record("keep", "OUTPUT", b"42", "application/json")
    first.close()
    second = Storages(root)
    assert second.get_record(store["id"], "OUTPUT") == (b"42", "application/json")
    second.close()
    for path, version in [(root / "storages.sqlite", len(Catalog.MIGRATIONS)),
                          (root / KEY_VALUE_STORES / f"{store['id']}.sqlite", len(KeyValueStoreFile.MIGRATIONS))]:
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == version
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_orphan_files_are_removed_at_start(tmp_path: Path) -> None:
    root = tmp_path / "s"
    Storages(root).close()
    orphan = root / DATASETS / "AAAAAAAAAAAAAAAAA.sqlite"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"")
    Path(f"{orphan}-wal").write_bytes(b"")
    Storages(root).close()
    assert list((root / DATASETS).iterdir()) == []


def test_orphan_files_are_kept_while_another_holder_has_the_storages_open(tmp_path: Path) -> None:
    """Only a holder that has the directory alone cleans (flock is per open file, so two here act as two processes)."""
    root = tmp_path / "s"
    first = Storages(root)
    orphan = root / DATASETS / "AAAAAAAAAAAAAAAAA.sqlite"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"")
    Storages(root).close()
    assert orphan.exists()  # the first holder may be mid-write: the second skips the clean-up
    first.close()
    Storages(root).close()
    assert not orphan.exists()  # alone now: cleaned


def test_size_bytes_counts_files(storages: Storages) -> None:
    store = storages.create_kvs()
    storages.set_record(store["id"], "big", b"x" * 200_000)
    assert storages.size_bytes([store["id"], "unknown"]) >= 200_000


# -- key-value stores ------------------------------------------------------------------------------


def test_records_round_trip_with_exact_content_types(storages: Storages) -> None:
    store = storages.create_kvs()["id"]
    storages.set_record(store, "INPUT", b'{"a": 1}', "application/json; charset=utf-8")
    storages.set_record(store, "note", "héllo".encode(), "text/plain; charset=utf-8")
    storages.set_record(store, "raw", b"\x00\x01", None)
    assert storages.get_record(store, "INPUT") == (b'{"a": 1}', "application/json; charset=utf-8")
    value, content_type = storages.get_record(store, "note")
    assert value.decode() == "héllo" and content_type == "text/plain; charset=utf-8"
    assert storages.get_record(store, "raw").content_type == "application/octet-stream"
    storages.set_record(store, "INPUT", b"null", "application/json")  # overwrite
    assert storages.get_record(store, "INPUT") == (b"null", "application/json")
    assert storages.record_exists(store, "INPUT") and not storages.record_exists(store, "missing")
    with pytest.raises(NotFound, match="Record 'missing'"):
        storages.get_record(store, "missing")
    assert storages.delete_record(store, "note") is True
    assert storages.delete_record(store, "note") is False
    meta = storages.get(KEY_VALUE_STORES, store)
    assert meta["stats"] == {"recordCount": 2, "storageBytes": 4 + 2}
    with pytest.raises(NotFound):
        storages.set_record("no-such-store", "k", b"v")


def test_nine_megabyte_binary_record(storages: Storages) -> None:
    store = storages.create_kvs()["id"]
    blob = random.Random(1).randbytes(9 * 1024 * 1024)
    storages.set_record(store, "blob.bin", blob, "application/octet-stream")
    assert storages.get_record(store, "blob.bin").value == blob
    assert storages.list_keys(store)["items"] == [
        {"key": "blob.bin", "size": len(blob), "contentType": "application/octet-stream"}]


def test_record_over_the_cap_is_refused(storages: Storages) -> None:
    store = storages.create_kvs()["id"]
    with pytest.raises(InvalidInput, match="at most"):
        storages.set_record(store, "huge", bytearray(MAX_RECORD_BYTES + 1))
    assert not storages.record_exists(store, "huge")


@pytest.mark.parametrize("key", ["", "../x", "a/b", "a b", "ä", "x" * 257, "tab\t", "new\n", "a?b", "a#b", None])
def test_invalid_keys_are_refused_before_writing(storages: Storages, key: object) -> None:
    store = storages.create_kvs()["id"]
    with pytest.raises(InvalidInput, match="not allowed"):
        storages.set_record(store, key, b"v")  # type: ignore[arg-type]
    assert storages.list_keys(store)["items"] == []
    assert list(storages.root.rglob("x")) == []  # nothing escaped the data dir


@pytest.mark.parametrize("key", ["a", "A-Z_0.9!'()", "x" * 256, "..", "OUTPUT"])
def test_valid_keys_are_accepted(storages: Storages, key: str) -> None:
    store = storages.create_kvs()["id"]
    storages.set_record(store, key, b"v")
    assert storages.get_record(store, key).value == b"v"


def test_record_value_must_be_bytes(storages: Storages) -> None:
    store = storages.create_kvs()["id"]
    with pytest.raises(InvalidInput, match="must be bytes"):
        storages.set_record(store, "k", "text")  # type: ignore[arg-type]


def test_list_keys_pages_in_sorted_order(storages: Storages) -> None:
    store = storages.create_kvs()["id"]
    keys = [f"key-{i:02d}" for i in range(25)] + ["Apple", "zeta", "img-1", "img-2"]
    for key in random.Random(2).sample(keys, len(keys)):
        storages.set_record(store, key, key.encode())
    expected = sorted(keys)
    seen, start = [], None
    while True:
        page = storages.list_keys(store, exclusive_start_key=start, limit=10)
        assert page["limit"] == 10 and page["count"] == len(page["items"]) and page["exclusiveStartKey"] == start
        seen += [item["key"] for item in page["items"]]
        assert all(item["size"] == len(item["key"]) for item in page["items"])
        if not page["isTruncated"]:
            assert page["nextExclusiveStartKey"] is None
            break
        assert page["nextExclusiveStartKey"] == page["items"][-1]["key"]
        start = page["nextExclusiveStartKey"]
    assert seen == expected
    assert [i["key"] for i in storages.list_keys(store, prefix="img")["items"]] == ["img-1", "img-2"]
    after_img_1 = storages.list_keys(store, prefix="img", exclusive_start_key="img-1")["items"]
    assert [i["key"] for i in after_img_1] == ["img-2"]
    assert [i["key"] for i in storages.list_keys(store, prefix="key-0", exclusive_start_key="a")["items"]] == [
        f"key-0{i}" for i in range(10)
    ]
    assert storages.list_keys(store, limit=5000)["limit"] == 1000
    with pytest.raises(InvalidInput):
        storages.list_keys(store, limit=0)


# -- datasets --------------------------------------------------------------------------------------


def test_push_object_or_array_and_read_back(storages: Storages) -> None:
    ds = storages.create_dataset()["id"]
    assert storages.push_items(ds, b'{"a": 1}') == 1
    assert storages.push_items(ds, '[{"b": "\\u00e9\\n"}, {"c": [1, {"d": null}]}]') == 3
    assert storages.push_items(ds, [{"e": True}]) == 4
    assert storages.push_items(ds, b"[]") == 4
    page = storages.list_items(ds)
    assert page.items() == [{"a": 1}, {"b": "é\n"}, {"c": [1, {"d": None}]}, {"e": True}]
    assert (page.total, page.offset, page.limit, page.count, page.desc) == (4, 0, None, 4, False)
    assert storages.get(DATASETS, ds)["itemCount"] == 4


@pytest.mark.parametrize(
    "body, message",
    [
        (b"not json", "valid JSON"),
        (b"42", "got a number"),
        (b'"text"', "got a string"),
        (b"[1, 2]", "item 0 is a number"),
        (b'[{"a": 1}, [3]]', "item 1 is an array"),
        (b'[{"a": 1}, null]', "item 1 is null"),
        ([{"a": {1, 2}}], "JSON-serialisable"),
    ],
)
def test_invalid_pushes_store_nothing(storages: Storages, body: object, message: str) -> None:
    ds = storages.create_dataset()["id"]
    with pytest.raises(InvalidInput, match=message):
        storages.push_items(ds, body)  # type: ignore[arg-type]
    assert storages.get(DATASETS, ds)["itemCount"] == 0
    assert storages.list_items(ds).json_array() == b"[]"


def test_offset_limit_desc(storages: Storages) -> None:
    ds = storages.create_dataset()["id"]
    storages.push_items(ds, [{"i": i} for i in range(10)])
    def ids(**options: object) -> list[int]:
        return [item["i"] for item in storages.list_items(ds, **options).items()]  # type: ignore[arg-type]
    assert ids(offset=3, limit=4) == [3, 4, 5, 6]
    assert ids(offset=8, limit=5) == [8, 9]
    assert ids(offset=20) == []
    assert ids(limit=0) == []
    assert ids(desc=True, limit=3) == [9, 8, 7]
    assert ids(desc=True, offset=2, limit=3) == [7, 6, 5]
    assert ids(desc=True, offset=8) == [1, 0]
    page = storages.list_items(ds, offset=8, limit=5)
    assert (page.total, page.offset, page.limit, page.count) == (10, 8, 5, 2)
    with pytest.raises(InvalidInput):
        storages.list_items(ds, offset=-1)
    with pytest.raises(InvalidInput):
        storages.list_items(ds, limit=-5)


def test_fields_omit_clean_and_skip_options(storages: Storages) -> None:
    ds = storages.create_dataset()["id"]
    items = [
        {"a": 1, "b": 2, "#secret": "x"},
        {},
        {"#only": "hidden"},
        {"b": 3, "c": {"n": 1}},
    ]
    storages.push_items(ds, items)
    def read(**options: object) -> list[dict]:
        return storages.list_items(ds, **options).items()  # type: ignore[arg-type]
    assert read(fields=["b", "a"]) == [{"b": 2, "a": 1}, {}, {}, {"b": 3}]
    assert list(read(fields=["b", "a"])[0]) == ["b", "a"]  # the order of ``fields``
    assert read(omit=["b", "#secret"]) == [{"a": 1}, {}, {"#only": "hidden"}, {"c": {"n": 1}}]
    assert read(skip_hidden=True) == [{"a": 1, "b": 2}, {}, {}, {"b": 3, "c": {"n": 1}}]
    assert read(skip_empty=True) == [items[0], items[2], items[3]]
    assert read(clean=True) == [{"a": 1, "b": 2}, {"b": 3, "c": {"n": 1}}]
    assert read(fields=["c"], skip_empty=True) == [{"c": {"n": 1}}]
    page = storages.list_items(ds, clean=True, limit=3)
    assert page.count == 3 and len(page.items()) == 1  # count = rows scanned, as Apify's header
    meta = storages.get(DATASETS, ds)
    assert (meta["itemCount"], meta["cleanItemCount"]) == (4, 2)


def test_clean_count_sees_hash_in_values_as_normal(storages: Storages) -> None:
    ds = storages.create_dataset()["id"]
    storages.push_items(ds, [{"color": "#fff"}, {"#a": 1}, {}])
    assert storages.get(DATASETS, ds)["cleanItemCount"] == 1


def test_json_jsonl_and_csv_exports(storages: Storages) -> None:
    ds = storages.create_dataset()["id"]
    storages.push_items(ds, [
        {"name": "a", "n": 1, "ok": True},
        {"n": 2.5, "tags": ["x", "y"], "name": 'quote " and, comma'},
        {"nested": {"k": None}, "empty": None},
    ])
    page = storages.list_items(ds)
    assert json.loads(page.json_array()) == page.items()
    lines = page.jsonl().split(b"\n")
    assert lines[-1] == b"" and [json.loads(line) for line in lines[:-1]] == page.items()
    rows = list(csv.reader(io.StringIO(page.csv().decode())))
    assert rows[0] == ["name", "n", "ok", "tags", "nested", "empty"]
    assert rows[1] == ["a", "1", "true", "", "", ""]
    assert rows[2] == ['quote " and, comma', "2.5", "", '["x","y"]', "", ""]
    assert rows[3] == ["", "", "", "", '{"k":null}', ""]
    assert page.csv(bom=True).startswith(b"\xef\xbb\xbfname,")
    assert page.csv(skip_header_row=True, delimiter=";").startswith(b"a;1;true")
    by_fields = storages.list_items(ds, fields=["n", "name"]).csv().decode().splitlines()
    assert by_fields[0] == "n,name" and by_fields[1] == "1,a"
    empty = storages.list_items(storages.create_dataset()["id"])
    assert (empty.json_array(), empty.jsonl(), empty.csv()) == (b"[]", b"", b"\r\n")


def test_unfiltered_reads_serve_stored_bytes(storages: Storages) -> None:
    ds = storages.create_dataset()["id"]
    storages.push_items(ds, b'[{"b": 1,   "a": [1, 2]}, {"x": "y"}]')
    assert storages.list_items(ds).jsonl() == b'{"b":1,"a":[1,2]}\n{"x":"y"}\n'  # compact, key order kept


def test_many_push_patterns_read_back_exactly(storages: Storages) -> None:
    """Single pushes, small batches and big ones (merges of the tail, several chunks) in random order."""
    ds = storages.create_dataset()["id"]
    rng = random.Random(7)
    reference: list[dict] = []
    sizes = [1] * 150 + [3] * 40 + [CHUNK_MAX_ITEMS + 17, 2 * CHUNK_MAX_ITEMS, 999, 5000]
    rng.shuffle(sizes)
    for size in sizes:
        batch = [{"i": len(reference) + j, "pad": "p" * rng.randrange(0, 40)} for j in range(size)]
        reference += batch
        assert storages.push_items(ds, batch if size > 1 else batch[0]) == len(reference)
    assert storages.list_items(ds).items() == reference
    assert storages.list_items(ds, desc=True).items() == reference[::-1]
    for _ in range(200):
        offset, limit, desc = rng.randrange(0, len(reference) + 10), rng.randrange(0, 3000), rng.random() < 0.5
        got = [item["i"] for item in storages.list_items(ds, offset=offset, limit=limit, desc=desc).items()]
        ordered = reference[::-1] if desc else reference
        assert got == [item["i"] for item in ordered[offset : offset + limit]], (offset, limit, desc)
    big_pushes = sum(size >= CHUNK_MAX_ITEMS for size in sizes)
    assert chunk_rows(storages, ds) <= len(reference) // CHUNK_MAX_ITEMS + 2 * big_pushes + TAIL_MERGE_ROWS


def chunk_rows(storages: Storages, dataset_id: str) -> int:
    with sqlite3.connect(storages.root / DATASETS / f"{dataset_id}.sqlite") as db:
        return db.execute("SELECT count(*) FROM chunks").fetchone()[0]


def test_single_item_pushes_are_merged_into_full_chunks(storages: Storages) -> None:
    ds = storages.create_dataset()["id"]
    for i in range(3 * CHUNK_MAX_ITEMS + 5):
        storages.push_items(ds, b'{"i":%d}' % i)
    assert chunk_rows(storages, ds) <= 3 + TAIL_MERGE_ROWS
    assert storages.list_items(ds).jsonl() == b"".join(b'{"i":%d}\n' % i for i in range(3 * CHUNK_MAX_ITEMS + 5))


def test_big_items_get_chunks_of_their_own(storages: Storages) -> None:
    ds = storages.create_dataset()["id"]
    items = [{"i": i, "blob": "z" * (CHUNK_MAX_BYTES // 3 + i)} for i in range(7)] + [{"i": 7}]
    storages.push_items(ds, items)
    storages.push_items(ds, {"i": 8, "blob": "y" * (CHUNK_MAX_BYTES * 2)})
    storages.push_items(ds, {"i": 9})
    got = storages.list_items(ds).items()
    assert [item["i"] for item in got] == list(range(10)) and got[:8] == items
    assert [item["i"] for item in storages.list_items(ds, offset=2, limit=3, desc=True).items()] == [7, 6, 5]


def test_streaming_iterators_match_whole_reads(storages: Storages) -> None:
    ds = storages.create_dataset()["id"]
    storages.push_items(ds, [{"i": i} for i in range(2500)])
    page = storages.list_items(ds, offset=10)
    assert b"".join(page.iter_json_array()) == page.json_array()
    assert b"".join(page.iter_jsonl()) == page.jsonl()
    assert sum(1 for _ in page.iter_raw_items()) == 2490
    assert page.json_array() == page.json_array()  # re-iterable


def test_throughput_smoke(storages: Storages) -> None:
    """Not a benchmark (no timing): 200k small items in a few pushes, read back byte for byte."""
    ds = storages.create_dataset()["id"]
    n, per_push = 200_000, 50_000
    for start in range(0, n, per_push):
        storages.push_items(ds, [{"id": i, "name": f"item-{i}"} for i in range(start, start + per_push)])
    lines = [b'{"id":%d,"name":"item-%d"}\n' % (i, i) for i in range(n)]
    assert storages.list_items(ds).jsonl() == b"".join(lines)
    # Reads longer than one read batch, starting mid-chunk: batch edges cut chunks in two.
    assert storages.list_items(ds, desc=True).jsonl() == b"".join(lines[::-1])
    assert storages.list_items(ds, offset=1234, limit=120_000).jsonl() == b"".join(lines[1234:121_234])
    newest_first = lines[::-1][1234:121_234]
    assert storages.list_items(ds, offset=1234, limit=120_000, desc=True).jsonl() == b"".join(newest_first)


# -- request queues --------------------------------------------------------------------------------


def sdk_request_id(unique_key: str) -> str:
    """Written out as the apify SDK does it (``re.sub`` over the standard base64 of the SHA-256)."""
    encoded = base64.b64encode(hashlib.sha256(unique_key.encode("utf-8")).digest()).decode("utf-8")
    return re.sub(r"(\+|\/|=)", "", encoded)[:15]


@pytest.mark.parametrize(
    "unique_key", ["https://apify.com", "https://example.com/?q=1#x", "GET|60d83e70|e3b0c442|https://apify.com",
                   "ünïcødé", "a" * 5000, "k"],
)
def test_request_id_formula(unique_key: str) -> None:
    assert unique_key_to_request_id(unique_key) == sdk_request_id(unique_key)
    assert re.fullmatch(r"[A-Za-z0-9]{15}", unique_key_to_request_id(unique_key))


@pytest.mark.parametrize(
    "unique_key, base64_of_sha256, expected",
    [
        # base64 values printed by hashlib + base64 for these keys; the ID drops '+', '/', '=' then keeps 15.
        ("https://apify.com", "fvwscO2UJLdr10B7jYstCkYb7JMt0D4H6FxWFxk1Pho=", "fvwscO2UJLdr10B"),
        ("https://example.com/121", "oFdFU+V+EsLg1UB9Ab9y15OEfwho0LPJoI2+T5Dy0FU=", "oFdFUVEsLg1UB9A"),
        ("https://example.com/339", "+r/0ATqJH0hawKk06A41IFgq+KH/9RqK6FnFz+CTA1Q=", "r0ATqJH0hawKk06"),
    ],
)
def test_request_id_known_values(unique_key: str, base64_of_sha256: str, expected: str) -> None:
    assert base64.b64encode(hashlib.sha256(unique_key.encode()).digest()).decode() == base64_of_sha256
    assert unique_key_to_request_id(unique_key) == expected


def test_add_requests_deduplicates_by_unique_key(storages: Storages) -> None:
    queue = storages.create_request_queue()["id"]
    result = storages.add_requests(queue, [
        {"url": "https://a.com"},
        {"url": "https://b.com", "uniqueKey": "custom", "method": "POST", "userData": {"label": "B"}},
        {"url": "https://a.com"},
    ])
    assert result["unprocessedRequests"] == []
    processed = result["processedRequests"]
    assert [p["requestId"] for p in processed] == [sdk_request_id("https://a.com"), sdk_request_id("custom"),
                                                   sdk_request_id("https://a.com")]
    assert [p["uniqueKey"] for p in processed] == ["https://a.com", "custom", "https://a.com"]
    assert [p["wasAlreadyPresent"] for p in processed] == [False, False, True]
    assert not any(p["wasAlreadyHandled"] for p in processed)
    request = storages.get_request(queue, sdk_request_id("custom"))
    assert request["id"] == sdk_request_id("custom") and request["userData"] == {"label": "B"}
    assert request["method"] == "POST" and request["url"] == "https://b.com" and "handledAt" not in request
    meta = storages.get(REQUEST_QUEUES, queue)
    assert (meta["totalRequestCount"], meta["handledRequestCount"], meta["pendingRequestCount"]) == (2, 0, 2)
    with pytest.raises(NotFound):
        storages.get_request(queue, "nope")


def test_head_order_with_forefront(storages: Storages) -> None:
    queue = storages.create_request_queue()["id"]
    storages.add_requests(queue, [{"url": f"https://{name}"} for name in "abc"])
    storages.add_requests(queue, [{"url": "https://x"}], forefront=True)
    storages.add_requests(queue, [{"url": "https://d"}])
    storages.add_requests(queue, [{"url": "https://y"}], forefront=True)
    head = storages.list_head(queue)
    assert [item["url"] for item in head["items"]] == ["https://y", "https://x", "https://a", "https://b",
                                                      "https://c", "https://d"]
    assert head["items"][0] == {"id": sdk_request_id("https://y"), "uniqueKey": "https://y", "url": "https://y",
                                "method": "GET", "retryCount": 0}
    assert head["limit"] == 100 and head["hadMultipleClients"] is False and ISO.match(head["queueModifiedAt"])
    assert [item["url"] for item in storages.list_head(queue, limit=2)["items"]] == ["https://y", "https://x"]


def test_mark_handled_reclaim_and_counters(storages: Storages) -> None:
    queue = storages.create_request_queue()["id"]
    storages.add_requests(queue, [{"url": f"https://{name}"} for name in "abc"])
    a_id = sdk_request_id("https://a")
    request = storages.get_request(queue, a_id)
    handled = {**request, "handledAt": "2024-05-01T10:00:00.123456+00:00", "retryCount": 1}
    assert storages.update_request(queue, a_id, handled) == {
        "requestId": a_id, "wasAlreadyPresent": True, "wasAlreadyHandled": False,
    }
    assert storages.get_request(queue, a_id)["handledAt"] == "2024-05-01T10:00:00.123Z"
    assert [i["url"] for i in storages.list_head(queue)["items"]] == ["https://b", "https://c"]
    meta = storages.get(REQUEST_QUEUES, queue)
    assert (meta["totalRequestCount"], meta["handledRequestCount"], meta["pendingRequestCount"]) == (3, 1, 2)
    again = storages.add_requests(queue, [{"url": "https://a"}])["processedRequests"][0]
    assert again["wasAlreadyPresent"] and again["wasAlreadyHandled"]
    # Reclaim to the front: unhandled again, first in the head, counters back.
    result = storages.update_request(queue, a_id, {**request, "retryCount": 2}, forefront=True)
    assert result["wasAlreadyHandled"] is True
    head = storages.list_head(queue)["items"]
    assert [i["url"] for i in head] == ["https://a", "https://b", "https://c"] and head[0]["retryCount"] == 2
    assert storages.get(REQUEST_QUEUES, queue)["handledRequestCount"] == 0
    # Without forefront an unhandled update goes to the end.
    storages.update_request(queue, a_id, request)
    assert [i["url"] for i in storages.list_head(queue)["items"]] == ["https://b", "https://c", "https://a"]


def test_update_request_upserts_and_checks_the_id(storages: Storages) -> None:
    queue = storages.create_request_queue()["id"]
    new_id = sdk_request_id("https://new")
    result = storages.update_request(queue, new_id, {"url": "https://new", "handledAt": "2024-01-01T00:00:00Z"})
    assert result == {"requestId": new_id, "wasAlreadyPresent": False, "wasAlreadyHandled": False}
    meta = storages.get(REQUEST_QUEUES, queue)
    assert (meta["totalRequestCount"], meta["handledRequestCount"]) == (1, 1)
    with pytest.raises(InvalidInput, match="does not belong to uniqueKey"):
        storages.update_request(queue, "wrongid", {"url": "https://new"})
    with pytest.raises(InvalidInput, match="handledAt"):
        storages.update_request(queue, new_id, {"url": "https://new", "handledAt": "yesterday"})
    assert storages.get(REQUEST_QUEUES, queue)["totalRequestCount"] == 1


def test_delete_request(storages: Storages) -> None:
    queue = storages.create_request_queue()["id"]
    storages.add_requests(queue, [{"url": "https://a"}, {"url": "https://b", "handledAt": "2024-01-01T00:00:00Z"}])
    storages.delete_request(queue, sdk_request_id("https://b"))
    meta = storages.get(REQUEST_QUEUES, queue)
    assert (meta["totalRequestCount"], meta["handledRequestCount"], meta["pendingRequestCount"]) == (1, 0, 1)
    with pytest.raises(NotFound):
        storages.delete_request(queue, sdk_request_id("https://b"))


@pytest.mark.parametrize(
    "bad, message",
    [({"uniqueKey": "x"}, "needs a 'url'"), ("https://a", "must be a JSON object"),
     ({"url": "https://a", "retryCount": -1}, "retryCount"), ({"url": "https://a", "method": 5}, "method"),
     ({"url": "https://a", "uniqueKey": ""}, "uniqueKey")],
)
def test_invalid_requests_reject_the_whole_batch(storages: Storages, bad: object, message: str) -> None:
    queue = storages.create_request_queue()["id"]
    with pytest.raises(InvalidInput, match=message):
        storages.add_requests(queue, [{"url": "https://ok"}, bad])
    assert storages.get(REQUEST_QUEUES, queue)["totalRequestCount"] == 0
    assert storages.list_head(queue)["items"] == []


def test_list_requests_pages_with_cursor_and_filter(storages: Storages) -> None:
    queue = storages.create_request_queue()["id"]
    urls = [f"https://site/{i}" for i in range(25)]
    storages.add_requests(queue, [{"url": url} for url in urls])
    for url in urls[:5]:
        storages.update_request(queue, sdk_request_id(url), {"url": url, "handledAt": "2024-01-01T00:00:00Z"})
    seen, cursor = [], None
    while True:
        page = storages.list_requests(queue, limit=10, cursor=cursor)
        seen += [item["id"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == seen and set(seen) == {sdk_request_id(url) for url in urls}
    pending = storages.list_requests(queue, filter=["pending"])["items"]
    assert {item["url"] for item in pending} == set(urls[5:]) and all("handledAt" not in i for i in pending)
    assert storages.list_requests(queue, filter=["locked"])["items"] == []
    assert storages.list_requests(queue, limit=50_000)["limit"] == 10_000
    with pytest.raises(InvalidInput, match="cursor"):
        storages.list_requests(queue, cursor="!!not-a-cursor")
    with pytest.raises(InvalidInput, match="filter"):
        storages.list_requests(queue, filter=["done"])


def test_had_multiple_clients(storages: Storages) -> None:
    queue = storages.create_request_queue()["id"]
    storages.add_requests(queue, [{"url": "https://a"}], client_key="client-one")
    storages.list_head(queue, client_key="client-one")
    assert storages.get(REQUEST_QUEUES, queue)["hadMultipleClients"] is False
    storages.list_head(queue, client_key="client-two")
    assert storages.list_head(queue)["hadMultipleClients"] is True
    assert storages.get(REQUEST_QUEUES, queue)["hadMultipleClients"] is True


def test_a_catalog_from_before_titles_is_upgraded_in_place(tmp_path: Path) -> None:
    """A data dir written before storage titles existed (catalog schema 1) opens and keeps its storages."""
    root = tmp_path / "s"
    first = Storages(root)
    store = first.create(DATASETS, "older")
    first.close()
    with sqlite3.connect(root / "storages.sqlite") as db:  # back to schema 1: no title column
        db.execute("ALTER TABLE storages DROP COLUMN title")
        db.execute("ALTER TABLE storages DROP COLUMN url_signing_secret_key")
        db.execute("ALTER TABLE storages DROP COLUMN schema")
        db.execute("DROP TABLE run_writes")
        db.execute("PRAGMA user_version = 1")
    second = Storages(root)
    assert second.get(DATASETS, "older")["id"] == store["id"] and second.get(DATASETS, "older")["title"] is None
    assert second.get(DATASETS, "older")["schema"] is None
    assert len(second.get(DATASETS, "older")["urlSigningSecretKey"]) == 32  # older storages get a key too
    assert second.retitle(DATASETS, "older", "Older results")["title"] == "Older results"
    second.close()
