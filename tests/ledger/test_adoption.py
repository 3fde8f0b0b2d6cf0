"""The parameter set each event was settled under is bound into the hash chain by adoptions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from typer.testing import CliRunner

from ledger.adoption import ADOPTED, Adoptions, adoption, adoption_problem
from ledger.chain import text_digest
from ledger.cli import app
from ledger.streams import position
from policies.recorded import recorded_parameters
from tests.ledger.helpers import IM_PARAMETERS, example_lines, execute, fetch, gap_free, ingest, streams, verify
from tests.ledger.test_concurrency import _at_once, _file

ADOPTIONS = f"SELECT seq, params_digest, payload FROM ledger_events WHERE event_type = '{ADOPTED}' ORDER BY seq"


def _digests(database) -> list[tuple[int, str, str]]:
    """(seq, event_type, params_digest) of every ledger row, in order."""
    return [tuple(r) for r in fetch(database, "SELECT seq, event_type, params_digest FROM ledger_events ORDER BY seq")]


def test_a_parameter_set_is_adopted_in_the_chain_before_the_first_event_settled_under_it(database):
    stats, _ = ingest(database, example_lines("nanjing"), batch_size=13)
    assert stats.appended == 81  # events; the adoption is medledger's own
    (first,) = fetch(database, ADOPTIONS)
    recorded = recorded_parameters("")
    digest = text_digest(recorded)
    assert position(first["seq"]) == 1 and first["params_digest"] == digest  # the first row of Nanjing's stream
    assert json.loads(first["payload"]) == {"content": recorded, "digest": digest, "event_type": ADOPTED}
    assert fetch(database, "SELECT content FROM parameter_sets WHERE digest = $1", digest)[0][0] == recorded
    assert {d for _, _, d in _digests(database)} == {digest}

    # The same set again adopts nothing in the stream that adopted it; every stream adopts for itself, right
    # before its first event under a set it has not adopted last.
    ingest(database, [example_lines("nanjing")[0].replace('"nj-', '"nj2-', 1)])
    assert len(fetch(database, ADOPTIONS)) == 1
    ingest(database, example_lines("weihai"))
    stats, _ = ingest(database, example_lines("inner-mongolia"), IM_PARAMETERS)
    adoptions = fetch(database, ADOPTIONS)
    assert len(adoptions) == 3 and stats.appended == len(example_lines("inner-mongolia"))
    im = text_digest(recorded_parameters(IM_PARAMETERS))
    for region, rows in streams(database).items():
        assert rows[0]["event_type"] == ADOPTED
        assert {r["params_digest"] for r in rows} == {im if region == "150000" else digest}
    gap_free(database)
    assert verify(database).ok


def test_an_event_repointed_at_another_recorded_set_is_caught(database, monkeypatch):
    ingest(database, example_lines("nanjing"))
    ingest(database, example_lines("inner-mongolia"), IM_PARAMETERS)
    other = text_digest(recorded_parameters(IM_PARAMETERS))  # adopted by Inner Mongolia's stream
    # A Nanjing visit settles the same under both sets: re-derivation alone would find nothing.
    seq = fetch(database, "SELECT min(seq) FROM ledger_settlements WHERE region = '320100'")[0][0]
    execute(database, "ALTER TABLE ledger_events DISABLE TRIGGER USER", owner=True)
    execute(database, "UPDATE ledger_events SET params_digest = $1 WHERE seq = $2", other, seq, owner=True)
    execute(database, "ALTER TABLE ledger_events ENABLE TRIGGER USER", owner=True)
    report = verify(database)
    assert not report.ok and not report.chain_breaks
    assert [(d.seq, d.what) for d in report.differences] == [(seq, "parameters")]
    assert "the chain adopted" in report.differences[0].detail
    # the statement of its settlement says so too
    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    (settlement,) = fetch(database, "SELECT settlement_id FROM ledger_settlements WHERE seq = $1", seq)[0]
    shown = CliRunner().invoke(app, ["audit", "explain", settlement])
    assert shown.exit_code == 0, shown.output
    assert f"NOT the set the chain adopted at ledger sequence {320100 << 40 | 1}" in shown.stdout.replace("\n", "")


def test_a_verify_split_over_processes_replays_the_adoptions_beside_a_region(database, monkeypatch):
    import ledger.replay
    from ledger.replay import verify_in_parallel

    ingest(database, example_lines("nanjing"))
    counts = {r[0]: r[1] for r in fetch(database, "SELECT region, count(*) FROM ledger_events GROUP BY region")}
    assert counts == {"320100": 82}  # the stream's adoption among them

    def no_pool(*_args, **_kwargs):
        raise AssertionError("one region needs no worker process")

    monkeypatch.setattr(ledger.replay, "worker_pool", no_pool)
    report = verify_in_parallel(database, 50, 2, counts)
    assert report.ok and (report.events, report.adoptions) == (82, 1)


def test_an_adoption_whose_bytes_are_rewritten_breaks_the_chain_and_is_named(database):
    ingest(database, example_lines("nanjing"))
    (first,) = fetch(database, ADOPTIONS)
    execute(database, "ALTER TABLE ledger_events DISABLE TRIGGER USER", owner=True)
    execute(database, "UPDATE ledger_events SET payload = '{}' WHERE seq = $1", first["seq"], owner=True)
    execute(database, "ALTER TABLE ledger_events ENABLE TRIGGER USER", owner=True)
    report = verify(database)
    assert [b.seq for b in report.chain_breaks] == [first["seq"]]
    assert [(d.seq, d.what) for d in report.differences] == [(first["seq"], "adoption")]


def test_writers_with_different_parameter_sets_at_once_adopt_theirs_as_they_interleave(database):
    files = [_file(3, "A"), _file(4, "B")]
    results = _at_once(database, files, ["", IM_PARAMETERS])
    assert results[0].appended + results[1].appended == sum(len(f) for f in files)
    gap_free(database)
    for rows in streams(database).values():
        adopted = None
        for row in rows:
            if row["event_type"] == ADOPTED:
                assert row["params_digest"] != adopted  # an adoption only where the set changes in the stream
                adopted = row["params_digest"]
            assert row["params_digest"] == adopted
    assert len(fetch(database, ADOPTIONS)) > 2, "the two writers did not interleave; the test proves nothing"
    report = verify(database, batch_size=300)
    assert report.ok, (report.chain_breaks, report.differences[:5], report.projection_differences)


def test_what_an_adoption_must_hold():
    content = recorded_parameters("")
    digest = text_digest(content)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    payload = adoption(7, digest, content, at).payload
    assert adoption_problem(payload, digest, content) is None
    assert "its row names" in adoption_problem(payload, "f" * 64, content)
    assert "does not hash" in adoption_problem(payload.replace("3000.00", "3100.00"), digest, content)
    assert "not the text it adopts" in adoption_problem(payload, digest, content + "# more")
    assert "not an adoption" in adoption_problem("[]", digest, content)
    assert len(adoption(7, digest, content, at).event_id) > 64  # longer than any producer's event_id


def test_events_before_the_first_adoption_name_what_they_name():
    adoptions = Adoptions()
    assert adoptions.problem(5, "a") is None
    adoptions.seqs, adoptions.digests = [10, 20], ["x", "y"]
    assert adoptions.problem(9, "a") is None
    assert adoptions.problem(10, "x") is None and adoptions.problem(19, "x") is None
    assert "adopted y at seq 20" in adoptions.problem(25, "x")
