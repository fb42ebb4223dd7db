"""A reconnect storm (issue 13): 1,000 WebSocket sessions on persistent sessions, the
broker restarted under them while events keep coming. Every session is live again,
missed no seq of its tenant (live or through replay), and nobody saw a 5xx. The same
run, with its timings, is the benchmark `python -m bench.storm`."""

from __future__ import annotations

from bench.storm import run_storm
from tests.support.stack import Stack


def test_a_thousand_sessions_ride_out_a_broker_restart_and_miss_nothing(
    private_stack: Stack,
) -> None:
    result = run_storm(private_stack, sessions=1000, tenants=10)
    assert result.connected == 1000
    assert result.live_after == 1000, result.errors
    assert result.events > 0
    assert result.missing == 0, (
        f"{result.incomplete} sessions missed {result.missing} seqs; {result.errors}"
    )
    assert result.server_errors == 0, (result.statuses, result.probe_statuses)
    # Each session replayed at least once after the restart.
    assert result.statuses.get(200, 0) >= 2000
