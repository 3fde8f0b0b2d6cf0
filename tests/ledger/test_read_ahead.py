"""A batch the service prepares reads its repeats, its members and the visits it names in one round trip
(`LedgerSession.held` with `ahead_of`), and settles as if it had read them one after the other."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from ledger.db import recorder as postgres
from ledger.intake import from_lines
from ledger.offline import settle_lines
from ledger.service import LedgerService
from tests import builders as b
from tests.ledger.helpers import fetch, ingest


class Logged:
    """A session's connection, each statement it is sent kept in `sent`."""

    def __init__(self, raw, sent: list[str]):
        self._raw, self._sent = raw, sent

    def __getattr__(self, name):
        found = getattr(self._raw, name)
        if name in {"fetch", "fetchrow", "fetchval", "execute"}:

            async def sent(query, *arguments, **options):
                self._sent.append(query)
                return await found(query, *arguments, **options)

            return sent
        return found


@pytest.fixture
def sent(monkeypatch) -> list[str]:
    """The statements every PostgreSQL recorder session is sent from now on."""
    statements: list[str] = []
    opened = postgres.PostgresSession.__init__

    def logging_session(self, raw, names=postgres.LIVE):
        opened(self, Logged(raw, statements), names)

    monkeypatch.setattr(postgres.PostgresSession, "__init__", logging_session)
    return statements


def _without_seq(outputs):
    return [{k: v for k, v in o.items() if k != "ledger_seq"} for o in outputs]


def test_a_prepared_batch_reads_its_repeats_members_and_visits_in_one_round_trip(database, sent):
    b.fresh()
    before = [
        b.enrolled("M1", b.NANJING, on="2023-01-01"),
        b.enrolled("M2", b.NANJING, on="2023-01-01"),
        b.visit("M1", b.NANJING, on="2023-03-01", items=[b.line("800.00")]),
    ]
    ingest(database, [b.as_line(e) for e in before])
    batch = [
        b.visit("M2", b.NANJING, on="2023-04-01", items=[b.line("300.00")]),
        b.reversed_visit("M1", b.NANJING, before[2]["visit_id"], on="2023-04-02"),
        before[1],  # a repeat: acknowledged, never applied twice
    ]
    published: list[dict] = []

    async def run():
        async with LedgerService(database, "", clock=lambda: datetime(2023, 5, 1, tzinfo=UTC)) as service:
            sent.clear()  # what starting the service read
            prepared = await service.prepare(list(from_lines([b.as_line(e) for e in batch], "test")), None)
            read = list(sent)
            await service.commit(prepared)
            published.extend(prepared.published)
            return prepared, read

    prepared, read = asyncio.run(run())
    ahead = [q for q in read if "ledger_event_ids" in q]
    assert len(ahead) == 1, read
    assert [q for q in read if "FROM member_state t " in q] == ahead  # the members were read with the repeats
    assert [q for q in read if "t.visit_id = k.id" in q] == ahead  # and so was the visit that is reversed
    assert prepared.stats.duplicates == 1

    offline = settle_lines([b.as_line(e) for e in before + batch[:2]])
    assert _without_seq(published) == _without_seq(offline[-len(published) :])
    reversal = b.reversal_of(published, batch[1])
    assert reversal["reverses"] == b.settlements(offline)[0]["settlement_id"]


def test_a_batch_of_repeats_reads_nothing_more_and_carries_nothing_it_did_not_settle(database, sent):
    # As after a rewind: every record is one the ledger holds. What was read ahead for them is not taken into the
    # book, so the batch reads no reversal of the visit it repeats, and the next batch, reading through it, loads
    # its members afresh with the parameters they were settled under.
    b.fresh()
    before = [
        b.enrolled("M1", b.NANJING, on="2023-01-01"),
        b.visit("M1", b.NANJING, on="2023-03-01", items=[b.line("800.00")]),
    ]
    ingest(database, [b.as_line(e) for e in before])

    async def run():
        async with LedgerService(database, "", clock=lambda: datetime(2023, 5, 1, tzinfo=UTC)) as service:
            sent.clear()
            return await service.prepare(list(from_lines([b.as_line(e) for e in before], "test")), None)

    prepared = asyncio.run(run())
    assert prepared.stats.duplicates == 2 and prepared.published == []
    assert [q for q in sent if "ledger_event_ids" in q] and not [q for q in sent if "SELECT reverses" in q], sent
    assert prepared.carry.book.members == {} and prepared.carry.book.visits == {}


def test_a_member_is_read_with_the_parameters_of_its_last_event_without_a_probe_of_the_events(database, sent):
    """member_state keeps the digest of the parameter set each state's last event was settled under (migration
    0014): reading a batch's members costs no random read of the events, and says what the probe said."""
    b.fresh()
    ingest(database, [b.as_line(e) for e in (b.enrolled("M1", b.NANJING, on="2023-01-01"),)])
    batch = [b.visit("M1", b.NANJING, on="2023-03-01", items=[b.line("300.00")])]

    async def run():
        async with LedgerService(database, "", clock=lambda: datetime(2023, 5, 1, tzinfo=UTC)) as service:
            sent.clear()
            prepared = await service.prepare(list(from_lines([b.as_line(e) for e in batch], "test")), None)
            await service.commit(prepared)
            return service.digest

    digest = asyncio.run(run())
    members = [q for q in sent if "FROM member_state t " in q]
    assert members and all("ledger_events" not in q.split("FROM member_state t ")[1] for q in members), members
    kept = fetch(
        database,
        "SELECT m.params_digest, e.params_digest FROM member_state m "
        "JOIN ledger_events e ON e.seq = m.last_seq AND e.region = m.region",
    )
    assert kept == [(digest, digest)]
