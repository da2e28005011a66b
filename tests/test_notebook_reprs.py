"""Rich HTML reprs of Run, Dataset and KeyValueStore, with actor-controlled strings that try to be HTML.

The HTML is parsed: only the tags the reprs make may appear, no event-handler attributes, no link
that is not http(s), and the hostile text shows up as text.
"""

from __future__ import annotations

from html.parser import HTMLParser

import jupyter_actors
from jupyter_actors.notebook import Client, KeyValueStore

from .conftest import TEST_MEMORY_MB, off, wait_until

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'&'
ALLOWED_TAGS = {"div", "b", "code", "span", "table", "thead", "tbody", "tr", "th", "td", "a"}

STATUS_ACTOR = f"""
import asyncio
from apify import Actor

async def main():
    async with Actor:
        await Actor.push_data({{"name": {HOSTILE!r}, {HOSTILE!r}: 1}})
        await Actor.set_status_message({HOSTILE!r})
        await asyncio.sleep(600)  # the test reads the message while the run is on, then aborts it

asyncio.run(main())
"""


class Parsed(HTMLParser):
    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data):
        self.text.append(data)


def assert_safe(markup: str) -> Parsed:
    parsed = Parsed(markup)
    assert parsed.tags <= ALLOWED_TAGS, parsed.tags
    assert not [name for name, _ in parsed.attrs if name.startswith("on") or name == "src"], parsed.attrs
    hrefs = [value for name, value in parsed.attrs if name == "href"]
    assert all(v and v.startswith(("http://", "https://")) for v in hrefs), hrefs
    return parsed


async def test_dataset_and_store_reprs_escape_what_actors_write(client):
    made = await off(client.post, "/datasets", name="hostile")
    items = [{"name": HOSTILE, HOSTILE: 1, "nested": {"html": HOSTILE}}] + [{"name": f"row {i}"} for i in range(9)]
    await off(client.request, "POST", f"/datasets/{made['id']}/items", json=items)
    dataset = await off(jupyter_actors.dataset, "hostile", client=client)
    markup = await off(dataset._repr_html_)
    parsed = assert_safe(markup)
    text = "".join(parsed.text)
    assert HOSTILE in text and "hostile" in text and "10 items, the first 5 shown" in text
    assert "row 3" in text and "row 4" not in text

    store = await off(client.post, "/key-value-stores", name="hostile-store")
    await off(client.request, "PUT", f"/key-value-stores/{store['id']}/records/page",
              content=b"<p>hi</p>", headers={"Content-Type": 'text/html; x="<script>alert(1)</script>"'})
    kvs = await off(jupyter_actors.key_value_store, "hostile-store", client=client)
    parsed = assert_safe(await off(kvs._repr_html_))
    text = "".join(parsed.text)
    assert "1 key" in text and "page" in text and "9 B" in text and "<script>alert(1)</script>" in text


async def test_a_run_repr_escapes_its_status_message_and_refuses_unsafe_links(client):
    await off(jupyter_actors.define, "hostile-status", STATUS_ACTOR, client=client)
    await off(jupyter_actors.build, "hostile-status", client=client)
    run = await off(jupyter_actors.start, "hostile-status", memory=TEST_MEMORY_MB, timeout=120, client=client)
    await off(wait_until, lambda: run.refresh().get("statusMessage") == HOSTILE, 120, 0.2,
              "the run to set its status message")
    parsed = assert_safe(run._repr_html_())
    text = "".join(parsed.text)
    assert HOSTILE in text and "RUNNING" in text and run.id in text
    assert run.data["defaultDatasetId"] in text and f"{TEST_MEMORY_MB} MB" in text
    assert HOSTILE in "".join(assert_safe(await off(run.dataset._repr_html_)).text)

    await off(run.abort)
    forged = jupyter_actors.Run(run.id, client=client, data={**run.data, "containerUrl": "javascript:alert(1)"})
    assert "javascript:alert(1)" in "".join(assert_safe(forged._repr_html_()).text)


def test_a_repr_says_when_the_server_cannot_be_asked():
    unreachable = Client("http://127.0.0.1:9/actors/api", "t", retry_attempts=1)
    markup = KeyValueStore("abc", client=unreachable)._repr_html_()
    assert "Cannot reach" in "".join(assert_safe(markup).text)
    unreachable.close()
