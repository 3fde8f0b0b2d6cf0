"""Outpatient benefits a deployment supplies in a parameter file where the seed delegates them.

Inner Mongolia's `004 一(一)` leaves deductibles, ratios and caps to the leagues and cities; Nanjing's `002 第十六条`
leaves the special-disease policy to a later document. Both settle with these tables when a parameter file gives
them, and reject with `policy_not_configured` when it does not.

    [policy."150000-2023".outpatient.general]
    deductible = { "1" = "0", "2" = "200", "3" = "400" }   # by tier; no "0" key: below tier 1 not covered
    ratio.in_service = { "1" = "0.70", "2" = "0.60", "3" = "0.50" }
    ratio.retired = { "1" = "0.75", "2" = "0.65", "3" = "0.55" }
    cap = { in_service = "2000", retired = "2500" }           # annual cap on the fund payment

    [policy."150000-2023".outpatient.chronic]
    deductible = "500"                                       # its own yearly counter
    ratio = { in_service = "0.70", retired = "0.75" }        # pool = sum of the certified caps
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import counters as c
from .explanations import writer
from .money import ZERO, dec, pct
from .parameters import ParameterError, Table
from .visit import FundDecision, VisitContext, pay_under_fund_cap

CATEGORIES = ("in_service", "retired")


_CONFIGURED_DEDUCTIBLE = writer("configured.deductible")
_CONFIGURED_RATIO = writer("configured.ratio")
_CONFIGURED_CHRONIC_DEDUCTIBLE = writer("configured.chronic_deductible")
_CONFIGURED_CHRONIC_RATIO = writer("configured.chronic_ratio")


@dataclass(frozen=True)
class GeneralTable:
    deductible: Mapping[str, Decimal]
    ratio: Mapping[str, Mapping[str, Decimal]]
    cap: Mapping[str, Decimal]


@dataclass(frozen=True)
class ChronicTable:
    deductible: Decimal
    ratio: Mapping[str, Decimal]


@dataclass(frozen=True)
class OutpatientTable:
    general: GeneralTable | None
    chronic: ChronicTable | None
    source: str = ""


def _need(values: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in values:
        raise ParameterError(f"{where}: missing {key!r}")
    return values[key]


def _money_table(values: object, where: str, keys: Iterable[str] | None = None) -> Table:
    if not isinstance(values, Mapping):
        raise ParameterError(f"{where}: expected a table")
    if keys is not None and set(values) != set(keys):
        raise ParameterError(f"{where}: expected keys {list(keys)}, got {sorted(values)}")
    try:
        return Table({str(k): dec(v) for k, v in values.items()})
    except (TypeError, ArithmeticError) as error:
        raise ParameterError(f"{where}: {error}") from None


def build_general(values: Mapping, where: str) -> GeneralTable:
    deductible = _money_table(_need(values, "deductible", where), f"{where}.deductible")
    ratios = _need(values, "ratio", where)
    ratio = Table(
        {
            cat: _money_table(_need(ratios, cat, f"{where}.ratio"), f"{where}.ratio.{cat}", deductible)
            for cat in CATEGORIES
        }
    )
    cap = _money_table(_need(values, "cap", where), f"{where}.cap", CATEGORIES)
    return GeneralTable(deductible, ratio, cap)


def build_chronic(values: Mapping, where: str) -> ChronicTable:
    try:
        deductible = dec(_need(values, "deductible", where))
    except (TypeError, ArithmeticError) as error:
        raise ParameterError(f"{where}.deductible: {error}") from None
    return ChronicTable(deductible, _money_table(_need(values, "ratio", where), f"{where}.ratio", CATEGORIES))


def build_outpatient(values: Mapping, where: str) -> OutpatientTable:
    unknown = set(values) - {"general", "chronic", "source"}
    if unknown:
        raise ParameterError(f"{where}: unknown keys {sorted(unknown)}")
    general = build_general(values["general"], f"{where}.general") if "general" in values else None
    chronic = build_chronic(values["chronic"], f"{where}.chronic") if "chronic" in values else None
    return OutpatientTable(general, chronic, str(values.get("source", "")))


def settle_general(ctx: VisitContext, table: GeneralTable, article: str) -> FundDecision:
    decision, year, eligible = FundDecision(), ctx.year, ctx.bill.eligible
    tier = str(ctx.facility.level)
    if tier not in table.deductible:
        return decision.no_fund(f"{article}: the configured general outpatient table does not cover tier {tier}")
    category = "retired" if ctx.retired else "in_service"
    threshold = table.deductible[tier]
    paid = ctx.member.counter(c.DEDUCTIBLE, year)
    ratio = table.ratio[category][tier]
    cap = table.cap[category]
    used = ctx.member.counter(c.GENERAL_FUND, year)
    uncapped = pay_under_fund_cap(decision, eligible, threshold, paid, ratio, cap, used)
    deductible, fund = decision.deductible, decision.fund
    decision.lines += [
        _CONFIGURED_DEDUCTIBLE(article=article, tier=tier, threshold=threshold, paid=paid, deductible=deductible),
        _CONFIGURED_RATIO(
            article=article,
            category=category.replace("_", "-"),
            ratio=pct(ratio),
            base=eligible - deductible,
            uncapped=uncapped,
            cap=cap,
            used=used,
            fund=fund,
        ),
    ]
    decision.deltas = [(str(year), c.DEDUCTIBLE, deductible), (str(year), c.GENERAL_FUND, fund)]
    return decision


def settle_chronic(ctx: VisitContext, table: ChronicTable, article: str) -> FundDecision:
    decision, year, eligible = FundDecision(pool="chronic"), ctx.year, ctx.bill.eligible
    category = "retired" if ctx.retired else "in_service"
    paid = ctx.member.counter(c.CHRONIC_DEDUCTIBLE, year)
    ratio = table.ratio[category]
    pool = sum(ctx.member.certified_caps_on(ctx.day), ZERO)
    used = ctx.member.counter(c.CHRONIC_FUND, year)
    uncapped = pay_under_fund_cap(decision, eligible, table.deductible, paid, ratio, pool, used)
    deductible, fund = decision.deductible, decision.fund
    decision.lines += [
        _CONFIGURED_CHRONIC_DEDUCTIBLE(
            article=article,
            threshold=table.deductible,
            paid=paid,
            deductible=deductible,
        ),
        _CONFIGURED_CHRONIC_RATIO(
            article=article,
            ratio=pct(ratio),
            base=eligible - deductible,
            uncapped=uncapped,
            pool=pool,
            used=used,
            fund=fund,
        ),
    ]
    decision.deltas = [(str(year), c.CHRONIC_DEDUCTIBLE, deductible), (str(year), c.CHRONIC_FUND, fund)]
    return decision
