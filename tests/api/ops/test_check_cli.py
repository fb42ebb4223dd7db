"""`hub check` against the real stack: all OK on a healthy one; a FAIL line and exit 1
with the broker stopped or the database URL wrong. And what `hub sessions revoke`
does while the broker is away."""

from __future__ import annotations

import re

from tests.support.clinic import Clinic
from tests.support.ops import hub, json_lines
from tests.support.stack import Stack, free_port

CHECKS = ("config", "database", "migrations", "clock", "relay", "broker", "keys")


def _lines(stdout: str) -> dict[str, str]:
    """check name -> status"""
    found = [re.match(r"(OK|WARN|FAIL)\s+(\S+)\s", line) for line in stdout.splitlines()]
    assert all(found), stdout
    return {m.group(2): m.group(1) for m in found if m}


def test_check_passes_on_a_healthy_stack(stack: Stack) -> None:
    out = hub(stack, "check", timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    statuses = _lines(out.stdout)
    assert tuple(statuses) == CHECKS
    assert set(statuses.values()) <= {"OK", "WARN"}
    assert statuses["broker"] == statuses["keys"] == statuses["migrations"] == "OK"


def test_check_fails_with_a_wrong_database_url(stack: Stack) -> None:
    if stack.backend == "sqlite":
        url = f"sqlite:///{stack.tmp / 'missing' / 'hub.db'}"
    else:
        url = f"postgresql+psycopg://hub:wrong@127.0.0.1:{free_port()}/hub"
    out = hub(stack, "check", timeout=30, HUB_DATABASE_URL=url)
    assert out.returncode == 1, out.stdout + out.stderr
    statuses = _lines(out.stdout)
    assert statuses["database"] == "FAIL"
    # What does not need the database is still checked.
    assert statuses["broker"] == statuses["keys"] == "OK"
    assert not (stack.tmp / "missing").exists()


def test_check_fails_and_revoke_says_so_with_the_broker_stopped(private_stack: Stack) -> None:
    stack = private_stack
    clinic = Clinic.create(stack)
    creds = stack.credentials(clinic.front_desk)
    stack.broker.stop()
    out = hub(stack, "check", timeout=30)
    assert out.returncode == 1, out.stdout + out.stderr
    statuses = _lines(out.stdout)
    assert statuses["broker"] == "FAIL"
    assert statuses["database"] == "OK"

    revoke = hub(stack, "sessions", "revoke", "--tenant", clinic.tenant, creds["clientId"])
    assert revoke.returncode == 1, revoke.stderr
    assert "revoked 1 session" in revoke.stderr
    assert "admin connection next starts" in revoke.stderr
    # Committed all the same: no longer live, and the api refuses to renew it.
    listed = hub(stack, "sessions", "list", "--tenant", clinic.tenant, "--json", "--all")
    (row,) = [r for r in json_lines(listed.stdout) if r["clientId"] == creds["clientId"]]
    assert row["revokedAt"] is not None
    r = stack.http(clinic.front_desk).post(
        "/realtime/credentials", json={"clientId": creds["clientId"]}
    )
    assert r.status_code == 404, r.text
