"""member_year as ingest leaves it is what a rebuild from the ledger writes: each batch writes again only the
years its events can have changed (`ledger.batch.Touched`), told by what they did (the periods of a settlement's
deltas, the year of a movement, the type of the event), and misses none, whatever the stream and the batch
boundaries. On the memory recorder, which writes the rows a batch gives as PostgreSQL does."""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.codec import state_from_bytes
from ledger.intake import from_lines
from ledger.memory_recorder import MemoryRecorder
from ledger.service import LedgerService
from policies.summary import years_of
from projections import member_year
from tests.ledger.helpers import IM_PARAMETERS
from tests.properties.streams import ledger_stream

PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ingested(lines: list[str], batch_size: int) -> tuple[MemoryRecorder, dict]:
    """The recorder after ingest, and member_year as a rebuild writes it from the members' final states."""
    recorder = MemoryRecorder()

    async def run() -> dict:
        async with LedgerService(None, IM_PARAMETERS, batch_size=batch_size, recorder=recorder) as service:
            await service.ingest(from_lines(lines, "stream"), lambda _: None)
            rebuilt = {}
            for state, _ in recorder.tables.member_state.values():
                member = state_from_bytes(state)
                for row in member_year.rows(member, years_of(member), service.registry):
                    rebuilt[row[:3]] = row
            return rebuilt

    return recorder, asyncio.run(run())


@PROFILE
@given(stream=ledger_stream(max_events=80), batch_size=st.integers(1, 12))
def test_the_years_a_batch_writes_leave_member_year_as_a_rebuild_writes_it(stream, batch_size):
    recorder, rebuilt = ingested([json.dumps(event) for event in stream.events], batch_size)
    assert recorder.tables.member_state  # the stream's members were settled
    assert recorder.tables.member_year == rebuilt


def test_every_event_type_of_the_streams_is_ingested():
    """The property above holds over streams of every event type the contract has, each type settled somewhere."""
    types: set[str] = set()

    # the same streams every run, and enough of them that each type is among them many times over (a type is in
    # about a quarter of the streams or more)
    @settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(stream=ledger_stream(max_events=80))
    def collect(stream):
        recorder, _ = ingested([json.dumps(event) for event in stream.events], 50)
        types.update(e.event_type for e in recorder.tables.events)

    collect()
    assert {
        "member.retired",
        "member.insurance_type_changed",
        "member.terminated",
        "member.chronic_certified",
        "visit.reversed",
        "account.external_fund_payment",
        "account.payment_requested",
        "period.year_closed",
    } <= types
