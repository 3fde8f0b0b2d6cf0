"""Restarts and outages on the real broker and a real PostgreSQL: a consumer starting over the offsets it stored,
PostgreSQL stopped mid-stream and started again, `serve` killed and started again, and again."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson

from ledger.service import LedgerService
from tests.kafka.streams import generated, publish, relayed_all, run, serving
from tests.kafka.test_failures import _async_until, _count, _serve, _until
from tests.ledger.helpers import IM_PARAMETERS, fetch, verify


def test_records_fetched_before_the_claims_seek_are_neither_settled_nor_taken_for_lost(
    settings, database, monkeypatch, caplog
):
    """A start over stored offsets: the partitions are assigned, then claimed in PostgreSQL (slowly here), then
    the consumer seeks to the stored offsets. Nothing is fetched from the log's start meanwhile, so no batch from
    offset 0 is settled against the stored offsets, and no offsets are reported gone from the topic."""
    caplog.set_level(logging.INFO)
    lines = generated(1_200, 100)
    first = lines[:800]

    async def scenario():
        await publish(settings, first)
        async with serving(settings, database, IM_PARAMETERS, batch_size=40):
            await _async_until(lambda: _count(database) == len(first))
        real_claim = LedgerService.claim

        async def slow_claim(self, *args, **kwargs):
            await asyncio.sleep(2)  # time for the consumer to fetch, were it fetching
            return await real_claim(self, *args, **kwargs)

        monkeypatch.setattr(LedgerService, "claim", slow_claim)
        await publish(settings, lines[len(first) :])
        async with serving(settings, database, IM_PARAMETERS, batch_size=40) as service:
            await _async_until(lambda: _count(database) == len(lines) and relayed_all(database))
            return service.metrics.gaps._value.get(), service.metrics.duplicates._value.get()

    gaps, repeats = run(scenario())
    said = caplog.text
    assert "were never consumed" not in said
    assert "batch does not continue the stored offsets" not in said
    assert gaps == 0 and repeats == 0
    assert _count(database) == len(lines)
    stored = fetch(database, "SELECT sum(next_offset) FROM consumer_offsets WHERE consumer = $1", settings.group_id)
    assert stored[0][0] == len(lines)


def test_partitions_assigned_while_postgresql_cannot_claim_them_are_claimed_by_a_retry(settings, database, monkeypatch):
    """The claim made on assignment fails (PostgreSQL away): the partitions stay paused, so nothing of them is
    fetched, and a retry in the background claims them once PostgreSQL answers; then the stream settles."""
    lines = generated(600, 60)
    real_claim = LedgerService.claim
    refused = {"n": 0}

    async def claim(self, *args, **kwargs):
        if refused["n"] < 3:
            refused["n"] += 1
            raise OSError("connection refused")
        return await real_claim(self, *args, **kwargs)

    monkeypatch.setattr(LedgerService, "claim", claim)

    async def scenario():
        await publish(settings, lines)
        async with serving(settings, database, IM_PARAMETERS, batch_size=40) as service:
            await _async_until(lambda: _count(database) == len(lines), timeout=60)
            return service.metrics.gaps._value.get()

    assert run(scenario()) == 0
    assert refused["n"] == 3
    stored = fetch(database, "SELECT sum(next_offset) FROM consumer_offsets WHERE consumer = $1", settings.group_id)
    assert stored[0][0] == len(lines)


# Long enough for retries backing off without a cap to be half a minute apart by the time PostgreSQL is back.
OUTAGE = 35.0


def test_serve_resumes_on_its_own_within_seconds_of_postgresql_coming_back(settings, tmp_path, caplog):
    """PostgreSQL is stopped (`pg_ctl stop -m fast`) mid-stream and started again while the service runs, with
    every record already on the topic: no new record comes to wake the consumer. Meanwhile the service says what
    it waits for (a log line, the waiting gauge) and the lag stays shown; once PostgreSQL is back it settles
    again within seconds, and the rest of the stream settles once."""
    from tests.pg import TestServer

    caplog.set_level(logging.INFO)
    server = TestServer(tmp_path / "postgres", own=True)
    try:
        name, database = server.fresh()
        lines = generated(8_000, 500)
        # Batches this large take what is left from the consumer within seconds of the outage: then only the
        # service itself can bring the consumer back to it.
        settings = replace(settings, batch_size=1_000)

        async def scenario():
            await publish(settings, lines)
            async with serving(settings, database, IM_PARAMETERS, batch_size=20) as service:
                await _async_until(lambda: _count(database) >= 300)
                await asyncio.to_thread(server.halt)
                await asyncio.sleep(OUTAGE)
                waiting = service.metrics.waiting.labels("postgresql")._value.get()
                lag = sum(sample.value for sample in service.metrics.lag.collect()[0].samples)
                await asyncio.to_thread(server.resume)
                back = time.monotonic()
                at_return = await asyncio.to_thread(_count, database)
                await _async_until(lambda: _count(database) > at_return, timeout=60)
                resumed = time.monotonic() - back
                print(f"settled again {resumed:.1f} s after PostgreSQL came back")
                await _async_until(lambda: _count(database) == len(lines) and relayed_all(database), timeout=180)
                return at_return, waiting, lag, resumed, service.metrics.waiting.labels("postgresql")._value.get()

        at_return, waiting, lag, resumed, waiting_after = run(scenario())
        assert at_return < len(lines), "the stream was settled before PostgreSQL stopped: the test proved nothing"
        assert resumed < 10, f"settled again {resumed:.1f} s after PostgreSQL came back"
        assert waiting == 1 and waiting_after == 0
        assert lag > 0
        assert "waiting for PostgreSQL" in caplog.text
        assert _count(database) == len(lines)
        assert verify(database, batch_size=500).ok
    finally:
        server.stop()


def _entries(log: Path) -> list[dict]:
    """The structured log lines `serve` wrote to `log`."""
    return [orjson.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def _starts(log: Path) -> list[datetime]:
    """When each `serve` writing to `log` said it was starting (its code loaded, nothing connected yet)."""
    return [datetime.fromisoformat(e["time"]) for e in _entries(log) if e["message"] == "medledger starting"]


def test_serve_killed_and_started_again_settles_within_3_s_of_its_start(settings, database, tmp_path):
    """The only instance of its group is killed (SIGKILL: it leaves the group no word) and started again. Under the
    same group instance id it gets its partitions back at once, with no wait for the broker to give the dead
    member up, and settles again within 3 s of its start (its code loaded: the interpreter's own start is slow
    and varies on a loaded machine)."""
    lines = generated(3_000, 200)
    log = tmp_path / "serve.log"
    run(publish(settings, lines))
    first = _serve(settings, database, batch_size=20, log=log)
    try:
        assert _until(lambda: _count(database) >= 300), log.read_text()[-2000:]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    at_kill = _count(database)
    assert at_kill < len(lines), "the stream was settled before the kill: the test proved nothing"
    started = time.monotonic()
    second = _serve(settings, database, batch_size=20, log=log)
    try:
        assert _until(lambda: _count(database) > at_kill, timeout=60, every=0.02), log.read_text()[-2000:]
        settled = datetime.now(UTC)
        from_process_start = time.monotonic() - started
        assert _until(lambda: _count(database) == len(lines)), log.read_text()[-2000:]
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, log.read_text()[-2000:]
    from_start = (settled - _starts(log)[-1]).total_seconds()
    print(f"settled again {from_start:.2f} s after starting, {from_process_start:.2f} s after the process began")
    assert from_start < 3, f"first settlement {from_start:.1f} s after the restarted serve started"
    assert "acknowledged as repeats" not in log.read_text()


def test_two_instances_on_one_host_have_ids_of_their_own_and_share_the_partitions(
    settings, database, tmp_path, monkeypatch
):
    """Two instances of one group on one host, told apart by MEDLEDGER_INSTANCE: the broker fences neither (an id
    used twice at once would fence the older), each claims partitions of its own, and the stream settles once."""
    from consumers.settings import Settings

    ids = {Settings.from_env({"MEDLEDGER_INSTANCE": n}).group_instance_id for n in ("1", "2")}
    assert len(ids) == 2 and all(i.startswith(socket.gethostname()) for i in ids)
    lines = generated(2_000, 200)
    run(publish(settings, lines))
    logs = [tmp_path / f"serve-{n}.log" for n in (1, 2)]
    both = []
    for n, log in enumerate(logs, 1):
        monkeypatch.setenv("MEDLEDGER_INSTANCE", str(n))
        both.append(_serve(settings, database, batch_size=20, log=log))
    try:
        assert _until(lambda: _count(database) == len(lines)), logs[0].read_text()[-2000:]
        assert _until(lambda: all(_claimed(log) for log in logs), timeout=30), [_claimed(log) for log in logs]
    finally:
        for process in both:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(60) for process in both]
    claimed = [_claimed(log) for log in logs]
    assert claimed[0] and claimed[1] and not claimed[0] & claimed[1]
    assert codes == [0, 0]
    errors = [
        e["message"]
        for log in logs
        for e in _entries(log)
        if e["level"] == "error" and "GroupCoordinatorNotAvailable" not in e["message"]
    ]
    assert not errors, errors[:3]
    assert fetch(database, "SELECT count(*) - count(DISTINCT event_id) FROM ledger_events")[0][0] == 0


def _claimed(log: Path) -> set[str]:
    """The partitions the last claim logged in `log` took."""
    claims = [set(e["partitions"]) for e in _entries(log) if e["message"] == "partitions claimed"]
    return claims[-1] if claims else set()
