"""Define, build and start actors over the API (what a ``%%actor`` cell and the form do)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from .client import Client, resolve
from .errors import ActorsError, BuildFailed, NotFoundError
from .runs import Run

VERSION = "0.0"
BUILD_WAIT_SECS = 60
BUILD_LOG_TAIL = 30


def _ref(name: str) -> str:
    return quote(name, safe="~")


def image_dockerfile(image: str) -> str:
    """The Dockerfile of ``--image``: the cell's files on top of another image, run as ``main.py``."""
    return (f"FROM {image}\nCOPY --chown=1000:1000 . /usr/src/app\nWORKDIR /usr/src/app\n"
            'CMD ["python", "main.py"]\n')


def source_files(main_py: str, requirements: str | None = None, dockerfile: str | None = None) -> list[dict]:
    files = [{"name": "main.py", "format": "TEXT", "content": main_py}]
    if requirements and requirements.strip():
        files.append({"name": "requirements.txt", "format": "TEXT", "content": requirements})
    if dockerfile:
        files.append({"name": "Dockerfile", "format": "TEXT", "content": dockerfile})
    return files


#: A JavaScript cell's image: Apify's Node.js image (the platform's local equivalent when it cannot be pulled).
NODE_IMAGE = "apify/actor-node:24"
#: The SDK a JavaScript cell gets unless it names its own version.
NODE_DEFAULT_PACKAGES = {"apify": "^3"}


def parse_package(spec: str) -> tuple[str, str]:
    """``cheerio`` -> (cheerio, *); ``apify@^3`` -> (apify, ^3); ``@crawlee/cheerio@3`` -> (@crawlee/cheerio, 3)."""
    at = spec.rfind("@")
    if at > 0:
        return spec[:at], spec[at + 1:] or "*"
    return spec, "*"


def node_source_files(main_js: str, packages: list[str] | None = None, package_json: str | None = None,
                      dockerfile: str | None = None) -> list[dict]:
    """A JavaScript cell as Apify's Node.js layout: main.js (an ES module), package.json, a Dockerfile
    that runs ``npm install`` on Apify's Node.js image."""
    if package_json is not None:
        try:
            manifest = json.loads(package_json)
        except ValueError as exc:
            raise ActorsError(f"The package.json is not valid JSON: {exc}") from None
    else:
        dependencies = dict(NODE_DEFAULT_PACKAGES)
        dependencies.update(parse_package(spec) for spec in packages or [])
        manifest = {"name": "notebook-actor", "version": "0.0.1", "private": True, "type": "module",
                    "main": "main.js", "scripts": {"start": "node main.js"}, "dependencies": dependencies}
    dockerfile = dockerfile or (
        f"FROM {NODE_IMAGE}\n"
        "COPY --chown=myuser:myuser package.json ./\n"
        "RUN npm --quiet set progress=false \\\n"
        " && npm install --omit=dev --omit=optional --no-audit --no-fund \\\n"
        " && (npm list --omit=dev || true)\n"
        "COPY --chown=myuser:myuser . ./\n"
        'CMD ["npm", "start", "--silent"]\n'
    )
    return [{"name": "main.js", "format": "TEXT", "content": main_js},
            {"name": "package.json", "format": "TEXT", "content": json.dumps(manifest, indent=2) + "\n"},
            {"name": "Dockerfile", "format": "TEXT", "content": dockerfile}]


def define(name: str, main_py: str, requirements: str | None = None, *, dockerfile: str | None = None,
           input_schema: dict | None = None, client: Client | None = None, files: list[dict] | None = None) -> dict:
    """Create the actor, or replace its source when it exists; returns Apify's actor object.

    ``files``: the whole source (e.g. ``node_source_files``) instead of a Python ``main.py``."""
    client = resolve(client)
    version: dict[str, Any] = {
        "versionNumber": VERSION, "sourceType": "SOURCE_FILES", "buildTag": "latest",
        "sourceFiles": files if files is not None else source_files(main_py, requirements, dockerfile),
    }
    if input_schema is not None:
        version["inputSchema"] = input_schema
    try:
        return client.data("PUT", f"/actors/{_ref(name)}", json={"versions": [version]})
    except NotFoundError:
        return client.post("/actors", json={"name": name, "versions": [version]})


def build(name: str, *, tag: str = "latest", client: Client | None = None) -> dict:
    """Build the newest version (the server reuses the build of identical source); raises BuildFailed."""
    client = resolve(client)
    result = client.post(f"/actors/{_ref(name)}/builds", version=VERSION, tag=tag, waitForFinish=BUILD_WAIT_SECS)
    while result["status"] in ("READY", "RUNNING"):
        result = client.get(f"/actor-builds/{result['id']}", waitForFinish=BUILD_WAIT_SECS)
    if result["status"] != "SUCCEEDED":
        log = client.request("GET", f"/actor-builds/{result['id']}/log").text.splitlines()
        tail = "\n".join(log[-BUILD_LOG_TAIL:])
        raise BuildFailed(f"Build {result.get('buildNumber')} of {name} {result['status']}: "
                          f"{result.get('statusMessage') or ''}\n{tail}".rstrip())
    return result


def encode_input(value: Any, content_type: str | None = None) -> tuple[bytes | None, str | None]:
    """Run input as a request body: objects as JSON, str/bytes as given with their content type."""
    if value is None:
        return None, None
    if isinstance(value, bytes):
        return value, content_type or "application/octet-stream"
    if isinstance(value, str) and content_type and not content_type.startswith("application/json"):
        return value.encode("utf-8"), content_type
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError as exc:
            raise ActorsError(f"The input is not valid JSON ({exc}); pass an object or a content type.") from None
        return value.encode("utf-8"), "application/json"
    return json.dumps(value).encode("utf-8"), content_type or "application/json"


def start(name: str, input: Any = None, *, memory: int | None = None, timeout: int | None = None,
          build: str | None = None, content_type: str | None = None, client: Client | None = None) -> Run:
    """Start a run and return at once (memory in MB, timeout in seconds; None = the actor's defaults)."""
    client = resolve(client)
    body, media = encode_input(input, content_type)
    response = client.request(
        "POST", f"/actors/{_ref(name)}/runs",
        params={k: v for k, v in {"memory": memory, "timeout": timeout, "build": build}.items() if v is not None},
        content=body or b"", headers={"Content-Type": media} if media else {},
    )
    return Run(response.json()["data"]["id"], client=client, data=response.json()["data"])


def call(name: str, input: Any = None, *, memory: int | None = None, timeout: int | None = None,
         build: str | None = None, content_type: str | None = None, client: Client | None = None) -> Run:
    """Start a run and wait for it to end; returns the finished Run."""
    return start(name, input, memory=memory, timeout=timeout, build=build, content_type=content_type,
                 client=client).wait()


def get_actor(name: str, *, client: Client | None = None) -> dict:
    try:
        return resolve(client).get(f"/actors/{_ref(name)}")
    except NotFoundError:
        raise NotFoundError(f"Actor {name!r} was not found; define it with a %%actor cell or "
                            "jupyter_actors.define().", status=404, type="record-not-found") from None


def delete_actor(name: str, *, client: Client | None = None) -> None:
    """Delete an actor with its builds (and their images) and its finished runs with their default storages."""
    resolve(client).request("DELETE", f"/actors/{_ref(name)}")


def delete_build(build_id: str, *, client: Client | None = None) -> None:
    """Delete one build; its image goes too when no other build uses it."""
    resolve(client).request("DELETE", f"/actor-builds/{build_id}")


def build_choices(name: str, *, client: Client | None = None) -> list[str]:
    """What a run may name as its build: the tags, then the SUCCEEDED build numbers, newest first."""
    client = resolve(client)
    actor = get_actor(name, client=client)
    numbers = [b["buildNumber"] for b in client.iter_pages(f"/actors/{actor['id']}/builds", desc=True)
               if b["status"] == "SUCCEEDED"]
    return sorted(actor.get("taggedBuilds") or {}) + numbers


def input_schema(name: str, *, client: Client | None = None) -> dict | None:
    """The input schema of the actor's newest version, if it has one."""
    versions = resolve(client).get(f"/actors/{_ref(name)}/versions")["items"]
    return versions[-1].get("inputSchema") if versions else None
