"""A webhook receiver on loopback for tests: records every request, answers with a status the test sets."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """``answer`` is the status code the next requests get (503 refuses them, 200 accepts)."""

    answer: int = 200
    requests: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.changed:
                    status = receiver.answer
                    receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body, status))
                    receiver.changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"not now")

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def set_answer(self, status: int) -> None:
        with self.changed:
            self.answer = status

    def wait_for(self, predicate: Callable[[list[Received]], Any], timeout: float = 60) -> Any:
        """Block until ``predicate(requests)`` is truthy (re-checked on every request), or fail."""
        with self.changed:
            value = self.changed.wait_for(lambda: predicate(list(self.requests)), timeout=timeout)
        if not value:
            raise AssertionError(f"the receiver did not get the expected requests within {timeout} s: "
                                 f"{[(r.path, r.answered, r.body[:200]) for r in self.requests]}")
        return value

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
