"""Ningxia 640000: 宁医保规发〔2023〕3号 (seed 000, from 2023-06-01) with 宁医保发〔2023〕103号 (seed 003)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from . import counters as c
from .explanations import explain, writer
from .limits import Limits
from .member import Certification, MemberState
from .money import ZERO, fen, pct
from .parameters import Table, table
from .rules import Credit, Version
from .visit import FundDecision, VisitContext, pay_under_fund_cap

DOCUMENT = "000 宁医保规发〔2023〕3号, 003 宁医保发〔2023〕103号"
ACCOUNT_ARTICLE = "000 第八条"
FAMILY_ARTICLE = "000 第七条"
REGION = "640000"
INDIVIDUAL_RATE = "account_rate"  # 000 第六条: the individual pays 2% of the base into the account
CONTRIBUTION_ARTICLE = "000 第六条"
INSURANCE_TYPES = frozenset({"employee"})  # 000 第一条: the employee scheme
PURPOSES = frozenset({"own_medical", "family_medical", "family_resident_premium", "ltc_premium"})  # 000 第八条
FAMILY_RELATIONS = frozenset({"spouse", "parent", "child", "spouse_parent"})  # 000 第七条
OUT_OF_AREA_TEMPORARY = frozenset({"temporary_filed", "temporary_unfiled"})
# The hooks of policies.rules.RegionRules this region does not have.
screen_visit = restarts_counters = on_interruption = close_year = apply_year_close = None


_EXCLUSION_VILLAGE_CLINIC = writer("exclusion.village_clinic")
_EXCLUSION_TEMPORARY_OUT_OF_AREA = writer("exclusion.temporary_out_of_area")
_INTERNET_HOSPITAL = writer("internet_hospital")
_DEDUCTIBLE_TIER = writer("deductible.tier")
_RATIO_TIER = writer("ratio.tier")
_CAP_FUND = writer("cap.fund")
_CHRONIC_REMOTE_PILOT = writer("chronic.remote_pilot")
_CHRONIC_SHARED_DEDUCTIBLE = writer("chronic.shared_deductible")
_CHRONIC_RATIO = writer("chronic.ratio")
_CHRONIC_POOL = writer("chronic.pool")
_CHRONIC_POOL_EXHAUSTED = writer("chronic.pool_exhausted")


@dataclass(frozen=True)
class Params:
    general_deductible: Table = table(**{"1": "0", "2": "100", "3": "300"})  # 000 第十一条
    general_ratio: Table = table(
        in_service={"3A": "0.60", "3B": "0.65", "2": "0.70", "1": "0.75"},
        retired={"3A": "0.65", "3B": "0.70", "2": "0.75", "1": "0.80"},
    )
    general_cap: Table = table(in_service="4000", retired="4500")
    chronic_deductible: Decimal = Decimal("500")  # 000 第十七条, merged with the general counter
    chronic_ratio: Decimal = Decimal("0.75")
    chronic_full_caps: int = 2  # 000 第十九条: the two highest caps count in full
    chronic_later_share: Decimal = Decimal("0.80")
    account_rate: Decimal = Decimal("0.02")  # 000 第六条
    retiree_rate: Decimal = Decimal("0.028")
    retiree_average_pension: Decimal = Decimal("3000.00")  # [param] 2023 regional average basic pension
    two_diseases: tuple = ("I10", "I11", "I12", "I13", "I14", "I15", "E10", "E11", "E12", "E13", "E14")
    limits: Limits = Limits()  # plausibility bounds (policies.limits)


VERSIONS: tuple[Version, ...] = (("640000-2023", date(2023, 6, 1), None, Params()),)


def settle(ctx: VisitContext) -> FundDecision:
    if ctx.certification is not None:
        return _chronic(ctx, ctx.certification)
    return _general(ctx)


def _category(ctx: VisitContext) -> str:
    return "retired" if ctx.retired else "in_service"


def _general(ctx: VisitContext) -> FundDecision:
    p, facility, decision = ctx.params, ctx.facility, FundDecision()
    if facility.level == 0:
        return decision.no_fund(_EXCLUSION_VILLAGE_CLINIC())
    if ctx.out_of_area in OUT_OF_AREA_TEMPORARY:
        return decision.no_fund(_EXCLUSION_TEMPORARY_OUT_OF_AREA())
    if facility.kind == "internet_hospital":
        decision.lines.append(_INTERNET_HOSPITAL())
    year, eligible = ctx.year, ctx.bill.eligible
    threshold = p.general_deductible[str(facility.level)]
    paid = ctx.member.counter(c.DEDUCTIBLE, year)
    key = ("3A" if facility.grade == "A" else "3B") if facility.level == 3 else str(facility.level)
    category = _category(ctx)
    ratio = p.general_ratio[category][key]
    cap = p.general_cap[category]
    used = ctx.member.counter(c.GENERAL_FUND, year)
    uncapped = pay_under_fund_cap(decision, eligible, threshold, paid, ratio, cap, used)
    deductible, fund = decision.deductible, decision.fund
    article = "000 第十一条"
    decision.lines.append(
        _DEDUCTIBLE_TIER(
            article=article,
            level=facility.level,
            threshold=threshold,
            paid=paid,
            deductible=deductible,
        )
    )
    decision.lines.append(
        _RATIO_TIER(
            article=article,
            category=category.replace("_", "-"),
            ratio=pct(ratio),
            tier=key,
            base=eligible - deductible,
            fund=uncapped,
        )
    )
    if fund < uncapped:
        decision.lines.append(_CAP_FUND(article=article, cap=cap, used=used, fund=fund, over=uncapped - fund))
    decision.deltas = [(str(year), c.DEDUCTIBLE, deductible), (str(year), c.GENERAL_FUND, fund)]
    return decision


def chronic_pool(caps: list[Decimal], params: Params) -> Decimal:
    """000 第十九条: caps high to low, the first two in full, the third and later at 80%."""
    ordered = sorted(caps, reverse=True)
    full = ordered[: params.chronic_full_caps]
    later = ordered[params.chronic_full_caps :]
    return fen(sum(full, ZERO) + sum(later, ZERO) * params.chronic_later_share)


def _two_diseases(code: str, params: Params) -> bool:
    return code[:3].upper() in params.two_diseases


def _chronic(ctx: VisitContext, cert: Certification) -> FundDecision:
    p, facility, decision = ctx.params, ctx.facility, FundDecision(pool="chronic")
    code = cert.disease_code
    if facility.level == 0:
        pilot = facility.kind == "village_clinic" and _two_diseases(code, p) and ctx.member.remote_pilot
        if not pilot:
            return decision.no_fund(
                explain("exclusion.village_chronic" if facility.kind == "village_clinic" else "exclusion.chronic_tier")
            )
        decision.lines.append(_CHRONIC_REMOTE_PILOT())
    year, eligible = ctx.year, ctx.bill.eligible
    paid = ctx.member.counter(c.DEDUCTIBLE, year)
    caps = ctx.member.certified_caps_on(ctx.day)
    pool = chronic_pool(caps, p)
    used = ctx.member.counter(c.CHRONIC_FUND, year)
    uncapped = pay_under_fund_cap(decision, eligible, p.chronic_deductible, paid, p.chronic_ratio, pool, used)
    deductible, fund = decision.deductible, decision.fund
    decision.lines.append(_CHRONIC_SHARED_DEDUCTIBLE(threshold=p.chronic_deductible, paid=paid, deductible=deductible))
    decision.lines.append(_CHRONIC_RATIO(ratio=pct(p.chronic_ratio), base=eligible - deductible, fund=uncapped))
    decision.lines.append(
        _CHRONIC_POOL(
            pool=pool,
            caps=", ".join(str(cap) for cap in sorted(caps, reverse=True)),
            used=used,
            room=max(ZERO, pool - used),
        )
    )
    if fund < uncapped:
        decision.lines.append(_CHRONIC_POOL_EXHAUSTED(fund=fund, over=uncapped - fund))
    decision.deltas = [(str(year), c.DEDUCTIBLE, deductible), (str(year), c.CHRONIC_FUND, fund)]
    return decision


def contribution_credits(member: MemberState, event: Any, month: date, params: Params) -> list[Credit]:
    if member.status_on(month).insurance_type != "employee" or member.is_retired_on(month):
        return []
    amount = fen(event.contribution_base * params.account_rate)
    return [
        Credit(
            "contribution",
            amount,
            (f"000 第六条: {pct(params.account_rate)} of the month's contribution base {event.contribution_base}",),
        )
    ]


def pension_credits(member: MemberState, event: Any, month: date, params: Params) -> list[Credit]:
    if not member.is_retired_on(month):
        return []  # 000 第六条: the retiree credit starts the month after retirement
    amount = fen(params.retiree_average_pension * params.retiree_rate)
    return [
        Credit(
            "retiree_credit",
            amount,
            (
                f"000 第六条: retiree credit {pct(params.retiree_rate)} of the 2023 average pension "
                f"{params.retiree_average_pension}",
            ),
        )
    ]


def pool_limit(member: MemberState, day: date, params: Params) -> Decimal:
    return chronic_pool(member.certified_caps_on(day), params)


def limits_remaining(member: MemberState, day: date, params: Params) -> dict[str, Decimal]:
    year, category = day.year, ("retired" if member.is_retired_on(day) else "in_service")
    return {
        "general outpatient fund cap (000 第十一条)": max(
            ZERO, params.general_cap[category] - member.counter(c.GENERAL_FUND, year)
        ),
        "chronic pool (000 第十九条)": max(
            ZERO, pool_limit(member, day, params) - member.counter(c.CHRONIC_FUND, year)
        ),
    }
