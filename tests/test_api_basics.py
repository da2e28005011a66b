"""The user-facing API in a real Jupyter server: auth, envelopes, errors."""

from __future__ import annotations


import httpx


async def test_requires_jupyter_auth(api_url):
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{api_url}/v2/actors")
    assert response.status_code in (401, 403)
    assert set(response.json()["error"]) == {"type", "message"}


async def test_lists_with_token_and_errors_in_apify_shape(api_url, api_token):
    headers = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(headers=headers) as client:
        listing = await client.get(f"{api_url}/v2/actors")
        assert listing.status_code == 200
        assert listing.json()["data"]["items"] == []
        missing = await client.get(f"{api_url}/v2/actor-runs/nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "record-not-found"
        unknown = await client.get(f"{api_url}/v2/no-such-endpoint")
        assert unknown.status_code == 404 and "error" in unknown.json()
        bad = await client.post(f"{api_url}/v2/actors", content=b"{not json",
                                headers={"Content-Type": "application/json"})
        assert bad.status_code == 400 and "JSON" in bad.json()["error"]["message"]
