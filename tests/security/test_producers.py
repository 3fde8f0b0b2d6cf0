"""Who may say what: an event on the topic is applied only when signed by a producer allowed to send it. Each
attack below is refused (`unauthorized`) and kept, changes no balance or projection, and `replay --verify`, which
checks every kept signature again, passes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ledger.authority import Authority
from tests import builders as b
from tests.builders import NANJING
from tests.ledger.helpers import fetch
from tests.security.producers import (
    HOSPITAL_FACILITY,
    OTHER_FACILITY,
    Scheme,
    Topic,
    deliver,
    projections,
    refused,
    verified,
)

VICTIM, ACCOMPLICE = "320113195306110004", "320113198001010055"


@pytest.fixture
def scheme() -> Scheme:
    b.fresh()
    return Scheme.make()


def _funded(db, scheme: Scheme, topic: Topic) -> None:
    """The victim enrolled by the enrolment system and paid in by the contribution system: 200.00 a month."""
    s = scheme.signers
    records = [
        topic.signed(s["enrolment"], b.enrolled(VICTIM, NANJING, on="2023-01-01")),
        topic.signed(s["enrolment"], b.enrolled(ACCOMPLICE, NANJING, on="2023-01-01")),
        topic.signed(s["contributions"], b.contribution(VICTIM, NANJING, "2023-06", "10000.00")),
    ]
    published = deliver(db, scheme.authority(), records)
    assert not [record for record in published if "rejected" in record], published
    assert _balance(db, VICTIM) > 0


def _balance(db, member: str):
    rows = fetch(
        db, "SELECT balance_after FROM ledger_movements WHERE member_id = $1 ORDER BY seq DESC LIMIT 1", member
    )
    return rows[0][0] if rows else 0


def _attack(db, scheme: Scheme, records) -> list[dict]:
    """The attack delivered after the victim was funded: what it published, having changed nothing."""
    before = projections(db)
    published = deliver(db, scheme.authority(), records)
    assert projections(db) == before, "a refused event moved a balance or a projection"
    report = verified(db, scheme.authority())
    assert report.ok, report.differences
    assert report.signatures == fetch(db, "SELECT count(*) FROM ledger_signatures")[0][0] > 0
    return published


def test_a_forged_family_aid_and_family_payment_drain_nothing(database, scheme):
    topic = Topic()
    _funded(database, scheme, topic)
    aid = b.aid_authorized(VICTIM, NANJING, ACCOMPLICE, on="2023-06-20")
    drain = b.payment(
        VICTIM,
        NANJING,
        "200.00",
        purpose="family_medical",
        beneficiary=ACCOMPLICE,
        on="2023-07-01",
        facility=HOSPITAL_FACILITY,
    )
    # the hospital may send payments for its facility, but not the family's authorisation; nor may anyone unsigned
    by_hospital = topic.signed(scheme.signers["hospital"], aid)  # under an id of the hospital's own
    sorted_aid = json.dumps(aid, sort_keys=True)
    published = _attack(
        database,
        scheme,
        [
            by_hospital,
            topic.record(json.dumps(aid, separators=(",", ":"))),  # refused input is kept once per bytes
            topic.record(sorted_aid, scheme.outsider.headers(sorted_aid.encode())),
            topic.signed(scheme.signers["hospital"], drain),
        ],
    )
    kept = refused(database)
    assert [row["event_id"] for row in kept] == [aid["event_id"]] * 3
    assert "producer hospital may not send family.aid_authorized" in kept[0]["detail"]
    assert "claimed producer: hospital" in kept[0]["detail"]
    assert "unsigned" in kept[1]["detail"] and "claimed producer: none" in kept[1]["detail"]
    assert "signature does not verify" in kept[2]["detail"] and "claimed producer: enrolment" in kept[2]["detail"]
    assert json.loads(kept[0]["payload"]) == aid  # kept as it was sent
    assert b.reason(published, drain) == "family_not_authorized"
    assert {r["rejected"] for r in published if r.get("reason") == "unauthorized"} == {aid["event_id"]}


def test_a_forged_death_notice_pays_nothing_out(database, scheme):
    topic = Topic()
    _funded(database, scheme, topic)
    balance = _balance(database, VICTIM)
    death = b.terminated(VICTIM, NANJING, on="2023-07-01", reason="death")
    _attack(
        database,
        scheme,
        [topic.signed(scheme.signers["hospital"], death), topic.signed(scheme.signers["contributions"], death)],
    )
    # the same bytes again are acknowledged as a repeat of the refused input, as any repeat is
    [kept] = refused(database)
    assert kept["event_id"] == death["event_id"] and "claimed producer: hospital" in kept["detail"]
    assert _balance(database, VICTIM) == balance


@pytest.mark.parametrize(
    ("producer", "event"),
    [
        ("hospital", lambda: b.enrolled("320113199001010011", NANJING, on="2023-02-01")),
        ("contributions", lambda: b.type_changed(VICTIM, NANJING, "2023-07-01", "retired")),
        ("enrolment", lambda: b.chronic_certified(VICTIM, NANJING, "M01600", "999999999.00", on="2023-07-01")),
        ("hospital", lambda: b.chronic_certified(VICTIM, NANJING, "M01600", "999999999.00", on="2023-07-01")),
        ("contributions", lambda: b.year_closed(NANJING, 2023, on="2023-07-01")),
    ],
    ids=[
        "hospital-enrols",
        "contribution-system-changes-type",
        "enrolment-certifies-chronic",
        "hospital-certifies-chronic",
        "contribution-system-closes-year",
    ],
)
def test_only_the_enrolment_system_and_the_bureau_rewrite_members(database, scheme, producer, event):
    topic = Topic()
    _funded(database, scheme, topic)
    forged = event()
    _attack(database, scheme, [topic.signed(scheme.signers[producer], forged)])
    [kept] = refused(database)
    assert kept["event_id"] == forged["event_id"]
    assert f"producer {producer} may not send {forged['event_type']}" in kept["detail"]


def test_a_hospital_speaks_only_for_its_own_facility_and_region(database, scheme):
    topic = Topic()
    _funded(database, scheme, topic)
    hospital = scheme.signers["hospital"]
    elsewhere = b.visit(VICTIM, NANJING, facility_id=OTHER_FACILITY, on="2023-07-02")
    nameless = b.payment(VICTIM, NANJING, "10.00", on="2023-07-03")
    other_region = b.payment(VICTIM, b.WEIHAI, "10.00", facility=HOSPITAL_FACILITY, on="2023-07-03")
    _attack(database, scheme, [topic.signed(hospital, e) for e in (elsewhere, nameless, other_region)])
    details = [row["detail"] for row in refused(database)]
    assert f"may not speak for facility {OTHER_FACILITY}" in details[0]
    assert "may not speak for facility None" in details[1]
    assert "may not speak for region 371000" in details[2]


def test_a_signature_over_other_bytes_or_with_headers_swapped_is_refused(database, scheme):
    topic = Topic()
    _funded(database, scheme, topic)
    death = b.terminated(VICTIM, NANJING, on="2023-07-01")
    # written three ways: the same bytes again would be acknowledged as a repeat of the first refused
    value, compact, ordered = (
        json.dumps(death),
        json.dumps(death, separators=(",", ":")),
        json.dumps(death, sort_keys=True),
    )
    # the enrolment system's signature of another of its records, on this one
    other = scheme.signers["enrolment"].headers(json.dumps(b.retired(VICTIM, NANJING, "2023-07-01")).encode())
    # the hospital's own signature, presented as the enrolment system's (the producer id is signed too)
    swapped = scheme.signers["hospital"].headers(compact.encode()) | {"medledger-producer": "enrolment"}
    garbled = scheme.signers["enrolment"].headers(ordered.encode()) | {"medledger-signature": "not base64!"}
    records = [topic.record(value, other), topic.record(compact, swapped), topic.record(ordered, garbled)]
    _attack(database, scheme, records)
    details = [row["detail"] for row in refused(database)]
    assert "signature does not verify under key" in details[0]
    assert "has no key" in details[1] or "signature does not verify" in details[1]
    assert "unsigned" in details[2]


def test_a_revoked_key_signs_nothing_after_its_revocation(database):
    b.fresh()
    revoked = datetime(2026, 1, 1, tzinfo=UTC)
    scheme = Scheme.make(revoked={"hospital": revoked})
    topic = Topic()
    enrol = topic.signed(scheme.signers["enrolment"], b.enrolled(VICTIM, NANJING, on="2023-01-01"))
    pay = topic.signed(scheme.signers["contributions"], b.contribution(VICTIM, NANJING, "2023-06", "10000.00"))
    before = b.visit(VICTIM, NANJING, facility_id=HOSPITAL_FACILITY, on="2023-07-02")
    after = b.visit(VICTIM, NANJING, facility_id=HOSPITAL_FACILITY, on="2023-07-03")
    hospital = scheme.signers["hospital"]
    first = deliver(
        database,
        scheme.authority(),
        [enrol, pay, topic.signed(hospital, before)],
        clock=lambda: datetime(2025, 12, 31, tzinfo=UTC),
    )
    published = deliver(database, scheme.authority(), [topic.signed(hospital, after)], clock=lambda: revoked)
    assert b.settled(first, before)["fund_paid"]  # signed while the key was valid
    [kept] = refused(database)
    assert kept["event_id"] == after["event_id"] and "is not valid at 2026-01-01" in kept["detail"]
    assert any(r.get("rejected") == after["event_id"] for r in published)
    # what the key signed while it was valid is still proved by it
    report = verified(database, scheme.authority())
    assert report.ok and report.signatures == 3, report.differences


def test_an_event_id_sent_first_by_someone_else_is_not_squatted(database, scheme):
    topic = Topic()
    _funded(database, scheme, topic)
    owners = b.terminated(ACCOMPLICE, NANJING, on="2023-07-01", event_id="enrolment-2023-0001", reason="emigration")
    squatted = dict(owners, member_id=VICTIM, reason="death")
    deliver(database, scheme.authority(), [topic.signed(scheme.signers["hospital"], squatted)])
    published = deliver(database, scheme.authority(), [topic.signed(scheme.signers["enrolment"], owners)])
    assert not any(r.get("rejected") == owners["event_id"] for r in published), published
    [stored] = fetch(database, "SELECT payload FROM ledger_events WHERE event_id = $1", owners["event_id"])
    assert json.loads(stored["payload"])["member_id"] == ACCOMPLICE
    [kept] = refused(database)
    assert json.loads(kept["payload"])["member_id"] == VICTIM
    assert verified(database, scheme.authority()).ok


def test_a_permitted_producer_cannot_take_an_id_another_will_send(database):
    b.fresh()
    scheme = Scheme.make(prefixes={"enrolment": "enrol-", "hospital": "H1-", "contributions": "contrib-"})
    topic = Topic()
    s = scheme.signers
    enrol = b.enrolled(VICTIM, NANJING, on="2023-01-01", event_id="enrol-0001")
    paid = b.contribution(VICTIM, NANJING, "2023-06", "10000.00", event_id="contrib-0001")
    deliver(database, scheme.authority(), [topic.signed(s["enrolment"], enrol), topic.signed(s["contributions"], paid)])
    # a visit the hospital may send, under the id the enrolment system will use next; and one under its own
    squatting = b.visit(VICTIM, NANJING, facility_id=HOSPITAL_FACILITY, on="2023-07-02", event_id="enrol-0002")
    own = b.visit(VICTIM, NANJING, facility_id=HOSPITAL_FACILITY, on="2023-07-03", event_id="H1-0001")
    published = deliver(database, scheme.authority(), [topic.signed(s["hospital"], e) for e in (squatting, own)])
    assert b.settled(published, own)
    # and the bureau, allowed chronic certifications, may not send one under that id either
    chronic = b.chronic_certified(VICTIM, NANJING, "M01600", "3000.00", on="2023-07-02", event_id="enrol-0002")
    deliver(database, scheme.authority(), [topic.signed(s["bureau"], chronic)])
    hospital, bureau = refused(database)
    assert hospital["event_id"] == "enrol-0002" and "hospital's event_ids start with 'H1-'" in hospital["detail"]
    assert bureau["event_id"] == "enrol-0002" and "bureau's event_ids start with 'bureau-'" in bureau["detail"]
    death = b.terminated(VICTIM, NANJING, on="2023-07-04", event_id="enrol-0002", reason="emigration")
    owners = deliver(database, scheme.authority(), [topic.signed(s["enrolment"], death)])
    assert not any("rejected" in record for record in owners), owners
    [stored] = fetch(database, "SELECT payload FROM ledger_events WHERE event_id = $1", "enrol-0002")
    assert json.loads(stored["payload"])["event_type"] == "member.terminated"
    # and the enrolment system's own ids are its prefix's
    stray = b.retired(VICTIM, NANJING, "2023-07-05", event_id="ev-stray")
    deliver(database, scheme.authority(), [topic.signed(s["enrolment"], stray)])
    assert "event_ids start with 'enrol-'" in refused(database)[-1]["detail"]
    assert verified(database, scheme.authority()).ok


def test_two_producers_without_an_id_prefix_in_one_file_are_refused_when_it_is_read():
    import tomllib

    from ledger.authority import ProducersFileError

    data = tomllib.loads(Scheme.make(prefixes={"bureau": None, "hospital": None}).text)
    with pytest.raises(ProducersFileError, match="producers bureau, hospital have no id_prefix: at most one"):
        Authority.parse(data, "producers.toml")


def test_the_one_producer_without_an_id_prefix_sends_no_id_in_another_producers():
    import tomllib

    data = tomllib.loads(Scheme.make(prefixes={"bureau": None}).text)
    authority = Authority.parse(data, "producers.toml")
    bureau, enrolment = authority.producers["bureau"], authority.producers["enrolment"]
    assert bureau.id_prefix is None and enrolment.id_prefix is not None
    squatted = authority.id_problem(bureau, enrolment.id_prefix + "0099")
    assert squatted == f"event_ids starting with {enrolment.id_prefix!r} are producer enrolment's"
    assert authority.id_problem(bureau, "close-2023") is None  # outside every prefix: its own


def test_id_prefixes_that_overlap_are_refused_when_the_producers_file_is_read():
    import tomllib

    from ledger.authority import ProducersFileError

    text = Scheme.make(prefixes={"enrolment": "e-", "hospital": "e-h-"}).text
    with pytest.raises(ProducersFileError, match="is a prefix of"):
        Authority.parse(tomllib.loads(text))


def test_verify_finds_a_kept_signature_that_no_longer_proves_its_event(database, scheme):
    topic = Topic()
    _funded(database, scheme, topic)
    assert verified(database, scheme.authority()).ok
    # the same ledger checked against a producers file whose enrolment key is another one: not what signed
    forged = Scheme.make()
    report = verified(database, forged.authority())
    assert not report.ok
    assert {d.what.split(" by ")[1] for d in report.differences} == {"enrolment", "contributions"}


def test_signatures_are_kept_with_the_event_and_its_bytes(database, scheme):
    topic = Topic()
    _funded(database, scheme, topic)
    rows = fetch(
        database,
        "SELECT s.producer, s.key_id, s.signature, s.signed, e.event_type FROM ledger_signatures s "
        "JOIN ledger_events e USING (event_id) ORDER BY e.seq",
    )
    assert [(r["producer"], r["event_type"]) for r in rows] == [
        ("enrolment", "member.enrolled"),
        ("enrolment", "member.enrolled"),
        ("contributions", "account.contribution_posted"),
    ]
    signer = scheme.signers["enrolment"]
    assert rows[0]["key_id"] == signer.key_id
    assert (
        base64.b64encode(bytes(rows[0]["signature"])).decode()
        == signer.headers(bytes(rows[0]["signed"]))["medledger-signature"]
    )


@pytest.mark.parametrize(
    ("missing", "named"), [("producers", "MEDLEDGER_PRODUCERS"), ("ledger_key", "MEDLEDGER_LEDGER_KEY")]
)
def test_serve_does_not_start_without_the_producers_file_or_the_ledger_key(missing, named):
    from consumers.app import Service
    from consumers.settings import Settings
    from tests.security.keys import test_keys

    settings = Settings(metrics_port=None, **(test_keys().settings() | {missing: None}))
    with pytest.raises(ValueError, match=named):
        Service(settings, _bare())


def _bare():
    from ledger.service import LedgerService

    bare = LedgerService.__new__(LedgerService)
    bare.authority = None
    return bare


def _reversals_refused(db) -> list:
    return fetch(
        db,
        "SELECT event_id, detail, payload FROM ledger_rejections WHERE reason = 'unauthorized' AND seq IS NULL "
        "AND payload LIKE '%visit.reversed%' ORDER BY rejection_id",
    )


def test_a_hospital_cannot_reverse_another_hospitals_visit_and_reverses_its_own(database, scheme):
    topic = Topic()
    _funded(database, scheme, topic)
    s = scheme.signers
    theirs = b.visit(VICTIM, NANJING, facility=OTHER_FACILITY, on="2023-07-02", account=True)
    ours = b.visit(VICTIM, NANJING, facility=HOSPITAL_FACILITY, on="2023-07-03", account=True)
    settled = deliver(
        database, scheme.authority(), [topic.signed(s["other_hospital"], theirs), topic.signed(s["hospital"], ours)]
    )
    assert Decimal(b.settled(settled, theirs)["account_paid"]) > 0  # a reversal would pay it back
    balance = _balance(database, VICTIM)
    # the hospital may send reversals in its region, but this visit was settled at the other hospital
    reversal = b.reversed_visit(VICTIM, NANJING, theirs["visit_id"], on="2023-07-04")
    published = _attack(database, scheme, [topic.signed(s["hospital"], reversal)])
    [kept] = _reversals_refused(database)
    assert kept["event_id"] == reversal["event_id"]
    assert f"producer hospital may not speak for facility {OTHER_FACILITY}" in kept["detail"]
    assert "claimed producer: hospital" in kept["detail"]
    assert json.loads(kept["payload"]) == reversal
    assert b.reason(published, reversal) == "unauthorized" and not b.settlements(published)
    assert not fetch(database, "SELECT 1 FROM ledger_events WHERE event_id = $1", reversal["event_id"])
    assert _balance(database, VICTIM) == balance
    # its own visit it reverses: the fund's payment negated and the account paid back
    own = b.reversed_visit(VICTIM, NANJING, ours["visit_id"], on="2023-07-04")
    published = deliver(database, scheme.authority(), [topic.signed(s["hospital"], own)])
    assert Decimal(b.reversal_of(published, ours)["fund_paid"]) == -Decimal(b.settled(settled, ours)["fund_paid"])
    assert _balance(database, VICTIM) == balance + Decimal(b.settled(settled, ours)["account_paid"])
    assert verified(database, scheme.authority()).ok


@pytest.mark.parametrize("batch_size", [50, 1], ids=["one-batch", "settled-while-the-visit-commits"])
def test_a_visit_settled_earlier_in_the_stream_is_found_for_its_reversal(database, scheme, batch_size):
    topic = Topic()
    _funded(database, scheme, topic)
    s = scheme.signers
    theirs = b.visit(VICTIM, NANJING, facility=OTHER_FACILITY, on="2023-07-02", account=True)
    ours = b.visit(VICTIM, NANJING, facility=HOSPITAL_FACILITY, on="2023-07-03", account=True)
    reversals = [b.reversed_visit(VICTIM, NANJING, v["visit_id"], on="2023-07-04") for v in (theirs, ours)]
    records = [
        topic.signed(s["other_hospital"], theirs),
        topic.signed(s["hospital"], ours),
        *(topic.signed(s["hospital"], r) for r in reversals),
    ]
    published = deliver(database, scheme.authority(), records, batch_size=batch_size)
    assert b.settled(published, theirs) and b.settled(published, ours)
    [kept] = _reversals_refused(database)
    assert kept["event_id"] == reversals[0]["event_id"] and OTHER_FACILITY in kept["detail"]
    assert b.reversal_of(published, ours)
    assert not [s for s in b.settlements(published) if s.get("reverses") and s["visit_id"] == theirs["visit_id"]]
    assert verified(database, scheme.authority()).ok


NEWCOMER = "320113199203040022"


def _reversed_before_enrolment(db, scheme: Scheme, topic: Topic, visit_by: str, facility: str):
    """A visit by `visit_by` for a member not enrolled yet, and the hospital's reversal of it sent right after:
    the visit waits for the enrolment, the reversal is refused and kept."""
    visit = b.visit(NEWCOMER, NANJING, facility=facility, on="2023-07-02")
    reversal = b.reversed_visit(NEWCOMER, NANJING, visit["visit_id"], on="2023-07-03")
    records = [topic.signed(scheme.signers[visit_by], visit), topic.signed(scheme.signers["hospital"], reversal)]
    waiting = deliver(db, scheme.authority(), records)
    assert [r["parked"] for r in waiting if "parked" in r] == [visit["event_id"]]
    [kept] = _reversals_refused(db)
    assert kept["event_id"] == reversal["event_id"] and "no visit by that id is settled" in kept["detail"]
    enrolment = topic.signed(scheme.signers["enrolment"], b.enrolled(NEWCOMER, NANJING, on="2023-01-01"))
    enrolled = deliver(db, scheme.authority(), [enrolment])
    assert b.settled(enrolled, visit) and not [r for r in b.settlements(enrolled) if r.get("reverses")]
    return visit, reversal


def test_a_reversal_of_a_visit_waiting_for_its_member_is_refused_not_parked(database, scheme):
    # the enrolment releases the other hospital's visit, and nothing reverses it
    _reversed_before_enrolment(database, scheme, Topic(), "other_hospital", OTHER_FACILITY)
    assert not fetch(database, "SELECT 1 FROM ledger_settlements WHERE reverses IS NOT NULL")
    assert verified(database, scheme.authority()).ok


def test_a_reversal_refused_before_its_own_visit_settled_is_applied_when_sent_again_after(database, scheme):
    topic = Topic()
    ours, reversal = _reversed_before_enrolment(database, scheme, topic, "hospital", HOSPITAL_FACILITY)
    # the very same record again: its event_id was not taken, and the visit is now settled at its facility
    again = deliver(database, scheme.authority(), [topic.signed(scheme.signers["hospital"], reversal)])
    assert b.reversal_of(again, ours)["reverses"]
    [(reverses,)] = fetch(database, "SELECT reverses FROM ledger_settlements WHERE event_id = $1", reversal["event_id"])
    [(visit_settlement,)] = fetch(
        database, "SELECT settlement_id FROM ledger_settlements WHERE event_id = $1", ours["event_id"]
    )
    assert reverses == visit_settlement
    assert verified(database, scheme.authority()).ok


def test_a_producers_file_or_ledger_key_that_is_not_utf8_is_refused_by_name(tmp_path):
    from ledger.authority import Authority, LedgerVerifier, ProducersFileError

    path = tmp_path / "producers.toml"
    path.write_bytes('[producers.hospital]\nevents = ["visit.*"]\nregions = ["全国"]\n'.encode("gb18030"))
    with pytest.raises(ProducersFileError, match=f"{path}: .*can't decode"):
        Authority.load(path)
    key = tmp_path / "ledger.pub"
    key.write_bytes("账本公钥".encode("gb18030"))
    with pytest.raises(ProducersFileError, match=f"{key}: .*can't decode"):
        LedgerVerifier.load(key)
