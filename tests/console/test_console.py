"""The console in a real browser (Debian's chromium): each role logs in and sees what it may, every figure equals
what the command line prints for the same ledger, and what it may not do is refused."""

from __future__ import annotations

import asyncio
import re
import subprocess
from decimal import Decimal

import asyncpg
import pytest

from console.i18n import money
from consumers.reporting import ReportingStore
from ledger.db.server import REPORTING_ROLE, with_user
from policies.explanations import read, render
from tests.console.conftest import PASSWORDS, USERS, fetch, off_the_browser_thread, serving, shot
from tests.ledger.helpers import plain

REGIONS = {"371000": "Weihai", "320100": "Nanjing", "640000": "Ningxia", "150000": "Inner Mongolia"}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("│┃").split("│")]


def _table_rows(output: str, width: int) -> list[list[str]]:
    return [cells for line in output.splitlines() if line.startswith("│") and len(cells := _cells(line)) == width]


def _member_of(db, region: str) -> str:
    """The member of `region` with the most settlements paid by the fund, known in that region alone."""
    return fetch(
        db,
        "SELECT member_id FROM ledger_settlements s WHERE region = $1 AND fund_paid > 0 AND NOT EXISTS "
        "(SELECT FROM member_state m WHERE m.member_id = s.member_id AND m.region <> $1) "
        "GROUP BY member_id ORDER BY count(*) DESC, member_id LIMIT 1",
        region,
    )[0][0]


@pytest.mark.parametrize("region", REGIONS)
def test_a_member_page_shows_the_figures_member_show_prints(region, ledger_db, cli, login, screenshots):
    member = _member_of(ledger_db, region)
    printed = cli("member", "show", member)
    page = login("auditor", language="en")
    page.goto(f"/member?member_id={member}")
    shot(page, screenshots, f"member-{region}-en")

    # the accumulators and the limits remaining, figure by figure
    figures = {label: value for label, value in _table_rows(printed, 2) if re.fullmatch(r"-?\d+(\.\d+)?", value)}
    assert figures, printed
    for label, value in figures.items():
        assert page.locator(f'[data-figure="{label}"]').inner_text() == money(value), label
    # the account balance
    balance = re.search(r"account balance(?: now)?\s+(-?\d+\.\d+)", printed).group(1)
    assert page.locator('[data-figure="balance"]').inner_text().startswith(money(balance))
    # every settlement, with its amounts, and every explanation line as recorded
    printed_settlements = [row for row in _table_rows(printed, 9) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", row[0])]
    shown = page.locator("tr[data-settlement]")
    assert shown.count() == len(printed_settlements) > 0
    for i, (day, visit, policy, total, deductible, fund, pool, account, cash) in enumerate(printed_settlements):
        cells = [cell.strip() for cell in shown.nth(i).locator("td").all_inner_texts()]
        assert cells[0] == day and cells[1].startswith(visit.split(" ")[0]) and cells[2] == policy
        assert cells[3:6] == [money(total), money(deductible), money(fund)] and cells[6] == pool
        assert cells[7:9] == [money(account), money(cash)]
    text = page.locator("main").inner_text()
    explained = [
        cell
        for line in printed.splitlines()
        if line.startswith("│ ")
        and len(cells := _cells(line)) == 1
        and "  " not in (cell := cells[0])
        and re.match(r"(\d{3} |policy notes|\d{6}-)", cell)
    ]
    assert explained
    for line in explained:
        assert line in text, line
    # the movements of the personal account
    printed_movements = [row for row in _table_rows(printed, 6) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", row[0])]
    shown_movements = page.locator("table.movements tr").all_inner_texts()[1:]
    assert len(shown_movements) == len(printed_movements)
    for printed_row, shown_row in zip(printed_movements, shown_movements):
        assert money(printed_row[3]) in shown_row and money(printed_row[4]) in shown_row
    # the charts were drawn by the ECharts medledger serves itself
    assert page.locator('[data-chart="accumulators"][data-drawn="true"] svg').count() == 1


def test_pages_are_in_chinese_by_default_with_explanations_from_the_same_codes(ledger_db, cli, login, screenshots):
    member = _member_of(ledger_db, "371000")
    page = login("auditor")
    page.goto(f"/member?member_id={member}")
    shot(page, screenshots, "member-371000-zh")
    text = page.locator("main").inner_text()
    assert "年度累计与剩余额度" in text and "统筹基金支付" in text and "个人账户" in text
    assert "起付线" in text and "¥" in text
    # each recorded line rendered in Chinese from its code and values (policies.explanations)
    shown_ids = page.locator("tr[data-settlement]").evaluate_all("rows => rows.map(r => r.dataset.settlement)")
    recorded = [
        line
        for (record,) in fetch(
            ledger_db,
            "SELECT record FROM ledger_settlements WHERE settlement_id = ANY($1::text[]) ORDER BY seq",
            shown_ids,
        )
        for line in __import__("json").loads(record)["explanation"]
    ]
    shown_lines = page.locator("tr.explanation li").all_inner_texts()
    assert shown_lines == [render(line, "zh") for line in recorded]
    translated = [line for line in recorded if read(line) is not None]
    assert translated and all(render(line, "zh") != line for line in translated)
    assert any("起付线" in render(line, "zh") for line in translated)
    # another year of the same member, as `member show --year` prints it
    year = page.locator("section.statement").get_attribute("data-year")
    earlier = str(int(year) - 1)
    page.click(f"p.years a:text-is('{earlier}')")
    assert page.locator("section.statement").get_attribute("data-year") == earlier
    printed = cli("member", "show", member, "--year", earlier)
    balance = re.search(r"account balance(?: now)?\s+(-?\d+\.\d+)", printed).group(1)
    assert page.locator('[data-figure="balance"]').inner_text().startswith(money(balance))
    for label, value in _table_rows(printed, 2):
        assert page.locator(f'[data-figure="{label}"]').inner_text() == money(value), label
    page.click("#language")
    assert "accumulators" in page.locator("main").inner_text()


def test_a_settlement_page_shows_what_audit_explain_prints(ledger_db, cli, login, screenshots):
    settlement_id = fetch(
        ledger_db, "SELECT settlement_id FROM ledger_settlements WHERE region = '320100' AND fund_paid > 0 LIMIT 1"
    )[0][0]
    printed = cli("audit", "explain", settlement_id)
    page = login("auditor", language="en")
    page.goto(f"/settlement/{settlement_id}")
    shot(page, screenshots, "settlement-en")
    for line in printed.splitlines():
        if found := re.match(r"(ledger sequence|event|event hash|parameters): (.*)$", line):
            assert page.locator(f'[data-figure="{found.group(1)}"]').inner_text() == found.group(2)
    summary = dict(row[0].split(None, 1) for row in _table_rows(printed, 1) if re.match(r"(total|fund|cash) ", row[0]))
    for label, value in summary.items():
        assert page.locator(f'[data-figure="{label}"]').inner_text() == money(value.strip())
    steps = [re.sub(r"^\d+\. ", "", _cells(line)[0]) for line in printed.splitlines() if re.match(r"│ \d+\. ", line)]
    assert page.locator("ol.calculation li").evaluate_all("items => items.map(i => i.dataset.line)") == steps
    values = [_cells(line)[0] for line in printed.splitlines() if re.match(r"│ \w+ = ", line)]
    assert page.locator("#values").inner_text().strip().splitlines() == values
    # each line links to the article of the policy document it cites
    page.locator("ol.calculation a.cite").nth(1).click()
    assert "/policy/002#" in page.url and page.locator("p:target").count() == 1
    shot(page, screenshots, "policy-article")
    page.goto(f"/settlement/{settlement_id}")
    page.click("#language")
    shot(page, screenshots, "settlement-zh")


def _reporting(db) -> None:
    """The reporting tables as the reporting consumer fills them: from the published settlement records."""
    records = [
        __import__("orjson").loads(r[0])
        for r in fetch(db, "SELECT value FROM outbox WHERE stream = 'settlements' ORDER BY position", owner=True)
    ]

    async def fill():
        store = await ReportingStore(with_user(db.owner_url, REPORTING_ROLE, None)).open()
        try:
            await store.add(records)
        finally:
            await store.close()

    off_the_browser_thread(asyncio.run, fill())


def test_the_fund_page_equals_report_by_level_and_by_facility_and_fund_totals(ledger_db, cli, login, screenshots):
    _reporting(ledger_db)
    page = login("fund_manager", language="en")
    assert page.url.endswith("/fund")
    for region, month in fetch(ledger_db, "SELECT DISTINCT region, month FROM fund_totals ORDER BY 1, 2 LIMIT 6"):
        month_text = month.strftime("%Y-%m")
        page.goto(f"/fund?region={region}&month={month_text}")
        for table, by in (("#by-level", "level"), ("#by-facility", "facility")):
            printed = [
                row for row in _table_rows(cli("report", "--region", region, "--month", month_text, "--by", by), 8)
            ]
            shown = page.locator(f"{table} tr[data-key]")
            assert shown.count() == len(printed) > 0, (region, month_text, by)
            for i, row in enumerate(printed):
                cells = [c.strip() for c in shown.nth(i).locator("td").all_inner_texts()]
                assert cells[0] == (row[0] if row[0] != "all" else "all") and cells[1:3] == row[1:3]
                assert cells[3:] == [money(value) for value in row[3:]], (region, month_text, by, row)
        # the clearing statements of the month's facilities add up to the month's figures
        sums = [page.locator(f"{table} tr[data-key='all']").inner_text() for table in ("#by-level", "#by-facility")]
        assert sums[0] == sums[1], (region, month_text)
        # the months' fund payments: the ledger's fund_totals, row by row
        expected = fetch(
            ledger_db,
            "SELECT month, pool, fund_paid, settlements, reversals FROM fund_totals WHERE region = $1 "
            "ORDER BY month, pool",
            region,
        )
        shown = page.locator("#fund-totals tr").all_inner_texts()[1:]
        assert [re.split(r"\s+", row.strip())[2] for row in shown] == [money(r["fund_paid"]) for r in expected]
    shot(page, screenshots, "fund-en")
    with page.expect_download() as download:
        page.click("#csv")
    content = open(download.value.path(), encoding="utf-8").read().splitlines()
    assert content[0].startswith("region,month,facility_id,visits")
    assert len(content) == page.locator("#by-facility tr[data-key]").count()  # the header and each facility
    page.click("#language")
    shot(page, screenshots, "fund-zh")


def test_a_month_s_figures_follow_a_settlement_recorded_after_the_page_was_shown(ledger_db, cli, login):
    from tests import builders as b
    from tests.ledger.helpers import ingest

    region, month = "371000", "2024-01"
    page = login("fund_manager", language="en")
    page.goto(f"/fund?region={region}&month={month}")
    before = page.locator("#by-facility tr[data-key='all'] td").all_inner_texts()
    b.fresh()
    late = [b.enrolled("WH-LATE", b.WEIHAI, on="2024-01-02"), b.visit("WH-LATE", b.WEIHAI, on="2024-01-15")]
    stats, _ = off_the_browser_thread(ingest, ledger_db, [b.as_line(e) for e in late], name="late")
    assert stats.settlements == 1
    page.goto(f"/fund?region={region}&month={month}")
    after = page.locator("#by-facility tr[data-key='all'] td").all_inner_texts()
    assert int(after[1]) == int(before[1]) + 1 and after[3] != before[3]
    printed = _table_rows(cli("report", "--region", region, "--month", month, "--by", "facility"), 8)[-1]
    assert after[1:3] == printed[1:3] and after[3:] == [money(value) for value in printed[3:]]


def test_a_what_if_runs_in_the_background_to_its_end_with_the_figures_of_replay_compare(
    ledger_db, cli, login, screenshots, tmp_path
):
    what_if = tmp_path / "bands.toml"
    what_if.write_text('[policy."320100-2023".band_ratios.in_service]\nother = ["0.50", "0.70", "0.75"]\n')
    printed = cli("replay", "--policy", str(what_if), "--compare")
    before, after = re.search(r"fund (-?\d+\.\d+) → (-?\d+\.\d+)", printed).groups()
    page = login("fund_manager")
    page.goto("/whatif")
    page.set_input_files("#parameters", str(what_if))
    page.click("#start")
    page.wait_for_selector("#progress", state="attached")
    shot(page, screenshots, "whatif-running")
    page.wait_for_selector("#result", timeout=120_000)
    shot(page, screenshots, "whatif-done")
    assert f"{money(before)} → {money(after)}" in page.locator("#total").inner_text()
    changed = re.search(r"(\d+) settlement\(s\) change", printed).group(1)
    assert f"{changed} 笔结算发生变化" in page.locator("#result").inner_text()


def test_bad_parameter_files_are_refused_with_a_message_and_nothing_runs(ledger_db, login, tmp_path):
    page = login("fund_manager", language="en")
    events = fetch(ledger_db, "SELECT count(*) FROM ledger_events")[0][0]
    for name, content, message in (
        ("broken.toml", "[policy.\n", "Bad parameter file"),
        ("unknown.toml", '[policy."999999-2023"]\nx = "1"\n', "Bad parameter file"),
        ("huge.toml", "# " + "x" * 300_000, "File too large"),
    ):
        path = tmp_path / name
        path.write_text(content)
        page.goto("/whatif")
        page.set_input_files("#parameters", str(path))
        page.click("#start")
        assert message in page.locator("#message").inner_text(), name
        assert page.locator("#progress").count() == 0
    # a body far larger than any form is refused before it is read
    huge = page.context.request.post(
        "/whatif", multipart={"parameters": {"name": "big.toml", "mimeType": "text/plain", "buffer": b"#" * 3_000_000}}
    )
    assert huge.status == 413
    assert fetch(ledger_db, "SELECT count(*) FROM ledger_events")[0][0] == events


def test_unknown_members_and_settlements_get_a_message_and_are_not_logged(ledger_db, login):
    page = login("auditor", language="en")
    logged = fetch(ledger_db, "SELECT count(*) FROM console_access_log", owner=True)[0][0]
    response = page.goto("/member?member_id=NOBODY-HERE")
    assert response.status == 404 and "No member NOBODY-HERE" in page.locator("#message").inner_text()
    response = page.goto("/member?member_id=" + "%27%3B--" * 3)
    assert response.status == 404
    response = page.goto("/settlement/no-such-settlement")
    assert response.status == 404 and "No settlement no-such-settlement" in page.locator("#message").inner_text()
    assert fetch(ledger_db, "SELECT count(*) FROM console_access_log", owner=True)[0][0] == logged


def test_every_member_page_viewed_is_in_the_access_log_auditors_see(ledger_db, login, screenshots):
    member = _member_of(ledger_db, "640000")
    page = login("auditor")
    page.goto(f"/member?member_id={member}")
    (entry,) = fetch(
        ledger_db,
        "SELECT user_name, member_id, region FROM console_access_log WHERE member_id = $1 ORDER BY access_id DESC "
        "LIMIT 1",
        member,
        owner=True,
    )
    assert tuple(entry) == (USERS["auditor"], member, "640000")
    page.goto("/access-log")
    shot(page, screenshots, "access-log")
    assert member in page.locator("#access").inner_text()


def test_a_fund_manager_is_refused_member_pages_and_an_operator_the_fund(login, screenshots):
    page = login("fund_manager")
    for path in ("/member?member_id=x", "/settlement/x", "/access-log", "/queue"):
        assert page.goto(path).status == 403, path
    shot(page, screenshots, "forbidden")
    assert "/member" not in page.locator("header nav").inner_html()
    page = login("operator")
    assert page.url.endswith("/queue")
    for path in ("/fund", "/whatif", "/member?member_id=x", "/fund/clearing.csv"):
        assert page.goto(path).status == 403, path


def test_a_logged_out_request_goes_to_the_login_page(browser, console_server):
    context = browser.new_context(base_url=console_server)
    page = context.new_page()
    for path in ("/member?member_id=abc", "/fund", "/queue", "/integrity", "/"):
        page.goto(path)
        assert "/login" in page.url and page.locator("#password").count() == 1, path
    # after logging in, the page asked for
    page.goto("/fund")
    page.fill("#user", USERS["fund_manager"])
    page.fill("#password", "wrong password")
    page.click("#login")
    assert page.locator(".error").count() == 1 and "/login" in page.url
    context.close()


def test_after_five_failed_logins_a_user_name_is_refused_for_a_while(cli, browser, console_server):
    cli("users", "add", "lucy", "--role", "operator", env={"MEDLEDGER_USER_PASSWORD": "lucy-password"})
    context = browser.new_context(base_url=console_server)
    page = context.new_page()
    page.goto("/lang?to=en&next=/login")

    def attempt(password: str) -> str:
        page.fill("#user", "lucy")
        page.fill("#password", password)
        page.click("#login")
        return page.locator("#message").inner_text() if "/login" in page.url else "logged in"

    assert [attempt(f"guess {n}") for n in range(5)] == ["Wrong user or password"] * 5
    assert attempt("lucy-password") == "Too many failed logins: try again in 15 minutes"
    # another user name is not held back
    page.fill("#user", USERS["auditor"])
    page.fill("#password", PASSWORDS["auditor"])
    page.click("#login")
    assert page.url.endswith("/member")
    context.close()


def test_a_form_without_its_csrf_token_is_refused(login, console_server, tmp_path):
    page = login("auditor", language="en")
    request = page.context.request
    assert request.post("/integrity/verify", form={}).status == 403
    assert request.post("/integrity/verify", form={"csrf": "forged"}).status == 403
    assert request.post("/logout", form={}).status == 403
    refused = request.post(
        "/whatif", multipart={"parameters": {"name": "a.toml", "mimeType": "text/plain", "buffer": b""}}
    )
    assert refused.status == 403
    # the login form's own token, too
    assert request.post("/login", form={"user": USERS["auditor"], "password": "audit-pass-1"}).status == 403
    # the cookies: HttpOnly, SameSite=Strict
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "medledger_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]  # plain HTTP here
    assert page.goto("/member").status == 200  # still logged in: nothing was done


def test_over_tls_the_session_cookie_is_secure_too(ledger_db, browser, tmp_path):
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    with serving(ledger_db, ssl_keyfile=str(key), ssl_certfile=str(certificate)) as port:
        context = browser.new_context(base_url=f"https://127.0.0.1:{port}", ignore_https_errors=True)
        page = context.new_page()
        page.goto("/login")
        page.fill("#user", USERS["operator"])
        page.fill("#password", PASSWORDS["operator"])
        page.click("#login")
        assert page.url.endswith("/queue")
        (cookie,) = [c for c in context.cookies() if c["name"] == "medledger_session"]
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        context.close()


def test_the_queue_shows_rejections_and_parked_events(ledger_db, login, screenshots):
    from tests import builders as b
    from tests.ledger.helpers import ingest

    b.fresh()
    waiting = b.visit("WH-NOT-YET-ENROLLED", b.WEIHAI, on="2023-05-02")
    off_the_browser_thread(ingest, ledger_db, ["{not json", b.as_line(waiting)], name="queue-test")
    page = login("operator", language="en")
    shot(page, screenshots, "queue")
    (rejection,) = fetch(ledger_db, "SELECT reason, detail FROM ledger_rejections WHERE source LIKE 'queue-test%'")
    assert rejection["reason"] in page.locator("#rejections").inner_text()
    assert "WH-NOT-YET-ENROLLED" in page.locator("#parked").inner_text()
    assert rejection["reason"] in page.locator("#counts").inner_text()
    page.fill("#q", "WH-NOT-YET")
    page.click("#search")
    assert "WH-NOT-YET-ENROLLED" in page.locator("#parked").inner_text()
    assert page.locator("#rejections tr").count() == 1  # the header: the malformed line does not name that member


def test_an_operator_verifies_the_ledger_in_the_background_and_the_result_is_kept(ledger_db, login, screenshots):
    page = login("operator")
    page.goto("/integrity")
    page.click("#verify")
    page.wait_for_selector("#result", timeout=120_000)
    shot(page, screenshots, "integrity")
    assert page.locator("#result").inner_text() == "校验通过"
    # the root hash over every region's stream's head and the history's (empty here), after the rows it covers
    from ledger.chain import GENESIS
    from ledger.streams import HISTORY_REGION, Head, root_hash

    last = fetch(
        ledger_db,
        "SELECT region, seq, hash FROM ledger_events WHERE seq IN (SELECT max(seq) FROM ledger_events GROUP BY region)",
    )
    heads = [Head(r["region"], 0, r["seq"], bytes(r["hash"])) for r in last] + [Head(HISTORY_REGION, 0, 0, GENESIS)]
    rows = fetch(ledger_db, "SELECT count(*) FROM ledger_events")[0][0]
    assert page.locator("#head").inner_text() == f"{rows}:{root_hash(heads).hex()}"
    streams = fetch(ledger_db, "SELECT count(DISTINCT region) FROM ledger_events")[0][0]
    assert page.locator("#heads tr").count() - 2 == streams >= len(REGIONS)  # the header, the history
    # a fund manager sees the result, and no button to start one
    page = login("fund_manager")
    page.goto("/integrity")
    assert page.locator("#result").count() == 1 and page.locator("#verify").count() == 0


def test_the_console_role_reads_the_ledger_and_appends_only_to_its_own_log(ledger_db):
    from console.settings import console_url

    async def attempts():
        connection = await asyncpg.connect(plain(console_url(ledger_db)))
        refused = []
        try:
            assert await connection.fetchval("SELECT count(*) FROM ledger_events") > 0
            for statement in (
                "INSERT INTO ledger_rejections (reason, detail, payload) VALUES ('x', 'x', 'x')",
                "UPDATE member_year SET balance = 0",
                "DELETE FROM console_access_log",
                "UPDATE console_access_log SET member_id = 'x'",
                "INSERT INTO console_users (name, role, password_hash) VALUES ('eve', 'auditor', 'x')",
                "SELECT rolpassword FROM pg_authid",
            ):
                try:
                    await connection.execute(statement)
                except asyncpg.PostgresError as error:
                    refused.append(type(error).__name__)
            await connection.execute(
                "INSERT INTO console_access_log (user_name, member_id) VALUES ('alice', 'somebody')"
            )
        finally:
            await connection.close()
        return refused

    assert off_the_browser_thread(asyncio.run, attempts()) == ["InsufficientPrivilegeError"] * 6
    # the owner cannot change the access log either: it is append-only
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        fetch(ledger_db, "DELETE FROM console_access_log", owner=True)


def test_users_are_added_changed_and_removed_with_argon2_hashes(ledger_db, cli, browser, console_server):
    def users(*args, password="first-password"):
        return cli("users", *args, ok=False, env={"MEDLEDGER_USER_PASSWORD": password})

    assert users("add", "zoe", "--role", "auditor").exit_code == 0
    assert users("add", "zoe", "--role", "auditor").exit_code == 1  # exists already
    assert users("add", "mallory", "--role", "root").exit_code == 2
    assert users("add", "shorty", "--role", "operator", password="short").exit_code == 2
    (stored,) = fetch(ledger_db, "SELECT password_hash FROM console_users WHERE name = 'zoe'", owner=True)[0]
    assert stored.startswith("$argon2id$") and "first-password" not in stored

    def logged_in(password: str):
        page = browser.new_context(base_url=console_server).new_page()
        page.goto("/login")
        page.fill("#user", "zoe")
        page.fill("#password", password)
        page.click("#login")
        return page

    def can_log_in(password: str) -> bool:
        page = logged_in(password)
        answer = "/login" not in page.url
        page.context.close()
        return answer

    assert can_log_in("first-password")
    # a session open while the password changes, and one open while the user is removed, end at their next request
    before_passwd = logged_in("first-password")
    assert users("passwd", "zoe", password="second-password").exit_code == 0
    assert not can_log_in("first-password") and can_log_in("second-password")
    before_passwd.goto("/member")
    assert "/login" in before_passwd.url
    before_remove = logged_in("second-password")
    assert users("remove", "zoe").exit_code == 0
    assert not can_log_in("second-password")
    before_remove.goto("/member")
    assert "/login" in before_remove.url
    assert users("remove", "zoe").exit_code == 1


def test_amounts_are_shown_as_yuan_to_the_fen():
    assert money("1234.5") == "¥1,234.50" and money(Decimal("-0.10")) == "-¥0.10" and money("0") == "¥0.00"


def test_medledger_console_serves_on_the_port_it_is_given(ledger_db):
    import os
    import sys
    import time
    import urllib.request

    from tests.console.conftest import _free_port

    port = _free_port()
    env = {**os.environ, "DATABASE_URL": ledger_db.owner_url, "MEDLEDGER_CONSOLE_PORT": str(port)}
    server = subprocess.Popen([sys.executable, "-m", "consumers.cli", "console"], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as response:
                    assert response.status == 200 and 'id="password"' in response.read().decode()
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "medledger console did not serve"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)  # uvicorn shuts down, then ends with the signal it was sent
    assert f"console on http://127.0.0.1:{port}/" in server.stderr.read().decode()
