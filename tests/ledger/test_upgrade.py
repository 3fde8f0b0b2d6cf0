"""Member states written by an earlier release lack what this one keeps (the contributions by month that enforce
one contribution per member and month): the service does not settle on them. It refuses to start, with one line
telling the operator to rebuild the projections; once rebuilt, a second contribution for an old month is refused
and replay agrees (ledger.codec.STATE_KEYS, docs/upgrading.md)."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.codec import STATE_KEYS
from ledger.intake import from_lines
from ledger.service import EarlierProjections, LedgerService
from tests import builders as b
from tests.ledger.helpers import execute, fetch, ingest, records, verify

NJ = b.NANJING


def _earlier_release(database) -> None:
    """The member states as the release before this one wrote them: without `contributions`."""
    execute(database, "UPDATE member_state SET state = state - 'contributions'", owner=True)


def _posted(database) -> tuple[dict, dict]:
    b.fresh()
    first = b.contribution("NJ-A", NJ, "2023-07", "9000.00")
    ingest(database, [b.as_line(b.enrolled("NJ-A", NJ, on="2022-12-01")), b.as_line(first)])
    again = b.contribution("NJ-A", NJ, "2023-07", "9000.00", on="2023-07-20")
    return first, again


def test_the_service_does_not_start_on_member_states_of_an_earlier_release(database):
    _, again = _posted(database)
    _earlier_release(database)
    before = fetch(database, "SELECT count(*) FROM ledger_events")[0][0]

    async def run():
        async with LedgerService(database) as service:
            await service.ingest(from_lines([b.as_line(again)], "test"))

    with pytest.raises(EarlierProjections, match="medledger projections rebuild"):
        asyncio.run(run())
    assert fetch(database, "SELECT count(*) FROM ledger_events")[0][0] == before
    assert fetch(database, "SELECT count(*) FROM ledger_movements")[0][0] == 1


def test_ingest_says_to_rebuild_and_after_the_rebuild_a_second_contribution_for_an_old_month_is_refused(
    database, monkeypatch, tmp_path
):
    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    _, again = _posted(database)
    _earlier_release(database)
    before = fetch(database, "SELECT count(*) FROM ledger_events")[0][0]
    events = tmp_path / "again.jsonl"
    events.write_text(b.as_line(again) + "\n", encoding="utf-8")

    refused = CliRunner().invoke(app, ["ingest", str(events)])
    assert refused.exit_code == 2
    line = refused.output.strip().splitlines()[-1]  # after any log line of the migrations
    assert "Traceback" not in refused.output
    assert line.startswith("medledger: 1 member_state row(s) were written by an earlier release")
    assert "run `medledger projections rebuild`" in line
    assert fetch(database, "SELECT count(*) FROM ledger_events")[0][0] == before

    assert CliRunner().invoke(app, ["projections", "rebuild"]).exit_code == 0
    settled = CliRunner().invoke(app, ["ingest", str(events)])
    assert settled.exit_code == 0, settled.output
    assert '"reason":"duplicate_contribution"' in settled.stdout.replace(" ", "")
    assert fetch(database, "SELECT count(*) FROM ledger_movements")[0][0] == 1  # credited once
    assert verify(database).ok


def test_the_keys_checked_are_every_key_a_member_state_is_written_with(database):
    b.fresh()
    _, published = ingest(database, [b.as_line(b.enrolled("NJ-K", NJ, on="2022-12-01"))])
    assert not records(published, "rejected")
    [state] = fetch(database, "SELECT state::text FROM member_state")
    assert set(json.loads(state[0])) == set(STATE_KEYS)
