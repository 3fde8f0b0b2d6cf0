"""What `load_book` reads off each event of a batch, asked without a model's exception for a field it lacks."""

from __future__ import annotations

from types import SimpleNamespace

from ledger.db.projection_store import account_payer
from ledger.intake import from_lines
from tests import builders as b


def _events(*events: dict):
    return [item.event for item in from_lines([b.as_line(e) for e in events], "test")]


def test_the_account_payer_is_the_one_a_visit_names_and_none_elsewhere():
    b.fresh()
    paid_by_another, own, enrolment, contribution = _events(
        b.visit("M1", b.NANJING, account=True, payer="P1"),
        b.visit("M1", b.NANJING),
        b.enrolled("M1", b.NANJING, on="2023-01-01"),
        b.contribution("M1", b.NANJING, "2023-02", "100.00"),
    )
    assert account_payer(paid_by_another) == "P1"
    assert account_payer(own) is None
    assert account_payer(enrolment) is None and account_payer(contribution) is None


def test_an_event_of_no_contract_model_is_asked_as_it_is():
    assert account_payer(SimpleNamespace(account_payer_id="P2")) == "P2"
    assert account_payer(SimpleNamespace()) is None
