"""Pure rules of critical alerts: what is critical, and when an alert is due again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.domain.biopsies import is_critical
from api.domain.notifications import AlertPolicy
from api.settings import DEFAULT_CRITICAL_DIAGNOSES, Settings

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("diagnosis", "concerning", "critical"),
    [
        ("Malignant melanoma in situ", None, True),
        ("MALIGNANT   MELANOMA, nodular", None, True),
        ("Invasive squamous cell carcinoma, well differentiated", False, True),
        ("Basal cell carcinoma, infiltrative", None, True),
        ("Dysplastic nevus with severe atypia", None, True),
        ("Compound nevus, severely atypical", None, True),
        ("Seborrheic keratosis", None, False),
        ("Dysplastic nevus with mild atypia", None, False),
        ("Atypical fibroxanthoma", True, True),  # the lab flagged it
        ("Dermatofibroma", False, False),
    ],
)
def test_what_is_critical(diagnosis: str, concerning: bool | None, critical: bool) -> None:
    terms = Settings().critical_diagnoses
    assert is_critical(diagnosis, concerning, terms) is critical


def test_the_list_is_configuration() -> None:
    settings = Settings(critical_diagnoses="Merkel cell carcinoma, ANGIOSARCOMA")  # type: ignore[arg-type]
    assert settings.critical_diagnoses == ["merkel cell carcinoma", "angiosarcoma"]
    assert is_critical("Merkel  cell carcinoma", None, settings.critical_diagnoses)
    assert not is_critical("Malignant melanoma", None, settings.critical_diagnoses)
    assert set(Settings().critical_diagnoses) == set(DEFAULT_CRITICAL_DIAGNOSES)


def test_resends_then_escalates() -> None:
    policy = AlertPolicy(resend_after=5 * MIN, max_resends=2, escalate_after=15 * MIN)
    escalate_at = T0 + 15 * MIN
    assert policy.first_action(T0, escalate_at) == T0 + 5 * MIN
    assert policy.after_send(T0 + 5 * MIN, 2, escalate_at) == T0 + 10 * MIN
    # Two re-sends done: the next step is the escalation.
    assert policy.after_send(T0 + 10 * MIN, 3, escalate_at) == escalate_at


def test_a_resend_never_passes_the_escalation() -> None:
    policy = AlertPolicy(resend_after=10 * MIN, max_resends=5, escalate_after=15 * MIN)
    assert policy.after_send(T0 + 10 * MIN, 2, T0 + 15 * MIN) == T0 + 15 * MIN


def test_without_escalation_resends_stop() -> None:
    policy = AlertPolicy(resend_after=5 * MIN, max_resends=1, escalate_after=15 * MIN)
    assert policy.first_action(T0, None) == T0 + 5 * MIN
    assert policy.after_send(T0 + 5 * MIN, 2, None) is None
    assert AlertPolicy(5 * MIN, 0, 15 * MIN).first_action(T0, None) is None
