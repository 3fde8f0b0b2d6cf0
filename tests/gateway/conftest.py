"""The gateway as a HIS meets it: `serve` and `medledger gateway`'s application on uvicorn, each on its own
thread and event loop, on the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time

import pytest
import uvicorn

from consumers.settings import Settings
from gateway.app import create_app
from gateway.core import Gateway
from gateway.settings import GatewaySettings, gateway_database
from ledger.db.server import Database
from ledger.enquiry import LedgerReader
from tests.gateway.his import REFERENCE, facility_codes, keys_file
from tests.kafka.conftest import own_settings
from tests.kafka.streams import serving
from tests.ledger.helpers import IM_PARAMETERS

# A caller that holds a key but is not in facilities.csv.
UNLISTED = "H99999900001"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Serving:
    """`serve` on a thread of its own until stopped."""

    def __init__(self, settings: Settings, db: Database, parameters: str):
        self.settings, self.db, self.parameters = settings, db, parameters
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        async with serving(self.settings, self.db, self.parameters):
            self._started.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.05)

    def start(self) -> None:
        self._thread.start()
        assert self._started.wait(60), "serve did not start"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def reading_as_the_gateway(db: Database) -> LedgerReader:
    """The ledger as `medledger gateway` reads it: as its own role, medledger_gateway, which may write nothing."""
    return LedgerReader(gateway_database(lambda: db), IM_PARAMETERS)


class GatewayServer:
    """The gateway's application on uvicorn, on a free loopback port, on a thread of its own."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway
        self.port = free_port()
        config = uvicorn.Config(
            create_app(gateway), host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(30)


class Stack:
    def __init__(self, settings: Settings, db: Database, keys, reference=REFERENCE, wait_seconds: float = 5.0):
        self.settings, self.db, self.reference = settings, db, reference
        self.serve = Serving(settings, db, IM_PARAMETERS)
        gateway_settings = GatewaySettings(keys, reference, wait_seconds=wait_seconds)
        self.gateway = GatewayServer(Gateway(gateway_settings, settings, reading_as_the_gateway(db)))

    def start(self) -> Stack:
        self.serve.start()
        self.gateway.start()
        return self

    def stop(self) -> None:
        self.gateway.stop()
        self.serve.stop()


@pytest.fixture(scope="module")
def stack(kafka, pg_server, tmp_path_factory):
    """One ledger, serve and gateway for a module's tests (each test uses members and facilities of its own)."""
    name, db = pg_server.fresh()
    own = tmp_path_factory.mktemp("gateway")
    keys = keys_file(own / "keys.toml", [*facility_codes(), UNLISTED])
    reference = own / "reference"
    shutil.copytree(REFERENCE, reference)  # a test may change it, to see it reloaded
    running = Stack(own_settings(kafka.bootstrap, prefix="g"), db, keys, reference).start()
    yield running
    running.stop()
    pg_server.drop(name)
