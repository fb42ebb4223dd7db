"""Bad input gets a clear JSON error (``{"error", "message", "details"?}``) with the
contract's status (401/403/404/409/413/422), and changes nothing: no row, no event.

"Nothing changed" is checked for both tenants of every test: the tenant's ``latestSeq``
and event ids from ``GET /events``, and its patients, staff, locations, the day's
appointments, encounters, biopsies, claims, payments, prior authorizations and the
provider's and billing user's notifications as the api answers them (with their
``version`` and ``updatedAt``).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import secrets
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from hub.tokens import mint_dev_token
from tests.support.clinic import Clinic
from tests.support.stack import Stack

MAX_BODY = 64 * 1024  # the default HUB_MAX_BODY_BYTES

# Every appointment of these tests is tomorrow (UTC), off today's live board.
START = (datetime.now(UTC) + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
DAY = START.date()

DROP = object()  # a field to leave out of a body
NO_BODY = object()  # send no body at all
DEFAULT = object()  # the route's usual bearer token

# Routes, as "METHOD path"; {placeholders} are filled from World.ids.
PATIENTS = "POST /patients"
PATIENT = "GET /patients/{patient}"
BOOK = "POST /appointments"
RESCHEDULE = "POST /appointments/{appt}/reschedule"
STATUS = "POST /appointments/{appt}/status"
STAFF = "POST /staff"
LOCATIONS = "POST /locations"
_LOOKS = itertools.count()
PUBLISH = "POST /events"
REPLAY = "GET /events"
CREDENTIALS = "POST /realtime/credentials"
OTHER_RESCHEDULE = "POST /appointments/{other_appt}/reschedule"
OTHER_STATUS = "POST /appointments/{other_appt}/status"
UPDATE_PATIENT = "PUT /patients/{patient}"
VERIFY = "POST /patients/{patient}/insurance/verify"
ENCOUNTERS = "POST /encounters"
ENC_PATCH = "PATCH /encounters/{enc}"
ENC_COMPLETE = "POST /encounters/{enc}/complete"
ENC_SIGN = "POST /encounters/{enc}/sign"
BIOPSIES = "POST /biopsies"
BX_PATCH = "PATCH /biopsies/{bx}"
BX_RESULT = "POST /biopsies/{bx}/result"
BX_REVIEW = "POST /biopsies/{bx}/review"
CLAIMS = "POST /claims"
CLAIM_PATCH = "PATCH /claims/{claim}"
CLAIM_SUBMIT = "POST /claims/{claim}/submit"
CLAIM_STATUS = "POST /claims/{claim}/status"
PAYMENTS = "POST /payments"
PRIOR_AUTHS = "POST /prior-auths"
PA_STATUS = "POST /prior-auths/{pa}/status"
NOTIFICATIONS = "GET /notifications"
ACK = "POST /notifications/{note}/ack"
DOMAIN_ROUTES = [
    UPDATE_PATIENT,
    VERIFY,
    ENCOUNTERS,
    ENC_PATCH,
    ENC_COMPLETE,
    ENC_SIGN,
    BIOPSIES,
    BX_PATCH,
    BX_RESULT,
    BX_REVIEW,
    CLAIMS,
    CLAIM_PATCH,
    CLAIM_SUBMIT,
    CLAIM_STATUS,
    PAYMENTS,
    PRIOR_AUTHS,
    PA_STATUS,
    NOTIFICATIONS,
    ACK,
]
# Actions whose request has no body.
ACTIONS = {ENC_COMPLETE, ENC_SIGN, BX_REVIEW, CLAIM_SUBMIT, ACK}
ROUTES = [
    PATIENTS,
    PATIENT,
    BOOK,
    RESCHEDULE,
    STATUS,
    STAFF,
    LOCATIONS,
    PUBLISH,
    REPLAY,
    CREDENTIALS,
]
POST_ROUTES = [r for r in ROUTES if r.startswith("POST ")]
# Every route that reads a JSON body.
BODY_ROUTES = POST_ROUTES + [
    r for r in DOMAIN_ROUTES if not r.startswith("GET ") and r not in ACTIONS
]

# The role each route is meant for, and a body it would accept.
ROLE = {
    STAFF: "admin",
    LOCATIONS: "admin",
    PUBLISH: "service",
    ENCOUNTERS: "provider",
    ENC_PATCH: "provider",
    ENC_COMPLETE: "provider",
    ENC_SIGN: "provider",
    BIOPSIES: "provider",
    BX_RESULT: "service",
    BX_REVIEW: "provider",
    CLAIMS: "billing",
    CLAIM_PATCH: "billing",
    CLAIM_SUBMIT: "billing",
    CLAIM_STATUS: "billing",
    PAYMENTS: "billing",
    PRIOR_AUTHS: "provider",
    PA_STATUS: "billing",
    ACK: "billing",
}
NEW_PATIENT = {"firstName": "Grace", "lastName": "Hopper", "dateOfBirth": "1906-12-09"}
NEW_APPT = {
    "patientId": "{patient}",
    "providerId": "{provider}",
    "locationId": "{location}",
    "scheduledStart": "{start}",
    "scheduledEnd": "{end}",
}
NEW_TIMES = {"scheduledStart": "{start2}", "scheduledEnd": "{end2}"}
NEW_STAFF = {"id": "dr-new", "name": "Dr. New", "isProvider": True, "roles": ["provider"]}
NEW_LOCATION = {"id": "loc-new", "name": "Annex"}
BALANCE = {
    "patientId": "{patient}",
    "balanceCents": 1500,
    "previousBalanceCents": 0,
    "reason": "copay",
}
NEW_EVENT = {
    "type": "patient:balance_changed",
    "patientId": "{patient}",
    "entityId": "{patient}",
    "data": BALANCE,
}
NEW_ENC = {"patientId": "{patient}", "providerId": "{provider}"}
NEW_BX = {"patientId": "{patient}", "orderingProviderId": "{provider}", "site": "left cheek"}
NEW_CLAIM = {"patientId": "{patient}", "payerId": "aetna", "amountCents": 15000}
NEW_PAYMENT = {"patientId": "{patient}", "amountCents": 2000, "method": "card"}
NEW_PA = {"patientId": "{patient}", "payerId": "aetna", "item": "Mohs surgery"}
VERIFY_BODY = {"payerId": "aetna", "memberId": "W1234"}
VALID: dict[str, Any] = {
    UPDATE_PATIENT: {"phone": "555-0100"},
    VERIFY: VERIFY_BODY,
    ENCOUNTERS: NEW_ENC,
    ENC_PATCH: {"plan": "Cryotherapy"},
    ENC_COMPLETE: NO_BODY,
    ENC_SIGN: NO_BODY,
    BIOPSIES: NEW_BX,
    BX_PATCH: {"status": "collected"},
    BX_RESULT: {"diagnosis": "Seborrheic keratosis"},
    BX_REVIEW: NO_BODY,
    CLAIMS: NEW_CLAIM,
    CLAIM_PATCH: {"amountCents": 16000},
    CLAIM_SUBMIT: NO_BODY,
    CLAIM_STATUS: {"status": "accepted"},
    PAYMENTS: NEW_PAYMENT,
    PRIOR_AUTHS: NEW_PA,
    PA_STATUS: {"status": "approved"},
    NOTIFICATIONS: NO_BODY,
    ACK: NO_BODY,
    PATIENTS: NEW_PATIENT,
    PATIENT: NO_BODY,
    BOOK: NEW_APPT,
    RESCHEDULE: NEW_TIMES,
    STATUS: {"status": "confirmed"},
    STAFF: NEW_STAFF,
    LOCATIONS: NEW_LOCATION,
    PUBLISH: NEW_EVENT,
    REPLAY: NO_BODY,
    CREDENTIALS: {},
}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``base`` with fields changed, added, or left out (``DROP``)."""
    out = {**base, **changes}
    return {k: v for k, v in out.items() if v is not DROP}


@dataclass
class World:
    """Two tenants ("mine" and "other"), each with a patient, a provider, a location and
    a scheduled appointment; the other tenant also has ids that mine does not."""

    stack: Stack
    http: httpx.Client
    mine: Clinic
    other: Clinic
    ids: dict[str, str]

    def token(self, role: str, clinic: Clinic | None = None) -> str:
        """The tenant's people: dr-1 (provider), bl-1 (billing), a lab (service)."""
        c = clinic or self.mine
        tokens = {
            "admin": c.admin,
            "front_desk": c.front_desk,
            "provider": c.provider,
            "billing": c.billing,
            "service": c.lab,
        }
        return tokens.get(role) or self.stack.token(c.tenant, f"u-{role}", role)

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**self.ids)
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        return value

    def call(
        self,
        route: str,
        *,
        role: str | None = None,
        auth: Any = DEFAULT,
        body: Any = NO_BODY,
        content: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        method, path = route.split(" ", 1)
        headers = {}
        if auth is DEFAULT:
            auth = f"Bearer {self.token(role or ROLE.get(route, 'front_desk'))}"
        if auth is not None:
            headers["Authorization"] = auth
        if content is not None:
            headers["Content-Type"] = "application/json"
        return self.http.request(
            method,
            self.fill(path),
            headers=headers,
            params=params,
            content=content,
            json=None if body is NO_BODY else self.fill(body),
        )

    def state(self, c: Clinic) -> dict[str, Any]:
        # The test's own observer, not a user: an admin of its own for each look, so
        # hundreds of looks in a minute stay within a user's replay rate limit.
        observer = c.stack.token(c.tenant, f"observer-{next(_LOOKS)}", "admin")
        auth = {"Authorization": f"Bearer {observer}"}

        def get(path: str, **params: Any) -> Any:
            r = self.http.get(path, headers=auth, params=params)
            assert r.status_code == 200, r.text
            return r.json()

        page = get("/events", after=0, limit=1000)
        return {
            "latestSeq": page["latestSeq"],
            "events": [e["id"] for e in page["events"]],
            "patients": get("/patients", limit=200),
            "staff": get("/staff"),
            "locations": get("/locations"),
            "appointments": get("/appointments", date=DAY.isoformat()),
            **{path: get(path, limit=500) for path in DOMAIN_LISTS},
            "provider-notifications": self.notifications(c.provider),
            "billing-notifications": self.notifications(c.billing),
        }

    def notifications(self, token: str) -> Any:
        r = self.http.get("/notifications", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        return r.json()

    def states(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.state(self.mine), self.state(self.other)

    def book(self, *statuses: str) -> str:
        """A new appointment of mine, moved through ``statuses``; its id."""
        appt = self.mine.book(start=START + timedelta(hours=3))
        for status in statuses:
            r = self.call(f"POST /appointments/{appt['id']}/status", body={"status": status})
            assert r.status_code == 200, r.text
        return str(appt["id"])


DOMAIN_LISTS = ("/encounters", "/biopsies", "/claims", "/payments", "/prior-auths")


def domain_ids(c: Clinic, prefix: str) -> dict[str, str]:
    """An open encounter, an ordered biopsy, a draft claim, a requested prior auth, a
    payment, and a denied claim whose notification bl-1 holds."""
    enc = c.post(c.provider, "/encounters", {"patientId": c.patient_id, "providerId": "dr-1"})
    bx = c.biopsy()
    claim = c.claim()
    pa = c.post(c.provider, "/prior-auths", {**NEW_PA, "patientId": c.patient_id})
    pay = c.post(c.billing, "/payments", {**NEW_PAYMENT, "patientId": c.patient_id})
    denied = c.claim(submitted=True)
    c.post(c.billing, f"/claims/{denied['id']}/status", {"status": "denied", "reason": "CO-4"})
    [note] = c.stack.http(c.billing).get("/notifications").json()["notifications"]
    ids = {"enc": enc, "bx": bx, "claim": claim, "pa": pa, "payment": pay, "note": note}
    return {prefix + k: v["id"] for k, v in ids.items()}


@contextlib.contextmanager
def make_world(stack: Stack, mine: Clinic, other: Clinic) -> Iterator[World]:
    http = httpx.Client(base_url=stack.api.base_url, timeout=30)
    admin = {"Authorization": f"Bearer {other.admin}"}
    r = http.post("/staff", headers=admin, json=with_(NEW_STAFF, id="dr-other"))
    assert r.status_code == 201, r.text
    r = http.post("/locations", headers=admin, json=with_(NEW_LOCATION, id="loc-other"))
    assert r.status_code == 201, r.text
    appt = mine.book(start=START)
    other_appt = other.book(start=START)
    ids = {
        "patient": mine.patient_id,
        "provider": mine.provider_id,
        "location": mine.location_id,
        "appt": appt["id"],
        "other_tenant": other.tenant,
        "other_patient": other.patient_id,
        "other_provider": "dr-other",
        "other_location": "loc-other",
        "other_appt": other_appt["id"],
        "start": START.isoformat(),
        "end": (START + timedelta(minutes=30)).isoformat(),
        "start2": (START + timedelta(hours=1)).isoformat(),
        "end2": (START + timedelta(hours=1, minutes=30)).isoformat(),
        "naive": START.replace(tzinfo=None).isoformat(),
        "early": (START - timedelta(minutes=30)).isoformat(),
        "too_long": (START + timedelta(hours=13)).isoformat(),
        **domain_ids(mine, ""),
        **domain_ids(other, "other_"),
    }
    try:
        yield World(stack, http, mine, other, ids)
    finally:
        http.close()


@pytest.fixture
def world(stack: Stack, clinic: Clinic, other_clinic: Clinic) -> Iterator[World]:
    """Fresh tenants, for tests that change things on purpose."""
    with make_world(stack, clinic, other_clinic) as w:
        yield w


@pytest.fixture(scope="module")
def shared(stack: Stack) -> Iterator[World]:
    """Tenants shared by the tests whose requests are all refused. Each test still
    compares both tenants before and after, so a request that does change something
    fails the test that sent it."""
    with make_world(stack, Clinic.create(stack), Clinic.create(stack)) as w:
        yield w


def check_error(
    r: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    """The response is the contract's JSON error; ``field`` is named in its details."""
    assert r.status_code == status, f"{r.status_code}: {r.text}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body: dict[str, Any] = r.json()
    assert body.get("error") == code, body
    assert isinstance(body.get("message"), str), body
    assert body["message"].strip(), body
    if field is not None:
        named = [str(d.get("field", "")) for d in body.get("details") or []]
        assert any(f == field or f.endswith("." + field) for f in named), (field, body)
    if status == 401:
        assert r.headers.get("www-authenticate", "").lower().startswith("bearer"), r.headers
    return body


def rejected(
    w: World, route: str, status: int, code: str, field: str | None = None, **call: Any
) -> dict[str, Any]:
    """Send one bad request: it gets the error, and neither tenant changes."""
    before = w.states()
    body = check_error(w.call(route, **call), status, code, field)
    after = w.states()
    assert after[0] == before[0], "the caller's tenant changed"
    assert after[1] == before[1], "the other tenant changed"
    return body


# --- the checks themselves can fail -----------------------------------------------


def test_a_good_request_is_seen_as_a_change(world: World) -> None:
    """Control: the same state check does see a change that a good request makes."""
    before = world.states()
    r = world.call(PUBLISH, body=NEW_EVENT)
    assert r.status_code == 202, r.text
    after = world.states()
    assert after[0]["latestSeq"] == before[0]["latestSeq"] + 1
    assert after[1] == before[1]
    r = world.call(PATIENTS, body=NEW_PATIENT)
    assert r.status_code == 201, r.text
    assert world.state(world.mine)["patients"] != after[0]["patients"]


# --- 422: malformed JSON ------------------------------------------------------------

MALFORMED = {
    "truncated": b'{"firstName": "Ada", ',
    "single-quotes": b"{'firstName': 'Ada'}",
    "trailing-garbage": b'{"status": "confirmed"} x',
    "not-utf8": b'{"firstName": "\xff\xfe"}',
}


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_json(shared: World, route: str, content: bytes) -> None:
    rejected(shared, route, 422, "malformed_json", content=content)


# --- 422: wrong types, missing and unknown fields, impossible times -----------------

INVALID = [
    # id, route, body, the field the details must name
    ("patient-dob-text", PATIENTS, with_(NEW_PATIENT, dateOfBirth="last tuesday"), "dateOfBirth"),
    ("patient-dob-feb-30", PATIENTS, with_(NEW_PATIENT, dateOfBirth="1985-02-30"), "dateOfBirth"),
    ("patient-name-number", PATIENTS, with_(NEW_PATIENT, firstName=42), "firstName"),
    ("patient-name-empty", PATIENTS, with_(NEW_PATIENT, lastName=""), "lastName"),
    ("patient-name-missing", PATIENTS, with_(NEW_PATIENT, lastName=DROP), "lastName"),
    ("patient-sex-unknown", PATIENTS, with_(NEW_PATIENT, sex="robot"), "sex"),
    ("patient-extra-field", PATIENTS, with_(NEW_PATIENT, mrn="12345"), "mrn"),
    ("book-start-not-a-date", BOOK, with_(NEW_APPT, scheduledStart="tomorrow"), "scheduledStart"),
    ("book-start-a-list", BOOK, with_(NEW_APPT, scheduledStart=["{start}"]), "scheduledStart"),
    ("book-start-naive", BOOK, with_(NEW_APPT, scheduledStart="{naive}"), "scheduledStart"),
    ("book-end-naive", BOOK, with_(NEW_APPT, scheduledEnd="{naive}"), "scheduledEnd"),
    ("book-end-early", BOOK, with_(NEW_APPT, scheduledEnd="{early}"), "scheduledEnd"),
    ("book-end-equals-start", BOOK, with_(NEW_APPT, scheduledEnd="{start}"), "scheduledEnd"),
    ("book-longer-than-12h", BOOK, with_(NEW_APPT, scheduledEnd="{too_long}"), "scheduledEnd"),
    ("book-patient-number", BOOK, with_(NEW_APPT, patientId=42), "patientId"),
    ("book-provider-slash", BOOK, with_(NEW_APPT, providerId="dr/1"), "providerId"),
    ("book-location-missing", BOOK, with_(NEW_APPT, locationId=DROP), "locationId"),
    ("book-extra-status", BOOK, with_(NEW_APPT, status="checked_in"), "status"),
    ("resched-start-text", RESCHEDULE, with_(NEW_TIMES, scheduledStart="noon"), "scheduledStart"),
    ("resched-naive", RESCHEDULE, with_(NEW_TIMES, scheduledStart="{naive}"), "scheduledStart"),
    ("resched-end-early", RESCHEDULE, with_(NEW_TIMES, scheduledEnd="{early}"), "scheduledEnd"),
    ("resched-extra-field", RESCHEDULE, with_(NEW_TIMES, providerId="{provider}"), "providerId"),
    ("status-unknown", STATUS, {"status": "arrived"}, "status"),
    ("status-wrong-case", STATUS, {"status": "CHECKED_IN"}, "status"),
    ("status-number", STATUS, {"status": 3}, "status"),
    ("status-missing", STATUS, {"reason": "no status"}, "status"),
    ("status-reason-too-long", STATUS, {"status": "cancelled", "reason": "x" * 501}, "reason"),
    ("status-extra-field", STATUS, {"status": "cancelled", "note": "typo"}, "note"),
    ("staff-name-number", STAFF, with_(NEW_STAFF, name=42), "name"),
    ("staff-id-space", STAFF, with_(NEW_STAFF, id="dr 2"), "id"),
    ("staff-role-service", STAFF, with_(NEW_STAFF, roles=["service"]), "roles.0"),
    ("staff-roles-string", STAFF, with_(NEW_STAFF, roles="provider"), "roles"),
    ("staff-flag-string", STAFF, with_(NEW_STAFF, isProvider="maybe"), "isProvider"),
    ("staff-extra-field", STAFF, with_(NEW_STAFF, email="dr@example.org"), "email"),
    ("location-name-number", LOCATIONS, with_(NEW_LOCATION, name=42), "name"),
    ("location-name-empty", LOCATIONS, with_(NEW_LOCATION, name=""), "name"),
    ("location-id-missing", LOCATIONS, with_(NEW_LOCATION, id=DROP), "id"),
    ("location-extra-field", LOCATIONS, with_(NEW_LOCATION, address="1 Main St"), "address"),
    ("event-data-string", PUBLISH, with_(NEW_EVENT, data="not an object"), "data"),
    ("event-patient-number", PUBLISH, with_(NEW_EVENT, patientId=7), "patientId"),
    ("event-entity-wildcard", PUBLISH, with_(NEW_EVENT, entityId="a+b"), "entityId"),
    ("event-tenant-in-body", PUBLISH, with_(NEW_EVENT, tenant="{other_tenant}"), "tenant"),
    ("credentials-client-number", CREDENTIALS, {"clientId": 42}, "clientId"),
    ("credentials-tenant-in-body", CREDENTIALS, {"tenant": "{other_tenant}"}, "tenant"),
]


@pytest.mark.parametrize(
    ("route", "body", "field"), [pytest.param(*c[1:], id=c[0]) for c in INVALID]
)
def test_invalid_body(shared: World, route: str, body: dict[str, Any], field: str) -> None:
    rejected(shared, route, 422, "invalid_request", field, body=body)


@pytest.mark.parametrize("route", [PATIENTS, BOOK, STAFF, PUBLISH])
@pytest.mark.parametrize("body", [[], "text", None], ids=["array", "string", "null"])
def test_body_that_is_not_an_object(shared: World, route: str, body: Any) -> None:
    rejected(shared, route, 422, "invalid_request", content=json.dumps(body).encode())


# --- 404: unknown ids, and another tenant's ids -------------------------------------

NOT_FOUND = [
    # id, route, role (None: the route's own), body
    ("patient-unknown", "GET /patients/p-unknown", None, NO_BODY),
    ("patient-foreign", "GET /patients/{other_patient}", None, NO_BODY),
    ("book-patient-unknown", BOOK, None, with_(NEW_APPT, patientId="p-unknown")),
    ("book-patient-foreign", BOOK, None, with_(NEW_APPT, patientId="{other_patient}")),
    ("book-provider-unknown", BOOK, None, with_(NEW_APPT, providerId="dr-unknown")),
    ("book-provider-foreign", BOOK, None, with_(NEW_APPT, providerId="{other_provider}")),
    ("book-location-unknown", BOOK, None, with_(NEW_APPT, locationId="loc-unknown")),
    ("book-location-foreign", BOOK, None, with_(NEW_APPT, locationId="{other_location}")),
    ("resched-unknown", "POST /appointments/a-unknown/reschedule", None, NEW_TIMES),
    ("resched-foreign", OTHER_RESCHEDULE, None, NEW_TIMES),
    ("status-unknown", "POST /appointments/a-unknown/status", None, {"status": "cancelled"}),
    ("status-foreign", OTHER_STATUS, None, {"status": "cancelled"}),
    ("status-foreign-admin", OTHER_STATUS, "admin", {"status": "checked_in"}),
    ("event-patient-unknown", PUBLISH, None, with_(NEW_EVENT, patientId="p-unknown")),
    ("event-patient-foreign", PUBLISH, None, with_(NEW_EVENT, patientId="{other_patient}")),
    ("event-foreign-admin", PUBLISH, "admin", with_(NEW_EVENT, patientId="{other_patient}")),
    ("credentials-unknown-client", CREDENTIALS, None, {"clientId": "nobody.u-1.0000"}),
]


@pytest.mark.parametrize(
    ("route", "role", "body"), [pytest.param(*c[1:], id=c[0]) for c in NOT_FOUND]
)
def test_unknown_or_foreign_id(shared: World, route: str, role: str | None, body: Any) -> None:
    rejected(shared, route, 404, "not_found", role=role, body=body)


def test_foreign_id_looks_like_an_unknown_one(shared: World) -> None:
    """A 404 for another tenant's patient says no more than one for a made-up id."""
    foreign = check_error(shared.call("GET /patients/{other_patient}"), 404, "not_found")
    unknown = check_error(shared.call("GET /patients/p-unknown"), 404, "not_found")
    other = shared.ids["other_patient"]
    assert foreign["message"].replace(other, "ID") == unknown["message"].replace("p-unknown", "ID")
    assert foreign.keys() == unknown.keys()


def test_renewing_another_tenants_or_users_session_is_404(world: World) -> None:
    """Broker credentials of another tenant (or another user) cannot be renewed, and
    the real owner's password keeps working."""
    stack = world.stack
    theirs = stack.credentials(world.other.front_desk)
    body = {"clientId": theirs["clientId"]}
    rejected(world, CREDENTIALS, 404, "not_found", body=body)
    rejected(world, CREDENTIALS, 404, "not_found", role="admin", body=body)
    colleague = stack.credentials(world.mine.front_desk)
    rejected(
        world, CREDENTIALS, 404, "not_found", role="admin", body={"clientId": colleague["clientId"]}
    )
    for creds in (theirs, colleague):
        probe = stack.probe(creds, transport="tcp")
        try:
            rc = probe.connect()
            assert not rc.is_failure, rc
        finally:
            probe.close()


# --- 409: illegal state changes -----------------------------------------------------

ILLEGAL = [
    # (statuses to reach first, the illegal change)
    (["cancelled"], "status:checked_in"),
    (["cancelled"], "status:scheduled"),
    (["cancelled"], "status:confirmed"),
    (["cancelled"], "reschedule"),
    (["no_show"], "status:checked_in"),
    (["checked_in"], "reschedule"),
    (["checked_in"], "status:scheduled"),
    (["checked_in"], "status:cancelled"),
    (["checked_in", "in_room"], "status:checked_in"),
    (["checked_in", "in_room"], "reschedule"),
    (["checked_in", "completed"], "reschedule"),
    (["checked_in", "completed"], "status:cancelled"),
    (["checked_in", "completed"], "status:in_room"),
]


@pytest.mark.parametrize(
    ("path", "change"), ILLEGAL, ids=[f"{'>'.join(p)}>{c}" for p, c in ILLEGAL]
)
def test_illegal_transition(world: World, path: list[str], change: str) -> None:
    appt = world.book(*path)
    if change == "reschedule":
        route, body = f"POST /appointments/{appt}/reschedule", NEW_TIMES
    else:
        route, body = f"POST /appointments/{appt}/status", {"status": change.split(":")[1]}
    rejected(world, route, 409, "conflict", body=body)


@pytest.mark.parametrize(
    ("route", "body"),
    [(STAFF, with_(NEW_STAFF, id="{provider}")), (LOCATIONS, with_(NEW_LOCATION, id="{location}"))],
    ids=["staff", "location"],
)
def test_duplicate_id_is_409(shared: World, route: str, body: dict[str, Any]) -> None:
    rejected(shared, route, 409, "conflict", body=body)


# --- 413: bodies over the limit -------------------------------------------------------


def padded(w: World, route: str, size: int) -> bytes:
    """The route's valid body, padded with whitespace (still valid JSON) to ``size``."""
    raw = json.dumps(w.fill(VALID[route])).encode()
    return raw + b" " * (size - len(raw))


def chunks(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("mode", ["content-length", "chunked"])
def test_oversize_body(shared: World, route: str, mode: str) -> None:
    data = padded(shared, route, MAX_BODY + 4096)
    rejected(
        shared, route, 413, "too_large", content=data if mode == "content-length" else chunks(data)
    )


@pytest.mark.parametrize("mode", ["content-length", "chunked"])
def test_body_under_the_limit_is_accepted(world: World, mode: str) -> None:
    """Control for the 413 tests: the same padding, under the limit, is fine."""
    data = padded(world, PATIENTS, MAX_BODY - 1024)
    r = world.call(PATIENTS, content=data if mode == "content-length" else chunks(data))
    assert r.status_code == 201, r.text


# --- 401: missing or bad tokens -------------------------------------------------------


def claims(w: World, role: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "u-1",
        "tenant": w.mine.tenant,
        "roles": [role],
        "iat": now,
        "exp": now + 3600,
    }
    return with_(base, **changes)


def signed(
    w: World, role: str, *, key: str | None = None, alg: str = "HS256", **changes: Any
) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns about short HS512 keys
        token = jwt.encode(claims(w, role, **changes), key or w.stack.jwt_secret, algorithm=alg)
    return f"Bearer {token}"


def unsigned(w: World, role: str) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"Bearer {part({'alg': 'none', 'typ': 'JWT'})}.{part(claims(w, role))}."


def expired(w: World, role: str) -> str:
    token = mint_dev_token(
        secret=w.stack.jwt_secret,
        tenant=w.mine.tenant,
        user="u-1",
        roles=[role],
        ttl=timedelta(seconds=-60),
    )
    return f"Bearer {token}"


BAD_AUTH: dict[str, Callable[[World, str], str | None]] = {
    "missing": lambda w, role: None,
    "empty-bearer": lambda w, role: "Bearer",
    "basic-scheme": lambda w, role: "Basic " + base64.b64encode(b"u-1:pw").decode(),
    "token-scheme": lambda w, role: "Token " + w.token(role),
    "raw-jwt-no-scheme": lambda w, role: w.token(role),
    "garbage": lambda w, role: "Bearer not-a-token",
    "garbage-3-parts": lambda w, role: "Bearer aaa.bbb.ccc",
    "forged": lambda w, role: signed(w, role, key=secrets.token_urlsafe(32)),
    "expired": expired,
    "alg-none": unsigned,
    "alg-hs512": lambda w, role: signed(w, role, alg="HS512"),
    "no-tenant": lambda w, role: signed(w, role, tenant=DROP),
    "bad-tenant": lambda w, role: signed(w, role, tenant="acme/+"),
    "no-sub": lambda w, role: signed(w, role, sub=DROP),
    "roles-not-a-list": lambda w, role: signed(w, role, roles=7),
    "no-exp": lambda w, role: signed(w, role, exp=DROP),
    "not-yet-valid": lambda w, role: signed(w, role, nbf=int(time.time()) + 3600),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("bad", BAD_AUTH.keys())
def test_bad_token_is_401(shared: World, route: str, bad: str) -> None:
    auth = BAD_AUTH[bad](shared, ROLE.get(route, "front_desk"))
    rejected(shared, route, 401, "unauthorized", auth=auth, body=VALID[route])


# A valid token with no role of the hub (an identity provider's "superuser", or none):
# refused with 403 wherever clinic data is read or changed; only its own broker session
# (notifications only) and its own notifications are open to it.
ROLELESS: dict[str, Callable[[World, str], str | None]] = {
    "unknown-role": lambda w, role: signed(w, role, roles=["superuser"]),
    "no-roles": lambda w, role: signed(w, role, roles=[]),
}


@pytest.mark.parametrize("route", [r for r in ROUTES if r != CREDENTIALS])
@pytest.mark.parametrize("bad", ROLELESS.keys())
def test_a_token_without_a_hub_role_is_403(shared: World, route: str, bad: str) -> None:
    auth = ROLELESS[bad](shared, ROLE.get(route, "front_desk"))
    body = rejected(shared, route, 403, "forbidden", auth=auth, body=VALID[route])
    assert "role" in body["message"]


# Every route checks the token with the same dependency: the domain routes get the
# kinds of bad token that differ most (none, forged, expired, unsigned).
@pytest.mark.parametrize("route", DOMAIN_ROUTES)
@pytest.mark.parametrize("bad", ["missing", "forged", "expired", "alg-none"])
def test_bad_token_is_401_on_domain_routes(shared: World, route: str, bad: str) -> None:
    auth = BAD_AUTH[bad](shared, ROLE.get(route, "front_desk"))
    rejected(shared, route, 401, "unauthorized", auth=auth, body=VALID[route])


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize(
    "content", [b'{"firstName": ', b'{"unknown": 1}'], ids=["malformed", "invalid"]
)
def test_token_is_checked_before_the_body(shared: World, route: str, content: bytes) -> None:
    """No token, bad body: 401, not a validation error for an anonymous caller."""
    rejected(shared, route, 401, "unauthorized", auth=None, content=content)


# --- 403: roles -----------------------------------------------------------------------

FORBIDDEN = [
    ("front_desk", PUBLISH),
    ("provider", PUBLISH),
    ("billing", PUBLISH),
    ("front_desk", STAFF),
    ("provider", STAFF),
    ("front_desk", LOCATIONS),
    ("billing", BOOK),
    ("billing", PATIENTS),
    ("billing", RESCHEDULE),
    ("billing", STATUS),
    ("service", BOOK),
]


@pytest.mark.parametrize(("role", "route"), FORBIDDEN, ids=[f"{a}:{r}" for a, r in FORBIDDEN])
def test_wrong_role_is_403(shared: World, role: str, route: str) -> None:
    rejected(shared, route, 403, "forbidden", role=role, body=VALID[route])


# --- POST /events: the catalog and its payload schemas ------------------------------

CLAIM = {
    "id": "c-1",
    "patientId": "{patient}",
    "payerId": "pay-1",
    "amountCents": 100,
    "status": "denied",
}


def balance_event(**changes: Any) -> dict[str, Any]:
    return with_(NEW_EVENT, data=with_(BALANCE, **changes))


def denial_event(**changes: Any) -> dict[str, Any]:
    return with_(NEW_EVENT, type="claim:denied", data=with_(CLAIM, **changes))


BAD_EVENTS = [
    # id, body, error code, the field the details must name
    ("unknown-type", with_(NEW_EVENT, type="patient:exploded"), "invalid_request", None),
    ("type-without-action", with_(NEW_EVENT, type="appointment"), "invalid_request", None),
    ("type-empty", with_(NEW_EVENT, type=""), "invalid_request", "type"),
    ("data-empty", with_(NEW_EVENT, type="appointment:created", data={}), "invalid_event", "id"),
    ("data-wrong-type", balance_event(balanceCents="lots"), "invalid_event", "balanceCents"),
    ("data-missing-field", balance_event(reason=DROP), "invalid_event", "reason"),
    ("data-extra-field", balance_event(extra=True), "invalid_event", "extra"),
    ("data-bad-status", denial_event(status="lost"), "invalid_event", "status"),
    ("data-negative", denial_event(amountCents=-5), "invalid_event", "amountCents"),
]


@pytest.mark.parametrize(
    ("body", "code", "field"), [pytest.param(*c[1:], id=c[0]) for c in BAD_EVENTS]
)
def test_publish_rejects_bad_events(
    shared: World, body: dict[str, Any], code: str, field: str | None
) -> None:
    """Unknown types and payloads that fail their catalog schema: 422, and no event."""
    rejected(shared, PUBLISH, 422, code, field, body=body)


# --- GET /events: query parameters ----------------------------------------------------

BAD_QUERIES = [
    # id, query, the field the details must name
    ("after-negative", {"after": -1}, "after"),
    ("after-text", {"after": "yesterday"}, "after"),
    ("limit-zero", {"limit": 0}, "limit"),
    ("limit-negative", {"limit": -10}, "limit"),
    ("limit-text", {"limit": "all"}, "limit"),
    ("types-unknown", {"types": "appointment:exploded"}, None),
    ("types-one-unknown", {"types": "appointment:created,bogus"}, None),
    ("patient-too-long", {"patientId": "p" * 65}, "patientId"),
]


@pytest.mark.parametrize(("params", "field"), [pytest.param(*c[1:], id=c[0]) for c in BAD_QUERIES])
def test_replay_rejects_bad_queries(
    shared: World, params: dict[str, Any], field: str | None
) -> None:
    rejected(shared, REPLAY, 422, "invalid_request", field, params=params)


# --- the clinical and billing domains ---------------------------------------------

DOMAIN_INVALID = [
    # id, route, body, the field the details must name (None: the body as a whole)
    ("put-patient-empty", UPDATE_PATIENT, {}, None),
    ("put-patient-only-version", UPDATE_PATIENT, {"version": 1}, None),
    ("put-patient-dob-text", UPDATE_PATIENT, {"dateOfBirth": "soon"}, "dateOfBirth"),
    ("put-patient-name-null", UPDATE_PATIENT, {"firstName": None}, None),
    ("put-patient-name-empty", UPDATE_PATIENT, {"lastName": ""}, "lastName"),
    ("put-patient-version-text", UPDATE_PATIENT, {"phone": "1", "version": "x"}, "version"),
    ("put-patient-balance", UPDATE_PATIENT, {"balanceCents": 0}, "balanceCents"),
    ("verify-member-missing", VERIFY, with_(VERIFY_BODY, memberId=DROP), "memberId"),
    ("verify-eligible-text", VERIFY, with_(VERIFY_BODY, eligible="maybe"), "eligible"),
    ("verify-payer-slash", VERIFY, with_(VERIFY_BODY, payerId="a/b"), "payerId"),
    ("encounter-patient-missing", ENCOUNTERS, with_(NEW_ENC, patientId=DROP), "patientId"),
    ("encounter-appt-slash", ENCOUNTERS, with_(NEW_ENC, appointmentId="a/1"), "appointmentId"),
    ("encounter-status-in-body", ENCOUNTERS, with_(NEW_ENC, status="signed"), "status"),
    ("encounter-patch-empty", ENC_PATCH, {}, None),
    ("encounter-patch-status", ENC_PATCH, {"status": "signed"}, "status"),
    ("encounter-plan-too-long", ENC_PATCH, {"plan": "x" * 10001}, "plan"),
    ("encounter-plan-number", ENC_PATCH, {"plan": 7}, "plan"),
    ("biopsy-site-empty", BIOPSIES, with_(NEW_BX, site=""), "site"),
    ("biopsy-provider-missing", BIOPSIES, with_(NEW_BX, orderingProviderId=DROP), None),
    ("biopsy-status-in-body", BIOPSIES, with_(NEW_BX, status="resulted"), "status"),
    ("biopsy-patch-resulted", BX_PATCH, {"status": "resulted"}, "status"),
    ("biopsy-patch-site-null", BX_PATCH, {"site": None}, None),
    ("biopsy-patch-empty", BX_PATCH, {}, None),
    ("result-diagnosis-missing", BX_RESULT, {"concerning": True}, "diagnosis"),
    ("result-diagnosis-empty", BX_RESULT, {"diagnosis": ""}, "diagnosis"),
    ("result-concerning-text", BX_RESULT, {"diagnosis": "x", "concerning": "very"}, "concerning"),
    ("claim-amount-negative", CLAIMS, with_(NEW_CLAIM, amountCents=-1), "amountCents"),
    ("claim-amount-zero", CLAIMS, with_(NEW_CLAIM, amountCents=0), "amountCents"),
    ("claim-amount-fraction", CLAIMS, with_(NEW_CLAIM, amountCents=12.5), "amountCents"),
    ("claim-amount-huge", CLAIMS, with_(NEW_CLAIM, amountCents=10**12), "amountCents"),
    ("claim-payer-missing", CLAIMS, with_(NEW_CLAIM, payerId=DROP), "payerId"),
    ("claim-tenant-in-body", CLAIMS, with_(NEW_CLAIM, tenant="{other_tenant}"), "tenant"),
    ("claim-patch-status", CLAIM_PATCH, {"status": "paid"}, "status"),
    ("claim-patch-amount-null", CLAIM_PATCH, {"amountCents": None}, None),
    ("claim-status-unknown", CLAIM_STATUS, {"status": "lost"}, "status"),
    ("claim-status-submitted", CLAIM_STATUS, {"status": "submitted"}, "status"),
    (
        "claim-paid-negative",
        CLAIM_STATUS,
        {"status": "paid", "paidAmountCents": -5},
        "paidAmountCents",
    ),
    ("payment-zero", PAYMENTS, with_(NEW_PAYMENT, amountCents=0), "amountCents"),
    ("payment-negative", PAYMENTS, with_(NEW_PAYMENT, amountCents=-100), "amountCents"),
    ("payment-method-unknown", PAYMENTS, with_(NEW_PAYMENT, method="bitcoin"), "method"),
    ("payment-balance-in-body", PAYMENTS, with_(NEW_PAYMENT, balanceCents=0), "balanceCents"),
    ("pa-item-missing", PRIOR_AUTHS, with_(NEW_PA, item=DROP), "item"),
    ("pa-item-too-long", PRIOR_AUTHS, with_(NEW_PA, item="x" * 201), "item"),
    ("pa-status-requested", PA_STATUS, {"status": "requested"}, "status"),
    ("pa-reason-too-long", PA_STATUS, {"status": "denied", "reason": "x" * 501}, "reason"),
]


@pytest.mark.parametrize(
    ("route", "body", "field"), [pytest.param(*c[1:], id=c[0]) for c in DOMAIN_INVALID]
)
def test_invalid_domain_body(
    shared: World, route: str, body: dict[str, Any], field: str | None
) -> None:
    rejected(shared, route, 422, "invalid_request", field, body=body)


@pytest.mark.parametrize(
    ("route", "params", "field"),
    [
        ("GET /claims", {"status": "lost"}, "status"),
        ("GET /biopsies", {"status": "pending"}, "status"),
        ("GET /encounters", {"limit": 0}, "limit"),
        ("GET /prior-auths", {"limit": 10_000}, "limit"),
        ("GET /payments", {"patientId": "p" * 65}, "patientId"),
        (NOTIFICATIONS, {"unacknowledged": "perhaps"}, "unacknowledged"),
    ],
)
def test_list_rejects_bad_queries(
    shared: World, route: str, params: dict[str, Any], field: str
) -> None:
    rejected(shared, route, 422, "invalid_request", field, params=params)


DOMAIN_NOT_FOUND = [
    # id, route, body (routes with {other_*} ids name another tenant's record)
    ("put-patient-unknown", "PUT /patients/p-unknown", {"phone": "1"}),
    ("put-patient-foreign", "PUT /patients/{other_patient}", {"phone": "1"}),
    ("verify-foreign", "POST /patients/{other_patient}/insurance/verify", VERIFY_BODY),
    ("encounter-patient-foreign", ENCOUNTERS, with_(NEW_ENC, patientId="{other_patient}")),
    ("encounter-provider-foreign", ENCOUNTERS, with_(NEW_ENC, providerId="{other_provider}")),
    ("encounter-appt-foreign", ENCOUNTERS, with_(NEW_ENC, appointmentId="{other_appt}")),
    ("encounter-patch-unknown", "PATCH /encounters/e-unknown", {"plan": "x"}),
    ("encounter-patch-foreign", "PATCH /encounters/{other_enc}", {"plan": "x"}),
    ("encounter-complete-foreign", "POST /encounters/{other_enc}/complete", NO_BODY),
    ("encounter-sign-foreign", "POST /encounters/{other_enc}/sign", NO_BODY),
    ("biopsy-patient-foreign", BIOPSIES, with_(NEW_BX, patientId="{other_patient}")),
    ("biopsy-encounter-foreign", BIOPSIES, with_(NEW_BX, encounterId="{other_enc}")),
    ("biopsy-patch-foreign", "PATCH /biopsies/{other_bx}", {"status": "sent"}),
    ("result-unknown", "POST /biopsies/b-unknown/result", {"diagnosis": "x"}),
    ("result-foreign", "POST /biopsies/{other_bx}/result", {"diagnosis": "melanoma"}),
    ("review-foreign", "POST /biopsies/{other_bx}/review", NO_BODY),
    ("claim-patient-foreign", CLAIMS, with_(NEW_CLAIM, patientId="{other_patient}")),
    ("claim-encounter-foreign", CLAIMS, with_(NEW_CLAIM, encounterId="{other_enc}")),
    ("claim-patch-foreign", "PATCH /claims/{other_claim}", {"amountCents": 1}),
    ("claim-submit-foreign", "POST /claims/{other_claim}/submit", NO_BODY),
    ("claim-status-unknown", "POST /claims/c-unknown/status", {"status": "void"}),
    ("claim-status-foreign", "POST /claims/{other_claim}/status", {"status": "void"}),
    ("payment-patient-foreign", PAYMENTS, with_(NEW_PAYMENT, patientId="{other_patient}")),
    ("payment-claim-foreign", PAYMENTS, with_(NEW_PAYMENT, claimId="{other_claim}")),
    ("pa-patient-foreign", PRIOR_AUTHS, with_(NEW_PA, patientId="{other_patient}")),
    (
        "pa-requester-foreign",
        PRIOR_AUTHS,
        with_(NEW_PA, requestingProviderId="{other_provider}"),
    ),
    ("pa-status-foreign", "POST /prior-auths/{other_pa}/status", {"status": "approved"}),
    ("ack-unknown", "POST /notifications/n-unknown/ack", NO_BODY),
    ("ack-foreign", "POST /notifications/{other_note}/ack", NO_BODY),
    ("get-encounter-foreign", "GET /encounters/{other_enc}", NO_BODY),
    ("get-biopsy-foreign", "GET /biopsies/{other_bx}", NO_BODY),
    ("get-claim-foreign", "GET /claims/{other_claim}", NO_BODY),
    ("get-payment-foreign", "GET /payments/{other_payment}", NO_BODY),
    ("get-pa-foreign", "GET /prior-auths/{other_pa}", NO_BODY),
]


def _role_for(route: str) -> str:
    """The role a route of DOMAIN_NOT_FOUND is meant for, by its shape."""
    for known in DOMAIN_ROUTES:
        method, path = known.split(" ", 1)
        pattern = path.split("/{")[0]
        tail = path.rsplit("}", 1)[-1]
        if route.startswith(method) and pattern in route and route.endswith(tail):
            return ROLE.get(known, "front_desk")
    return "front_desk"


@pytest.mark.parametrize(
    ("route", "body"), [pytest.param(*c[1:], id=c[0]) for c in DOMAIN_NOT_FOUND]
)
def test_unknown_or_foreign_domain_id(shared: World, route: str, body: Any) -> None:
    rejected(shared, route, 404, "not_found", role=_role_for(route), body=body)


def test_ack_of_a_colleagues_notification_is_404(shared: World) -> None:
    """bl-1 holds the tenant's denial notification; bl-2 (also billing) cannot ack it."""
    colleague = shared.stack.token(shared.mine.tenant, "bl-2", "billing")
    rejected(shared, ACK, 404, "not_found", auth=f"Bearer {colleague}")


# Roles: (role, route)
DOMAIN_FORBIDDEN = [
    ("billing", UPDATE_PATIENT),
    ("service", UPDATE_PATIENT),
    ("provider", VERIFY),
    ("front_desk", ENCOUNTERS),
    ("billing", ENCOUNTERS),
    ("billing", ENC_PATCH),
    ("front_desk", ENC_COMPLETE),
    ("front_desk", ENC_SIGN),
    ("admin", ENC_SIGN),
    ("billing", BIOPSIES),
    ("front_desk", BIOPSIES),
    ("billing", BX_PATCH),
    ("front_desk", BX_RESULT),
    ("billing", BX_RESULT),
    ("front_desk", BX_REVIEW),
    ("admin", BX_REVIEW),
    ("front_desk", CLAIMS),
    ("provider", CLAIMS),
    ("provider", CLAIM_PATCH),
    ("front_desk", CLAIM_SUBMIT),
    ("provider", CLAIM_STATUS),
    ("front_desk", CLAIM_STATUS),
    ("provider", PAYMENTS),
    ("service", PAYMENTS),
    ("front_desk", PRIOR_AUTHS),
    ("provider", PA_STATUS),
    ("front_desk", PA_STATUS),
]


@pytest.mark.parametrize(
    ("role", "route"), DOMAIN_FORBIDDEN, ids=[f"{a}:{r}" for a, r in DOMAIN_FORBIDDEN]
)
def test_wrong_role_on_domain_route_is_403(shared: World, role: str, route: str) -> None:
    rejected(shared, route, 403, "forbidden", role=role, body=VALID[route])


def test_only_the_encounters_provider_signs(world: World) -> None:
    world.call(ENC_COMPLETE)
    other = world.stack.token(world.mine.tenant, "dr-2", "provider")
    rejected(world, ENC_SIGN, 403, "forbidden", auth=f"Bearer {other}")


def test_only_the_ordering_provider_reviews(world: World) -> None:
    r = world.call(BX_RESULT, body={"diagnosis": "Dermatofibroma"})
    assert r.status_code == 200, r.text
    other = world.stack.token(world.mine.tenant, "dr-2", "provider")
    rejected(world, BX_REVIEW, 403, "forbidden", auth=f"Bearer {other}")


# 422 that only the domain can tell: (setup requests, the bad request, field)
SEMANTIC = [
    ("denial-without-reason", [CLAIM_SUBMIT], (CLAIM_STATUS, {"status": "denied"}), "reason"),
    (
        "paid-without-amount",
        [CLAIM_SUBMIT],
        (CLAIM_STATUS, {"status": "paid"}),
        "paidAmountCents",
    ),
    (
        "paid-more-than-billed",
        [CLAIM_SUBMIT],
        (CLAIM_STATUS, {"status": "paid", "paidAmountCents": 20001}),
        "paidAmountCents",
    ),
    (
        "adjusted-without-responsibility",
        [CLAIM_SUBMIT, (CLAIM_STATUS, {"status": "paid", "paidAmountCents": 100})],
        (CLAIM_STATUS, {"status": "adjusted"}),
        "patientResponsibilityCents",
    ),
    ("biopsy-by-non-provider", [], (BIOPSIES, with_(NEW_BX, orderingProviderId="bl-1")), None),
    ("encounter-by-non-provider", [], (ENCOUNTERS, with_(NEW_ENC, providerId="bl-1")), None),
    (
        "pa-requester-not-provider",
        [],
        (PRIOR_AUTHS, with_(NEW_PA, requestingProviderId="bl-1")),
        None,
    ),
]


@pytest.mark.parametrize(
    ("setup", "bad", "field"), [pytest.param(*c[1:], id=c[0]) for c in SEMANTIC]
)
def test_domain_refuses_what_the_schema_cannot(
    world: World, setup: list[Any], bad: tuple[str, Any], field: str | None
) -> None:
    for step in setup:
        route, body = step if isinstance(step, tuple) else (step, VALID[step])
        r = world.call(route, body=body)
        assert r.status_code in (200, 201), r.text
    rejected(world, bad[0], 422, "invalid_request", field, body=bad[1])


def test_records_of_another_patient_cannot_be_linked(world: World) -> None:
    """An encounter, claim or payment of one patient never points at another's."""
    r = world.call(PATIENTS, body=NEW_PATIENT)
    assert r.status_code == 201, r.text
    grace = r.json()["id"]
    rejected(
        world,
        BIOPSIES,
        422,
        "invalid_request",
        body=with_(NEW_BX, patientId=grace, encounterId="{enc}"),
    )
    rejected(
        world,
        CLAIMS,
        422,
        "invalid_request",
        body=with_(NEW_CLAIM, patientId=grace, encounterId="{enc}"),
    )
    rejected(
        world,
        PAYMENTS,
        422,
        "invalid_request",
        body=with_(NEW_PAYMENT, patientId=grace, claimId="{claim}"),
    )
    rejected(
        world,
        ENCOUNTERS,
        422,
        "invalid_request",
        body=with_(NEW_ENC, patientId=grace, appointmentId="{appt}"),
    )


def test_stale_version_is_409(world: World) -> None:
    for route, body in ((UPDATE_PATIENT, {"phone": "1"}), (ENC_PATCH, {"plan": "x"})):
        r = world.call(route, body=body)
        assert r.status_code == 200, r.text
        stale = {**body, "phone" if route == UPDATE_PATIENT else "plan": "2", "version": 1}
        rejected(world, route, 409, "conflict", body=stale)


# 409: (requests that reach the state, the illegal request)
DOMAIN_ILLEGAL = [
    ("encounter-sign-open", [], ENC_SIGN),
    ("encounter-complete-twice", [ENC_COMPLETE], ENC_COMPLETE),
    ("encounter-patch-signed", [ENC_COMPLETE, ENC_SIGN], ENC_PATCH),
    ("encounter-complete-signed", [ENC_COMPLETE, ENC_SIGN], ENC_COMPLETE),
    ("encounter-sign-twice", [ENC_COMPLETE, ENC_SIGN], ENC_SIGN),
    ("biopsy-review-unresulted", [], BX_REVIEW),
    ("biopsy-result-twice", [BX_RESULT], BX_RESULT),
    ("biopsy-patch-resulted", [BX_RESULT], BX_PATCH),
    ("biopsy-review-twice", [BX_RESULT, BX_REVIEW], BX_REVIEW),
    ("biopsy-result-cancelled", [(BX_PATCH, {"status": "cancelled"})], BX_RESULT),
    ("biopsy-collect-after-sent", [(BX_PATCH, {"status": "sent"})], BX_PATCH),
    ("claim-status-draft", [], CLAIM_STATUS),
    ("claim-submit-twice", [CLAIM_SUBMIT], CLAIM_SUBMIT),
    ("claim-patch-submitted", [CLAIM_SUBMIT], CLAIM_PATCH),
    (
        "claim-deny-paid",
        [CLAIM_SUBMIT, (CLAIM_STATUS, {"status": "paid", "paidAmountCents": 1})],
        (CLAIM_STATUS, {"status": "denied", "reason": "late"}),
    ),
    ("claim-void-then-submit", [(CLAIM_STATUS, {"status": "void"})], CLAIM_SUBMIT),
    ("pa-approved-then-denied", [PA_STATUS], (PA_STATUS, {"status": "denied"})),
    (
        "pa-cancelled-then-pending",
        [(PA_STATUS, {"status": "cancelled"})],
        (PA_STATUS, {"status": "pending"}),
    ),
]


@pytest.mark.parametrize(
    ("setup", "illegal"), [pytest.param(*c[1:], id=c[0]) for c in DOMAIN_ILLEGAL]
)
def test_illegal_domain_change_is_409(world: World, setup: list[Any], illegal: Any) -> None:
    for step in setup:
        route, body = step if isinstance(step, tuple) else (step, VALID[step])
        r = world.call(route, body=body)
        assert r.status_code in (200, 201), f"{route}: {r.text}"
    route, body = illegal if isinstance(illegal, tuple) else (illegal, VALID[illegal])
    rejected(world, route, 409, "conflict", body=body)
