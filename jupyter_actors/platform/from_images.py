"""The images an actor's Dockerfile starts FROM: the engine's own, pulled, or a local equivalent.

Apify's actors start ``FROM apify/actor-python:<tag>`` or ``FROM apify/actor-node:<tag>``. Where the
engine has or can pull that image it is used as is; where it cannot (no registry reachable), the
Dockerfile is built with the FROM line pointing at the platform's local equivalent (the mapping is
the ``base_image_map`` setting) and the build log says so. Apify images without an equivalent (the
browser images) fail the build with a message that says what to do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .backends.base import Backend
from .errors import BuildFailed

#: Repositories of Apify's images: one of these without a mapping cannot be provided here.
APIFY_PREFIX = "apify/actor-"
#: Label of the platform's images that says what they really provide (e.g. "Node.js 24.19.0, npm 11.6.2").
PROVIDES_LABEL = "jupyter-actors.provides"

_FROM = re.compile(r"^(\s*FROM\s+)((?:--\S+\s+)*)(\S+)(.*)$", re.IGNORECASE)
_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?", re.IGNORECASE)
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class FromLine:
    index: int  # line number (0-based) in the Dockerfile
    written: str  # the image as written, e.g. apify/actor-node:${NODE_VERSION}
    image: str  # with the build args substituted
    stage: str | None  # its ``AS name``


def repository_of(image: str) -> str:
    """``apify/actor-node:24`` -> ``apify/actor-node`` (a registry port is not a tag; digests dropped)."""
    image = image.split("@", 1)[0]
    name, _, tag = image.rpartition(":")
    return image if "/" in tag or not name else name


def tag_of(image: str) -> str:
    repository = repository_of(image)
    rest = image.split("@", 1)[0][len(repository):]
    return rest[1:] if rest.startswith(":") else "latest"


def from_lines(dockerfile: str, buildargs: dict[str, str] | None = None) -> list[FromLine]:
    """Every FROM of a Dockerfile, with global ARG defaults and ``buildargs`` substituted as Docker does."""
    values: dict[str, str] = {}
    found: list[FromLine] = []
    for index, line in enumerate(dockerfile.splitlines()):
        arg = _ARG.match(line)
        if arg and not found:  # only ARGs before the first FROM apply to FROM lines
            name, default = arg.group(1), arg.group(2)
            value = (buildargs or {}).get(name, default)
            if value is not None:
                values[name] = value.strip("\"'")
            continue
        match = _FROM.match(line)
        if not match:
            continue
        written = match.group(3)
        stage = re.match(r"\s+AS\s+(\S+)", match.group(4), re.IGNORECASE)
        found.append(FromLine(index, written, _substitute(written, values), stage.group(1) if stage else None))
    return found


def _substitute(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name in values:
            return values[name]
        return match.group(2) or ""

    return _VAR.sub(one, text)


class FromResolver:
    """Decides, per build, which image each FROM line really uses, and rewrites the Dockerfile."""

    def __init__(self, backend: Backend, mapping: dict[str, str], log: Callable[[str], None]) -> None:
        self.backend = backend
        self.mapping = mapping
        self.log = log

    def resolve(self, dockerfile: str, buildargs: dict[str, str] | None = None) -> str | None:
        """The Dockerfile with unavailable FROM images replaced by local ones; None if nothing changed."""
        lines = dockerfile.splitlines(keepends=True)
        stages: set[str] = set()
        decided: dict[str, str] = {}
        changed = False
        for entry in from_lines(dockerfile, buildargs):
            if entry.image in stages or entry.image.lower() == "scratch":
                pass
            elif entry.image not in decided:
                decided[entry.image] = self._choose(entry.image)
            if entry.stage:
                stages.add(entry.stage)
            local = decided.get(entry.image, entry.image)
            if local != entry.image:
                lines[entry.index] = lines[entry.index].replace(entry.written, local, 1)
                changed = True
        return "".join(lines) if changed else None

    def _choose(self, image: str) -> str:
        repository = repository_of(image)
        if repository not in self.mapping and not repository.startswith(APIFY_PREFIX):
            return image  # any other image: the engine pulls it (or says why not) as `docker build` does
        if self.backend.image_exists(image):
            return image
        reason = self.backend.pull_image(image)
        if reason is None:
            self.log(f"Pulled {image}")
            return image
        local = self.mapping.get(repository)
        if local is None:
            raise BuildFailed(
                f"The Dockerfile starts FROM {image}, which this engine does not have and cannot pull ({reason}), "
                f"and the platform has no local equivalent of {repository} (it provides "
                f"{', '.join(sorted(self.mapping)) or 'none'}; browser images such as the Playwright, Puppeteer and "
                "Selenium ones are not provided). Either load the image into the engine (`docker pull` it where a "
                "registry is reachable, then `docker save` / `docker load`), "
                f"or start FROM {self._suggestion(repository)} and install what you need in the Dockerfile, "
                "or map it to an image you have with the base_image_map setting."
            )
        if not self.backend.image_exists(local):
            raise BuildFailed(
                f"The Dockerfile starts FROM {image}, which cannot be pulled here ({reason}); its local equivalent "
                f"{local} does not exist yet. Run `jupyter-actors setup` to build it."
            )
        self.log(
            f"FROM {image}: not on this engine and not pullable ({reason}); using the local equivalent {local}"
            f" ({self._provides(local)}; requested tag {tag_of(image)})"
        )
        return local

    def _provides(self, image: str) -> str:
        labels = self.backend.image_labels(image)
        return labels.get(PROVIDES_LABEL) or "version unknown"

    def _suggestion(self, repository: str) -> str:
        language = "python" if "python" in repository else "node"
        candidates = [r for r in self.mapping if language in r] or list(self.mapping)
        return candidates[0] + ":<tag>" if candidates else "an image the engine has"
