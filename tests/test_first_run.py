"""A newcomer's first commands: `./medledger` works from anywhere, scripts/bootstrap says how to put it on the PATH,
and help and tables piped to a file or a pager are laid out at 120 columns, not cut at 80."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("member", "audit", "db", "projections", "parked", "keys", "users")


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES", "TERMINAL_WIDTH")}
    return env | extra


def _piped(*arguments: str, cwd: Path = ROOT, **extra: str) -> subprocess.CompletedProcess:
    """`medledger ARGUMENTS` with its output to a pipe, as `medledger --help | less` has it."""
    command = [sys.executable, "-c", "from consumers.cli import main; main()", *arguments]
    return subprocess.run(command, cwd=cwd, env=_env(**extra), capture_output=True, text=True, timeout=120)


def _widest(text: str) -> int:
    return max(len(line.rstrip()) for line in text.splitlines())


def test_help_piped_is_laid_out_at_120_columns_and_shows_each_setting_whole(tmp_path):
    shown = _piped("serve", "--help", MEDLEDGER_DATA_DIR=str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert "[env var: KAFKA_BOOTSTRAP_SERVERS]" in shown.stdout
    assert "[env var: MEDLEDGER_MAX_CLOCK_SKEW_SECONDS]" in shown.stdout
    assert "…" not in shown.stdout
    assert _widest(shown.stdout) == 120


def test_a_width_set_in_columns_is_kept(tmp_path):
    shown = _piped("serve", "--help", MEDLEDGER_DATA_DIR=str(tmp_path), COLUMNS="100")
    assert shown.returncode == 0, shown.stderr
    assert _widest(shown.stdout) == 100


def test_tables_piped_are_120_columns_wide():
    width = subprocess.run(
        [sys.executable, "-c", "from ledger import display; print(display.console().width)"],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert width.stdout.strip() == "120"


def test_flags_show_no_type_beside_them(tmp_path):
    for command in ([], ["watch"], ["replay"], ["member", "show"]):
        shown = _piped(*command, "--help", MEDLEDGER_DATA_DIR=str(tmp_path))
        assert shown.returncode == 0, shown.stderr
        assert "<bool>" not in shown.stdout, command
        assert re.search(r"--help\s+Show this message", shown.stdout), shown.stdout
    watch = _piped("watch", "--help", MEDLEDGER_DATA_DIR=str(tmp_path)).stdout
    assert re.search(r"--until-idle\s+SECONDS", watch), watch  # an option with a value keeps its name for it


def test_each_group_says_what_it_is_for(tmp_path):
    shown = _piped("--help", MEDLEDGER_DATA_DIR=str(tmp_path)).stdout
    for group in GROUPS:
        (line,) = [line for line in shown.splitlines() if re.match(rf"│ {group}\s", line)]
        description = line.split(group, 1)[1].strip(" │")
        assert len(description.split()) >= 6, f"{group}: {description!r}"


def test_a_command_in_the_list_reads_as_one_paragraph(tmp_path):
    shown = _piped("--help", MEDLEDGER_DATA_DIR=str(tmp_path)).stdout
    listed = [line.strip("│ ") for line in shown.splitlines() if line.startswith("│")]
    named = {line.split()[0]: n for n, line in enumerate(listed) if line.startswith(("ingest ", "replay "))}
    # the docstring's own line breaks are not kept: every wrapped line but a command's last is (nearly) full
    ingest = listed[named["ingest"] : named["replay"]]
    assert len(ingest) >= 3 and all(len(line) > 70 for line in ingest[:-1]), ingest


def test_the_wrapper_runs_medledger_from_any_directory(tmp_path):
    shown = subprocess.run(
        [str(ROOT / "medledger"), "--help"],
        cwd=tmp_path,
        env=_env(MEDLEDGER_DATA_DIR=str(tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "Usage: medledger" in shown.stdout


def test_the_wrapper_bootstraps_a_checkout_without_its_venv_first(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "medledger", checkout / "medledger")
    bootstrap = checkout / "scripts" / "bootstrap"
    bootstrap.write_text(  # stands in for the real one: makes the .venv's command, which echoes its arguments
        '#!/usr/bin/env bash\nset -e\ncd "$(dirname "$0")/.."\nmkdir -p .venv/bin\n'
        "printf '#!/bin/sh\\necho \"venv medledger $*\"\\n' > .venv/bin/medledger\nchmod +x .venv/bin/medledger\n"
        "echo bootstrapped\n"
    )
    bootstrap.chmod(0o755)
    linked = tmp_path / "bin" / "medledger"  # a symbolic link on the PATH reaches the checkout too
    linked.parent.mkdir()
    linked.symlink_to(checkout / "medledger")

    first = subprocess.run([str(linked), "settle", "x.jsonl"], cwd=tmp_path, capture_output=True, text=True)
    again = subprocess.run([str(linked), "--help"], cwd=tmp_path, capture_output=True, text=True)

    assert first.returncode == 0, first.stderr
    assert first.stdout == "venv medledger settle x.jsonl\n"
    assert "bootstrapped" in first.stderr  # kept off standard output, which is the command's
    assert again.stdout == "venv medledger --help\n" and "bootstrapped" not in again.stderr


def test_bootstrap_ends_by_saying_how_to_put_medledger_on_the_path():
    path = ":".join(part for part in os.environ["PATH"].split(":") if not part.startswith(str(ROOT)))
    done = subprocess.run(
        [str(ROOT / "scripts" / "bootstrap")], cwd="/", env=_env(PATH=path), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f'export PATH="{ROOT}:$PATH"' in done.stderr.splitlines()[-1]
    assert done.stdout == ""  # a script that runs bootstrap keeps its standard output to itself


def _machine(tmp_path: Path, java: str | None, maven: bool) -> dict[str, str]:
    """An environment whose PATH has the basic tools, `java` reporting `java` as its version (None: no java), and
    Maven or not; no Docker and no apt-get. The caches are the test's own, the broker's jars in them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "sed", "awk", "df", "id", "mkdir", "cat", "dirname", "python3"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    (bin_dir / "python3.11").symlink_to(sys.executable)  # the Python medledger runs on
    if java is not None:
        (bin_dir / "java").write_text(f'#!/bin/sh\necho "    java.specification.version = {java}" >&2\n')
        (bin_dir / "java").chmod(0o755)
    if maven:
        (bin_dir / "mvn").write_text("#!/bin/sh\n")
        (bin_dir / "mvn").chmod(0o755)
    version = re.search(r"<kafka.version>(.*)</kafka.version>", (ROOT / "scripts/kafka/pom.xml").read_text())[1]
    libs = tmp_path / "kafka-libs" / "pom"
    libs.mkdir(parents=True)
    (libs / f"kafka_2.13-{version}.jar").write_text("")
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "PYTHON")}
    return env | {
        "PATH": str(bin_dir),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "MEDLEDGER_KAFKA_LIBS": str(libs.parent),
    }


def _prerequisites(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "scripts/prerequisites")], env=env, capture_output=True, text=True, timeout=120, cwd="/"
    )


def test_prerequisites_name_what_is_missing_and_how_to_install_it(tmp_path):
    checked = _prerequisites(_machine(tmp_path, java="11", maven=False))

    assert checked.returncode == 1
    assert "Java 17 or newer (the Kafka broker); found Java 11" in checked.stderr
    assert "apt-get install openjdk-17-jre-headless" in checked.stderr
    assert "Maven" in checked.stderr and "apt-get install maven" in checked.stderr
    # no Docker engine outside CI: the stack's tests skip, so it is a warning, with how to install one
    assert "warning: no Docker engine: the compose stack's tests (tests/docker) will be skipped" in checked.stderr
    assert "docker.io" in checked.stderr


def test_in_ci_a_missing_docker_engine_stops_the_run(tmp_path):
    checked = _prerequisites(_machine(tmp_path, java="17", maven=True) | {"CI": "true"})

    assert checked.returncode == 1
    assert "a Docker engine (tests/docker; in CI they may not skip)" in checked.stderr
    assert "Java" not in checked.stderr and "Maven" not in checked.stderr


def test_prerequisites_present_say_how_long_the_suite_takes(tmp_path):
    env = _machine(tmp_path, java="21", maven=True)
    first = _prerequisites(env)
    (tmp_path / "cache" / "medledger" / "last-test-run").write_text("37 minutes\n")
    again = _prerequisites(env)

    assert first.returncode == 0, first.stderr
    assert "all present" in first.stderr and "tens of minutes" in first.stderr
    assert again.returncode == 0 and "The whole suite took 37 minutes here last time." in again.stderr


def test_the_test_command_checks_the_machine_before_it_lints_and_tests():
    steps = [
        line.split()[0]
        for line in (ROOT / "scripts/test").read_text().splitlines()
        if line.startswith(("scripts/", ".venv/bin/"))
    ]
    assert steps.index("scripts/prerequisites") < steps.index(".venv/bin/ruff") < steps.index(".venv/bin/python")
