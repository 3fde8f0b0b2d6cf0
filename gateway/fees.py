"""A fee detail (2204 `feedetail`) priced against the catalogue: what lies outside it, what the member pays first,
what is in policy. These become the contract item's `out_of_catalog_amount` and `pre_self_pay_amount`."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from .errors import Refused, bad_field
from .reference import CLASS_B, CLASS_C, CatalogueEntry
from .values import money, number, text

FEN = Decimal("0.01")
ZERO = Decimal("0.00")


def to_fen(value: Decimal) -> Decimal:
    """Rounded to the fen, half up, as the platform rounds."""
    return value.quantize(FEN, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Fee:
    """One priced fee detail."""

    feedetl_sn: str
    med_list_codg: str
    entry: CatalogueEntry
    cnt: Decimal
    pric: Decimal
    amount: Decimal  # det_item_fee_sumamt
    full_ownpay: Decimal  # fulamt_ownpay_amt: a 丙 item whole
    over_limit: Decimal  # overlmt_amt: above the price cap, outside the catalogue
    pre_self_pay: Decimal  # preselfpay_amt: the rest × the 乙 self-pay proportion
    in_policy: Decimal  # inscp_scp_amt

    @property
    def out_of_catalog(self) -> Decimal:
        """The contract's out_of_catalog_amount: whatever the catalogue does not cover."""
        return self.full_ownpay + self.over_limit

    def answer(self) -> dict:
        """The 2204 output line of this detail."""
        return {
            "feedetl_sn": self.feedetl_sn,
            "det_item_fee_sumamt": str(self.amount),
            "cnt": str(self.cnt),
            "pric": str(self.pric),
            "pric_uplmt_amt": None if self.entry.price_cap is None else str(self.entry.price_cap),
            "selfpay_prop": str(self.entry.selfpay_prop) if self.entry.item_class == CLASS_B else "0",
            "fulamt_ownpay_amt": str(self.full_ownpay),
            "overlmt_amt": str(self.over_limit),
            "preselfpay_amt": str(self.pre_self_pay),
            "inscp_scp_amt": str(self.in_policy),
            "chrgitm_lv": self.entry.item_class,
            "med_chrgitm_type": self.entry.charge_type,
        }


def price(detail: dict, catalogue: dict[str, CatalogueEntry], where: str) -> Fee:
    """`detail` priced; `Refused` naming the field when it is malformed, unknown to the catalogue, or its total is
    not its count times its price."""
    serial = text(detail, "feedetl_sn", where)
    code = text(detail, "med_list_codg", where)
    entry = catalogue.get(code)
    if entry is None:
        raise Refused("unknown_catalogue_code", f"{where}.med_list_codg: {code} is not in the catalogue")
    amount = money(detail, "det_item_fee_sumamt", where)
    cnt = number(detail, "cnt", where)
    pric = number(detail, "pric", where)
    if cnt <= 0:
        raise bad_field(f"{where}.cnt", f"{cnt} must be positive")
    if to_fen(cnt * pric) != amount:
        raise bad_field(f"{where}.det_item_fee_sumamt", f"{amount} is not cnt {cnt} × pric {pric}")
    full_ownpay = over_limit = pre_self_pay = ZERO
    if entry.item_class == CLASS_C:
        full_ownpay = amount  # 丙类: wholly outside the catalogue
    else:
        if entry.price_cap is not None and pric > entry.price_cap:
            over_limit = min(amount, to_fen((pric - entry.price_cap) * cnt))
        if entry.item_class == CLASS_B:
            pre_self_pay = to_fen((amount - over_limit) * entry.selfpay_prop)
    in_policy = amount - full_ownpay - over_limit - pre_self_pay
    return Fee(serial, code, entry, cnt, pric, amount, full_ownpay, over_limit, pre_self_pay, in_policy)
