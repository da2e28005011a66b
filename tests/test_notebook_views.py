"""Dataset views from the notebook against a real server: ``items``/``to_pandas``/``iter_pandas`` pass
``view=`` to the server, ``display=True`` lays the frame out as the view's display says, and an unknown
view is the notebook's 400 error with the server's list of views."""

from __future__ import annotations

import pandas as pd
import pytest

import jupyter_actors
from jupyter_actors.notebook import ActorsError
from jupyter_actors.notebook.errors import InvalidInputError

from .conftest import off

ITEMS = [{"name": f"item {i}", "price": i * 1.5, "shop": {"city": "Brno" if i % 2 else "Praha", "zip": i},
          "#debug": i} for i in range(5)]
SCHEMA = {"actorSpecification": 1, "views": {
    "overview": {"title": "Overview",
                 "transformation": {"fields": ["price", "name", "shop"], "flatten": ["shop"], "limit": 3, "desc": True},
                 "display": {"component": "table", "properties": {
                     "price": {"label": "Price (EUR)", "format": "number"}, "shop": {"label": "Shop"},
                     "name": {"format": "text"}}}},
    "cities": {"transformation": {"fields": ["shop", "missing"], "unwind": ["shop"]},
               "display": {"properties": {"city": {"label": "City"}}}},
}}


async def _dataset(client, name: str, schema: dict | None) -> jupyter_actors.Dataset:
    made = await off(client.post, "/datasets", name=name, json={"schema": schema} if schema else None)
    await off(client.request, "POST", f"/datasets/{made['id']}/items", json=ITEMS)
    return await off(jupyter_actors.dataset, name, client=client)


@pytest.mark.parametrize("arrow", [True, False], ids=["arrow", "json"])
async def test_views_in_items_frames_and_chunks(client, monkeypatch, arrow):
    if not arrow:  # the JSON path: a kernel without pyarrow
        monkeypatch.setattr("jupyter_actors.notebook.storages._have_pyarrow", lambda: False)
    dataset = await _dataset(client, f"notebook-viewed-{arrow}", SCHEMA)

    # The server applies the view: its fields, flatten, limit (3) and desc.
    items = await off(dataset.items, view="overview")
    assert items == [{"price": 6.0, "name": "item 4", "shop.city": "Praha", "shop.zip": 4},
                     {"price": 4.5, "name": "item 3", "shop.city": "Brno", "shop.zip": 3},
                     {"price": 3.0, "name": "item 2", "shop.city": "Praha", "shop.zip": 2}]
    assert [i["name"] for i in await off(dataset.items, view="overview", limit=1, desc=False)] == ["item 0"]
    assert [i["name"] for i in await off(list, dataset.iter_items(view="overview", page_size=2))] == [
        "item 4", "item 3", "item 2"]  # the view's limit holds across pages

    frame = await off(dataset.to_pandas, view="overview")
    assert list(frame["name"]) == ["item 4", "item 3", "item 2"] and "#debug" not in frame.columns
    assert set(frame.columns) == {"price", "name", "shop.city", "shop.zip"}

    # display=True: the view's field order, named by its display labels (unlabelled fields keep their names).
    shown = await off(dataset.to_pandas, view="overview", display=True)
    assert list(shown.columns) == ["Price (EUR)", "name", "Shop.city", "Shop.zip"]
    assert list(shown["Price (EUR)"]) == [6.0, 4.5, 3.0]
    pd.testing.assert_series_equal(shown["Shop.city"], frame["shop.city"], check_names=False)
    # Columns that are no field of the view (here: unwound from one) keep their place after the view's fields.
    cities = await off(dataset.to_pandas, view="cities", display=True)
    assert list(cities.columns) == ["City", "zip"] and list(cities["City"]) == ["Praha", "Brno"] * 2 + ["Praha"]

    chunks = await off(list, dataset.iter_pandas(chunksize=2, view="overview", display=True))
    assert [len(c) for c in chunks] == [2, 1]
    joined = pd.concat(chunks)
    assert list(joined.columns) == list(shown.columns) and list(joined.index) == [0, 1, 2]
    pd.testing.assert_frame_equal(joined, shown)

    # An unknown view is the notebook's 400 error, with the server's message naming the views.
    for call in (lambda: dataset.items(view="nope"), lambda: dataset.to_pandas(view="nope"),
                 lambda: next(dataset.iter_pandas(view="nope", display=True))):
        with pytest.raises(InvalidInputError, match="its views are: cities, overview") as refused:
            await off(call)
        assert refused.value.status == 400
    with pytest.raises(ActorsError, match="name the view"):
        await off(dataset.to_pandas, display=True)


async def test_a_view_of_a_dataset_without_a_schema_is_refused(client):
    dataset = await _dataset(client, "notebook-viewless", None)
    with pytest.raises(InvalidInputError, match="has no schema"):
        await off(dataset.to_pandas, view="overview")
    assert len(await off(dataset.to_pandas)) == len(ITEMS)
