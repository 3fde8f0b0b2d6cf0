"""The settler's state and its transitions, in one place: back-off while the same failure repeats, a rewind before
anything settles, isolation of records that keep failing for a reason they would meet again."""

from __future__ import annotations

from consumers.poison import ISOLATE_AFTER
from consumers.settle import BACKOFF_CAP, State


def test_failures_back_off_doubling_up_to_the_cap_and_a_commit_ends_them():
    state = State()
    waits = []
    for _ in range(6):
        state.failed(deterministic=False)
        state.rewound()  # each failure's rewind done: the next batch waits before it settles
        waits.append(state.backoff())
    assert waits == [0.5, 1.0, 2.0, 4.0, BACKOFF_CAP, BACKOFF_CAP]
    state.committed()
    assert state.backoff() == 0.0


def test_a_pending_rewind_goes_first_without_waiting():
    state = State()
    state.failed(deterministic=False)
    assert state.rewind_pending and state.backoff() == 0.0
    state.rewound()
    assert not state.rewind_pending and state.backoff() == 0.5


def test_records_failing_for_a_reason_they_would_meet_again_are_isolated_once():
    state = State()
    started = [state.failed(deterministic=True) for _ in range(ISOLATE_AFTER + 2)]
    assert started == [False] * (ISOLATE_AFTER - 1) + [True, False, False]  # said once, when it starts
    assert state.isolating
    state.isolated()
    assert not state.isolating


def test_failures_of_the_database_never_isolate_records():
    state = State()
    assert not any(state.failed(deterministic=False) for _ in range(ISOLATE_AFTER * 3))
    assert not state.isolating


def test_waiting_says_what_was_waited_for_before():
    state = State()
    assert state.waiting("postgresql") is None
    assert state.waiting("kafka") == "postgresql"
    assert state.waiting(None) == "kafka" and state.waiting_for is None


def test_what_the_database_driver_or_its_pool_raises_is_never_the_records_fault():
    import asyncpg

    from consumers.poison import deterministic

    assert deterministic(ValueError("an amount the rules refuse"))
    assert deterministic(asyncpg.DataError("a value the driver could not encode"))
    assert not deterministic(asyncpg.InternalClientError("the pool's own error"))
    assert not deterministic(asyncpg.InterfaceError("connection has been released back to the pool"))
    assert not deterministic(ConnectionRefusedError())
