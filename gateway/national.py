"""medledger's settlement record (`ledger.records.SettlementRecord`, with its national aliases) as the platform's
2207 answer: `setlinfo` and one `setldetail` line for the pooled fund."""

from __future__ import annotations

from decimal import Decimal

from .receipt import in_chinese

SETLINFO = (
    "setl_id",
    "mdtrt_id",
    "psn_no",
    "insutype",
    "psn_type",
    "med_type",
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "act_pay_dedc",
    "hifp_pay",
    "pool_prop_selfpay",
    "psn_part_amt",
    "acct_pay",
    "psn_cash_pay",
    "acct_mulaid_pay",
    "balc",
)
# The only fund an outpatient settlement draws on is the pooled fund (统筹基金): it is the whole fund payment.
FUND_TYPE_NAMES = {"310100": "职工基本医疗保险统筹基金", "390100": "城乡居民基本医疗保险基金"}


def setl_time(record: dict) -> str:
    """The settlement's business date (the ledger settles a visit as of its date), at the platform's format."""
    return f"{record['visit_date']} 00:00:00"


def settlement_answer(record: dict, settled: bool = True) -> dict:
    """`record` (a settlement or reversal as the ledger publishes it) as `setlinfo` and `setldetail`. A
    pre-settlement (`settled` False) has no setl_id yet."""
    info = {name: record[name] for name in SETLINFO}
    info["fund_pay_sumamt"] = record["hifp_pay"]
    info["setl_time"] = setl_time(record)
    info["clr_type"] = record["med_type"]
    info["policy_id"] = record["policy_id"]  # medledger's extension: the policy version that settled it
    info["acct_payer_psn_no"] = record["payer_id"]  # medledger's extension: whose account paid
    if record.get("reverses"):
        info["reverses_setl_id"] = record["reverses"]
    if not settled:
        info["setl_id"] = None
    detail = {
        "fund_pay_type": record["fund_pay_type"],
        "fund_pay_type_name": FUND_TYPE_NAMES.get(record["fund_pay_type"], ""),
        "inscp_scp_amt": record["inscp_scp_amt"],
        "crt_payb_lmt_amt": record["crt_payb_lmt_amt"],
        "fund_payamt": record["hifp_pay"],
        "setl_proc_info": "\n".join(in_chinese(record["explanation"])),
    }
    return {"setlinfo": info, "setldetail": [detail]}


def sum_money(records: list[dict], name: str) -> Decimal:
    return sum((Decimal(record[name]) for record in records), Decimal("0.00"))
