"""Weihai 371000: 威海市基本医疗保险门诊共济保障机制实施细则 (seed 001, 2022-07-01 to 2027-06-30).

Every Weihai limit caps the eligible expense above the deductible, not the fund payment (001 第十条).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from . import counters as c
from .calendar import age_bracket_reached
from .counters import period_key
from .explanations import writer
from .limits import Limits
from .member import Certification, MemberState, Status
from .money import ZERO, fen, pct, points
from .outputs import Delta
from .parameters import Table, table
from .rejection import Rejected
from .rules import Credit, Version, YearClose
from .visit import FundDecision, VisitContext, deductible_due

DOCUMENT = "001 威海市门诊共济保障机制实施细则"
ACCOUNT_ARTICLE = "001 第二十六条"
FAMILY_ARTICLE = "001 第二十六条"
REGION = "371000"
INDIVIDUAL_RATE = "individual_rate"  # 001 第二十三条: the individual pays 2% of the base into the account
CONTRIBUTION_ARTICLE = "001 第二十三条"
PURPOSES = frozenset(
    {"own_medical", "family_medical", "family_resident_premium", "ltc_premium", "supplementary_insurance"}
)  # 001 第二十六条 (supplementary = 威你保)
FAMILY_RELATIONS = frozenset({"spouse", "parent", "child"})
INSURANCE_TYPES = frozenset({"employee", "resident"})  # both schemes: their rates and limits are set apart below
FIRST_YEAR = 2022  # 001 第四十条: in force from 2022-07-01
OUT_OF_AREA_TEMPORARY = frozenset({"temporary_filed", "temporary_unfiled"})
# The hooks of policies.rules.RegionRules this region does not have.
screen_visit = None


_TCM_EMPLOYEE = writer("tcm.employee")
_TCM_RESIDENT = writer("tcm.resident")
_EXCLUSION_NOT_REGISTERED = writer("exclusion.not_registered")
_OUT_OF_AREA_FIRST_SHARE = writer("out_of_area.first_share")
_DEDUCTIBLE = writer("deductible")
_LIMIT_BASE = writer("limit.base")
_RATIO_FUND = writer("ratio.fund")
_BONUS_APPLIED = writer("bonus.applied")
_GENERAL_TIER_SEGMENT = writer("general.tier.segment")
_GENERAL_TIER = writer("general.tier")
_CHRONIC_EMPLOYEE = writer("chronic.employee")
_CHRONIC_SPECIAL = writer("chronic.special")
_CHRONIC_COMMON = writer("chronic.common")
_BONUS_RESET = writer("bonus.reset")
_BONUS_NOT_ENROLLED = writer("bonus.not_enrolled")
_BONUS_CLOSE = writer("bonus.close")


@dataclass(frozen=True)
class Params:
    general_deductible: Table = table(
        employee={"1": "300", "2": "500", "3": "700"}, resident={"1": "100", "2": "150", "3": "200"}
    )  # 001 第十一条, cumulative on one counter
    general_limit: Table = table(employee="1600", resident_tier1="200", resident_tier2="400")
    general_ratio: Table = table(
        in_service={"1": "0.70", "2": "0.60", "3": "0.50"},
        retired={"1": "0.75", "2": "0.65", "3": "0.55"},
        resident={"1": "0.50", "2": "0.40", "3": "0.30"},
    )
    tcm_resident_points: Decimal = Decimal("5")  # 001 第十八条
    employee_chronic_deductible: Decimal = Decimal("900")  # 001 第十四条
    employee_inpatient_ratio: Table = table(  # [param] employee inpatient ratios
        in_service={"1": "0.90", "2": "0.85", "3": "0.80"}, retired={"1": "0.95", "2": "0.90", "3": "0.85"}
    )
    common_chronic_deductible: Decimal = Decimal("100")
    common_chronic_ratio: Decimal = Decimal("0.60")
    common_chronic_limit: Table = table(resident_tier1="500", resident_tier2="1000")  # 001 第十五条
    special_chronic_deductible: Decimal = Decimal("300")
    resident_inpatient_ratio: Table = table(**{"1": "0.85", "2": "0.75", "3": "0.60"})  # [param]
    out_of_area_first_share: Decimal = Decimal("0.10")  # 001 第十九条
    bonus_unused_points: Decimal = Decimal("1.0")  # 001 第十二条
    bonus_light_use_points: Decimal = Decimal("0.5")
    bonus_light_use_share: Decimal = Decimal("0.50")
    bonus_max_points: Decimal = Decimal("5.0")
    individual_rate: Decimal = Decimal("0.02")  # 001 第二十三条
    employer_rate_under_46: Decimal = Decimal("0.0075")
    employer_rate_46_plus: Decimal = Decimal("0.01")
    retiree_credit_from_average: bool = False  # 001 第二十四条, from 2024-01
    retiree_average_pension: Decimal = Decimal("3500.00")  # [param] the city's 2023 average pension
    retiree_rate_under_70: Decimal = Decimal("0.02")
    retiree_rate_70_plus: Decimal = Decimal("0.025")
    retiree_monthly_credit: Decimal | None = None  # before 2024 the seed sets none: configure or reject
    limits: Limits = Limits()  # plausibility bounds (policies.limits)


_2022 = Params(general_limit=table(employee="800", resident_tier1="100", resident_tier2="200"))
_2023 = Params()
_2024 = Params(
    employer_rate_under_46=Decimal("0"), employer_rate_46_plus=Decimal("0"), retiree_credit_from_average=True
)
VERSIONS: tuple[Version, ...] = (
    ("371000-2022", date(2022, 7, 1), date(2022, 12, 31), _2022),
    ("371000-2023", date(2023, 1, 1), date(2023, 12, 31), _2023),
    ("371000-2024", date(2024, 1, 1), date(2027, 6, 30), _2024),
)


def restarts_counters(before: Status, after: Status) -> bool:
    """001 第十一条 变更参保类型: employee ↔ resident, or a resident's contribution tier (the limit differs);
    a change of person type within employee insurance keeps the counters."""
    if before.insurance_type != after.insurance_type:
        return True
    return after.insurance_type == "resident" and category(before.person_type, False) != category(
        after.person_type, False
    )


def category(person_type: str, retired: bool) -> str:
    if person_type in ("resident_tier1", "resident_minor"):
        return "resident_tier1"  # 001 第十一条: minors at the tier-1 standard
    if person_type == "resident_tier2":
        return "resident_tier2"
    return "retired" if retired else "in_service"


def _tiers(ctx: VisitContext) -> tuple[str, str, str]:
    """(deductible tier, ratio tier, note): below tier 1 counts as tier 1; TCM hospitals one tier lower
    (001 第十八条)."""
    level = max(ctx.facility.level, 1)
    if ctx.facility.kind != "tcm_hospital":
        return str(level), str(level), ""
    lower = str(max(level - 1, 1))
    if ctx.employee:
        return lower, lower, _TCM_EMPLOYEE(tier=lower)
    return lower, str(level), _TCM_RESIDENT(tier=lower)


def _excluded(ctx: VisitContext, decision: FundDecision) -> bool:
    registered = ctx.member.designated_facilities
    if registered and ctx.visit.facility_id not in registered:
        decision.no_fund(_EXCLUSION_NOT_REGISTERED())
        return True
    return False


def _capped(
    ctx: VisitContext,
    decision: FundDecision,
    article: str,
    threshold: Decimal,
    paid: Decimal,
    limit: Decimal,
    used: Decimal,
    ratio: Decimal,
) -> Decimal:
    """Deductible, out-of-area first share and limit on the eligible expense; returns the base paid at `ratio`."""
    eligible = ctx.bill.eligible
    first = ZERO
    if ctx.out_of_area in OUT_OF_AREA_TEMPORARY:
        first = fen(eligible * ctx.params.out_of_area_first_share)
        decision.lines.append(_OUT_OF_AREA_FIRST_SHARE(share=pct(ctx.params.out_of_area_first_share), first=first))
    rest = eligible - first
    deductible = deductible_due(rest, threshold, paid)
    # max() and min() as comparisons picking the same operand (visit.deductible_due)
    room = limit - used
    if not room > ZERO:
        room = ZERO
    first_counted = room if room < first else first
    above = rest - deductible
    left = room - first_counted
    base = left if left < above else above
    decision.lines.append(_DEDUCTIBLE(article=article, threshold=threshold, paid=paid, deductible=deductible))
    decision.lines.append(_LIMIT_BASE(article="001 第十条", limit=limit, used=used, base=base))
    decision.deductible, decision.over_limit = deductible, above - base
    decision.fund = fen(base * ratio)
    decision.ratio = ratio
    decision.limit_remaining = room - first_counted - base
    decision.lines.append(_RATIO_FUND(article=article, ratio=pct(ratio), base=base, fund=decision.fund))
    return first_counted + base


def settle(ctx: VisitContext) -> FundDecision:
    if ctx.certification is not None:
        return _chronic(ctx, ctx.certification)
    return _general(ctx)


def _general(ctx: VisitContext) -> FundDecision:
    p, member, decision = ctx.params, ctx.member, FundDecision()
    if _excluded(ctx, decision):
        return decision
    year = ctx.year
    segment = member.segment_on(ctx.day)
    key = period_key(year, segment)
    insurance = "employee" if ctx.employee else "resident"
    cat = category(ctx.status.person_type, ctx.retired)
    deductible_tier, ratio_tier, tcm = _tiers(ctx)
    if tcm:
        decision.lines.append(tcm)
    ratio_table = p.general_ratio["resident" if insurance == "resident" else cat]
    ratio = ratio_table[ratio_tier]
    if tcm and insurance == "resident":
        ratio += points(p.tcm_resident_points)
    bonus = member.bonus_points
    if year - 1 >= FIRST_YEAR and (REGION, year - 1) not in ctx.closed_years:
        decision.lines.append(
            f"001 第十二条: the close of {year - 1} has not run yet; the bonus as last known ({bonus} points) applies"
        )
    if bonus:
        ratio += points(bonus)
        decision.lines.append(_BONUS_APPLIED(bonus=bonus))
    limit = p.general_limit["employee" if insurance == "employee" else cat]
    decision.lines.append(
        _GENERAL_TIER_SEGMENT(category=cat.replace("_", " "), level=ctx.facility.level, segment=segment)
        if segment
        else _GENERAL_TIER(category=cat.replace("_", " "), level=ctx.facility.level)
    )
    counted = _capped(
        ctx,
        decision,
        "001 第十一条",
        p.general_deductible[insurance][deductible_tier],
        member.counter(c.DEDUCTIBLE, year, segment),
        limit,
        member.counter(c.GENERAL_BASE, year, segment),
        ratio,
    )
    decision.deltas = [
        (key, c.DEDUCTIBLE, decision.deductible),
        (key, c.GENERAL_BASE, counted),
        (str(year), c.GENERAL_FUND, decision.fund),
    ]
    if bonus and decision.fund:
        decision.deltas.append((str(year), c.BONUS_FUND_USES, Decimal(1)))
    return decision


def _chronic(ctx: VisitContext, cert: Certification) -> FundDecision:
    p, member, decision = ctx.params, ctx.member, FundDecision(pool="chronic")
    if _excluded(ctx, decision):
        return decision
    year, day = ctx.year, ctx.day
    cat = category(ctx.status.person_type, ctx.retired)
    deductible_tier, ratio_tier, tcm = _tiers(ctx)
    if tcm:
        decision.lines.append(tcm)
    tcm_points = points(p.tcm_resident_points) if tcm and not ctx.employee else ZERO
    if ctx.employee:
        ratio = p.employee_inpatient_ratio[cat][ratio_tier]
        caps = member.certified_caps_on(day)
        limit, threshold = sum(caps, ZERO), p.employee_chronic_deductible
        names = (c.CHRONIC_DEDUCTIBLE, c.CHRONIC_BASE, c.CHRONIC_FUND)
        decision.lines.append(_CHRONIC_EMPLOYEE(threshold=threshold, caps=len(caps)))
    elif cert.kind == "special":
        ratio = p.resident_inpatient_ratio[ratio_tier] + tcm_points
        caps = member.certified_caps_on(day, kind="special")
        limit, threshold = sum(caps, ZERO), p.special_chronic_deductible
        names = (c.CHRONIC_DEDUCTIBLE, c.CHRONIC_BASE, c.CHRONIC_FUND)
        decision.lines.append(_CHRONIC_SPECIAL(threshold=threshold))
    else:
        ratio = p.common_chronic_ratio + tcm_points
        limit, threshold = p.common_chronic_limit[cat], p.common_chronic_deductible
        names = (c.COMMON_CHRONIC_DEDUCTIBLE, c.COMMON_CHRONIC_BASE, c.COMMON_CHRONIC_FUND)
        decision.lines.append(_CHRONIC_COMMON(threshold=threshold, ratio=pct(p.common_chronic_ratio), limit=limit))
    deductible_name, base_name, fund_name = names
    counted = _capped(
        ctx,
        decision,
        "001 第十四条",
        threshold,
        member.counter(deductible_name, year),
        limit,
        member.counter(base_name, year),
        ratio,
    )
    key = str(year)
    decision.deltas = [
        (key, deductible_name, decision.deductible),
        (key, base_name, counted),
        (key, fund_name, decision.fund),
    ]
    return decision


def contribution_credits(member: MemberState, event: Any, month: date, params: Params) -> list[Credit]:
    status = member.status_on(month)
    if status.insurance_type != "employee" or member.is_retired_on(month):
        return []
    base = event.contribution_base
    credits = [
        Credit(
            "contribution",
            fen(base * params.individual_rate),
            (f"001 第二十三条: the individual {pct(params.individual_rate)} of the base {base}",),
        )
    ]
    if status.person_type == "in_service":
        older = age_bracket_reached(member.birth_date, 46, month)
        rate = params.employer_rate_46_plus if older else params.employer_rate_under_46
        if rate:
            credits.append(
                Credit(
                    "employer_part",
                    fen(base * rate),
                    (
                        f"001 第二十三条: employer part {pct(rate)} of the base {base} "
                        f"({'46 and over' if older else 'under 46'})",
                    ),
                )
            )
    return credits


def pension_credits(member: MemberState, event: Any, month: date, params: Params) -> list[Credit]:
    if not member.is_retired_on(month):
        return []  # 001 第二十四条: retiree standard from the month after retirement is confirmed
    if params.retiree_credit_from_average:
        older = age_bracket_reached(member.birth_date, 70, month)
        rate = params.retiree_rate_70_plus if older else params.retiree_rate_under_70
        amount = fen(params.retiree_average_pension * rate)
        line = (
            f"001 第二十四条: retiree credit {pct(rate)} of the 2023 average pension "
            f"{params.retiree_average_pension} ({'70 and over' if older else 'under 70'})"
        )
        return [Credit("retiree_credit", amount, (line,))]
    if params.retiree_monthly_credit is not None:
        return [
            Credit(
                "retiree_credit",
                params.retiree_monthly_credit,
                ("001 第二十四条: retiree credit before 2024 as configured (parameter retiree_monthly_credit)",),
            )
        ]
    raise Rejected(
        "policy_not_configured",
        "001 第二十四条 sets the retiree account credit from 2024-01; no credit is configured for "
        f"{month:%Y-%m} (parameter retiree_monthly_credit)",
    )


def on_interruption(member: MemberState, day: date) -> list[Delta]:
    """001 第十二条: an interruption while holding a bonus resets it at the year's close."""
    if member.bonus_points > 0:
        return [(str(day.year), c.INTERRUPTED_WITH_BONUS, Decimal(1))]
    return []


def close_year(member: MemberState, year: int, params: Params) -> YearClose:
    before = member.bonus_points
    used_with_bonus = member.year_total(c.BONUS_FUND_USES, year) > 0
    interrupted = member.year_total(c.INTERRUPTED_WITH_BONUS, year) > 0
    if used_with_bonus or interrupted:
        why = "a general outpatient fund payment with the bonus" if used_with_bonus else "an interruption"
        return YearClose(
            "weihai_ratio_bonus",
            before,
            Decimal("0.0"),
            (_BONUS_RESET(why=why, year=year),),
        )
    if not member.enrolled_whole_year(year):
        return YearClose("weihai_ratio_bonus", before, before, (_BONUS_NOT_ENROLLED(year=year),))
    fund = member.year_total(c.GENERAL_FUND, year)
    base = member.year_total(c.GENERAL_BASE, year)
    december = date(year, 12, 31)
    status = member.status_on(december)
    cat = category(status.person_type, member.is_retired_on(december))
    limit = params.general_limit["employee" if status.insurance_type == "employee" else cat]
    if fund == 0:
        earned, why = params.bonus_unused_points, "no general outpatient fund payment"
    elif base <= limit * params.bonus_light_use_share:
        earned, why = (
            params.bonus_light_use_points,
            f"base used {base} ≤ {pct(params.bonus_light_use_share)} of {limit}",
        )
    else:
        earned, why = Decimal("0.0"), f"base used {base} above {pct(params.bonus_light_use_share)} of {limit}"
    after = min(before + earned, params.bonus_max_points)
    return YearClose(
        "weihai_ratio_bonus",
        before,
        after,
        (_BONUS_CLOSE(year=year, why=why, earned=earned, after=after, most=params.bonus_max_points),),
    )


def apply_year_close(member: MemberState, result: YearClose) -> None:
    member.bonus_points = Decimal(result.after)


def pool_limit(member: MemberState, day: date, params: Params) -> Decimal:
    """001 第十五条: the chronic pool is the sum of the certified caps (a resident's special ones)."""
    employee = member.status_on(day).insurance_type == "employee"
    return sum(member.certified_caps_on(day, kind=None if employee else "special"), ZERO)


def limits_remaining(member: MemberState, day: date, params: Params) -> dict[str, Decimal]:
    year, status = day.year, member.status_on(day)
    cat = category(status.person_type, member.is_retired_on(day))
    employee = status.insurance_type == "employee"
    general_limit = params.general_limit["employee" if employee else cat]
    result = {
        "general outpatient limit on eligible expense (001 第十一条)": max(
            ZERO, general_limit - member.counter(c.GENERAL_BASE, year, member.segment_on(day))
        ),
        ("chronic pool (001 第十五条)" if employee else "special chronic pool (001 第十五条)"): max(
            ZERO, pool_limit(member, day, params) - member.counter(c.CHRONIC_BASE, year)
        ),
    }
    if not employee:
        result["common chronic limit (001 第十五条)"] = max(
            ZERO, params.common_chronic_limit[cat] - member.counter(c.COMMON_CHRONIC_BASE, year)
        )
    return result
