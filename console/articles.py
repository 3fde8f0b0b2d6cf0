"""The policy documents the explanation lines cite (the texts in policy_texts/, unchanged), article by article, and
the link from a line to the article it cites first."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

TEXTS = Path(__file__).with_name("policy_texts")
ARTICLE = re.compile(r"^\s*(第[一二三四五六七八九十百零]+条)")
SECTION = re.compile(r"^\s*([一二三四五六七八九十]+)、")
CLAUSE = re.compile(r"^\s*[（(]([一二三四五六七八九十]+)[）)]")
# "002 第十四条", "001 第八条(八)", "004 一(三)", "003 一(一)"
CITED = re.compile(r"\b(00[0-4]) (第[一二三四五六七八九十百零]+条|[一二三四五六七八九十]+\([一二三四五六七八九十]+\))")


@cache
def document(number: str) -> list[tuple[str | None, str]] | None:
    """(anchor, paragraph) pairs: an anchor where an article (第N条) or a numbered clause (一(三)) begins."""
    if not re.fullmatch(r"00[0-4]", number):
        return None
    path = TEXTS / f"{number}.txt"
    if not path.exists():
        return None
    paragraphs: list[tuple[str | None, str]] = []
    section = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        anchor = None
        if found := ARTICLE.match(line):
            anchor = found.group(1)
        elif found := SECTION.match(line):
            section = found.group(1)
            anchor = section
        elif (found := CLAUSE.match(line)) and section:
            anchor = f"{section}({found.group(1)})"
        paragraphs.append((anchor, line.strip()))
    return paragraphs


def article_link(line: str) -> str | None:
    """/policy/NNN#article for the first article `line` cites, or None."""
    found = CITED.search(line)
    if found is None:
        return None
    number, article = found.groups()
    article = re.sub(r"\(.*\)$", "", article) if article.startswith("第") else article
    return f"/policy/{number}#{article}"
