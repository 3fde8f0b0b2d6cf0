"""A replay builds no records for the topics (`Pipeline(rows_for=unpublished_rows)`): the rows it writes and
compares are the very rows a batch that publishes writes, and nothing else differs."""

from __future__ import annotations

import asyncio

from ledger.batch import BatchRows
from ledger.intake import from_lines
from ledger.memory_recorder import MemorySession, Tables
from ledger.pipeline import Pipeline, Recorded, fresh_rows, unpublished_rows
from policies.parameters import parse_parameters
from policies.registry import PolicyRegistry
from tests import builders as b
from tests.ledger.helpers import example_lines

ROWS = ("settlements", "movements", "incentives", "rejections", "payments", "closed_years", "positions")


def settle(publish: bool) -> list[BatchRows]:
    b.fresh()
    stranger = b.visit("NOBODY", b.NANJING, on="2023-03-20", items=[b.line("600.00")])  # refused: not enrolled
    lines = [*example_lines("nanjing", "weihai", "ningxia", "inner-mongolia"), b.as_line(stranger), "{not json"]
    items = list(from_lines(lines, "ex"))
    sequencer = Recorded()
    for seq, item in enumerate(items, start=1):
        if item.event is not None:
            sequencer.positions[item.event.event_id] = seq
    written: list[BatchRows] = []

    async def write(rows: BatchRows, _registry: PolicyRegistry) -> None:
        rows.freeze(_registry, "digest")
        written.append(rows)

    async def run() -> None:
        pipeline = Pipeline(
            MemorySession(Tables()),
            PolicyRegistry(parse_parameters("")),
            sequencer,
            write,
            rows_for=fresh_rows if publish else unpublished_rows,
        )
        await pipeline.run(items)

    asyncio.run(run())
    return written


def test_a_replay_writes_the_rows_a_publishing_batch_writes_and_builds_nothing_for_the_topics():
    published, replayed = settle(publish=True), settle(publish=False)
    assert len(published) == len(replayed)
    assert sum(len(rows.settlements) for rows in published) > 0 and sum(len(r.rejections) for r in published) > 0
    assert any(rows.published for rows in published) and any(rows.outbox for rows in published)
    for theirs, ours in zip(published, replayed, strict=True):
        for name in ROWS:
            assert getattr(ours, name) == getattr(theirs, name), name
        assert ours.state_rows() == theirs.state_rows()
        assert ours.size() == theirs.size()
        assert ours.published == [] and ours.outbox == []


def test_events_and_movements_are_made_in_the_order_of_their_table_s_columns():
    """Written as they are made, with no copy a row: each field must sit at its column."""
    import orjson

    from ledger.batch import MOVEMENT_ROW
    from ledger.db.event_store import COLUMNS
    from ledger.store import StoredEvent

    assert StoredEvent._fields == COLUMNS
    batches = settle(publish=True)
    movements = [row for rows in batches for row in rows.movements]
    assert movements
    for row in movements:
        values = dict(zip(MOVEMENT_ROW, row, strict=True))
        record = orjson.loads(values.pop("record"))
        seq = values.pop("seq")
        assert isinstance(seq, int) and any(seq in rows.positions for rows in batches)
        assert {name: str(value) for name, value in values.items()} == {name: str(record[name]) for name in values}
