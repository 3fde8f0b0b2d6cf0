"""The key commands as an operator runs them: keys generate, ingest as a producer, replay --verify checking the
signatures kept."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from ledger.authority import Authority, load_private, public_text
from ledger.cli import app
from tests import builders as b
from tests.builders import NANJING
from tests.ledger.helpers import EXAMPLES, execute, fetch, ingest, sweep

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def producers(tmp_path, monkeypatch):
    """A producers file with one key made by `keys generate`: the enrolment system, allowed member events."""
    made = invoke("keys", "generate", "--producer", "enrolment", "--out", str(tmp_path / "enrolment.pem"))
    assert made.exit_code == 0, made.output
    path = tmp_path / "producers.toml"
    path.write_text('[producers.enrolment]\nevents = ["member.*"]\nregions = ["*"]\n' + made.stdout)
    monkeypatch.setenv("MEDLEDGER_PRODUCERS", str(path))
    return path


def test_keys_generate_writes_a_private_key_for_the_producer_alone_and_prints_its_entry(tmp_path, producers):
    key = tmp_path / "enrolment.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    entry = tomllib.loads(producers.read_text())["producers"]["enrolment"]["keys"][0]
    assert entry["public_key"] == public_text(load_private(key))
    assert Authority.load(producers).producers["enrolment"].keys  # the printed entry is a valid producers file
    assert '[producers.enrolment] needs an id_prefix of its own (its event_ids start with it, e.g. "enrolment-"' in (
        producers.read_text()
    )
    again = invoke("keys", "generate", "--producer", "enrolment", "--out", str(key))
    assert again.exit_code == 2 and "never overwritten" in again.output


def test_keys_init_gives_the_gateway_a_producer_of_its_own_allowed_only_visits(tmp_path):
    from ledger.contract import decode_line

    keys = tmp_path / "keys"
    made = invoke("keys", "init", str(keys))
    assert made.exit_code == 0, made.output
    assert sorted(path.name for path in keys.iterdir()) == [
        "demo.pem",
        "gateway.pem",
        "ledger.pem",
        "ledger.pub",
        "producers.toml",
    ]
    producers = Authority.load(keys / "producers.toml").producers
    assert set(producers) == {"demo", "gateway"}
    gateway, demo = producers["gateway"], producers["demo"]
    assert list(gateway.keys.values())[0].public.public_bytes_raw() == (
        load_private(keys / "gateway.pem").public_key().public_bytes_raw()
    )
    member = b.enrolled("M-1", NANJING)
    for event in (b.visit("M-1", NANJING), b.reversed_visit("M-1", NANJING, "V-1")):
        assert gateway.may_send(decode_line(json.dumps(event))) is None
    for event in (member, b.contribution("M-1", NANJING, "2023-07", "8000.00"), b.year_closed(NANJING, 2023)):
        assert "may not send" in gateway.may_send(decode_line(json.dumps(event)))
    assert demo.may_send(decode_line(json.dumps(member))) is None


def test_keys_init_gives_the_private_keys_to_the_images_user_and_leaves_the_public_ones_readable(tmp_path):
    """As the compose stack's header runs it: the container's user (uid 10001) reads its keys, nobody else."""
    keys = tmp_path / "keys"
    made = invoke("keys", "init", str(keys), "--owner", "10001")
    assert made.exit_code == 0, made.output
    for name in ("ledger.pem", "demo.pem", "gateway.pem"):
        status = (keys / name).stat()
        assert (status.st_uid, status.st_gid, status.st_mode & 0o777) == (10001, 10001, 0o600), name
    for name in ("ledger.pub", "producers.toml"):
        assert (keys / name).stat().st_mode & 0o444 == 0o444, name
    refused = invoke("keys", "init", str(tmp_path / "other"), "--owner", "root")
    assert refused.exit_code == 2 and "UID[:GID]" in refused.stderr
    assert not (tmp_path / "other").exists()


def test_ingest_signs_a_file_as_its_producer_and_replay_verify_checks_every_signature(
    database, monkeypatch, tmp_path, producers
):
    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    b.fresh()
    enrol = b.enrolled("320113195306110004", NANJING)
    visit = b.visit("320113195306110004", NANJING, on="2023-07-02")  # not the enrolment system's to send
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(enrol) + "\n" + json.dumps(visit) + "\n")

    unsigned = invoke("ingest", str(events))
    assert unsigned.exit_code == 2 and "--producer" in unsigned.output

    key = str(tmp_path / "enrolment.pem")
    done = invoke("ingest", str(events), "--producer", "enrolment", "--key", key)
    assert done.exit_code == 0, done.output
    assert "appended 1" in done.stderr and "rejected 1" in done.stderr
    [refused] = fetch(database, "SELECT event_id, reason FROM ledger_rejections")
    assert tuple(refused) == (visit["event_id"], "unauthorized")
    [kept] = fetch(database, "SELECT event_id, producer, signed FROM ledger_signatures")
    assert (kept["event_id"], kept["producer"], bytes(kept["signed"])) == (
        enrol["event_id"],
        "enrolment",
        json.dumps(enrol).encode(),
    )

    verified = invoke("replay", "--verify")
    assert verified.exit_code == 0, verified.output
    assert "signatures: 1 checked again" in verified.stdout and "NOT verified" not in verified.stdout

    # the bytes kept are not the bytes signed: a signature that proves nothing
    execute(database, "ALTER TABLE ledger_signatures DISABLE TRIGGER USER", owner=True)
    execute(
        database,
        "UPDATE ledger_signatures SET signed = convert_to(replace(convert_from(signed, 'UTF8'), "
        "'1953', '1954'), 'UTF8')",
        owner=True,
    )
    broken = invoke("replay", "--verify")
    assert broken.exit_code != 0
    assert "signature does not verify" in " ".join(broken.stdout.split()) and "NOT verified" in broken.stdout


def test_without_a_producers_file_ingest_takes_an_operators_file_as_given(database, monkeypatch):
    monkeypatch.delenv("MEDLEDGER_PRODUCERS", raising=False)
    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    done = invoke("ingest", str(EXAMPLES / "nanjing.jsonl"), "--quiet")
    assert done.exit_code == 0 and "rejected 0" in done.stderr, done.output
    assert fetch(database, "SELECT count(*) FROM ledger_signatures")[0][0] == 0
    verified = invoke("replay", "--verify")
    assert "signatures: not checked" in verified.stdout and verified.exit_code == 0


def _signed_first(database, monkeypatch, tmp_path, later: list[dict]):
    """A ledger whose first event was ingested signed by its producer; `later`, unsigned, in a file returned."""
    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    b.fresh()
    signed, unsigned = tmp_path / "signed.jsonl", tmp_path / "unsigned.jsonl"
    signed.write_text(json.dumps(b.enrolled("320113195306110004", NANJING)) + "\n")
    unsigned.write_text("".join(json.dumps(event) + "\n" for event in later))
    key = str(tmp_path / "enrolment.pem")
    assert invoke("ingest", str(signed), "--producer", "enrolment", "--key", key).exit_code == 0
    return unsigned


def test_an_unsigned_event_after_the_ledger_began_keeping_signatures_fails_verify(
    database, monkeypatch, tmp_path, producers
):
    unsigned = _signed_first(database, monkeypatch, tmp_path, [b.enrolled("320113195306110005", NANJING)])
    # as one who writes with the database's credentials alone, around the intake (`medledger ingest` refuses)
    ingest(database, unsigned.read_text().splitlines())
    result = invoke("replay", "--verify")
    assert result.exit_code != 0 and "NOT verified" in result.stdout
    assert "recorded after the ledger began keeping signatures, with none" in " ".join(result.stdout.split())


def _ledger_rows(database) -> tuple:
    return tuple(
        fetch(database, f"SELECT count(*) FROM {table}")[0][0]
        for table in ("ledger_events", "ledger_rejections", "parked_events", "ledger_signatures", "member_state")
    )


def test_once_the_ledger_keeps_signatures_ingest_refuses_to_run_unsigned_and_appends_nothing(
    database, monkeypatch, tmp_path, producers
):
    later = [b.enrolled("320113195306110005", NANJING), b.visit("320113195306110006", NANJING, on="2023-07-02")]
    unsigned = _signed_first(database, monkeypatch, tmp_path, later)
    before = _ledger_rows(database)

    monkeypatch.delenv("MEDLEDGER_PRODUCERS")
    refused = invoke("ingest", str(unsigned))

    assert refused.exit_code == 2
    line = refused.output.strip().splitlines()[-1]  # after any log line of the migrations
    assert "Traceback" not in refused.output
    assert "keeps producers' signatures" in line and "MEDLEDGER_PRODUCERS" in line and "--producer" in line
    assert _ledger_rows(database) == before
    monkeypatch.setenv("MEDLEDGER_PRODUCERS", str(producers))
    verified = invoke("replay", "--verify")
    assert verified.exit_code == 0 and "signatures: 1 checked again" in verified.stdout, verified.output


def test_events_parked_before_the_ledger_kept_signatures_and_released_after_it_pass_verify(
    database, monkeypatch, tmp_path, producers
):
    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    b.fresh()
    member = "320113195306110004"
    visit, enrol = tmp_path / "visit.jsonl", tmp_path / "enrol.jsonl"
    visit.write_text(json.dumps(b.visit(member, NANJING, on="2023-07-02")) + "\n")
    enrol.write_text(json.dumps(b.enrolled(member, NANJING)) + "\n")
    monkeypatch.delenv("MEDLEDGER_PRODUCERS")  # an operator's file, before the ledger kept any signature
    parked = invoke("ingest", str(visit))
    assert parked.exit_code == 0 and "parked 1" in parked.stderr, parked.output

    monkeypatch.setenv("MEDLEDGER_PRODUCERS", str(producers))
    key = str(tmp_path / "enrolment.pem")
    released = invoke("ingest", str(enrol), "--producer", "enrolment", "--key", key)
    assert released.exit_code == 0 and "settlement_id" in released.stdout, released.output
    order = [tuple(row) for row in fetch(database, "SELECT event_id FROM ledger_events ORDER BY seq")][-2:]
    assert [event_id for (event_id,) in order] == [
        json.loads(enrol.read_text())["event_id"],
        json.loads(visit.read_text())["event_id"],
    ]  # the visit, unsigned, appended after the first signed event

    verified = invoke("replay", "--verify")
    assert verified.exit_code == 0, verified.output
    assert "signatures: 1 checked again" in verified.stdout and "with none" not in verified.stdout


def test_an_event_parked_before_the_ledger_kept_signatures_and_refused_after_for_waiting_too_long_passes_verify(
    database, monkeypatch, tmp_path, producers
):
    # its member is never enrolled; an id of its own (the ledger's other events are numbered from 1)
    waited = b.visit("320113195306110009", NANJING, on="2023-07-02", event_id="early-1", visit_id="early-visit-1")
    ingest(database, [json.dumps(waited)], now=datetime.now(UTC) - timedelta(days=1))
    _signed_first(database, monkeypatch, tmp_path, [])
    stats, _ = sweep(database, now=datetime.now(UTC) + timedelta(days=60), park_ttl=timedelta(days=30))
    assert stats.expired == 1
    [kept] = fetch(database, "SELECT e.event_id FROM ledger_rejections r JOIN ledger_events e USING (seq)")
    assert kept["event_id"] == waited["event_id"]  # appended, unsigned, after the first signed event

    verified = invoke("replay", "--verify")
    assert verified.exit_code == 0, verified.output
    assert "signatures: 1 checked again" in verified.stdout


def test_ingest_with_workers_signs_and_checks_as_the_producers_file_stood_when_the_command_read_it(
    database, monkeypatch, tmp_path, producers
):
    """The command reads the producers file and the signing key once; its worker processes are given what it read.
    Were they to read the files again, a file changed or gone meanwhile would give them other producers than the
    command checked, or stop them with a traceback."""
    from ledger.cli import ledger as ledger_commands

    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    b.fresh()
    enrolments = [b.enrolled("320113195306110004", NANJING), b.enrolled("371002195306110004", b.WEIHAI)]
    visit = b.visit("371002195306110004", b.WEIHAI, on="2023-07-02")  # not the enrolment system's to send
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(event) + "\n" for event in [*enrolments, visit]))
    key = tmp_path / "enrolment.pem"
    read = ledger_commands.signer

    def signer_then_files_gone(*args):
        made = read(*args)
        producers.unlink()  # the operator replaces the files while the command runs
        key.unlink()
        return made

    monkeypatch.setattr(ledger_commands, "signer", signer_then_files_gone)
    done = invoke("ingest", str(events), "--producer", "enrolment", "--key", str(key), "--workers", "2")
    assert done.exit_code == 0, done.output
    assert "appended 2" in done.stderr and "rejected 1" in done.stderr
    kept = fetch(database, "SELECT event_id FROM ledger_signatures ORDER BY event_id")
    assert sorted(row[0] for row in kept) == sorted(event["event_id"] for event in enrolments)
    [refused] = fetch(database, "SELECT event_id, reason FROM ledger_rejections")
    assert tuple(refused) == (visit["event_id"], "unauthorized")


def test_producers_and_a_signer_reach_another_process_as_they_were_read(tmp_path, producers):
    import pickle

    from ledger.authority import signer_from

    authority = Authority.load(producers)
    sent = pickle.loads(pickle.dumps(authority))
    assert sent.text == authority.text and sent.source == str(producers)
    assert sent.producers["enrolment"].keys.keys() == authority.producers["enrolment"].keys.keys()
    signer = signer_from("enrolment", str(tmp_path / "enrolment.pem"))
    there = pickle.loads(pickle.dumps(signer))
    assert (there.producer, there.key_id, there.signature(b"value")) == (
        signer.producer,
        signer.key_id,
        signer.signature(b"value"),
    )
    with pytest.raises(TypeError, match="not read from a file"):
        pickle.dumps(Authority({}, "built"))
