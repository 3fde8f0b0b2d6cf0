"""Hypothesis strategies: random but valid event streams for one region's members."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from tests import builders as b

FIRST_DAY = {
    b.NINGXIA: date(2023, 6, 1),
    b.WEIHAI: date(2022, 7, 1),
    b.NANJING: date(2023, 1, 1),
    b.INNER_MONGOLIA: date(2022, 10, 1),
}
PERSON_TYPES = {
    b.NINGXIA: ["in_service", "flexible", "retired"],
    b.WEIHAI: ["in_service", "flexible", "retired", "resident_tier1", "resident_tier2", "resident_minor"],
    b.NANJING: ["in_service", "retired", "veteran_pre1949"],
    b.INNER_MONGOLIA: ["in_service", "retired"],
}
DISEASES = ["I10", "E11", "C50", "N18"]
KINDS = [
    "general_hospital",
    "tcm_hospital",
    "community_health_center",
    "township_health_center",
    "village_clinic",
    "retail_pharmacy",
    "internet_hospital",
]
CATEGORIES = [
    "drug",
    "exam",
    "treatment",
    "material",
    "consultation_fee",
    "general_diagnosis_fee",
    "nucleic_acid_test",
    "health_checkup",
    "public_health",
    "other",
]

regions = st.sampled_from([b.NINGXIA, b.WEIHAI, b.NANJING, b.INNER_MONGOLIA])
fen_amounts = st.integers(min_value=0, max_value=600_000).map(lambda f: Decimal(f) / 100)


@st.composite
def items(draw):
    result = []
    for _ in range(draw(st.integers(1, 3))):
        amount = draw(fen_amounts)
        ooc = draw(st.integers(0, int(amount * 100))) / Decimal(100) if draw(st.booleans()) else Decimal(0)
        psp = draw(st.integers(0, int((amount - ooc) * 100))) / Decimal(100) if draw(st.booleans()) else Decimal(0)
        result.append(b.line(amount, draw(st.sampled_from(CATEGORIES)), ooc, psp))
    return result


@st.composite
def visit_for(draw, member: str, region: str, day: date):
    kind = draw(st.sampled_from(KINDS))
    level = 0 if kind == "village_clinic" else draw(st.integers(0, 3))
    chronic = draw(st.booleans())
    prescription = None
    if kind == "retail_pharmacy" and draw(st.booleans()):
        prescription = b.prescribed_by(
            draw(st.integers(1, 3)),
            draw(st.sampled_from(["A", "B", None])),
            draw(st.sampled_from(["general_hospital", "tcm_hospital"])),
        )
    return b.visit(
        member,
        region,
        on=day.isoformat(),
        items=draw(items()),
        level=level,
        grade=draw(st.sampled_from(["A", "B", None])),
        kind=kind,
        designated=draw(st.sampled_from([True, True, True, False])),
        inpatient=draw(st.sampled_from([False, False, False, True])),
        out_of_area=draw(st.sampled_from(["none", "none", "long_term", "temporary_filed", "temporary_unfiled"])),
        visit_kind="chronic" if chronic else "general",
        disease=draw(st.sampled_from(DISEASES)) if chronic else None,
        prescription=prescription,
        account=draw(st.booleans()),
    )


@st.composite
def member_stream(draw, region: str | None = None, max_events: int = 40):
    """An enrolment, then dated visits, reversals, contributions, pensions, certifications and a retirement."""
    b.fresh()
    region = region or draw(regions)
    start = FIRST_DAY[region]
    person = draw(st.sampled_from(PERSON_TYPES[region]))
    member = "M1"
    events = [
        b.enrolled(
            member,
            region,
            on=start.isoformat(),
            person_type=person,
            birth_date=draw(st.sampled_from(["1953-03-10", "1978-06-20", "1960-11-30"])),
            legacy_monthly_credit="150.00",
        )
    ]
    day = start
    visits: list[str] = []
    retired = person in ("retired", "veteran_pre1949")
    for _ in range(draw(st.integers(1, max_events))):
        day = day + timedelta(days=draw(st.integers(0, 40)))
        if day.year > start.year + 1:
            break
        action = draw(
            st.sampled_from(
                ["visit", "visit", "visit", "visit", "reverse", "contribution", "certify", "retire", "pension"]
            )
        )
        if action == "visit":
            event = draw(visit_for(member, region, day))
            visits.append(event["visit_id"])
        elif action == "reverse" and visits:
            event = b.reversed_visit(member, region, draw(st.sampled_from(visits)), on=day.isoformat())
        elif action == "certify":
            event = b.chronic_certified(
                member,
                region,
                draw(st.sampled_from(DISEASES)),
                draw(st.sampled_from(["1500", "3000", "8000"])),
                on=day.isoformat(),
                kind=draw(st.sampled_from(["common", "special"])),
            )
        elif action == "retire" and not retired and not person.startswith("resident"):
            retired = True
            event = b.retired(member, region, on=day.isoformat(), pension="4200.00")
        elif action == "pension" and retired:
            event = b.pension(member, region, day.strftime("%Y-%m"), "4200.00", on=day.isoformat())
        else:
            event = b.contribution(
                member, region, day.strftime("%Y-%m"), draw(st.sampled_from(["6000", "9000"])), on=day.isoformat()
            )
        events.append(event)
    return region, events
