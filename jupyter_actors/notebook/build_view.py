"""The build step of a ``%%actor`` cell, shown live: the build's status and its streamed log, updated in
place above the run's view, or one line saying the unchanged source reused an earlier build.

The log comes from ``GET /actor-builds/{id}/log?stream=true`` on a thread; the status from long-polls
on the cell's own thread, so an interrupt stops watching (the build goes on on the server).
"""

from __future__ import annotations

import html
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import quote

from .client import Client, resolve
from .errors import BuildFailed
from .live import (STATUS_POLL_SECS, TAIL_LINES, Sink, elapsed_secs, follow_lines, html_log, in_thread,
                   status_badge)
from .status import TERMINAL

MIME_TYPE = "application/vnd.jupyter-actors.build+json"
RENDER_EVERY_SECS = 0.25  # log lines arrive in bursts: one update per burst, not one per line
LOG_END_WAIT_SECS = 30  # the stream ends right after the build does
ERROR_LOG_LINES = 10  # the log's end in the exception, for where no view shows it


class BuildView:
    """One build of one actor: its status, elapsed time and log tail, in one output updated in place."""

    def __init__(self, actor: str, build: dict, client: Client, *, reused: bool = False,
                 sink: Sink | None = None) -> None:
        self.actor = actor
        self.build = build
        self.client = client
        self.reused = reused
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)
        self.note = ""
        self._sink = sink
        self._handle: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._log_done = threading.Event()
        self._rendered_at = 0.0

    def display(self) -> None:
        if self._sink is not None:
            self.render()
            return
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.display import display

        if InteractiveShell.initialized():
            self._handle = display(self.bundle(), raw=True, display_id=True)

    def follow(self) -> dict:
        """Show the build until it ends; returns the finished build."""
        in_thread(self._follow_log, f"build-log-{self.build['id']}")
        try:
            while self.build["status"] not in TERMINAL:
                self.build = self.client.get(f"/actor-builds/{self.build['id']}", waitForFinish=STATUS_POLL_SECS)
                self.render()
            self._log_done.wait(LOG_END_WAIT_SECS)
        finally:
            self._stop.set()
            self.render()
        return self.build

    def interrupted(self) -> None:
        self.note = (f"Interrupted: stopped watching; build {self.build.get('buildNumber')} goes on on the server "
                     "(run the cell again to use it once it is done).")
        self.render()

    def log_tail(self, count: int) -> list[str]:
        with self._lock:
            return list(self.lines)[-count:]

    def _follow_log(self) -> None:
        try:
            error = follow_lines(
                lambda: self.client.stream_lines(f"/actor-builds/{self.build['id']}/log", stop=self._stop,
                                                 stream=True),
                self._add_line, self._stop)
        finally:
            self._log_done.set()
        if error:
            self.note = f"The build log stream stopped: {error}"

    def _add_line(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)
        if time.monotonic() - self._rendered_at >= RENDER_EVERY_SECS:
            self.render()

    # -- rendering --------------------------------------------------------------------------------

    def render(self) -> None:
        self._rendered_at = time.monotonic()
        bundle = self.bundle()
        if self._sink is not None:
            self._sink(bundle)
        elif self._handle is not None:
            self._handle.update(bundle, raw=True)

    def state(self) -> dict:
        build = self.build
        return {"id": build["id"], "actor": self.actor, "buildNumber": build.get("buildNumber"),
                "status": build.get("status"), "statusMessage": build.get("statusMessage"),
                "reused": self.reused, "elapsedSecs": round(elapsed_secs(build), 1), "note": self.note}

    def headline(self, state: dict) -> str:
        if state["reused"]:
            return f"Reused build {state['buildNumber']} of {state['actor']}: the source is unchanged."
        return f"Build {state['buildNumber']} of {state['actor']}: {state['status']} {state['elapsedSecs']:.0f} s"

    def bundle(self) -> dict:
        with self._lock:
            lines = list(self.lines)
        state = self.state()
        headline = self.headline(state)
        text = "\n".join([headline, *lines, *([state["note"]] if state["note"] else [])])
        if state["reused"]:
            body = f"<div>{html.escape(headline)}</div>"
        else:
            message = html.escape(state["statusMessage"] or "")
            body = (f"<div>Build <code>{html.escape(str(state['buildNumber']))}</code> of "
                    f"<code>{html.escape(self.actor)}</code> {status_badge(state['status'])} {message} "
                    f"&middot; {state['elapsedSecs']:.0f} s</div>{html_log(lines)}")
        note = f"<div style='color:#ef6c00'>{html.escape(state['note'])}</div>" if state["note"] else ""
        markup = (f"<div class='jupyter-actors-build' style='font-family:sans-serif;font-size:13px'>"
                  f"{body}{note}</div>")
        return {"text/plain": text, "text/html": markup, MIME_TYPE: state}


def build_live(actor: str, *, version: str, tag: str = "latest", client: Client | None = None,
               sink: Sink | None = None) -> dict:
    """Build the actor's version showing it live; raises BuildFailed (naming the failure) unless it SUCCEEDED.

    Without ``waitForFinish`` the server answers a new build at once (READY); a finished build in the
    answer is the earlier build of the same source, reused."""
    client = resolve(client)
    build = client.post(f"/actors/{quote(actor, safe='~')}/builds", version=version, tag=tag)
    view = BuildView(actor, build, client, reused=build["status"] in TERMINAL, sink=sink)
    view.display()
    if not view.reused:
        try:
            build = view.follow()
        except KeyboardInterrupt:
            view.interrupted()
            raise
    if build["status"] != "SUCCEEDED":
        tail = "\n".join(view.log_tail(ERROR_LOG_LINES))
        raise BuildFailed(f"Build {build.get('buildNumber')} of {actor} {build['status']}: "
                          f"{build.get('statusMessage') or 'see its log'}\n{tail}".rstrip())
    return build


__all__ = ["BuildView", "build_live"]
