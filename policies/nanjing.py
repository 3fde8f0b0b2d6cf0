"""Nanjing 320100: 南京市职工基本医疗保险门诊共济保障机制实施办法 (seed 002, 2023-01-01 to 2027-12-31)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from . import configured
from . import counters as c
from .calendar import age_bracket_reached
from .explanations import writer
from .limits import Limits
from .member import MemberState
from .money import ZERO, fen, pct, ratio4
from .parameters import Table, table
from .rejection import Rejected
from .rules import Credit, Version, YearClose
from .visit import FundDecision, VisitContext

DOCUMENT = "002 宁政规字〔2022〕5号"
ACCOUNT_ARTICLE = "002 第八条"
FAMILY_ARTICLE = "002 第八条(八)"
REGION = "320100"
INDIVIDUAL_RATE = "account_rate"  # 002 第五条: the individual pays 2% of the base into the account
CONTRIBUTION_ARTICLE = "002 第五条"
INSURANCE_TYPES = frozenset({"employee"})  # 002 第三条: employees only
PURPOSES = frozenset(
    {
        "own_medical",
        "family_medical",
        "family_resident_premium",
        "ltc_premium",
        "supplementary_insurance",
        "health_checkup",
        "vaccine",
        "family_doctor_fee",
    }
)  # 002 第八条
FAMILY_RELATIONS = frozenset({"spouse", "parent", "child"})
# The hooks of policies.rules.RegionRules this region does not have.
restarts_counters = on_interruption = None


_BANDS_COMMUNITY = writer("bands.community")
_BANDS_OTHER = writer("bands.other")
_BANDS_ABOVE = writer("bands.above")
_BANDS_BAND = writer("bands.band")
_BANDS_FEES = writer("bands.fees")
_STREAK_NOT_ENROLLED = writer("streak.not_enrolled")
_STREAK_ENDS = writer("streak.ends")
_STREAK_CREDIT = writer("streak.credit")


@dataclass(frozen=True)
class Params:
    band_bounds: tuple = (Decimal("1000"), Decimal("5000"), Decimal("15000"))  # 002 第十四条
    band_ratios: Table = table(
        in_service={"community": ["0.50", "0.70", "0.75"], "other": ["0.40", "0.60", "0.65"]},
        retired={"community": ["0.55", "0.80", "0.85"], "other": ["0.45", "0.70", "0.75"]},
        retired_70={"community": ["0.60", "0.85", "0.90"], "other": ["0.50", "0.75", "0.80"]},
        veteran={"community": ["1.00", "1.00", "1.00"], "other": ["0.95", "0.95", "0.95"]},
    )
    account_rate: Decimal = Decimal("0.02")  # 002 第五条
    new_retiree_rate: Decimal = Decimal("0.054")  # 2023 new retirees, of the retirement month's pension
    retiree_pension_rate: Decimal | None = None  # from 2024-01: 2.5% of the current pension
    incentive_first: Decimal = Decimal("200")  # 002 第七条
    incentive_step: Decimal = Decimal("100")
    incentive_max: Decimal = Decimal("500")
    chronic: configured.ChronicTable | None = field(
        default=None, metadata={"build": configured.build_chronic}
    )  # 002 第十六条: 另行制定
    limits: Limits = Limits()  # plausibility bounds (policies.limits)


VERSIONS: tuple[Version, ...] = (
    ("320100-2023", date(2023, 1, 1), date(2023, 12, 31), Params()),
    ("320100-2024", date(2024, 1, 1), date(2027, 12, 31), Params(retiree_pension_rate=Decimal("0.025"))),
)


def category(member: MemberState, person_type: str, retired: bool, day: date) -> str:
    if person_type == "veteran_pre1949":
        return "veteran"
    if not retired:
        return "in_service"
    return "retired_70" if age_bracket_reached(member.birth_date, 70, day) else "retired"  # 002 第十八条


def screen_visit(visit: Any, params: Params) -> None:
    """policy notes §3: without a configured special-disease table, every Nanjing chronic visit is refused."""
    if visit.visit_kind == "chronic" and params.chronic is None:
        raise Rejected(
            "policy_not_configured",
            "002 第十六条 leaves the special-disease (门诊特殊病) policy to a later document; no parameter set "
            f"configures chronic visits (disease {visit.disease_code})",
        )


def settle(ctx: VisitContext) -> FundDecision:
    if ctx.certification is not None:
        return configured.settle_chronic(ctx, ctx.params.chronic, "002 第十六条")
    return _general(ctx)


def band_split(position: Decimal, amount: Decimal, bounds: Sequence[Decimal]) -> list[tuple[int, Decimal]]:
    """(band index, amount) pieces of `amount` placed from `position` on; index len(bounds) is above the top."""
    pieces, start, end, lower = [], position, position + amount, ZERO
    for index, upper in enumerate((*bounds, None)):
        # min() and max() as comparisons picking the same operand (visit.deductible_due)
        top = upper if upper is not None and upper < end else end
        bottom = lower if lower > start else start
        if top > bottom:
            pieces.append((index, top - bottom))
        if upper is not None:
            lower = upper
    return pieces


def _general(ctx: VisitContext) -> FundDecision:
    p, member, decision, year = ctx.params, ctx.member, FundDecision(), ctx.year
    cat = category(member, ctx.status.person_type, ctx.retired, ctx.day)
    setting = "community" if ctx.facility.community else "other"
    ratios = p.band_ratios[cat][setting]
    fee = ctx.bill.fee_eligible
    banded = ctx.bill.eligible - fee
    position = member.counter(c.BAND_POSITION, year)
    exact, over = ZERO, ZERO
    applied = set()
    bands = _BANDS_COMMUNITY if setting == "community" else _BANDS_OTHER
    decision.lines.append(bands(category=cat.replace("_", " "), position=position))
    for index, piece in band_split(position, banded, p.band_bounds):
        if index == len(p.band_bounds):
            over += piece
            decision.lines.append(_BANDS_ABOVE(piece=piece, bound=p.band_bounds[-1]))
            continue
        ratio = ratios[index]
        applied.add(ratio)
        share = piece * ratio
        exact += share
        decision.lines.append(_BANDS_BAND(band=index + 1, piece=piece, ratio=pct(ratio), fund=share))
    fee_exact = fee * ratios[0]
    if fee:
        applied.add(ratios[0])
        decision.lines.append(_BANDS_FEES(fee=fee, ratio=pct(ratios[0])))
    fund = fen(exact + fee_exact)
    fee_fund = fen(fee_exact)
    decision.fund, decision.over_limit = fund, over
    if len(applied) == 1:
        decision.ratio = applied.pop()
    elif ctx.bill.eligible:
        decision.ratio = ratio4(fund / ctx.bill.eligible)
    decision.limit_remaining = max(ZERO, p.band_bounds[-1] - position - banded)
    decision.deltas = [
        (str(year), c.BAND_POSITION, banded),
        (str(year), c.GENERAL_FUND, fund),
        (str(year), c.FEE_LINE_FUND, fee_fund),
    ]
    return decision


def contribution_credits(member: MemberState, event: Any, month: date, params: Params) -> list[Credit]:
    status = member.status_on(month)
    if status.insurance_type != "employee" or status.person_type in ("retired", "veteran_pre1949"):
        return []
    amount = fen(event.contribution_base * params.account_rate)
    return [
        Credit(
            "contribution", amount, (f"002 第五条: {pct(params.account_rate)} of the base {event.contribution_base}",)
        )
    ]


def _fixed(member: MemberState, month: date, why: str) -> Credit:
    if member.legacy_monthly_credit is None:
        raise Rejected(
            "policy_not_configured",
            f"002 第五条: {why} needs the December-2022 monthly amount (legacy_monthly_credit), absent on enrolment",
        )
    return Credit(
        "retiree_credit",
        member.legacy_monthly_credit,
        (f"002 第五条: {why}: the December-2022 monthly amount {member.legacy_monthly_credit}",),
    )


def pension_credits(member: MemberState, event: Any, month: date, params: Params) -> list[Credit]:
    status = member.status_on(month)
    if status.person_type == "veteran_pre1949":
        return [_fixed(member, month, "a pre-1949 veteran keeps a fixed credit")]
    if status.person_type != "retired":
        return []  # 002 第六条: the retiree method starts the month after retirement
    if params.retiree_pension_rate is not None:
        rate = params.retiree_pension_rate
        return [
            Credit(
                "retiree_credit",
                fen(event.monthly_pension * rate),
                (f"002 第五条: from 2024 {pct(rate)} of the monthly pension {event.monthly_pension}",),
            )
        ]
    retired_on = member.retired_on
    if retired_on is not None and retired_on.year == month.year and member.retirement_pension is not None:
        amount = fen(member.retirement_pension * params.new_retiree_rate)
        return [
            Credit(
                "retiree_credit",
                amount,
                (
                    f"002 第五条: retired in {retired_on.year}: {pct(params.new_retiree_rate)} of the retirement "
                    f"month's pension {member.retirement_pension}, fixed for the year",
                ),
            )
        ]
    return [_fixed(member, month, "a retiree's 2023 credit")]


def incentive_fund(member: MemberState, year: int) -> Decimal:
    """002 第七条: pooled-fund payments of the year, net of reversals, without the 第十五条 fee lines."""
    return (
        member.year_total(c.GENERAL_FUND, year)
        - member.year_total(c.FEE_LINE_FUND, year)
        + member.year_total(c.CHRONIC_FUND, year)
        + member.year_total(c.EXTERNAL_FUND, year)
    )


def close_year(member: MemberState, year: int, params: Params) -> YearClose:
    before = member.health_streak
    if not member.enrolled_whole_year(year):
        return YearClose("nanjing_health_streak", before, 0, (_STREAK_NOT_ENROLLED(year=year),))
    paid = incentive_fund(member, year)
    if paid > 0:
        return YearClose(
            "nanjing_health_streak",
            before,
            0,
            (_STREAK_ENDS(paid=paid, year=year),),
        )
    streak = before + 1
    amount = min(params.incentive_max, params.incentive_first + params.incentive_step * (streak - 1))
    line = _STREAK_CREDIT(year=year, streak=streak, amount=amount)
    return YearClose("nanjing_health_streak", before, streak, (line,), Credit("health_incentive", fen(amount), (line,)))


def apply_year_close(member: MemberState, result: YearClose) -> None:
    member.health_streak = int(result.after)


def pool_limit(member: MemberState, day: date, params: Params) -> Decimal | None:
    return sum(member.certified_caps_on(day), ZERO) if params.chronic is not None else None


def limits_remaining(member: MemberState, day: date, params: Params) -> dict[str, Decimal]:
    year = day.year
    result = {
        "band room below 15000 (002 第十四条)": max(
            ZERO, params.band_bounds[-1] - member.counter(c.BAND_POSITION, year)
        )
    }
    pool = pool_limit(member, day, params)
    if pool is not None:
        result["special-disease pool (configured)"] = max(ZERO, pool - member.counter(c.CHRONIC_FUND, year))
    return result
