"""Each run's web server through the Jupyter server: auth, no credential leaks, sandbox, websockets."""

from __future__ import annotations

import json

import httpx
import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_actors.cli import EXAMPLES_DIR
from jupyter_actors.platform.sources import load_actor_dir

from .conftest import define_actor, off, wait_until

SERVER = r'''
import asyncio, json, os
from http import HTTPStatus
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

PAGE = """<!doctype html><html><body><h1>Hello from the actor</h1><pre id="out">pending</pre><script>
const out = {};
try { out.cookie = document.cookie; } catch (e) { out.cookie = "blocked: " + e.name; }
fetch(location.pathname.split("/actors/web/")[0] + "/api/contents", {credentials: "include"})
  .then(r => { out.api = r.status; }).catch(e => { out.api = "error: " + e.name; })
  .finally(() => { document.getElementById("out").textContent = JSON.stringify(out); });
</script></body></html>"""

async def echo(ws):
    async for message in ws:
        await ws.send("echo: " + message)

def process_request(connection, request):
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None
    if request.path.startswith("/headers"):
        body = json.dumps({k.lower(): v for k, v in request.headers.raw_items()}).encode()
        headers = Headers({"Content-Type": "application/json", "Set-Cookie": "_xsrf=evil; Path=/"})
    else:
        body, headers = PAGE.encode(), Headers({"Content-Type": "text/html; charset=utf-8"})
    headers["Content-Length"] = str(len(body))
    return Response(200, "OK", headers, body)

async def main():
    await asyncio.sleep(float(os.environ.get("DELAY", "0")))
    async with serve(echo, "0.0.0.0", int(os.environ["APIFY_CONTAINER_PORT"]), process_request=process_request):
        print("listening at", os.environ["APIFY_CONTAINER_URL"], flush=True)
        await asyncio.sleep(600)

asyncio.run(main())
'''


@pytest.fixture
def web_run(actors_app):
    platform = actors_app.platform
    define_actor(platform, "site", SERVER)
    run = platform.start_run("site", memory_mb=1024, timeout_secs=300)
    wait_until(lambda: b"listening at" in platform.run_log(run["id"]), 120, message="web server up")
    return platform.get_run(run["id"])


def web_url(api_url: str, run: dict, path: str = "") -> str:
    return api_url.removesuffix("actors/api") + f"actors/web/{run['web_id']}/{path}"


async def test_page_headers_auth_and_sandbox(api_url, api_token, web_run, actors_app, docker_client):
    platform = actors_app.platform
    url = web_url(api_url, web_run)
    assert len(web_run["web_id"]) >= 20
    printed = platform.run_log(web_run["id"]).decode().split("listening at ", 1)[1].split()[0]
    async with httpx.AsyncClient(timeout=30) as client:
        view = (await client.get(f"{api_url}/v2/actor-runs/{web_run['id']}",
                                 headers={"Authorization": f"Bearer {api_token}"})).json()["data"]
        assert view["containerUrl"] == printed and printed.endswith(f"/actors/web/{web_run['web_id']}/")

        async with httpx.AsyncClient(timeout=30) as anonymous:  # no Jupyter login cookie
            refused = await anonymous.get(url)
        assert refused.status_code == 403 and "Log in" in refused.text

        auth = {"Authorization": f"Bearer {api_token}", "Cookie": "secret-session=abc"}
        page = await client.get(url, headers=auth)
        assert page.status_code == 200 and "Hello from the actor" in page.text
        csp = page.headers["Content-Security-Policy"]
        assert csp.startswith("sandbox") and "allow-same-origin" not in csp

        seen = await client.get(web_url(api_url, web_run, "headers"), headers=auth)
        assert "authorization" not in seen.json() and "cookie" not in seen.json()
        assert seen.headers["content-type"] == "application/json"
        cookies = seen.headers.get_list("set-cookie")
        assert not any("evil" in cookie for cookie in cookies)  # an actor cannot set cookies on Jupyter's origin

    bindings = docker_client.api.inspect_container(web_run["container_id"])["NetworkSettings"]["Ports"]
    assert not any(bindings.values())  # nothing published on the host: only the proxy reaches it

    request = HTTPRequest(url.replace("http://", "ws://"), headers={"Authorization": f"Bearer {api_token}"})
    connection = await websocket_connect(request)
    await connection.write_message("hi")
    assert await connection.read_message() == "echo: hi"
    connection.close()
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(url.replace("http://", "ws://"))
    assert info.value.code == 403

    platform.abort_run(web_run["id"])
    platform.wait_run(web_run["id"], 60)
    async with httpx.AsyncClient(timeout=30) as client:
        gone = await client.get(url, headers={"Authorization": f"Bearer {api_token}"})
    assert gone.status_code == 404 and "has finished" in gone.text


async def test_not_up_yet_answers_a_readable_502(api_url, api_token, actors_app):
    platform = actors_app.platform
    define_actor(platform, "slow-site", SERVER, env_vars=[{"name": "DELAY", "value": "5"}])
    run = platform.start_run("slow-site", memory_mb=1024, timeout_secs=300)
    run = wait_until(lambda: (r := platform.get_run(run["id"]))["host_port"] and r, 60, message="published")
    headers = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(timeout=30) as client:
        early = await client.get(web_url(api_url, run), headers=headers)
        assert early.status_code in (502, 503) and "<h1>" in early.text
    platform.abort_run(run["id"])


async def test_the_seeds_express_example_in_the_standard_library(api_url, api_token, actors_app):
    platform = actors_app.platform
    platform.create_actor(load_actor_dir(EXAMPLES_DIR / "web-server"))
    assert platform.build("web-server")["status"] == "SUCCEEDED"
    run = platform.start_run("web-server", memory_mb=1024, timeout_secs=300)
    wait_until(lambda: b"is listening" in platform.run_log(run["id"]), 120, message="listening")
    run = platform.get_run(run["id"])
    assert f"can be accessed at {platform.web_url(run)}!" in platform.run_log(run["id"]).decode()
    async with httpx.AsyncClient(timeout=30) as client:
        hello = await client.get(web_url(api_url, run), headers={"Authorization": f"Bearer {api_token}"})
        posted = await client.post(web_url(api_url, run), headers={"Authorization": f"Bearer {api_token}"},
                                   content=b"x" * 3_000_000)
    assert hello.status_code == 200 and hello.text == "Hello World!"
    assert posted.status_code == 200 and posted.text == "Received 3000000 bytes", posted.text
    platform.abort_run(run["id"])


async def test_actor_page_cannot_read_jupyter_cookies_or_call_its_api(api_url, api_token, web_run, tmp_path):
    from playwright.async_api import async_playwright

    base = api_url.removesuffix("actors/api")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{base}api/status?token={api_token}")  # logs the browser in: Jupyter sets a cookie
            assert any(cookie["name"].startswith("username-") for cookie in await page.context.cookies())
            own = await page.context.request.get(f"{base}api/contents")
            assert own.status == 200  # the browser's Jupyter cookie does authenticate API calls...

            await page.goto(web_url(api_url, web_run))  # ...the actor's page, under the same host, may not
            await page.wait_for_function("document.getElementById('out').textContent !== 'pending'", timeout=30_000)
            result = json.loads(await page.text_content("#out"))
            await page.screenshot(path=str(tmp_path / "actor-page.png"))
        finally:
            await browser.close()
    assert result["cookie"].startswith("blocked")
    assert result["api"] != 200


async def test_a_public_web_server_needs_no_login(api_url, api_token, actors_app):
    import asyncio

    platform = actors_app.platform

    def start_public() -> dict:
        platform.create_actor(load_actor_dir(EXAMPLES_DIR / "web-server"))
        assert platform.build("web-server")["status"] == "SUCCEEDED"
        run = platform.start_run("web-server", memory_mb=1024, timeout_secs=300, web_public=True)
        wait_until(lambda: b"is listening" in platform.run_log(run["id"]), 120, message="listening")
        return platform.get_run(run["id"])

    run = await asyncio.to_thread(start_public)
    async with httpx.AsyncClient(timeout=30) as anonymous:
        hello = await anonymous.get(web_url(api_url, run))
    assert hello.status_code == 200 and hello.text == "Hello World!"
    assert hello.headers["Content-Security-Policy"].startswith("sandbox")
    platform.abort_run(run["id"])


# -- what an actor must not reach through the proxy: the user's credentials, Jupyter's origin ------------

#: A run that stores records a browser would run (HTML whose script goes for the user's Jupyter, SVG),
#: and inert ones, then serves raw HTTP it fully controls (stdlib only: the bytes are exactly these).
MISCHIEF = r'''
import asyncio, json, os, urllib.request
from urllib.parse import parse_qs

API = os.environ["APIFY_API_BASE_URL"] + "/v2"
STORE = os.environ["APIFY_DEFAULT_KEY_VALUE_STORE_ID"]
HEADERS = {"Authorization": "Bearer " + os.environ["APIFY_TOKEN"]}
ATTACK = """<!doctype html><html><head><title>attack</title></head><body><pre id="out">pending</pre><script>
(async () => {
  const out = {};
  const base = location.pathname.split("actors/")[0];
  try { await fetch(base + "no-such-page", {credentials: "include"}); } catch (e) {}  // Jupyter sets _xsrf
  try { out.cookie = document.cookie; } catch (e) { out.cookie = "blocked: " + e.name; }
  const xsrf = ((out.cookie || "").match(/_xsrf=([^;]+)/) || [])[1] || "";
  try {
    const r = await fetch(base + "api/kernels", {method: "POST", credentials: "include", body: "{}",
                          headers: {"X-XSRFToken": decodeURIComponent(xsrf), "Content-Type": "application/json"}});
    out.kernels = r.status;
  } catch (e) { out.kernels = "error: " + e.name; }
  document.getElementById("out").textContent = JSON.stringify(out);
})();
</script></body></html>"""
SVG = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5dd2f6b0000000049454e44ae426082")

def call(method, path, body, content_type):
    request = urllib.request.Request(API + path, data=body, method=method,
                                     headers={**HEADERS, "Content-Type": content_type})
    urllib.request.urlopen(request).close()

for key, body, content_type in [("attack", ATTACK.encode(), "text/html; charset=utf-8"),
                                ("drawing", SVG.encode(), "image/svg+xml"),
                                ("data", b'{"a": 1}', "application/json; charset=utf-8"),
                                ("pixel", PNG, "image/png")]:
    call("PUT", f"/key-value-stores/{STORE}/records/{key}", body, content_type)
call("POST", f"/datasets/{os.environ['APIFY_DEFAULT_DATASET_ID']}/items", b'[{"html": "<script>1</script>"}]',
     "application/json")

def response(status, headers, body=b""):
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body

async def answer(reader, writer):
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    target = head.split(" ", 2)[1]
    path, _, query = target.partition("?")
    if path == "/garbage":
        writer.write(b"this is not HTTP at all\r\n\r\n")
    elif path == "/go":
        writer.write(response(302, ["Location: " + parse_qs(query)["to"][0]]))
    elif path == "/page":
        writer.write(response(200, ["Content-Type: text/html; charset=utf-8"], ATTACK.encode()))
    elif path == "/loud-headers":
        writer.write(response(200, ["Content-Type: text/plain", "ETag: \"v1\"", "Cache-Control: no-store",
                                    "Set-Cookie: _xsrf=evil; Path=/", "Refresh: 0; url=/api/kernels",
                                    "Link: </api/kernels>; rel=preload", "Access-Control-Allow-Origin: *",
                                    "Clear-Site-Data: \"cookies\"", "X-Accel-Redirect: /api/kernels"], b"loud"))
    else:
        headers = dict(line.lower().split(": ", 1) for line in head.split("\r\n")[1:] if line)
        body = json.dumps({"target": target, "headers": headers}).encode()
        writer.write(response(200, ["Content-Type: application/json"], body))
    await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_server(answer, "0.0.0.0", int(os.environ["APIFY_CONTAINER_PORT"]))
    print("listening at", os.environ["APIFY_CONTAINER_URL"], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
'''


async def start_mischief(platform) -> dict:
    """The MISCHIEF run, up and serving: its records are stored before it listens.

    Off the event loop: the run writes through the actor API, which this loop serves.
    """

    def start() -> dict:
        define_actor(platform, "mischief", MISCHIEF)
        run = platform.start_run("mischief", memory_mb=1024, timeout_secs=300)
        wait_until(lambda: b"listening at" in platform.run_log(run["id"]), 120, message="mischief up")
        return platform.get_run(run["id"])

    return await off(start)
