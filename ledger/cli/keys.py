"""`medledger keys generate`, and the options a command signs a producer's events with."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Optional

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
    try:
        return Authority.from_environment()
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


# The compose stack's gateway: a producer of its own, allowed the visit events it sends and nothing else.
GATEWAY = "gateway"
GATEWAY_EVENTS = ("visit.submitted", "visit.reversed")
GATEWAY_IDS = "his-"  # the event ids the gateway derives (gateway.settlement.event_id_of)


@keys_app.command("init")
def init_keys(
    directory: Annotated[Path, typer.Argument(help="A new directory for the key set.")],
    producer: Annotated[str, typer.Option("--producer", help="The one producer's id.")] = "demo",
    owner: Annotated[
        Optional[str],
        typer.Option(
            "--owner",
            help="UID[:GID] to give the private keys to (they stay 0600), e.g. 10001, the user medledger's image "
            "runs as; changing a file's owner needs root.",
        ),
    ] = None,
) -> None:
    """A key set to try medledger with (a local stack, the demo): the ledger's key pair (ledger.pem, ledger.pub),
    one producer's private key (PRODUCER.pem), the gateway's (gateway.pem) and a producers file allowing the
    producer every event of every region and the gateway its visits and reversals (producers.toml). Not for
    production: there each producer makes its own key and is allowed only its own events (docs/security.md)."""
    owned = _owner(owner)
    if producer == GATEWAY:
        typer.echo(f"medledger: --producer {GATEWAY} is the gateway's own id; name the producer otherwise", err=True)
        raise typer.Exit(2)
    if directory.exists() and any(directory.iterdir()):
        typer.echo(f"medledger: {directory} is not empty; keys are never overwritten", err=True)
        raise typer.Exit(2)
    directory.mkdir(parents=True, exist_ok=True)
    ledger, own, gateway = generate(), generate(), generate()
    made = Signer(producer, None, own)
    now = datetime.now(UTC)
    private = {"ledger.pem": ledger, f"{producer}.pem": own, f"{GATEWAY}.pem": gateway}
    for name, key in private.items():
        _private(directory / name, key)
    (directory / "ledger.pub").write_text(public_text(ledger) + "\n")
    events = ", ".join(f'"{event}"' for event in GATEWAY_EVENTS)
    (directory / "producers.toml").write_text(
        "# The demo producer goes without an id_prefix, so it may send no id in another's: the gateway's are its own.\n"
        f'[producers.{producer}]\nevents = ["*"]\nregions = ["*"]\n{key_entry(made.producer, made.key_id, own, now)}'
        f'\n[producers.{GATEWAY}]\nevents = [{events}]\nregions = ["*"]\nid_prefix = "{GATEWAY_IDS}"\n'
        f"{key_entry(GATEWAY, None, gateway, now)}",
        encoding="utf-8",
    )
    if owned is not None:
        try:
            for name in private:
                os.chown(directory / name, *owned)
        except PermissionError:
            typer.echo(f"medledger: giving the private keys to {owner} needs root (e.g. sudo)", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"medledger: keys for the ledger, producer {producer} and the gateway in {directory}", err=True)


def _owner(owner: str | None) -> tuple[int, int] | None:
    """(uid, gid) of --owner UID[:GID]; the gid is the uid's when not given."""
    if owner is None:
        return None
    uid, _, gid = owner.partition(":")
    if not uid.isdigit() or not (gid or uid).isdigit():
        typer.echo(f"medledger: --owner takes UID[:GID] in digits, got {owner!r}", err=True)
        raise typer.Exit(2)
    if os.geteuid() != 0 and int(uid) != os.geteuid():  # refused before any key is made
        typer.echo(f"medledger: giving the private keys to {owner} needs root (e.g. sudo)", err=True)
        raise typer.Exit(2)
    return int(uid), int(gid or uid)


def prefix_note(producer: str) -> str:
    """The comment `keys generate` prints above a key's entry: a file of several producers refuses one without
    its own id_prefix."""
    return (
        f"# [producers.{producer}] needs an id_prefix of its own (its event_ids start with it, e.g. "
        f"\"{producer}-\"; none a prefix of another's) unless it is the file's one producer without one\n"
    )


def _private(path: Path, key: Any) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(private_pem(key))
