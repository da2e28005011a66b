"""The benchmark suite in smoke mode (tiny sizes), so it never rots. Timings are not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.timeout(1200)  # above the 900 s the benchmark run itself may take
def test_benchmarks_smoke_mode_prints_a_table_and_writes_json(tmp_path, docker_client, base_image):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--json", str(out)],
                            capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "machine:" in result.stdout and "ratio" in result.stdout
    report = json.loads(out.read_text())
    names = [row["name"] for row in report["rows"]]
    for expected in ("start -> SUCCEEDED + OUTPUT, 1024 MB", "log stream", "dataset read to pandas, Arrow path",
                     "dataset read to pandas, JSON path",
                     "record set 1 KB", "runs of 128 MB", "running runs adopted", "into a notebook kernel",
                     "host crash: server start until", "engine restart: server start until",
                     "swarm: start -> SUCCEEDED", "swarm: 3 concurrent runs"):
        assert any(expected in name for name in names), expected
    assert all(row["ours_stats"]["median"] is not None for row in report["rows"])
    chart = out.with_suffix(".png")  # start latencies and dataset reads, beside the JSON
    assert chart.read_bytes().startswith(b"\x89PNG") and f"chart: {chart}" in result.stdout
