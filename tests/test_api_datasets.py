"""Dataset reads through the real apify-client: item options, every export format, statistics; and
options that are not supported here answer 400 instead of being ignored."""

from __future__ import annotations

import csv
import io
import json
import sys
import zipfile
from xml.etree import ElementTree

import httpx
import pytest
from apify_client import ApifyClientAsync
from apify_client.errors import ApifyApiError, InvalidRequestError

from .conftest import TEST_MEMORY_MB

ITEMS = [
    {"name": "=HYPERLINK(\"http://evil\")", "tags": ["a", "b"], "shop": {"city": "Brno", "geo": {"lat": 49.2}},
     "#debug": "x", "price": 10, "ok": True},
    {"name": "+1", "tags": [], "shop": None, "price": -5.5},
    {"name": "@sum", "tags": [{"tag": "c", "w": 1}], "price": None},
    {"name": "plain <b>&</b>", "tags": "none", "shop": {"city": "Praha"}},
]
SHEET = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def xlsx_rows(content: bytes) -> list[list]:
    """The first sheet's cells (inline strings, numbers, booleans), read with the standard library."""
    with zipfile.ZipFile(io.BytesIO(content)) as book:
        sheet = ElementTree.fromstring(book.read("xl/worksheets/sheet1.xml"))
    rows = []
    for row in sheet.iter(f"{SHEET}row"):
        cells = {}
        for cell in row.iter(f"{SHEET}c"):
            column = "".join(ch for ch in cell.get("r") if ch.isalpha())
            kind = cell.get("t")
            assert kind != "str" and cell.find(f"{SHEET}f") is None, "no formulas"
            if kind == "inlineStr":
                cells[column] = "".join(t.text or "" for t in cell.iter(f"{SHEET}t"))
            elif kind == "b":
                cells[column] = cell.find(f"{SHEET}v").text == "1"
            else:
                cells[column] = float(cell.find(f"{SHEET}v").text)
        width = max((ord(c) - 64 for c in cells), default=0)
        rows.append([cells.get(chr(65 + i)) for i in range(width)])
    return rows


async def test_item_options_exports_and_statistics(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    dataset = await client.datasets().get_or_create(name="shop-items")
    items = client.dataset(dataset.id)
    await items.push_items(ITEMS)

    unwound = (await items.list_items(unwind=["tags"], fields=["name", "tags"])).items
    assert unwound == [{"name": ITEMS[0]["name"], "tags": "a"}, {"name": ITEMS[0]["name"], "tags": "b"},
                       {"name": "@sum", "tag": "c", "w": 1}, {"name": "plain <b>&</b>", "tags": "none"}]
    flat = (await items.list_items(flatten=["shop"], skip_hidden=True, limit=1)).items
    assert flat == [{"name": ITEMS[0]["name"], "tags": ["a", "b"], "shop.city": "Brno", "shop.geo.lat": 49.2,
                     "price": 10, "ok": True}]
    assert "#debug" in (await items.list_items(limit=1)).items[0]
    both = (await items.list_items(unwind=["shop"], flatten=["geo"], fields=["shop"], limit=1)).items
    assert both == [{"city": "Brno", "geo.lat": 49.2}]

    as_csv = await items.get_items_as_bytes(item_format="csv", fields=["name", "price"])
    assert as_csv.startswith(b"\xef\xbb\xbf")  # Apify's default for CSV
    rows = list(csv.reader(io.StringIO(as_csv[3:].decode())))
    assert rows == [["name", "price"], ["'=HYPERLINK(\"http://evil\")", "10"], ["'+1", "-5.5"], ["'@sum", ""],
                    ["plain <b>&</b>", ""]]
    no_bom = await items.get_items_as_bytes(item_format="csv", bom=False, delimiter=";", fields=["price"])
    assert no_bom.split(b"\r\n")[:3] == [b"price", b"10", b"-5.5"]
    assert (await items.get_items_as_bytes(item_format="json", bom=True)).startswith(b"\xef\xbb\xbf[")

    sheet = xlsx_rows(await items.get_items_as_bytes(item_format="xlsx", fields=["name", "price", "ok", "tags"]))
    assert sheet[0] == ["name", "price", "ok", "tags"]
    assert sheet[1] == [ITEMS[0]["name"], 10.0, True, '["a","b"]']  # a string cell, not a formula
    assert sheet[2][:2] == ["+1", -5.5] and len(sheet) == 5

    xml = await items.get_items_as_bytes(item_format="xml", xml_root="shop", xml_row="product", limit=2,
                                         skip_hidden=True)
    root = ElementTree.fromstring(xml)
    assert root.tag == "shop" and [row.tag for row in root] == ["product", "product"]
    assert [tag.text for tag in root[0].findall("tags")] == ["a", "b"]
    assert root[0].find("shop/geo/lat").text == "49.2" and root[0].find("_debug") is None
    assert root[1].find("shop").text is None  # null is an empty element
    rss = ElementTree.fromstring(await items.get_items_as_bytes(item_format="rss", offset=3))
    assert rss.tag == "rss" and rss.find("channel/item/name").text == "plain <b>&</b>"
    page = (await items.get_items_as_bytes(item_format="html", fields=["name"])).decode()
    assert "<td>plain &lt;b&gt;&amp;&lt;/b&gt;</td>" in page and "<b>" not in page

    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        download = await http.get(f"/datasets/{dataset.id}/items?format=xlsx&attachment=true")
        assert download.headers["content-type"].startswith("application/vnd.openxmlformats")
        assert download.headers["content-disposition"] == 'attachment; filename="dataset_shop-items.xlsx"'
        assert download.headers["content-security-policy"].startswith("sandbox")
        for query, word in (("view=overview", "view"), ("format=pdf", "pdf"),
                            ("format=xml&xmlRoot=1bad", "xmlRoot"), ("surprise=1", "surprise"),
                            ("simplified=1", "simplified"),
                            ("format=json&delimiter=%3B", "delimiter"), ("xmlRow=row", "xmlRow"),
                            ("format=xlsx&bom=1", "bom"), ("format=jsonl&skipHeaderRow=1", "skipHeaderRow")):
            refused = await http.get(f"/datasets/{dataset.id}/items?{query}")
            assert refused.status_code == 400 and word in refused.json()["error"]["message"], (query, refused.text)

    with pytest.raises(InvalidRequestError, match="view"):
        await items.list_items(view="overview")

    stats = (await items.get_statistics()).field_statistics
    assert stats["price"] == {"min": -5.5, "max": 10, "nullCount": 1, "emptyCount": 1}
    assert stats["name"] == {"min": 2, "max": len(ITEMS[0]["name"]), "nullCount": 0, "emptyCount": 0}
    assert stats["tags"]["min"] == 0 and stats["ok"] == {"min": None, "max": None, "nullCount": 0, "emptyCount": 3}
    assert json.loads(json.dumps(stats))  # plain JSON


async def test_storage_titles_on_create_update_and_get(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        for collection in ("datasets", "key-value-stores", "request-queues"):
            made = await http.post(f"/{collection}?name=titled-{collection}", json={"title": "My results"})
            assert made.status_code == 201 and made.json()["data"]["title"] == "My results"
            again = await http.post(f"/{collection}?name=titled-{collection}", json={"title": "Other"})
            assert again.status_code == 200 and again.json()["data"]["title"] == "My results"  # existing kept
            bad_schema = {"views": {"v": {"transformation": {"sort": "x"}}}, "collections": {"c": {}}}
            refused = await http.post(f"/{collection}?name=schema-{collection}", json={"schema": bad_schema})
            assert refused.status_code == 400 and "schema" in refused.json()["error"]["message"], refused.text
            assert (await http.get(f"/{collection}/schema-{collection}")).status_code == 404  # nothing created
            bad = await http.put(f"/{collection}/titled-{collection}", json={"name": "renamed", "title": "a\nb"})
            assert bad.status_code == 400 and "title" in bad.json()["error"]["message"]
            assert (await http.get(f"/{collection}/titled-{collection}")).json()["data"]["title"] == "My results"
    dataset = client.dataset("titled-datasets")
    updated = await dataset.update(title="Shop results")
    assert updated.title == "Shop results" and updated.name == "titled-datasets"
    assert (await dataset.get()).title == "Shop results"
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        cleared = await http.put("/key-value-stores/titled-key-value-stores", json={"title": None})
        assert cleared.json()["data"]["title"] is None  # (apify-client drops None fields, so plain HTTP)
    plain = await client.request_queues().get_or_create(name="untitled")
    assert plain.title is None


async def test_arrow_and_parquet_formats_honour_item_options(api_url, api_token, monkeypatch):
    """Columnar reads beyond Apify's formats: typed columns where a column has one JSON type, JSON text
    (marked in the field metadata) elsewhere, a missing field told apart from an explicit null."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from jupyter_actors.platform.storages import columnar

    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        dataset = (await http.post("/datasets", params={"name": "columnar"})).json()["data"]["id"]
        assert (await http.post(f"/datasets/{dataset}/items", json=ITEMS)).status_code == 201
        response = await http.get(f"/datasets/{dataset}/items", params={"format": "arrow"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/vnd.apache.arrow.stream"
        assert response.headers["x-apify-pagination-total"] == "4"
        table = pa.ipc.open_stream(response.content).read_all()
        assert table.column_names == ["name", "tags", "shop", "#debug", "price", "ok"]
        assert table.column("name").to_pylist() == [item["name"] for item in ITEMS]
        assert table.schema.field("price").type == pa.float64()
        assert table.column("price").to_pylist() == [10, -5.5, None, None]
        json_columns = [field.name for field in table.schema if field.metadata == columnar.JSON_ENCODING]
        assert json_columns == ["tags", "shop", "ok"]  # nested, nested with null, booleans with gaps
        assert table.column("tags").to_pylist() == ['["a","b"]', "[]", '[{"tag":"c","w":1}]', '"none"']
        assert table.column("shop").to_pylist() == ['{"city":"Brno","geo":{"lat":49.2}}', "null", None,
                                                    '{"city":"Praha"}']  # explicit null, then missing

        shaped = await http.get(f"/datasets/{dataset}/items", params={
            "format": "parquet", "offset": 1, "limit": 2, "desc": "true", "fields": "name,price,shop"})
        assert shaped.headers["content-type"] == "application/vnd.apache.parquet"
        assert shaped.headers["x-apify-pagination-count"] == "2"
        read = pq.read_table(io.BytesIO(shaped.content))
        assert read.column_names == ["name", "price", "shop"]
        assert read.column("name").to_pylist() == ["@sum", "+1"]  # newest first, one skipped
        assert read.schema.field("shop").metadata == columnar.JSON_ENCODING  # survives in Parquet
        cleaned = await http.get(f"/datasets/{dataset}/items", params={"format": "arrow", "omit": "tags,shop",
                                                                      "clean": "true"})
        assert pa.ipc.open_stream(cleaned.content).read_all().column_names == ["name", "price", "ok"]

        # A column of mixed JSON types cannot be one Arrow type: JSON text there, the rest typed.
        mixed = (await http.post("/datasets", params={"name": "mixed"})).json()["data"]["id"]
        await http.post(f"/datasets/{mixed}/items", json=[{"v": 1, "n": 1}, {"v": "one", "n": 2.5}, {"v": True}])
        table = pa.ipc.open_stream((await http.get(f"/datasets/{mixed}/items?format=arrow")).content).read_all()
        assert table.column("v").to_pylist() == ["1", '"one"', "true"]
        assert table.schema.field("n").type == pa.float64() and table.column("n").to_pylist() == [1, 2.5, None]
        empty = (await http.post("/datasets", params={"name": "empty"})).json()["data"]["id"]
        assert pa.ipc.open_stream((await http.get(f"/datasets/{empty}/items?format=arrow")).content
                                  ).read_all().num_columns == 0

        refused = await http.get(f"/datasets/{dataset}/items", params={"format": "parquet", "bom": "true"})
        assert refused.status_code == 400 and "bom" in refused.json()["error"]["message"]

        with monkeypatch.context() as patch:  # a server installed without the arrow extra
            patch.setitem(sys.modules, "pyarrow", None)
            refused = await http.get(f"/datasets/{dataset}/items", params={"format": "arrow"})
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["type"] == "arrow-not-installed" and "jupyter-actors[arrow]" in error["message"]


DATASET_SCHEMA = {"actorSpecification": 1, "views": {
    "overview": {"title": "Overview", "transformation": {"fields": ["name", "price", "shop"], "flatten": ["shop"],
                                                         "limit": 2, "desc": True},
                 "display": {"component": "table"}},
    "tags": {"transformation": {"unwind": "tags", "omit": ["#debug", "shop"]}},
}}
KVS_SCHEMA = {"actorKeyValueStoreSchemaVersion": 1, "collections": {
    "documents": {"title": "Documents", "keyPrefix": "document-", "contentTypes": ["application/json"]},
    "output": {"key": "OUTPUT"},
    "input": {"key": "INPUT", "jsonSchema": {"type": "object", "properties": {"n": {"type": "integer"}}}},
}}


async def test_dataset_views_and_key_collections_of_a_storage_schema(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    dataset = await client.datasets().get_or_create(name="viewed", schema=DATASET_SCHEMA)
    assert dataset.schema_ == DATASET_SCHEMA
    items = client.dataset(dataset.id)
    await items.push_items(ITEMS)

    # A view's transformation (fields, flatten, limit, desc): the last two items, newest first.
    overview = await items.list_items(view="overview")
    assert overview.items == [{"name": "plain <b>&</b>", "shop.city": "Praha"}, {"name": "@sum", "price": None}]
    assert (overview.limit, overview.desc) == (2, True)
    # An option the request gives replaces the view's; the others still come from the view.
    assert [i["name"] for i in (await items.list_items(view="overview", limit=3, desc=False)).items] == [
        ITEMS[0]["name"], "+1", "@sum"]
    # (desc still from the view: offset 3 from the newest is the first item)
    assert (await items.list_items(view="overview", fields=["price"], offset=3)).items == [{"price": 10}]
    assert [i.get("tags") for i in (await items.list_items(view="tags")).items] == ["a", "b", None, "none"]
    assert (await items.list_items(view="tags")).items[2] == {"name": "@sum", "tag": "c", "w": 1, "price": None}
    csv_text = (await items.get_items_as_bytes(item_format="csv", view="overview", bom=False)).decode()
    assert csv_text.splitlines()[0] == "name,shop.city,price"
    for name, words in (("nope", "its views are: overview, tags"), ("", "its views are")):
        with pytest.raises(InvalidRequestError, match=words):
            await items.list_items(view=name)
    plain = await client.datasets().get_or_create(name="plain-viewless")
    with pytest.raises(InvalidRequestError, match="has no schema"):
        await client.dataset(plain.id).list_items(view="overview")

    store = await client.key_value_stores().get_or_create(name="collected", schema=KVS_SCHEMA)
    assert store.schema_ == KVS_SCHEMA
    kvs = client.key_value_store(store.id)
    for key in ("document-1", "document-2", "documentary", "OUTPUT", "OUTPUT-2", "image-1"):
        await kvs.set_record(key, {"k": key})

    async def keys(**options) -> list[str]:
        return [item.key for item in (await kvs.list_keys(**options)).items]

    assert await keys(collection="documents") == ["document-1", "document-2"]
    assert await keys(collection="output") == ["OUTPUT"]  # one key, not the keys it prefixes
    assert await keys(collection="documents", prefix="document-2") == ["document-2"]
    assert await keys(collection="documents", prefix="doc") == ["document-1", "document-2"]
    assert await keys(collection="documents", prefix="image") == []
    assert await keys(collection="documents", exclusive_start_key="document-1") == ["document-2"]
    assert await keys(collection="documents", limit=1) == ["document-1"]
    with pytest.raises(ApifyApiError, match="its collections are: documents, input, output") as unknown:
        await kvs.list_keys(collection="images")
    assert unknown.value.status_code == 400
    with pytest.raises(ApifyApiError, match="has no schema"):
        await client.key_value_store((await client.key_value_stores().get_or_create(name="schemaless")).id).list_keys(
            collection="documents")


SCHEMA_ACTOR = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        await Actor.push_data([{"name": "a", "tags": ["x", "y"], "secret": 1}, {"name": "b", "tags": [], "secret": 2}])
        for key in ("document-1", "document-2", "OUTPUT", "other"):
            await Actor.set_value(key, {"key": key})
        refused = []  # what the schemas refuse reaches the actor as the SDK's error
        for write in (lambda: Actor.push_data([{"name": "c"}, {"tags": []}]),
                      lambda: Actor.set_value("document-3", "text", content_type="text/plain")):
            try:
                await write()
            except Exception as error:
                refused.append(str(error))
        await Actor.set_value("refused", refused)

asyncio.run(main())
"""


async def test_a_runs_default_storages_get_its_actors_schemas(api_url, api_token, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    spec = {"actorSpecification": 1, "name": "schemas", "version": "0.0",
            "storages": {"dataset": "./dataset_schema.json"}}  # the store's schema: the file found by its name
    dataset_schema = {"actorSpecification": 1, "fields": {"type": "object", "required": ["name"]},
                      "views": {"names": {"transformation": {"fields": ["name"]}},
                                                         "tags": {"transformation": {"unwind": ["tags"],
                                                                                     "omit": ["secret"]}}}}
    files = [{"name": "main.py", "format": "TEXT", "content": SCHEMA_ACTOR},
             {"name": ".actor/actor.json", "format": "TEXT", "content": json.dumps(spec)},
             {"name": ".actor/dataset_schema.json", "format": "TEXT", "content": json.dumps(dataset_schema)},
             {"name": ".actor/key_value_store_schema.json", "format": "TEXT", "content": json.dumps(KVS_SCHEMA)}]
    version = {"versionNumber": "0.0", "sourceType": "SOURCE_FILES", "buildTag": "latest", "sourceFiles": files}
    actor = await client.actors().create(name="schemas", versions=[version])
    build = await client.actor(actor.id).build(version_number="0.0", wait_for_finish=60)
    assert str(getattr(build.status, "value", build.status)) == "SUCCEEDED"
    run = await client.actor(actor.id).call(memory_mbytes=TEST_MEMORY_MB, logger=None)
    assert str(getattr(run.status, "value", run.status)) == "SUCCEEDED", await client.run(run.id).log().get()

    # By the dataset's id, by the run's default-dataset shortcut and by the last run's: one view, one answer.
    for items in (client.dataset(run.default_dataset_id), client.run(run.id).dataset(),
                  client.actor(actor.id).last_run().dataset()):
        assert (await items.list_items(view="names")).items == [{"name": "a"}, {"name": "b"}]
        assert (await items.list_items(view="tags")).items == [{"name": "a", "tags": "x"}, {"name": "a", "tags": "y"}]
        with pytest.raises(InvalidRequestError, match="its views are: names, tags"):
            await items.list_items(view="overview")
    assert (await client.dataset(run.default_dataset_id).get()).schema_ == dataset_schema
    # A run's INPUT is a record of its default store like any other: refused if it does not fit, before
    # the run or any storage is made.
    stores = (await client.key_value_stores().list(unnamed=True)).total
    with pytest.raises(ApifyApiError, match="collection 'input'.*n: 'x' is not of type 'integer'") as bad_input:
        await client.actor(actor.id).start(run_input={"n": "x"}, memory_mbytes=TEST_MEMORY_MB)
    assert bad_input.value.status_code == 400
    assert (await client.key_value_stores().list(unnamed=True)).total == stores
    assert (await client.actor(actor.id).runs().list()).total == 1
    # The schemas' checks applied to the run's own writes: the bad push and record were refused, none stored.
    refused = (await client.key_value_store(run.default_key_value_store_id).get_record("refused"))["value"]
    assert len(refused) == 2 and "Schema validation failed" in refused[0], refused
    assert "collection 'documents'" in refused[1] and "application/json" in refused[1], refused
    assert (await client.dataset(run.default_dataset_id).get()).item_count == 2
    for kvs in (client.key_value_store(run.default_key_value_store_id), client.run(run.id).key_value_store()):
        assert [k.key for k in (await kvs.list_keys(collection="documents")).items] == ["document-1", "document-2"]
        assert [k.key for k in (await kvs.list_keys(collection="output")).items] == ["OUTPUT"]
        with pytest.raises(ApifyApiError, match="its collections are: documents, input, output"):
            await kvs.list_keys(collection="nope")

    # A schema actor.json names but that is not there, or a view that cannot work, is refused when the actor is made.
    broken = {**spec, "storages": {"dataset": {"views": {"v": {"transformation": {"fields": "name", "sort": 1}}}}}}
    for content, words in ((json.dumps({**spec, "storages": {"keyValueStore": "./missing.json"}}), "does not exist"),
                           (json.dumps(broken), "sort is not supported")):
        bad = {**version, "sourceFiles": [files[0], {"name": ".actor/actor.json", "format": "TEXT",
                                                     "content": content}]}
        with pytest.raises(ApifyApiError, match=words) as refused:
            await client.actors().create(name="schemas-bad", versions=[bad])
        assert refused.value.status_code == 400
