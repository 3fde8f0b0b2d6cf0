"""A settlement the ledger has not made within the wait is answered as pending; once the ledger settles it, 5203
returns it, and the message sent again answers it without settling twice."""

from __future__ import annotations

import asyncio

import httpx

from gateway.core import Gateway
from gateway.settings import GatewaySettings
from ledger.service import LedgerService
from tests.gateway.conftest import GatewayServer, Serving
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
    late = GatewayServer(Gateway(settings, unread, LedgerService(stack.db, IM_PARAMETERS)))
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
