"""The server's pump is woken by the run's hand-off, not by a tick: a real run (a finished run's
opportunities re-streamed by BackgroundRun in slices) hands rows to the service, and each frame
reaches a subscribed client well within the stats period, the only timer the pump has left.
Frames carry the hand-off time of their first row's batch."""

from __future__ import annotations

import asyncio
import statistics
import time

import orjson
import pytest

from conftest import CAPTURES
from workbench.api.hub import Hub
from workbench.api.service import STATS_PERIOD_S, ServeOptions, Service
from workbench.api.store_access import StoreAccess
from workbench.config import Settings
from workbench.runner import replay
from workbench.runner.background import BackgroundRun

pytestmark = pytest.mark.timeout(300)

MARKET_CAPTURE = CAPTURES / "market.pcapng"
RATE = 2_000                     # rows/s re-streamed: a slice every RESTREAM_PERIOD_S


def test_frames_follow_the_runs_hand_off_without_a_tick(tmp_path):
    replay(MARKET_CAPTURE, tmp_path / "run", Settings(market=str(MARKET_CAPTURE) + ".market", progress=False))
    opts = ServeOptions(db=f"chdb://{tmp_path / 'db'}").checked()
    run = BackgroundRun("run", run_dir=str(tmp_path / "run"), rate=RATE, duration=3.0)
    service = Service(opts, StoreAccess(opts.db), run, Hub())

    async def go():
        client = service.hub.new_client()
        service.hub.subscribe(client, ["opportunities"], None)
        await service.start()
        lags, handed = [], []
        try:
            async with asyncio.timeout(60):
                while len(lags) < 20:
                    _ch, _first, _last, message = await client.queue.get()
                    frame = orjson.loads(message.payload)
                    lags.append((time.time_ns() - frame["handed_ns"]) / 1e9)
                    handed.append(frame["handed_ns"])
        finally:
            await service.stop()
        return lags, handed

    lags, handed = asyncio.run(go())
    assert handed == sorted(handed) and len(set(handed)) == len(handed)     # one frame per hand-off, in order
    assert max(lags) < STATS_PERIOD_S / 2, lags      # a pump waiting for its timer would lag up to a period
    assert statistics.median(lags) < 0.05, lags
