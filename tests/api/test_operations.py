"""GET /metrics and the api's request log lines, against the real stack: an api with
JSON logs and a scraper token (docs/operations.md)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BACKENDS, _require_backend
from tests.support.clinic import Clinic
from tests.support.kiosk import KioskDevice, check_in_body
from tests.support.stack import Stack

SCRAPER_TOKEN = secrets.token_urlsafe(24)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module", params=BACKENDS)
def ops(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    _require_backend(request.param)
    s = Stack.create(
        request.param,
        tmp_path_factory.mktemp(f"ops-{request.param}"),
        HUB_LOG_FORMAT="json",
        HUB_METRICS_TOKEN=SCRAPER_TOKEN,
        # Critical alerts escalate within the test.
        HUB_CRITICAL_ESCALATE_SECONDS="1",
        HUB_NOTIFICATION_TICK_SECONDS="0.2",
    )
    yield s
    s.close()


@pytest.fixture
def ops_clinic(ops: Stack) -> Clinic:
    return Clinic.create(ops)


def scrape_text(stack: Stack) -> str:
    r = stack.http(SCRAPER_TOKEN).get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(stack: Stack) -> Samples:
    return parse(scrape_text(stack))


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def balance(patient_id: str, cents: int) -> dict[str, Any]:
    return {
        "type": "patient:balance_changed",
        "patientId": patient_id,
        "entityId": patient_id,
        "data": {
            "patientId": patient_id,
            "balanceCents": cents,
            "previousBalanceCents": 0,
            "reason": "copay",
        },
    }


# --- access ---


def test_metrics_need_an_admin_or_the_scraper_token(ops: Stack, ops_clinic: Clinic) -> None:
    assert ops.http().get("/metrics").status_code == 401
    assert ops.http("not-a-token").get("/metrics").status_code == 401
    assert ops.http(SCRAPER_TOKEN[:-1] + "x").get("/metrics").status_code == 401
    assert ops.http(ops_clinic.front_desk).get("/metrics").status_code == 403
    assert ops.http(ops_clinic.lab).get("/metrics").status_code == 403
    assert ops.http(ops_clinic.admin).get("/metrics").status_code == 200
    assert ops.http(SCRAPER_TOKEN).get("/metrics").status_code == 200


# --- counters ---


def test_event_counters_grow_by_exactly_the_events_written(ops: Stack, ops_clinic: Clinic) -> None:
    ops.wait_published()
    before = scrape(ops)
    for _ in range(3):
        ops_clinic.book()
    service = ops.token(ops_clinic.tenant, "billing-sync", "service")
    r = ops.http(service).post(
        "/events/batch",
        json={"events": [balance(ops_clinic.patient_id, c) for c in (100, 200, 300, 400)]},
    )
    assert r.status_code == 202, r.text
    r = ops.http(service).post("/events", json=balance(ops_clinic.patient_id, 500))
    assert r.status_code == 202, r.text
    ops.wait_published()

    def grown(samples: Samples, name: str, event_type: str) -> float:
        return value(samples, name, type=event_type) - value(before, name, type=event_type)

    deadline = time.monotonic() + 10
    while True:
        after = scrape(ops)
        published = grown(after, "hub_events_published_total", "appointment:created")
        published_balance = grown(after, "hub_events_published_total", "patient:balance_changed")
        if (published, published_balance) == (3, 5) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert grown(after, "hub_events_committed_total", "appointment:created") == 3
    assert grown(after, "hub_events_committed_total", "patient:balance_changed") == 5
    assert (published, published_balance) == (3, 5)
    latency = "hub_publish_latency_seconds_count"
    assert value(after, latency) - value(before, latency) >= 8
    lag = "hub_relay_lag_seconds_count"
    assert value(after, lag) > value(before, lag)
    assert value(after, "hub_outbox_backlog") == 0


def test_http_requests_are_counted_by_route_template(ops: Stack, ops_clinic: Clinic) -> None:
    appointment = ops_clinic.book()
    http = ops.http(ops_clinic.front_desk)
    for _ in range(2):
        assert http.get(f"/appointments/{appointment['id']}").status_code == 200
    assert http.get("/no/such/path/p-123").status_code == 404
    text = scrape_text(ops)
    samples = parse(text)
    templated = value(
        samples,
        "hub_http_requests_total",
        method="GET",
        route="/appointments/{appointment_id}",
        status="200",
    )
    assert templated >= 2
    assert (
        value(
            samples, "hub_http_requests_total", method="POST", route="/appointments", status="201"
        )
        >= 1
    )
    assert value(samples, "hub_http_requests_total", method="GET", route="UNMATCHED", status="404")
    assert (
        value(
            samples,
            "hub_http_request_duration_seconds_count",
            method="GET",
            route="/appointments/{appointment_id}",
        )
        >= 2
    )
    # Raw paths, tenants and names never become labels.
    assert appointment["id"] not in text
    assert "/no/such" not in text
    assert ops_clinic.tenant not in text
    assert ops_clinic.patient_id not in text
    assert "Lovelace" not in text
    assert "Ada" not in text


def test_fast_path_requests_are_counted(ops: Stack, ops_clinic: Clinic) -> None:
    service = ops.token(ops_clinic.tenant, "billing-sync", "service")
    before = scrape(ops)
    r = ops.http(service).post("/events", json=balance(ops_clinic.patient_id, 700))
    assert r.status_code == 202, r.text
    r = ops.http(ops_clinic.front_desk).post("/events", json=balance(ops_clinic.patient_id, 1))
    assert r.status_code == 403
    after = scrape(ops)
    for status in ("202", "403"):
        labels = {"method": "POST", "route": "/events", "status": status}
        assert (
            value(after, "hub_http_requests_total", **labels)
            - value(before, "hub_http_requests_total", **labels)
            == 1
        )


def test_credentials_are_counted_by_kind(ops: Stack, ops_clinic: Clinic) -> None:
    before = scrape(ops)
    creds = ops.credentials(ops_clinic.front_desk)
    ops.credentials(ops_clinic.front_desk, clientId=creds["clientId"])  # a renewal
    r = ops.http(ops_clinic.front_desk).delete(f"/realtime/credentials/{creds['clientId']}")
    assert r.status_code == 204, r.text
    after = scrape(ops)
    for action in ("issued", "renewed", "revoked"):
        labels = {"action": action, "kind": "session"}
        assert (
            value(after, "hub_credentials_total", **labels)
            - value(before, "hub_credentials_total", **labels)
            == 1
        ), action


def test_kiosk_check_ins_are_counted_by_outcome(ops: Stack, ops_clinic: Clinic) -> None:
    before = scrape(ops)
    ops_clinic.book()
    kiosk = KioskDevice.enroll(ops_clinic)
    probe = kiosk.connect()
    try:
        first = kiosk.send(probe)
        assert kiosk.answer(probe, first)["ok"] is True
        assert kiosk.ask(probe, check_in_body(last_name="Nobody"))["reason"] == "no_match"
        kiosk.send(probe, correlation=first)  # the same request again: answered, not counted
        assert kiosk.answer(probe, first)["ok"] is True
    finally:
        probe.close()
    after = scrape(ops)

    def grown(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grown("hub_kiosk_checkins_total", outcome="ok") == 1
    assert grown("hub_kiosk_checkins_total", outcome="no_match") == 1
    assert grown("hub_credentials_total", action="issued", kind="kiosk") == 1


def test_pending_and_escalated_notifications_are_gauged(ops: Stack, ops_clinic: Clinic) -> None:
    before = scrape(ops)
    biopsy = ops_clinic.biopsy()
    ops_clinic.post(ops_clinic.lab, f"/biopsies/{biopsy['id']}/result", {"diagnosis": "melanoma"})
    deadline = time.monotonic() + 15
    while True:
        after = scrape(ops)
        escalated = value(after, "hub_notifications_escalated_pending") - value(
            before, "hub_notifications_escalated_pending"
        )
        if escalated >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert escalated == 1
    # The provider's alert and the admin's escalation wait for acknowledgement.
    pending = "hub_notifications_pending"
    assert value(after, pending) - value(before, pending) >= 2


def test_broker_figures_come_from_sys_topics(ops: Stack, ops_clinic: Clinic) -> None:
    probe = ops.connected_probe(ops_clinic.front_desk)
    try:
        deadline = time.monotonic() + 25  # Mosquitto publishes $SYS every 10 s
        while True:
            samples = scrape(ops)
            connected = value(samples, "hub_broker_clients_connected")
            if connected >= 3 or time.monotonic() > deadline:  # relay, admin, responder
                break
            time.sleep(0.5)
        assert connected >= 3
        assert ("hub_broker_messages_received_per_minute", frozenset()) in samples
        assert ("hub_broker_messages_sent_per_minute", frozenset()) in samples
    finally:
        probe.close()


# --- logs ---


def request_lines(log_file: Path, request_id: str, timeout: float = 5) -> list[dict[str, Any]]:
    """The api's JSON log lines of one request (written after its answer: wait)."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for line in log_file.read_text(encoding="utf-8").splitlines():
            if request_id in line:
                found.append(json.loads(line))
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_one_json_line_per_request_without_query_token_or_body(
    ops: Stack, ops_clinic: Clinic
) -> None:
    appointment = ops_clinic.book()
    marker = f"query-{secrets.token_hex(6)}"
    token = ops_clinic.front_desk
    r = ops.http(token).get(
        f"/appointments/{appointment['id']}",
        params={"q": marker},
        headers={"X-Request-Id": "req-ops-0001"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "req-ops-0001"
    (line,) = request_lines(ops.api.log_file, "req-ops-0001")
    assert line["requestId"] == "req-ops-0001"
    assert line["tenant"] == ops_clinic.tenant
    assert line["route"] == "/appointments/{appointment_id}"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert isinstance(line["durationMs"], float | int)
    assert line["level"] == "INFO"
    text = ops.api.log_file.read_text(encoding="utf-8")
    assert marker not in text
    assert token not in text
    assert appointment["id"] not in text
    for raw in text.splitlines():
        json.loads(raw)  # every line the api writes is JSON


def test_the_fast_path_logs_too(ops: Stack, ops_clinic: Clinic) -> None:
    service = ops.token(ops_clinic.tenant, "billing-sync", "service")
    body_marker = 98_765_431
    r = ops.http(service).post(
        "/events",
        json=balance(ops_clinic.patient_id, body_marker),
        headers={"X-Request-Id": "req-ops-fast"},
    )
    assert r.status_code == 202, r.text
    assert r.headers["x-request-id"] == "req-ops-fast"
    (line,) = request_lines(ops.api.log_file, "req-ops-fast")
    assert (line["route"], line["method"], line["status"]) == ("/events", "POST", 202)
    assert line["tenant"] == ops_clinic.tenant
    assert "durationMs" in line
    text = ops.api.log_file.read_text(encoding="utf-8")
    assert str(body_marker) not in text
    assert service not in text


def test_an_unusable_request_id_is_replaced(ops: Stack) -> None:
    r = ops.http().get("/healthz", headers={"X-Request-Id": "no spaces or {braces} " + "x" * 80})
    rid = r.headers["x-request-id"]
    assert len(rid) == 32  # a generated one
    assert rid.isalnum()
    (line,) = request_lines(ops.api.log_file, rid)
    assert line["route"] == "/healthz"
    assert line["tenant"] is None
    r = ops.http().get("/healthz")
    assert len(r.headers["x-request-id"]) == 32  # generated when none was sent


def test_relay_batches_are_logged(ops: Stack, ops_clinic: Clinic) -> None:
    ops_clinic.book()
    ops.wait_published()
    deadline = time.monotonic() + 5
    while True:
        lines = [
            json.loads(raw)
            for raw in ops.api.log_file.read_text(encoding="utf-8").splitlines()
            if '"relay published a batch"' in raw
        ]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert lines
    last = lines[-1]
    assert last["logger"] == "hub.relay"
    assert last["count"] >= 1
    assert {"durationMs", "lagMs"} <= set(last)
