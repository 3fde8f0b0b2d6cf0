"""`medledger keys generate`, and the options a command signs a producer's events with."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..authority import (
    Authority,
    ProducersFileError,
    Signer,
    generate,
    key_entry,
    private_pem,
    public_text,
    signer_from,
)
from .app import keys_app

ProducerOption = Annotated[
    Optional[str],
    typer.Option("--producer", envvar="MEDLEDGER_PRODUCER", help="The producer id the events are signed as."),
]
KeyOption = Annotated[
    Optional[Path],
    typer.Option("--key", envvar="MEDLEDGER_PRODUCER_KEY", help="The producer's private key (PEM), to sign with."),
]
KeyIdOption = Annotated[
    Optional[str],
    typer.Option(
        "--key-id",
        envvar="MEDLEDGER_PRODUCER_KEY_ID",
        help="The key's id in the producers file (default: its fingerprint, as `keys generate` names it).",
    ),
]


def signer(producer: str | None, key: Path | None, key_id: str | None) -> Signer:
    try:
        return signer_from(producer, None if key is None else str(key), key_id)
    except ProducersFileError as error:
        typer.echo(f"medledger: {error}", err=True)
        raise typer.Exit(2) from None


def authority() -> Authority | None:
    """The producers file named by MEDLEDGER_PRODUCERS, if one is."""
    path = os.environ.get("MEDLEDGER_PRODUCERS")
    if not path:
        return None
    try:
        return Authority.load(path)
    except ProducersFileError as error:
        typer.echo(f"medledger: MEDLEDGER_PRODUCERS: {error}", err=True)
        raise typer.Exit(2) from None


@keys_app.command("generate")
def generate_key(
    producer: Annotated[str, typer.Option("--producer", help="The producer id the key is for.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the private key (PEM, readable by you only).")],
    key_id: Annotated[Optional[str], typer.Option("--key-id", help="Default: the key's fingerprint.")] = None,
) -> None:
    """Make an Ed25519 key pair: the private key goes to OUT, for the producer alone; the entry for the producers
    file (MEDLEDGER_PRODUCERS), with the public key, is printed, after a reminder of the producer's id_prefix."""
    if out.exists():
        typer.echo(f"medledger: {out} exists; a key is never overwritten", err=True)
        raise typer.Exit(2)
    key = generate()
    try:
        made = Signer(producer, key_id, key)
    except ProducersFileError as error:
        typer.echo(f"medledger: {error}", err=True)
        raise typer.Exit(2) from None
    _private(out, key)
    typer.echo(prefix_note(made.producer) + key_entry(made.producer, made.key_id, key, datetime.now(UTC)), nl=False)


@keys_app.command("init")
def init_keys(
    directory: Annotated[Path, typer.Argument(help="A new directory for the key set.")],
    producer: Annotated[str, typer.Option("--producer", help="The one producer's id.")] = "demo",
) -> None:
    """A key set to try medledger with (a local stack, the demo): the ledger's key pair (ledger.pem, ledger.pub),
    one producer's private key (PRODUCER.pem) and a producers file allowing it every event of every region
    (producers.toml). Not for production: there each producer makes its own key and is allowed only its own
    events (docs/security.md)."""
    if directory.exists() and any(directory.iterdir()):
        typer.echo(f"medledger: {directory} is not empty; keys are never overwritten", err=True)
        raise typer.Exit(2)
    directory.mkdir(parents=True, exist_ok=True)
    ledger, own = generate(), generate()
    made = Signer(producer, None, own)
    _private(directory / "ledger.pem", ledger)
    _private(directory / f"{producer}.pem", own)
    (directory / "ledger.pub").write_text(public_text(ledger) + "\n")
    entry = key_entry(made.producer, made.key_id, own, datetime.now(UTC))
    (directory / "producers.toml").write_text(
        "# One producer: it needs no id_prefix. A file naming more than one gives each its own (docs/security.md).\n"
        f'[producers.{producer}]\nevents = ["*"]\nregions = ["*"]\n{entry}',
        encoding="utf-8",
    )
    typer.echo(f"medledger: keys for the ledger and producer {producer} in {directory}", err=True)


def prefix_note(producer: str) -> str:
    """The comment `keys generate` prints above a key's entry: a file of several producers refuses one without
    its own id_prefix."""
    return (
        f"# [producers.{producer}] needs an id_prefix of its own (its event_ids start with it, e.g. "
        f'"{producer}-"; none a prefix of another\'s) when the file names more than one producer\n'
    )


def _private(path: Path, key) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(private_pem(key))
