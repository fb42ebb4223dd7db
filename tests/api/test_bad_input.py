"""Bad input gets a clear JSON error (``{"error", "message", "details"?}``) with the
contract's status (401/403/404/409/413/422), and changes nothing: no row, no event.

"Nothing changed" is checked for both tenants of every test: the tenant's ``latestSeq``
and event ids from ``GET /events``, and its patients, staff, locations and the day's
appointments as the api answers them (with their ``version`` and ``updatedAt``).
"""

from __future__ import annotations

import base64
import contextlib
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
PUBLISH = "POST /events"
REPLAY = "GET /events"
CREDENTIALS = "POST /realtime/credentials"
OTHER_RESCHEDULE = "POST /appointments/{other_appt}/reschedule"
OTHER_STATUS = "POST /appointments/{other_appt}/status"
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

# The role each route is meant for, and a body it would accept.
ROLE = {STAFF: "admin", LOCATIONS: "admin", PUBLISH: "service"}
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
VALID: dict[str, Any] = {
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
        c = clinic or self.mine
        if role == "admin":
            return c.admin
        if role == "front_desk":
            return c.front_desk
        return self.stack.token(c.tenant, f"u-{role}", role)

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
        auth = {"Authorization": f"Bearer {c.admin}"}

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
        }

    def states(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.state(self.mine), self.state(self.other)

    def book(self, *statuses: str) -> str:
        """A new appointment of mine, moved through ``statuses``; its id."""
        appt = self.mine.book(start=START + timedelta(hours=3))
        for status in statuses:
            r = self.call(f"POST /appointments/{appt['id']}/status", body={"status": status})
            assert r.status_code == 200, r.text
        return str(appt["id"])


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


@pytest.mark.parametrize("route", POST_ROUTES)
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


@pytest.mark.parametrize("route", POST_ROUTES)
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
    "unknown-role": lambda w, role: signed(w, role, roles=["superuser"]),
    "no-roles": lambda w, role: signed(w, role, roles=[]),
    "roles-not-a-list": lambda w, role: signed(w, role, roles=role),
    "no-exp": lambda w, role: signed(w, role, exp=DROP),
    "not-yet-valid": lambda w, role: signed(w, role, nbf=int(time.time()) + 3600),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("bad", BAD_AUTH.keys())
def test_bad_token_is_401(shared: World, route: str, bad: str) -> None:
    auth = BAD_AUTH[bad](shared, ROLE.get(route, "front_desk"))
    rejected(shared, route, 401, "unauthorized", auth=auth, body=VALID[route])


@pytest.mark.parametrize("route", POST_ROUTES)
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
