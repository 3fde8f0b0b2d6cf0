"""Policy parameters: defaults as the notes give them, overridden from a file, refused when malformed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.offline import settle_lines
from policies.parameters import ParameterError, parse_parameters
from policies.registry import PolicyRegistry
from tests import builders as b


def _settle(events, text: str = ""):
    return settle_lines(b.lines(*events), parse_parameters(text))


def test_defaults_are_the_illustrative_values_of_the_notes():
    registry = PolicyRegistry()
    assert registry.by_id("640000-2023").params.retiree_average_pension == Decimal("3000.00")
    assert registry.by_id("371000-2024").params.retiree_average_pension == Decimal("3500.00")
    assert registry.by_id("371000-2023").params.employee_inpatient_ratio["retired"]["3"] == Decimal("0.85")
    assert registry.by_id("371000-2022").params.general_limit["employee"] == Decimal("800")
    assert registry.by_id("150000-2022Q4").params.retiree_rate == Decimal("0.03")
    assert registry.by_id("150000-2023").params.outpatient is None


def test_an_override_changes_the_credit_and_leaves_the_rest():
    b.fresh()
    m = "NX-RETIREE"
    events = [b.enrolled(m, b.NINGXIA, person_type="retired", on="2023-06-01"), b.pension(m, b.NINGXIA, "2023-07")]
    default = b.movements(_settle(events))[0]["amount"]
    b.fresh()
    changed = b.movements(_settle(events, '[policy."640000-2023"]\nretiree_average_pension = "3250.00"\n'))
    assert (default, changed[0]["amount"]) == ("84.00", "91.00")  # 000 第六条: 2.8% of 3000, then of 3250


def test_a_nested_override_merges_key_by_key():
    text = '[policy."371000-2023".employee_inpatient_ratio.retired]\n"3" = "0.86"\n'
    params = PolicyRegistry(parse_parameters(text)).by_id("371000-2023").params
    assert params.employee_inpatient_ratio["retired"]["3"] == Decimal("0.86")
    assert params.employee_inpatient_ratio["retired"]["1"] == Decimal("0.95")
    assert params.employee_inpatient_ratio["in_service"]["3"] == Decimal("0.80")


def test_weihai_retiree_credit_before_2024_is_refused_unless_configured():
    b.fresh()
    m = "WH-OLD"
    events = [b.enrolled(m, b.WEIHAI, person_type="retired", on="2023-01-01"), b.pension(m, b.WEIHAI, "2023-03")]
    out = _settle(events)
    assert b.reason(out, events[1]) == "policy_not_configured"
    b.fresh()
    out = _settle(events, '[policy."371000-2023"]\nretiree_monthly_credit = "66.00"\n')
    assert b.movements(out)[0]["amount"] == "66.00"


@pytest.mark.parametrize(
    "text, complaint",
    [
        ('[policy."640000-2023"]\nretiree_average_pension = 3000.5\n', "float"),
        ('[policy."640000-2023"]\nno_such_thing = "1"\n', "unknown parameter"),
        ('[policy."999999-2023"]\nx = "1"\n', "unknown policy ids"),
        ('[policy."640000-2023".general_ratio.in_service]\n"9" = "0.5"\n', "unknown key"),
        ('[policy."150000-2023".outpatient.general]\ndeductible = { "1" = "0" }\n', "missing 'ratio'"),
        (
            '[policy."150000-2023".outpatient.general]\ndeductible = { "1" = "0" }\n'
            'ratio.in_service = { "1" = "0.7" }\n'
            'ratio.retired = { "2" = "0.7" }\ncap = { in_service = "1", retired = "1" }\n',
            "expected keys",
        ),
        ("[policy.'640000-2023'\n", "parameters"),
    ],
)
def test_a_malformed_parameter_file_is_refused_with_the_place(text, complaint):
    with pytest.raises(ParameterError, match=complaint):
        PolicyRegistry(parse_parameters(text))


def test_a_table_answers_in_and_get_as_its_items_do():
    from policies.parameters import Table

    table = Table({"1": Decimal("0.9"), "3A": Decimal("0.8")})
    assert "1" in table and "3A" in table and "2" not in table and 1 not in table
    assert table.get("3A") == Decimal("0.8") and table.get("2") is None and table.get("2", "none") == "none"
    with pytest.raises(TypeError):
        [] in table  # noqa: B015 - an unhashable key is refused as a dict refuses it
