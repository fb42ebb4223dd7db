"""`hub sessions list` and `hub sessions revoke` against the real stack: sessions
issued through the api, revoked the way the api revokes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.support.clinic import Clinic
from tests.support.ops import hub, json_lines


def _listed(clinic: Clinic, *args: str) -> list[dict[str, Any]]:
    out = hub(clinic.stack, "sessions", "list", "--tenant", clinic.tenant, "--json", *args)
    assert out.returncode == 0, out.stderr
    return json_lines(out.stdout)


def test_list_shows_a_session_issued_through_the_api(clinic: Clinic) -> None:
    creds = clinic.stack.credentials(clinic.front_desk)
    (row,) = [r for r in _listed(clinic) if r["clientId"] == creds["clientId"]]
    assert row["kind"] == "session"
    assert row["subject"] == "fd-1"
    assert row["revokedAt"] is None
    assert datetime.fromisoformat(row["expiresAt"]) == datetime.fromisoformat(creds["expiresAt"])
    assert _listed(clinic, "--kind", "kiosk") == []
    table = hub(clinic.stack, "sessions", "list", "--tenant", clinic.tenant)
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split()[:3] == ["CLIENT", "ID", "KIND"]
    assert any(line.startswith(creds["clientId"] + " ") for line in lines)


def test_revoke_disconnects_the_session_and_the_api_refuses_to_renew_it(
    clinic: Clinic,
) -> None:
    stack = clinic.stack
    creds = stack.credentials(clinic.front_desk)
    other = stack.credentials(clinic.front_desk)
    live = stack.probe(creds)
    assert not live.connect().is_failure
    try:
        out = hub(stack, "sessions", "revoke", "--tenant", clinic.tenant, creds["clientId"])
        assert out.returncode == 0, out.stderr
        assert "revoked 1 session" in out.stderr
        assert live.wait_disconnect().is_failure
    finally:
        live.close()
    assert stack.probe(creds).connect().is_failure
    r = stack.http(clinic.front_desk).post(
        "/realtime/credentials", json={"clientId": creds["clientId"]}
    )
    assert r.status_code == 404, r.text
    # The other session of the same user lives on; the revoked one is listed with --all.
    assert {r["clientId"] for r in _listed(clinic)} >= {other["clientId"]}
    assert creds["clientId"] not in {r["clientId"] for r in _listed(clinic)}
    (gone,) = [r for r in _listed(clinic, "--all") if r["clientId"] == creds["clientId"]]
    assert gone["revokedAt"] is not None
    audit = stack.http(clinic.admin).get("/audit", params={"kind": "session.revoked"}).json()
    (entry,) = [e for e in audit["entries"] if e["subject"] == creds["clientId"]]
    assert (entry["actor"], entry["actorKind"]) == ("operator", "hub")
    # Revoking it again finds nothing live: exit 1.
    again = hub(stack, "sessions", "revoke", "--tenant", clinic.tenant, creds["clientId"])
    assert again.returncode == 1
    assert "no live session" in again.stderr


def test_revoke_every_session_of_a_user(clinic: Clinic) -> None:
    stack = clinic.stack
    token = stack.token(clinic.tenant, "fd-2", "front_desk")
    issued = [stack.credentials(token) for _ in range(2)]
    kept = stack.credentials(clinic.front_desk)
    out = hub(stack, "sessions", "revoke", "--tenant", clinic.tenant, "--user", "fd-2")
    assert out.returncode == 0, out.stderr
    left = {r["clientId"] for r in _listed(clinic)}
    assert kept["clientId"] in left
    assert not left & {c["clientId"] for c in issued}


def test_revoke_refuses_bad_usage(clinic: Clinic) -> None:
    clinic.stack.credentials(clinic.front_desk)
    for args in (
        ["--tenant", clinic.tenant],
        ["--tenant", clinic.tenant, "x", "--user", "fd-1"],
        ["--tenant", "t-never-seen", "--user", "fd-1"],
    ):
        out = hub(clinic.stack, "sessions", "revoke", *args)
        assert out.returncode == 2, (args, out.stderr)
