"""Page times of the console on a large ledger: a member with five years of history, and the fund page.

    python bench/console.py --events 1000000 --members 100000 --requests 200

Builds the ledger as bench/ledger_scale.py does (bench/generate.py's stream, ingested into a fresh embedded
PostgreSQL in a temporary directory, or in --data-dir, where a ledger already built is reused), adds one Weihai
member with five years of monthly contributions and visits (2022-07 to 2027-06), starts `medledger console` as its
own process, logs in as an auditor and times each page over HTTP: p50, p99 and max after a warm-up, and the first
request's time. A fund page computes a month's figures once and keeps them while the month's counts in
`fund_totals` stand: the first request of a month pays for the computation, the next ones do not.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEDLEDGER = [sys.executable, "-m", "consumers.cli"]
PARAMETERS = ROOT / "examples/params/150000-illustrative.toml"
MEMBER = "371000FIVEYEARS"
PASSWORD = "bench-password"


def five_years() -> list[dict]:
    """One Weihai employee's events from 2022-07 to 2027-06: a contribution and three visits a month."""
    events: list[dict] = []

    def event(kind: str, day: date, **fields) -> None:
        events.append(
            {
                "event_id": f"five-{len(events):05d}",
                "event_type": kind,
                "schema_version": 1,
                "region": "371000",
                "member_id": MEMBER,
                "occurred_at": f"{day.isoformat()}T09:00:00+08:00",
                **fields,
            }
        )

    event(
        "member.enrolled",
        date(2022, 7, 1),
        insurance_type="employee",
        person_type="in_service",
        birth_date="1975-05-15",
        effective_date="2022-07-01",
    )
    for month in range(60):
        year, index = 2022 + (6 + month) // 12, (6 + month) % 12 + 1
        event(
            "account.contribution_posted",
            date(year, index, 5),
            month=f"{year}-{index:02d}",
            contribution_base="8000.00",
            individual_amount="160.00",
            employer_amount="640.00",
        )
        for visit in range(3):
            day = date(year, index, 8 + 6 * visit)
            event(
                "visit.submitted",
                day,
                visit_id=f"FIVE{year}{index:02d}{visit}",
                facility_id="H37100200477",
                facility_level=2,
                facility_grade="A",
                facility_kind="general_hospital",
                designated=True,
                visit_kind="general",
                disease_code=None,
                inpatient_period=False,
                out_of_area="none",
                prescription=None,
                pay_with_account=visit % 2 == 0,
                account_payer_id=None,
                items=[
                    {
                        "item_code": "D1",
                        "category": "drug",
                        "amount": f"{120 + 37 * visit + index}.50",
                        "out_of_catalog_amount": "0.00",
                        "pre_self_pay_amount": "0.00",
                    }
                ],
            )
    return events


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build(work: Path, env: dict, events: int, members: int) -> None:
    stream = work / "events.jsonl"
    with open(stream, "wb") as out:
        subprocess.run(
            [sys.executable, str(ROOT / "bench/generate.py"), "--events", str(events), "--members", str(members)],
            stdout=out,
            check=True,
            cwd=ROOT,
        )
    own = work / "five-years.jsonl"
    own.write_text("".join(json.dumps(e) + "\n" for e in five_years()))
    subprocess.run(MEDLEDGER + ["db", "upgrade"], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    for path in (own, stream):  # the five-year member first: the stream closes 2023 in January 2024
        started = time.perf_counter()
        subprocess.run(
            MEDLEDGER + ["ingest", str(path), "--quiet", "--parameters", str(PARAMETERS), "--batch-size", "2500"],
            env=env,
            cwd=ROOT,
            check=True,
        )
        print(f"ingested {path.name} in {time.perf_counter() - started:.0f} s", flush=True)


def timings(opener, url: str, requests: int, warm: int = 5) -> tuple[float, list[float]]:
    """(the first request's seconds, the timed requests' seconds after `warm` more)."""
    started = time.perf_counter()
    opener.open(url).read()
    first = time.perf_counter() - started
    for _ in range(warm - 1):
        opener.open(url).read()
    seconds = []
    for _ in range(requests):
        started = time.perf_counter()
        with opener.open(url) as response:
            response.read()
            assert response.status == 200, (url, response.status)
        seconds.append(time.perf_counter() - started)
    return first, seconds


def summary(name: str, first: float, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"{name}: {len(seconds)} requests, p50 {statistics.median(ordered) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms (the first request: {first * 1000:.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--data-dir", type=Path, help="keep (or reuse) the embedded ledger here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medledger-bench-") as temporary:
        work = Path(temporary)
        data = args.data_dir or work / "data"
        env = {**os.environ, "MEDLEDGER_DATA_DIR": str(data), "MEDLEDGER_USER_PASSWORD": PASSWORD}
        env.pop("DATABASE_URL", None)
        if not (data / "pgdata").exists():
            build(work, env, args.events, args.members)
        subprocess.run(MEDLEDGER + ["users", "remove", "bench"], env=env, cwd=ROOT, capture_output=True)
        subprocess.run(MEDLEDGER + ["users", "add", "bench", "--role", "auditor"], env=env, cwd=ROOT, check=True)
        port = _free_port()
        server = subprocess.Popen(MEDLEDGER + ["console", "--port", str(port)], env=env, cwd=ROOT)
        base = f"http://127.0.0.1:{port}"
        try:
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
            for _ in range(600):
                try:
                    login = opener.open(base + "/login").read().decode()
                    break
                except OSError:
                    time.sleep(0.1)
            token = re.search(r'name="csrf" value="([^"]+)"', login).group(1)
            form = urllib.parse.urlencode({"user": "bench", "password": PASSWORD, "csrf": token, "next": ""})
            opener.open(base + "/login", data=form.encode()).read()
            pages = {
                "member page (5 years of history, latest year)": f"/member?member_id={MEMBER}",
                "member page (5 years of history, 2023)": f"/member?member_id={MEMBER}&year=2023",
                "fund page (Weihai, 2024-06)": "/fund?region=371000&month=2024-06",
                "fund page (Nanjing, 2023-03)": "/fund?region=320100&month=2023-03",
            }
            for name, path in pages.items():
                print(summary(name, *timings(opener, base + path, args.requests)), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
