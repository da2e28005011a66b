"""The run log: timestamped lines, and re-reading the engine's log never duplicates or loses a line."""

from __future__ import annotations

from jupyter_actors.platform.backends.base import LogLine
from jupyter_actors.platform.backends.docker import format_since, parse_timestamp_ns
from jupyter_actors.platform.runlog import RunLog

BASE = parse_timestamp_ns("2026-01-02T03:04:05.123456789Z")


def texts(path) -> list[str]:
    return [line.split(" ", 1)[1] for line in path.read_text().splitlines()]


def test_timestamps_are_parsed_exactly_and_formatted_for_since():
    assert BASE == 1767323045_123456789
    assert format_since(BASE) == "1767323045.123456789"
    assert parse_timestamp_ns("2026-01-02T03:04:05Z") == 1767323045_000000000


def test_lines_get_millisecond_prefix(tmp_path):
    log = RunLog(tmp_path / "run.log")
    log.append([LogLine(BASE, "hello"), LogLine(BASE + 1_000_000, "")])
    log.close()
    assert (tmp_path / "run.log").read_text() == "2026-01-02T03:04:05.123Z hello\n2026-01-02T03:04:05.124Z \n"


def test_redelivered_lines_are_skipped_in_memory_and_after_reopen(tmp_path):
    path = tmp_path / "run.log"
    lines = [LogLine(BASE + i // 3, f"line {i}") for i in range(10)]  # three lines share each instant
    same = [LogLine(BASE + 20, "same"), LogLine(BASE + 20, "same")]
    log = RunLog(path)
    log.append(lines[:5])
    # The engine is re-read from `since` (inclusive): lines at that instant come again.
    since = log.resume()
    assert since == lines[4].ts_ns
    log.append([line for line in lines if line.ts_ns >= since])
    log.append(same)
    log.close()
    assert texts(path) == [f"line {i}" for i in range(10)] + ["same", "same"]

    # A restarted server knows only the file: it resumes from the last millisecond with a multiset.
    reopened = RunLog(path)
    assert reopened.resume() == (BASE + 20) // 1_000_000 * 1_000_000
    reopened.append(same + [LogLine(BASE + 21, "same"), LogLine(BASE + 2_000_000, "after")])
    reopened.close()
    assert texts(path) == [f"line {i}" for i in range(10)] + ["same", "same", "same", "after"]


def test_discard_starts_a_fresh_log(tmp_path):
    log = RunLog(tmp_path / "run.log")
    log.append([LogLine(BASE, "old")])
    log.discard()
    assert log.resume() is None
    log.append([LogLine(BASE, "old"), LogLine(BASE + 1, "new")])
    log.close()
    assert texts(tmp_path / "run.log") == ["old", "new"]


def test_a_log_over_its_cap_keeps_its_tail_and_says_so(tmp_path):
    log = RunLog(tmp_path / "run.log", max_bytes=10_000)
    for i in range(1000):
        log.append([LogLine(BASE + i * 1_000_000, f"line {i:04d}")])
    log.close()
    lines = (tmp_path / "run.log").read_text().splitlines()
    assert (tmp_path / "run.log").stat().st_size <= 10_000
    assert "reached its size limit" in lines[0] and "bytes were dropped" in lines[0]
    assert lines[-1].endswith("line 0999")
    numbers = [int(line.rsplit(" ", 1)[1]) for line in lines[1:]]
    assert numbers == list(range(numbers[0], 1000))  # a contiguous tail, nothing half-written


def test_a_follower_keeps_its_place_when_the_tail_is_rotated(tmp_path):
    """``_keep_tail`` swaps in a shorter file: a follower goes on after its last line, none skipped or split."""
    from jupyter_actors.platform.runlog import LogFollower

    path = tmp_path / "run.log"
    log = RunLog(path, max_bytes=4000)
    follower = LogFollower(path)
    seen = b""
    rotated = False
    for i in range(200):
        before = path.stat().st_ino
        log.append([LogLine(BASE + i * 1_000_000, f"line {i:04d} " + "x" * 40)])
        rotated = rotated or path.stat().st_ino != before
        if i % 7 == 0:
            seen += follower.read()
    seen += follower.read()
    log.close()
    assert rotated
    lines = [line.split(b" ", 1)[1] for line in seen.splitlines()]
    numbered = [int(line.split()[1]) for line in lines if line.startswith(b"line ")]
    assert numbered == list(range(200)), "lines skipped, repeated or split across the rotation"
    assert all(line.startswith((b"line ", b"[jupyter-actors]")) for line in lines)


def test_the_log_tail_rotation_is_durable(tmp_path, monkeypatch):
    """The swapped-in tail is fsynced, and so is its directory (the rename)."""
    import os

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.path.isdir(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    log = RunLog(tmp_path / "run.log", max_bytes=200)
    log.append([LogLine(BASE + i, f"line {i} " + "x" * 40) for i in range(10)])
    log.close()
    assert True in synced and False in synced


def test_a_torn_last_line_after_a_host_crash_is_cut_and_read_again(tmp_path):
    """A crash mid-append leaves a line without its end: opening the log must not fail on it (reconciliation
    would stop there), and the line comes again whole from the engine."""
    path = tmp_path / "run.log"
    log = RunLog(path)
    log.append([LogLine(BASE, "one"), LogLine(BASE + 1_000_000, "two")])
    log.close()
    with open(path, "ab") as handle:
        handle.write(b"2026-01-02T03:04:0")  # the torn start of "three"
    reopened = RunLog(path)
    assert reopened.resume() == (BASE + 1_000_000) // 1_000_000 * 1_000_000
    reopened.append([LogLine(BASE + 1_000_000, "two"), LogLine(BASE + 2_000_000, "three")])
    reopened.close()
    assert texts(path) == ["one", "two", "three"]
