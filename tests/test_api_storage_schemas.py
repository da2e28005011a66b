"""Storage schemas applied to writes, through the real apify-client and plain HTTP: a dataset schema's
``fields`` (the JSON Schema of one item) refuses pushes with bad items, all or nothing; a key-value store
collection's ``contentTypes`` and ``jsonSchema`` refuse records under its keys that do not fit."""

from __future__ import annotations

import httpx
import pytest
from apify_client import ApifyClientAsync
from apify_client.errors import ApifyApiError

ITEM_SCHEMA = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
               "properties": {"name": {"type": "string"}, "price": {"type": "number", "minimum": 0},
                              "shop": {"type": "object", "properties": {"city": {"type": "string"}}}},
               "required": ["name"]}
DATASET_SCHEMA = {"actorSpecification": 1, "fields": ITEM_SCHEMA, "views": {}}
KVS_SCHEMA = {"actorKeyValueStoreSchemaVersion": 1, "collections": {
    "images": {"title": "Images", "keyPrefix": "image-", "contentTypes": ["image/png", "image/jpeg"]},
    "report": {"key": "REPORT", "contentTypes": ["application/json"], "jsonSchema": {
        "type": "object", "properties": {"score": {"type": "integer"}, "tags": {"type": "array"}},
        "required": ["score"]}},
    "notes": {"keyPrefix": "note-", "jsonSchema": {"type": "string"}},
}}


async def test_a_dataset_schemas_fields_refuse_bad_items_and_store_none_of_the_push(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    made = await client.datasets().get_or_create(name="validated", schema=DATASET_SCHEMA)
    dataset = client.dataset(made.id)
    await dataset.push_items([{"name": "ok", "price": 1}, {"name": "free", "extra": [1]}])
    await dataset.push_items({"name": "one object"})

    bad = [{"name": "fine"}, {"price": -1}, {"name": 5, "shop": {"city": 7}}, {"name": "fine too"}]
    with pytest.raises(ApifyApiError) as refused:
        await dataset.push_items(bad)
    error = refused.value
    assert (error.status_code, error.type) == (400, "schema-validation-error")
    assert error.message.startswith("Schema validation failed") and "2 of the 4 items" in error.message
    invalid = error.data["invalidItems"]
    assert [entry["itemPosition"] for entry in invalid] == [1, 2]
    first = {(e["keyword"], e["instancePath"]) for e in invalid[0]["validationErrors"]}
    assert first == {("minimum", "/price"), ("required", "")}
    required = next(e for e in invalid[0]["validationErrors"] if e["keyword"] == "required")
    assert required["params"] == {"missingProperty": "name"} and required["schemaPath"] == "#/required"
    assert {e["instancePath"] for e in invalid[1]["validationErrors"]} == {"/name", "/shop/city"}
    # All or nothing: the good items of the refused push were not stored either.
    assert [item["name"] for item in (await dataset.list_items()).items] == ["ok", "free", "one object"]
    assert (await dataset.get()).item_count == 3
    with pytest.raises(ApifyApiError, match="Schema validation failed"):
        await dataset.push_items({"name": None})
    assert (await dataset.get()).item_count == 3

    # A dataset without a schema, or whose schema has no fields, takes any object.
    for name, schema in (("unvalidated", None), ("views-only", {"views": {"all": {"transformation": {}}}})):
        other = client.dataset((await client.datasets().get_or_create(name=name, schema=schema)).id)
        await other.push_items([{"price": -1}, {"name": 5}, {}])
        assert (await other.get()).item_count == 3

    # A schema whose fields are not a JSON Schema is refused when the dataset is made: nothing is created.
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        for schema, words in (({"fields": {"type": "strnig"}}, "not a valid JSON Schema"),
                              ({"fields": [1]}, "must be a JSON Schema"),
                              ({"fields": {"$schema": "https://json-schema.org/draft/2020-12/schema"}}, "draft-07"),
                              ({"views": {"v": {"display": {"properties": {"a": {"label": 1}}}}}},
                               "view 'v': display.properties.a must be an object whose label and format are strings")):
            answer = await http.post("/datasets?name=badly-validated", json={"schema": schema})
            assert answer.status_code == 400 and words in answer.json()["error"]["message"], answer.text
        assert (await http.get("/datasets/badly-validated")).status_code == 404
        # The raw error body: Apify's shape with data.invalidItems.
        raw = await http.post(f"/datasets/{made.id}/items", json=[{"name": []}])
        assert raw.status_code == 400
        assert raw.json()["error"]["data"]["invalidItems"][0]["validationErrors"][0] == {
            "instancePath": "/name", "schemaPath": "#/properties/name/type", "keyword": "type",
            "params": {"type": "string"}, "message": "[] is not of type 'string'"}


async def test_key_value_store_collections_refuse_records_of_other_types_or_shapes(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    store_id = (await client.key_value_stores().get_or_create(name="checked", schema=KVS_SCHEMA)).id
    store = client.key_value_store(store_id)
    png = b"\x89PNG\r\n\x1a\n"
    await store.set_record("image-1", png, content_type="image/png")
    await store.set_record("image-2", png, content_type="IMAGE/JPEG; q=1")  # the media type is what counts
    await store.set_record("REPORT", {"score": 3, "tags": ["a"]})
    await store.set_record("note-1", "just text", content_type="text/plain")  # not JSON: its schema has no say
    await store.set_record("note-2", '"a JSON string"', content_type="application/json")
    await store.set_record("unlisted", {"anything": True})
    await store.set_record("REPORT-2", "the collection is one key, not a prefix", content_type="text/plain")

    with pytest.raises(ApifyApiError) as wrong_type:
        await store.set_record("image-3", "not an image", content_type="text/plain")
    assert wrong_type.value.status_code == 400 and wrong_type.value.type == "schema-validation-error"
    message = wrong_type.value.message
    assert "collection 'images'" in message and "image/png or image/jpeg" in message and "text/plain" in message
    with pytest.raises(ApifyApiError, match="collection 'report'.*application/json, not 'text/plain'"):
        await store.set_record("REPORT", "text", content_type="text/plain")
    with pytest.raises(ApifyApiError) as bad_json:
        await store.set_record("REPORT", {"score": "high", "tags": "a"})
    assert bad_json.value.status_code == 400
    assert "collection 'report'" in bad_json.value.message
    assert "score: 'high' is not of type 'integer'" in bad_json.value.message
    assert "tags: 'a' is not of type 'array'" in bad_json.value.message
    with pytest.raises(ApifyApiError, match="score is required|'score' is a required property"):
        await store.set_record("REPORT", {"tags": []})
    with pytest.raises(ApifyApiError, match="collection 'notes'"):
        await store.set_record("note-3", {"not": "a string"})

    # Nothing refused was stored: the records written before are as they were, the refused keys absent.
    assert (await store.get_record("REPORT"))["value"] == {"score": 3, "tags": ["a"]}
    assert await store.get_record("image-3") is None and await store.get_record("note-3") is None
    keys = [item.key for item in (await store.list_keys()).items]
    assert keys == ["REPORT", "REPORT-2", "image-1", "image-2", "note-1", "note-2", "unlisted"]

    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        # JSON by its content type that does not parse is refused under a jsonSchema.
        broken = await http.put(f"/key-value-stores/{store_id}/records/REPORT", content=b"{nope",
                                headers={"Content-Type": "application/json"})
        assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]
        # A record without a Content-Type is application/octet-stream: not one of an image collection's types.
        untyped = await http.put(f"/key-value-stores/{store_id}/records/image-9", content=png)
        assert untyped.status_code == 400 and "application/octet-stream" in untyped.json()["error"]["message"]
        # Collections whose rules cannot work are refused when the store is made.
        for collection, words in (({"key": "A", "contentTypes": "image/png"}, "contentTypes must be a list"),
                                  ({"key": "A", "contentTypes": []}, "contentTypes must be a list"),
                                  ({"key": "A", "jsonSchema": {"type": 3}}, "not a valid JSON Schema")):
            answer = await http.post("/key-value-stores?name=badly-checked",
                                     json={"schema": {"collections": {"c": collection}}})
            assert answer.status_code == 400 and words in answer.json()["error"]["message"], answer.text
        assert (await http.get("/key-value-stores/badly-checked")).status_code == 404

    # A store without a schema takes any record under any key.
    plain = client.key_value_store((await client.key_value_stores().get_or_create(name="unchecked")).id)
    await plain.set_record("image-1", "text", content_type="text/plain")
    await plain.set_record("REPORT", {"score": "high"})
    assert (await plain.get_record("REPORT"))["value"] == {"score": "high"}
