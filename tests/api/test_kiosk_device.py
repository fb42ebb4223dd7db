"""The reference kiosk device from the command line: `hub kiosk enroll` and
`hub kiosk check-in`, against the real api and broker (TCP)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.clinic import Clinic
from tests.support.stack import ROOT


def hub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "kiosk", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_enroll_and_check_in_from_the_command_line(clinic: Clinic, tmp_path: Path) -> None:
    appt = clinic.book(start=datetime.now(UTC) + timedelta(minutes=15))
    made = clinic.post(
        clinic.admin, "/kiosks", {"id": "k-cli", "name": "IT test", "locationId": "loc-1"}
    )
    device = tmp_path / "conf" / "kiosk.json"
    api = clinic.stack.api.base_url

    done = hub("enroll", made["enrollmentCode"], "--api", api, "--secret-file", str(device))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "tenant": clinic.tenant,
        "kioskId": "k-cli",
        "file": str(device),
    }
    assert stat.S_IMODE(device.stat().st_mode) == 0o600
    assert "kds_" not in done.stdout + done.stderr  # the secret is never printed
    # A code works once.
    again = hub(
        "enroll", made["enrollmentCode"], "--api", api, "--secret-file", str(tmp_path / "x")
    )
    assert again.returncode == 2
    assert "401" in again.stderr

    args = ("--secret-file", str(device))
    refused = hub("check-in", "--last-name", "Babbage", "--dob", "1791-12-26", *args)
    assert refused.returncode == 1, refused.stderr
    assert json.loads(refused.stdout) == {"ok": False, "reason": "no_match"}

    ok = hub("check-in", "--last-name", "lovelace", "--dob", "1985-12-10", *args)
    assert ok.returncode == 0, ok.stderr
    answer = json.loads(ok.stdout)
    assert answer["ok"] is True
    assert answer["appointment"]["patientDisplayName"] == "Ada L."
    r = clinic.stack.http(clinic.front_desk).get(f"/appointments/{appt['id']}")
    assert r.json()["status"] == "checked_in"

    bad = hub("check-in", "--last-name", "Lovelace", "--dob", "1985-13-45", *args)
    assert bad.returncode == 1
    assert json.loads(bad.stdout) == {"ok": False, "reason": "invalid"}

    # Disabled: the secret is refused, which is an error (2), not a refusal.
    assert clinic.stack.http(clinic.admin).delete("/kiosks/k-cli").status_code == 204
    gone = hub("check-in", "--last-name", "Lovelace", "--dob", "1985-12-10", *args)
    assert gone.returncode == 2
    assert "401" in gone.stderr
    missing = hub(
        "check-in",
        "--last-name",
        "X",
        "--dob",
        "2000-01-01",
        "--secret-file",
        str(tmp_path / "none"),
    )
    assert missing.returncode == 2
