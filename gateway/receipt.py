"""The settlement's explanation as a HIS prints it on the patient's receipt (结算过程信息): each line in Chinese.

The ledger records each explanation line as its rule's English template filled with the rule's values; the
receipt shows the same rule's Chinese template filled with the same values (`policies.explanations`, the one
table the console reads too), so the article citations and figures are the ones the ledger wrote. A line no
template gives (recorded before it had one) is shown as the ledger wrote it, rather than lost."""

from __future__ import annotations

from collections.abc import Iterable

from policies.explanations import render as rendered


def in_chinese(lines: Iterable[str]) -> list[str]:
    return [render(line) for line in lines]


def render(line: str) -> str:
    return rendered(line, "zh")
