"""Inner Mongolia 150000: 内政办发〔2021〕82号 (seed 004, from 2022-10-01).

The seed sets the account rules and delegates outpatient benefit levels to the leagues and cities (004 一(一)):
visits settle only with an `outpatient` table from a parameter file (see policies/configured.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from . import configured
from . import counters as c
from .explanations import explain_once, writer
from .limits import Limits
from .member import MemberState
from .money import fen, pct
from .rejection import Rejected
from .rules import Credit, Version
from .visit import FundDecision, VisitContext

DOCUMENT = "004 内政办发〔2021〕82号"
ACCOUNT_ARTICLE = "004 三"
FAMILY_ARTICLE = "004 三"
REGION = "150000"
INDIVIDUAL_RATE = "account_rate"  # 004 二: the individual pays 2% of the base into the account
CONTRIBUTION_ARTICLE = "004 二"
INSURANCE_TYPES = frozenset({"employee"})
PURPOSES = frozenset(
    {"own_medical", "family_medical", "family_resident_premium", "ltc_premium", "large_amount_premium"}
)  # 004 三
FAMILY_RELATIONS = frozenset({"spouse", "parent", "child"})
# The hooks of policies.rules.RegionRules this region does not have.
restarts_counters = on_interruption = close_year = apply_year_close = None


_INPATIENT_CAP_COUNTED = writer("inpatient_cap.counted")


@dataclass(frozen=True)
class Params:
    account_rate: Decimal = Decimal("0.02")  # 004 二
    retiree_average_pension: Decimal = Decimal("3000.00")  # [param] 2021 regional average basic pension
    retiree_rate: Decimal = Decimal("0.02")
    outpatient: configured.OutpatientTable | None = field(default=None, metadata={"build": configured.build_outpatient})
    limits: Limits = Limits()  # plausibility bounds (policies.limits)


VERSIONS: tuple[Version, ...] = (
    ("150000-2022Q4", date(2022, 10, 1), date(2022, 12, 31), Params(retiree_rate=Decimal("0.03"))),
    ("150000-2023", date(2023, 1, 1), None, Params()),
)


def _not_configured(part: str) -> Rejected:
    return Rejected(
        "policy_not_configured",
        f"004 一(一) delegates {part} outpatient benefits to the leagues and cities; no parameter set "
        f"configures them for this policy version",
    )


def screen_visit(visit: Any, params: Params) -> None:
    """Before anything else: without a configured table no Inner Mongolia visit settles, not even one that
    would get no fund payment (policy notes §4)."""
    outpatient = params.outpatient
    if outpatient is None:
        raise _not_configured("all")
    if outpatient.general is None and (visit.visit_kind == "general" or outpatient.chronic is None):
        raise _not_configured("general")


def _table(ctx: VisitContext, part: str) -> Any:
    chosen = getattr(ctx.params.outpatient, part)
    if chosen is None:
        raise _not_configured(part)
    return chosen


def settle(ctx: VisitContext) -> FundDecision:
    if ctx.certification is not None:
        decision = configured.settle_chronic(ctx, _table(ctx, "chronic"), "004 一(二)")
    else:
        decision = configured.settle_general(ctx, _table(ctx, "general"), "004 一(一)")
    source = ctx.params.outpatient.source
    if source:
        decision.lines.insert(0, explain_once("configured.table", source, names=("source",)))
    counted = inpatient_cap_counted(ctx.member, ctx.year) + decision.fund
    decision.lines.append(_INPATIENT_CAP_COUNTED(counted=counted))
    return decision


def inpatient_cap_counted(member: MemberState, year: int) -> Decimal:
    """004 一(三): the outpatient fund payments of the year that count toward the inpatient annual cap."""
    return member.year_total(c.GENERAL_FUND, year) + member.year_total(c.CHRONIC_FUND, year)


def contribution_credits(member: MemberState, event: Any, month: date, params: Params) -> list[Credit]:
    if member.status_on(month).insurance_type != "employee" or member.is_retired_on(month):
        return []
    amount = fen(event.contribution_base * params.account_rate)
    return [
        Credit("contribution", amount, (f"004 二: {pct(params.account_rate)} of the base {event.contribution_base}",))
    ]


def pension_credits(member: MemberState, event: Any, month: date, params: Params) -> list[Credit]:
    if not member.is_retired_on(month):
        return []
    amount = fen(params.retiree_average_pension * params.retiree_rate)
    line = (
        f"004 二: retiree credit {pct(params.retiree_rate)} of the 2021 average pension "
        f"{params.retiree_average_pension}"
    )
    return [Credit("retiree_credit", amount, (line,))]


def pool_limit(member: MemberState, day: date, params: Params) -> Decimal:
    return sum(member.certified_caps_on(day), Decimal(0))


def limits_remaining(member: MemberState, day: date, params: Params) -> dict[str, Decimal]:
    year, result = day.year, {}
    outpatient = params.outpatient
    if outpatient is not None and outpatient.general is not None:
        category = "retired" if member.is_retired_on(day) else "in_service"
        result["general outpatient fund cap (configured)"] = max(
            Decimal(0), outpatient.general.cap[category] - member.counter(c.GENERAL_FUND, year)
        )
    if outpatient is not None and outpatient.chronic is not None:
        result["chronic pool (configured)"] = max(
            Decimal(0), pool_limit(member, day, params) - member.counter(c.CHRONIC_FUND, year)
        )
    result["outpatient fund counted toward the inpatient cap (004 一(三))"] = inpatient_cap_counted(member, year)
    return result
