"""`hub events replay` and `hub events tail` against the real stack: the tenant's
committed events from the database, as JSON lines."""

from __future__ import annotations

import signal
import subprocess
from typing import Any

from tests.support.clinic import Clinic
from tests.support.ops import HUB, hub, hub_env, json_lines
from tests.support.stack import ROOT


def _events(clinic: Clinic) -> list[dict[str, Any]]:
    r = clinic.stack.http(clinic.front_desk).get("/events", params={"after": 0, "limit": 1000})
    assert r.status_code == 200, r.text
    return r.json()["events"]  # type: ignore[no-any-return]


def _replay(clinic: Clinic, *args: str) -> list[str]:
    out = hub(clinic.stack, "events", "replay", "--tenant", clinic.tenant, *args)
    assert out.returncode == 0, out.stderr
    return [e["id"] for e in json_lines(out.stdout)]


def test_replay_prints_exactly_the_requested_events(clinic: Clinic) -> None:
    booked = [clinic.book() for _ in range(3)]
    r = clinic.stack.http(clinic.front_desk).post(
        f"/appointments/{booked[1]['id']}/status", json={"status": "checked_in"}
    )
    assert r.status_code == 200, r.text
    events = _events(clinic)
    assert len(events) >= 4
    ids = [e["id"] for e in events]

    assert _replay(clinic) == ids
    second = events[1]["seq"]
    assert _replay(clinic, "--after", str(second)) == ids[2:]
    assert _replay(clinic, "--limit", "2") == ids[:2]
    assert _replay(clinic, "--after", str(second), "--limit", "1") == ids[2:3]
    checked_in = [e["id"] for e in events if e["type"] == "appointment:checkedin"]
    assert len(checked_in) == 1
    assert _replay(clinic, "--types", "appointment:checkedin") == checked_in
    both = [e["id"] for e in events if e["type"] in ("appointment:checkedin", "claim:denied")]
    assert _replay(clinic, "--types", "claim:denied,appointment:checkedin") == both
    assert _replay(clinic, "--after", str(events[-1]["seq"])) == []


def test_replay_refuses_a_bad_tenant_or_unknown_types(clinic: Clinic) -> None:
    clinic.book()
    for args, words in [
        (["--tenant", "no/such tenant"], "invalid tenant"),
        (["--tenant", "t-never-seen"], "no tenant"),
        (
            ["--tenant", clinic.tenant, "--types", "appointment:teleported"],
            "appointment:teleported",
        ),
        (["--tenant", clinic.tenant, "--types", ","], "at least one"),
        (["--tenant", clinic.tenant, "--after", "-1"], "0 or more"),
    ]:
        out = hub(clinic.stack, "events", "replay", *args)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stdout == ""
        assert words in out.stderr, (args, out.stderr)


def test_tail_prints_events_committed_after_it_started_and_stops_on_ctrl_c(
    clinic: Clinic,
) -> None:
    before = clinic.book()
    tail = subprocess.Popen(
        [*HUB, "events", "tail", "--tenant", clinic.tenant, "--interval", "0.1"],
        env=hub_env(clinic.stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert tail.stderr is not None
        assert tail.stdout is not None
        # It says where it starts once it has read the tenant's latest seq.
        started = tail.stderr.readline()
        assert "following tenant" in started, started
        after = [clinic.book() for _ in range(2)]
        lines = [tail.stdout.readline() for _ in after]
        printed = json_lines("".join(lines))
        assert [e["entityId"] for e in printed] == [a["id"] for a in after]
        assert all(e["type"] == "appointment:created" for e in printed)
        assert before["id"] not in {e["entityId"] for e in printed}
        tail.send_signal(signal.SIGINT)
        code = tail.wait(20)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
        for stream in (tail.stdout, tail.stderr):
            if stream is not None:
                stream.close()
    assert code == 0
