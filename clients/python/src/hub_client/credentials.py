"""Partner credentials: ``POST /partners/credentials`` and what its answer means."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from hub_client.backoff import parse_retry_after
from hub_client.errors import HubClientError, PartnerRefusedError


class RetryLater(Exception):
    """A transient answer (429, 5xx, network): try again after ``retry_after`` seconds
    (None: the caller's backoff decides)."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Credentials:
    """One set of broker credentials plus the replay token. The password and the access
    token are kept out of ``repr`` so they never reach a log."""

    client_id: str
    username: str
    password: str = field(repr=False)
    access_token: str = field(repr=False)
    expires_at: datetime
    mqtt_host: str
    mqtt_port: int
    tenant: str
    topic_prefix: str
    filters: tuple[str, ...]
    latest_seq: int
    partner_id: str | None = None
    # mqtts:// (TLS) rather than mqtt://.
    mqtt_tls: bool = False
    # The hub's clock when it answered (its Date header): lifetimes are measured from it,
    # so a client whose clock is off neither renews in a loop nor too late.
    server_time: datetime | None = None

    @classmethod
    def from_json(
        cls, body: Any, *, mqtt_url: str | None = None, server_time: datetime | None = None
    ) -> Credentials:
        """Validate the answer of ``POST /partners/credentials``. ``mqtt_url`` replaces
        the broker URL the hub hands out (a tunnel, a test). Raises HubClientError."""
        if not isinstance(body, dict):
            raise HubClientError("credentials: the answer is not a JSON object")
        try:
            client_id = _text(body, "clientId")
            username = _text(body, "username")
            password = _text(body, "password")
            access_token = _text(body, "accessToken")
            tenant = _text(body, "tenant")
            prefix = _text(body, "topicPrefix")
            expires_at = _instant(_text(body, "expiresAt"))
            latest = body.get("latestSeq", 0)
            if not isinstance(latest, int) or isinstance(latest, bool) or latest < 0:
                raise ValueError("latestSeq is not a non-negative integer")
            filters = body.get("filters")
            if (
                not isinstance(filters, list)
                or not filters
                or not all(isinstance(f, str) and f.startswith(prefix) for f in filters)
            ):
                raise ValueError("filters must be a non-empty list of topics under topicPrefix")
            host, port, tls = _broker(mqtt_url or _text(body, "mqttUrl"))
        except ValueError as exc:
            raise HubClientError(f"credentials: {exc}") from None
        partner = body.get("partnerId")
        return cls(
            client_id=client_id,
            username=username,
            password=password,
            access_token=access_token,
            expires_at=expires_at,
            mqtt_host=host,
            mqtt_port=port,
            tenant=tenant,
            topic_prefix=prefix,
            filters=tuple(filters),
            latest_seq=latest,
            partner_id=partner if isinstance(partner, str) else None,
            mqtt_tls=tls,
            server_time=server_time,
        )

    def lifetime(self, now: datetime | None = None) -> float:
        """Seconds until the broker closes a connection made with these credentials:
        from ``now``, else from the hub's time when it answered, else from this clock."""
        return (self.expires_at - (now or self.server_time or datetime.now(UTC))).total_seconds()

    def renew_after(self, fraction: float, now: datetime | None = None) -> float:
        """Seconds from ``now`` until renewal is due: ``fraction`` of the remaining
        lifetime, but never later than 10 s before expiry nor sooner than 1 s."""
        left = self.lifetime(now)
        return max(1.0, min(left * fraction, left - 10.0))


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is missing or not a string")
    return value


def _instant(value: str) -> datetime:
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("expiresAt has no time zone")
    return when


def _broker(url: str) -> tuple[str, int, bool]:
    """Host, port and whether to use TLS: ``mqtts://`` (port 8883 by default) or
    ``mqtt://`` (1883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not parts.hostname:
        raise ValueError(
            f"unsupported broker URL {url!r} (expected mqtts://host:port or mqtt://host:port)"
        )
    tls = parts.scheme in ("mqtts", "ssl")
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


def _server_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else None


def error_message(response: httpx.Response) -> str:
    """The hub's ``message`` from a JSON error body, else the start of the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else response.text[:200]


def is_transient(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


async def fetch_credentials(
    http: httpx.AsyncClient, api_url: str, secret: str, *, mqtt_url: str | None = None
) -> Credentials:
    """One ``POST /partners/credentials``. Raises PartnerRefusedError (401),
    RetryLater (network, 429, 5xx) or HubClientError (any other answer)."""
    try:
        r = await http.post(
            f"{api_url}/partners/credentials", headers={"Authorization": f"Bearer {secret}"}
        )
    except httpx.HTTPError as exc:
        raise RetryLater(f"cannot reach {api_url}: {exc!r}") from None
    if r.status_code == 200:
        try:
            body = r.json()
        except ValueError:
            raise HubClientError("credentials: the answer is not JSON") from None
        return Credentials.from_json(
            body, mqtt_url=mqtt_url, server_time=_server_time(r.headers.get("Date"))
        )
    if r.status_code == 401:
        raise PartnerRefusedError(
            f"the hub refused the partner secret (partner removed or secret expired): "
            f"{error_message(r)}"
        )
    if is_transient(r.status_code):
        raise RetryLater(
            f"credentials: {r.status_code} {error_message(r)}",
            retry_after=parse_retry_after(r.headers.get("Retry-After")),
        )
    raise HubClientError(f"credentials refused ({r.status_code}): {error_message(r)}")
