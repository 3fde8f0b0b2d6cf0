"""The member state as the member_state row keeps it, and the member_year rows made from it: the same bytes as
every earlier release wrote, so that a ledger written before verifies after, and the codec's two directions are
each other's inverse."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.generate import generate
from ledger.codec import STATE_KEYS, dumps, state_from_bytes, state_from_json, state_json
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
    assert state_json(RICH) == RICH_JSON.encode()
    assert dumps(orjson.loads(state_json(RICH))) == RICH_JSON
    assert tuple(orjson.loads(state_json(RICH))) == STATE_KEYS


def test_a_state_read_back_is_the_state_written():
    assert state_from_bytes(RICH_JSON.encode()) == RICH
    assert state_from_bytes(RICH_JSON) == RICH
    assert state_from_json(orjson.loads(RICH_JSON)) == RICH
    assert state_json(state_from_bytes(RICH_JSON)) == RICH_JSON.encode()


def test_a_state_an_earlier_release_wrote_reads_with_the_parts_it_lacks_empty():
    data = orjson.loads(RICH_JSON)
    for part in ("earlier_periods", "year_balances", "incentives", "contributions"):
        del data[part]
    member = state_from_bytes(orjson.dumps(data))
    assert member.earlier_periods == [] and member.year_balances == member.incentives == member.contributions == {}
    assert member.counters == RICH.counters and member.certifications == RICH.certifications
    assert state_from_json(data) == member


def test_a_member_years_rows_are_those_every_earlier_release_made():
    assert _texts(member_year.rows(RICH, years_of(RICH), _registry())) == RICH_ROWS


def _written_before(member: MemberState) -> str:
    """The state's JSON as releases before the native codec wrote it, field by field: the reference the codec's
    bytes are held to."""
    m = member
    day = date.isoformat

    def texts(values: dict) -> dict:
        return {key: str(values[key]) for key in sorted(values)}

    def text(value: object) -> str | None:
        return None if value is None else str(value)

    return dumps(
        {
            "region": m.region,
            "member_id": m.member_id,
            "birth_date": day(m.birth_date),
            "enrolled_on": day(m.enrolled_on),
            "statuses": [[day(s.since), s.insurance_type, s.person_type] for s in m.statuses],
            "contribution_base": text(m.contribution_base),
            "monthly_pension": text(m.monthly_pension),
            "legacy_monthly_credit": text(m.legacy_monthly_credit),
            "designated_facilities": sorted(m.designated_facilities),
            "remote_pilot": m.remote_pilot,
            "retired_on": text(m.retired_on),
            "retirement_pension": text(m.retirement_pension),
            "segment_starts": [day(d) for d in m.segment_starts],
            "terminated_on": text(m.terminated_on),
            "termination_reason": m.termination_reason,
            "earlier_periods": [[day(start), day(end)] for start, end in m.earlier_periods],
            "certifications": {
                code: [[day(c.since), text(c.annual_cap), c.kind] for c in m.certifications[code]]
                for code in sorted(m.certifications)
            },
            "family_grants": dict(sorted(m.family_grants.items())),
            "balance": str(m.balance),
            "account_closed": m.account_closed,
            "bonus_points": str(m.bonus_points),
            "health_streak": m.health_streak,
            "year_balances": texts(m.year_balances),
            "incentives": dict(sorted(m.incentives.items())),
            "counters": {period: texts(m.counters[period]) for period in sorted(m.counters)},
            "contributions": texts(m.contributions),
        }
    )


def _counters_before(member: MemberState, year: int) -> str:
    """A year's counters as releases before wrote them into its row."""
    periods = {p: values for p, values in member.counters.items() if int(p.split("#")[0]) == year}
    return dumps({p: {name: str(v) for name, v in sorted(periods[p].items())} for p in sorted(periods)})


def test_every_state_the_engine_leaves_round_trips_byte_for_byte():
    parameters = parse_parameters(IM_PARAMETERS, "150000-illustrative.toml")
    lines = [orjson.dumps(event).decode() for event in generate(6_000, members=400)]
    members = list(_members_after(lines, parameters).members.values())
    assert len(members) > 300
    registry = PolicyRegistry(parameters)
    for member in members:
        text = state_json(member)
        assert text.decode() == _written_before(member)
        back = state_from_bytes(text)
        assert back == member
        assert state_json(back) == text
        for row in member_year.rows(member, years_of(member), registry):
            assert row[-1] == _counters_before(member, row[2])


texts_ = st.text(st.characters(codec="utf-8"), max_size=6)
decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None).map(lambda d: d.normalize() if d else d)
dates = st.dates()


@settings(max_examples=150, deadline=None)
@given(
    texts=st.tuples(texts_, texts_, texts_, texts_),
    money=st.lists(decimals, min_size=4, max_size=4),
    days=st.lists(dates, min_size=3, max_size=3),
    keyed=st.dictionaries(texts_, decimals, max_size=3),
    grants=st.dictionaries(texts_, texts_, max_size=3),
    facilities=st.frozensets(texts_, max_size=3),
)
def test_any_state_is_written_as_earlier_releases_wrote_it_and_read_back(texts, money, days, keyed, grants, facilities):
    """Text of every kind (controls, NUL, non-ASCII, keys that sort by code point), Decimals of every exponent."""
    member = MemberState(
        region=texts[0],
        member_id=texts[1],
        birth_date=days[0],
        enrolled_on=days[1],
        statuses=[Status(days[1], texts[2], texts[3])],
        contribution_base=money[0],
        monthly_pension=None,
        legacy_monthly_credit=money[1],
        designated_facilities=facilities,
        retired_on=days[2],
        earlier_periods=[(days[0], days[2])],
        certifications={texts[2]: [Certification(days[2], texts[2], money[2], texts[3])]},
        family_grants=grants,
        balance=money[3],
        bonus_points=money[2],
        health_streak=len(texts[0]),
        year_balances=keyed,
        incentives=grants,
        counters={key: keyed for key in grants},
        contributions=keyed,
    )
    text = state_json(member)
    assert text.decode() == _written_before(member)
    assert state_from_bytes(text) == member
