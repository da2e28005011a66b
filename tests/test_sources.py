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
