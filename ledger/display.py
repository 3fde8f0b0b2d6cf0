"""Text producers wrote, shown to people: as it was written, never as instructions to a terminal or a spreadsheet.

Producer text reaches auditors through `member show`, `audit explain`, `replay`'s differences and the reports. Three
things could make what they see differ from what was sent: rich markup (`[red]`, `[/oops]`, which rich would
interpret, or refuse with an error), characters that move or hide text (a right-to-left override turns `001.00` into
`00.100` on screen; control characters rewrite the line) and, in a spreadsheet, a cell that starts like a formula.
Every such character is shown as its escape (`\\u202e`), so the auditor sees that it is there."""

from __future__ import annotations

import os
import sys
import unicodedata
from decimal import Decimal
from functools import lru_cache
from typing import Any

from rich.console import Console

# Control (Cc), format (Cf: bidi overrides and isolates, zero-width characters), surrogate (Cs), private use (Co),
# unassigned (Cn), and line and paragraph separators (Zl, Zp).
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@lru_cache(maxsize=4096)
def _escape(char: str) -> str:
    if unicodedata.category(char) not in _HIDDEN:
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(value: object) -> str:
    """`value` as text in which every character that would hide, move or rewrite other text is written as its
    escape. Printable text, Chinese included, is left as it is."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text  # the common case, decided in C
    return "".join(_escape(char) for char in text)


# Output that is not a terminal (a pipe, a file, a CI log) has no width to fit: rich would take 80 columns and cut
# tables and help at them. It gets this many instead; a terminal keeps its own width, COLUMNS its setting.
PIPED_WIDTH = 120


def output_width() -> int | None:
    """The width to lay text out at: None (rich measures the terminal, or reads COLUMNS), or PIPED_WIDTH when
    standard output is no terminal and COLUMNS says nothing."""
    if os.environ.get("COLUMNS", "").isdigit():
        return None
    try:
        terminal = sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        terminal = False
    return None if terminal else PIPED_WIDTH


def console(**options: Any) -> Console:
    """A rich console that prints strings as they are: no markup, no emoji codes, no highlighting; as wide as
    output_width() unless `width` is given."""
    options.setdefault("width", output_width())
    return Console(markup=False, emoji=False, highlight=False, **options)


def csv_cell(value: object) -> str:
    """A CSV field a spreadsheet shows as text: a string that starts like a formula gets a leading apostrophe
    (numbers, negative ones included, stay numbers)."""
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    text = visible(value)
    return "'" + text if text.startswith(_FORMULA) else text
