"""Hostile input at the contract: valid contract lines mixed with mutated ones, through `settle`, `ingest` and
`serve`. Every bad line must be refused with a reason (or acknowledged as a repeat), nothing may raise, and the
valid lines must settle exactly as they settle alone.

    python bench/fuzz.py --seed 7 --lines 50000 --ingest 5000 --serve 2000

The valid lines are the example files followed by a generated stream (bench/generate.py); after each, with
probability --bad, a mutant of a valid line already given: truncated JSON, a wrong type, 1e400, three decimals,
negative money, an unknown event type or field, a missing field, an impossible date, non-UTF-8 bytes, a NUL, a
field over its maximum, a line over the 1 MiB limit (--huge of them), an empty line, JSON that is no object, an
event id reused with other content, or an exact repeat. `settle` runs in process; `ingest` on a fresh embedded
PostgreSQL (or DATABASE_URL, which must point at an empty database); `serve` on KAFKA_BOOTSTRAP_SERVERS or a
broker started with scripts/kafka/run. The reference is `settle` of the valid lines alone. Exit 1 on a problem.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.generate import generate  # noqa: E402
from ledger.codec import dumps  # noqa: E402
from ledger.contract import EVENT_TYPES  # noqa: E402
from ledger.intake import MAX_LINE_BYTES, read_lines  # noqa: E402
from ledger.offline import settle_lines  # noqa: E402

MONEY = frozenset(
    {
        "amount",
        "contribution_base",
        "individual_amount",
        "employer_amount",
        "monthly_pension",
        "annual_cap",
        "legacy_monthly_credit",
        "out_of_catalog_amount",
        "pre_self_pay_amount",
    }
)
DATES = {"birth_date": "2023-02-30", "effective_date": "2023-04-31", "month": "2023-13"}
TEXT = ("member_id", "visit_id", "facility_id", "payment_id", "disease_code", "beneficiary_id", "reason")
RAW = "\x01raw\x01"  # stands for a JSON literal written into the line as it is (1e400)


def valid_lines(count: int, seed: int) -> list[bytes]:
    """`count` valid contract lines: the example files, then a generated stream."""
    lines = [
        line.encode()
        for name in ("nanjing", "ningxia", "weihai", "inner-mongolia")
        for line in (ROOT / f"examples/{name}.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    if count > len(lines):
        lines += [json.dumps(event).encode() for event in generate(count - len(lines), seed=seed)]
    return lines[:count]


@dataclass
class Mutant:
    kind: str
    line: bytes
    outcome: str  # "refused", "repeat" (acknowledged, not applied again) or "skipped" (an empty line)
    name: str | None = None  # the event id its refusal is filed under; None: named by where it was read
    reason: str = "invalid_event"


@dataclass
class Mix:
    lines: list[bytes] = field(default_factory=list)
    valid: list[bytes] = field(default_factory=list)
    mutants: list[Mutant] = field(default_factory=list)
    positions: dict[int, Mutant] = field(default_factory=dict)  # line number -> the mutant there

    @property
    def refused(self) -> list[Mutant]:
        return [m for m in self.mutants if m.outcome == "refused"]

    @property
    def repeats(self) -> int:
        return sum(m.outcome == "repeat" for m in self.mutants)

    def kinds(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for mutant in self.mutants:
            counted[mutant.kind] = counted.get(mutant.kind, 0) + 1
        return dict(sorted(counted.items()))


def _dump(event: Any, raw: str | None = None) -> bytes:
    text = json.dumps(event, ensure_ascii=False)
    if raw is not None:
        text = text.replace(json.dumps(RAW), raw)
    return text.encode()


def _paths(event: dict, keys) -> list[tuple]:
    found = [(key,) for key in event if key in keys and event[key] is not None]
    for index, item in enumerate(event.get("items") or ()):
        found += [("items", index, key) for key in item if key in keys and item[key] is not None]
    return found


def _set(event: dict, path: tuple, value: Any) -> None:
    target = event
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


class Mutator:
    """Mutants of valid lines, each refused for a reason of its own unless it is meant as a repeat."""

    def __init__(self, rng: random.Random, kafka: bool, huge: int):
        self.rng, self.kafka, self.huge_left = rng, kafka, huge
        self.serial = 0
        self.seen: set[bytes] = set()  # refused input so far, as the ledger tells repeats apart

    def fresh_id(self) -> str:
        self.serial += 1
        return f"fz-{self.serial:06d}"

    def mutant(self, given: list[bytes]) -> Mutant:
        kinds = [
            "truncated", "wrong_type", "1e400", "three_decimals", "negative_money", "unknown_type",
            "unknown_field", "missing_field", "impossible_date", "non_utf8", "nul_escape", "nul_byte", "surrogate",
            "over_maximum", "not_an_object", "reused_id", "repeat", "empty",
        ]  # fmt: skip
        if self.kafka:
            kinds.remove("empty")  # a file's empty line; a topic has no such record to skip
        if self.huge_left and self.rng.random() < 0.05:
            kinds = ["huge"]
        for _ in range(20):
            kind = self.rng.choice(kinds)
            source = self.rng.choice(given)
            mutant = getattr(self, "_" + kind)(orjson.loads(source), source)
            if mutant is None:
                continue  # not applicable to this event: another kind or line
            if kind == "huge":
                self.huge_left -= 1
            if mutant.outcome == "refused":
                key = mutant.line.decode("utf-8", errors="replace") if len(mutant.line) <= MAX_LINE_BYTES else None
                if key is not None and key.encode() in self.seen:
                    mutant.outcome = "repeat"  # the same unreadable input again, say two identical truncations
                elif key is not None:
                    self.seen.add(key.encode())
            return mutant
        return self._unknown_field(orjson.loads(given[0]), given[0])

    def _named(self, kind: str, event: dict, raw: str | None = None) -> Mutant:
        event["event_id"] = self.fresh_id()
        return Mutant(kind, _dump(event, raw), "refused", event["event_id"])

    def _truncated(self, event, source):
        event["event_id"] = self.fresh_id()
        line = _dump(event)
        return Mutant("truncated", line[: self.rng.randrange(1, len(line) - 1)], "refused")

    def _wrong_type(self, event, source):
        key = self.rng.choice([k for k in event if k != "event_id"])
        value = event[key]
        if key in MONEY or not isinstance(value, (bool, int, str)):
            wrong = self.rng.choice([{"x": 1}, [1, 2], True])  # money takes a string or a number, never these
        elif isinstance(value, bool):
            wrong = "yes"
        elif isinstance(value, int):
            wrong = str(value)
        else:
            wrong = 7
        event[key] = wrong
        return self._named("wrong_type", event)

    def _money(self, kind, event, value, raw=None):
        paths = _paths(event, MONEY)
        if not paths:
            return None
        _set(event, self.rng.choice(paths), value)
        return self._named(kind, event, raw)

    def _1e400(self, event, source):
        return self._money("1e400", event, RAW, "1e400")

    def _three_decimals(self, event, source):
        return self._money("three_decimals", event, "12.345")

    def _negative_money(self, event, source):
        return self._money("negative_money", event, self.rng.choice(["-1.00", "-0.01", "-0"]))

    def _unknown_type(self, event, source):
        event["event_type"] = self.rng.choice(["member.teleported", "visit.submitted ", 7, None, ""])
        return self._named("unknown_type", event)

    def _unknown_field(self, event, source):
        event[self.rng.choice(["surprise", "Member_id", "items_", "__proto__"])] = 1
        return self._named("unknown_field", event)

    def _missing_field(self, event, source):
        model = EVENT_TYPES[event["event_type"]]
        required = [name for name, info in model.model_fields.items() if info.is_required() and name in event]
        key = self.rng.choice(required)
        if key == "event_id":
            del event["event_id"]
            return Mutant("missing_field", _dump(event), "refused")
        return self._named("missing_field", {k: v for k, v in event.items() if k != key})

    def _impossible_date(self, event, source):
        paths = _paths(event, DATES) + [("occurred_at",)]
        path = self.rng.choice(paths)
        _set(event, path, DATES.get(path[-1], "2023-02-29T10:00:00+08:00"))
        return self._named("impossible_date", event)

    def _non_utf8(self, event, source):
        event["event_id"] = self.fresh_id()
        line = _dump(event)
        at = self.rng.randrange(1, len(line))
        return Mutant(
            "non_utf8", line[:at] + self.rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]) + line[at:], "refused"
        )

    def _nul_escape(self, event, source):
        paths = _paths(event, TEXT)
        if not paths:
            return None
        path = self.rng.choice(paths)
        _set(event, path, f"{event[path[0]]}\x00")  # written \u0000 in the line
        return self._named("nul_escape", event)

    def _nul_byte(self, event, source):
        event["event_id"] = self.fresh_id()
        line = _dump(event)
        at = self.rng.randrange(1, len(line))
        return Mutant("nul_byte", line[:at] + b"\x00" + line[at:], "refused")

    def _surrogate(self, event, source):
        paths = _paths(event, TEXT)
        if not paths:
            return None
        event["event_id"] = self.fresh_id()
        _set(event, self.rng.choice(paths), RAW)
        escape = self.rng.choice(['"\\ud800"', '"\\udfff"', '"x\\udc00y"'])  # a lone surrogate: not JSON text
        return Mutant("surrogate", _dump(event, escape), "refused")

    def _over_maximum(self, event, source):
        paths = _paths(event, TEXT)
        if not paths:
            return None
        _set(event, self.rng.choice(paths), "界" * 501)
        return self._named("over_maximum", event)

    def _huge(self, event, source):
        event["event_id"] = self.fresh_id()
        event["facility_id"] = "F" * (MAX_LINE_BYTES + self.rng.randrange(1, 2 * MAX_LINE_BYTES))
        return Mutant("huge", _dump(event), "refused", reason="too_large")

    def _empty(self, event, source):
        return Mutant("empty", self.rng.choice([b"", b"   ", b"\t"]), "skipped")

    def _not_an_object(self, event, source):
        return Mutant("not_an_object", _dump(self.rng.choice([[event], "event", 42, None, [], {}])), "refused")

    def _reused_id(self, event, source):
        day, _, rest = event["occurred_at"].partition("T")
        event["occurred_at"] = f"{day}T{'11' if not rest.startswith('11') else '12'}{rest[2:]}"
        return Mutant("reused_id", _dump(event), "refused", event["event_id"], "event_id_conflict")

    def _repeat(self, event, source):
        line = source if self.rng.random() < 0.5 else json.dumps(event, indent=None, separators=(",", ":")).encode()
        return Mutant("repeat", line, "repeat")


def mixed(valid: list[bytes], seed: int, bad: float = 0.25, kafka: bool = False, huge: int = 0) -> Mix:
    """The valid lines in order, each followed, with probability `bad`, by a mutant of a line already given."""
    rng = random.Random(seed)
    mutator = Mutator(rng, kafka, huge)
    mix = Mix(valid=list(valid))
    for index, line in enumerate(valid):
        mix.lines.append(line)
        while rng.random() < bad:
            mutant = mutator.mutant(valid[: index + 1])
            mix.mutants.append(mutant)
            mix.lines.append(mutant.line)
            mix.positions[len(mix.lines)] = mutant
    return mix


def as_file(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def canonical(record: dict) -> bytes:
    return orjson.dumps({k: v for k, v in record.items() if k != "ledger_seq"}, option=orjson.OPT_SORT_KEYS)


def settled(lines) -> list[dict]:
    """What `medledger settle` prints for `lines` (str, bytes or what `read_lines` gives), read back."""
    return [orjson.loads(dumps(record)) for record in settle_lines(lines)]


def problems(mix: Mix, outputs: list[dict], reference: list[dict], ordered: bool = True) -> list[str]:
    """What is wrong with the outputs of the mixed input, against `reference` (settle of the valid lines alone).
    Positions are line numbers (ordered: a file) or topic/partition/offset strings (not ordered: a topic)."""
    found: list[str] = []
    valid_ids = {orjson.loads(line)["event_id"] for line in mix.valid}

    def of_mutant(record: dict) -> bool:
        return "rejected" in record and (record["rejected"] not in valid_ids or record["reason"] == "event_id_conflict")

    refusals = [record for record in outputs if of_mutant(record)]
    rest = [record for record in outputs if not of_mutant(record)]
    expected = mix.refused
    if len(refusals) != len(expected):
        found.append(f"{len(refusals)} refusals of bad lines, expected {len(expected)}")
    for record in refusals:
        if not record.get("detail"):
            found.append(f"refusal without a detail: {str(record)[:300]}")
    reasons = Counter(record["reason"] for record in refusals)
    if reasons != Counter(m.reason for m in expected):
        found.append(f"refusals by reason: {dict(reasons)}, expected {dict(Counter(m.reason for m in expected))}")
    named = sorted(str(record["rejected"]) for record in refusals if isinstance(record["rejected"], str))
    named = [name for name in named if "/" not in name]  # a topic/partition/offset is a position
    want = sorted(m.name for m in expected if m.name is not None)
    if named != want:
        missing, extra = sorted(set(want) - set(named)), sorted(set(named) - set(want))
        found.append(f"refusals by event id differ: missing {missing[:5]}, unexpected {extra[:5]}")
    if ordered:
        at = sorted(r["rejected"] for r in refusals if isinstance(r["rejected"], int))
        want_at = sorted(n for n, m in mix.positions.items() if m.outcome == "refused" and m.name is None)
        if at != want_at:
            found.append(f"refusals by line number differ: got {at[:8]}, expected {want_at[:8]}")
        if [canonical(r) for r in rest] != [canonical(r) for r in reference]:
            found.append(_first_difference(rest, reference))
    elif sorted(map(canonical, rest)) != sorted(map(canonical, reference)):
        found.append(_first_difference(sorted(rest, key=canonical), sorted(reference, key=canonical)))
    return found


def _first_difference(got: list[dict], want: list[dict]) -> str:
    for index, (a, b) in enumerate(zip(got, want, strict=False)):
        if canonical(a) != canonical(b):
            return f"valid lines settled otherwise at output {index}: {canonical(a)[:300]!r} != {canonical(b)[:300]!r}"
    return f"valid lines gave {len(got)} outputs, alone {len(want)}"


def settle_mixed(mix: Mix) -> list[dict]:
    """`medledger settle` of the mixed file, read as the command reads it."""
    return settled(read_lines(io.BytesIO(as_file(mix.lines))))


async def ingest_mixed(db, mix: Mix, batch_size: int = 200):
    """`medledger ingest` of the mixed file, read as the command reads it: (stats, published records)."""
    from ledger.intake import from_lines
    from ledger.service import LedgerService

    published: list[dict] = []
    async with LedgerService(db, batch_size=batch_size) as service:
        stats = await service.ingest(from_lines(read_lines(io.BytesIO(as_file(mix.lines))), "fuzz"), published.extend)
    return stats, [orjson.loads(dumps(record)) for record in published]


LARGE_RECORDS = 8 * MAX_LINE_BYTES  # what the fuzzed event topic admits, so that huge records reach the consumer


async def topic_for_large_records(settings) -> None:
    """The event topic, made to admit records up to `LARGE_RECORDS` (a broker's default is about 1 MB)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        config = {"max.message.bytes": str(LARGE_RECORDS)}
        await admin.create_topics([NewTopic(settings.events_topic, 4, 1, topic_configs=config)])
    finally:
        await admin.close()


async def send_large(settings, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, max_request_size=LARGE_RECORDS)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.events_topic, value, partition=0)
    finally:
        await producer.stop()


async def serve_mixed(settings, db, mix: Mix, reference: list[dict], timeout: float = 300.0) -> list[dict]:
    """The mixed lines as records of the event topic (a huge one too: the topic admits it), `serve` running until
    every expected output is on the output topics or `timeout`: the outputs deduplicated as consumers do."""
    from consumers.app import Service
    from consumers.produce import produce
    from consumers.topics import ensure_topics
    from ledger.service import LedgerService
    from tests.kafka.streams import Topic

    await topic_for_large_records(settings)
    await ensure_topics(settings)
    await send_large(settings, [line for line in mix.lines if len(line) > MAX_LINE_BYTES])
    await produce(settings, [line for line in mix.lines if len(line) <= MAX_LINE_BYTES])

    wanted = len(mix.refused) + len(reference)
    outputs = Topic(settings, settings.settlements_topic, settings.rejections_topic)

    def deduplicated(values: list[dict]) -> list[dict]:
        return list({_identity(value): value for value in values}.values())  # at least once: a record may come twice

    async with Service(settings, LedgerService(db, batch_size=settings.batch_size)).app:
        await outputs.read_until(lambda values: len(deduplicated(values)) >= wanted, timeout=timeout)
    return deduplicated(outputs.values())


def _identity(record: dict) -> bytes:
    for key in ("settlement_id", "movement_id"):
        if key in record:
            return f"{key}:{record[key]}".encode()
    return canonical(record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lines", type=int, default=20_000, help="valid lines for settle")
    parser.add_argument("--bad", type=float, default=0.25, help="chance of a mutant after each valid line")
    parser.add_argument("--huge", type=int, default=3, help="lines over the 1 MiB limit, at most")
    parser.add_argument("--ingest", type=int, default=0, help="valid lines for ingest (0: not run)")
    parser.add_argument("--serve", type=int, default=0, help="valid lines for serve (0: not run)")
    args = parser.parse_args()
    failed = False

    def report(what: str, mix: Mix, found: list[str], started: float) -> None:
        nonlocal failed
        failed |= bool(found)
        print(
            f"{what}: {len(mix.valid)} valid + {len(mix.mutants)} bad lines ({len(mix.refused)} to refuse, "
            f"{mix.repeats} repeats) in {time.perf_counter() - started:.1f} s: "
            + ("ok" if not found else f"{len(found)} problem(s)")
        )
        for problem in found:
            print(f"  {problem}")

    valid = valid_lines(args.lines, args.seed)
    started = time.perf_counter()
    mix = mixed(valid, args.seed, args.bad, huge=args.huge)
    print(f"mutants: {mix.kinds()}")
    report("settle", mix, problems(mix, settle_mixed(mix), settled(valid)), started)

    with tempfile.TemporaryDirectory(prefix="medledger-fuzz-") as scratch:
        if args.ingest:
            report_ingest(args, Path(scratch), report)
        if args.serve:
            report_serve(args, Path(scratch), report)
    sys.exit(1 if failed else 0)


def _database(scratch: Path, name: str):
    import os

    from ledger.db.server import locate, start_embedded

    if os.environ.get("DATABASE_URL"):
        return locate()
    return start_embedded(scratch / name)


def report_ingest(args, scratch: Path, report) -> None:
    valid = valid_lines(args.ingest, args.seed)
    mix = mixed(valid, args.seed + 1, args.bad, huge=min(args.huge, 1))
    started = time.perf_counter()
    stats, published = asyncio.run(ingest_mixed(_database(scratch, "ingest"), mix))
    found = problems(mix, published, settled(valid))
    if stats.duplicates != mix.repeats:
        found.append(f"ingest counted {stats.duplicates} repeats, expected {mix.repeats}")
    report("ingest", mix, found, started)


def report_serve(args, scratch: Path, report) -> None:
    import os
    from dataclasses import replace

    from tests.kafka.conftest import own_settings

    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        from tests.kafka.broker import TestBroker

        broker = TestBroker(scratch / "kafka", own=True)
        bootstrap = broker.bootstrap
    try:
        settings = replace(own_settings(bootstrap, prefix="fuzz"), batch_size=200)
        valid = valid_lines(args.serve, args.seed)
        mix = mixed(valid, args.seed + 2, args.bad, kafka=True, huge=min(args.huge, 1))
        reference = settled(valid)
        started = time.perf_counter()
        outputs = asyncio.run(serve_mixed(settings, _database(scratch, "serve"), mix, reference))
        report("serve", mix, problems(mix, outputs, reference, ordered=False), started)
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
