"""The `medledger` command: one module per group of commands, all on one typer app."""

from __future__ import annotations

from . import inspect, keys, ledger, offline  # noqa: E402,F401  (they register their commands on `app`)
from .app import app

__all__ = ["app"]
