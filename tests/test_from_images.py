"""Which image a Dockerfile's FROM really uses: the engine's, pulled, or the local equivalent (no engine)."""

from __future__ import annotations

import pytest

from jupyter_actors.platform.config import DEFAULT_BASE_IMAGE_MAP
from jupyter_actors.platform.errors import BuildFailed
from jupyter_actors.platform.from_images import (
    FromResolver,
    from_lines,
    repository_of,
    tag_of,
)


class FakeEngine:
    """Has ``images``; pulls only what is in ``pullable``; records pulls."""

    def __init__(self, images=(), pullable=()) -> None:
        self.images = set(images)
        self.pullable = set(pullable)
        self.pulls: list[str] = []

    def image_exists(self, image: str) -> bool:
        return image in self.images

    def pull_image(self, image: str) -> str | None:
        self.pulls.append(image)
        if image in self.pullable:
            self.images.add(image)
            return None
        return "dial tcp: lookup registry-1.docker.io: no such host"

    def image_labels(self, image: str) -> dict:
        return {"jupyter-actors.provides": "Node.js 24.19.0, npm 11.17.0"} if "node" in image else {}


LOCAL = set(DEFAULT_BASE_IMAGE_MAP.values())


def resolve(dockerfile: str, engine: FakeEngine, buildargs=None) -> tuple[str | None, list[str]]:
    log: list[str] = []
    return FromResolver(engine, DEFAULT_BASE_IMAGE_MAP, log.append).resolve(dockerfile, buildargs), log


def test_references_split_into_repository_and_tag() -> None:
    assert (repository_of("apify/actor-node:24"), tag_of("apify/actor-node:24")) == ("apify/actor-node", "24")
    assert (repository_of("apify/actor-python"), tag_of("apify/actor-python")) == ("apify/actor-python", "latest")
    assert repository_of("registry:5000/apify/actor-node") == "registry:5000/apify/actor-node"
    assert repository_of("apify/actor-node:20@sha256:abc") == "apify/actor-node"


def test_from_lines_substitute_global_args_and_build_args() -> None:
    text = "ARG NODE=20\nARG BASE\nFROM apify/actor-node:${NODE} AS build\nARG NODE=99\nFROM $BASE\nFROM build\n"
    lines = from_lines(text, {"BASE": "jupyter-actors/python:3.11"})
    assert [(line.index, line.image, line.stage) for line in lines] == [
        (2, "apify/actor-node:20", "build"), (4, "jupyter-actors/python:3.11", None), (5, "build", None)]


def test_unpullable_apify_images_use_the_local_equivalent_and_say_which() -> None:
    engine = FakeEngine(images=LOCAL)
    text = ("# comment\nFROM apify/actor-node:24 AS builder\nRUN npm run build\n"
            "FROM --platform=linux/amd64 apify/actor-node:24\nCOPY --from=builder /usr/src/app/dist ./dist\n")
    resolved, log = resolve(text, engine)
    assert resolved == text.replace("apify/actor-node:24", "jupyter-actors/actor-node:24")
    assert engine.pulls == ["apify/actor-node:24"]  # tried once per build, not per line
    assert log == [("FROM apify/actor-node:24: not on this engine and not pullable (dial tcp: lookup "
                    "registry-1.docker.io: no such host); using the local equivalent jupyter-actors/actor-node:24 "
                    "(Node.js 24.19.0, npm 11.17.0; requested tag 24)")]


def test_images_the_engine_has_or_can_pull_are_used_as_they_are() -> None:
    engine = FakeEngine(images=LOCAL | {"apify/actor-python:3.13"}, pullable={"apify/actor-node:22"})
    assert resolve("FROM apify/actor-python:3.13\n", engine) == (None, [])
    assert resolve("FROM apify/actor-node:22\n", engine) == (None, ["Pulled apify/actor-node:22"])
    # Any other image is the engine's business, as with `docker build`: no pull attempt here.
    assert resolve("FROM python:3.12-slim\n", engine) == (None, [])
    assert engine.pulls == ["apify/actor-node:22"]


def test_browser_images_fail_with_what_to_do() -> None:
    with pytest.raises(BuildFailed) as failure:
        resolve("FROM apify/actor-python-playwright:3.13\n", FakeEngine(images=LOCAL))
    message = failure.value.message
    assert "no local equivalent of apify/actor-python-playwright" in message
    assert "apify/actor-python:<tag>" in message and "base_image_map" in message and "docker load" in message


def test_a_missing_local_equivalent_says_to_run_setup() -> None:
    with pytest.raises(BuildFailed, match="jupyter-actors setup"):
        resolve("FROM apify/actor-node:24\n", FakeEngine())


def test_the_mapping_is_configurable() -> None:
    log: list[str] = []
    mapping = {"apify/actor-node-playwright-chrome": "my/chrome:1"}
    resolved = FromResolver(FakeEngine(images={"my/chrome:1"}), mapping, log.append).resolve(
        "FROM apify/actor-node-playwright-chrome:22\n")
    assert resolved == "FROM my/chrome:1\n" and "using the local equivalent my/chrome:1 (version unknown" in log[0]
