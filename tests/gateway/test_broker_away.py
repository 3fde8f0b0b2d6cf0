"""The broker goes away and comes back: a settlement meanwhile is answered -1 saying so, nothing is lost or
applied twice, and the same message sent again once the broker is back settles."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.gateway.conftest import Stack
from tests.gateway.counter import NANJING_HOSPITAL, enrol, enrolment, member_id, registered, settling
from tests.gateway.his import REFERENCE, His, facility_codes, keys_file
from tests.kafka.broker import TestBroker
from tests.kafka.conftest import own_settings
from tests.ledger.helpers import fetch

NANJING = "320100"


def test_a_settlement_while_the_broker_is_away_is_refused_then_settles_once_when_sent_again(kafka, pg_server, tmp_path):
    own = None
    if not kafka.restartable:  # a broker named by KAFKA_BOOTSTRAP_SERVERS is not this test's to stop
        kafka = own = TestBroker(tmp_path / "kafka", own=True)
    name, db = pg_server.fresh()
    keys = keys_file(tmp_path / "keys.toml", facility_codes())
    stack = Stack(own_settings(kafka.bootstrap, prefix="b"), db, keys, REFERENCE, wait_seconds=2.0).start()
    member = member_id(NANJING)
    try:
        asyncio.run(enrol(stack, enrolment(NANJING, member, "2023-01-01")))

        async def register():
            async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=30) as client:
                return await registered(His(client, NANJING_HOSPITAL), NANJING, member, "2023-03-05 09:00:00")

        given = settling(member, asyncio.run(register()), "300.00")

        async def settle():
            async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=30) as client:
                return await His(client, NANJING_HOSPITAL).call("2207", given, NANJING, msgid="AWAY-0001")

        kafka._script("stop")
        try:
            away = asyncio.run(settle())
        finally:
            kafka._script("start")
        assert away["infcode"] == -1
        assert away["err_msg"].split("]")[0] in ("[settlement_unavailable", "[settlement_pending"), away["err_msg"]
        deadline = time.monotonic() + 120
        while (back := asyncio.run(settle()))["infcode"] != 0:
            assert time.monotonic() < deadline, back["err_msg"]
            time.sleep(1)
        settled = fetch(db, "SELECT count(*) FROM ledger_settlements WHERE member_id = $1", member)
        assert settled[0][0] == 1
        assert back["output"]["setlinfo"]["medfee_sumamt"] == "300.00"
    finally:
        stack.stop()
        if own is not None:
            own.stop()
        pg_server.drop(name)
