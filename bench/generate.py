"""A deterministic stream of mixed contract events across the four regions, for benchmarks.

python bench/generate.py --events 200000 > /tmp/stream.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import date, timedelta

REGIONS = {
    "640000": date(2023, 6, 1),
    "371000": date(2023, 1, 1),
    "320100": date(2023, 1, 1),
    "150000": date(2023, 1, 1),
}
PERSONS = {
    "640000": ["in_service", "in_service", "flexible", "retired"],
    "371000": ["in_service", "retired", "resident_tier1", "resident_tier2"],
    "320100": ["in_service", "in_service", "retired", "veteran_pre1949"],
    "150000": ["in_service", "retired"],
}
KINDS = [
    ("general_hospital", 3, "A"),
    ("general_hospital", 3, "B"),
    ("general_hospital", 2, "A"),
    ("community_health_center", 1, None),
    ("tcm_hospital", 2, "A"),
    ("township_health_center", 1, None),
]
CATEGORIES = ["drug", "drug", "exam", "treatment", "material", "consultation_fee"]


def _envelope(n: int, event_type: str, region: str, day: date, member: str | None) -> dict:
    event = {
        "event_id": f"b-{n:08d}",
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": f"{day.isoformat()}T10:00:00+08:00",
        "region": region,
    }
    if member:
        event["member_id"] = member
    return event


def generate(total: int, seed: int = 7, members: int | None = None):
    rng = random.Random(seed)
    members_per_region = max(10, (members // len(REGIONS)) if members else total // 100)
    timeline: list[tuple[date, int, dict]] = []
    n = 0

    def add(day: date, event: dict) -> None:
        nonlocal n
        timeline.append((day, n, event))
        n += 1

    for region, start in REGIONS.items():
        for i in range(members_per_region):
            member = f"{region}{i:08d}"
            person = rng.choice(PERSONS[region])
            insurance = "resident" if person.startswith("resident") else "employee"
            event = _envelope(n, "member.enrolled", region, date(2022, 12, 1), member)
            event.update(
                insurance_type=insurance,
                person_type=person,
                birth_date=f"{rng.randint(1945, 2000)}-{rng.randint(1, 12):02d}-15",
                effective_date="2022-12-01",
                legacy_monthly_credit="180.00",
            )
            add(date(2022, 12, 1), event)
            if region != "371000" and rng.random() < 0.3:
                event = _envelope(n, "member.chronic_certified", region, start, member)
                event.update(disease_code="E11", annual_cap="3000.00", effective_date=start.isoformat())
                add(start, event)
    per_member = total // (members_per_region * len(REGIONS)) - 2
    posted: set[tuple[str, str]] = set()  # one contribution per member and month: a second would be refused
    for region, start in REGIONS.items():
        span = (date(2024, 12, 31) - start).days
        for i in range(members_per_region):
            member = f"{region}{i:08d}"
            for _ in range(max(1, per_member)):
                day = start + timedelta(days=rng.randrange(span))
                roll = rng.random()
                month = day.strftime("%Y-%m")
                if roll < 0.2 and (member, month) not in posted:
                    posted.add((member, month))
                    event = _envelope(n, "account.contribution_posted", region, day, member)
                    event.update(
                        month=month,
                        contribution_base="8000.00",
                        individual_amount="160.00",
                        employer_amount="640.00",
                    )
                else:
                    kind, level, grade = rng.choice(KINDS)
                    items = [
                        {
                            "item_code": f"I{k}",
                            "category": rng.choice(CATEGORIES),
                            "amount": f"{rng.randint(1000, 300000) / 100:.2f}",
                            "out_of_catalog_amount": "0.00",
                            "pre_self_pay_amount": "0.00",
                        }
                        for k in range(rng.randint(1, 4))
                    ]
                    event = _envelope(n, "visit.submitted", region, day, member)
                    chronic = region != "371000" and rng.random() < 0.1
                    event.update(
                        visit_id=f"v{n}",
                        facility_id=f"F{level}{kind[:3]}",
                        facility_level=level,
                        facility_grade=grade,
                        facility_kind=kind,
                        designated=rng.random() > 0.02,
                        visit_kind="chronic" if chronic else "general",
                        disease_code="E11" if chronic else None,
                        inpatient_period=False,
                        out_of_area="none",
                        prescription=None,
                        pay_with_account=rng.random() < 0.5,
                        account_payer_id=None,
                        items=items,
                    )
                add(day, event)
    for region in REGIONS:
        add(date(2024, 1, 2), {**_envelope(n, "period.year_closed", region, date(2024, 1, 2), None), "year": 2023})
    timeline.sort(key=lambda entry: (entry[0], entry[1]))
    return [event for _, _, event in timeline]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--members", type=int, default=None, help="members across the four regions")
    args = parser.parse_args()
    out = sys.stdout
    for event in generate(args.events, args.seed, args.members):
        out.write(json.dumps(event, separators=(",", ":")))
        out.write("\n")


if __name__ == "__main__":
    main()
