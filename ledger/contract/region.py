"""The regions (admdvs codes) whose policies the ledger knows."""

from __future__ import annotations

from enum import StrEnum


class Region(StrEnum):
    NINGXIA = "640000"
    WEIHAI = "371000"
    NANJING = "320100"
    INNER_MONGOLIA = "150000"
