"""The server's pump is woken by the run's hand-off, not by a tick: a real run (a finished run's
opportunities re-streamed by BackgroundRun in slices) hands rows to the service, and each frame
reaches a subscribed client well within the stats period, the only timer the pump has left.
Frames carry the hand-off time of their first row's batch."""

from __future__ import annotations

import asyncio
import statistics
import time

import orjson
import pyarrow.parquet as pq
import pytest

from conftest import CAPTURES
from test_api_post_columns import _short
from workbench.api.post_columns import check_group
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



def test_a_replays_opportunities_are_streamed_from_its_records_and_known_to_posts_first(tmp_path):
    """A replay through the service: its opportunities reach the channel from the engine's records
    (the run's opportunity_feed), each row once, in order, as the run's opportunities.parquet holds
    them; and a post of a row's id, made as its batch is published, is a duplicate (no
    note_hand_offs here, so only the pump can have noted the ids by then)."""
    settings = Settings(market=str(MARKET_CAPTURE) + ".market", progress=False)
    opts = ServeOptions(db=f"chdb://{tmp_path / 'db'}").checked()
    store = StoreAccess(opts.db)
    run = BackgroundRun("replay", capture=str(MARKET_CAPTURE), out_dir=str(tmp_path / "run"), speed=20.0,
                        settings=settings)
    service = Service(opts, store, run, Hub())
    new_at_publish = []

    def post_back(batch):           # (a GET memory hook: called as each published batch goes to memory)
        got = store.insert_group(check_group([(orjson.dumps([_short(opportunity_id=batch.ids[0])]), False)]))
        new_at_publish.append(bool(got[0]))

    async def go():
        service.opportunity_hooks.append(post_back)
        client = service.hub.new_client()
        service.hub.subscribe(client, ["opportunities"], 0)
        await service.start()
        rows = []
        try:
            async with asyncio.timeout(240):
                while run.running or not client.queue.empty():
                    try:
                        _ch, _first, _last, message = await asyncio.wait_for(client.queue.get(), 1.0)
                    except TimeoutError:
                        continue
                    frame = orjson.loads(message.payload)
                    if frame["type"] == "rows":
                        rows += frame["rows"]
        finally:
            await service.stop()
        return rows

    try:
        rows = asyncio.run(go())
        assert service._records is not None                    # the rows came from the engine's records
        want = pq.read_table(tmp_path / "run" / "opportunities.parquet")
        assert len(want) > 50
        assert [r["opportunity_id"] for r in rows] == want.column("opportunity_id").to_pylist()
        assert new_at_publish and not any(new_at_publish)
    finally:
        store.close()
