"""pandas at scale against a real server: chunked frames, Arrow dtypes, timestamps, the server's shaping.

Datasets and stores are filled through the API itself (no actor run is needed to have items).
"""

from __future__ import annotations

import contextlib

import pandas as pd
import pytest

import jupyter_actors
from jupyter_actors.notebook import ActorsError

from .conftest import off

ITEMS = [
    {"index": i, "name": f"row {i}", "at": f"2024-05-0{1 + i % 9}T12:00:0{i % 10}.250Z",
     "local": f"2024-05-01 08:3{i % 10}:00", "note": None if i % 2 else "2024-05-01T00:00:00+02:00",
     "mixed": "2024-05-01T12:00:00Z" if i else "not a date", "day": "2024-05-01",
     "meta": {"depth": i}, "#hidden": "secret"}
    for i in range(7)
]


def _count_requests(client) -> list[str]:
    """The URLs the client sends from now on (an httpx event hook on its connection)."""
    seen: list[str] = []
    client._http.event_hooks["request"].append(lambda request: seen.append(str(request.url)))
    return seen


async def _dataset(client, name: str, items: list[dict]) -> jupyter_actors.Dataset:
    made = await off(client.post, "/datasets", name=name)
    await off(client.request, "POST", f"/datasets/{made['id']}/items", json=items)
    return await off(jupyter_actors.dataset, name, client=client)


async def test_iter_pandas_streams_pages_that_add_up_to_to_pandas(client):
    dataset = await _dataset(client, "chunks", ITEMS)
    whole = await off(dataset.to_pandas)
    seen = _count_requests(client)
    chunks = dataset.iter_pandas(chunksize=3)
    first = await off(next, chunks)
    assert len(first) == 3 and len(seen) == 1  # one page fetched, not the whole dataset
    rest = await off(list, chunks)
    assert [len(c) for c in rest] == [3, 1] and len(seen) == 3
    assert all("limit=3" in url for url in seen)
    joined = pd.concat([first, *rest])
    # Each chunk infers its own dtypes (as read_csv's chunks do): "mixed" is a timestamp column in some.
    pd.testing.assert_frame_equal(joined.drop(columns="mixed"), whole.drop(columns="mixed"))
    assert await off(list, dataset.iter_pandas(chunksize=7)) != []
    with pytest.raises(ActorsError, match="at least 1"):
        await off(list, dataset.iter_pandas(chunksize=0))


async def test_iso_timestamps_become_datetimes(client):
    frame = await off((await _dataset(client, "times", ITEMS)).to_pandas)
    assert isinstance(frame["at"].dtype, pd.DatetimeTZDtype) and str(frame["at"].dt.tz) == "UTC"
    assert frame.loc[0, "at"] == pd.Timestamp("2024-05-01T12:00:00.250Z")
    assert frame["local"].dtype.kind == "M" and frame["local"].dt.tz is None  # naive strings stay naive
    assert isinstance(frame["note"].dtype, pd.DatetimeTZDtype)  # nulls do not stop a column
    assert frame.loc[0, "note"] == pd.Timestamp("2024-04-30T22:00:00Z") and pd.isna(frame.loc[1, "note"])
    assert frame["mixed"].dtype.kind not in "mM"  # one value is not a timestamp: the column stays text
    assert frame["day"].dtype.kind not in "mM"  # bare dates are not timestamps
    raw = await off((await off(jupyter_actors.dataset, "times", client=client)).to_pandas, parse_dates=False)
    assert raw["at"].dtype.kind not in "mM"


async def test_pyarrow_dtype_backend(client):
    pytest.importorskip("pyarrow")
    dataset = await _dataset(client, "arrow", ITEMS)
    frame = await off(dataset.to_pandas, dtype_backend="pyarrow")
    assert all(isinstance(dtype, pd.ArrowDtype) for dtype in frame.dtypes), frame.dtypes
    assert str(frame["index"].dtype) == "int64[pyarrow]" and str(frame["name"].dtype) == "string[pyarrow]"
    assert "timestamp" in str(frame["at"].dtype)
    chunks = await off(list, dataset.iter_pandas(chunksize=4, dtype_backend="numpy_nullable"))
    assert str(chunks[0]["index"].dtype) == "Int64"
    with pytest.raises(ActorsError, match="dtype_backend must be one of"):
        await off(dataset.to_pandas, dtype_backend="arrow")


async def test_the_servers_item_options_pass_through(client):
    dataset = await _dataset(client, "shaped", [*ITEMS, {}])
    seen = _count_requests(client)
    omitted = await off(dataset.to_pandas, omit=["meta", "day"])
    assert "meta" not in omitted.columns and "day" not in omitted.columns and "name" in omitted.columns
    assert "omit=meta%2Cday" in seen[-1]
    full = await off(dataset.to_pandas)
    assert len(full) == 8 and "#hidden" in full.columns
    cleaned = await off(dataset.to_pandas, clean=True)  # no empty item, no #hidden field
    assert len(cleaned) == 7 and "#hidden" not in cleaned.columns and "clean=true" in seen[-1]
    picked = await off(dataset.to_pandas, fields=["name", "index"])
    assert list(picked.columns) == ["name", "index"]
    assert await off(dataset.items, fields=["index"], limit=2) == [{"index": 0}, {"index": 1}]
    # unwind and a list of fields to flatten are the server's: sent as given (flatten=True stays local).
    for options in ({"unwind": "meta"}, {"flatten": ["meta"]}):
        # a server without the option refuses it with 400, it is still sent
        with contextlib.suppress(jupyter_actors.InvalidInputError):
            await off(dataset.to_pandas, **options)
        name, value = next(iter(options.items()))
        assert f"{name}=meta" in seen[-1]
    local = await off(dataset.to_pandas, flatten=True)
    assert "meta.depth" in local.columns and "flatten" not in seen[-1]


async def test_key_value_store_to_pandas_is_one_request(client):
    store = await off(client.post, "/key-value-stores", name="many-keys")
    for i in range(12):
        ctype = "text/plain" if i % 2 else "application/json"
        body = f"text {i}" if i % 2 else f'{{"i": {i}}}'
        await off(client.request, "PUT", f"/key-value-stores/{store['id']}/records/key-{i:02d}",
                  content=body.encode(), headers={"Content-Type": ctype})
    kvs = await off(jupyter_actors.key_value_store, "many-keys", client=client)
    seen = _count_requests(client)
    frame = await off(kvs.to_pandas)
    assert len(seen) == 1 and "/keys" in seen[0]
    assert frame["key"].tolist() == [f"key-{i:02d}" for i in range(12)]
    assert frame.loc[1, "contentType"].startswith("text/plain")
    assert frame.loc[0, "contentType"].startswith("application/json") and frame.loc[0, "size"] == 8


# Nested values, explicit nulls beside missing fields, mixed types, booleans with gaps, timestamps.
ODD_ITEMS = [
    {"id": 1, "price": 9.5, "name": "a", "ok": True, "shop": {"city": "Brno", "geo": [49.2, 16.6]}, "tags": ["x"],
     "any": 1, "none": None, "at": "2024-05-01T12:00:00Z", "flag": True},
    {"id": 2, "price": None, "name": None, "ok": False, "shop": None, "tags": [], "any": "two", "none": None,
     "at": "2024-05-02T12:00:00Z"},
    {"id": 3, "name": "c", "ok": True, "tags": [{"k": 1}], "any": [3], "at": None, "flag": None, "late": "new"},
    {"id": 4, "price": 1, "ok": True, "any": {"four": 4.0}, "none": None, "flag": False},
]


# pyarrow's JSON reader takes these (no column of mixed types); nested and gappy columns are redone.
UNIFORM_ITEMS = [{key: value for key, value in item.items() if key not in ("any", "tags")} for item in ODD_ITEMS]


@pytest.mark.parametrize("items", [ITEMS, ODD_ITEMS, UNIFORM_ITEMS, [{"a": 1, "b": "x"}, {"a": 2}], [{}, {}]],
                         ids=["timestamps", "odd", "uniform", "plain", "empty-items"])
async def test_to_pandas_is_the_same_frame_through_arrow_and_json(client, monkeypatch, items):
    pytest.importorskip("pyarrow")
    from jupyter_actors.notebook import storages

    dataset = await _dataset(client, "both-paths", items)
    seen = _count_requests(client)
    for options in ({}, {"desc": True, "offset": 1, "limit": 2}, {"fields": ["id", "any", "missing"]},
                    {"clean": True, "omit": ["tags"]}, {"dtype_backend": "numpy_nullable"},
                    {"dtype_backend": "pyarrow"}, {"parse_dates": False}):
        through_arrow = await off(dataset.to_pandas, **options)
        assert "format=arrow" in seen[-1], seen[-1]
        with monkeypatch.context() as patch:
            patch.setattr(storages, "_have_pyarrow", lambda: False)  # a kernel without pyarrow
            through_json = await off(dataset.to_pandas, **options)
        assert "format=json" in seen[-1], seen[-1]
        pd.testing.assert_frame_equal(through_arrow, through_json, check_exact=True, obj=str(options))
    empty = await off(client.post, "/datasets", name="no-items")
    frames = [await off(jupyter_actors.Dataset(empty["id"], client=client).to_pandas)]
    with monkeypatch.context() as patch:
        patch.setattr(storages, "_have_pyarrow", lambda: False)
        frames.append(await off(jupyter_actors.Dataset(empty["id"], client=client).to_pandas))
    pd.testing.assert_frame_equal(*frames)


async def test_to_pandas_falls_back_to_json_when_the_server_has_no_pyarrow(client, monkeypatch):
    pytest.importorskip("pyarrow")
    from jupyter_actors.platform.storages import columnar

    dataset = await _dataset(client, "no-arrow-server", ODD_ITEMS)
    whole = await off(dataset.to_pandas)

    def missing():
        raise columnar.InvalidInput("no pyarrow", type="arrow-not-installed")

    monkeypatch.setattr(columnar, "_pyarrow", missing)
    seen = _count_requests(client)
    pd.testing.assert_frame_equal(await off(dataset.to_pandas), whole)
    assert ["format=arrow" in url for url in seen] == [True, False]
