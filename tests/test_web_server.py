"""Each run's web server through the Jupyter server: auth, no credential leaks, sandbox, websockets."""

from __future__ import annotations

import contextlib
import json
from urllib.parse import quote

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


async def test_proxy_passes_no_credentials_and_the_path_exactly(api_url, api_token, actors_app, jp_serverapp):
    from jupyter_server.auth.authorizer import Authorizer

    run = await start_mischief(actors_app.platform)
    async with httpx.AsyncClient(timeout=30) as client:
        # Jupyter accepts ?token=: the user is logged in by it, and the actor never sees it (nor _xsrf).
        seen = await client.get(web_url(api_url, run, f"echo?a=1&%74oken=x&b=%20x&_xsrf=2%7Cab&token={api_token}&c"))
        assert seen.status_code == 200, seen.text
        assert seen.json()["target"] == "/echo?a=1&b=%20x&c"
        assert api_token not in seen.text and "cookie" not in seen.json()["headers"]

        # Escaped slashes, question marks and spaces reach the actor as they were sent.
        auth = {"Authorization": f"Bearer {api_token}"}
        raw = web_url(api_url, run, "echo/a%2Fb%3Fc%20d/e?q=%2F%3F")
        seen = await client.get(httpx.URL(raw), headers=auth)
        assert seen.json()["target"] == "/echo/a%2Fb%3Fc%20d/e?q=%2F%3F"

        # Only headers about the body pass: none that could act on Jupyter's origin or a proxy before it.
        loud = await client.get(web_url(api_url, run, "loud-headers"), headers=auth)
        assert loud.text == "loud" and loud.headers["etag"] == '"v1"' and loud.headers["cache-control"] == "no-store"
        for name in ("refresh", "link", "clear-site-data", "x-accel-redirect"):
            assert name not in loud.headers, name
        assert loud.headers.get("access-control-allow-origin") != "*"  # Jupyter's own CORS answer only
        assert not any("evil" in cookie for cookie in loud.headers.get_list("set-cookie"))

        garbage = await client.get(web_url(api_url, run, "garbage"), headers=auth)
        assert garbage.status_code == 502 and "not valid HTTP" in garbage.text

        # The proxy asks Jupyter's authorizer, like every other handler.
        class NoActors(Authorizer):
            def is_authorized(self, handler, user, action, resource):
                return resource != "actors"

        settings = jp_serverapp.web_app.settings
        allowed, settings["authorizer"] = settings["authorizer"], NoActors(parent=jp_serverapp)
        try:
            denied = await client.get(web_url(api_url, run, "echo"), headers=auth)
        finally:
            settings["authorizer"] = allowed
        assert denied.status_code == 403 and "may not read actors" in denied.text


async def test_redirects_stay_inside_the_run(api_url, api_token, actors_app):
    run = await start_mischief(actors_app.platform)
    base = api_url.removesuffix("actors/api")
    path_base = httpx.URL(base).raw_path.decode()
    record = f"{path_base}actors/api/v2/key-value-stores/{run['default_key_value_store_id']}/records/attack"
    own = f"{path_base}actors/web/{run['web_id']}/echo"
    auth = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(timeout=30) as client:
        async def go(to: str) -> httpx.Response:
            return await client.get(web_url(api_url, run, "go"), params={"to": to}, headers=auth)

        for outside in (record, base + record.removeprefix(path_base), f"{own}/../../../api/kernels",
                        f"//127.0.0.1:{httpx.URL(base).port}{path_base}api/kernels", f"{own}/%2e%2e/%2e%2e/x"):
            refused = await go(outside)
            assert refused.status_code == 502, (outside, refused.status_code)
            assert "location" not in refused.headers and "outside this run" in refused.text
        for inside in (own, "echo?x=1", "https://example.com/elsewhere"):
            followed = await go(inside)
            assert followed.status_code == 302 and followed.headers["location"] == inside


async def test_websockets_from_another_origin_are_refused(api_url, api_token, web_run):
    base = api_url.removesuffix("actors/api")
    async with httpx.AsyncClient(timeout=30) as client:  # a browser's login: Jupyter's cookie, no token
        await client.get(f"{base}api/status", params={"token": api_token})
        cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    assert "username-" in cookie
    url = web_url(api_url, web_run).replace("http://", "ws://")
    host = httpx.URL(base).netloc.decode()
    same = await websocket_connect(HTTPRequest(url, headers={"Cookie": cookie, "Origin": f"http://{host}"}))
    await same.write_message("hi")
    assert await same.read_message() == "echo: hi"
    same.close()
    for origin in ("http://evil.example", "null"):
        with pytest.raises(HTTPClientError) as info:
            await websocket_connect(HTTPRequest(url, headers={"Cookie": cookie, "Origin": origin}))
        assert info.value.code == 403, origin


async def test_an_actor_written_html_record_cannot_act_as_the_user_in_a_browser(api_url, api_token, actors_app,
                                                                                  tmp_path):
    """The hole of issue 14: a record the run wrote, opened directly or through its web server's redirect."""
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    run = await start_mischief(actors_app.platform)
    base = api_url.removesuffix("actors/api")
    path_base = httpx.URL(base).raw_path.decode()
    record = f"{api_url}/v2/key-value-stores/{run['default_key_value_store_id']}/records/attack"
    redirecting = web_url(api_url, run, "go?to=" + quote(record.removeprefix(base.removesuffix(path_base)), safe=""))

    async def kernels() -> list:
        async with httpx.AsyncClient(timeout=30) as client:
            return (await client.get(f"{base}api/kernels", headers={"Authorization": f"Bearer {api_token}"})).json()

    assert await kernels() == []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = await browser.new_page(accept_downloads=True)
            await page.goto(f"{base}api/status?token={api_token}")  # logs the browser in: Jupyter sets a cookie
            await page.goto(f"{base}no-such-page")  # any page Jupyter renders sets the _xsrf cookie too
            names = {cookie["name"] for cookie in await page.context.cookies()}
            assert "_xsrf" in names and any(name.startswith("username-") for name in names)

            # Opened directly (a recordPublicUrl link), the record is a download, never a page.
            async with page.expect_download(timeout=30_000) as download_info:
                # "Download is starting": the navigation ends in a download
                with contextlib.suppress(PlaywrightError):
                    await page.goto(record)
            await (await download_info.value).save_as(tmp_path / "attack.html")
            assert "<script>" in (tmp_path / "attack.html").read_text()

            # Through the run's web-server link, the redirect to the record is not followed.
            answer = await page.goto(redirecting)
            assert answer is not None and answer.status == 502
            assert "outside this run" in await page.text_content("body")
            assert page.url == redirecting

            # The same script served by the actor's own web server does run, sandboxed: no cookie, no kernel.
            await page.goto(web_url(api_url, run, "page"))
            await page.wait_for_function("document.getElementById('out').textContent !== 'pending'", timeout=30_000)
            result = json.loads(await page.text_content("#out"))
            await page.screenshot(path=str(tmp_path / "actor-page.png"))
        finally:
            await browser.close()
    assert result["cookie"].startswith("blocked") and result["kernels"] != 201, result
    assert await kernels() == []  # no kernel was started by any of it
