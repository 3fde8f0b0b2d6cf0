"""Two ingests at once interleave their batches, and the ledger stays gap-free and chained."""

from __future__ import annotations

import json
import threading

import pytest

from bench.generate import generate
from tests.ledger.helpers import IM_PARAMETERS, PRODUCED, fetch, gap_free, ingest, verify


def _file(seed: int, prefix: str) -> list[str]:
    lines = []
    for event in generate(1_200, seed=seed):
        if event["event_type"] == "period.year_closed":
            continue  # both files closing the same year would race for the close; one closes it below
        event["event_id"] = f"{prefix}-{event['event_id']}"
        if "member_id" in event:
            event["member_id"] = f"{prefix}{event['member_id']}"
        if "visit_id" in event:
            event["visit_id"] = f"{prefix}{event['visit_id']}"
        lines.append(json.dumps(event))
    return lines


def _at_once(database, files: list[list[str]], parameters: str | list[str] = "", batch_size: int = 40) -> list:
    """Each file ingested by its own thread, all at the same time (under its own parameters, given a list);
    their stats."""
    results: list = [None] * len(files)
    errors: list = []
    each = parameters if isinstance(parameters, list) else [parameters] * len(files)

    def run(index: int) -> None:
        try:
            results[index] = ingest(database, files[index], each[index], batch_size=batch_size, name=f"file{index}")[0]
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(files))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def test_concurrent_ingests_never_break_the_sequence_or_the_chain(database):
    files = [_file(1, "A"), _file(2, "B")]
    results = _at_once(database, files, IM_PARAMETERS)
    total = sum(len(f) for f in files)
    assert results[0].appended + results[1].appended == total
    counts = gap_free(database)
    assert sum(counts.values()) == total + len(counts)  # and each stream's one adoption of the set both use
    sources = [r[0].split(":")[0] for r in fetch(database, f"SELECT source FROM {PRODUCED} ORDER BY seq")]
    switches = sum(1 for a, b in zip(sources, sources[1:]) if a != b)
    assert switches > 2, "the two ingests did not interleave; the test proves nothing"
    report = verify(database, batch_size=500)
    assert report.ok, (report.chain_breaks, report.differences[:5], report.projection_differences)


def test_two_ingests_settling_the_same_members_at_once_give_what_one_after_the_other_gives(database):
    """Each batch is settled while the one before it commits; another writer appending in between must make it
    settle again from the ledger, never commit what it read before."""
    from tests import builders as b

    b.fresh()
    members = [f"S{n}" for n in range(30)]
    enrolments = [b.as_line(b.enrolled(m, b.NANJING, on="2023-01-01")) for m in members]
    ingest(database, enrolments)
    files: list[list[str]] = [[], []]
    for day in range(1, 29):
        for n, member in enumerate(members):
            visit = b.visit(member, b.NANJING, on=f"2023-03-{day:02d}", items=[b.line("150.00")])
            files[(day + n) % 2].append(b.as_line(visit))
    results = _at_once(database, files, batch_size=20)
    assert results[0].appended + results[1].appended == sum(len(f) for f in files)
    assert results[0].resettled + results[1].resettled > 0, "no batch was caught between two writers"
    report = verify(database, batch_size=97)
    assert report.ok, (report.chain_breaks, report.differences[:5], report.projection_differences)
    paid = fetch(database, "SELECT count(*), sum(fund_paid) FROM ledger_settlements")[0]
    assert paid[0] == len(members) * 28


def _committed_after(database, lines: list[str], meanwhile) -> None:
    """A batch of `lines` settled, then `meanwhile()` awaited, then the batch committed: raises `Conflict` when it
    is to be settled again."""
    import asyncio

    from ledger.intake import from_lines
    from ledger.service import LedgerService

    async def scenario():
        async with LedgerService(database) as service:
            prepared = await service.prepare(list(from_lines(lines, "settled first")), None)
            await meanwhile()
            await service.commit(prepared)

    asyncio.run(scenario())


async def _ingested(database, lines: list[str], name: str):
    """`lines` ingested by a writer of their own (inside a running event loop); its stats."""
    from ledger.intake import from_lines
    from ledger.service import LedgerService

    async with LedgerService(database) as service:
        return await service.ingest(from_lines(lines, name))


def test_a_batch_settled_before_a_projection_rebuild_is_settled_again(database):
    """`projections rebuild` appends nothing; a batch read before it must still not be written over it."""
    from ledger.carry import Conflict
    from ledger.db.server import maintenance
    from ledger.replay import Replayer
    from tests import builders as b

    b.fresh()
    ingest(database, [b.as_line(b.enrolled("RB", b.NANJING, on="2023-01-01"))])
    visit = b.as_line(b.visit("RB", b.NANJING, on="2023-03-01", items=[b.line("800.00")]))
    with pytest.raises(Conflict):
        _committed_after(database, [visit], Replayer(maintenance(database)).rebuild)  # the role that rebuilds
    assert fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0] == 1
    stats = ingest(database, [visit])[0]
    assert stats.appended == 1 and verify(database).ok


def test_a_batch_read_while_the_projections_are_rebuilt_is_settled_again(database):
    """A batch's reads are statements in no transaction: one that waits for a rebuild's TRUNCATE reads the rebuilt
    projections, and one settled on either side of the rebuild must not be written over it."""
    import asyncio

    import asyncpg

    from ledger.carry import Conflict
    from ledger.db.event_store import APPEND_LOCK
    from ledger.intake import from_lines
    from ledger.service import LedgerService
    from tests import builders as b
    from tests.ledger.helpers import plain, until_waiting

    b.fresh()
    ingest(database, [b.as_line(b.enrolled("RB", b.NANJING, on="2023-01-01"))])
    visit = b.as_line(b.visit("RB", b.NANJING, on="2023-03-01", items=[b.line("800.00")]))

    async def scenario():
        rebuild = await asyncpg.connect(plain(database.owner_url))
        try:
            async with LedgerService(database) as service:
                # as `projections rebuild` does: under the append lock, the projections truncated and written again
                await rebuild.execute(
                    f"BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK}); "
                    "CREATE TEMPORARY TABLE kept AS SELECT * FROM member_state; TRUNCATE member_state; "
                    "INSERT INTO member_state SELECT * FROM kept"
                )
                reading = asyncio.create_task(service.prepare(list(from_lines([visit], "t")), None))
                waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'member_state'::regclass"
                await until_waiting(rebuild, "the batch's read of the rebuilt projections", waiting)
                assert not reading.done()
                await rebuild.execute("COMMIT")
                prepared = await reading
                assert prepared.stats.parked == 0 and prepared.published, "it read the rebuilt member"
                with pytest.raises(Conflict):
                    await service.commit(prepared)
        finally:
            await rebuild.close()

    asyncio.run(scenario())
    assert fetch(database, f"SELECT count(*) FROM {PRODUCED}")[0][0] == 1
    stats = ingest(database, [visit])[0]
    assert stats.appended == 1 and verify(database).ok


@pytest.mark.parametrize("batch_size", [1, 10], ids=["batch by batch", "one batch"])
def test_unreadable_input_carrying_a_parked_events_id_leaves_it_waiting_whatever_the_batches(database, batch_size):
    """The malformed copy is refused on its own; the parked event still settles when its member enrols, whether
    the three arrive in three batches (each read through the one before, `ledger.carry`) or in one."""
    from tests import builders as b

    b.fresh()
    parked = b.visit("PK", b.NANJING, on="2023-03-01", items=[b.line("300.00")])
    lines = [
        b.as_line(parked),
        b.as_line({**parked, "surprise": 1}),  # refused as unreadable, with the parked event's id
        b.as_line(b.enrolled("PK", b.NANJING, on="2023-01-01")),
    ]
    stats, published = ingest(database, lines, batch_size=batch_size)
    assert stats.parked == 1 and stats.rejected == 1
    assert [r["visit_id"] for r in published if "settlement_id" in r] == [parked["visit_id"]]
    settled = fetch(database, "SELECT count(*) FROM ledger_events WHERE event_id = $1", parked["event_id"])[0][0]
    assert settled == 1
    assert verify(database).ok


@pytest.mark.parametrize("members", [1, 450], ids=["one statement", "by COPY"])
def test_a_batch_whose_numbers_another_writer_took_meanwhile_is_settled_again_not_failed(database, members):
    """Another writer appended between a batch's settling and its commit: the batch's statement finds its sequence
    numbers taken. That is a conflict (the batch is settled again from the ledger), not a failure."""
    import asyncio

    from ledger.carry import Conflict
    from ledger.intake import from_lines
    from ledger.service import LedgerService
    from tests import builders as b

    b.fresh()
    lines = [b.as_line(b.enrolled(f"NB{n:04d}", b.NANJING, on="2023-01-01")) for n in range(members)]

    async def scenario():
        async with LedgerService(database) as service:
            prepared = await service.prepare(list(from_lines(lines, "t")), None)
            async with LedgerService(database) as other:
                await other.ingest(from_lines([b.as_line(b.enrolled("OTHER", b.NANJING, on="2023-01-01"))], "o"))
            with pytest.raises(Conflict):
                await service.commit(prepared)

    asyncio.run(scenario())
    assert [r[0] for r in fetch(database, f"SELECT member_id FROM {PRODUCED}")] == ["OTHER"]
    stats = ingest(database, lines)[0]
    assert stats.appended == members and verify(database).ok


def _with_refusals(region: str, prefix: str) -> list[str]:
    """Members of `region` enrolled and visiting, with input refused before it has a ledger position among them:
    lines that are not JSON, and events of the region that break the contract."""
    from tests import builders as b

    lines = []
    for n in range(40):
        member = f"{prefix}{n:03d}"
        lines.append(b.as_line(b.enrolled(member, region, on="2023-01-01")))
        lines.append(b.as_line(b.visit(member, region, on="2023-03-01", items=[b.line("120.00")])))
        lines.append(f"{{not json {prefix} {n}")
        lines.append(b.as_line({**b.visit(member, region, on="2023-03-02", items=[b.line("80.00")]), "surprise": n}))
    return lines


def test_writers_of_two_regions_refusing_unreadable_input_settle_no_batch_twice(database):
    """A refusal without a ledger position is of bytes, not of a region: a batch depends on the refusals of the
    bytes it looked up (a repeat of unreadable input is not refused twice), not on every refusal. Two writers of
    two regions refusing input as they go leave each other's batches as they were settled."""
    from tests import builders as b

    b.fresh()
    files = [_with_refusals(b.NANJING, "RN"), _with_refusals(b.WEIHAI, "RW")]
    results = _at_once(database, files, batch_size=8)
    assert [r.rejected for r in results] == [80, 80]
    assert [r.appended for r in results] == [80, 80]
    assert [r.resettled for r in results] == [0, 0]
    sources = [
        r[0].split(":")[0] for r in fetch(database, "SELECT source FROM ledger_rejections ORDER BY rejection_id")
    ]
    assert sum(1 for a, c in zip(sources, sources[1:]) if a != c) > 2, "the two writers did not interleave"
    assert verify(database).ok


def test_a_batch_settled_before_another_region_refused_unreadable_input_still_commits(database):
    from tests import builders as b

    b.fresh()
    ingest(database, [b.as_line(b.enrolled("RW1", b.WEIHAI, on="2023-01-01"))])
    visit = b.as_line(b.visit("RW1", b.WEIHAI, on="2023-03-01", items=[b.line("300.00")]))

    async def nanjing_refuses():  # another writer, of Nanjing, refuses input that names no region meanwhile
        lines = ["{not json", b.as_line(b.enrolled("RN1", b.NANJING, on="2023-01-01"))]
        assert (await _ingested(database, lines, "nanjing")).rejected == 1

    _committed_after(database, [visit], nanjing_refuses)
    assert fetch(database, "SELECT count(*) FROM ledger_settlements WHERE region = $1", b.WEIHAI)[0][0] == 1
    assert verify(database).ok


def test_a_batch_settled_before_the_same_unreadable_bytes_were_refused_is_settled_again(database):
    """The bytes a batch found unrefused and refuses itself, refused by another writer between its reads and its
    commit: it is settled again, and finds them a repeat."""
    from ledger.carry import Conflict

    async def refused_meanwhile():
        assert (await _ingested(database, ["{same bytes"], "second")).rejected == 1

    with pytest.raises(Conflict):
        _committed_after(database, ["{same bytes"], refused_meanwhile)
    assert fetch(database, "SELECT count(*) FROM ledger_rejections WHERE seq IS NULL")[0][0] == 1
    assert ingest(database, ["{same bytes"])[0].duplicates == 1


async def _refuse_parked(database, event_id: str) -> None:
    """As a sweep does for a parked event whose bytes no longer decode: its own bytes refused without a ledger
    position, which ends its wait (`db.parking.WAITING`) and moves no stream's head."""
    import asyncpg

    from tests.ledger.helpers import plain

    connection = await asyncpg.connect(plain(database.owner_url))
    try:
        await connection.execute(
            "INSERT INTO ledger_rejections (seq, event_id, source, reason, detail, payload, payload_digest, region) "
            "SELECT NULL, event_id, coalesce(source, 'parked:' || event_id), 'invalid_event', 'no longer decodes', "
            "payload, encode(sha256(convert_to(payload, 'UTF8')), 'hex'), NULL FROM parked_events WHERE event_id = $1",
            event_id,
        )
    finally:
        await connection.close()


def _parked_visit_and_enrolment():
    from tests import builders as b

    b.fresh()
    parked = b.visit("SW", b.NANJING, on="2023-03-01", items=[b.line("300.00")])
    return parked, b.as_line(parked), b.as_line(b.enrolled("SW", b.NANJING, on="2023-01-01"))


def test_a_batch_releasing_a_parked_event_refused_meanwhile_is_settled_again(database):
    """The parked event a batch read from the ledger as waiting, refused by another writer before the batch
    commits: its bytes are among those the batch depends on, so it is settled again and the event stays refused."""
    from ledger.carry import Conflict

    parked, visit, enrolment = _parked_visit_and_enrolment()
    assert ingest(database, [visit])[0].parked == 1

    async def refused_meanwhile():
        await _refuse_parked(database, parked["event_id"])

    with pytest.raises(Conflict):
        _committed_after(database, [enrolment], refused_meanwhile)
    assert ingest(database, [enrolment])[0].appended == 1
    assert fetch(database, "SELECT count(*) FROM ledger_event_ids WHERE event_id = $1", parked["event_id"])[0][0] == 0
    assert verify(database).ok


def test_a_batch_releasing_a_parked_event_through_the_batch_before_is_settled_again_once_it_is_refused(database):
    """A parked event read as waiting through the batch before (the ledger no longer shows it: another writer
    refused its bytes after that batch committed) is released only if it is still unrefused at the commit."""
    import asyncio

    from ledger.carry import Conflict
    from ledger.intake import from_lines
    from ledger.service import LedgerService
    from tests import builders as b

    parked, visit, enrolment = _parked_visit_and_enrolment()

    async def scenario():
        async with LedgerService(database) as service:
            first = await service.prepare(list(from_lines([visit], "first")), None)
            await service.commit(first)
            assert list(first.carry.parked) == [(b.NANJING, "SW")]  # parked by the batch before
            await _refuse_parked(database, parked["event_id"])
            second = await service.prepare(list(from_lines([enrolment], "second")), first.carry)
            with pytest.raises(Conflict):
                await service.commit(second)

    asyncio.run(scenario())
    assert ingest(database, [enrolment])[0].appended == 1
    assert fetch(database, "SELECT count(*) FROM ledger_event_ids WHERE event_id = $1", parked["event_id"])[0][0] == 0
    assert verify(database).ok


def test_a_repeat_of_a_parked_event_held_through_the_batch_before_is_settled_again_once_it_is_refused(database):
    """A repeat found held through the batch before (which parked it) depends on the parked event's bytes being
    unrefused, as a repeat found held in the ledger does: refused meanwhile, the batch is settled again."""
    import asyncio

    from ledger.carry import Conflict
    from ledger.intake import from_lines
    from ledger.service import LedgerService

    parked, visit, _ = _parked_visit_and_enrolment()

    async def scenario():
        async with LedgerService(database) as service:
            first = await service.prepare(list(from_lines([visit], "first")), None)
            await service.commit(first)
            await _refuse_parked(database, parked["event_id"])
            second = await service.prepare(list(from_lines([visit], "second")), first.carry)
            assert second.stats.duplicates == 1  # read through the batch before as held
            with pytest.raises(Conflict):
                await service.commit(second)

    asyncio.run(scenario())
    assert verify(database).ok


def _parked_while_another_region_takes_its_id(database, visit: bool = True) -> tuple[dict, dict]:
    """A Weihai visit parked (its member not enrolled) under an event id that a Nanjing writer appends for another
    visit (or, `visit` false, a contribution) meanwhile: each writer found the id free, and neither waits for the
    other's region. The parking batch commits, as nothing it read moved; the ledger then holds the id in Nanjing's
    stream and the visit waits under it in Weihai's."""
    from tests import builders as b

    b.fresh()
    ingest(database, [b.as_line(b.enrolled("TAKER", b.NANJING, on="2023-01-01"))])
    parked = b.visit("LATE", b.WEIHAI, on="2023-03-01", items=[b.line("300.00")])
    other = (
        b.visit("TAKER", b.NANJING, on="2023-03-01", items=[b.line("100.00")])
        if visit
        else b.contribution("TAKER", b.NANJING, "2023-02", "8000.00")
    )
    taken = {**other, "event_id": parked["event_id"]}

    async def appended_meanwhile():
        assert (await _ingested(database, [b.as_line(taken)], "nanjing writer")).appended == 1

    _committed_after(database, [b.as_line(parked)], appended_meanwhile)
    event_id = parked["event_id"]
    assert [tuple(r) for r in fetch(database, "SELECT region FROM parked_events WHERE event_id = $1", event_id)] == [
        (b.WEIHAI,)
    ]
    assert [tuple(r) for r in fetch(database, "SELECT region FROM ledger_event_ids WHERE event_id = $1", event_id)] == [
        (b.NANJING,)
    ]
    return parked, taken


def _refused_as_conflict(database, parked: dict, taken: dict) -> None:
    """The parked visit refused as a conflicting use of the id, kept with its payload as parked and no ledger
    position; it waits no more. The Nanjing visit under the id stands, and the ledger verifies."""
    event_id = parked["event_id"]
    rows = fetch(database, "SELECT seq, reason, payload, source FROM ledger_rejections WHERE event_id = $1", event_id)
    kept = fetch(database, "SELECT payload, source FROM parked_events WHERE event_id = $1", event_id)[0]
    assert [(r["seq"], r["reason"], r["source"]) for r in rows] == [(None, "event_id_conflict", kept["source"])]
    assert rows[0]["payload"] == kept["payload"] and f'"member_id":"{parked["member_id"]}"' in kept["payload"]
    members = fetch(database, "SELECT member_id FROM ledger_settlements WHERE event_id = $1", event_id)
    assert [r["member_id"] for r in members] == [taken["member_id"]]
    assert fetch(database, "SELECT count(*) FROM ledger_settlements WHERE member_id = 'LATE'")[0][0] == 0
    assert verify(database).ok


def test_a_parked_event_whose_id_another_region_took_meanwhile_is_refused_when_released(database):
    """Before, the wait of the parked visit ended when any region's stream held its id, so its member's enrolment
    released nothing, nor did the sweep ever expire it: it stayed parked for good, neither applied nor refused."""
    from tests import builders as b

    parked, taken = _parked_while_another_region_takes_its_id(database)
    stats, published = ingest(database, [b.as_line(b.enrolled("LATE", b.WEIHAI, on="2023-01-01"))])
    assert stats.appended == 1 and stats.rejected == 1
    assert [r["reason"] for r in published if "rejected" in r] == ["event_id_conflict"]
    _refused_as_conflict(database, parked, taken)
    assert ingest(database, [b.as_line(b.enrolled("LATE2", b.WEIHAI, on="2023-01-01"))])[0].rejected == 0


def test_a_parked_event_whose_id_another_region_took_meanwhile_is_refused_when_it_expires(database):
    """Expired, it would be appended to its region's stream (refused there for waiting too long) under an id the
    ledger already holds: the ledger refuses that, and the sweep's batch with it, every time."""
    from datetime import UTC, datetime, timedelta

    from tests.ledger.helpers import sweep

    parked, taken = _parked_while_another_region_takes_its_id(database)
    stats, _ = sweep(database, now=datetime.now(UTC) + timedelta(days=60), park_ttl=timedelta(days=30))
    assert stats.expired == 1
    _refused_as_conflict(database, parked, taken)
    assert sweep(database, now=datetime.now(UTC) + timedelta(days=90), park_ttl=timedelta(days=30))[0].expired == 0


def test_a_parked_event_read_through_the_batch_before_is_refused_with_its_parked_bytes(database):
    """The batch that parks the visit is still committing when the next one, settled through it, enrols the member:
    the parked visit is refused from the bytes parked, under the source parked with, as one read back from the
    ledger is. Refused with the bytes as they arrived, its parked row would wait on, and the sweep would refuse it
    a second time."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from ledger.db.parking import WAITING
    from ledger.intake import from_lines
    from ledger.service import LedgerService
    from tests import builders as b
    from tests.ledger.helpers import sweep

    b.fresh()
    ingest(database, [b.as_line(b.enrolled("TAKER", b.NANJING, on="2023-01-01"))])
    # as a producer may write it: keys in another order and spacing than the canonical bytes parked
    parked = b.visit("LATE", b.WEIHAI, on="2023-03-01", items=[b.line("300.00")])
    arrived = json.dumps(dict(reversed(list(parked.items()))), indent=1, default=str)
    taken = {**b.visit("TAKER", b.NANJING, on="2023-03-01", items=[b.line("100.00")]), "event_id": parked["event_id"]}

    async def scenario():
        async with LedgerService(database) as service:
            first = await service.prepare(list(from_lines([arrived.replace("\n", " ")], "first")), None)
            assert (await _ingested(database, [b.as_line(taken)], "nanjing writer")).appended == 1
            second = await service.prepare(
                list(from_lines([b.as_line(b.enrolled("LATE", b.WEIHAI, on="2023-01-01"))], "second")), first.carry
            )
            await service.commit(first)
            await service.commit(second)

    asyncio.run(scenario())
    assert fetch(database, "SELECT t.event_id FROM parked_events t WHERE true" + WAITING) == []
    _refused_as_conflict(database, parked, taken)
    assert sweep(database, now=datetime.now(UTC) + timedelta(days=60), park_ttl=timedelta(days=30))[0].expired == 0
    assert fetch(database, "SELECT count(*) FROM ledger_rejections WHERE event_id = $1", parked["event_id"])[0][0] == 1


def test_through_the_batch_before_only_the_bytes_parked_appended_end_a_wait():
    """Read through the batch before, a parked event waits no more when that batch appended it (its very bytes)
    or refused its parked bytes; another region's event it appended under the same id ends no wait."""
    from ledger.carry import Carry, Mark
    from ledger.chain import text_digest

    parked, other, source = '{"event_id":"x","region":"371000"}', '{"event_id":"x","region":"320100"}', "parked:x"

    def carry(**fields) -> Carry:
        return Carry(mark=Mark({}, {}), book=None, loaded={}, **fields)  # type: ignore[arg-type]

    assert carry(gone={"x"}, payloads={"x": parked}).waits_no_more("x", parked, source)
    assert not carry(gone={"x"}, payloads={"x": other}).waits_no_more("x", parked, source)
    assert carry(refused={("x", text_digest(parked), source)}).waits_no_more("x", parked, source)
    assert not carry().waits_no_more("x", parked, source)


def test_while_another_region_holds_its_id_a_parked_event_is_reported_parked(database):
    """The gateway's answer for an event id (`db.lookups.outcomes`): a visit waiting for its member's enrolment is
    `parked`, though another region's contribution, which settles nothing, holds its id."""
    import asyncio

    import asyncpg

    from ledger.db.lookups import outcomes
    from tests.ledger.helpers import plain

    parked, _ = _parked_while_another_region_takes_its_id(database, visit=False)

    async def asked():
        connection = await asyncpg.connect(plain(database.owner_url))
        try:
            return await outcomes(connection, [parked["event_id"]])
        finally:
            await connection.close()

    assert asyncio.run(asked()) == {parked["event_id"]: ("parked", None)}


def test_every_kept_signature_is_read_back_when_two_regions_keep_one_under_an_id(database, monkeypatch):
    """Kept signatures are read a chunk at a time, in event id order (`db.signatures.stored_signatures`); an id
    under which one region parked an event as another appended one has a signature in each, and a chunk that ends
    between the two must not skip the second."""
    import asyncio

    import asyncpg

    from ledger.db import signatures
    from tests.ledger.helpers import plain

    monkeypatch.setattr(signatures, "CHUNK", 2)

    async def read_back():
        connection = await asyncpg.connect(plain(database.owner_url))
        try:
            for event_id, region in (("a", "320100"), ("x", "320100"), ("x", "371000"), ("y", "371000")):
                await connection.execute(
                    "INSERT INTO ledger_signatures (event_id, producer, key_id, signature, signed, received_at, "
                    "region) VALUES ($1, 'p', 'k', '\\x00', '\\x00', now(), $2)",
                    event_id,
                    region,
                )
            return [row[0] async for rows in signatures.stored_signatures(connection) for row in rows]
        finally:
            await connection.close()

    assert asyncio.run(read_back()) == ["a", "x", "x", "y"]
