import gc

from ledger.replay import worker_pool
from ledger.runtime import THRESHOLDS


def collector_settings() -> tuple[tuple[int, int, int], int, bool]:
    return gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()


def test_replay_workers_collect_garbage_as_seldom_as_the_command_that_starts_them():
    with worker_pool(1) as pool:
        thresholds, frozen, enabled = pool.submit(collector_settings).result(timeout=120)
    assert thresholds == THRESHOLDS != (700, 10, 10)
    assert frozen > 0  # start-up's objects are left out of the collections
    assert enabled  # rarer, never off: cycles are still freed
