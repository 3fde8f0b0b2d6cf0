"""Names of the per-member, per-year accumulators every settlement moves and every reversal moves back.

A counter lives under a period key: the calendar year ("2023"), or for Weihai's general outpatient after an
insurance-type change, the year and the segment ("2023#1"), because `001 第十一条` restarts that deductible and
limit from zero while the year's other counters run on.
"""

DEDUCTIBLE = "deductible"  # general-outpatient deductible paid (Ningxia: shared with chronic, 000 第十七条)
GENERAL_FUND = "general_fund"  # pooled fund paid, general outpatient
GENERAL_BASE = "general_base"  # Weihai: eligible expense counted against the general limit (001 第十条)
BAND_POSITION = "band_position"  # Nanjing: cumulative in-policy expense placed in the bands (002 第十四条)
FEE_LINE_FUND = "fee_line_fund"  # Nanjing: fund paid on 002 第十五条 fee lines (outside bands and incentive)
CHRONIC_DEDUCTIBLE = "chronic_deductible"  # chronic deductible where it has its own counter
CHRONIC_FUND = "chronic_fund"  # pooled fund paid, chronic / special pool
CHRONIC_BASE = "chronic_base"  # Weihai: eligible expense counted against the chronic pool
COMMON_CHRONIC_DEDUCTIBLE = "common_chronic_deductible"  # Weihai residents' common chronic (001 第十四条)
COMMON_CHRONIC_BASE = "common_chronic_base"
COMMON_CHRONIC_FUND = "common_chronic_fund"
EXTERNAL_FUND = "external_fund"  # fund payments reported from outside outpatient settlement
BONUS_FUND_USES = "bonus_fund_uses"  # Weihai: general settlements paid by the fund while a bonus was held
INTERRUPTED_WITH_BONUS = "interrupted_with_bonus"  # Weihai: contribution interruptions while a bonus was held


def period_key(year: int, segment: int = 0) -> str:
    return str(year) if segment == 0 else f"{year}#{segment}"
