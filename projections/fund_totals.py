"""Pooled-fund payments per region, month and pool (000 第四条: general and chronic are booked separately)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from policies.outputs import Settlement


class FundTotals:
    """Increments collected over a batch, written as one upsert per (region, month, pool)."""

    def __init__(self) -> None:
        self.totals: dict[tuple[str, date, str], list] = defaultdict(lambda: [Decimal("0.00"), 0, 0])

    def add(self, settlement: Settlement) -> None:
        key = (settlement.region, settlement.visit_date.replace(day=1), settlement.fund_pool)
        entry = self.totals[key]
        entry[0] += settlement.fund_paid
        if settlement.reverses:
            entry[2] += 1
        else:
            entry[1] += 1

    def rows(self) -> list[tuple]:
        return [(*key, fund, settled, reversed_) for key, (fund, settled, reversed_) in sorted(self.totals.items())]
