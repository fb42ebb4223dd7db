"""The hub's exceptions: one base, a few subclasses that carry their context."""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """Base class of every error the hub raises on purpose."""


class BrokerUnavailableError(HubError):
    """The broker could not be reached, or did not answer in time."""


class DynsecError(HubError):
    """The Dynamic Security plugin refused a command."""

    def __init__(self, command: str, error: str) -> None:
        super().__init__(f"dynamic security command {command!r} failed: {error}")
        self.command = command
        self.error = error


class EventValidationError(HubError):
    """An event's payload does not match its catalog schema."""

    def __init__(self, event_type: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"invalid payload for {event_type}: {errors}")
        self.event_type = event_type
        self.errors = errors


class UnknownEventTypeError(HubError):
    """The event type is not in the catalog."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type {event_type!r}")
        self.event_type = event_type


class TokenError(HubError):
    """A bearer token is missing, malformed, forged or expired."""


class WriterOverloadedError(HubError):
    """The event writer's queue is full: the caller should retry after a moment."""

    def __init__(self, pending: int) -> None:
        super().__init__(f"{pending} events are already waiting to be written")
        self.pending = pending


class WriterClosedError(HubError):
    """The event writer has stopped (the process is shutting down)."""


class UnknownPatientsError(HubError):
    """Events name patients that do not exist in their tenant."""

    def __init__(self, patient_ids: list[str]) -> None:
        super().__init__(f"unknown patients: {', '.join(patient_ids)}")
        self.patient_ids = patient_ids
