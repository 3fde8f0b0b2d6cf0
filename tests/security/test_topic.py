"""Through a real broker and `serve`: a record on the event topic that no producer signed is refused and kept,
published on the rejection topic with reason `unauthorized`, and applies nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from ledger.authority import LedgerVerifier
from tests import builders as b
from tests.builders import NANJING
from tests.kafka.streams import Topic, publish, run, serving
from tests.ledger.helpers import fetch, verify

MEMBER = "320113195306110004"


def test_an_unsigned_death_notice_on_the_event_topic_is_refused_and_kept(settings, database):
    b.fresh()
    lines = [
        json.dumps(b.enrolled(MEMBER, NANJING, on="2023-01-01")),
        json.dumps(b.contribution(MEMBER, NANJING, "2023-06", "10000.00")),
    ]
    forged = json.dumps(b.terminated(MEMBER, NANJING, on="2023-07-01", reason="death"))

    async def scenario():
        await publish(settings, lines)  # signed by the test producer
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
        await producer.start()
        try:  # the attacker's record: on the member's key, no signature
            await producer.send_and_wait(settings.events_topic, forged.encode(), key=MEMBER.encode())
        finally:
            await producer.stop()
        async with serving(settings, database):
            topic = Topic(settings, settings.rejections_topic)
            await topic.read_until(lambda values: values, 60)
            return topic

    topic = run(scenario())
    refused = topic.values()
    # published with the ledger's signature, which its public key verifies
    verifier = LedgerVerifier.load(settings.ledger_public_key)
    assert [verifier.problem(record.headers, record.value) for record in topic.records] == [None]
    assert [(r["rejected"], r["reason"]) for r in refused] == [(json.loads(forged)["event_id"], "unauthorized")]
    assert "unsigned" in refused[0]["detail"]
    assert fetch(database, "SELECT count(*) FROM ledger_events WHERE event_type = 'member.terminated'")[0][0] == 0
    [kept] = fetch(database, "SELECT payload, source FROM ledger_rejections WHERE reason = 'unauthorized'")
    assert kept["payload"] == forged and kept["source"].startswith("kafka:")
    movements = fetch(database, "SELECT kind FROM ledger_movements WHERE member_id = $1", MEMBER)
    assert [m["kind"] for m in movements] == ["credit"]  # the contribution; nothing paid out
    assert verify(database).ok


def test_a_year_close_dated_after_it_arrives_is_refused_by_serve_and_the_year_stays_open(settings, database):
    b.fresh()
    year = datetime.now(UTC).year + 1  # closed on 1 January of the year after: never yet
    early = b.year_closed(NANJING, year)
    enrol = b.enrolled(MEMBER, NANJING, on="2023-01-01")
    visit = b.visit(MEMBER, NANJING, on="2023-07-02")

    async def scenario():
        await publish(settings, [json.dumps(e) for e in (enrol, early, visit)])  # signed by a permitted producer
        async with serving(settings, database):
            rejections = Topic(settings, settings.rejections_topic)
            await rejections.read_until(lambda values: values, 60)
            settlements = Topic(settings, settings.settlements_topic)
            await settlements.read_until(lambda values: any("settlement_id" in v for v in values), 60)
            return rejections, settlements

    rejections, settlements = run(scenario())
    [refused] = rejections.values()
    assert (refused["rejected"], refused["reason"]) == (early["event_id"], "implausible")
    assert "rule occurred_at_ahead" in refused["detail"]
    [kept] = fetch(database, "SELECT seq, source FROM ledger_rejections WHERE reason = 'implausible'")
    assert kept["seq"] is None and kept["source"].startswith("kafka:")
    assert fetch(database, "SELECT count(*) FROM closed_years")[0][0] == 0
    assert b.settled(settlements.values(), visit)["fund_paid"]
    assert verify(database).ok
