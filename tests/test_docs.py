"""The README and docs/ stay short, linked and true to the code: every link resolves, every setting the code reads
is documented, every command shown exists, and nothing points outside the repository."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 130  # two screens

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
SETTING = re.compile(r"\bMEDLEDGER_[A-Z0-9_]*[A-Z0-9]\b")
CODE = ("ledger", "policies", "projections", "consumers", "gateway", "console", "scripts", "bench")


def prose(path: Path) -> str:
    """The document without its HTML comments and code blocks: what its links are."""
    return FENCE.sub("", COMMENT.sub("", path.read_text(encoding="utf-8")))


def slug(heading: str) -> str:
    """The anchor a heading gets where the documents are read (GitHub): lower case, punctuation dropped, spaces as
    hyphens."""
    text = heading.strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(match) for match in re.findall(r"^#{1,6}\s+(.*)$", text, re.MULTILINE)}


def links(path: Path) -> list[str]:
    return [target for target in LINK.findall(prose(path)) if not re.match(r"[a-z]+:", target)]


def test_the_readme_fits_on_two_screens():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; at most {README_MAX_LINES}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_relative_link_points_to_a_file_and_heading_that_exist(document):
    broken = []
    for target in links(document):
        name, _, anchor = target.partition("#")
        file = (document.parent / name).resolve() if name else document
        if not file.is_file() or ROOT not in file.parents:
            broken.append(f"{target}: no file {name} in the repository")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{document.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_no_document_points_outside_the_repository(document):
    text = document.read_text(encoding="utf-8")
    assert "../shared" not in text and "shared/seeds" not in text and "policy-notes.md" not in text


def test_every_setting_the_code_reads_is_in_the_operations_guide():
    read = set()
    for package in CODE:
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and path.suffix in {"", ".py", ".sh"} and "vendor" not in path.parts:
                read |= set(SETTING.findall(path.read_text(encoding="utf-8", errors="replace")))
    for path in (ROOT / "docker-compose.yml", ROOT / "Dockerfile"):
        read |= set(SETTING.findall(path.read_text(encoding="utf-8")))
    assert len(read) > 40  # the scan found the settings at all
    documented = set(SETTING.findall((ROOT / "docs" / "operations.md").read_text(encoding="utf-8")))
    assert not read - documented, f"settings not in docs/operations.md: {sorted(read - documented)}"


def commands_shown(document: Path) -> list[list[str]]:
    """Each `medledger ...` line of the document's shell blocks, as words."""
    shown = []
    for block in re.findall(r"^```sh\n(.*?)^```", document.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE):
        for line in block.splitlines():
            words = line.split("#")[0].split()
            while words and "=" in words[0]:  # NAME=value before the command
                words = words[1:]
            if words[:1] == ["sudo"]:
                words = words[1:]
            if words and words[0].endswith("medledger") and words[0] != "scripts/demo":
                shown.append(words)
    return shown


def pending_options(document: Path) -> set[str]:
    """Options a document marks as still to come, in an `<!-- update: ... -->` comment."""
    comments = re.findall(r"<!--\s*update:(.*?)-->", document.read_text(encoding="utf-8"), re.DOTALL)
    return {option for comment in comments for option in re.findall(r"--[a-z][a-z-]*", comment)}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_medledger_command_shown_exists(document):
    from consumers.cli import app

    root = typer.main.get_command(app)
    pending = pending_options(document)
    unknown = []
    for words in commands_shown(document):
        command, rest = root, words[1:]
        while getattr(command, "commands", None) and rest and not rest[0].startswith("-"):
            found = command.commands.get(rest[0])
            if found is None:
                unknown.append(" ".join(words))
                break
            command, rest = found, rest[1:]
        else:
            options = {"--help"} | {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
            given = {word.split("=")[0] for word in rest if word.startswith("--")}
            if given - options - pending:
                unknown.append(f"{' '.join(words)}: no option {sorted(given - options - pending)}")
    assert not unknown, f"{document.relative_to(ROOT)}: " + "; ".join(unknown)


def test_the_what_if_example_the_docs_show_changes_what_a_weihai_settlement_pays():
    import subprocess
    import sys

    def settle(*options: str) -> list[str]:
        command = [sys.executable, "-m", "ledger.cli", "settle", "examples/weihai.jsonl", *options]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
        return [line for line in done.stdout.splitlines() if '"settlement_id"' in line]

    given = settle()
    what_if = settle("--parameters", "examples/params/371000-what-if.toml")
    assert len(given) == len(what_if) > 0
    assert sum(a != b for a, b in zip(given, what_if)) >= 1


def test_every_document_is_linked_from_the_readme():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(README)}
    unlinked = [path.name for path in DOCUMENTS[1:] if path.resolve() not in linked]
    assert not unlinked, f"docs not linked from README.md: {unlinked}"
