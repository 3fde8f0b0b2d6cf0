from datetime import date

import pytest

from ledger.contract import decode_event
from ledger.contract.examples import example


@pytest.mark.parametrize(
    ("occurred_at", "expected"),
    [
        # UTC evening is already the next day in Shanghai (UTC+8).
        ("2023-12-31T17:30:00+00:00", date(2024, 1, 1)),
        ("2023-12-31T15:59:59Z", date(2023, 12, 31)),
        ("2023-12-31T16:00:00Z", date(2024, 1, 1)),
        # Just before midnight Beijing time stays on the same day.
        ("2023-12-31T23:59:59+08:00", date(2023, 12, 31)),
        # A producer on US time whose local date is the 31st is already in the new year here.
        ("2023-12-31T11:00:00-05:00", date(2024, 1, 1)),
        # Offsets east of Shanghai move the date back.
        ("2024-01-01T00:30:00+09:00", date(2023, 12, 31)),
        ("2024-02-28T16:00:00Z", date(2024, 2, 29)),
    ],
)
def test_business_date_is_the_shanghai_calendar_date(occurred_at, expected):
    payload = example("period.year_closed")
    payload["occurred_at"] = occurred_at
    event = decode_event(payload)
    assert event.business_date == expected
    # The original instant and offset are kept; only the derived date is Shanghai's.
    assert event.occurred_at.isoformat().startswith(occurred_at[:19])


def test_business_date_is_on_every_event_type():
    from ledger.contract.examples import example_types

    for event_type in example_types():
        assert decode_event(example(event_type)).business_date == date(2024, 3, 1)


def test_business_dates_found_before_are_kept_by_instant_not_by_how_it_is_written():
    from ledger.contract.dates import business_date, parse_occurred_at

    late, midnight = parse_occurred_at("2023-12-31T15:59:59Z"), parse_occurred_at("2023-12-31T16:00:00Z")
    assert [business_date(late), business_date(midnight), business_date(late)] == [
        date(2023, 12, 31),
        date(2024, 1, 1),
        date(2023, 12, 31),
    ]
    same_instant = parse_occurred_at("2024-01-01T00:00:00+08:00")
    assert business_date(same_instant) == business_date(midnight) == date(2024, 1, 1)
