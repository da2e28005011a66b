import json

import pytest

from jupyter_actors.platform import sources
from jupyter_actors.platform.errors import InvalidInput


def write_actor(root, spec, files):
    (root / ".actor").mkdir(parents=True)
    (root / ".actor" / "actor.json").write_text(json.dumps(spec))
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def test_load_actor_dir_reads_apify_layout(tmp_path):
    write_actor(tmp_path, {"actorSpecification": 1, "name": "hello", "version": "0.1", "buildTag": "beta",
                           "dockerfile": "../Dockerfile", "input": "./input_schema.json",
                           "environmentVariables": {"GREETING": "hi"}},
                {"Dockerfile": "FROM x\n", "src/main.py": "print(1)\n", ".actor/input_schema.json": '{"title": "t"}',
                 "logo.png": b"\x89PNG\xff\xfe", "storage/datasets/x.json": "{}", "__pycache__/a.pyc": b"\0"})
    actor = sources.load_actor_dir(tmp_path)
    names = {entry["name"] for entry in actor.files}
    assert actor.name == "hello" and actor.version == "0.1" and actor.build_tag == "beta"
    assert actor.dockerfile == "Dockerfile"
    assert actor.input_schema == {"title": "t"}
    assert actor.env_vars == [{"name": "GREETING", "value": "hi", "isSecret": False}]
    assert "src/main.py" in names and "logo.png" in names
    assert not any(name.startswith(("storage/", "__pycache__/")) for name in names)
    logo = next(entry for entry in actor.files if entry["name"] == "logo.png")
    assert logo["format"] == "BASE64" and sources.file_bytes(logo) == b"\x89PNG\xff\xfe"


def test_files_round_trip_and_hash(tmp_path):
    actor = sources.inline_actor("demo", "print('hi')\n", "six\n")
    sources.write_files(actor.files, tmp_path)
    assert (tmp_path / "main.py").read_text() == "print('hi')\n"
    same = sources.inline_actor("demo", "print('hi')\n", "six\n")
    other = sources.inline_actor("demo", "print('ho')\n", "six\n")
    assert sources.source_hash(actor.files, None, "b") == sources.source_hash(same.files, None, "b")
    assert sources.source_hash(actor.files, None, "b") != sources.source_hash(other.files, None, "b")
    assert sources.source_hash(actor.files, None, "b") != sources.source_hash(actor.files, None, "c")


@pytest.mark.parametrize("name", ["Bad", "-x", "a_b", "", "x" * 64])
def test_bad_actor_names(name):
    with pytest.raises(InvalidInput):
        sources.inline_actor(name, "")


@pytest.mark.parametrize("name", ["../evil.py", "/etc/passwd", "a/../../b", ""])
def test_file_names_stay_inside(name):
    with pytest.raises(InvalidInput):
        sources.ActorDefinition(name="ok", files=[sources.text_file(name, "x")])


def test_generated_dockerfile_entry_points():
    assert '"main.py"' in sources.generated_dockerfile({"main.py"})
    assert '"-m", "src"' in sources.generated_dockerfile({"src/__main__.py", "src/main.py"})
    assert "--no-index" in sources.generated_dockerfile({"main.py", "requirements.txt"})
    with pytest.raises(InvalidInput):
        sources.generated_dockerfile({"README.md"})


def test_actor_json_among_source_files_counts_as_for_a_directory() -> None:
    from jupyter_actors.platform.sources import actor_spec_fields, text_file

    files = [text_file(".actor/actor.json", json.dumps({
                 "name": "from-json", "version": "1.2", "buildTag": "beta", "dockerfile": "./Dockerfile",
                 "inputSchema": "../schemas/input.json", "defaultMemoryMbytes": 512, "minMemoryMbytes": 256,
                 "maxMemoryMbytes": 1024, "environmentVariables": {"A": 1}})),
             text_file(".actor/Dockerfile", "FROM apify/actor-node:24\n"),
             text_file("schemas/input.json", '{"title": "In", "type": "object"}')]
    fields = actor_spec_fields(files, "fallback")
    assert fields["name"] == "from-json" and fields["version"] == "1.2" and fields["build_tag"] == "beta"
    assert fields["dockerfile"] == ".actor/Dockerfile" and fields["input_schema"] == {"title": "In", "type": "object"}
    assert fields["env_vars"] == [{"name": "A", "value": "1", "isSecret": False}]
    assert (fields["default_memory_mb"], fields["min_memory_mb"], fields["max_memory_mb"]) == (512, 256, 1024)
    with pytest.raises(InvalidInput, match="input schema"):
        actor_spec_fields([text_file(".actor/actor.json", '{"input": "./missing.json"}')])
    with pytest.raises(InvalidInput, match="not valid JSON"):
        actor_spec_fields([text_file(".actor/actor.json", "{")])


def test_memory_range_is_checked_with_the_default() -> None:
    from jupyter_actors.platform.limits import check_memory_in_range, memory_range

    assert memory_range(1024, 512, 4096) == (512, 4096) and memory_range(None, None, None) == (None, None)
    with pytest.raises(InvalidInput, match="outside"):
        memory_range(256, 512, None)
    with pytest.raises(InvalidInput, match="above"):
        memory_range(None, 2048, 1024)
    with pytest.raises(InvalidInput, match="power of two"):
        memory_range(None, 500, None)
    with pytest.raises(InvalidInput, match="512 to 32768 MB"):
        check_memory_in_range(256, 512, None)


@pytest.mark.parametrize("key", ["dockerfile", "input"])
@pytest.mark.parametrize("path", ["../../Dockerfile", "/etc/passwd", "../../../etc/passwd", "a/../../../x"])
def test_actor_json_paths_must_stay_inside_the_actor(tmp_path, key, path):
    """Before: '..' past the actor's root was dropped silently (../../Dockerfile read the actor's own)."""
    write_actor(tmp_path, {"name": "escape", key: path}, {"Dockerfile": "FROM x\n", "main.py": "print(1)\n"})
    with pytest.raises(InvalidInput, match="outside the actor|inside the actor"):
        sources.load_actor_dir(tmp_path)


def test_symlinks_out_of_the_actor_directory_are_refused(tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key").write_text("private\n")
    actor = tmp_path / "actor"
    write_actor(actor, {"name": "linked"}, {"main.py": "print(1)\n", "data/inside.txt": "ok\n"})
    (actor / "same.txt").symlink_to(actor / "data" / "inside.txt")  # inside: read as a file
    assert {e["name"] for e in sources.load_actor_dir(actor).files} >= {"same.txt", "data/inside.txt"}
    (actor / "key").symlink_to(outside / "key")
    with pytest.raises(InvalidInput, match="outside the actor's directory"):
        sources.load_actor_dir(actor)
    (actor / "key").unlink()
    (actor / "dir").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInput, match="outside the actor's directory"):
        sources.load_actor_dir(actor)


@pytest.mark.parametrize("line", ["--index-url https://evil.example/simple", "-r /etc/passwd", "-e .",
                                  "  --extra-index-url=https://x", "-c /etc/constraints", "--find-links /"])
def test_requirements_options_for_the_hosts_pip_are_refused(line):
    with pytest.raises(InvalidInput, match="pip option"):
        sources.inline_actor("reqs", "print(1)\n", f"six\n{line}\n")
    # With its own Dockerfile the actor's requirements are installed in the image, not by the host's pip.
    sources.ActorDefinition(name="reqs", dockerfile="Dockerfile", files=[
        sources.text_file("Dockerfile", "FROM x\n"), sources.text_file("requirements.txt", line)])
    sources.inline_actor("reqs", "print(1)\n", "six==1.16.0  # --not-an-option\nrequests[socks]>=2\n")
