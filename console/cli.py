"""`medledger console` and `medledger users`: the console's server and its users."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Optional, TypeVar

import typer

from ledger import runtime
from ledger.cli import app
from ledger.cli.common import prepared
from ledger.db.console_users import ROLES

from .settings import DEFAULT_HOST, DEFAULT_PORT

T = TypeVar("T")

users_app = typer.Typer(
    help="Manage who may sign in to the console (`medledger console`) and their roles.", no_args_is_help=True
)
app.add_typer(users_app, name="users")


@app.command()
def console(
    host: Annotated[str, typer.Option(envvar="MEDLEDGER_CONSOLE_HOST", help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(envvar="MEDLEDGER_CONSOLE_PORT", help="Port to listen on.")] = DEFAULT_PORT,
    tls_cert: Annotated[
        Optional[str], typer.Option(envvar="MEDLEDGER_CONSOLE_TLS_CERT", help="PEM certificate: serve over TLS.")
    ] = None,
    tls_key: Annotated[Optional[str], typer.Option(envvar="MEDLEDGER_CONSOLE_TLS_KEY", help="Its PEM key.")] = None,
) -> None:
    """Serve the audit and fund console (members, settlements, fund, what-if, queue, integrity) in the browser.
    Create its first user with `medledger users add NAME --role auditor`."""
    import uvicorn

    from ledger.cli.common import refuse, replay_members
    from ledger.cli.keys import authority
    from ledger.db.migrate import SchemaNotCurrent, prepare

    from .app import create_app
    from .settings import console_database, console_ledger, console_url

    authority()  # a producers file its verifications could not read stops the start, as it stops `replay --verify`
    replay_members()  # as would a bound of held members its verifications and what-ifs could not read
    try:
        db = console_ledger(prepared)
        url = console_url(db)
        prepare(console_database(db))  # the schema it reads is current
    except (ValueError, SchemaNotCurrent) as error:
        refuse(error)
    typer.echo(f"medledger: console on http{'s' if tls_cert else ''}://{host}:{port}/", err=True)
    uvicorn.run(
        create_app(console_database(db), url),
        host=host,
        port=port,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_level="warning",
        proxy_headers=False,
    )


def _owner(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(raw)` as the database's owner: only the owner changes the console's users."""
    import asyncpg

    from ledger.db.server import dsn

    owner_url = prepared().owner_url
    if owner_url is None:
        typer.echo("medledger: managing users needs the owner's DATABASE_URL", err=True)
        raise typer.Exit(2)

    async def run() -> T:
        connection = await asyncpg.connect(dsn(owner_url))
        try:
            return await work(connection)
        finally:
            await connection.close()

    return runtime.run(run())


def _password(confirm: bool = True) -> str:
    from .passwords import MINIMUM_LENGTH, hash_password

    given = os.environ.get("MEDLEDGER_USER_PASSWORD")
    if given is None:
        given = typer.prompt("password", hide_input=True, confirmation_prompt=confirm)
    if len(given) < MINIMUM_LENGTH:
        typer.echo(f"medledger: a password has at least {MINIMUM_LENGTH} characters", err=True)
        raise typer.Exit(2)
    return hash_password(given)


NameArgument = Annotated[str, typer.Argument(help="The user's login name.")]


@users_app.command("add")
def users_add(
    name: NameArgument,
    role: Annotated[str, typer.Option(help="auditor, fund_manager or operator.")],
) -> None:
    """Add a user; the password from MEDLEDGER_USER_PASSWORD, or asked for."""
    from ledger.db.console_users import add_user

    if role not in ROLES:
        typer.echo(f"medledger: --role must be one of {', '.join(ROLES)}, got {role!r}", err=True)
        raise typer.Exit(2)
    if not name or len(name) > 128 or not name.isprintable() or name.strip() != name:
        typer.echo("medledger: a user name is 1 to 128 printable characters without surrounding spaces", err=True)
        raise typer.Exit(2)
    hashed = _password()
    if not _owner(lambda raw: add_user(raw, name, role, hashed)):
        typer.echo(f"medledger: user {name} exists already", err=True)
        raise typer.Exit(1)
    typer.echo(f"medledger: user {name} added ({role})", err=True)


@users_app.command("remove")
def users_remove(name: NameArgument) -> None:
    """Remove a user (their access log stays)."""
    from ledger.db.console_users import remove_user

    if not _owner(lambda raw: remove_user(raw, name)):
        typer.echo(f"medledger: no user {name}", err=True)
        raise typer.Exit(1)
    typer.echo(f"medledger: user {name} removed", err=True)


@users_app.command("passwd")
def users_passwd(name: NameArgument) -> None:
    """Set a user's password (from MEDLEDGER_USER_PASSWORD, or asked for)."""
    from ledger.db.console_users import set_password

    hashed = _password()
    if not _owner(lambda raw: set_password(raw, name, hashed)):
        typer.echo(f"medledger: no user {name}", err=True)
        raise typer.Exit(1)
    typer.echo(f"medledger: password of {name} changed", err=True)


@users_app.command("list")
def users_list() -> None:
    """The users and their roles."""
    from ledger.db.console_users import users

    for user in _owner(users):
        typer.echo(f"{user['name']}\t{user['role']}")
