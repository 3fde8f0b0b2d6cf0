"""The member state as the member_state row keeps it, and the member_year rows made from it: the same bytes as
every earlier release wrote, so that a ledger written before verifies after, and the codec's two directions are
each other's inverse."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import orjson

from bench.generate import generate
from ledger.codec import STATE_KEYS, dumps, state_from_json, state_to_json
from policies.member import Certification, MemberState, Status
from policies.parameters import parse_parameters
from policies.registry import PolicyRegistry
from policies.summary import years_of
from projections import member_year
from tests.ledger.helpers import IM_PARAMETERS
from tests.ledger.test_member_year import _members_after

# Every part of the state set, in no particular order, with Decimals of every exponent and sign.
RICH = MemberState(
    region="371000",
    member_id="M-富-1",
    birth_date=date(1958, 2, 28),
    enrolled_on=date(2021, 7, 1),
    statuses=[Status(date(2021, 7, 1), "employee", "in_service"), Status(date(2023, 3, 1), "employee", "retired")],
    contribution_base=Decimal("8123.40"),
    monthly_pension=Decimal("4100"),
    legacy_monthly_credit=Decimal("180.00"),
    designated_facilities=frozenset({"F2", "F10", "F1"}),
    remote_pilot=True,
    retired_on=date(2023, 3, 1),
    retirement_pension=Decimal("4100.00"),
    segment_starts=[date(2023, 3, 1)],
    terminated_on=date(2024, 11, 30),
    termination_reason="moved",
    earlier_periods=[(date(2019, 1, 1), date(2020, 6, 30))],
    certifications={
        "I10": [Certification(date(2022, 1, 1), "I10", Decimal("3000.00"), "chronic")],
        "E11": [
            Certification(date(2022, 5, 1), "E11", Decimal("5000"), None),
            Certification(date(2023, 5, 1), "E11", None, None),
        ],
    },
    family_grants={"S2": "child", "S1": "spouse"},
    balance=Decimal("-0.50"),
    account_closed=True,
    bonus_points=Decimal("1.5"),
    health_streak=3,
    year_balances={"2024": Decimal("10.00"), "2023": Decimal("120.5")},
    incentives={"2023": "1.5", "2022": "0.5"},
    counters={
        "2023#1": {"general_fund": Decimal("10.00"), "deductible": Decimal("300")},
        "2023": {"band_position": Decimal("1E+2"), "chronic_fund": Decimal("0.00")},
        "2024": {},
    },
    contributions={"2023-11": Decimal("160.00"), "2023-07": Decimal("-1.25")},
)

# What the release before the codec was rewritten wrote for RICH, byte for byte.
RICH_JSON = (
    '{"region":"371000","member_id":"M-富-1","birth_date":"1958-02-28","enrolled_on":"2021-07-01",'
    '"statuses":[["2021-07-01","employee","in_service"],["2023-03-01","employee","retired"]],'
    '"contribution_base":"8123.40","monthly_pension":"4100","legacy_monthly_credit":"180.00",'
    '"designated_facilities":["F1","F10","F2"],"remote_pilot":true,"retired_on":"2023-03-01",'
    '"retirement_pension":"4100.00","segment_starts":["2023-03-01"],"terminated_on":"2024-11-30",'
    '"termination_reason":"moved","earlier_periods":[["2019-01-01","2020-06-30"]],'
    '"certifications":{"E11":[["2022-05-01","5000",null],["2023-05-01",null,null]],"I10":[["2022-01-01",'
    '"3000.00","chronic"]]},"family_grants":{"S1":"spouse","S2":"child"},"balance":"-0.50",'
    '"account_closed":true,"bonus_points":"1.5","health_streak":3,"year_balances":{"2023":"120.5",'
    '"2024":"10.00"},"incentives":{"2022":"0.5","2023":"1.5"},"counters":{"2023":{"band_position":"1E+2",'
    '"chronic_fund":"0.00"},"2023#1":{"deductible":"300","general_fund":"10.00"},"2024":{}},'
    '"contributions":{"2023-07":"-1.25","2023-11":"160.00"}}'
)

# The member_year rows that release made of RICH under the Inner Mongolia example parameters, each value as its
# text (a Decimal's exponent is part of what is compared).
RICH_ROWS = [
    (
        "371000",
        "M-富-1",
        "2019",
        "enrolled",
        "employee",
        "in_service",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "None",
        "0.00",
        "1.5",
        "3",
        "0.00",
        "{}",
    ),
    (
        "371000",
        "M-富-1",
        "2021",
        "enrolled",
        "employee",
        "in_service",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "None",
        "0.00",
        "1.5",
        "3",
        "0.00",
        "{}",
    ),
    (
        "371000",
        "M-富-1",
        "2022",
        "enrolled",
        "employee",
        "in_service",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "8000.00",
        "0.00",
        "0.5",
        "3",
        "0.00",
        "{}",
    ),
    (
        "371000",
        "M-富-1",
        "2023",
        "enrolled",
        "employee",
        "retired",
        "300.00",
        "0.00",
        "10.00",
        "0.00",
        "0.00",
        "0.00",
        "100.00",
        "3000.00",
        "0.00",
        "1.5",
        "3",
        "120.5",
        '{"2023":{"band_position":"1E+2","chronic_fund":"0.00"},"2023#1":{"deductible":"300","general_fund":"10.00"}}',
    ),
    (
        "371000",
        "M-富-1",
        "2024",
        "terminated (moved)",
        "employee",
        "retired",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "3000.00",
        "0.00",
        "1.5",
        "3",
        "10.00",
        '{"2024":{}}',
    ),
]


def _texts(rows: list[tuple]) -> list[tuple[str, ...]]:
    return [tuple(str(value) for value in row) for row in rows]


def _registry() -> PolicyRegistry:
    return PolicyRegistry(parse_parameters(IM_PARAMETERS, "150000-illustrative.toml"))


def test_the_state_is_written_as_every_earlier_release_wrote_it():
    assert dumps(state_to_json(RICH)) == RICH_JSON
    assert tuple(state_to_json(RICH)) == STATE_KEYS


def test_a_state_read_back_is_the_state_written():
    assert state_from_json(orjson.loads(RICH_JSON)) == RICH
    assert dumps(state_to_json(state_from_json(orjson.loads(RICH_JSON)))) == RICH_JSON


def test_a_member_years_rows_are_those_every_earlier_release_made():
    registry = _registry()
    assert _texts(member_year.rows(RICH, years_of(RICH), registry)) == RICH_ROWS
    counters = state_to_json(RICH)["counters"]
    assert _texts(member_year.rows(RICH, years_of(RICH), registry, counters)) == RICH_ROWS
    # read back from the database, whose jsonb keeps its keys in an order of its own
    stored = {period: dict(reversed(values.items())) for period, values in reversed(counters.items())}
    assert [orjson.loads(row[-1]) for row in member_year.rows(RICH, {2023}, registry, stored)] == [
        orjson.loads(row[-1]) for row in member_year.rows(RICH, {2023}, registry)
    ]


def test_every_state_the_engine_leaves_round_trips_byte_for_byte():
    parameters = parse_parameters(IM_PARAMETERS, "150000-illustrative.toml")
    lines = [orjson.dumps(event).decode() for event in generate(6_000, members=400)]
    members = list(_members_after(lines, parameters).members.values())
    assert len(members) > 300
    registry = PolicyRegistry(parameters)
    for member in members:
        text = dumps(state_to_json(member))
        back = state_from_json(orjson.loads(text))
        assert back == member
        assert dumps(state_to_json(back)) == text
        data = orjson.loads(text)
        years = years_of(member)
        assert _texts(member_year.rows(member, years, registry, data["counters"])) == _texts(
            member_year.rows(member, years, registry)
        )
