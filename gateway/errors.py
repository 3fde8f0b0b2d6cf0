"""Why a request is answered `infcode` -1: a refusal with a stable reason and a sentence naming the field."""

from __future__ import annotations


class Refused(Exception):
    """A message refused before anything is written (or a settlement the ledger refused): `reason` is a stable
    code, `detail` names the field or rule."""

    def __init__(self, reason: str, detail: str, answered: tuple[str, str] | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        # What the caller is told, when it must not learn the reason (kept in the logs and counts): (reason, detail)
        self.answered = answered or (reason, detail)


def bad_field(field: str, problem: str) -> Refused:
    return Refused("invalid_input", f"{field}: {problem}")
