"""The settlement engine: contract events in, settlements, movements and incentive evaluations out.

One handler per event type, each a plain function of (book, event, ledger sequence). A handler either raises
`Rejected` before changing anything, or applies its whole outcome.
"""

from __future__ import annotations

from typing import Any

from . import accounts, enrolment, settling, year_close
from .book import Book
from .parameters import ParameterSet
from .registry import PolicyRegistry
from .rejection import Rejected

HANDLERS = {
    "member.enrolled": enrolment.enrol,
    "member.retired": enrolment.retire,
    "member.insurance_type_changed": enrolment.change_insurance_type,
    "member.contribution_interrupted": enrolment.interrupt_contribution,
    "member.contribution_resumed": enrolment.resume_contribution,
    "member.terminated": enrolment.terminate,
    "member.chronic_certified": enrolment.certify_chronic,
    "member.chronic_cap_adjusted": enrolment.adjust_chronic_cap,
    "member.chronic_revoked": enrolment.revoke_chronic,
    "family.aid_authorized": enrolment.authorize_family,
    "family.aid_revoked": enrolment.revoke_family,
    "account.contribution_posted": accounts.contribution_posted,
    "account.contribution_corrected": accounts.contribution_corrected,
    "account.pension_paid": accounts.pension_paid,
    "account.payment_requested": accounts.payment_requested,
    "account.external_fund_payment": accounts.external_fund_payment,
    "visit.submitted": settling.settle_visit,
    "visit.reversed": settling.reverse_visit,
    "period.year_closed": year_close.close_year,
}


class Engine:
    def __init__(self, parameters: ParameterSet | None = None, book: Book | None = None):
        self.book = book if book is not None else Book(PolicyRegistry(parameters))

    def apply(self, event: Any, seq: int) -> list:
        """Outputs of `event`, or `Rejected`; the book changes only when the event is accepted."""
        handler = HANDLERS.get(event.event_type)
        if handler is None:
            raise Rejected("invalid_event", f"event_type {event.event_type} has no handler")
        return handler(self.book, event, seq)
