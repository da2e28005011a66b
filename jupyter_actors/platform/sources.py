"""Actor source: a directory in Apify's layout or inline files, normalised to Apify's SOURCE_FILES.

Every actor version is stored as a list of ``{"name", "format", "content"}`` files (the shape of
Apify's API), so builds, the HTTP API and notebooks all work from one representation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import InvalidInput
from .storages.schemas import check_dataset_schema, check_key_value_store_schema

ACTOR_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
VERSION_RE = re.compile(r"^\d{1,2}\.\d{1,2}$")
SKIPPED_DIRS = {".git", "storage", "node_modules", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache"}
MAX_SOURCE_BYTES = 50 * 1024 * 1024
WHEELS_DIR = ".wheels"


@dataclass
class ActorDefinition:
    """Everything needed to create or update an actor version."""

    name: str
    files: list[dict[str, Any]]
    version: str = "0.0"
    build_tag: str = "latest"
    title: str | None = None
    description: str | None = None
    dockerfile: str | None = None  # path among ``files``; None = the platform writes one
    input_schema: dict[str, Any] | None = None
    dataset_schema: dict[str, Any] | None = None  # views of the runs' default dataset (storages/schemas.py)
    key_value_store_schema: dict[str, Any] | None = None  # collections of the runs' default key-value store
    env_vars: list[dict[str, Any]] = field(default_factory=list[Any])
    default_memory_mb: int | None = None
    default_timeout_secs: int | None = None
    min_memory_mb: int | None = None  # the memory range runs may ask for (None: no bound)
    max_memory_mb: int | None = None

    def __post_init__(self) -> None:
        validate_name(self.name)
        if not VERSION_RE.match(self.version):
            raise InvalidInput(f"Version must look like MAJOR.MINOR (e.g. 0.0); got {self.version!r}.")
        for entry in self.files:
            validate_file_name(entry["name"])
        if self.dockerfile is None:  # the generated Dockerfile installs requirements.txt with the host's pip
            requirements = next((entry for entry in self.files if entry["name"] == "requirements.txt"), None)
            if requirements is not None:
                validate_requirements(file_bytes(requirements).decode("utf-8", errors="replace"))


def validate_name(name: object, kind: str = "Actor") -> str:
    """Actors and tasks follow Apify's naming rule (``kind`` names which one the message is about)."""
    if not isinstance(name, str) or not ACTOR_NAME_RE.match(name):
        raise InvalidInput(
            f"{kind} name {name!r} is not allowed: use 1-63 lowercase letters, digits and dashes, "
            f"starting and ending with a letter or digit (e.g. my-{kind.split()[-1].lower()})."
        )
    return name


def validate_file_name(name: str) -> str:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or name.startswith("~"):
        raise InvalidInput(f"Source file name {name!r} must be a relative path inside the actor.")
    return name


def validate_requirements(text: str) -> None:
    """Packages only: the host's pip reads requirements.txt, so options (``--index-url``, ``-r /etc/...``,
    ``-e``, ``--find-links``) would point the host at other files or indexes."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("-"):
            raise InvalidInput(
                f"requirements.txt line {number} ({stripped.split()[0]}) is a pip option; list packages only "
                "(the host's pip reads this file), or bring a Dockerfile that installs them in the image."
            )


def text_file(name: str, content: str) -> dict[str, Any]:
    return {"name": name, "format": "TEXT", "content": content}


def file_bytes(entry: dict[str, Any]) -> bytes:
    if entry.get("format", "TEXT").upper() == "BASE64":
        return base64.b64decode(entry["content"])
    return str(entry["content"]).encode("utf-8")


def inline_actor(name: str, main_py: str, requirements: str | None = None, **options: Any) -> ActorDefinition:
    """What a notebook cell defines: a ``main.py`` and optionally a ``requirements.txt``."""
    files = [text_file("main.py", main_py)]
    if requirements and requirements.strip():
        files.append(text_file("requirements.txt", requirements))
    return ActorDefinition(name=name, files=files, **options)


def load_actor_dir(path: Path | str) -> ActorDefinition:
    """Read ``.actor/actor.json`` and the sources of an actor directory (Apify's layout)."""
    root = Path(path)
    spec_path = root / ".actor" / "actor.json"
    if not spec_path.is_file():
        raise InvalidInput(f"{root} is not an actor directory: {spec_path} is missing.")
    return ActorDefinition(**actor_spec_fields(_read_files(root), root.name))


#: The file of Apify's layout that describes the actor.
ACTOR_JSON = ".actor/actor.json"


def actor_spec_fields(files: list[dict[str, Any]], default_name: str | None = None) -> dict[str, Any]:
    """ActorDefinition fields from the files' ``.actor/actor.json`` (Apify's layout), or from the files alone.

    The same for a directory and for source files sent to the API: ``dockerfile`` (relative to
    ``.actor/``, else ``.actor/Dockerfile`` or ``Dockerfile``), ``input``/``inputSchema`` (a path relative
    to ``.actor/`` or the schema itself), ``environmentVariables``, ``defaultMemoryMbytes``, ``buildTag``.
    """
    by_name = {entry["name"]: entry for entry in files}
    spec: dict[str, Any] = {}
    if ACTOR_JSON in by_name:
        try:
            spec = json.loads(file_bytes(by_name[ACTOR_JSON]))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{ACTOR_JSON} is not valid JSON: {exc}") from None
        if not isinstance(spec, dict):
            raise InvalidInput(f"{ACTOR_JSON} must be a JSON object.")
    dockerfile: str | None
    if spec.get("dockerfile"):
        dockerfile = _inside_actor(spec["dockerfile"], "dockerfile")
        if dockerfile not in by_name:
            raise InvalidInput(f"actor.json names dockerfile {spec['dockerfile']!r}, but {dockerfile} does not exist.")
    else:
        dockerfile = next((candidate for candidate in (".actor/Dockerfile", "Dockerfile") if candidate in by_name),
                          None)
    input_schema = _schema(spec.get("input", spec.get("inputSchema")), by_name, "input schema")
    storages = spec.get("storages") or {}
    if not isinstance(storages, dict):
        raise InvalidInput("actor.json storages must be an object (dataset, keyValueStore).")
    dataset_schema = _schema(storages.get("dataset"), by_name, "dataset schema", ".actor/dataset_schema.json")
    kvs_schema = _schema(storages.get("keyValueStore"), by_name, "key-value store schema",
                         ".actor/key_value_store_schema.json")
    variables = spec.get("environmentVariables") or {}
    if not isinstance(variables, dict):
        raise InvalidInput("actor.json environmentVariables must be an object of names to values.")
    fields = {
        "name": spec.get("name") or default_name,
        "files": files,
        "version": str(spec.get("version", "0.0")),
        "build_tag": spec.get("buildTag") or "latest",
        "title": spec.get("title"),
        "description": spec.get("description"),
        "dockerfile": dockerfile,
        "input_schema": input_schema,
        "dataset_schema": check_dataset_schema(dataset_schema) if dataset_schema is not None else None,
        "key_value_store_schema": check_key_value_store_schema(kvs_schema) if kvs_schema is not None else None,
        "env_vars": [{"name": key, "value": str(value), "isSecret": False} for key, value in variables.items()],
        "default_memory_mb": spec.get("defaultMemoryMbytes"),
        "default_timeout_secs": spec.get("defaultTimeoutSecs"),
        "min_memory_mb": spec.get("minMemoryMbytes"),
        "max_memory_mb": spec.get("maxMemoryMbytes"),
    }
    return fields


def _schema(value: object, by_name: dict[str, dict[str, Any]], what: str,
            default_file: str | None = None) -> Any:
    """A schema actor.json gives inline, or as a path relative to ``.actor/``; else ``default_file`` if present."""
    if value is None and default_file in by_name:
        value = default_file.removeprefix(".actor/") if default_file else None
    if not isinstance(value, str):
        return value
    schema_name = _inside_actor(value, what)
    if schema_name not in by_name:
        raise InvalidInput(f"actor.json names the {what} {value!r}, but {schema_name} does not exist.")
    try:
        return json.loads(file_bytes(by_name[schema_name]))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"The {what} {schema_name} is not valid JSON: {exc}") from None


def _inside_actor(name: object, what: str) -> str:
    """A path actor.json gives (relative to ``.actor/``) as a source file name; refused if it leaves the actor."""
    if not isinstance(name, str) or not name or PurePosixPath(name).is_absolute() or "\\" in name:
        raise InvalidInput(f"actor.json names the {what} {name!r}: give a path relative to .actor/ inside the actor.")
    parts: list[str] = []
    for part in PurePosixPath(".actor", name).parts:
        if part == "..":
            if not parts:
                raise InvalidInput(f"actor.json names the {what} {name!r}, which is outside the actor's directory.")
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def _read_files(root: Path) -> list[dict[str, Any]]:
    files, total = [], 0
    real_root = root.resolve()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part in SKIPPED_DIRS for part in relative.parts):
            continue
        if path.is_symlink() and not path.resolve().is_relative_to(real_root):
            raise InvalidInput(f"{relative.as_posix()} is a symbolic link to {path.resolve()}, outside the actor's "
                               "directory; copy what it points to into the directory instead.")
        if not path.is_file():
            continue
        data = path.read_bytes()
        total += len(data)
        if total > MAX_SOURCE_BYTES:
            raise InvalidInput(f"The actor's source is larger than {MAX_SOURCE_BYTES // 2**20} MB.")
        try:
            files.append(text_file(relative.as_posix(), data.decode("utf-8")))
        except UnicodeDecodeError:
            files.append({"name": relative.as_posix(), "format": "BASE64", "content": base64.b64encode(data).decode()})
    return files


def source_hash(files: list[dict[str, Any]], dockerfile: str | None, base_image_id: str) -> str:
    """Identical source on the same base image gives the same hash, so its build can be reused."""
    digest = hashlib.sha256()
    for entry in sorted(files, key=lambda item: item["name"]):
        digest.update(entry["name"].encode() + b"\0" + file_bytes(entry) + b"\0")
    digest.update(f"dockerfile={dockerfile}\0base={base_image_id}".encode())
    return digest.hexdigest()


def write_files(files: list[dict[str, Any]], dest: Path) -> None:
    for entry in files:
        target = dest / validate_file_name(entry["name"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file_bytes(entry))


def entry_command(names: set[str]) -> list[str]:
    """How the generated Dockerfile starts the actor: Apify's Python template layout first."""
    if "src/__main__.py" in names:
        return ["python", "-m", "src"]
    if "main.py" in names:
        return ["python", "main.py"]
    if "src/main.py" in names:
        return ["python", "src/main.py"]
    raise InvalidInput("The actor has no Dockerfile and no main.py, src/main.py or src/__main__.py to run.")


def generated_dockerfile(names: set[str]) -> str:
    """The Dockerfile used when the actor brings none: its files on top of the base image."""
    lines = ["ARG BASE_IMAGE", "FROM ${BASE_IMAGE}", "COPY --chown=1000:1000 . /usr/src/app"]
    if "requirements.txt" in names:
        # The wheels were downloaded on the host into the context: the build never reaches an index.
        lines.append(
            f"RUN pip install --no-cache-dir --no-index --find-links {WHEELS_DIR} -r requirements.txt "
            f"&& rm -rf {WHEELS_DIR}"
        )
    lines.append("CMD " + json.dumps(entry_command(names)))
    return "\n".join(lines) + "\n"
