"""Reading the hub's answers: credentials, envelopes, replay pages and their errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from hub_client import Credentials, HistoryGoneError, HubClientError, PartnerRefusedError
from hub_client.credentials import RetryLater, fetch_credentials
from hub_client.envelope import MalformedEvent, parse_payload
from hub_client.replay import TokenExpired, fetch_page, parse_page

API = "http://127.0.0.1:8000"


def answer(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "clientId": "acme.partner.lab-1",
        "username": "partner:acme.partner.lab-1",
        "password": "eyJ.secret.jwt",
        "expiresAt": "2026-12-02T15:14:03Z",
        "websocketUrl": "ws://127.0.0.1:9001/mqtt",
        "mqttUrl": "mqtt://127.0.0.1:1883",
        "topicPrefix": "tenants/acme/",
        "latestSeq": 1042,
        "tenant": "acme",
        "partnerId": "lab-1",
        "filters": ["tenants/acme/patients/+/claim/+/+", "tenants/acme/patients/+/biopsy/+/+"],
        "accessToken": "eyJ.access.jwt",
    }
    body.update(changes)
    return body


def test_credentials_are_read_from_the_answer() -> None:
    creds = Credentials.from_json(answer())
    assert creds.client_id == "acme.partner.lab-1"
    assert (creds.mqtt_host, creds.mqtt_port) == ("127.0.0.1", 1883)
    assert creds.tenant == "acme"
    assert creds.filters == (
        "tenants/acme/patients/+/claim/+/+",
        "tenants/acme/patients/+/biopsy/+/+",
    )
    assert creds.expires_at == datetime(2026, 12, 2, 15, 14, 3, tzinfo=UTC)
    assert creds.latest_seq == 1042
    assert creds.partner_id == "lab-1"


def test_secrets_stay_out_of_repr() -> None:
    text = repr(Credentials.from_json(answer()))
    assert "eyJ" not in text
    assert "acme.partner.lab-1" in text


def test_a_broker_url_override_wins() -> None:
    creds = Credentials.from_json(answer(), mqtt_url="mqtt://localhost:11883")
    assert (creds.mqtt_host, creds.mqtt_port) == ("localhost", 11883)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"password": None}, "password"),
        ({"accessToken": ""}, "accessToken"),
        ({"expiresAt": "tomorrow"}, "Invalid isoformat"),
        ({"expiresAt": "2026-12-02T15:14:03"}, "time zone"),
        ({"filters": []}, "filters"),
        ({"filters": ["tenants/other/patients/#"]}, "filters"),
        ({"mqttUrl": "ws://127.0.0.1:9001"}, "broker URL"),
        ({"latestSeq": -1}, "latestSeq"),
    ],
)
def test_unusable_credentials_are_refused(changes: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HubClientError, match=complaint):
        Credentials.from_json(answer(**changes))


def test_renewal_is_due_at_the_fraction_and_well_before_expiry() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    hour = Credentials.from_json(answer(expiresAt=(now + timedelta(hours=1)).isoformat()))
    assert hour.renew_after(0.75, now) == pytest.approx(2700)
    short = Credentials.from_json(answer(expiresAt=(now + timedelta(seconds=20)).isoformat()))
    assert short.renew_after(0.75, now) == pytest.approx(10)
    gone = Credentials.from_json(answer(expiresAt=(now - timedelta(seconds=5)).isoformat()))
    assert gone.renew_after(0.75, now) == 1.0


def respond(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


async def call_credentials(response: httpx.Response) -> Credentials:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer s3cret"
        assert request.url.path == "/partners/credentials"
        return response

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        return await fetch_credentials(http, API, "s3cret")


async def test_a_refused_secret_is_final() -> None:
    with pytest.raises(PartnerRefusedError, match="partner removed") as info:
        await call_credentials(respond(401, {"error": "unauthorized", "message": "unknown"}))
    assert info.value.status == 401


@pytest.mark.parametrize(("status", "wait"), [(429, 7.0), (503, 2.0), (502, None)])
async def test_busy_answers_say_when_to_come_back(status: int, wait: float | None) -> None:
    headers = {"Retry-After": str(int(wait))} if wait else None
    with pytest.raises(RetryLater) as info:
        await call_credentials(respond(status, {"message": "busy"}, headers))
    assert info.value.retry_after == wait


async def test_another_refusal_is_an_error_not_a_retry() -> None:
    with pytest.raises(HubClientError, match="404"):
        await call_credentials(respond(404, {"message": "no such route"}))


async def test_an_unreachable_api_is_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(RetryLater, match="cannot reach"):
            await fetch_credentials(http, API, "s3cret")


def event(n: int, **changes: Any) -> dict[str, Any]:
    body = {"id": f"e-{n}", "seq": n, "type": "claim:paid", "tenant": "acme", "data": {}}
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps(event(1, seq=None)).encode(), "seq"),
        (json.dumps(event(1, seq="4")).encode(), "seq"),
        (json.dumps(event(1, seq=True)).encode(), "seq"),
        (json.dumps(event(1, id=7)).encode(), "no id"),
        (json.dumps(event(1, type=None)).encode(), "no type"),
        (json.dumps(event(1, tenant="other")).encode(), "tenant"),
    ],
)
def test_malformed_payloads_are_refused(payload: bytes, complaint: str) -> None:
    with pytest.raises(MalformedEvent, match=complaint):
        parse_payload(payload, tenant="acme")


def test_a_good_payload_is_the_envelope() -> None:
    assert parse_payload(json.dumps(event(3)).encode(), tenant="acme") == event(3)


def test_a_page_keeps_events_after_the_cursor_in_seq_order() -> None:
    body = {"events": [event(9), event(4), event(2), event(12)], "latestSeq": 15}
    page = parse_page(body, after=3, tenant="acme")
    assert [e["seq"] for e in page.events] == [4, 9, 12]
    assert page.latest_seq == 15


def test_a_malformed_replayed_event_stops_the_replay_instead_of_being_skipped() -> None:
    # Skipped, it would let the watermark move past an event never handled.
    body = {"events": [event(4), {"junk": 1}, event(9)], "latestSeq": 15}
    with pytest.raises(HubClientError, match="malformed"):
        parse_page(body, after=3, tenant="acme")


def test_mqtts_urls_mean_tls_and_the_lifetime_counts_from_the_hubs_clock() -> None:
    hub_now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    creds = Credentials.from_json(
        {**answer(), "expiresAt": "2026-12-02T13:00:00Z", "mqttUrl": "mqtts://hub.example"},
        server_time=hub_now,
    )
    assert (creds.mqtt_host, creds.mqtt_port, creds.mqtt_tls) == ("hub.example", 8883, True)
    # However far off this machine's clock is, renewal is due after 3/4 of the hour.
    assert creds.lifetime() == 3600
    assert creds.renew_after(0.75) == 2700
    plain = Credentials.from_json(answer())
    assert (plain.mqtt_port, plain.mqtt_tls) == (1883, False)
    with pytest.raises(HubClientError, match="unsupported broker URL"):
        Credentials.from_json({**answer(), "mqttUrl": "ws://hub.example/mqtt"})


async def call_page(response: httpx.Response, after: int = 40) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer tok"
        assert request.url.params["after"] == str(after)
        assert request.url.params["limit"] == "500"
        return response

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        return await fetch_page(http, API, "tok", after=after, limit=500, tenant="acme")


async def test_a_pruned_gap_is_history_gone_with_its_bounds() -> None:
    body = {"error": "gone", "message": "pruned", "details": [{"oldestSeq": 90, "latestSeq": 120}]}
    with pytest.raises(HistoryGoneError) as info:
        await call_page(respond(410, body))
    assert (info.value.after, info.value.oldest_seq, info.value.latest_seq) == (40, 90, 120)


async def test_history_gone_without_details_still_says_what_was_asked() -> None:
    with pytest.raises(HistoryGoneError) as info:
        await call_page(respond(410, {"error": "gone", "message": "pruned"}))
    assert (info.value.after, info.value.oldest_seq, info.value.latest_seq) == (40, None, None)


async def test_an_expired_access_token_asks_for_renewal() -> None:
    with pytest.raises(TokenExpired):
        await call_page(respond(401, {"message": "expired"}))


async def test_a_busy_replay_is_retried_after_its_retry_after() -> None:
    with pytest.raises(RetryLater) as info:
        await call_page(respond(503, {"message": "overloaded"}, {"Retry-After": "1"}))
    assert info.value.retry_after == 1.0
