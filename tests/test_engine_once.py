"""What the engine makes once and hands out again (a facility's rating) is what it would make afresh."""

from __future__ import annotations

from types import SimpleNamespace

from policies.visit import Facility, rated_facility


def _visit(kind: str, level: int, grade: str | None = None, prescription: object = None) -> SimpleNamespace:
    return SimpleNamespace(facility_kind=kind, facility_level=level, facility_grade=grade, prescription=prescription)


def test_a_rating_is_made_once_and_every_rating_is_its_own():
    first = rated_facility(_visit("general_hospital", 3, "A"))
    assert first == Facility(3, "A", "general_hospital", False)
    assert rated_facility(_visit("general_hospital", 3, "A")) is first
    assert rated_facility(_visit("general_hospital", 3, "B")) == Facility(3, "B", "general_hospital", False)
    assert rated_facility(_visit("general_hospital", 2, "A")) == Facility(2, "A", "general_hospital", False)
    assert rated_facility(_visit("community_health_center", 0)) == Facility(1, None, "community_health_center", False)
    assert rated_facility(_visit("village_clinic", 2)) == Facility(0, None, "village_clinic", False)
    prescribed = _visit("retail_pharmacy", 1, prescription=_visit("general_hospital", 3, "A"))
    assert rated_facility(prescribed) == Facility(3, "A", "general_hospital", True)
    assert rated_facility(_visit("retail_pharmacy", 1)) is None
