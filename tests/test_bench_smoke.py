"""Smoke tests of the benchmarks: `python -m bench.credentials --quick` and
`python -m bench.relay_ha` (three events, SQLite) run against a real broker and
database, exit 0 and print their rows of figures. No timing thresholds: the figures
depend on the machine."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK_LEVELS = (100, 500)
# level, issued, then the issuance figures (p50, p95, max, per second): numbers.
ROW = r"^\s*{level}\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s"


def _run(args: list[str], timeout: float) -> str:
    """Run a benchmark to its end; its stdout. It must exit 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the benchmark stop the broker (and api processes) it started.
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        raise AssertionError(f"benchmark did not finish in time:\n{out}\n{err}") from None
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    return out


def test_quick_run_prints_a_row_per_level() -> None:
    out = _run(["bench.credentials", "--quick", "--deadline", "50"], timeout=90)
    for level in QUICK_LEVELS:
        match = re.search(ROW.format(level=level), out, re.MULTILINE)
        assert match is not None, f"no row for {level} live sessions:\n{out}"
        assert int(match.group(1)) > 0, match.group(0)


def test_relay_ha_run_prints_its_tables() -> None:
    out = _run(["bench.relay_ha", "--backend", "sqlite", "--events", "3"], timeout=120)
    for path in ("active", "standby"):
        assert re.search(rf"^sqlite\s+{path}\s+3\s+[\d.]+\s", out, re.MULTILINE), out
    assert re.search(r"^sqlite\s+\d+\s+\d+$", out, re.MULTILINE), out


def test_kiosk_run_prints_its_row() -> None:
    out = _run(["bench.kiosk", "--backend", "sqlite", "--quick"], timeout=180)
    # backend, kiosks, requests, ok, p50, p99, max
    match = re.search(r"^sqlite\s+3\s+6\s+6\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.MULTILINE)
    assert match is not None, out
