"""The durable commands as a person runs them: ingest, member show, audit explain, replay, projections rebuild."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.cli.common import PARK_TTL_DAYS
from ledger.service import DEFAULT_PARK_TTL
from tests import builders as b
from tests.ledger.helpers import EXAMPLES, execute, fetch

runner = CliRunner()


@pytest.fixture
def cli_db(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    return database


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_ingest_prints_settlements_and_a_second_run_adds_nothing(cli_db):
    first = invoke("ingest", str(EXAMPLES / "weihai.jsonl"))
    assert first.exit_code == 0, first.output
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    assert (
        sum("settlement_id" in line for line in lines) == fetch(cli_db, "SELECT count(*) FROM ledger_settlements")[0][0]
    )
    events = sum(1 for line in (EXAMPLES / "weihai.jsonl").read_text().splitlines() if line.strip())
    second = invoke("ingest", str(EXAMPLES / "weihai.jsonl"))
    assert second.exit_code == 0 and second.stdout == ""
    assert "appended 0" in second.stderr and f"duplicates {events}" in second.stderr


def test_member_statement_shows_enrolment_accumulators_limits_account_and_explanations(cli_db):
    invoke("ingest", str(EXAMPLES / "ningxia.jsonl"), "--quiet")
    member = fetch(
        cli_db,
        "SELECT member_id FROM ledger_settlements WHERE fund_paid > 0 "
        "GROUP BY member_id ORDER BY count(*) DESC LIMIT 1",
    )[0][0]
    result = invoke("member", "show", member, "--year", "2023")
    assert result.exit_code == 0, result.output
    for expected in (
        "statement 2023",
        "enrolment",
        "deductible paid",
        "remaining: general outpatient fund cap",
        "000 第十一条",
        "account movements",
    ):
        assert expected in result.stdout, expected
    missing = invoke("member", "show", "NOBODY")
    assert missing.exit_code == 1 and "no member NOBODY" in missing.stderr


def test_audit_explain_traces_a_settlement_to_its_event_and_hash(cli_db):
    invoke("ingest", str(EXAMPLES / "nanjing.jsonl"), "--quiet")
    (row,) = fetch(
        cli_db,
        "SELECT s.settlement_id, e.hash, e.event_id FROM ledger_settlements s "
        "JOIN ledger_events e ON e.seq = s.seq ORDER BY s.seq LIMIT 1",
    )
    result = invoke("audit", "explain", row["settlement_id"])
    assert result.exit_code == 0, result.output
    assert "002 第十四条" in result.stdout and row["hash"].hex() in result.stdout.replace("\n", "")
    assert row["event_id"] in result.stdout
    # every value the policy version had, as recorded with the event
    adopted = 320100 << 40 | 1  # the first row of Nanjing's stream; its number wraps in the panel
    flat = "".join(result.stdout.replace("│", "").split())
    assert f"everyvalueinforce,recordedwiththeevent;adoptedinthechainatledgersequence{adopted}" in flat
    assert "parameters of 320100-2023 as recorded" in result.stdout
    assert "retiree_pension_rate = (unset)" in result.stdout  # in 2023: the pension credit rate begins in 2024
    assert 'band_ratios = {"in_service": {"community": ["0.50", "0.70", "0.75"]' in result.stdout
    assert invoke("audit", "explain", "no-such-settlement").exit_code == 1


def test_replay_verify_exits_zero_when_intact_and_non_zero_on_a_forgery(cli_db):
    invoke("ingest", str(EXAMPLES / "nanjing.jsonl"), "--quiet")
    ok = invoke("replay", "--verify")
    assert ok.exit_code == 0 and "verified" in ok.stdout and "hash chain: intact" in ok.stdout
    execute(cli_db, "ALTER TABLE ledger_events DISABLE TRIGGER USER", owner=True)
    (fifth,) = fetch(cli_db, "SELECT seq FROM ledger_events ORDER BY seq OFFSET 4 LIMIT 1")[0]
    execute(cli_db, "UPDATE ledger_events SET payload = payload || ' ' WHERE seq = $1", fifth, owner=True)
    execute(cli_db, "ALTER TABLE ledger_events ENABLE TRIGGER USER", owner=True)
    broken = invoke("replay", "--verify")
    assert broken.exit_code == 1 and f"seq {fifth}" in broken.stdout and "NOT verified" in broken.stdout


def test_replay_what_if_prints_the_impact_table(cli_db, tmp_path):
    invoke("ingest", str(EXAMPLES / "nanjing.jsonl"), "--quiet")
    policy = tmp_path / "what-if.toml"
    policy.write_text('[policy."320100-2023".band_ratios.retired]\ncommunity = ["0.65", "0.85", "0.90"]\n')
    result = invoke("replay", "--policy", str(policy), "--compare")
    assert result.exit_code == 0, result.output
    assert "what-if fund impact" in result.stdout and "320100" in result.stdout and "+" in result.stdout
    assert invoke("replay", "--policy", str(policy)).exit_code == 2


def test_projections_rebuild_and_db_upgrade(cli_db):
    invoke("ingest", str(EXAMPLES / "nanjing.jsonl"), "--quiet")
    before = sorted(tuple(r) for r in fetch(cli_db, "SELECT * FROM member_year"))
    result = invoke("projections", "rebuild")
    assert result.exit_code == 0, result.output
    assert "rebuilt from 82 ledger events, 1 of them a parameter-set adoption" in result.stderr
    assert sorted(tuple(r) for r in fetch(cli_db, "SELECT * FROM member_year")) == before
    assert invoke("db", "upgrade").exit_code == 0


def test_commands_refuse_what_they_cannot_do_with_a_message(cli_db, tmp_path):
    missing = str(tmp_path / "nowhere.jsonl")
    for args in (["ingest", missing], ["settle", missing]):
        result = invoke(*args)
        assert result.exit_code == 2 and "cannot read" in result.stderr, args
    for args in (
        ["projections", "rebuild", "--batch-size", "0"],
        ["replay", "--verify", "--batch-size", "0"],
        ["ingest", str(EXAMPLES / "nanjing.jsonl"), "--batch-size", "0"],
        ["parked", "sweep", "--park-ttl-days", "-1"],
        ["parked", "sweep", "--park-ttl-days", "nan"],
        ["ingest", str(EXAMPLES / "nanjing.jsonl"), "--park-ttl-days", "-1"],
    ):
        assert invoke(*args).exit_code == 2, args
    for args in (["replay", "--verify"], ["projections", "rebuild"]):
        result = runner.invoke(app, args, env={"MEDLEDGER_REPLAY_MEMBERS": "some"})
        assert result.exit_code == 2 and "MEDLEDGER_REPLAY_MEMBERS must be a whole number" in result.stderr, args
    policy = tmp_path / "p.toml"
    policy.write_text("")
    assert invoke("replay", "--verify", "--policy", str(policy), "--compare").exit_code == 2
    assert fetch(cli_db, "SELECT count(*) FROM ledger_events")[0][0] == 0


def test_the_parking_time_given_is_the_one_ingest_and_serve_sweep_with(cli_db, tmp_path, monkeypatch):
    """ingest sweeps at its start and serve every minute: each must keep the parking time it was given."""
    b.fresh()
    contribution = b.contribution("WAITS", b.NANJING, "2023-03", "9000.00")
    waiting_file, empty = tmp_path / "waiting.jsonl", tmp_path / "empty.jsonl"
    waiting_file.write_text(b.as_line(contribution) + "\n")
    empty.write_text("")
    parked = invoke("ingest", str(waiting_file))
    assert parked.exit_code == 0 and "parked 1" in parked.stderr, parked.output

    kept = invoke("ingest", str(empty), "--park-ttl-days", "1")
    assert kept.exit_code == 0 and "expired 0" in kept.stderr, kept.output
    monkeypatch.setenv("MEDLEDGER_PARK_TTL_DAYS", "0")  # it has waited longer than no time at all
    refused = invoke("ingest", str(empty))
    assert refused.exit_code == 0 and "expired 1" in refused.stderr, refused.output
    reason, detail = fetch(
        cli_db, "SELECT reason, detail FROM ledger_rejections WHERE event_id = $1", contribution["event_id"]
    )[0]
    assert reason == "member_not_enrolled" and "no enrolment arrived within 0:00:00" in detail

    import consumers.app
    import consumers.broker
    import consumers.logs
    from consumers.cli import app as full_app

    built = []

    class Built:
        def __init__(self, settings, service, partitions):
            built.append(service)
            self.app = None
            self.lost = None  # its instance's lock was not taken by another process

    async def run(_app):
        return None

    monkeypatch.setattr(consumers.app, "Service", Built)
    monkeypatch.setattr(consumers.broker, "run", run)
    monkeypatch.setattr(consumers.logs, "configure", lambda level: None)  # the session's logging stays as it is
    monkeypatch.setenv("MEDLEDGER_PARK_TTL_DAYS", "45")
    assert runner.invoke(full_app, ["serve"]).exit_code == 0
    assert runner.invoke(full_app, ["serve", "--park-ttl-days", "2.5"]).exit_code == 0
    assert [service.park_ttl for service in built] == [timedelta(days=45), timedelta(days=2.5)]
    assert timedelta(days=PARK_TTL_DAYS) == DEFAULT_PARK_TTL  # the commands' default is the service's


def test_member_statement_limits_follow_the_members_own_parameters_and_show_the_years_balance(cli_db, tmp_path):
    """Inner Mongolia settled under its parameter file, Weihai afterwards under the defaults: an Inner Mongolia
    member's remaining limits are still those of the file. A past year shows the balance it ended with."""
    from datetime import date

    from ledger.codec import state_from_json
    from ledger.db.projection_store import as_json
    from policies.parameters import parse_parameters
    from policies.registry import PolicyRegistry
    from tests.ledger.helpers import IM_PARAMETERS

    params = EXAMPLES / "params/150000-illustrative.toml"
    assert (
        invoke("ingest", str(EXAMPLES / "inner-mongolia.jsonl"), "--quiet", "--parameters", str(params)).exit_code == 0
    )
    assert invoke("ingest", str(EXAMPLES / "weihai.jsonl"), "--quiet").exit_code == 0
    member, state = fetch(
        cli_db,
        "SELECT m.member_id, m.state FROM member_state m WHERE m.region = '150000' AND EXISTS "
        "(SELECT 1 FROM ledger_settlements s WHERE s.member_id = m.member_id AND s.fund_paid > 0) "
        "ORDER BY m.member_id LIMIT 1",
    )[0]
    state = state_from_json(as_json(state))

    def limits(parameters: str) -> dict:
        policy = PolicyRegistry(parse_parameters(parameters)).for_year("150000", 2023)
        return policy.rules.limits_remaining(state, date(2023, 12, 31), policy.params)

    configured = limits(IM_PARAMETERS)
    assert configured and configured != limits("")  # the file's limits are not the defaults'
    result = runner.invoke(app, ["member", "show", member, "--year", "2023"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.replace("│", " ").split())
    for label, value in configured.items():
        assert f"remaining: {label} {value}" in shown, result.stdout

    b.fresh()
    events = [
        b.enrolled("BAL", b.NANJING, on="2023-01-01"),
        b.contribution("BAL", b.NANJING, "2023-03", "9000.00"),
        b.contribution("BAL", b.NANJING, "2024-03", "9000.00"),
    ]
    lines = tmp_path / "bal.jsonl"
    lines.write_text("".join(b.as_line(e) + "\n" for e in events))
    assert invoke("ingest", str(lines), "--quiet").exit_code == 0
    ended_2023, now = fetch(
        cli_db,
        "SELECT (SELECT balance FROM member_year WHERE member_id = 'BAL' AND year = 2023), "
        "(SELECT balance_after FROM ledger_movements WHERE member_id = 'BAL' ORDER BY seq DESC LIMIT 1)",
    )[0]
    assert 0 < ended_2023 < now
    result = runner.invoke(app, ["member", "show", "BAL", "--year", "2023"], env={"COLUMNS": "200"})
    shown = " ".join(result.stdout.replace("│", " ").split())
    assert f"account balance 2023 {ended_2023} at the end of the year" in shown, result.stdout
    assert f"account balance now {now}" in shown, result.stdout


def test_replay_and_rebuild_default_to_the_replay_batch():
    import typer.main

    from ledger.replay import REPLAY_BATCH

    group = typer.main.get_command(app)
    replay = group.commands["replay"]
    rebuild = group.commands["projections"].commands["rebuild"]
    for command in (replay, rebuild):
        (batch,) = [p for p in command.params if p.name == "batch_size"]
        assert batch.default == REPLAY_BATCH


def test_verify_prints_the_head_and_an_anchor_catches_a_ledger_cut_short(cli_db):
    """With its last event and that event's rows removed and the projections rebuilt, the ledger is consistent in
    itself and verifies; the head an earlier verify printed, kept elsewhere, shows it was cut short."""
    import re

    invoke("ingest", str(EXAMPLES / "nanjing.jsonl"), "--quiet")
    first = runner.invoke(app, ["replay", "--verify"], env={"COLUMNS": "200"})
    (seq, digest) = re.search(r"head 320100: (\d+):([0-9a-f]{64})", first.stdout).groups()
    (last,) = fetch(cli_db, "SELECT seq FROM ledger_events ORDER BY seq DESC LIMIT 1")[0]
    assert int(seq) == last
    (earlier,) = fetch(cli_db, "SELECT hash FROM ledger_events WHERE seq = $1", last - 1)[0]

    tables = ("ledger_settlements", "ledger_movements", "ledger_incentives", "ledger_rejections", "ledger_events")
    for table in tables:
        execute(cli_db, f"ALTER TABLE {table} DISABLE TRIGGER USER", owner=True)
        execute(cli_db, f"DELETE FROM {table} WHERE seq = $1", last, owner=True)
        execute(cli_db, f"ALTER TABLE {table} ENABLE TRIGGER USER", owner=True)
    assert invoke("projections", "rebuild").exit_code == 0
    assert invoke("replay", "--verify").exit_code == 0  # consistent in itself

    cut = invoke("replay", "--verify", "--anchor", f"{seq}:{digest}")
    assert cut.exit_code == 1 and "anchor: the ledger has no event at this position" in cut.stdout
    serial = invoke("replay", "--verify", "--workers", "1", "--anchor", f"{seq}:{digest}")
    assert serial.exit_code == 1
    still = invoke("replay", "--verify", "--anchor", f"{last - 1}:{bytes(earlier).hex()}")
    assert still.exit_code == 0, still.stdout
    wrong = invoke("replay", "--verify", "--anchor", f"{last - 1}:{'0' * 64}")
    assert wrong.exit_code == 1 and "was recorded" in wrong.stdout
    assert invoke("replay", "--verify", "--anchor", "12:nothex").exit_code == 2
    what_if = str(EXAMPLES / "params/150000-illustrative.toml")
    assert invoke("replay", "--policy", what_if, "--compare", "--anchor", f"{seq}:{digest}").exit_code == 2
