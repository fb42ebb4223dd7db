"""A tenant with a directory and a patient, created through the api like a clinic would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.stack import Api, Stack

# What the contract says every appointment event's data carries at least.
APPOINTMENT_FIELDS = frozenset(
    {
        "id",
        "patientId",
        "patientName",
        "providerId",
        "providerName",
        "locationId",
        "scheduledStart",
        "scheduledEnd",
        "status",
    }
)


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@dataclass
class Clinic:
    stack: Stack
    tenant: str
    admin: str
    front_desk: str
    provider_id: str
    location_id: str
    patient_id: str

    @classmethod
    def create(cls, stack: Stack, tenant: str | None = None) -> Clinic:
        tenant = tenant or new_tenant()
        admin = stack.token(tenant, "ad-1", "admin")
        front = stack.token(tenant, "fd-1", "front_desk")
        http = stack.http(admin)
        r = http.post(
            "/staff",
            json={"id": "dr-1", "name": "Dr. One", "isProvider": True, "roles": ["provider"]},
        )
        assert r.status_code == 201, r.text
        for staff in (
            {"id": "dr-2", "name": "Dr. Two", "isProvider": True, "roles": ["provider"]},
            {"id": "bl-1", "name": "Bill Ing", "roles": ["billing"]},
            {"id": "bl-2", "name": "Bea Ling", "roles": ["billing"]},
            {"id": "ad-1", "name": "Ad Min", "roles": ["admin"]},
        ):
            r = http.post("/staff", json=staff)
            assert r.status_code == 201, r.text
        r = http.post("/locations", json={"id": "loc-1", "name": "Main"})
        assert r.status_code == 201, r.text
        r = stack.http(front).post(
            "/patients",
            json={"firstName": "Ada", "lastName": "Lovelace", "dateOfBirth": "1985-12-10"},
        )
        assert r.status_code == 201, r.text
        return cls(stack, tenant, admin, front, "dr-1", "loc-1", r.json()["id"])

    def book(
        self,
        *,
        start: datetime | None = None,
        minutes: int = 30,
        patient_id: str | None = None,
        via: Api | None = None,
    ) -> dict[str, Any]:
        """Book an appointment through ``via`` (by default the first api process)."""
        start = start or datetime.now(UTC).replace(microsecond=0)
        r = self.stack.http(self.front_desk, api=via).post(
            "/appointments",
            json={
                "patientId": patient_id or self.patient_id,
                "providerId": self.provider_id,
                "locationId": self.location_id,
                "scheduledStart": start.isoformat(),
                "scheduledEnd": (start + timedelta(minutes=minutes)).isoformat(),
            },
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    # Tokens of the directory's people: dr-1 and dr-2 (providers), bl-1 and bl-2
    # (billing), ad-1 (admin), and a lab integration (service).
    def token(self, user: str, role: str) -> str:
        return self.stack.token(self.tenant, user, role)

    @property
    def provider(self) -> str:
        return self.token("dr-1", "provider")

    @property
    def billing(self) -> str:
        return self.token("bl-1", "billing")

    @property
    def lab(self) -> str:
        return self.token("lab-1", "service")

    def post(self, token: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A request that must succeed; its JSON answer."""
        r = self.stack.http(token).post(path, json=body or {})
        assert r.status_code in (200, 201), f"{path}: {r.status_code} {r.text}"
        return r.json()  # type: ignore[no-any-return]

    def biopsy(
        self, *, site: str = "left forearm", patient_id: str | None = None
    ) -> dict[str, Any]:
        return self.post(
            self.provider,
            "/biopsies",
            {
                "patientId": patient_id or self.patient_id,
                "orderingProviderId": self.provider_id,
                "site": site,
            },
        )

    def claim(self, amount_cents: int = 20000, *, submitted: bool = False) -> dict[str, Any]:
        claim = self.post(
            self.billing,
            "/claims",
            {"patientId": self.patient_id, "payerId": "aetna", "amountCents": amount_cents},
        )
        if submitted:
            claim = self.post(self.billing, f"/claims/{claim['id']}/submit")
        return claim

    def latest_seq(self) -> int:
        r = self.stack.http(self.front_desk).get("/events", params={"after": 0, "limit": 1})
        assert r.status_code == 200, r.text
        return int(r.json()["latestSeq"])
