"""All SQL lives under ledger/db/: the rest of the ledger reaches storage through the recorder (`ledger.recorder`)."""

import inspect
import io
import re
import tokenize
from pathlib import Path
from typing import Generic, Protocol

import ledger
from ledger.db.audit import PostgresAudit
from ledger.db.recorder import PostgresRecorder, PostgresSession
from ledger.db.report_reads import PostgresReportReads
from ledger.memory_recorder import MemoryRecorder, MemorySession
from ledger.recorder import AuditSession, LedgerSession, Recorder, ReportReads

LEDGER = Path(ledger.__file__).parent
# A statement's keywords as the code base writes them, and the driver's calls that send one.
SQL = re.compile(
    r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|TRUNCATE|CREATE (TEMPORARY )?TABLE|NOT EXISTS|ON CONFLICT)\b"
    r"|pg_advisory|\.(fetch|fetchval|fetchrow|execute|executemany|copy_records_to_table)\("
)


def outside_db() -> list[Path]:
    return [path for path in sorted(LEDGER.rglob("*.py")) if "db" not in path.relative_to(LEDGER).parts]


def code_lines(text: str) -> list[str]:
    """The lines of a module with its comments cut off (a comment may say what a statement does)."""
    lines = text.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            row, column = token.start
            lines[row - 1] = lines[row - 1][:column]
    return lines


def sql_outside_db() -> list[str]:
    found = []
    for path in outside_db():
        for number, line in enumerate(code_lines(path.read_text()), start=1):
            if SQL.search(line):
                found.append(f"{path.relative_to(LEDGER.parent)}:{number}: {line.strip()}")
    return found


def test_no_sql_text_outside_ledger_db():
    assert len(outside_db()) > 30  # the ledger's modules were found
    assert sql_outside_db() == []


def test_the_check_finds_sql_where_it_is():
    assert SQL.search('rows = await raw.fetch("SELECT seq FROM ledger_events")')
    assert SQL.search('"INSERT INTO parked_events (event_id) VALUES ($1)"')
    assert SQL.search("await raw.execute(LOCK)")
    assert not SQL.search("rows = await ledger.waiting_for(keys)")
    assert code_lines('x = 1  # TRUNCATE it\ny = "SELECT 1"') == ["x = 1  ", 'y = "SELECT 1"']


def test_settling_the_service_and_reports_hold_no_connection():
    """The pipeline, the service and the reports are handed a recorder session, never a driver connection."""
    for name in ("pipeline.py", "service.py", "reports.py"):
        text = (LEDGER / name).read_text()
        assert not re.search(r"\braw\b", text.replace("item.raw", "")), name
        assert "asyncpg" not in text, name


def protocol_methods(protocol) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for klass in protocol.__mro__
        if klass not in (object, Protocol, Generic)
        for name, member in vars(klass).items()
        if callable(member) and not name.startswith("_")
    }


def test_both_recorders_implement_the_whole_interface_with_its_signatures():
    for protocol, implementations in (
        (LedgerSession, (MemorySession, PostgresSession)),
        (Recorder, (MemoryRecorder, PostgresRecorder)),
        (AuditSession, (PostgresAudit,)),
        (ReportReads, (PostgresReportReads,)),
    ):
        methods = protocol_methods(protocol)
        assert methods
        for implementation in implementations:
            for name, signature in methods.items():
                found = getattr(implementation, name, None)
                assert found is not None, f"{implementation.__name__} lacks {name}"
                assert list(inspect.signature(found).parameters) == list(signature.parameters), (implementation, name)
