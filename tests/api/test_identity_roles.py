"""Tokens from a real identity provider: role names it uses are mapped to the hub's,
roles the hub does not know are ignored, and a token with no role of the hub reads its
own notifications and nothing else (enforced by the api and by the broker)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import jwt
import pytest

from tests.conftest import BACKENDS, _require_backend
from tests.support.clinic import Clinic
from tests.support.stack import Stack

NOT_AUTHORIZED = 0x87


def idp_token(stack: Stack, tenant: str, sub: str, roles: list[str]) -> str:
    """A token as an identity provider issues it, with its own role names."""
    claims = {"sub": sub, "tenant": tenant, "roles": roles, "exp": int(time.time()) + 3600}
    return jwt.encode(claims, stack.jwt_secret, algorithm="HS256")


@pytest.fixture(scope="module", params=BACKENDS)
def mapped_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack whose identity provider calls front desk staff "nurse"."""
    _require_backend(request.param)
    stack = Stack.create(
        request.param,
        tmp_path_factory.mktemp("roles"),
        # With a map only mapped names count: the hub's own names map to themselves
        # (the tests' other tokens use them).
        HUB_JWT_ROLE_MAP=json.dumps(
            {"nurse": "front_desk", **{r: r for r in ("front_desk", "admin", "provider")}}
        ),
    )
    yield stack
    stack.close()


def test_a_token_with_no_role_of_the_hub_reads_only_its_own_notifications(
    clinic: Clinic,
) -> None:
    stack = clinic.stack
    # Signed by the identity provider, but "nurse" means nothing to this hub.
    nurse = idp_token(stack, clinic.tenant, "rn-1", ["nurse"])
    http = stack.http(nurse)
    for path in ("/patients", "/appointments", "/events", "/claims", "/events/catalog"):
        r = http.get(path)
        assert r.status_code == 403, (path, r.text)
        assert "HUB_JWT_ROLE_MAP" in r.json()["message"]
    assert http.post("/appointments", json={}).status_code == 403
    assert http.get("/notifications").status_code == 200
    # Its broker session reads its own notifications only: the broker refuses the rest.
    creds = stack.credentials(nurse)
    probe = stack.probe(creds, transport="tcp")
    try:
        assert not probe.connect().is_failure
        t = clinic.tenant
        assert probe.subscribe(f"tenants/{t}/users/rn-1/#").value == 1
        for refused in (
            f"tenants/{t}/patients/#",
            f"tenants/{t}/meta/#",
            f"tenants/{t}/users/fd-1/#",
        ):
            assert probe.subscribe(refused).value == NOT_AUTHORIZED, refused
    finally:
        probe.close()
    # Renewing it keeps the narrow acl.
    renewed = stack.credentials(nurse, clientId=creds["clientId"])
    again = stack.probe(renewed, transport="tcp")
    try:
        assert not again.connect().is_failure
        assert again.subscribe(f"tenants/{clinic.tenant}/patients/#").value == NOT_AUTHORIZED
    finally:
        again.close()


def test_an_identity_providers_role_names_are_mapped(mapped_stack: Stack) -> None:
    clinic = Clinic.create(mapped_stack)
    nurse = idp_token(mapped_stack, clinic.tenant, "rn-1", ["nurse", "offline_access"])
    http = mapped_stack.http(nurse)
    assert http.get("/appointments").status_code == 200
    assert http.get("/patients").status_code == 200
    # A front desk's rights, not more.
    assert http.get("/partners").status_code == 403
    # "billing" is a hub role, but this map does not name it: not recognised.
    billing = idp_token(mapped_stack, clinic.tenant, "bl-9", ["billing"])
    assert mapped_stack.http(billing).get("/claims").status_code == 403
