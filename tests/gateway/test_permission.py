"""The gateway's own producer as the producers file permits it: a visit the ledger would refuse from it is
refused alike by 2206 and 2207, and a gateway whose producer may send no visit does not start."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from gateway.core import Gateway
from gateway.settings import GatewaySettings
from ledger.authority import ProducersFileError
from ledger.service import LedgerService
from tests.gateway.conftest import Stack
from tests.gateway.counter import NANJING_HOSPITAL, NINGXIA_HOSPITAL
from tests.gateway.his import REFERENCE, facility_codes, keys_file
from tests.gateway.test_settlement import NANJING, NINGXIA, presettled_and_settled, refused_with
from tests.kafka.conftest import own_settings
from tests.ledger.helpers import IM_PARAMETERS
from tests.security.keys import test_keys as producer_keys


def producers_file(path, permissions: str):
    """The test producer's key under other permissions than everything everywhere."""
    text = producer_keys().producers.read_text()
    path.write_text(text.replace('events = ["*"]\nregions = ["*"]\n', permissions))
    return path


# Every facility of the examples but the Ningxia hospital.
SOME_FACILITIES = [code for code in facility_codes() if code != NINGXIA_HOSPITAL]


@pytest.fixture(scope="module")
def restricted(kafka, pg_server, tmp_path_factory):
    """A ledger, serve and gateway whose producer may not speak for the Ningxia hospital."""
    name, db = pg_server.fresh()
    own = tmp_path_factory.mktemp("permission")
    listed = ", ".join(f'"{code}"' for code in SOME_FACILITIES)
    producers = producers_file(own / "producers.toml", f'events = ["*"]\nregions = ["*"]\nfacilities = [{listed}]\n')
    keys = keys_file(own / "keys.toml", facility_codes())
    reference = own / "reference"
    shutil.copytree(REFERENCE, reference)
    settings = own_settings(kafka.bootstrap, prefix="p", producers=str(producers))
    running = Stack(settings, db, keys, reference).start()
    yield running
    running.stop()
    pg_server.drop(name)


def test_a_visit_the_producer_may_not_send_is_refused_by_the_pre_settlement_as_by_the_settlement(restricted):
    def run(region, hospital, when):
        return asyncio.run(presettled_and_settled(restricted, region, hospital, when))

    presettled, settled = run(NINGXIA, NINGXIA_HOSPITAL, "2023-07-03 09:00:00")
    refused_with(presettled, "unauthorized", NINGXIA_HOSPITAL)
    refused_with(settled, "unauthorized", NINGXIA_HOSPITAL)
    assert presettled["err_msg"] == settled["err_msg"]
    allowed_pre, allowed = run(NANJING, NANJING_HOSPITAL, "2023-07-03 09:00:00")
    assert allowed_pre["infcode"] == 0 and allowed["infcode"] == 0, (allowed_pre, allowed)


@pytest.mark.parametrize(
    "permissions",
    [
        'events = ["member.*", "account.*"]\nregions = ["*"]\n',
        'events = ["visit.submitted"]\nregions = ["*"]\n',
        'events = ["*"]\nregions = ["*"]\nid_prefix = "H32010200011-"\n',
    ],
)
def test_a_gateway_whose_producer_cannot_send_visits_does_not_start(permissions, restricted, tmp_path):
    def gateway(**producer) -> Gateway:
        kafka = own_settings(restricted.settings.bootstrap_servers, **producer)
        own = GatewaySettings(restricted.gateway.gateway.settings.keys, restricted.reference)
        return Gateway(own, kafka, LedgerService(restricted.db, IM_PARAMETERS))

    assert gateway().permission.producer is not None
    with pytest.raises(ProducersFileError, match="may not|start with"):
        gateway(producers=str(producers_file(tmp_path / "producers.toml", permissions)))
    with pytest.raises(ProducersFileError, match="not in it"):
        gateway(producer="another-producer")
