"""A fee detail priced against the catalogue: 丙 wholly outside, the excess above a price cap outside, the 乙
self-pay share of the rest rounded to the fen."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.errors import Refused
from gateway.fees import price
from gateway.reference import parse_catalogue

CATALOGUE = parse_catalogue(
    "med_list_codg,med_list_name,med_chrgitm_type,category,chrgitm_lv,selfpay_prop,pric_uplmt_amt\n"
    "A1,甲类药,09,drug,01,,\n"
    "B1,乙类药,09,drug,02,0.15,20.00\n"
    "C1,丙类药,09,drug,03,,\n"
)


def detail(code: str, cnt: str, pric: str, total: str) -> dict:
    return {"feedetl_sn": "1", "med_list_codg": code, "cnt": cnt, "pric": pric, "det_item_fee_sumamt": total}


def test_a_class_a_item_is_wholly_in_policy():
    fee = price(detail("A1", "2", "12.50", "25.00"), CATALOGUE, "d")
    assert (fee.out_of_catalog, fee.pre_self_pay, fee.in_policy) == (0, 0, Decimal("25.00"))


def test_a_class_c_item_is_wholly_outside_the_catalogue():
    fee = price(detail("C1", "3", "10.00", "30.00"), CATALOGUE, "d")
    assert (fee.full_ownpay, fee.over_limit, fee.pre_self_pay, fee.in_policy) == (Decimal("30.00"), 0, 0, 0)


def test_above_the_price_cap_the_excess_is_outside_and_the_rest_pays_its_self_pay_share_first():
    fee = price(detail("B1", "3", "23.33", "69.99"), CATALOGUE, "d")
    assert fee.over_limit == Decimal("9.99")  # (23.33 - 20.00) × 3
    assert fee.pre_self_pay == Decimal("9.00")  # 60.00 × 0.15
    assert fee.in_policy == Decimal("51.00")
    assert fee.amount == fee.out_of_catalog + fee.pre_self_pay + fee.in_policy


def test_the_self_pay_share_is_rounded_half_up_to_the_fen():
    fee = price(detail("B1", "1", "0.30", "0.30"), CATALOGUE, "d")
    assert fee.pre_self_pay == Decimal("0.05")  # 0.045 → 0.05 (half-even would give 0.04)


@pytest.mark.parametrize(
    ("given", "reason", "field"),
    [
        (detail("X9", "1", "1.00", "1.00"), "unknown_catalogue_code", "d.med_list_codg"),
        (detail("A1", "2", "1.00", "3.00"), "invalid_input", "d.det_item_fee_sumamt"),
        (detail("A1", "0", "1.00", "0.00"), "invalid_input", "d.cnt"),
        (detail("A1", "1", "1.001", "1.001"), "invalid_input", "d.det_item_fee_sumamt"),
        (detail("A1", "1", "abc", "1.00"), "invalid_input", "d.pric"),
        ({"med_list_codg": "A1"}, "invalid_input", "d.feedetl_sn"),
    ],
)
def test_a_malformed_detail_is_refused_naming_its_field(given, reason, field):
    with pytest.raises(Refused) as refused:
        price(given, CATALOGUE, "d")
    assert refused.value.reason == reason and field in refused.value.detail
