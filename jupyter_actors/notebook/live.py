"""The live view of a run: one output updated in place from background threads.

It follows the log stream (``GET .../log?stream=true``) and the run's status, and renders an HTML
bundle (with a text fallback and a ``application/vnd.jupyter-actors.run+json`` part for the
labextension) through a display handle, so a saved notebook keeps the last state. The Abort button
is a widget next to it; widgets need a live kernel, the HTML does not.
"""

from __future__ import annotations

import contextvars
import html
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from functools import partial
from typing import Any, Protocol

from .errors import ActorsError, ServerNotFound
from .sizing import peak_line
from .sparkline import series, sparkline_svg
from .status import TERMINAL


class Run(Protocol):
    """What the view reads of a run (``runs.Run``); declared here so the two modules do not import each other."""

    id: str
    data: dict[str, Any]

    @property
    def output(self) -> Any: ...

    @property
    def dataset(self) -> Any: ...

    def refresh(self, wait: float = 0) -> dict[str, Any]: ...

    def follow_log(self, stop: Any = None) -> Iterator[str]: ...

    def abort(self, gracefully: bool = False) -> Any: ...

    def usage_samples(self) -> dict: ...

TAIL_LINES = 200
TEXT_TAIL_LINES = 20
STATUS_POLL_SECS = 1  # one long-poll per tick: returns early when the run ends
SAMPLES_EVERY_SECS = 3  # the sparkline's samples: the server takes one every few seconds
RECONNECT_MAX_SECS = 30  # the longest pause between attempts to reach a server that went away
FINAL_ROWS = 5
MIME_TYPE = "application/vnd.jupyter-actors.run+json"
COLOURS = {
    "READY": "#757575", "RUNNING": "#1565c0", "SUCCEEDED": "#2e7d32", "FAILED": "#c62828",
    "TIMED-OUT": "#ef6c00", "ABORTING": "#6d4c41", "ABORTED": "#6d4c41", "TIMING-OUT": "#ef6c00",
}
Sink = Callable[[dict], None]
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # colour codes loggers put in the log: not for a view


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def elapsed_secs(run: dict, now: datetime | None = None) -> float:
    started = _parse_time(run.get("startedAt"))
    if started is None:
        return 0.0
    end = _parse_time(run.get("finishedAt")) or now or datetime.now(timezone.utc)
    return max(0.0, (end - started).total_seconds())


def in_thread(target: Callable[[], None], name: str) -> threading.Thread:
    """A daemon thread carrying this context, so ipykernel sends its output with this cell's parent."""
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,), name=name, daemon=True)
    thread.start()
    return thread


def follow_lines(stream: Callable[[], Iterable[str]], on_line: Callable[[str], None],
                 stop: threading.Event) -> ActorsError | None:
    """Feeds each line of a streamed log, ANSI codes removed, to ``on_line`` until it ends.

    Returns why the stream broke off, unless ``stop`` was set (then the break was ours)."""
    try:
        for line in stream():
            on_line(ANSI.sub("", line))
    except ActorsError as exc:
        if not stop.is_set():
            return exc
    return None


class LiveView:
    """Status, elapsed time against the timeout, memory, a bounded log tail, then OUTPUT and rows."""

    def __init__(self, run: Run, *, tail: int = TAIL_LINES, sink: Sink | None = None) -> None:
        self.run = run
        self.lines: deque[str] = deque(maxlen=tail)
        self.line_count = 0
        self.note = ""
        self.output: Any = None
        self.rows_html = ""
        self.spark: dict[str, list[float]] = {}
        self.cpu_cores = 0.0
        self._sink = sink
        self._handle: Any = None
        self._button: Any = None
        self._button_handle: Any = None
        self._print_at_end = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._log_done = threading.Event()
        self.finished = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sent: dict | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def display(self) -> None:
        """Show the view in the current output (and an Abort button when widgets are available)."""
        if self._sink is not None:
            self.render()
            return
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.display import display

        if not InteractiveShell.initialized():  # a plain script: no outputs to update, print at the end
            self._print_at_end = True
            print(f"Following run {self.run.id} ...", flush=True)
            return

        self._handle = display(self.bundle(), raw=True, display_id=True)
        self._button = _abort_button(self)
        if self._button is not None:
            self._button_handle = display(self._button, display_id=True)

    def start(self) -> LiveView:
        self._threads = [in_thread(self._follow_log, f"log-{self.run.id}"),
                         in_thread(self._follow_status, f"view-{self.run.id}")]
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the view has its final state; a KeyboardInterrupt propagates (see ``detach``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished.wait(0.25):  # short waits keep the main thread interruptible
            if deadline is not None and time.monotonic() > deadline:
                return False
        return True

    def stop(self, note: str = "") -> None:
        """Stop following (the run is not touched) and render once more with ``note``."""
        self.note = note or self.note
        self._stop.set()
        self.render()
        self.finished.set()

    def detach(self) -> None:
        """What a kernel interrupt does: stop watching and say the run goes on."""
        self.stop(f"Detached: the kernel was interrupted, the run goes on on the server. "
                  f"jupyter_actors.run({self.run.id!r}).show() re-attaches; .abort() stops it.")

    # -- threads ----------------------------------------------------------------------------------

    def _follow_log(self) -> None:
        """The log, followed to its end. A connection that breaks off (a server restart, a network blip) is
        made again with growing pauses; the stream starts at the log's beginning, so the lines already
        shown are skipped."""
        pause = 1.0
        try:
            while True:
                skip = [self.line_count]
                error = follow_lines(lambda: self.run.follow_log(stop=self._stop),
                                     partial(self._add_line, skip=skip), self._stop)
                if error is None:
                    return
                if not isinstance(error, ServerNotFound):  # an answer, not a lost connection: final
                    self.note = f"The log stream stopped: {error}"
                    return
                self.note = f"Reconnecting to the log stream ({error})"
                if self._stop.wait(pause) or self.finished.is_set():
                    return
                pause = min(2 * pause, RECONNECT_MAX_SECS)
        finally:
            self._log_done.set()

    def _add_line(self, line: str, skip: list[int]) -> None:
        if skip[0] > 0:  # already shown before the stream was made again
            skip[0] -= 1
            return
        if self.note.startswith("Reconnecting"):
            self.note = ""
        with self._lock:
            self.lines.append(line)
            self.line_count += 1

    def _follow_status(self) -> None:
        try:
            data = self.run.data
            sampled_at = 0.0
            pause = 1.0
            while not self._stop.is_set() and data["status"] not in TERMINAL:
                try:
                    data = self.run.refresh(wait=STATUS_POLL_SECS)
                except ServerNotFound as exc:  # gone for longer than the client's retries: keep trying
                    self.note = f"Reconnecting to the server ({exc})"
                    self.render()
                    self._stop.wait(pause)
                    pause = min(2 * pause, RECONNECT_MAX_SECS)
                    continue
                if self.note.startswith("Reconnecting"):
                    self.note = ""
                pause = 1.0
                if time.monotonic() - sampled_at >= SAMPLES_EVERY_SECS:
                    sampled_at = time.monotonic()
                    self._load_samples()
                self.render()  # every tick: the elapsed time moves even when the log is quiet
            if self._stop.is_set():
                return
            self._log_done.wait(30)  # the stream ends right after the terminal status
            self._load_results()
        except Exception as exc:  # a background thread: the note is the only place to tell
            self.note = f"The view stopped: {exc}" if isinstance(exc, ActorsError) else (
                f"The view stopped: {type(exc).__name__}: {exc}")
        finally:
            if not self._stop.is_set():
                self._hide_button()
                self.render()
                if self._print_at_end:
                    print(self.bundle()["text/plain"], flush=True)
                self.finished.set()

    def _load_samples(self) -> None:
        """The sparkline's data; without it the view goes on (it is a glance, not the record)."""
        try:
            samples = self.run.usage_samples()
        except ActorsError:
            return
        self.spark, self.cpu_cores = series(samples), float(samples.get("cpuCores") or 0)

    def _load_results(self) -> None:
        self._load_samples()
        self.output = self.run.output
        frame = self.run.dataset.to_pandas(limit=FINAL_ROWS, flatten=True)
        if len(frame):
            self.rows_html = frame.to_html(max_cols=20, index=False, border=0)

    def _hide_button(self) -> None:
        """Replace the Abort button by nothing: a saved notebook keeps no dead widget."""
        if self._button_handle is not None:
            self._button_handle.update({"text/plain": ""}, raw=True)
            self._button.close()

    # -- rendering --------------------------------------------------------------------------------

    def render(self) -> None:
        """Sends the view, unless nothing in it changed since the last time."""
        bundle = self.bundle()
        if bundle == self._sent:
            return
        self._sent = bundle
        if self._sink is not None:
            self._sink(bundle)
        elif self._handle is not None:
            self._handle.update(bundle, raw=True)

    def state(self) -> dict:
        data = self.run.data
        options = data.get("options") or {}
        return {
            "id": self.run.id, "status": data.get("status"), "statusMessage": data.get("statusMessage"),
            "elapsedSecs": round(elapsed_secs(data), 1), "timeoutSecs": options.get("timeoutSecs"),
            "memoryMbytes": options.get("memoryMbytes"), "memoryUsedBytes": _memory_used(data),
            "logLines": self.line_count, "note": self.note,
            # The web server link only while the run lives: afterwards the URL answers 404.
            "containerUrl": data.get("containerUrl") if data.get("status") == "RUNNING" else None,
            "spark": self.spark, "peak": _peak(data),
        }

    def bundle(self) -> dict:
        with self._lock:
            lines = list(self.lines)
        state = self.state()
        return {"text/plain": self.text(state, lines), "text/html": self.html(state, lines), MIME_TYPE: state}

    def text(self, state: dict, lines: list[str]) -> str:
        head = f"Run {state['id']}: {state['status']} {_clock(state)} {state['memoryMbytes']} MB"
        parts = [head, *(lines[-TEXT_TAIL_LINES:])]
        if state["peak"]:
            parts.append(state["peak"])
        if state["note"]:
            parts.append(state["note"])
        if self.output is not None:
            parts.append(f"OUTPUT: {_short_json(self.output)}")
        return "\n".join(parts)

    def html(self, state: dict, lines: list[str]) -> str:
        badge = status_badge(state["status"])
        message = html.escape(state["statusMessage"] or "")
        timeout = state["timeoutSecs"] or 0
        bar = (f'<progress value="{min(state["elapsedSecs"], timeout)}" max="{timeout}" '
               f'style="width:200px;vertical-align:middle"></progress> ' if timeout else "")
        memory = f'{state["memoryMbytes"]} MB'
        if state["memoryUsedBytes"] is not None:
            memory = f'{state["memoryUsedBytes"] / 2**20:.0f} / {memory}'
        log = html_log(lines)
        spark = sparkline_svg(state["spark"], state["memoryMbytes"] or 0, self.cpu_cores)
        skipped = self.line_count - len(lines)
        more = f"<div style='color:#757575'>… {skipped} earlier lines (run.log() has them all)</div>" if skipped else ""
        parts = [
            "<div class='jupyter-actors-run' style='font-family:sans-serif;font-size:13px'>",
            f"<div>Run <code>{html.escape(state['id'])}</code> {badge} {message}</div>",
            f"<div>{bar}{_clock(state)} &middot; memory {memory} {spark}</div>",
            f"<div class='jupyter-actors-peak'>{html.escape(state['peak'])}</div>" if state["peak"] else "",
            (f"<div>Web server: <a href='{html.escape(state['containerUrl'])}' target='_blank'>"
             f"{html.escape(state['containerUrl'])}</a></div>" if state["containerUrl"] else ""),
            more,
            log,
        ]
        if state["note"]:
            parts.append(f"<div style='color:#ef6c00'>{html.escape(state['note'])}</div>")
        if self.output is not None:
            parts.append(f"<div><b>OUTPUT</b><pre>{html.escape(_short_json(self.output, 2000))}</pre></div>")
        if self.rows_html:
            parts.append(f"<div><b>Dataset (first rows)</b>{self.rows_html}</div>")
        parts.append("</div>")
        return "".join(parts)


def status_badge(status: str | None) -> str:
    """The status as a coloured label (runs and builds share the statuses)."""
    colour = COLOURS.get(status or "", "#424242")
    return (f'<span style="background:{colour};color:white;padding:1px 6px;border-radius:3px;'
            f'font-weight:bold">{html.escape(str(status))}</span>')


def html_log(lines: list[str]) -> str:
    """A log tail as a scrolling block."""
    text = "\n".join(_html_line(line) for line in lines)
    return f"<pre style='max-height:20em;overflow:auto;background:#f7f7f7;padding:4px;margin:4px 0'>{text}</pre>"


def _html_line(line: str) -> str:
    """A log line with its ISO timestamp shortened to the time of day, dimmed."""
    stamp, _, text = line.partition(" ")
    if len(stamp) >= 20 and stamp[10:11] == "T" and stamp.endswith("Z"):
        return f"<span style='color:#9e9e9e'>{html.escape(stamp[11:19])}</span> {html.escape(text)}"
    return html.escape(line)


def _clock(state: dict) -> str:
    timeout = state["timeoutSecs"]
    limit = f" / {timeout} s" if timeout else " (no timeout)"
    return f"{state['elapsedSecs']:.0f} s{limit}"


def _memory_used(data: dict) -> int | None:
    """While the run runs, what it uses now; once it ended, its peak."""
    stats = data.get("stats") or {}
    for key in (("memMaxBytes",) if data.get("isTerminal") else ("memCurrentBytes", "memAvgBytes")):
        if isinstance(stats.get(key), (int, float)):
            return int(stats[key])
    return None


def _peak(data: dict) -> str:
    """Once the run ended: its peak memory against the limit, with advice on the limit."""
    limit = (data.get("options") or {}).get("memoryMbytes")
    if data.get("status") not in TERMINAL or not limit:
        return ""
    killed = data.get("status") == "FAILED" and "exceeded its memory limit" in (data.get("statusMessage") or "")
    return peak_line((data.get("stats") or {}).get("memMaxBytes"), limit, oom_killed=killed)


def _short_json(value: Any, limit: int = 300) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = value if isinstance(value, str) else json.dumps(value, indent=1, default=str)
    return text if len(text) <= limit else text[:limit] + " …"


def _abort_button(view: LiveView) -> Any:
    """An Abort button when ipywidgets can be shown; None outside a kernel."""
    try:
        import ipywidgets
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    button = ipywidgets.Button(description="Abort", button_style="danger", icon="stop",
                               tooltip=f"Abort run {view.run.id}")

    def on_click(_: Any) -> None:
        try:
            view.run.abort()
            view.note = "Abort requested."
        except ActorsError as exc:
            view.note = f"Abort failed: {exc}"
        view.render()

    button.on_click(on_click)
    return button
