"""The parameter set recorded with the events holds every value in force, so a later release's defaults cannot
change how replay settles what was recorded before it."""

from __future__ import annotations

import dataclasses
import tomllib
from decimal import Decimal

import pytest

from policies import weihai
from policies.parameters import ParameterError, parse_parameters
from policies.recorded import policy_values, recorded_parameters
from policies.registry import PolicyRegistry
from tests.ledger.helpers import IM_PARAMETERS

FILES = {
    "defaults": "",
    "inner mongolia": IM_PARAMETERS,
    "nested and unset-by-default values": (
        '# a "quoted" comment, a backslash \\ and a tab\t\n'
        '[policy."371000-2023"]\nretiree_monthly_credit = "66.00"\n\n'
        '[policy."371000-2023".employee_inpatient_ratio.retired]\n"3" = "0.86"\n\n'
        '[policy."320100-2024".chronic]\ndeductible = "200"\nratio = { in_service = "0.7", retired = "0.8" }\n'
    ),
}


def _params(registry: PolicyRegistry) -> dict:
    return {policy.policy_id: policy.params for policy in registry.all()}


@pytest.mark.parametrize("text", FILES.values(), ids=FILES.keys())
def test_the_recorded_set_settles_with_exactly_the_values_of_the_file_it_records(text):
    recorded = recorded_parameters(text)
    assert _params(PolicyRegistry(parse_parameters(recorded))) == _params(PolicyRegistry(parse_parameters(text)))
    assert recorded_parameters(text) == recorded  # one file, one text, one digest
    document = tomllib.loads(recorded)
    assert document["meta"]["complete"] is True
    assert document["meta"].get("file", "") == text  # the file as given, comments and all


def test_every_value_is_named_and_what_had_none_is_listed_as_unset():
    document = tomllib.loads(recorded_parameters(""))
    registry = PolicyRegistry()
    for policy in registry.all():
        named = set(document["policy"][policy.policy_id])
        unset = set(document["meta"]["unset"].get(policy.policy_id, ()))
        fields = {field.name for field in dataclasses.fields(policy.params)}
        assert named | unset == fields and not named & unset, policy.policy_id
    assert document["meta"]["unset"]["371000-2023"] == ["retiree_monthly_credit"]
    assert document["policy"]["371000-2023"]["employee_chronic_deductible"] == "900"


def test_a_later_release_with_other_defaults_reads_the_recorded_values(monkeypatch):
    text = FILES["nested and unset-by-default values"]
    recorded = recorded_parameters(text)
    later = tuple(
        (
            policy_id,
            start,
            end,
            dataclasses.replace(
                defaults, retiree_monthly_credit=Decimal("99.00"), employee_chronic_deductible=Decimal("1000")
            ),
        )
        for policy_id, start, end, defaults in weihai.VERSIONS
    )
    monkeypatch.setattr(weihai, "VERSIONS", later)
    then = PolicyRegistry(parse_parameters(recorded))
    now = PolicyRegistry(parse_parameters(text))
    assert now.by_id("371000-2024").params.retiree_monthly_credit == Decimal("99.00")
    assert now.by_id("371000-2023").params.employee_chronic_deductible == Decimal("1000")
    assert then.by_id("371000-2024").params.retiree_monthly_credit is None
    assert then.by_id("371000-2023").params.retiree_monthly_credit == Decimal("66.00")
    assert then.by_id("371000-2023").params.employee_chronic_deductible == Decimal("900")
    assert then.by_id("371000-2023").params.employee_inpatient_ratio["retired"]["3"] == Decimal("0.86")


def test_a_what_if_over_a_recorded_set_may_give_a_value_to_what_it_left_unset():
    recorded = parse_parameters(recorded_parameters(""))
    what_if = parse_parameters('[policy."371000-2024"]\nretiree_monthly_credit = "120.00"\n')
    registry = PolicyRegistry(recorded.merged(what_if))
    assert registry.by_id("371000-2024").params.retiree_monthly_credit == Decimal("120.00")
    assert registry.by_id("371000-2023").params.retiree_monthly_credit is None


def test_policy_values_tells_a_complete_set_from_a_file_recorded_alone():
    assert policy_values(recorded_parameters(""), "640000-2023")["retiree_average_pension"] == "3000.00"
    assert policy_values(recorded_parameters(""), "320100-2023")["retiree_pension_rate"] is None
    assert policy_values(IM_PARAMETERS, "150000-2023") is None
    assert policy_values("", "640000-2023") is None


@pytest.mark.parametrize(
    "text, complaint",
    [
        ('[meta]\nunset = ["retiree_monthly_credit"]\n', "meta.unset"),
        ('[meta]\nunset = { "371000-2023" = "retiree_monthly_credit" }\n', "meta.unset"),
        ('[meta]\nunset = { "371000-2023" = ["no_such_thing"] }\n', "unknown parameter 'no_such_thing'"),
        ('[meta]\nunset = { "999999-2023" = ["x"] }\n', "unknown policy ids"),
    ],
)
def test_a_malformed_unset_list_is_refused(text, complaint):
    with pytest.raises(ParameterError, match=complaint):
        PolicyRegistry(parse_parameters(text))


@pytest.mark.parametrize("text", FILES.values(), ids=FILES.keys())
def test_a_recorded_set_given_back_as_the_file_is_recorded_as_it_was(text):
    recorded = recorded_parameters(text)
    assert recorded_parameters(recorded) == recorded  # the same digest: no new adoption


def test_a_what_if_may_unset_what_a_recorded_set_gives_a_value():
    recorded = parse_parameters(recorded_parameters(FILES["nested and unset-by-default values"]))
    what_if = parse_parameters('[meta]\nunset = { "371000-2023" = ["retiree_monthly_credit"] }\n')
    assert PolicyRegistry(recorded).by_id("371000-2023").params.retiree_monthly_credit == Decimal("66.00")
    assert PolicyRegistry(recorded.merged(what_if)).by_id("371000-2023").params.retiree_monthly_credit is None


def test_a_recorded_set_naming_what_a_later_release_dropped_still_reads_and_a_file_may_not():
    dropped = recorded_parameters("").replace(
        '[policy."640000-2023"]\n', '[policy."640000-2023"]\n"a_dropped_parameter" = "1"\n'
    )
    dropped += '\n[policy."640000-2019"]\n"retiree_rate" = "0.03"\n'  # a version dropped since
    registry = PolicyRegistry(parse_parameters(dropped))
    assert registry.by_id("640000-2023").params == PolicyRegistry().by_id("640000-2023").params
    with pytest.raises(ParameterError):  # as a file to settle with, it must be known whole
        recorded_parameters(dropped)
    with pytest.raises(ParameterError, match="unknown parameter"):
        PolicyRegistry(parse_parameters('[policy."640000-2023"]\n"a_dropped_parameter" = "1"\n'))


def test_a_table_a_builder_reads_keeps_the_toml_values_the_file_gave():
    text = IM_PARAMETERS.replace('source = "examples/params/150000-illustrative.toml', "source = 2024-01-01 # ", 1)
    assert "source = 2024-01-01" in text
    recorded = recorded_parameters(text)
    assert _params(PolicyRegistry(parse_parameters(recorded))) == _params(PolicyRegistry(parse_parameters(text)))


@pytest.mark.parametrize(
    "text, complaint",
    [
        ("[meta]\nnote = 'x'\n", r"\[meta\] may hold only"),
        ("[meta]\ncomplete = 'yes'\n", "meta.complete"),
    ],
)
def test_meta_says_only_what_medledger_writes_there(text, complaint):
    with pytest.raises(ParameterError, match=complaint):
        parse_parameters(text)
