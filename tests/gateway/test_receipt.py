"""The explanation as a HIS prints it on the receipt: every line the examples' settlements carry reads in
Chinese, with its article citations and figures as the ledger wrote them."""

from __future__ import annotations

import re

from console.i18n import explanation
from gateway.receipt import render
from ledger.offline import settle_lines
from policies.explanations import read
from policies.parameters import parse_parameters
from tests.ledger.helpers import IM_PARAMETERS, example_lines

# What a line may keep in Latin letters: member and settlement ids, where the parameters came from (the operator's
# own text), a reversal's own reason (the producer's text), tier grades (3A) and the policy ids.
KEPT = re.compile(r"[0-9]{6,}T[0-9]{3}|[0-9a-f-]{36}|参数表：.*$|退费：.*$|\b[0-9][AB]\b|\d{6}-\d{4}Q?\d?")


def example_explanations() -> set[str]:
    lines = set()
    for name in ("ningxia", "weihai", "nanjing", "inner-mongolia"):
        for record in settle_lines(example_lines(name), parse_parameters(IM_PARAMETERS)):
            if "settlement_id" in record:
                lines.update(record["explanation"])
    return lines


def test_every_example_explanation_line_reads_in_chinese_with_its_articles_and_figures():
    lines = example_explanations()
    assert len(lines) > 100
    for line in lines:
        shown = render(line)
        assert not re.search(r"[A-Za-z]{2,}", KEPT.sub("", shown)), (line, shown)
        for article in re.findall(r"\d{3} 第[^条]+条|policy notes", line):
            assert article.replace("policy notes", "政策说明") in shown, (line, shown)
        assert re.findall(r"\d+\.\d{2}", line) == re.findall(r"\d+\.\d{2}", shown), (line, shown)


def test_the_receipt_reads_each_line_from_the_template_the_console_reads():
    """One table of templates: a line on the receipt is its rule's Chinese template with the values the ledger
    recorded, word for word what the console shows."""
    for line in example_explanations():
        found = read(line)
        assert found is not None, line
        assert render(line) == explanation(line, "zh"), line
        for value in found[1].values():
            assert value in line
    settlement = "0f6e3b1a-0000-5000-8000-000000000001"
    reversal = f"policy notes §0: reversal (退费) of settlement {settlement}: 冲正: entered twice"
    assert render(reversal) == f"政策说明 §0：结算 {settlement} 的退费：冲正: entered twice"


def test_a_line_no_template_gives_is_kept_as_the_ledger_wrote_it():
    assert render("009 第一条: something new") == "009 第一条: something new"
