"""What producers wrote reaches auditors as it was written: rich markup printed as text, characters that move or
hide text shown as their escapes, spreadsheet formulas kept as text."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.display import csv_cell, visible
from tests import builders as b
from tests.ledger.helpers import fetch

runner = CliRunner()
REGION = "320100"
# A member id, a visit id and a facility id as an attacker with access to the topic would write them: markup that
# rich would interpret (or refuse: "[/oops]" closes a tag never opened), a right-to-left override that shows
# "0.001" as "100.0", a zero-width space that makes two ids look alike.
MEMBER = "M[/oops][bold red]X[/]\u202e1"
VISIT = "V[link=https://evil.example]pay[/link]\u200b"
FACILITY = "F[reverse]\u202e00.001[/reverse]"


@pytest.fixture
def hostile(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    monkeypatch.setenv("COLUMNS", "400")  # tables wide enough that no id is wrapped
    b.fresh()
    events = b.lines(
        b.enrolled(MEMBER, REGION, "2023-01-01", contribution_base="8000.00"),
        b.visit(MEMBER, REGION, "2023-03-01", visit_id=VISIT, facility=FACILITY, items=[b.line("900.00")]),
    )
    result = runner.invoke(app, ["ingest", "-", "--quiet"], input="\n".join(events) + "\n")
    assert result.exit_code == 0, result.output
    (settlement,) = fetch(database, "SELECT settlement_id FROM ledger_settlements")
    return settlement["settlement_id"]


def _shown(text: str) -> str:
    return text.replace("\n", "")


def test_member_show_prints_markup_as_text_and_escapes_what_would_move_or_hide_text(hostile):
    result = runner.invoke(app, ["member", "show", MEMBER, "--year", "2023"])
    assert result.exit_code == 0, result.output
    out = _shown(result.stdout)
    assert "M[/oops][bold red]X[/]\\u202e1" in out
    assert "V[link=https://evil.example]pay[/link]\\u200b" in out
    assert "\u202e" not in result.stdout and "\u200b" not in result.stdout and "\x1b" not in result.stdout


def test_audit_explain_prints_markup_as_text_and_escapes_what_would_move_or_hide_text(hostile):
    result = runner.invoke(app, ["audit", "explain", hostile])
    assert result.exit_code == 0, result.output
    out = _shown(result.stdout)
    assert "M[/oops][bold red]X[/]\\u202e1" in out
    assert "V[link=https://evil.example]pay[/link]\\u200b" in out
    # the source event as received, with the facility's override made visible
    assert json.dumps(FACILITY, ensure_ascii=False).replace("\u202e", "\\u202e") in out
    assert "\u202e" not in result.stdout and "\u200b" not in result.stdout and "\x1b" not in result.stdout


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("plain 中文 text", "plain 中文 text"),
        ("a\u202eb", "a\\u202eb"),
        ("line\nbreak\ttab\rcr", "line\\x0abreak\\x09tab\\x0dcr"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("zero\u200bwidth\u2066isolate", "zero\\u200bwidth\\u2066isolate"),
        ("\U000e0041tag", "\\U000e0041tag"),
    ],
)
def test_visible_escapes_only_what_hides_moves_or_rewrites_text(given, shown):
    assert visible(given) == shown


@pytest.mark.parametrize(
    ("given", "cell"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+1", "'+1"),
        ("-cmd", "'-cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("H32010000001", "H32010000001"),
        (Decimal("-12.50"), "-12.50"),
        (3, "3"),
    ],
)
def test_csv_cells_that_start_like_a_formula_stay_text(given, cell):
    assert csv_cell(given) == cell


def test_replay_verify_of_a_ledger_holding_markup_prints_its_verdict(hostile):
    result = runner.invoke(app, ["replay", "--verify"])
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith("verified") and "NOT verified" not in result.stdout


def test_a_role_password_with_a_slash_stays_in_the_credentials_of_its_url():
    from urllib.parse import unquote, urlsplit

    from ledger.db.server import with_user

    url = with_user("postgresql+asyncpg://owner@db.example:5432/medledger", "medledger_console", "a/b:c@d?e#f")
    parts = urlsplit(url)
    assert (parts.username, unquote(parts.password), parts.hostname, parts.path) == (
        "medledger_console",
        "a/b:c@d?e#f",
        "db.example",
        "/medledger",
    )


def test_member_show_dates_a_movement_by_its_business_day_in_asia_shanghai(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.owner_url)
    monkeypatch.setenv("COLUMNS", "400")
    b.fresh()
    member = "32010619850226T777"
    events = b.lines(
        b.enrolled(member, REGION, "2023-01-01", contribution_base="8000.00"),
        # 02:00 in Beijing on 1 March is still 28 February in UTC
        b.contribution(member, REGION, "2023-03", "8000.00", on="2023-03-01", at="02:00:00"),
    )
    result = runner.invoke(app, ["ingest", "-", "--quiet"], input="\n".join(events) + "\n")
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["member", "show", member, "--year", "2023"])
    assert shown.exit_code == 0, shown.output
    movements = shown.stdout[shown.stdout.index("account movements") :]
    assert "2023-03-01" in movements and "2023-02-28" not in movements


def test_the_clearing_statement_prints_a_facility_id_as_written(hostile):
    from consumers.cli import app as outer

    result = runner.invoke(outer, ["report", "--region", REGION, "--month", "2023-03", "--by", "facility"])
    assert result.exit_code == 0, result.output
    assert "F[reverse]\\u202e00.001[/reverse]" in result.stdout.replace("\n", "") and "\u202e" not in result.stdout
