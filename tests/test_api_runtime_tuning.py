"""The server's young collections at a fixed pace (runtime_tuning.py ``collect_young_every``)."""

from __future__ import annotations

import asyncio
import collections
import gc
import time

import pytest

from workbench.api.runtime_tuning import YOUNG_ALLOCATIONS, collect_young_every


@pytest.fixture
def young_threshold():
    """The server's young threshold for the test, the collector's settings back afterwards."""
    old = gc.get_threshold()
    gc.collect()
    gc.set_threshold(YOUNG_ALLOCATIONS, *old[1:])
    yield
    gc.set_threshold(*old)


def _young_peak(pace_s: float | None) -> int:
    """The most objects the young generation held while a full FIFO of 100,000 keys turned 60,000 of
    them over, as the GET memory's keys do: a new key (a tuple, tracked until a collection walks it)
    in, an old one (walked already: no longer tracked) out, so the allocation count stays level;
    with the loop's young collections every ``pace_s`` (None: none)."""
    keys = collections.deque((i, str(i)) for i in range(100_000))
    gc.collect()                                # the keys held are walked: no longer tracked

    async def main() -> int:
        stop = collect_young_every(asyncio.get_running_loop(), pace_s) if pace_s else None
        peak = 0
        try:
            for i in range(60_000):
                keys.append((i, str(i)))
                keys.popleft()
                if i % 1_000 == 999:
                    await asyncio.sleep(0.002)
                    peak = max(peak, len(gc.get_objects(0)))
        finally:
            if stop is not None:
                stop()
        return peak

    return asyncio.run(main())


def test_the_young_generation_piles_up_without_the_pace_and_not_with_it(young_threshold):
    assert _young_peak(None) > 50_000           # what the server saw: no young collection starts
    assert _young_peak(0.005) < 20_000


def test_the_pace_runs_middle_collections_too_and_stops_when_asked():
    starts = []

    def seen(phase, info):
        if phase == "start":
            starts.append(info["generation"])

    async def main() -> tuple[int, int]:
        stop = collect_young_every(asyncio.get_running_loop(), 0.005)
        # until 20 have run, however busy the machine (a CI run once saw 16 in the 0.2 s they take idle)
        deadline = time.monotonic() + 30
        while len(starts) < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        stop()
        ran = len(starts)
        await asyncio.sleep(0.05)
        return ran, len(starts)

    old = gc.get_threshold()
    gc.set_threshold(10**9, 10, 10**9)          # no collection but the pace's
    gc.callbacks.append(seen)
    try:
        ran, after = asyncio.run(main())
    finally:
        gc.callbacks.remove(seen)
        gc.set_threshold(*old)
    assert ran >= 20 and 0 in starts and 2 not in starts
    assert 0 < starts.count(1) <= ran // 10 + 1         # a middle one every tenth
    assert after == ran
