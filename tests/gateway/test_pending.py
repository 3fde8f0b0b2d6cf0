"""A settlement the ledger has not made within the wait is answered as pending; once the ledger settles it, 5203
returns it, and the message sent again answers it without settling twice."""

from __future__ import annotations

import asyncio

import httpx

from gateway.core import Gateway
from gateway.settings import GatewaySettings
from tests.gateway.conftest import GatewayServer, Serving, reading_as_the_gateway
from tests.gateway.counter import NANJING_HOSPITAL, enrol, enrolment, member_id, registered, settling
from tests.gateway.his import His, ok
from tests.kafka.conftest import own_settings
from tests.ledger.helpers import IM_PARAMETERS, fetch

NANJING = "320100"


def test_a_settlement_not_made_in_time_is_pending_then_queried_and_answered_once(stack, kafka):
    member = member_id(NANJING)
    asyncio.run(enrol(stack, enrolment(NANJING, member, "2023-01-01")))
    # A gateway whose event topic no serve reads yet.
    unread = own_settings(kafka.bootstrap, prefix="p")
    settings = GatewaySettings(stack.gateway.gateway.settings.keys, stack.reference, wait_seconds=0.5)
    late = GatewayServer(Gateway(settings, unread, reading_as_the_gateway(stack.db)))
    late.start()
    try:

        async def first():
            async with httpx.AsyncClient(base_url=late.url, timeout=30) as client:
                his = His(client, NANJING_HOSPITAL)
                mdtrt_id = await registered(his, NANJING, member, "2023-03-09 09:00:00")
                given = settling(member, mdtrt_id, "300.00")
                return mdtrt_id, given, await his.call("2207", given, NANJING, msgid="PENDING-0001")

        mdtrt_id, given, pending = asyncio.run(first())
        assert pending["infcode"] == -1 and pending["err_msg"].startswith("[settlement_pending]")
        serve = Serving(unread, stack.db, IM_PARAMETERS)
        serve.start()
        try:

            async def later():
                async with httpx.AsyncClient(base_url=late.url, timeout=30) as client:
                    his = His(client, NANJING_HOSPITAL)
                    for _ in range(200):
                        queried = await his.call("5203", {"data": {"psn_no": member, "mdtrt_id": mdtrt_id}}, NANJING)
                        if queried["infcode"] == 0:
                            break
                        await asyncio.sleep(0.1)
                    return queried, await his.call("2207", given, NANJING, msgid="PENDING-0001")

            queried, again = asyncio.run(later())
        finally:
            serve.stop()
    finally:
        late.stop()
    assert queried["infcode"] == 0, queried["err_msg"]
    assert ok(again)["setlinfo"] == queried["output"]["setlinfo"]
    assert fetch(stack.db, "SELECT count(*) FROM ledger_settlements WHERE member_id = $1", member)[0][0] == 1


def test_medledger_gateway_serves_until_told_to_stop(stack, tmp_path):
    """The command as an operator runs it: settings from the environment, answering on its port, stopping on
    SIGTERM."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from consumers.settings import environment
    from tests.gateway.conftest import free_port
    from tests.ledger.helpers import plain

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": plain(stack.db.owner_url),
        "MEDLEDGER_APP_DATABASE_URL": plain(stack.db.app_url),
        "KAFKA_BOOTSTRAP_SERVERS": stack.settings.bootstrap_servers,
        "MEDLEDGER_EVENTS_TOPIC": stack.settings.events_topic,
        "MEDLEDGER_GATEWAY_KEYS": str(stack.gateway.gateway.settings.keys),
        "MEDLEDGER_GATEWAY_REFERENCE": str(stack.reference),
        "MEDLEDGER_GATEWAY_PORT": str(port),
        "MEDLEDGER_LOG_LEVEL": "INFO",
        **environment(stack.settings),  # the gateway's own producer and its key: it does not start without them
    }
    gateway = subprocess.Popen(
        [sys.executable, "-m", "consumers.cli", "gateway"], env=env, stderr=open(tmp_path / "gateway.log", "wb")
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
                break
            except httpx.HTTPError:
                assert gateway.poll() is None, (tmp_path / "gateway.log").read_text()
                assert time.monotonic() < deadline, "the gateway did not answer"
                time.sleep(0.2)
        member = member_id(NANJING)
        asyncio.run(enrol(stack, enrolment(NANJING, member, "2023-01-01")))

        async def person():
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                return await His(client, NANJING_HOSPITAL).call("1101", {"data": {"psn_no": member}}, NANJING)

        assert ok(asyncio.run(person()))["baseinfo"]["psn_no"] == member
    finally:
        gateway.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then raises the signal it caught again
        assert gateway.wait(30) in (0, -signal.SIGTERM)
    assert "medledger gateway stopped" in (tmp_path / "gateway.log").read_text()
