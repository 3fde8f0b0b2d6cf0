"""What producers wrote reaches the console's pages as `member show` and `audit explain` print it: markup as text,
characters that move or hide text as their escapes, formulas in the clearing download as text; a year that is
not four ASCII digits is a clear bad input; and the console's verification checks every kept signature again, as
`replay --verify` does, so that the page and the command never disagree."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import time

import pytest

from console.i18n import text
from tests import builders as b
from tests.builders import NANJING
from tests.console.conftest import _free_port, add_users, fetch, off_the_browser_thread
from tests.ledger.helpers import ingest
from tests.security.producers import Scheme, Topic, deliver

# As an attacker with access to the topic would write them: markup a page would take for its own, and a
# right-to-left override that shows "0.001" as "100.0".
OVERRIDE = "\u202e"
MEMBER = 'M<i id="evil-member">X</i>' + OVERRIDE + "1"
VISIT = 'V<i id="evil-visit">pay</i>' + OVERRIDE + "00.001"
PLAIN_MEMBER = "M-PLAIN-0001"
PLAIN_VISIT = 'W<i id="evil-plain">pay</i>' + OVERRIDE + "00.002"
WAITING = 'P<i id="evil-parked">X</i>' + OVERRIDE + "2"
MALFORMED = '{"event_type": "visit.submitted", "x": "<i id=\\"evil-rejected\\">r</i>' + OVERRIDE + '", '
FACILITY = '=HYPERLINK("x")'
SIGNED_MEMBER = "320113195306110004"


def escaped(value: str) -> str:
    return value.replace(OVERRIDE, "\\u202e")


@pytest.fixture(scope="module")
def scheme() -> Scheme:
    return Scheme.make()


@pytest.fixture(scope="module")
def ledger_db(pg_server, scheme):
    """A ledger of hostile ids (ingested unsigned, before the ledger kept any signature), then events signed by
    the scheme's producers; the console's three users."""
    name, db = off_the_browser_thread(pg_server.fresh)

    def prepare() -> None:
        b.fresh()
        events = b.lines(
            b.enrolled(MEMBER, NANJING, "2023-01-01", contribution_base="8000.00"),
            b.visit(MEMBER, NANJING, "2023-03-01", visit_id=VISIT, facility=FACILITY, items=[b.line("900.00")]),
            b.enrolled(PLAIN_MEMBER, NANJING, "2023-01-01", contribution_base="8000.00"),
            b.visit(PLAIN_MEMBER, NANJING, "2023-03-02", visit_id=PLAIN_VISIT, items=[b.line("700.00")]),
            b.visit(WAITING, NANJING, "2023-03-03"),
            MALFORMED,
        )
        stats, _ = ingest(db, events, name="hostile")
        assert (stats.settlements, stats.parked, stats.rejected) == (2, 1, 1), stats
        topic, signer = Topic(), scheme.signers
        signed = [
            topic.signed(signer["enrolment"], b.enrolled(SIGNED_MEMBER, NANJING, on="2023-01-01")),
            topic.signed(signer["contributions"], b.contribution(SIGNED_MEMBER, NANJING, "2023-06", "10000.00")),
        ]
        published = deliver(db, scheme.authority(), signed)
        assert not [record for record in published if "rejected" in record], published
        add_users(db)

    off_the_browser_thread(prepare)
    yield db
    off_the_browser_thread(pg_server.drop, name)


def _shows_as_text(page, *values: str) -> None:
    """Each value on the page with its override escaped, its markup as text; no override anywhere."""
    html = page.content()
    shown = page.locator("main").inner_text()
    assert OVERRIDE not in html
    for value in values:
        assert escaped(value) in shown, value
    assert page.locator("main i[id^=evil]").count() == 0


def test_the_member_page_shows_visit_ids_and_unknown_member_ids_as_text(login):
    page = login("auditor", language="en")
    page.goto(f"/member?member_id={PLAIN_MEMBER}&year=2023")
    assert page.locator("tr[data-settlement]").count() == 1
    _shows_as_text(page, PLAIN_VISIT)
    # a member id the page does not look up is named in its message, escaped too
    response = page.goto("/member?member_id=" + MEMBER.replace("<", "%3C").replace(">", "%3E").replace('"', "%22"))
    assert response.status == 404
    assert page.locator("#message").inner_text() == escaped(text("no_member", "en", id=MEMBER))
    assert OVERRIDE not in page.content()


def test_the_settlement_page_shows_ids_and_the_source_event_as_text(ledger_db, login):
    (settlement,) = fetch(ledger_db, "SELECT settlement_id FROM ledger_settlements WHERE member_id = $1", MEMBER)
    page = login("auditor", language="en")
    page.goto(f"/settlement/{settlement['settlement_id']}")
    _shows_as_text(page, MEMBER, VISIT)
    assert escaped(MEMBER) in page.locator('[data-figure="member"]').inner_text()
    # the source event, line by line: its lines kept, the override in the facility's id escaped
    payload = page.locator("pre.payload").inner_text()
    assert len(payload.splitlines()) > 5 and '"member_id": "M<i id=\\"evil-member\\">X</i>\\u202e1"' in payload
    # the member's link carries the id url-encoded, whole
    href = page.locator('[data-figure="member"] a').get_attribute("href")
    assert href.startswith("/member?member_id=M%3Ci%20id%3D%22evil-member%22%3EX%3C/i%3E%E2%80%AE1"), href


def test_the_queue_shows_parked_and_rejected_events_as_text(login):
    page = login("operator", language="en")
    page.goto("/queue")
    _shows_as_text(page, WAITING)
    assert escaped(WAITING) in page.locator("#parked").inner_text()
    page.locator("#rejections details").first.click()
    assert escaped(MALFORMED).strip() in page.locator("#rejections pre").first.inner_text()
    assert page.locator("i[id^=evil]").count() == 0


@pytest.mark.parametrize("year", ["²⁰²³", "２０２３", "2023²", "x"])
def test_a_year_that_is_not_four_ascii_digits_is_refused_with_the_message(login, year):
    page = login("auditor", language="en")
    response = page.goto(f"/member?member_id={PLAIN_MEMBER}&year={year}")
    assert response.status == 404
    assert page.locator("#message").inner_text() == text("no_member", "en", id=PLAIN_MEMBER)


def test_the_clearing_download_keeps_a_facility_id_that_starts_like_a_formula_as_text(login):
    page = login("fund_manager", language="en")
    response = page.request.get("/fund/clearing.csv?region=320100&month=2023-03")
    assert response.status == 200
    rows = list(csv.reader(io.StringIO(response.text())))
    assert rows[0][:3] == ["region", "month", "facility_id"]
    facilities = {row[2]: row for row in rows[1:]}
    assert "'" + FACILITY in facilities and FACILITY not in facilities, rows
    line = facilities["'" + FACILITY]
    assert line[:2] == ["320100", "2023-03"] and line[3:5] == ["1", "0"] and line[5] == "900.00"


def _console_verdict(db, login) -> tuple[str, str]:
    """An operator's verification from the integrity page, to its end: its verdict and the differences shown."""
    (before,) = fetch(db, "SELECT count(*) FROM console_verifications", owner=True)[0]
    page = login("operator", language="en")
    page.goto("/integrity")
    page.click("#verify")
    deadline = time.monotonic() + 180
    while fetch(db, "SELECT count(*) FROM console_verifications", owner=True)[0][0] == before:
        assert page.locator("#job-error").count() == 0, page.locator("#job-error").inner_text()
        assert time.monotonic() < deadline, "the verification did not end"
        time.sleep(0.5)
        page.reload()
    page.goto("/integrity")
    detail = page.locator("#heads + pre")
    return page.locator("#result").inner_text(), detail.inner_text() if detail.count() else ""


def test_the_console_s_verify_checks_every_kept_signature_as_replay_verify_does(
    ledger_db, login, cli, scheme, tmp_path, monkeypatch
):
    producers = tmp_path / "producers.toml"
    producers.write_text(scheme.text, encoding="utf-8")
    monkeypatch.setenv("MEDLEDGER_PRODUCERS", str(producers))
    printed = cli("replay", "--verify", env={"MEDLEDGER_PRODUCERS": str(producers)})
    assert "signatures: 2 checked again" in printed and printed.rstrip().endswith("verified")
    assert _console_verdict(ledger_db, login) == ("verified", "")

    # the same ledger, and a producers file whose keys are not those that signed: no kept signature proves its event
    producers.write_text(Scheme.make().text, encoding="utf-8")
    result = cli("replay", "--verify", ok=False, env={"MEDLEDGER_PRODUCERS": str(producers)})
    assert result.exit_code == 1 and result.stdout.rstrip().endswith("NOT verified"), result.output
    found = sorted(line.strip() for line in result.stdout.splitlines() if " signature of " in line)
    assert len(found) == 2, result.stdout
    verdict, detail = _console_verdict(ledger_db, login)
    assert verdict == "NOT verified"
    assert sorted(line.strip() for line in detail.splitlines() if " signature of " in line) == found


def test_the_integrity_page_shows_the_last_verification_replay_verify_ran_too(ledger_db, login, cli, tmp_path):
    forged = tmp_path / "producers.toml"
    forged.write_text(Scheme.make().text, encoding="utf-8")
    for env, verdict in (({"MEDLEDGER_PRODUCERS": str(forged)}, "NOT verified"), ({}, "verified")):
        result = cli("replay", "--verify", ok=False, env=env)
        assert result.exit_code == (0 if verdict == "verified" else 1), result.output
        page = login("auditor", language="en")
        page.goto("/integrity")
        assert page.locator("#result").inner_text() == verdict
        assert page.locator("#by").inner_text().startswith("replay --verify")
        replayed = re.search(r"^replayed (.*)$", result.stdout, re.MULTILINE).group(1)
        assert page.locator("#replayed").inner_text() == replayed
        root = re.search(r"^root: root:([0-9a-f]{64}) ", result.stdout, re.MULTILINE).group(1)
        assert page.locator("#head").inner_text().endswith(f":{root}")


def test_replay_verify_as_the_service_s_role_verifies_and_says_its_result_is_not_kept(ledger_db, cli):
    # the service's role may not write the console's verifications: a compromised service cannot record "verified"
    count = "SELECT count(*) FROM console_verifications"
    (before,) = fetch(ledger_db, count, owner=True)[0]
    result = cli("replay", "--verify", ok=False, env={"DATABASE_URL": ledger_db.app_url})
    assert result.exit_code == 0 and result.stdout.rstrip().endswith("verified"), result.output
    assert "the result is not kept for the console: permission denied" in result.output, result.output
    assert fetch(ledger_db, count, owner=True)[0][0] == before


def test_medledger_console_does_not_start_with_a_producers_file_it_cannot_read(ledger_db, tmp_path):
    broken = tmp_path / "producers.toml"
    broken.write_text("[producers.enrolment\n", encoding="utf-8")
    env = {
        **os.environ,
        "DATABASE_URL": ledger_db.owner_url,
        "MEDLEDGER_CONSOLE_PORT": str(_free_port()),
        "MEDLEDGER_PRODUCERS": str(broken),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "consumers.cli", "console"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:  # it served instead
            server.kill()
            server.wait(timeout=30)
    assert server.returncode == 2 and f"MEDLEDGER_PRODUCERS: {broken}" in stderr, stderr
