"""The Kafka adapters' pure parts: settings from the environment, routing, JSON logs, reporting rows."""

from __future__ import annotations

import json
import logging
import zlib

import pytest
from aiokafka import errors as aiokafka_errors

from consumers.logs import JsonFormatter
from consumers.partitioning import partition_for, partition_of, routing
from consumers.reporting import row_of
from consumers.settings import Settings
from tests.security.keys import test_keys


def test_settings_come_from_the_environment_with_defaults():
    settings = Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "MEDLEDGER_BATCH_SIZE": "500", "MEDLEDGER_METRICS_PORT": ""}
    )
    assert settings.bootstrap_servers == "kafka:9092" and settings.batch_size == 500
    assert settings.metrics_port is None  # empty turns the endpoint off
    assert settings.events_topic == "medledger.events" and settings.security() is None


def test_the_group_instance_id_is_the_hosts_with_an_instance_suffix_and_an_empty_one_turns_it_off():
    import socket

    host = socket.gethostname()
    assert Settings.from_env({}).group_instance_id == host
    assert Settings.from_env({"MEDLEDGER_INSTANCE": "2"}).group_instance_id == f"{host}-2"
    assert Settings.from_env({"MEDLEDGER_GROUP_INSTANCE_ID": "settle-a"}).group_instance_id == "settle-a"
    assert Settings.from_env({"MEDLEDGER_GROUP_INSTANCE_ID": ""}).group_instance_id is None
    assert Settings().group_instance_id is None  # built in code (tests, tools): a new member at each start


def test_sasl_needs_credentials_and_names_a_known_mechanism():
    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME"):
        Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}).security()
    with pytest.raises(ValueError, match="unknown mechanism"):
        Settings.from_env(
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "MD5",
                "KAFKA_SASL_USERNAME": "u",
                "KAFKA_SASL_PASSWORD": "p",
            }
        ).security()
    scram = Settings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": "p",
        }
    ).security()
    assert type(scram).__name__ == "SASLScram512" and not scram.use_ssl


def test_an_event_is_keyed_by_its_region_on_the_partition_its_region_key_hashes_to():
    visit = b'{"event_id":"e1","region":"320100","member_id":"M1","event_type":"visit.submitted"}'
    close = b'{"event_id":"e2","region":"320100","event_type":"period.year_closed","year":2023}'
    assert routing(visit, 4) == (b"320100", 3) == routing(close, 4)
    assert routing(visit, 4, "crc32") == (b"320100", zlib.crc32(b"320100") % 4)
    key, partition = routing(b"{not json", 4)
    assert key is None and 0 <= partition < 4
    key, partition = routing(b'{"event_id":"e3","region":320100}', 4)
    assert key is None and 0 <= partition < 4


def test_the_partitioners_hash_a_key_as_the_kafka_clients_do():
    # Kafka's own murmur2 test vectors (clients' UtilsTest), as the Java client makes them positive
    for key, java in ((b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536)):
        assert partition_of(key, 2**31) == java & 0x7FFFFFFF
    # The four regions of the examples on four partitions, as kcat placed them keyed by region: with
    # partitioner=murmur2_random (= Java's default), and with librdkafka's default (consistent_random)
    regions = ("150000", "320100", "640000", "371000")
    assert [partition_for(region, 4) for region in regions] == [2, 3, 1, 0]
    assert [partition_for(region, 4, "crc32") for region in regions] == [3, 3, 3, 1]
    with pytest.raises(ValueError, match="unknown partitioner"):
        partition_for("320100", 4, "fnv1a")
    assert Settings.from_env({"MEDLEDGER_PARTITIONER": "crc32"}).partitioner == "crc32"
    assert Settings.from_env({}).partitioner == "murmur2"


def test_logs_are_one_json_object_a_line_with_the_extra_fields():
    record = logging.makeLogRecord({"name": "medledger.consumer", "levelname": "WARNING", "msg": "batch %s"})
    record.args = ("fenced",)
    record.records = 12
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "batch fenced" and entry["level"] == "warning" and entry["records"] == 12
    assert entry["logger"] == "medledger.consumer" and entry["time"].endswith("+00:00")


def test_reporting_keeps_settlements_and_reversals_only():
    settlement = {
        "settlement_id": "S1",
        "region": "320100",
        "visit_date": "2023-03-14",
        "facility_level": 2,
        "fund_pool": "general",
        "reverses": None,
        "total_amount": "100.00",
        "fund_paid": "60.00",
        "account_paid": "40.00",
        "cash_paid": "0.00",
    }
    row = row_of(settlement)
    assert row[0] == "S1" and str(row[2]) == "2023-03-01" and row[4] == 2
    assert row_of({"movement_id": "M1", "member_id": "X"}) is None


@pytest.mark.parametrize(
    ("raised", "refusal"),
    [
        (aiokafka_errors.KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9, 2)]"), True),
        (aiokafka_errors.SaslAuthenticationFailed("Authentication failed: Invalid username or password"), True),
        (aiokafka_errors.IllegalStateError("a defect, not a refusal"), False),
        (ValueError("not Kafka's"), False),
    ],
)
def test_a_refused_connection_ends_the_command_in_one_line_and_anything_else_keeps_its_traceback(
    monkeypatch, capsys, raised, refusal
):
    from consumers import cli

    def command():
        raise raised

    monkeypatch.setattr(cli, "app", command)
    if refusal:
        with pytest.raises(SystemExit) as stopped:
            cli.main()
        assert stopped.value.code == 1
        assert capsys.readouterr().err == f"medledger: Kafka: {raised}\n"
    else:
        with pytest.raises(type(raised)):
            cli.main()


def test_consumer_lag_is_reported_for_the_partitions_held_and_only_those():
    import asyncio

    from aiokafka import TopicPartition
    from prometheus_client import CollectorRegistry

    from consumers.lag import Lag
    from consumers.metrics import Metrics

    class Consumer:
        def __init__(self, ends: dict[int, int | None], beginnings: dict[int, int]):
            self.ends, self.beginnings = ends, beginnings

        def assignment(self):
            return {TopicPartition("events", p) for p in self.ends}

        def highwater(self, tp):
            return self.ends[tp.partition]

        async def beginning_offsets(self, tps):
            return {tp: self.beginnings[tp.partition] for tp in tps}

    registry = CollectorRegistry()
    lag = Lag(Metrics(registry).lag)

    def shown() -> dict[str, float]:
        return {
            sample.labels["partition"]: sample.value
            for metric in registry.collect()
            if metric.name == "medledger_consumer_lag"
            for sample in metric.samples
        }

    # 0: committed up to 90 of 100; 1: nothing committed yet, the log starts at 20 of 50; 2: no fetch answered yet
    held = {("events", 0), ("events", 1), ("events", 2)}
    asyncio.run(lag.update(Consumer({0: 100, 1: 50, 2: None}, {1: 20}), held, set(), {("events", 0): 90}))
    assert shown() == {"0": 10.0, "1": 30.0}
    # a rebalance under way: assigned again, not claimed yet; the figures stay as they were
    asyncio.run(lag.update(Consumer({0: 100, 1: 50, 2: 7}, {1: 0, 2: 0}), set(), set(), {}))
    assert shown() == {"0": 10.0, "1": 30.0}
    # 1 went to another instance, and 0 was claimed by one meanwhile: their figures go with them
    held = {("events", 2)}
    asyncio.run(lag.update(Consumer({0: 100, 2: 7}, {2: 0}), held, {("events", 0)}, {("events", 0): 100}))
    assert shown() == {"2": 7.0}


def test_the_service_sweep_counts_what_it_refused_before_a_later_batch_failed(monkeypatch):
    import asyncio
    from datetime import timedelta

    import consumers.app
    from consumers.app import Service
    from ledger.service import LedgerService

    class Sweeping(LedgerService):
        async def sweep(self, now=None, stats=None, on_published=None):
            stats.rejected += 3  # a first batch refused three and committed
            raise ConnectionError("the second batch failed")

    sweeping = Sweeping.__new__(Sweeping)
    sweeping.authority = None  # the producers file of the settings is read
    service = Service(Settings(metrics_port=None, **test_keys().settings()), sweeping)
    monkeypatch.setattr(consumers.app, "SWEEP_EVERY", timedelta(0))

    async def one_round():
        task = asyncio.create_task(service._sweep())
        while service.metrics.rejections._value.get() == 0:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(asyncio.wait_for(one_round(), 10))
    assert service.metrics.rejections._value.get() >= 3


def test_a_partition_read_again_from_its_start_forgets_the_failures_counted_at_its_offsets():
    from consumers.app import Service
    from ledger.service import LedgerService

    bare = LedgerService.__new__(LedgerService)
    bare.authority = None  # the producers file of the settings is read
    service = Service(Settings(metrics_port=None, **test_keys().settings()), bare)
    service.settler.strikes = {("events", 0, 7): 2, ("events", 1, 7): 2, ("other", 0, 7): 1}
    service.claims.on_rebase(("events", 0))
    assert service.settler.strikes == {("events", 1, 7): 2, ("other", 0, 7): 1}
    assert service.metrics.rebased._value.get() == 1


def test_metrics_listen_on_loopback_unless_the_environment_names_another_address():
    from consumers.metrics import Metrics

    assert Settings.from_env({}).metrics_host == "127.0.0.1"
    assert Settings.from_env({"MEDLEDGER_METRICS_HOST": "0.0.0.0"}).metrics_host == "0.0.0.0"
    server, thread = Metrics().serve(0, Settings.from_env({}).metrics_host)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
