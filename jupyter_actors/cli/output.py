"""How a command reports: JSON for scripts (``--json``), rich tables and progress on a terminal, plain
lines when stdout is a pipe or a file (so grep and logs get text, not box drawing and escape codes)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

STATUS_STYLES = {"SUCCEEDED": "green", "RUNNING": "cyan", "READY": "cyan", "FAILED": "red", "TIMED-OUT": "red",
                 "ABORTED": "yellow", "ABORTING": "yellow", "TIMING-OUT": "yellow"}


class Output:
    """One command's reporting. With ``as_json`` stdout carries only the JSON document; the messages
    a person reads (and a run's log) go to stderr."""

    def __init__(self, as_json: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stdout = stdout or sys.stdout
        self.text = (stderr or sys.stderr) if as_json else self.stdout  # where messages and logs go
        self.console = Console(file=self.text, highlight=False)
        self.rich = self.console.is_terminal

    def say(self, message: str) -> None:
        """A line for the person at the terminal (plain text; never markup-parsed)."""
        if self.rich:
            self.console.print(message, markup=False)
        else:
            self.text.write(message + "\n")
            self.text.flush()

    def write(self, chunk: str) -> None:
        """Raw text as it comes (a run's log)."""
        self.text.write(chunk)
        self.text.flush()

    def data(self, value: Any) -> None:
        """The command's result as JSON on stdout (``--json``)."""
        json.dump(value, self.stdout, indent=2)
        self.stdout.write("\n")
        self.stdout.flush()

    def table(self, columns: Sequence[tuple[str, int]], rows: Sequence[Sequence[str]], *, status_column: int = -1,
              title: str | None = None) -> None:
        """Rows under headed columns; ``columns`` are (title, plain width; negative: right-aligned)."""
        if self.rich:
            table = Table(title=title, header_style="bold")
            for name, width in columns:
                table.add_column(name, justify="right" if width < 0 else "left", overflow="fold")
            for row in rows:  # Text, not markup: a run's status message is whatever its actor wrote
                table.add_row(*(Text(cell, style=STATUS_STYLES.get(cell, "") if index == status_column else "")
                                for index, cell in enumerate(row)))
            self.console.print(table)
            return
        for row in [[name for name, _ in columns], *rows]:
            cells = (_cell(value, width) for value, (_, width) in zip(row, columns, strict=True))
            self.text.write(" ".join(cells).rstrip() + "\n")
        self.text.flush()

    @contextmanager
    def status(self, message: str) -> Iterator[Any]:
        """A spinner with ``message`` while the block runs (``update(text)`` changes it); plain: one line."""
        if not self.rich:
            self.say(message)
            yield lambda text: None
            return
        with self.console.status(message) as live:
            yield lambda text: live.update(f"{message} {text}")

    @contextmanager
    def steps(self, total: int) -> Iterator[Any]:
        """A progress bar over ``total`` steps: ``step(description)`` starts the next; plain: a numbered line each."""
        if not self.rich:
            counter = iter(range(1, total + 1))
            yield lambda description: self.say(f"[{next(counter)}/{total}] {description} ...")
            return
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task("", total=total)
            started = [False]

            def step(description: str) -> None:
                if started[0]:
                    progress.advance(task)
                started[0] = True
                progress.update(task, description=description)

            yield step
            progress.update(task, completed=total, description="done")


def _cell(value: str, width: int) -> str:
    return value.rjust(-width) if width < 0 else value.ljust(width)
