"""Where a visit takes place, from the facility and the member's filings: in the region, filed, or not."""

from __future__ import annotations

from datetime import date, datetime

from gateway.counter import Counter, Filing, Registration, Stay
from gateway.reference import Facility
from gateway.visit import out_of_area, within


def facility(admdvs: str) -> Facility:
    return Facility("H1", "医院", admdvs, 3, "A", "general_hospital", True)


def test_a_province_holds_its_cities_and_a_city_its_districts():
    assert within("640104", "640000") and within("320106", "320100")
    assert not within("320201", "320100") and not within("110102", "371000")


def test_out_of_the_region_a_visit_is_as_filed_for_its_date_or_unfiled():
    counter = Counter()
    visit = Registration("M1", "H1", "371000", "P1", "310", datetime(2023, 5, 6, 9))
    assert out_of_area(counter, visit, facility("371002")) == "none"
    assert out_of_area(counter, visit, facility("110102")) == "temporary_unfiled"
    counter.filings["F1"] = Filing("F1", "371000", "P1", "long_term", date(2023, 5, 7), date(2023, 12, 31))
    assert out_of_area(counter, visit, facility("110102")) == "temporary_unfiled"  # filed from the day after
    counter.filings["F2"] = Filing("F2", "371000", "P1", "temporary_filed", date(2023, 5, 1), date(2023, 5, 31))
    assert out_of_area(counter, visit, facility("110102")) == "temporary_filed"
    counter.filings["F2"] = Filing("F2", "371000", "P1", "temporary_filed", date(2023, 5, 1), date(2023, 5, 31), True)
    assert out_of_area(counter, visit, facility("110102")) == "temporary_unfiled"  # cancelled (2502)


def test_a_visit_is_in_an_inpatient_period_from_admission_until_discharge():
    counter = Counter()
    counter.stays["I1"] = ("640000", "P1", Stay(datetime(2023, 8, 1, 8), datetime(2023, 8, 5, 10)))
    assert counter.in_stay("640000", "P1", datetime(2023, 8, 2, 9))
    assert not counter.in_stay("640000", "P1", datetime(2023, 8, 5, 10))
    assert not counter.in_stay("640000", "P2", datetime(2023, 8, 2, 9))
    assert not counter.in_stay("371000", "P1", datetime(2023, 8, 2, 9))


def test_details_cannot_change_while_the_visit_is_settling_nor_once_settled():
    import pytest

    from gateway.errors import Refused

    counter = Counter()
    visit = counter.register(Registration("M1", "H1", "371000", "P1", "310", datetime(2023, 5, 6, 9)))
    counter.changeable(visit, "d")
    visit.settling = "his-1"
    with pytest.raises(Refused) as refused:
        counter.changeable(visit, "d")
    assert refused.value.reason == "visit_settling"
    visit.settling, visit.settled = None, "S1"
    with pytest.raises(Refused) as refused:
        counter.changeable(visit, "d")
    assert refused.value.reason == "visit_settled"
