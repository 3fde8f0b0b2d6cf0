"""docker-compose.yml, run: the stack comes up on a Docker engine (scripts/docker/engine starts one where none
runs), the README's commands work in it, and what it publishes and reports is what `medledger settle` computes.

Images that cannot be pulled are built by scripts/docker/images, and the stack is pointed at them through the
variables docker-compose.yml reads. In CI the engine must start; elsewhere, without one, these tests are skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from ledger.offline import settle_lines
from policies.parameters import parse_parameters
from tests.kafka.streams import without_seq
from tests.ledger.helpers import IM_PARAMETERS, example_lines
from tests.test_compose import PASSWORDS, compose_binary

HIS = "H32010200011"  # a Nanjing hospital of examples/national/facilities.csv, the HIS the stack's gateway answers

ROOT = Path(__file__).resolve().parents[2]
REGIONS = ("ningxia", "weihai", "nanjing", "inner-mongolia")

# Building the images on a machine that has none yet takes minutes.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(2_400)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _compose_command() -> list[str]:
    """The Compose v2 CLI installed with the test dependencies, or the engine's `docker compose` plugin."""
    installed = compose_binary()
    if installed.exists():
        return [str(installed)]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    pytest.fail("no Compose v2 CLI: install the test dependencies (scripts/bootstrap)")


class Stack:
    def __init__(self, env: dict[str, str]):
        self.project = f"medledger-test-{uuid.uuid4().hex[:8]}"
        self.env = env
        self.command = _compose_command()

    def compose(self, *arguments: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [*self.command, "-p", self.project, *arguments],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(arguments)}: exit {done.returncode}\n{done.stderr[-3000:]}")
        return done

    def medledger(self, *arguments: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """A one-off `medledger` command in the stack, as the README runs it."""
        return self.compose("run", "--rm", "-T", "medledger", *arguments, timeout=timeout, check=check)

    def settled(self, count: int, timeout: float = 300) -> list[dict]:
        """The first `count` records of the settlement topic (with serve's last logs when they do not come)."""
        try:
            watched = self.medledger("watch", "--from-beginning", "--limit", str(count), timeout=timeout)
        except subprocess.TimeoutExpired as late:
            logs = self.compose("logs", "--tail", "60", "serve", check=False, timeout=60)
            raise AssertionError(
                f"{count} settlements not read in {timeout} s; serve:\n{logs.stdout[-6000:]}"
            ) from late
        return [json.loads(line) for line in watched.stdout.splitlines() if line.startswith("{")]

    def verified(self) -> str:
        """What `replay --verify` printed, once it has exited 0."""
        done = self.medledger("replay", "--verify", check=False)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout + done.stderr

    def inspect(self, service: str) -> dict:
        container = self.compose("ps", "-a", "-q", service).stdout.split()
        assert len(container) == 1, f"{service}: containers {container}"
        inspected = subprocess.run(["docker", "inspect", container[0]], capture_output=True, text=True, check=True)
        return json.loads(inspected.stdout)[0]

    def state(self, service: str) -> dict:
        return self.inspect(service)["State"]


@pytest.fixture(scope="module")
def engine():
    """The engine that answers; or one started here, and stopped again when the tests are done."""
    script = str(ROOT / "scripts/docker/engine")
    if subprocess.run([script, "status"], capture_output=True).returncode == 0:
        yield
        return
    started = subprocess.run([script, "start"], capture_output=True, text=True, timeout=600)
    if started.returncode != 0:
        reason = f"no Docker engine: {started.stderr.strip()[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield
    finally:
        subprocess.run([script, "stop"], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory):
    images = subprocess.run(
        [str(ROOT / "scripts/docker/images")], capture_output=True, text=True, timeout=1_200, cwd=ROOT
    )
    assert images.returncode == 0, images.stderr[-3000:]
    settings = dict(line.split("=", 1) for line in images.stdout.split())
    env = {
        **os.environ,
        **settings,
        "MEDLEDGER_METRICS_PORT": str(_free_port()),
        "MEDLEDGER_CONSOLE_PORT": str(_free_port()),
        "MEDLEDGER_GATEWAY_PORT": str(_free_port()),
    }
    env.update({name: uuid.uuid4().hex for name in PASSWORDS})  # as scripts/docker/secrets writes them
    env["MEDLEDGER_IMAGE"] = f"medledger-test:{uuid.uuid4().hex[:8]}"
    keys = tmp_path_factory.mktemp("keys") / "keys"
    # As docker-compose.yml's header says: the private keys made the image's user's, 0600.
    made = subprocess.run(
        [sys.executable, "-m", "consumers.cli", "keys", "init", str(keys), "--owner", "10001"], capture_output=True
    )
    assert made.returncode == 0, made.stderr
    assert all((keys / name).stat().st_mode & 0o077 == 0 for name in ("ledger.pem", "demo.pem", "gateway.pem"))
    env["MEDLEDGER_KEYS_DIR"] = str(keys)
    # The facilities' tokens: a file of the deployment's own, readable by the image's user (no default exists).
    tokens = keys.parent / "gateway-tokens.toml"
    tokens.write_text(f'[facilities."{HIS}"]\ntoken = "{uuid.uuid4().hex}"\n')
    os.chown(tokens, 10001, 10001)
    tokens.chmod(0o600)
    env["MEDLEDGER_GATEWAY_KEYS"] = str(tokens)
    stack = Stack(env)
    try:
        # --wait: up once every service is running, and healthy where it has a health check (serve among them).
        started = stack.compose("up", "-d", "--build", "--wait", timeout=900, check=False)
        if started.returncode != 0:
            logs = stack.compose("logs", "--tail", "100", check=False).stdout
            pytest.fail(f"docker compose up: exit {started.returncode}\n{started.stderr[-3000:]}\n{logs[-5000:]}")
        yield stack
    finally:
        stack.compose("down", "-v", "--rmi", "local", "--remove-orphans", timeout=300, check=False)
        subprocess.run(["docker", "image", "rm", env["MEDLEDGER_IMAGE"]], capture_output=True)


@pytest.fixture(scope="module")
def expected() -> list[dict]:
    outputs = settle_lines(example_lines(*REGIONS), parse_parameters(IM_PARAMETERS))
    assert outputs and not any("rejected" in record for record in outputs)  # the examples settle cleanly
    return outputs


@pytest.fixture(scope="module")
def produced(stack, expected) -> list[dict]:
    """The four example files produced in the stack, and every record they settle to read off the settlement
    topic."""
    for region in REGIONS:
        done = stack.medledger("produce", f"examples/{region}.jsonl")
        assert "produced" in done.stdout + done.stderr
    return stack.settled(len(expected))


def _until(read, want, seconds: float = 120):
    """What `read()` gives once it equals `want`, or when the time is up: the stack gets there in its own time."""
    deadline = time.monotonic() + seconds
    while True:
        got = read()
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(2)


def _canonical(record: dict) -> bytes:
    return orjson.dumps(without_seq(record), option=orjson.OPT_SORT_KEYS)


def test_the_examples_produced_in_the_stack_come_out_on_the_settlement_topic_as_settle_prints_them(produced, expected):
    assert sorted(map(_canonical, produced)) == sorted(map(_canonical, expected))


def test_serve_in_the_stack_counts_what_it_consumed_on_its_metrics_port(stack, produced, expected):
    def counted() -> dict[str, float]:
        port = stack.env["MEDLEDGER_METRICS_PORT"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            lines = [line for line in response.read().decode().splitlines() if line and line[0] != "#"]
        metrics = dict(line.rsplit(" ", 1) for line in lines)
        names = ("medledger_events_consumed_total", "medledger_settlements_total", "medledger_rejections_total")
        return {name: float(metrics[name]) for name in names}

    want = {
        "medledger_events_consumed_total": len(example_lines(*REGIONS)),
        "medledger_settlements_total": sum("settlement_id" in record for record in expected),
        "medledger_rejections_total": 0,
    }
    assert _until(counted, want) == want


def _report_row(records: list[dict]) -> list[str]:
    """The `all` row `medledger report` prints for these settlements."""

    def total(name: str, keep=lambda record: True) -> str:
        return str(sum((Decimal(record[name]) for record in records if keep(record)), Decimal("0.00")))

    return [
        str(sum(1 for record in records if record["reverses"] is None)),
        str(sum(1 for record in records if record["reverses"] is not None)),
        total("total_amount"),
        total("fund_paid", lambda record: record["fund_pool"] == "general"),
        total("fund_paid", lambda record: record["fund_pool"] == "chronic"),
        total("account_paid"),
        total("cash_paid"),
    ]


def _printed_rows(printed: str) -> dict[tuple[str, str], list[str]]:
    """(region, month) → the cells of each printed report's `all` row."""
    rows, title = {}, None
    for line in printed.splitlines():
        if "medledger report: region" in line:
            region, month = line.split("region", 1)[1].strip().split(", ")
            title = (region, month)
        elif line.startswith("│ all") and title is not None:
            rows[title] = [cell.strip() for cell in line.split("│")[2:-1]]
    return rows


def test_the_report_in_the_stack_adds_up_to_the_settlements_for_every_region_and_month(stack, produced, expected):
    by_month: dict[tuple[str, str], list[dict]] = {}
    for record in expected:
        if "settlement_id" in record:
            by_month.setdefault((str(record["region"]), record["visit_date"][:7]), []).append(record)
    want = {key: _report_row(records) for key, records in by_month.items()}
    assert any(row[1] != "0" for row in want.values()) and any(row[4] != "0.00" for row in want.values())
    loop = "; ".join(f"medledger report --region {region} --month {month}" for region, month in sorted(want))
    printed = []

    def reported() -> dict[tuple[str, str], list[str]]:
        printed[:] = [stack.compose("run", "--rm", "-T", "--entrypoint", "sh", "medledger", "-c", loop).stdout]
        return _printed_rows(printed[0])

    assert _until(reported, want) == want, printed[0][-3000:]


def test_replay_verify_passes_in_the_stack(stack, produced):
    stack.verified()


def test_the_outbox_is_pruned_in_the_stack_as_the_maintenance_role(stack, produced):
    """The one-off command's maintenance role, its password from the stack's variables, deletes what the relay
    published (the settlement topic keeps it: a later test reads it all again)."""
    dry = stack.medledger("outbox", "prune", "--dry-run", "--keep-days", "0")
    assert re.search(r"would prune [1-9][0-9]* outbox record", dry.stdout + dry.stderr), dry.stderr[-2000:]
    done = stack.medledger("outbox", "prune", "--keep-days", "0")
    assert re.search(r"pruned [1-9][0-9]* outbox record\(s\) through position", done.stdout + done.stderr), done.stderr[
        -2000:
    ]


def test_serve_stops_cleanly_when_the_stack_stops_it(stack, produced):
    before = stack.state("serve")
    assert before["Running"], before
    stack.compose("stop", "serve", timeout=120)
    state = stack.state("serve")
    logs = stack.compose("logs", "--no-log-prefix", "serve").stdout
    assert not state["Running"] and state["ExitCode"] == 0, f"{state}\n{logs[-3000:]}"
    if "Traceback" in logs:  # shown whole: an assertion's message would be cut short
        at = logs.index("Traceback")
        pytest.fail(f"serve logged a traceback:\n{logs[max(at - 1500, 0) : at + 5000]}", pytrace=False)


def test_the_ledger_and_the_topics_outlive_the_containers(stack, produced, expected):
    """`docker compose down` and `up` again: the ledger and the topics are on the stack's volumes, so nothing is
    settled twice and the settlement topic still holds every record."""
    stack.compose("down", timeout=300)
    stack.compose("up", "-d", "--wait", timeout=600)
    again = stack.settled(len(expected), timeout=180)
    assert sorted(map(_canonical, again)) == sorted(map(_canonical, expected))
    # and the adoption of serve's parameter set, first in each region's stream
    events = len(example_lines(*REGIONS)) + len(REGIONS)
    verified = stack.verified()
    assert f"replayed {events} ledger events, {len(REGIONS)} of them parameter-set adoptions" in verified
    assert verified.count("\nhead ") == len(REGIONS) and "\nroot: root:" in verified


def test_the_console_in_the_stack_answers_with_its_login_page(stack):
    port = stack.env["MEDLEDGER_CONSOLE_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as response:
        page = response.read().decode()
    assert 'name="csrf"' in page and 'id="password"' in page


def test_a_his_reaches_the_gateway_in_the_stack_and_reads_a_member_the_examples_enrolled(stack, produced):
    import tomllib

    from gateway.signature import sign

    code = HIS
    keys = tomllib.loads(Path(stack.env["MEDLEDGER_GATEWAY_KEYS"]).read_text())
    token = keys["facilities"][code]["token"]
    stamp, nonce = str(int(time.time())), uuid.uuid4().hex
    body = {
        "infno": "1101",
        "msgid": uuid.uuid4().hex,
        "insuplc_admdvs": "320100",
        "inf_time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "fixmedins_code": code,
        "input": {"data": {"psn_no": "32010619850226T001"}},
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.env['MEDLEDGER_GATEWAY_PORT']}/fsi/api/rsfComIfsService/callService",
        data=json.dumps(body).encode(),
        headers={
            "content-type": "application/json",
            "x-tif-paasid": code,
            "x-tif-timestamp": stamp,
            "x-tif-nonce": nonce,
            "x-tif-signature": sign(stamp, token, nonce),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert answer["infcode"] == 0, answer["err_msg"]
    assert answer["output"]["insuinfo"][0]["insuplc_admdvs"] == "320100"


def test_only_the_migration_job_ran_with_the_owners_password_and_every_medledger_container_runs_as_a_user(
    stack, produced
):
    owner = stack.env["POSTGRES_PASSWORD"]
    migrate = stack.inspect("migrate")
    assert migrate["State"]["ExitCode"] == 0 and f"POSTGRES_PASSWORD={owner}" in migrate["Config"]["Env"]
    for service in ("serve", "gateway", "reporting", "console", "migrate"):
        inspected = stack.inspect(service)
        assert inspected["Config"]["User"] not in ("", "0", "root"), service
        if service != "migrate":
            assert not any(owner in variable for variable in inspected["Config"]["Env"]), service
    ran = stack.compose("exec", "-T", "serve", "id", "-u").stdout.strip()
    assert ran != "0", ran


def test_serves_metrics_are_published_on_the_hosts_loopback_alone(stack):
    bindings = stack.inspect("serve")["HostConfig"]["PortBindings"]["9464/tcp"]
    assert [binding["HostIp"] for binding in bindings] == ["127.0.0.1"]


def test_each_container_in_the_stack_sees_only_its_own_keys(stack, produced):
    for service, held in {
        "serve": ["ledger.pem", "producers.toml"],
        "gateway": ["gateway.pem"],
        "reporting": ["ledger.pub"],
        "console": ["producers.toml"],
    }.items():
        listed = stack.compose("exec", "-T", service, "ls", "/keys").stdout.split()
        assert sorted(listed) == held, service
    listed = stack.compose("run", "--rm", "-T", "--entrypoint", "ls", "medledger", "/keys").stdout.split()
    assert sorted(listed) == ["producer.pem", "producers.toml"]
