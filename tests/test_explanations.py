"""Explanation lines come from one template table: each rule's code and values give the English line the ledger
records and the Chinese line the console shows, and a recorded line is read back to the same code and values."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from ledger.cli import app
from policies.explanations import BY_CODE, TEMPLATES, explain, explain_once, read, render
from policies.money import pct

EXAMPLES = Path(__file__).parents[1] / "examples"
FIELD = re.compile(r"\{(\w+)\}")


def _settled_lines() -> list[str]:
    """The explanation lines of every settlement and reversal `settle` prints for the example files."""
    lines = []
    for path in sorted(EXAMPLES.glob("*.jsonl")):
        extra = ["-p", str(EXAMPLES / "params/150000-illustrative.toml")] if path.stem == "inner-mongolia" else []
        result = CliRunner().invoke(app, ["settle", str(path), *extra])
        assert result.exit_code == 0, result.output
        for record in map(json.loads, result.stdout.splitlines()):
            if "settlement_id" in record:
                lines.extend(record["explanation"])
    return lines


def test_each_template_says_the_same_values_in_both_languages():
    assert len(BY_CODE) == len(TEMPLATES)
    for template in TEMPLATES:
        assert set(FIELD.findall(template.en)) == set(FIELD.findall(template.zh)), template.code


def test_every_templated_line_the_examples_settle_with_reads_back_to_its_code_and_values():
    lines = _settled_lines()
    read_back = [(line, read(line)) for line in lines]
    templated = [(line, found) for line, found in read_back if found is not None]
    # the settlement rules of every region have templates: most lines are read back
    assert len(templated) > len(lines) / 2, len(templated)
    for line, (code, values) in templated:
        assert explain(code, **values) == line
        chinese = render(line, "zh")
        assert chinese != line and render(line, "en") == line
        for value in values.values():  # the figures, as recorded
            if re.fullmatch(r"-?\d+(\.\d+)?%?", value):
                assert value in chinese, (line, chinese)


def test_a_line_without_a_template_is_shown_as_recorded():
    line = "002 第九条: a line an earlier release recorded, before its rule had a template"
    assert read(line) is None and render(line, "zh") == line


def test_the_chinese_line_uses_the_bureaus_terms():
    line = explain("deductible", article="001 第十一条", threshold="300", paid="0.00", deductible="233.00")
    assert line == "001 第十一条: deductible 300, 0.00 already paid this year → deductible 233.00"
    assert render(line, "zh") == "001 第十一条：起付线 300，本年已付 0.00 → 本次起付 233.00"
    family = explain("family.paid_from", article="002 第八条(八)", payer_id="P1", relation="parent")
    assert render(family, "zh") == "002 第八条(八)：家庭共济，由 P1 的个人账户支付（父母）"


def test_a_line_two_templates_give_is_read_as_the_more_specific_one():
    line = explain("bonus.not_enrolled", year=2022)
    assert line == "policy notes §0: not enrolled the whole of 2022, earns nothing"
    assert read(line) == ("bonus.not_enrolled", {"year": "2022"})
    assert read(explain("streak.not_enrolled", year=2022)) == ("streak.not_enrolled", {"year": "2022"})


def test_a_line_of_text_values_is_formatted_once_and_reads_as_explain_writes_it():
    values = {"policy_id": "NX-2023", "document": "宁医保发〔2023〕1号", "insurance_type": "employee"}
    names = (*values, "person_type")
    first = explain_once("member", *values.values(), "in service", names=names)
    assert first == explain("member", **values, person_type="in service")
    assert explain_once("member", *values.values(), "in service", names=names) is first
    retired = explain_once("member", *values.values(), "retired", names=names)
    assert retired == explain("member", **values, person_type="retired") != first
    other = explain_once("member.retired_since", *values.values(), "retired", names=names)
    assert other == explain("member.retired_since", **values, person_type="retired") != retired


def test_a_ratio_is_written_once_and_equal_ratios_alike():
    assert pct(Decimal("0.655")) == "65.5%"
    assert pct(Decimal("0.9")) == pct(Decimal("0.90")) == pct(Decimal("0.9000")) == "90%"
    assert pct(Decimal("0.95")) == "95%"  # not the text kept for 0.9
    assert pct(Decimal("1")) == "100%" and pct(Decimal("0.015")) == "1.5%"
    assert pct(Decimal("0")) == "0%" and pct(Decimal("-0")) == "-0%"  # zero is written every time, sign and all


def test_every_template_is_written_as_format_writes_it_whatever_the_values():
    """The templates' writers (f-strings of each value's str) give what str.format gives, for every kind of value
    a rule hands them: Decimals in every form, ints, dates, strings, string enums."""
    from datetime import date as day

    from ledger.contract.visit import ItemCategory
    from policies.explanations import _ENGLISH, writer

    kinds = [
        Decimal("1234.50"),
        Decimal("-0"),
        Decimal("0E-7"),
        Decimal("1E+2"),
        Decimal("0.0000001"),
        Decimal("-12.345678901234567890"),
        7,
        -3,
        day(2023, 2, 1),
        "中文 text",
        ItemCategory.DRUG,
    ]
    for template in TEMPLATES:
        names = re.findall(r"\{(\w+)\}", template.en)
        for shift in range(len(kinds)):
            values = {name: kinds[(shift + at) % len(kinds)] for at, name in enumerate(names)}
            assert explain(template.code, **values) == template.en.format(**values), template.code
            assert _ENGLISH[template.code](values) == template.en.format_map(values)
            assert writer(template.code)(**values) == template.en.format(**values), template.code
