"""The client's exceptions: one base, a few subclasses that carry their context."""

from __future__ import annotations


class HubClientError(Exception):
    """Base class of every error the client raises on purpose (an answer from the hub
    that it cannot work with)."""


class PartnerRefusedError(HubClientError):
    """The hub refused the partner secret (401): the partner was removed, or the secret
    was replaced and its grace period is over. Retrying with the same secret is futile."""

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


class HistoryGoneError(HubClientError):
    """``GET /events`` answered 410: events right after ``after`` were pruned. Resync
    from the EHR itself, then start again with ``after=latest_seq``."""

    def __init__(
        self, message: str, *, after: int, oldest_seq: int | None, latest_seq: int | None
    ) -> None:
        super().__init__(message)
        self.after = after
        self.oldest_seq = oldest_seq
        self.latest_seq = latest_seq
