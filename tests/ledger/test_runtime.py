import ast
import asyncio
import gc
import signal
from pathlib import Path

import pytest
import uvloop

from ledger import runtime
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


def test_a_command_s_coroutine_runs_to_its_end_on_uvloop():
    async def main() -> tuple[type, int]:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()), 42

    loop_type, result = runtime.run(main())
    assert issubclass(loop_type, uvloop.Loop)
    assert result == 42


def test_a_failure_inside_runs_out_of_it_and_the_loop_closes():
    loops: list[asyncio.AbstractEventLoop] = []

    async def failing() -> None:
        loops.append(asyncio.get_running_loop())
        raise LookupError("inside")

    with pytest.raises(LookupError, match="inside"):
        runtime.run(failing())
    assert loops[0].is_closed()


def test_signals_are_handled_as_before_once_the_loop_is_closed():
    # FastStream takes SIGINT and SIGTERM on its loop and leaves them so; uvloop's closed loop would then swallow
    # both while the command stops the embedded server at exit.
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

    async def taking_signals() -> None:
        loop = asyncio.get_running_loop()
        for number in before:
            loop.add_signal_handler(number, lambda: None)

    runtime.run(taking_signals())
    assert {number: signal.getsignal(number) for number in before} == before


def test_no_command_starts_an_event_loop_but_through_the_runtime():
    # asyncio.run() would start asyncio's own loop, not the one every command is measured on (ledger.runtime.run).
    root = Path(__file__).resolve().parents[2]
    found, through_runtime = [], 0
    for package in ("ledger", "consumers", "gateway", "console", "projections", "policies"):
        for path in sorted((root / package).rglob("*.py")):
            if path == root / "ledger" / "runtime.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module == "asyncio":
                    if {alias.name for alias in node.names} & {"run", "new_event_loop", "Runner"}:
                        found.append(f"{path.relative_to(root)}:{node.lineno}")
                if isinstance(node, ast.Attribute) and node.attr in {"run", "new_event_loop", "Runner"}:
                    if isinstance(node.value, ast.Name) and node.value.id == "asyncio":
                        found.append(f"{path.relative_to(root)}:{node.lineno}")
                    if isinstance(node.value, ast.Name) and node.value.id == "runtime" and node.attr == "run":
                        through_runtime += 1
    assert not found, found
    assert through_runtime >= 25  # serve's, ingest's, replay's, the console's jobs, the migrations'...
