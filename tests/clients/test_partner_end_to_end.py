"""The partner client against the real stack: a partner program (tests/clients/
partner_program.py) killed with SIGKILL mid-stream, a broker restart, and a partner
offline longer than its session expiry. In every case its ``handled`` table (written
in the same transaction as the client's watermark) ends with every granted event
exactly once, in seq order, and nothing else."""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

import pytest

from tests.support.clinic import Clinic
from tests.support.stack import Stack

GRANT = ["patient:balance_changed"]
WAIT = 60.0


def balance(patient_id: str, n: int) -> dict[str, Any]:
    return {
        "type": "patient:balance_changed",
        "patientId": patient_id,
        "entityId": patient_id,
        "data": {
            "patientId": patient_id,
            "balanceCents": n,
            "previousBalanceCents": n - 1,
            "reason": "copay",
        },
    }


def verified(patient_id: str, n: int) -> dict[str, Any]:
    """An event of a type the partner was not granted."""
    return {
        "type": "patient:insurance_verified",
        "patientId": patient_id,
        "entityId": patient_id,
        "data": {
            "patientId": patient_id,
            "payerId": "aetna",
            "memberId": f"m-{n}",
            "verifiedAt": "2026-12-02T10:00:00Z",
        },
    }


def publish(clinic: Clinic, start: int, count: int) -> list[str]:
    """``count`` events, every third one not granted, in batches of 250: the ids of the
    granted ones, in order."""
    granted: list[str] = []
    http = clinic.stack.http(clinic.lab)
    for first in range(start, start + count, 250):
        batch = [
            verified(clinic.patient_id, n) if n % 3 == 0 else balance(clinic.patient_id, n)
            for n in range(first, min(first + 250, start + count))
        ]
        r = http.post("/events/batch", json={"events": batch})
        assert r.status_code == 202, r.text
        granted += [e["id"] for e in r.json()["events"] if e["type"] == "patient:balance_changed"]
    return granted


class PartnerProcess:
    """The partner program as a child process; counts the events it reports."""

    def __init__(self, stack: Stack, secret: str, store: Path, *extra: str) -> None:
        self.stack, self.secret, self.store, self.extra = stack, secret, store, extra
        self.proc: subprocess.Popen[str] | None = None
        self.reader = threading.Thread()
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.log = store.with_suffix(".log")

    def start(self) -> None:
        env = {**os.environ, "HUB_PARTNER_SECRET": self.secret}
        with open(self.log, "a", encoding="utf-8") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.clients.partner_program",
                    "--api",
                    self.stack.api.base_url,
                    "--store",
                    str(self.store),
                    *self.extra,
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self.reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self.reader.start()
        line = self.lines.get(timeout=WAIT)
        assert line == {"ready": True}, line

    def _read(self, out: IO[str] | None) -> None:
        assert out is not None
        for line in out:
            self.lines.put(json.loads(line))

    def wait_handled(self, count: int) -> None:
        """Until the program reported ``count`` more events."""
        for _ in range(count):
            self.lines.get(timeout=WAIT)

    def _reap(self) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=WAIT)
        self.reader.join(timeout=WAIT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.lines = queue.Queue()
        return code

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self._reap() == 0, self.log.read_text()


def handled(store: Path) -> list[str]:
    with sqlite3.connect(store) as db:
        return [row[0] for row in db.execute("SELECT id FROM handled ORDER BY seq")]


def wait_for_all(store: Path, expected: list[str]) -> list[str]:
    deadline = time.monotonic() + WAIT
    while True:
        got = handled(store)
        if len(got) >= len(expected) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def partner(clinic: Clinic) -> str:
    made = clinic.post(
        clinic.admin,
        "/partners",
        {"id": f"p-{uuid.uuid4().hex[:8]}", "name": "Analytics", "eventTypes": GRANT},
    )
    return str(made["secret"])


def test_a_partner_killed_mid_stream_handles_every_event_once(
    clinic: Clinic, tmp_path: Path
) -> None:
    store = tmp_path / "partner.db"
    # A little time in each handler, inside the event's transaction: the kills land
    # while events are being handled, not after the stream is done.
    program = PartnerProcess(clinic.stack, partner(clinic), store, "--handle-seconds", "0.002")
    program.start()
    try:
        expected = publish(clinic, 1, 3000)  # 2,000 granted among 3,000
        assert len(expected) == 2000
        for _ in range(3):  # at most 1,200 of the 2,000 before the last restart
            program.wait_handled(400)
            program.kill()
            program.start()
        got = wait_for_all(store, expected)
    finally:
        program.stop()
    assert got == expected


def test_a_broker_restart_and_a_long_absence_lose_nothing(
    private_stack: Stack, tmp_path: Path
) -> None:
    clinic = Clinic.create(private_stack)
    store = tmp_path / "partner.db"
    # A session expiry of one second: the broker forgets the session soon after the
    # partner is gone, so what it missed comes only from replay.
    program = PartnerProcess(private_stack, partner(clinic), store, "--session-expiry", "1")
    program.start()
    try:
        expected = publish(clinic, 1, 300)
        program.wait_handled(len(expected))
        private_stack.broker.stop()
        expected += publish(clinic, 301, 300)  # committed while the broker is down
        private_stack.broker.start()
        expected += publish(clinic, 601, 300)
        assert wait_for_all(store, expected) == expected
        program.stop()
        expected += publish(clinic, 901, 300)
        time.sleep(2)  # past the session expiry
        program.start()
        expected += publish(clinic, 1201, 300)
        got = wait_for_all(store, expected)
    finally:
        program.stop()
    assert got == expected


@pytest.mark.parametrize("after", [0, 5])
def test_hub_listen_prints_granted_events_as_json_lines(
    clinic: Clinic, tmp_path: Path, after: int
) -> None:
    secret = partner(clinic)
    expected = publish(clinic, 1, 30)
    all_events = clinic.stack.http(clinic.admin).get("/events", params={"after": 0}).json()
    seq_of = {e["id"]: e["seq"] for e in all_events["events"]}
    wanted = [i for i in expected if seq_of[i] > after]
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("hub")),
            "listen",
            "--api",
            clinic.stack.api.base_url,
            "--store",
            str(tmp_path / "listen.db"),
            "--after",
            str(after),
        ],
        env={**os.environ, "HUB_PARTNER_SECRET": secret},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [out.put(line) for line in proc.stdout or ()], daemon=True
    ).start()
    try:
        lines = [json.loads(out.get(timeout=WAIT)) for _ in wanted]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert [e["id"] for e in lines] == wanted
    assert {e["type"] for e in lines} == {"patient:balance_changed"}
    assert secret not in err


def test_hub_listen_with_a_refused_secret_says_so_and_exits_2(clinic: Clinic) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("hub")), "listen", "--api", clinic.stack.api.base_url],
        env={**os.environ, "HUB_PARTNER_SECRET": "hps_" + "x" * 43},
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 2
    assert "refused" in done.stderr.lower()


def test_credentials_are_renewed_before_they_expire_without_losing_an_event(
    tmp_path: Path,
) -> None:
    # The renewal is the client's own doing, whatever the database: one backend is
    # enough. 30 s credentials (the shortest allowed): renewed after about 22 s.
    stack = Stack.create("sqlite", tmp_path / "stack", HUB_PARTNER_CREDENTIALS_TTL_SECONDS="30")
    try:
        clinic = Clinic.create(stack)
        store = tmp_path / "partner.db"
        program = PartnerProcess(stack, partner(clinic), store)
        program.start()
        try:
            expected: list[str] = []
            for round_ in range(12):  # about 36 s: past one renewal, before a second expiry
                expected += publish(clinic, 1 + 30 * round_, 30)
                time.sleep(3)
            got = wait_for_all(store, expected)
        finally:
            program.stop()
        assert got == expected
        log = program.log.read_text()
        assert "credentials renewed" in log
        # Renewed ahead of the expiry: the broker never had to close the connection.
        assert "connection lost" not in log
    finally:
        stack.close()
