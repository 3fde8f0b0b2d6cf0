"""The explanation as a HIS prints it on the receipt: every line the examples' settlements carry reads in
Chinese, with its article citations and figures as the ledger wrote them."""

from __future__ import annotations

import re

from gateway.receipt import render
from ledger.offline import settle_lines
from policies.parameters import parse_parameters
from tests.ledger.helpers import IM_PARAMETERS, example_lines

# What a line may keep in Latin letters: member and settlement ids, the parameters file, a reversal's own reason
# (the producer's text), tier grades (3A) and the policy ids.
KEPT = re.compile(r"[0-9]{6,}T[0-9]{3}|[0-9a-f-]{36}|examples/\S+?\.toml|（退费）：.*$|\b[0-9][AB]\b|\d{6}-\d{4}Q?\d?")


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


def test_a_line_not_rendered_is_kept_as_the_ledger_wrote_it():
    assert render("009 第一条: something new") == "009 第一条：something new"
