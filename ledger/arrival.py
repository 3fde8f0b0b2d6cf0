"""An event cannot have happened after it arrived: what says it did is refused before anything settles it.

The policy rules that turn on dates (a year close only for a year that has ended, an enrolment's effective date
at most so far ahead, `policies.limits`) read the event's own `occurred_at`, which its producer writes. Alone they
would let a producer close Nanjing 2023 on a close dated 2024-01-01 in the middle of 2023. So the durable intake
(`medledger serve`, `medledger ingest`, and the gateway's events through serve) compares `occurred_at` with the
time the event arrives, by the service's clock, and refuses an event that lies later than that by more than the
tolerated clock skew (MEDLEDGER_MAX_CLOCK_SKEW_SECONDS, 600 by default): reason `implausible`, rule
`occurred_at_ahead`, kept with no ledger position (seq NULL) and never applied. Nothing is appended, so a replay,
which reads only what was appended, stays deterministic. `medledger settle` has no arrival time (a file settled
offline) and does not check this (docs/policies-limits.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .intake import Incoming

from datetime import datetime, timedelta

from .contract import InvalidEvent

SKEW_SETTING = "MEDLEDGER_MAX_CLOCK_SKEW_SECONDS"
DEFAULT_MAX_CLOCK_SKEW = timedelta(seconds=600)


class FromTheFuture(InvalidEvent):
    """An event dated later than its arrival plus the tolerated clock skew."""

    reason = "implausible"


def refuse_if_ahead(item: Incoming, now: datetime, skew: timedelta) -> None:
    """Turn `item` (an `Incoming`) into refused input when its `occurred_at` is later than `now` + `skew`."""
    if item.event is None:
        return
    occurred = item.event.occurred_at
    latest = now + skew
    if occurred > latest:
        detail = (
            f"rule occurred_at_ahead: occurred_at {occurred.isoformat()} is later than its arrival "
            f"{now.isoformat()} plus the tolerated clock skew of {skew.total_seconds():g} s; setting "
            f"{SKEW_SETTING} (docs/policies-limits.md); kept, never applied"
        )
        item.error = FromTheFuture(detail, item.raw, item.event.event_id)
        item.event = None
