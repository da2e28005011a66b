"""The pieces that keep large uploads from stalling Jupyter's loop or exhausting the server's memory
(issue 19): the body budget, records written in slices, large pushes parsed in slices."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random

import orjson
import pytest

from jupyter_actors.api.body_budget import BodyBudget
from jupyter_actors.platform.storages import datasets, kvs


async def test_the_body_budget_admits_in_order_and_a_cancelled_waiter_gives_its_share_back():
    budget = BodyBudget(100)
    first = await budget.acquire(60)
    admitted: list[str] = []

    async def take(name: str, size: int) -> None:
        held = await budget.acquire(size)
        admitted.append(name)
        await asyncio.Event().wait() if name == "never-done" else None
        budget.release(held)

    second = asyncio.ensure_future(take("second", 60))  # does not fit beside the first
    third = asyncio.ensure_future(take("third", 10))  # would fit, but waits its turn behind the second
    await asyncio.sleep(0)
    assert admitted == [] and budget.used == 60
    cancelled = asyncio.ensure_future(budget.acquire(1000))  # larger than the budget: taken alone, later
    await asyncio.sleep(0)
    cancelled.cancel()
    budget.release(first)
    await asyncio.wait_for(asyncio.gather(second, third), 5)
    assert admitted == ["second", "third"]
    assert budget.used == 0
    assert await budget.acquire(1000) == 100  # alone, clamped to the whole budget
    budget.release(100)
    assert budget.used == 0


def test_a_large_record_is_written_in_slices_and_reads_back_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(kvs, "BLOB_SLICE_BYTES", 4096)
    store = kvs.KeyValueStoreFile(tmp_path / "store.sqlite")
    value = bytearray(os.urandom(3 * 4096 + 123))
    store.set_record("big", value, "application/octet-stream")
    assert store.get_record("big").value == bytes(value)
    store.set_record("big", b"small", None)  # replaced by a small one: bound directly again
    assert store.get_record("big").value == b"small"
    assert store.metadata()["stats"] == {"recordCount": 1, "storageBytes": 5}


def _item(rng: random.Random, depth: int = 0) -> dict:
    # Strings that look like the places where the parser cuts, and nested objects, so wrong cuts happen.
    item: dict = {"s": rng.choice(["},{", "}, {", "x},", '"}', "plain", "],["]) * rng.randint(0, 3),
                  "n": rng.randint(0, 9)}
    if depth < 2 and rng.random() < 0.4:
        item["kids"] = [_item(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return item


def test_a_push_parsed_in_slices_is_exactly_the_whole_parse(monkeypatch):
    monkeypatch.setattr(datasets, "PARSE_SLICE_BYTES", 64)  # many cuts, several inside strings and objects
    rng = random.Random(19)
    sliced = 0
    for _ in range(1500):
        separator = rng.choice([b",", b", ", b",\n", b" ,"])
        body = b"[" + separator.join(orjson.dumps(_item(rng)) for _ in range(rng.randint(1, 40))) + b"]"
        damage = rng.random()
        if damage < 0.1:
            body = body[:-1] + b",]"
        elif damage < 0.2:
            body = body.replace(b"},", b"},,", 1)
        elif damage < 0.25:
            body = body[: rng.randint(1, len(body) - 1)]
        try:
            expected = orjson.loads(body)
        except orjson.JSONDecodeError:
            with pytest.raises(orjson.JSONDecodeError):
                datasets._loads(body)
            continue
        assert datasets._loads(body) == expected
        if len(body) > 128:
            with contextlib.suppress(datasets._BadCut):
                sliced += bool(list(datasets._item_slices(body)))
        # The streamed encoding (no schema check) equals the whole-list one (a check makes it whole).
        assert datasets.encode_items(body) == datasets.encode_items(body, check=lambda items: None)
    assert sliced > 10  # the sliced path itself succeeded (a cut in a nested object falls back, as it must)
