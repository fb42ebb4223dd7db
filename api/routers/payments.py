from __future__ import annotations

from fastapi import APIRouter

from api.deps import Cashier, CurrentUser, DbSession
from api.domain import billing as domain
from api.domain.common import get_row
from api.models import Payment
from api.routers.listing import Limit, PatientFilter, list_rows
from api.schemas import PaymentCreate, PaymentOut, PaymentReceipt

router = APIRouter(prefix="/payments", tags=["payments"])


@router.post("", status_code=201, response_model=PaymentReceipt)
def post_payment(body: PaymentCreate, user: Cashier, db: DbSession) -> PaymentReceipt:
    payment, patient = domain.post_payment(
        db,
        tenant=user.tenant,
        actor=user.sub,
        patient_id=body.patient_id,
        amount_cents=body.amount_cents,
        method=body.method,
        claim_id=body.claim_id,
        reference=body.reference,
    )
    return PaymentReceipt.model_validate(
        {**PaymentOut.model_validate(payment).model_dump(), "balance_cents": patient.balance_cents}
    )


@router.get("", response_model=list[PaymentOut])
def list_payments(
    user: CurrentUser, db: DbSession, patient_id: PatientFilter = None, limit: Limit = 100
) -> list[Payment]:
    return list_rows(db, Payment, user.tenant, limit, patient_id=patient_id)


@router.get("/{payment_id}", response_model=PaymentOut)
def get_payment(payment_id: str, user: CurrentUser, db: DbSession) -> Payment:
    return get_row(db, Payment, user.tenant, payment_id, "payment")
