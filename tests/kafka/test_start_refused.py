"""`medledger serve` as an operator starts it after an upgrade, on member states an earlier release wrote: it
stops with one line naming the rebuild and exit 2, and consumes nothing (docs/upgrading.md)."""

from __future__ import annotations

from tests import builders as b
from tests.kafka.streams import publish, run
from tests.kafka.test_failures import _serve
from tests.ledger.helpers import execute, fetch, ingest


def test_serve_refuses_to_start_on_member_states_of_an_earlier_release(settings, database, tmp_path):
    b.fresh()
    ingest(database, [b.as_line(b.enrolled("NJ-A", b.NANJING, on="2022-12-01"))])
    execute(database, "UPDATE member_state SET state = state - 'contributions'", owner=True)
    before = fetch(database, "SELECT count(*) FROM ledger_events")[0][0]
    run(publish(settings, [b.as_line(b.contribution("NJ-A", b.NANJING, "2023-07", "9000.00"))]))
    log = tmp_path / "serve.log"

    serve = _serve(settings, database, batch_size=40, log=log)
    try:
        code = serve.wait(120)
    finally:
        if serve.poll() is None:  # it started after all: the test fails, the process is not left behind
            serve.kill()
            serve.wait()

    stderr = log.read_text()
    assert code == 2, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].startswith("medledger serve: 1 member_state row(s) were written")
    assert "Traceback" not in stderr and "medledger projections rebuild" in stderr
    assert fetch(database, "SELECT count(*) FROM ledger_events")[0][0] == before
