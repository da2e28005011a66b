"""Reading the engine's log: HTTP chunking and frame headers undone in batches, and close() unblocks."""

from __future__ import annotations

import io
import threading
from types import SimpleNamespace

import pytest

from jupyter_actors.platform.backends.docker import DockerBackend, body_blocks, demultiplexed

from .conftest import wait_until


class Trickle(io.RawIOBase):
    """A socket that hands out at most ``step`` bytes per read: every boundary falls mid-header somewhere."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        piece = self.data[self.pos:self.pos + min(self.step, len(buffer))]
        buffer[:len(piece)] = piece
        self.pos += len(piece)
        return len(piece)


def frame(payload: bytes, stream: int = 1) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def chunked(*chunks: bytes) -> bytes:
    return b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"


def response(body: bytes, *, is_chunked: bool, step: int):
    reader = io.BufferedReader(Trickle(body, step), buffer_size=max(step, 1))
    return SimpleNamespace(raw=SimpleNamespace(chunked=is_chunked, _fp=SimpleNamespace(fp=reader)))


LINES = [f"2026-11-22T07:00:00.{i:09d}Z line {i} {'x' * (i % 13)}\n".encode() for i in range(300)]


@pytest.mark.parametrize("step", [1, 3, 8, 13, 64, 1 << 16])
@pytest.mark.parametrize("is_chunked", [True, False])
def test_every_byte_arrives_once_in_order_whatever_the_read_sizes(step, is_chunked):
    frames = [frame(line, stream=1 + i % 2) for i, line in enumerate(LINES)]
    body = chunked(*frames) if is_chunked else b"".join(frames)
    blocks = list(demultiplexed(body_blocks(response(body, is_chunked=is_chunked, step=step))))
    assert b"".join(blocks) == b"".join(LINES)
    if step == 1 << 16:
        assert len(blocks) < 5  # what was there was handed on together, not line by line


def test_close_from_another_thread_unblocks_a_follow_on_a_quiet_container(docker_client, base_image):
    backend = DockerBackend(docker_client)
    container = docker_client.containers.run(base_image, ["sh", "-c", "echo up; sleep 60"], detach=True)
    try:
        stream = backend.logs(container.id, since_ns=None, follow=True)
        seen, ended = [], threading.Event()

        def read() -> None:
            for line in stream:
                seen.append(line.text)
            ended.set()

        threading.Thread(target=read, daemon=True).start()
        wait_until(lambda: seen, 30, message="the first line")
        assert seen == ["up"]
        stream.close()
        assert ended.wait(5), "close() did not unblock the reader"
    finally:
        container.remove(force=True)
