"""Hypothesis strategies: random but valid event streams of several members in one or two regions, using every
event type of the contract, with amounts near the plausibility limits; and forged events that are implausible
whatever came before them (policies.limits), to mix in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from policies.limits import Limits
from policies.money import fen
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
# Who a member may become (member.insurance_type_changed): Weihai moves between employee and resident tiers.
TYPE_CHANGES = {
    b.NINGXIA: ["in_service", "flexible"],
    b.WEIHAI: ["in_service", "flexible", "resident_tier1", "resident_tier2"],
    b.NANJING: ["in_service"],
    b.INNER_MONGOLIA: ["in_service"],
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
PURPOSES = ["own_medical", "family_medical", "family_resident_premium", "ltc_premium", "supplementary_insurance"]
PURPOSES += ["large_amount_premium", "health_checkup", "vaccine", "family_doctor_fee", "public_health", "fitness"]
FAMILY_PURPOSES = {"family_medical", "family_resident_premium"}
LIMITS = Limits()  # the default bounds; the streams run with them
LAST_DAY = date(2024, 12, 31)

regions = st.sampled_from([b.NINGXIA, b.WEIHAI, b.NANJING, b.INNER_MONGOLIA])
fen_amounts = st.integers(min_value=0, max_value=600_000).map(lambda f: Decimal(f) / 100)


def near(low: Decimal, high: Decimal):
    """An amount at a bound, a fen inside it, or in between."""
    return st.sampled_from([low, low + Decimal("0.01"), high - Decimal("0.01"), high]) | st.integers(
        int(low * 100), int(high * 100)
    ).map(lambda f: Decimal(f) / 100)


bases = near(LIMITS.contribution_base_min, LIMITS.contribution_base_max)
pensions = near(Decimal("1000.00"), LIMITS.monthly_pension_max)
caps = st.sampled_from(["1500.00", "3000.00", "8000.00"]) | near(Decimal("100.00"), LIMITS.chronic_cap_max).map(str)


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
def visit_for(draw, member: str, region: str, day: date, payer: str | None = None):
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
    largest = draw(st.integers(0, 30)) == 0  # now and then a visit of the per-event maximum itself
    return b.visit(
        member,
        region,
        on=day.isoformat(),
        items=[b.line(LIMITS.visit_total_max)] if largest else draw(items()),
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
        payer=payer,
    )


@dataclass
class Person:
    member_id: str
    region: str
    person_type: str
    retired: bool = False
    terminated: bool = False
    posted: dict[str, str] = field(default_factory=dict)  # month -> base of its contribution


@dataclass
class Stream:
    """A stream and what it holds: its members, the contributions posted, the visits settled."""

    events: list[dict]
    people: list[Person]
    contributions: list[dict]
    last_day: date

    @property
    def regions(self) -> set[str]:
        return {person.region for person in self.people}


def _enrolment(draw, person: Person, day: date) -> dict:
    kw = {}
    if draw(st.booleans()):
        kw["contribution_base"] = draw(bases)
    if person.person_type in ("retired", "veteran_pre1949") or draw(st.booleans()):
        kw["monthly_pension"] = draw(pensions)
    kw["legacy_monthly_credit"] = draw(st.sampled_from(["150.00", "1000.00", "0.01"]))
    if person.region == b.WEIHAI and draw(st.integers(0, 3)) == 0:
        kw["designated_facilities"] = [f"F-{b.WEIHAI}-general_hospital-3A"]
    if person.region == b.NINGXIA:
        kw["remote_pilot"] = draw(st.booleans())
    ahead = draw(st.sampled_from([0, 0, 0, 15, LIMITS.effective_days_ahead_max]))
    return b.enrolled(
        person.member_id,
        person.region,
        on=day.isoformat(),
        effective_date=(day + timedelta(days=ahead)).isoformat(),
        person_type=person.person_type,
        birth_date=draw(st.sampled_from(["1953-03-10", "1978-06-20", "1960-11-30", "2010-02-01"])),
        **kw,
    )


ACTIONS = ["visit"] * 6 + ["reverse"] * 2 + ["contribution"] * 3 + ["correction", "pension", "pension"]
ACTIONS += ["certify", "adjust", "revoke", "retire", "type", "interrupt", "resume", "authorize", "revoke_aid"]
ACTIONS += ["payment", "payment", "external", "terminate"]


@st.composite
def ledger_stream(draw, region: str | None = None, max_events: int = 60) -> Stream:
    """Enrolments of two to four members in each of one or two regions, then dated events of every type among
    them, and year closes on the last day of a year or after it."""
    b.fresh()
    chosen = [region] if region else draw(st.lists(regions, min_size=1, max_size=2, unique=True))
    start = min(FIRST_DAY[r] for r in chosen)
    people = [
        Person(f"{r}-M{i}", r, draw(st.sampled_from(PERSON_TYPES[r])))
        for r in chosen
        for i in range(draw(st.integers(2, 4)))
    ]
    events = [_enrolment(draw, person, FIRST_DAY[person.region]) for person in people]
    contributions: list[dict] = []
    visits: dict[str, list[str]] = {}
    grants: set[tuple[str, str]] = set()
    day, closed = start, set()
    for _ in range(draw(st.integers(1, max_events))):
        day = day + timedelta(days=draw(st.integers(0, 30)))
        if day > LAST_DAY:
            break
        for r in chosen:  # a year closes on its last day or after it, once
            if day.year - 1 >= FIRST_DAY[r].year and (r, day.year - 1) not in closed and draw(st.booleans()):
                closed.add((r, day.year - 1))
                events.append(b.year_closed(r, day.year - 1, on=day.isoformat()))
        person = draw(st.sampled_from(people))
        member, r, on = person.member_id, person.region, day.isoformat()
        month = day.strftime("%Y-%m")
        others = [p.member_id for p in people if p.region == r and p is not person]
        action = draw(st.sampled_from(ACTIONS))
        if action == "visit":
            payer = draw(st.sampled_from([None, None, *others]))
            event = draw(visit_for(member, r, day, payer))
            visits.setdefault(member, []).append(event["visit_id"])
        elif action == "reverse" and visits.get(member):
            event = b.reversed_visit(member, r, draw(st.sampled_from(visits[member])), on=on)
        elif action == "contribution" and month not in person.posted:
            event = _contribution(person, month, draw(bases), on=on)
            person.posted[month] = event["contribution_base"]
            contributions.append(event)
        elif action == "correction" and person.posted:
            posted = draw(st.sampled_from(sorted(person.posted)))
            reason = draw(st.sampled_from(["base revised", "重新核定缴费基数"]))
            event = _contribution(
                person, posted, draw(bases), on=on, event_type="account.contribution_corrected", reason=reason
            )
        elif action == "pension":
            event = b.pension(member, r, month, draw(pensions), on=on)
        elif action == "certify":
            kind = draw(st.sampled_from(["common", "special"]))
            event = b.chronic_certified(member, r, draw(st.sampled_from(DISEASES)), draw(caps), on=on, kind=kind)
        elif action == "adjust":
            event = b.cap_adjusted(member, r, draw(st.sampled_from(DISEASES)), draw(caps), on=on)
        elif action == "revoke":
            event = b.chronic_revoked(member, r, draw(st.sampled_from(DISEASES)), on=on)
        elif action == "retire" and not person.retired and not person.person_type.startswith("resident"):
            person.retired = True
            event = b.retired(member, r, on=on, pension=draw(pensions))
        elif action == "type":
            person.person_type = draw(st.sampled_from(TYPE_CHANGES[r]))
            event = b.type_changed(member, r, on, person.person_type)
        elif action == "interrupt":
            event = b.interrupted(member, r, on)
        elif action == "resume":
            event = b.resumed(member, r, on)
        elif action in ("authorize", "revoke_aid") and others:
            beneficiary = draw(st.sampled_from(others))
            relation = draw(st.sampled_from(["spouse", "parent", "child", "spouse_parent"]))
            if action == "authorize":
                grants.add((member, beneficiary))
                event = b.aid_authorized(member, r, beneficiary, relation, on=on)
            else:
                event = b.aid_revoked(member, r, beneficiary, relation, on=on)
        elif action == "payment":
            purpose = draw(st.sampled_from(PURPOSES))
            beneficiary = draw(st.sampled_from(others)) if purpose in FAMILY_PURPOSES and others else None
            if purpose in FAMILY_PURPOSES and beneficiary is None:
                purpose = "own_medical"
            amount = draw(st.integers(0, 60_000).map(lambda f: Decimal(f) / 100) | st.just(LIMITS.payment_max))
            event = b.payment(member, r, amount, purpose, on=on, beneficiary=beneficiary)
        elif action == "external":
            amount = draw(fen_amounts | st.just(LIMITS.external_fund_payment_max))
            event = b.external_fund(member, r, amount, draw(st.sampled_from(["inpatient", "manual_reimbursement"])), on)
        elif action == "terminate" and not person.terminated and draw(st.integers(0, 3)) == 0:
            person.terminated = True
            event = b.terminated(member, r, on, draw(st.sampled_from(["death", "emigration", "transfer_out"])))
        else:
            event = draw(visit_for(member, r, day))
            visits.setdefault(member, []).append(event["visit_id"])
        events.append(event)
    return Stream(events, people, contributions, day)


def _contribution(person: Person, month: str, base: Decimal, **kw) -> dict:
    """In service: 2% of the base from the member (the builder's default); a flexible worker pays the whole
    contribution himself (001 第二十五条: 7.75% of the base in 2023), more than the account's 2%."""
    if person.person_type == "flexible":
        kw.update(individual=fen(base * Decimal("0.0775")), employer="0.00")
    return b.contribution(person.member_id, person.region, month, base, **kw)


# --- forged events: implausible whatever the state -------------------------------------------------------------

FORGERIES = [
    "base_above",
    "base_below",
    "correction_above",
    "pension_above",
    "legacy_above",
    "enrolment_ahead",
    "cap_above",
    "cap_adjusted_above",
    "early_close",
    "visit_above",
    "payment_above",
    "external_above",
    "duplicate_contribution",
]
above_base = st.integers(int(LIMITS.contribution_base_max * 100) + 1, 10**17 - 1).map(lambda f: Decimal(f) / 100)
huge = st.sampled_from(["999999999999999.99", "20000000000000.00", "999999999999.00"]).map(Decimal)


def _over(limit: Decimal):
    return st.sampled_from([limit + Decimal("0.01")]) | huge.filter(lambda amount: amount > limit)


@st.composite
def forged(draw, stream: Stream, index: int, day: date) -> dict:
    """An event that every state refuses: above or below a bound, a year closed before its last day, or a
    contribution for a month already posted (placed after the one it repeats)."""
    person = draw(st.sampled_from(stream.people))
    member, r, on = person.member_id, person.region, day.isoformat()
    month = day.strftime("%Y-%m")
    kind = draw(st.sampled_from(FORGERIES))
    fresh = f"FORGED-{index}"
    if kind == "base_above":
        return b.contribution(member, r, month, draw(above_base), on=on)
    if kind == "base_below":
        base = draw(st.integers(0, int(LIMITS.contribution_base_min * 100) - 1).map(lambda f: Decimal(f) / 100))
        return b.contribution(member, r, month, base, on=on)
    if kind == "correction_above":
        return b.contribution(
            member, r, month, draw(above_base), on=on, event_type="account.contribution_corrected", reason="forged"
        )
    if kind == "pension_above":
        return b.pension(member, r, month, draw(_over(LIMITS.monthly_pension_max)), on=on)
    if kind == "legacy_above":
        return b.enrolled(
            fresh, r, on=on, person_type="retired", legacy_monthly_credit=draw(_over(LIMITS.legacy_monthly_credit_max))
        )
    if kind == "enrolment_ahead":
        ahead = draw(st.integers(LIMITS.effective_days_ahead_max + 1, 3000))
        return b.enrolled(fresh, r, on=on, effective_date=(day + timedelta(days=ahead)).isoformat())
    if kind == "cap_above":
        return b.chronic_certified(member, r, draw(st.sampled_from(DISEASES)), draw(_over(LIMITS.chronic_cap_max)), on)
    if kind == "cap_adjusted_above":
        return b.cap_adjusted(member, r, draw(st.sampled_from(DISEASES)), draw(_over(LIMITS.chronic_cap_max)), on)
    if kind == "early_close":
        year = draw(st.sampled_from([day.year, day.year + 1, 2030])) if day.month < 12 or day.day < 31 else 2030
        return b.year_closed(r, year, on=on, at=draw(st.sampled_from(["00:00:00", "23:59:59"])))
    if kind == "visit_above":
        amounts = [
            LIMITS.visit_total_max - Decimal("1.00"),
            draw(st.integers(101, 10**9).map(lambda f: f / Decimal(100))),
        ]
        return b.visit(member, r, on=on, items=[b.line(a) for a in amounts], account=True)
    if kind == "payment_above":
        return b.payment(member, r, draw(_over(LIMITS.payment_max)), on=on)
    if kind == "external_above":
        return b.external_fund(member, r, draw(_over(LIMITS.external_fund_payment_max)), on=on)
    if stream.contributions:  # duplicate_contribution: a month's contribution again, later in the stream
        original = draw(st.sampled_from(stream.contributions))
        return {**original, "event_id": f"DUP-{index}", "occurred_at": f"{LAST_DAY.isoformat()}T23:00:00+08:00"}
    return b.year_closed(r, 2030, on=on)


@st.composite
def with_forgeries(draw, stream: Stream) -> tuple[list[dict], set[str]]:
    """The stream with forged events mixed in (duplicates after everything), and the forged events' ids."""
    events = list(stream.events)
    ids: set[str] = set()
    tail = []
    for index in range(draw(st.integers(1, 12))):
        at = draw(st.integers(len(stream.people), len(events)))
        before = events[at - 1]
        day = date.fromisoformat(before["occurred_at"][:10])
        event = draw(forged(stream, index, day))
        ids.add(event["event_id"])
        if event["event_id"].startswith("DUP-"):
            tail.append(event)
        else:
            events.insert(at, event)
    return events + tail, ids
