"""The outbox against real databases: gapless per-tenant seqs under concurrent
writers, nothing from a rolled-back transaction, validation before writing."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hub.db import make_engine, make_sessionmaker
from hub.errors import EventValidationError
from hub.outbox import OutboxEvent, emit, fetch_unpublished, latest_seq, replay
from tests.conftest import BACKENDS, _require_backend
from tests.support.stack import Database

PAYMENT = {
    "id": "pay-1",
    "patientId": "p-1",
    "amountCents": 500,
    "method": "card",
    "balanceCents": 0,
}


@pytest.fixture(params=BACKENDS)
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    _require_backend(request.param)
    db = Database(request.param, tmp_path)
    engine = make_engine(db.url, **({} if request.param == "sqlite" else {"pool_size": 10}))
    yield make_sessionmaker(engine)
    engine.dispose()
    db.drop()


def _emit(session: Session, tenant: str = "acme", entity: str = "pay-1") -> int:
    return emit(
        session,
        tenant=tenant,
        event_type="payment:received",
        actor="u-1",
        patient_id="p-1",
        entity_id=entity,
        data={**PAYMENT, "id": entity},
    ).seq


def test_a_rolled_back_change_writes_no_event_and_gives_its_seq_back(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as s:
        assert _emit(s) == 1
        s.commit()
    with sessions() as s:
        assert _emit(s) == 2
        s.rollback()
    with sessions() as s:
        assert _emit(s) == 2
        s.commit()
        assert [e["seq"] for e in replay(s, "acme", after=0, limit=10).events] == [1, 2]
        assert latest_seq(s, "acme") == 2


def test_an_invalid_payload_writes_nothing(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, pytest.raises(EventValidationError):
        emit(
            s,
            tenant="acme",
            event_type="payment:received",
            actor="u-1",
            patient_id="p-1",
            entity_id="pay-1",
            data={**PAYMENT, "amountCents": "lots"},
        )
    with sessions() as s:
        assert s.scalars(select(OutboxEvent)).all() == []
        assert latest_seq(s, "acme") == 0


def test_seqs_are_per_tenant(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        assert [_emit(s, "acme"), _emit(s, "bcorp"), _emit(s, "acme")] == [1, 1, 2]
        s.commit()


def test_concurrent_writers_with_rollbacks_leave_no_gaps(sessions: sessionmaker[Session]) -> None:
    committed: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for i in range(15):
                with sessions() as s:
                    seq = _emit(s, entity=f"pay-{seed}-{i}")
                    if rng.random() < 0.3:
                        s.rollback()
                        continue
                    s.commit()
                    with lock:
                        committed.append(seq)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(committed) == list(range(1, len(committed) + 1))
    with sessions() as s:
        rows = fetch_unpublished(s, 1000)
        assert [r.seq for r in rows] == sorted(committed)  # pk order is seq order
        assert latest_seq(s, "acme") == len(committed)


@pytest.mark.parametrize(
    ("patient_id", "entity_id", "data", "field"),
    [
        ("p-2", "pay-1", PAYMENT, "patientId"),  # data about p-1 on p-2's topic
        ("p-1", "pay-2", PAYMENT, "id"),
    ],
)
def test_payload_must_describe_the_entity_its_topic_names(
    sessions: sessionmaker[Session], patient_id: str, entity_id: str, data: dict, field: str
) -> None:
    with sessions() as s, pytest.raises(EventValidationError) as info:
        emit(
            s,
            tenant="acme",
            event_type="payment:received",
            actor="u-1",
            patient_id=patient_id,
            entity_id=entity_id,
            data=data,
        )
    assert info.value.errors[0]["loc"] == [field]


def test_patient_events_use_the_patient_id_as_entity_id(sessions: sessionmaker[Session]) -> None:
    data = {"patientId": "p-1", "balanceCents": 0, "previousBalanceCents": 500, "reason": "payment"}
    with sessions() as s:
        with pytest.raises(EventValidationError):
            emit(
                s,
                tenant="acme",
                event_type="patient:balance_changed",
                actor="u-1",
                patient_id="p-1",
                entity_id="pay-1",
                data=data,
            )
        ok = emit(
            s,
            tenant="acme",
            event_type="patient:balance_changed",
            actor="u-1",
            patient_id="p-1",
            entity_id="p-1",
            data=data,
        )
        assert ok.topic == "tenants/acme/patients/p-1/patient/p-1/balance_changed"


def test_sqlite_reads_do_not_wait_behind_a_writer(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    writes, reads = make_sessionmaker(engine), make_sessionmaker(engine, read_only=True)
    try:
        with writes() as w:
            w.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            w.commit()
            w.execute(sa.text("INSERT INTO t VALUES (1)"))  # holds the write lock, uncommitted
            with reads() as r:
                assert r.execute(sa.text("SELECT count(*) FROM t")).scalar() == 0
            w.commit()
        with reads() as r:
            assert r.execute(sa.text("SELECT count(*) FROM t")).scalar() == 1
    finally:
        engine.dispose()
