"""One page of ``GET /events?after=SEQ&limit=N`` and what its answer means."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from hub_client.backoff import parse_retry_after
from hub_client.credentials import RetryLater, error_message, is_transient
from hub_client.envelope import Event, MalformedEvent, check_envelope
from hub_client.errors import HistoryGoneError, HubClientError

log = logging.getLogger("hub_client")


class TokenExpired(Exception):
    """401 from ``GET /events``: the access token expired or the partner was removed."""


@dataclass(frozen=True, slots=True)
class Page:
    events: list[Event]
    latest_seq: int


def parse_page(body: Any, *, after: int, tenant: str) -> Page:
    """Validate a page: a malformed event is an error (HubClientError); anything at or
    below ``after`` is left out; the rest is sorted by seq."""
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise HubClientError("replay: the answer has no events list")
    latest = body.get("latestSeq")
    if not isinstance(latest, int) or isinstance(latest, bool):
        raise HubClientError("replay: the answer has no integer latestSeq")
    events = []
    for raw in body["events"]:
        try:
            event = check_envelope(raw, tenant=tenant)
        except MalformedEvent as exc:
            # Not skipped: the watermark would move past an event never handled.
            raise HubClientError(f"replay: a malformed event: {exc}") from None
        if event["seq"] > after:
            events.append(event)
    events.sort(key=lambda e: int(e["seq"]))
    return Page(events, latest)


def _gone(r: httpx.Response, after: int) -> HistoryGoneError:
    oldest = latest = None
    try:
        details = r.json().get("details") or []
        first = details[0] if details else {}
        oldest = first.get("oldestSeq") if isinstance(first.get("oldestSeq"), int) else None
        latest = first.get("latestSeq") if isinstance(first.get("latestSeq"), int) else None
    except (ValueError, AttributeError, TypeError):
        pass
    return HistoryGoneError(
        f"events after seq {after} are no longer kept: {error_message(r)}",
        after=after,
        oldest_seq=oldest,
        latest_seq=latest,
    )


async def fetch_page(
    http: httpx.AsyncClient, api_url: str, token: str, *, after: int, limit: int, tenant: str
) -> Page:
    """One page after ``after``. Raises HistoryGoneError (410), TokenExpired (401),
    RetryLater (network, 429, 5xx) or HubClientError (any other answer)."""
    try:
        r = await http.get(
            f"{api_url}/events",
            params={"after": after, "limit": limit},
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.HTTPError as exc:
        raise RetryLater(f"cannot reach {api_url}: {exc!r}") from None
    if r.status_code == 200:
        try:
            body = r.json()
        except ValueError:
            raise HubClientError("replay: the answer is not JSON") from None
        return parse_page(body, after=after, tenant=tenant)
    if r.status_code == 410:
        raise _gone(r, after)
    if r.status_code == 401:
        raise TokenExpired(error_message(r))
    if is_transient(r.status_code):
        raise RetryLater(
            f"replay: {r.status_code} {error_message(r)}",
            retry_after=parse_retry_after(r.headers.get("Retry-After")),
        )
    raise HubClientError(f"replay refused ({r.status_code}): {error_message(r)}")
