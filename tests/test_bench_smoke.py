"""Smoke tests of the benchmarks: `python -m bench.sessions --quick`,
`python -m bench.relay_ha` (three events, SQLite), `python -m bench.kiosk --quick`,
`python -m bench.partner --quick` and `python -m bench.events --quick` run against a real
broker and database, exit 0 and print their rows of figures. No timing thresholds: the
figures depend on the machine."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUM = r"[\d.]+"


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


def test_sessions_quick_run_prints_every_table_with_no_failures() -> None:
    out = _run(["bench.sessions", "--quick", "--deadline", "90"], timeout=150)
    for design in ("tokens", "sign-only", "dynsec"):
        # design, sessions (all 300, none missing), failed 0, then timings.
        storm = rf"^\s*{design}\s+300\s+0\s+{NUM}\s+{NUM}\s+{NUM}(\s+{NUM}){{6}}\s+-?{NUM}$"
        assert re.search(storm, out, re.MULTILINE), f"no storm row for {design}:\n{out}"
        for window in ("idle", "storm", "connected"):
            row = rf"^\s*{design}\s+300\s+{window}\s+[1-9]\d*\s+{NUM}\s+{NUM}\s+{NUM}$"
            assert re.search(row, out, re.MULTILINE), f"no {window} latency of {design}:\n{out}"
    for design in ("tokens", "dynsec", "dynsec-only"):
        # design, subscribers, messages, runs, then rates, CPU, and 0 lost.
        fan = rf"^\s*{design}\s+50\s+200\s+3\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}\s+0$"
        assert re.search(fan, out, re.MULTILINE), f"no fan-out row for {design}:\n{out}"
    assert re.search(rf"^tokens/dynsec deliveries per second: {NUM}$", out, re.MULTILINE), out


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


def test_events_quick_run_prints_every_phase_with_nothing_lost() -> None:
    out = _run(["bench.events", "--quick", "--deadline", "100"], timeout=160)
    # sent, ok (some), 503s, err 0, delivered/expected (all), lost 0; then events/s,
    # four latencies, api CPU s and ms/event, broker ms/event, generator and
    # subscriber CPU s, load average.
    figures = rf"\d+\s+[1-9]\d*\s+\d+\s+0\s+(?P<d>[1-9]\d*)/(?P=d)\s+0(\s+{NUM}){{11}}"
    for phase in ("latency", "ingest", "domain-book", "domain-checkin"):
        assert re.search(rf"^sqlite\s+{phase}\s+{figures}$", out, re.MULTILINE), out
    batch = rf"^sqlite\s+batch\s+{figures}$"
    assert re.search(batch, out, re.MULTILINE), out


def test_partner_quick_run_catches_up_once_and_in_order() -> None:
    out = _run(["bench.partner", "--quick", "--backend", "sqlite"], timeout=180)
    row = rf"^\| sqlite \| 1,000 \| [\d,]+ \| {NUM} s \| [\d,]+ \| yes \|$"
    assert re.search(row, out, re.MULTILINE), out
