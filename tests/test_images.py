"""The offline base image: apt-sources parsing, wheel targets, and a real build/reuse on the engine."""

from __future__ import annotations

import os
import time
from pathlib import Path

import docker
import docker.errors
import pytest

from jupyter_actors.platform.config import DEFAULT_BASE_IMAGE
from jupyter_actors.platform.errors import NotFound
from jupyter_actors.platform.images import WheelTarget, download_wheels, ensure_base_image, image_wheel_target
from jupyter_actors.platform.rootfs import (
    AptSource,
    host_codename,
    parse_deb822_sources,
    parse_one_line_sources,
    pick_base_source,
    read_apt_sources,
)

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main
"""

ONE_LINE = """\
# comment line
deb http://security.example/debian-security bookworm-security main
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://mirror.example/ubuntu jammy-updates main
deb [arch=amd64] http://mirror.example/ubuntu jammy main restricted  # trailing comment
"""


def test_deb822_parser_expands_uris_and_suites_and_skips_deb_src() -> None:
    assert parse_deb822_sources(DEB822) == [
        AptSource("http://mirror.example/debian", "bookworm"),
        AptSource("http://mirror.example/debian", "bookworm-updates"),
        AptSource("http://mirror.example/debian-security", "bookworm-security"),
    ]


def test_deb822_parser_honours_enabled_no_and_continuation_lines() -> None:
    text = ("Types: deb\nEnabled: no\nURIs: http://a.example/d\nSuites: x\n\n"
            "Types: deb\nURIs:\n http://b.example/d\nSuites: y\n")
    assert parse_deb822_sources(text) == [AptSource("http://b.example/d", "y")]


def test_one_line_parser_strips_options_and_comments() -> None:
    assert parse_one_line_sources(ONE_LINE) == [
        AptSource("http://security.example/debian-security", "bookworm-security"),
        AptSource("http://mirror.example/ubuntu", "jammy-updates"),
        AptSource("http://mirror.example/ubuntu", "jammy"),
    ]


def test_pick_skips_security_and_updates() -> None:
    assert pick_base_source(parse_deb822_sources(DEB822)) == AptSource("http://mirror.example/debian", "bookworm")
    assert pick_base_source(parse_one_line_sources(ONE_LINE)) == AptSource("http://mirror.example/ubuntu", "jammy")


def test_pick_prefers_the_host_codename_over_third_party_repos() -> None:
    sources = [AptSource("https://vendor.example/apt", "cloud-sdk"), *parse_deb822_sources(DEB822)]
    assert pick_base_source(sources, "bookworm").uri == "http://mirror.example/debian"
    assert pick_base_source(sources, None).uri == "https://vendor.example/apt"
    assert pick_base_source([AptSource("http://s.example/debian-security", "bookworm-security")]) is None


def test_read_apt_sources_in_apt_order(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://first.example/debian bookworm main\n")
    (tmp_path / "sources.list.d" / "b.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "a.list").write_text("deb http://second.example/x stable main\n")
    (tmp_path / "sources.list.d" / "c.list.disabled").write_text("deb http://never.example/x stable main\n")
    uris = [s.uri for s in read_apt_sources(tmp_path)]
    assert uris[:2] == ["http://first.example/debian", "http://second.example/x"]
    assert "http://never.example/x" not in uris


def test_host_codename(tmp_path: Path) -> None:
    (tmp_path / "os-release").write_text('ID=debian\nVERSION_CODENAME=bookworm\n')
    assert host_codename(tmp_path / "os-release") == "bookworm"
    assert host_codename(tmp_path / "missing") is None


def test_wheel_target_pip_args_cover_older_manylinux_tags() -> None:
    args = WheelTarget("3.11", "2.36", "x86_64").pip_args()
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert platforms[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in platforms
    assert "manylinux2014_x86_64" in platforms and "manylinux1_x86_64" in platforms
    assert "manylinux_2_37_x86_64" not in platforms
    assert args[args.index("--python-version") + 1] == "3.11"


def test_download_wheels_from_a_requirements_file_includes_pip(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("typing-extensions\n")
    lines: list[str] = []
    wheels = download_wheels(reqs, tmp_path / "wheels", log=lines.append)
    names = {w.name.split("-")[0] for w in wheels}
    assert {"pip", "typing_extensions"} <= names
    # A warm cache installs nothing new and needs no index: the second call logs no download.
    lines.clear()
    download_wheels(reqs, tmp_path / "wheels", log=lines.append)
    assert lines == []


# --- real engine ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    try:
        client = docker.from_env(version="auto")
        client.ping()
    except Exception as exc:  # any failure here means: no engine
        pytest.skip(f"no Docker engine answers ({exc}); run `jupyter-actors setup` as root to get one")
    return client


@pytest.fixture(scope="module")
def base_image(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> str:
    # Never removed: it is shared and expensive. Builds (~80 s) only when missing.
    return ensure_base_image(client, work_dir=tmp_path_factory.mktemp("images"))


def _run(client: docker.DockerClient, image: str, script: str, **kwargs) -> str:
    out = client.containers.run(image, ["sh", "-c", script], remove=True, network_disabled=True, **kwargs)
    return out.decode().strip()


@pytest.mark.docker
def test_base_image_is_reused(client: docker.DockerClient, base_image: str, tmp_path: Path) -> None:
    started = time.monotonic()
    again = ensure_base_image(client, work_dir=tmp_path, log=pytest.fail)  # reuse logs nothing
    assert again == base_image
    assert time.monotonic() - started < 2
    assert client.images.get(DEFAULT_BASE_IMAGE).id == base_image


@pytest.mark.docker
def test_base_image_runs_apify_as_non_root(client: docker.DockerClient, base_image: str) -> None:
    out = _run(client, base_image, 'id -u; command -v python; python3 -c "from apify import Actor; print(\'ok\')"',
               mem_limit="1g")
    uid, python, ok = out.splitlines()
    assert uid != "0" and python == "/opt/venv/bin/python" and ok == "ok"


@pytest.mark.docker
def test_base_image_as_explicit_run_user(client: docker.DockerClient, base_image: str) -> None:
    out = _run(client, base_image, "id -u; id -g; pwd; touch /usr/src/app/x /home/actor/y && echo writable",
               user="1000:1000")
    assert out.splitlines() == ["1000", "1000", "/usr/src/app", "writable"]


@pytest.mark.docker
def test_base_image_records_its_wheel_target(client: docker.DockerClient, base_image: str) -> None:
    target = image_wheel_target(client, base_image)
    assert target is not None
    probe = "import platform, sys; print('%d.%d' % sys.version_info[:2], platform.libc_ver()[1], platform.machine())"
    assert _run(client, base_image, f'python3 -c "{probe}"').split() == [target.python, target.glibc, target.arch]


@pytest.mark.docker
def test_configured_image_is_never_pulled(client: docker.DockerClient, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="docker pull"):
        ensure_base_image(client, "jupyter-actors-test/absent:never", work_dir=tmp_path)


@pytest.mark.docker
def test_configured_local_image_is_used_as_is(client: docker.DockerClient, base_image: str, tmp_path: Path) -> None:
    tag = f"jupyter-actors-test/custom:{int(time.time() * 1000)}"
    client.images.get(base_image).tag(tag)
    try:
        assert ensure_base_image(client, tag, work_dir=tmp_path) == base_image
    finally:
        client.images.remove(tag)  # removes the tag only; the base image stays


# --- the local equivalents of Apify's images ---------------------------------------------------------


@pytest.mark.docker
def test_apify_style_images_follow_apifys_conventions_and_trust_the_host_cas(
        client: docker.DockerClient, apify_images: dict[str, str]) -> None:
    check = ('id -u myuser; id -g myuser; pwd; command -v {tool}; echo "no_index=${{PIP_NO_INDEX:-unset}}"; '
             'for v in SSL_CERT_FILE REQUESTS_CA_BUNDLE PIP_CERT NODE_EXTRA_CA_CERTS NPM_CONFIG_CAFILE; do '
             'eval echo \\$$v; done')
    python = _run(client, apify_images["python"], check.format(tool="pip"))
    node = _run(client, apify_images["node"], check.format(tool="npm"))
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    assert python.splitlines() == ["1000", "1000", "/usr/src/app", "/opt/venv/bin/pip", "no_index=unset", *[bundle] * 5]
    assert node.splitlines() == ["1000", "1000", "/usr/src/app", "/usr/local/bin/npm", "no_index=unset", *[bundle] * 5]
    # The host's CAs are in the images' system store (the proxy here signs with one of them).
    host = Path("/etc/ssl/certs/ca-certificates.crt").read_text()
    last_host_cert = host.strip().split("-----BEGIN CERTIFICATE-----")[-1].split("-----END")[0].strip()
    # Checked inside the container: a 400 KB `cat` through the log driver can come back cut short.
    lines = last_host_cert.splitlines()
    probe = " && ".join(f"grep -qxF '{line}' {bundle}" for line in (lines[0], lines[len(lines) // 2], lines[-1]))
    for image in apify_images.values():
        assert _run(client, image, f"{probe} && echo trusted || echo missing") == "trusted"
    # Python with the SDK; Node.js 20 or newer with npm and the SDK preinstalled where Apify's templates check it.
    check_python = "python -c 'import apify, sys; print(sys.version_info >= (3, 10))'"
    assert _run(client, apify_images["python"], check_python) == "True"
    versions = _run(client, apify_images["node"], "node --version; npm --version; npm ls apify >/dev/null && echo sdk")
    node_version, npm_version, sdk = versions.splitlines()
    assert int(node_version.lstrip("v").split(".")[0]) >= 20 and npm_version[0].isdigit() and sdk == "sdk"
    labels = client.images.get(apify_images["node"]).labels
    assert labels["jupyter-actors.provides"].startswith(f"Node.js {node_version.lstrip('v')}, npm {npm_version}")


@pytest.mark.docker
def test_apify_style_images_are_reused(client: docker.DockerClient, apify_images: dict[str, str],
                                       tmp_path: Path) -> None:
    from jupyter_actors.platform.images import ensure_actor_python_image
    from jupyter_actors.platform.node_image import ensure_node_image

    work_dir = Path(os.environ.get("JUPYTER_ACTORS_IMAGE_WORK_DIR") or tmp_path)
    assert ensure_actor_python_image(client, work_dir=work_dir, log=pytest.fail) == apify_images["python"]
    logged: list[str] = []
    assert ensure_node_image(client, work_dir=work_dir, log=logged.append) == apify_images["node"]
    assert not any("Building" in line for line in logged)
