"""Process settings for medledger's long-running jobs."""

import gc


def tune_garbage_collector() -> None:
    """Settling keeps many small records alive (settlements, accumulators, movements); with the default
    thresholds the cyclic collector rescans them after every few hundred allocations. A batch job can afford
    to let it run less often."""
    gc.set_threshold(100_000, 50, 100)
