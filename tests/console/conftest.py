"""The console as a person uses it: a ledger of the four example files, the console serving it on a free loopback
port, and Debian's chromium driven by Playwright (the apt package's executable; never a downloaded browser).

Screenshots of every page go to $MEDLEDGER_CONSOLE_SCREENSHOTS, or else a temporary directory; the path is
printed."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from console.app import create_app
from console.settings import console_database, console_url
from consumers.cli import app as cli_app  # every command: the ledger's, the broker's and the console's
from tests.ledger import helpers
from tests.ledger.helpers import IM_PARAMETERS, example_lines, ingest

PASSWORDS = {"auditor": "audit-pass-1", "fund_manager": "fund-pass-22", "operator": "operate-pass-3"}
USERS = {"auditor": "alice", "fund_manager": "fiona", "operator": "oscar"}
CHROMIUM = os.environ.get("MEDLEDGER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def off_the_browser_thread(work, *args, **kwargs):
    """Playwright's sync API keeps an event loop running on the test's thread, where asyncio.run (the commands,
    the database helpers) cannot start another: such work runs on a thread of its own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work, *args, **kwargs).result()


def fetch(db, query: str, *args, owner: bool = False):
    return off_the_browser_thread(helpers.fetch, db, query, *args, owner=owner)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def add_users(db) -> None:
    """The three users, one of each role, added with the CLI."""
    for role, user in USERS.items():
        result = CliRunner().invoke(
            cli_app,
            ["users", "add", user, "--role", role],
            env={"DATABASE_URL": db.owner_url, "MEDLEDGER_USER_PASSWORD": PASSWORDS[role]},
        )
        assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def ledger_db(pg_server):
    """One database for the module: the four example files ingested, the three users added with the CLI."""
    name, db = off_the_browser_thread(pg_server.fresh)

    def prepare() -> None:
        for region in ("weihai", "nanjing", "ningxia"):
            ingest(db, example_lines(region), batch_size=500)
        ingest(db, example_lines("inner-mongolia"), parameters=IM_PARAMETERS, batch_size=500)
        add_users(db)

    off_the_browser_thread(prepare)
    yield db
    off_the_browser_thread(pg_server.drop, name)


@pytest.fixture(scope="module")
def cli(ledger_db):
    """`medledger ARGS...` against the module's database, as its output (wide, so that rich wraps nothing)."""
    runner = CliRunner()

    def run(*args: str, ok: bool = True, env: dict | None = None) -> str:
        environment = {"DATABASE_URL": ledger_db.owner_url, "COLUMNS": "400", **(env or {})}
        result = off_the_browser_thread(runner.invoke, cli_app, list(args), env=environment)
        if ok:
            assert result.exit_code == 0, result.output
            return result.stdout
        return result

    return run


@contextmanager
def serving(db, **tls):
    """The console on a free loopback port, as `medledger console` serves it (`tls`: uvicorn's ssl_certfile and
    ssl_keyfile); its port."""
    port = _free_port()
    application = create_app(console_database(db), console_url(db))
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning", **tls))
    thread = threading.Thread(target=server.run, name="console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def console_server(ledger_db):
    """The console's base URL."""
    with serving(ledger_db) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"no chromium at {CHROMIUM}: scripts/system-packages installs it"
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    configured = os.environ.get("MEDLEDGER_CONSOLE_SCREENSHOTS")
    directory = Path(configured) if configured else tmp_path_factory.mktemp("console-screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {directory}")
    return directory


@pytest.fixture
def login(browser, console_server):
    """login(role) → a page of a fresh browser context, logged in as that role's user."""
    contexts = []

    def log_in(role: str, language: str | None = None):
        context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=console_server)
        contexts.append(context)
        page = context.new_page()
        page.goto("/login")
        if language:
            page.goto(f"/lang?to={language}&next=/login")
        page.fill("#user", USERS[role])
        page.fill("#password", PASSWORDS[role])
        page.click("#login")
        page.wait_for_load_state()
        return page

    yield log_in
    for context in contexts:
        context.close()


def shot(page, screenshots: Path, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
