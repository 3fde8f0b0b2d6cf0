"""The checks scripts/test runs before pytest, held to what they promise: the layers' import contracts hold, and
mypy refuses a region module that lacks what policies.rules.RegionRules requires."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NINGXIA = (ROOT / "policies/ningxia.py").read_text()


def test_the_layers_import_contracts_hold():
    checked = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert "0 broken" in checked.stdout


def _mypy(tmp_path: Path, region_source: str) -> subprocess.CompletedProcess:
    """mypy over a region module written from `region_source`, listed as RegionRules as the registry lists them."""
    (tmp_path / "probe_region.py").write_text(region_source)
    (tmp_path / "probe_registry.py").write_text(
        "import probe_region\nfrom policies.rules import RegionRules\n\nlisted: RegionRules = probe_region\n"
    )
    command = [str(BIN / "mypy"), "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache")]
    command += [str(tmp_path / "probe_region.py"), str(tmp_path / "probe_registry.py")]
    env = {"MYPYPATH": f"{ROOT}:{tmp_path}", "PATH": "/usr/bin:/bin"}
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_a_region_module_is_checked_against_the_region_protocol(tmp_path):
    # Ningxia's module as it is, imported from outside the package; then without one of its hooks.
    ningxia = re.sub(r"^from \.(\w*)", lambda m: f"from policies{'.' + m[1] if m[1] else ''}", NINGXIA, flags=re.M)
    without_hook = ningxia.replace("screen_visit = restarts_counters =", "restarts_counters =")
    assert without_hook != ningxia
    for kind in ("whole", "lacking"):
        (tmp_path / kind).mkdir()
    as_it_is = _mypy(tmp_path / "whole", ningxia)
    lacking = _mypy(tmp_path / "lacking", without_hook)

    assert as_it_is.returncode == 0, as_it_is.stdout[-3000:]
    assert lacking.returncode == 1
    assert "probe_registry.py:4: error: Incompatible types in assignment" in lacking.stdout, lacking.stdout[-3000:]
    assert "screen_visit" in lacking.stdout


def test_the_console_pages_answer_with_their_own_responses():
    # FastAPI takes a route's return annotation for a response model unless it is a Response: the annotations
    # mypy asks for may not change what a page answers.
    from fastapi.routing import APIRoute

    from console.app import create_app
    from ledger.db.server import Database

    url = "postgresql://nobody@127.0.0.1:9/none"  # never reached: the pool opens when the app starts
    routes = [route for route in create_app(Database(url, url), url).routes if isinstance(route, APIRoute)]

    assert len(routes) == 17
    assert {route.path: route.response_model for route in routes} == {route.path: None for route in routes}


def test_the_reporting_consumer_documents_its_handler_as_before():
    # FastStream reads the handler's parameter annotation to document the payload: the one given to mypy must
    # leave the AsyncAPI document buildable, its payload any JSON as the unannotated handler had it.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from faststream.specification import AsyncAPI

    from consumers.reporting import Reporting, ReportingStore
    from consumers.settings import Settings
    from ledger.authority import LedgerVerifier

    verifier = LedgerVerifier([Ed25519PrivateKey.generate().public_key()])
    reporting = Reporting(Settings(), ReportingStore("postgresql://nobody@127.0.0.1:9/none"), verifier)
    document = AsyncAPI(reporting.broker).to_specification().to_jsonable()

    assert document["components"]["schemas"] == {"reporting:Message:Payload": {"title": "reporting:Message:Payload"}}
