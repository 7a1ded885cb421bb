"""What the WebSocket's faster paths keep: rows encoded in one call are the bytes a call per row
makes; tables a pump step takes together go out as one, in order; an engine batch made ready on
the run's sink thread is the rows the pump would have made, timed from its hand-off; the engine thread of
`serve --cpu/--rt` is placed as asked (the other threads kept off its CPU, threads it starts
not inheriting SCHED_FIFO), a bad flag is a message, and a placed server still streams every
row of its run in order."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections import Counter

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import websockets

from test_api_serve import CAPTURE, MARKET, RUN_S, Server, _run_rows
from workbench.api.engine_batches import engine_batch, joined, preparer
from workbench.api.engine_placement import EnginePlacement, check_cpu
from workbench.api.seq_index import uuid_bytes
from workbench.host import request_fifo
from workbench.api.frames import frame_bytes, frame_bytes_of_rows, row_items, table_rows
from workbench.api.hub import Hub
from workbench.api.service import ServeOptions, _coalesced
from workbench.errors import ConfigError
from workbench.runner.background import BackgroundRun
from workbench.store.columns import mev_opportunities_table

pytestmark = pytest.mark.timeout(600)

TWO_CPUS = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")


def _tricky() -> pa.Table:
    """Strings holding the row separator, quotes, escapes, non-ASCII; nested objects; nulls."""
    return pa.table({
        "a": ['},{"a":', 'x"},{"a":1', "\\", "é\n\u2028", None, ""],
        "b": pa.array([[{"a": 1}], [], None, [{"a": 2}, {"c": 3}], [{"a": None}], []],
                      pa.list_(pa.struct([("a", pa.int64()), ("c", pa.int64())]))),
        "c": pa.array([1.5, float("nan"), None, -0.0, 1e300, 2**53], pa.float64()),
    })


@pytest.mark.parametrize("table", [
    pytest.param(lambda: _tricky(), id="tricky"),
    pytest.param(lambda: _tricky().select(["a", "c"]), id="flat"),
    pytest.param(lambda: _tricky().slice(0, 1), id="one-row"),
    pytest.param(lambda: _tricky().slice(0, 0), id="empty"),
    pytest.param(lambda: pq.read_table(CAPTURE.with_name("market.pcapng.opportunities.truth.parquet")), id="truth"),
])
def test_rows_encoded_in_one_call_are_the_bytes_of_one_call_per_row(table):
    t = table()
    expected = [orjson.dumps(r) for r in t.to_pylist()]
    assert row_items(t) == expected
    assert orjson.dumps(table_rows(t)) == orjson.dumps(t.to_pylist())
    assert frame_bytes_of_rows("transactions", 7, table_rows(t), 9, None) == frame_bytes("transactions", 7, expected, 9)
    seqs = list(range(10, 10 + 2 * t.num_rows, 2)) or None
    if seqs:
        assert (frame_bytes_of_rows("transactions", 10, table_rows(t), 9, seqs)
                == frame_bytes("transactions", 10, expected, 9, seqs))


def test_tables_a_pump_step_takes_together_go_out_as_one_in_order():
    t1 = pa.table({"tx_index": pa.array([1, 2], pa.int64()), "ts_ns": pa.array([10, 20], pa.int64())})
    t2 = pa.table({"tx_index": pa.array([3], pa.int64()), "ts_ns": pa.array([30], pa.int64())})
    assert _coalesced([(t1, 100)]) == [(t1, 100)]
    ((t, handed),) = _coalesced([(t1, 100), (t2, 200)])
    assert handed == 100 and t.column("tx_index").to_pylist() == [1, 2, 3]
    other = pa.table({"x": [1]})
    assert _coalesced([(t1, 100), (other, 200)]) == [(t1, 100), (other, 200)]    # schemas differ: as they came

    async def go():
        hub = Hub(queue_frames=100)
        c = hub.new_client()
        hub.subscribe(c, ["transactions"], None, None, "arrow")
        for table, handed_ns in _coalesced([(t1, 100), (t2, 200)]):
            hub.publish_transactions(table, handed_ns)
        (frame,) = [c.queue.get_nowait() for _ in range(c.queue.qsize())]
        read = pa.ipc.open_stream(frame[3].payload).read_all()
        header = orjson.loads(read.schema.metadata[b"frame"])
        assert (header["first_seq"], header["last_seq"], header["handed_ns"]) == (0, 2, 100)
        assert read.column("tx_index").to_pylist() == [1, 2, 3]
    asyncio.run(go())


def _engine_opportunities(n: int, t0: int = 1_000) -> pa.Table:
    """Rows in opportunities.parquet's names (the engine's: ts_ns, expected_profit_sol, detect_ns)."""
    return pa.table({"type": pa.array(["sandwich", "arbitrage"] * (n // 2) + ["sandwich"] * (n % 2)),
                     "ts_ns": pa.array(range(t0, t0 + n), pa.int64()),
                     "opportunity_id": [str(uuid.uuid4()) for _ in range(n)],
                     "expected_profit_sol": pa.array([0.5 * i for i in range(n)], pa.float64()),
                     "detect_ns": pa.array([7] * n, pa.int64())})


def test_an_engine_batch_made_ready_on_the_sink_thread_is_what_the_pump_publishes():
    t = _engine_opportunities(5)
    b = engine_batch(t, "live")
    shaped = mev_opportunities_table(t, "live")
    assert b.table.equals(shaped) and len(b) == 5
    assert b.items == [orjson.dumps(r) for r in shaped.to_pylist()]
    assert b.times_ns.tolist() == list(range(1_000, 1_005))
    assert (b.id_bytes == uuid_bytes(t.column("opportunity_id").to_pylist())).all()
    assert b.types == Counter({"sandwich": 3, "arbitrage": 2})

    # a pump step that took several goes out as one batch, in order, with the first's hand-off time
    b2 = engine_batch(_engine_opportunities(2, t0=2_000), "live")
    ((one, handed),) = joined([(b, 100), (b2, 200)])
    assert handed == 100 and one.items == b.items + b2.items and one.table.num_rows == 7
    assert one.times_ns.tolist() == b.times_ns.tolist() + b2.times_ns.tolist()
    assert one.id_bytes.tolist() == b.id_bytes.tolist() + b2.id_bytes.tolist()
    assert one.types == Counter({"sandwich": 4, "arbitrage": 3})
    assert joined([(b, 100)]) == [(b, 100)]
    odd = engine_batch(_engine_opportunities(1).append_column("x", pa.array([1])), "live")
    assert joined([(b, 100), (odd, 200)]) == [(b, 100), (odd, 200)]      # schemas differ: as they came


def test_the_run_times_a_batch_from_its_hand_off_and_keeps_what_prepare_made(caplog):
    run = BackgroundRun("replay")
    entered = []

    def prepare(table):
        entered.append(time.time_ns())
        time.sleep(0.01)
        return ("made", table.num_rows)

    run.prepare["opportunities"] = prepare
    run.sink("opportunities", _engine_opportunities(3))
    run.sink("tx_features", pa.table({"a": [1]}))
    ((got, handed_ns),) = run.take("opportunities")
    assert got == ("made", 3) and handed_ns <= entered[0]      # the preparation counts in the latency
    assert run.rows("opportunities") == 3 and run.take("tx_features")[0][0].num_rows == 1

    # a table it cannot make ready is kept as it came (the pump makes it ready, or says why)
    bad = pa.table({"type": ["sandwich"]})
    assert preparer("replay")(bad) is bad
    assert "could not be made ready" in caplog.text


def test_a_cpu_the_process_may_not_use_or_a_placement_without_an_engine_is_refused():
    bad = max(os.sched_getaffinity(0)) + 1
    with pytest.raises(ConfigError, match=f"--cpu {bad}: this process may run on CPUs"):
        check_cpu(bad)
    with pytest.raises(ConfigError, match="--cpu .* add --replay or --live"):
        ServeOptions(db="chdb:///x", cpu=min(os.sched_getaffinity(0))).checked()
    with pytest.raises(ConfigError, match="--rt places the engine thread"):
        ServeOptions(db="chdb:///x", rt=True).checked()


def _thread_waiting(started: threading.Event, go_on: threading.Event, tids: list, child: bool = False,
                    hold: threading.Event | None = None):
    def body():
        tids.append(threading.get_native_id())
        if child:               # a thread started by the placed one (the run's sinks, its store writer)
            inner_started, inner_go_on = threading.Event(), threading.Event()
            inner = _thread_waiting(inner_started, inner_go_on, tids)
            go_on.wait(30)
            inner.start()
            inner_started.wait(30)
            started.set()
            if hold is not None:
                hold.wait(30)   # the inner thread lives until the test has looked at it
            inner_go_on.set()
            inner.join(30)
        started.set()
        go_on.wait(30)
    return threading.Thread(target=body, daemon=True)


@TWO_CPUS
def test_the_engine_thread_is_pinned_and_the_other_threads_kept_off_its_cpu():
    cpus = sorted(os.sched_getaffinity(0))
    cpu, me = cpus[-1], threading.get_native_id()
    started, go_on, tids = threading.Event(), threading.Event(), []
    t = _thread_waiting(started, go_on, tids)
    t.start()
    started.wait(30)
    try:
        p = EnginePlacement(cpu, False, 50)
        notes = p.place(tids[0])
        assert notes == [f"engine thread: pin to CPU {cpu}: yes (was {cpus})"]
        assert os.sched_getaffinity(tids[0]) == {cpu}
        assert cpu not in os.sched_getaffinity(me)                 # this (the server's loop) thread moved off
        late = threading.Thread(target=lambda: tids.append(threading.get_native_id()) or go_on.wait(30), daemon=True)
        late.start()
        while len(tids) < 2:
            pass
        p.keep_others_off()                                       # a thread started later (by anyone) moves too
        assert cpu not in os.sched_getaffinity(tids[1])
    finally:
        go_on.set()
        os.sched_setaffinity(me, set(cpus))
        t.join(30)


@pytest.mark.skipif(not hasattr(os, "SCHED_FIFO"), reason="no SCHED_FIFO here")
def test_sched_fifo_is_asked_for_the_engine_thread_and_not_inherited_by_threads_it_starts():
    started, go_on, hold, tids = threading.Event(), threading.Event(), threading.Event(), []
    t = _thread_waiting(started, go_on, tids, child=True, hold=hold)
    t.start()
    try:
        while not tids:
            pass
        g = request_fifo(10, tids[0], reset_on_fork=True)
        if not g.granted:                       # an unprivileged host: the reason, in words that say the fix
            assert "refused" in g.detail and "SCHED_FIFO priority 10" in str(g)
            return
        assert os.sched_getscheduler(tids[0]) & ~getattr(os, "SCHED_RESET_ON_FORK", 0) == os.SCHED_FIFO
        go_on.set()                             # the placed thread now starts one of its own
        started.wait(30)
        while len(tids) < 2:
            pass
        assert os.sched_getscheduler(tids[1]) == os.SCHED_OTHER
    finally:
        go_on.set()
        hold.set()
        t.join(30)


async def _every_row_until_done(url: str) -> list[dict]:
    rows = []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"], "from": 0}))
        await ws.send(json.dumps({"type": "subscribe", "channels": ["stats"]}))
        next_seq = 0
        async with asyncio.timeout(RUN_S):
            while True:
                m = json.loads(await ws.recv())
                if m["type"] == "rows" and m["channel"] == "opportunities":
                    assert m["first_seq"] == next_seq            # contiguous: no hole, no repeat
                    next_seq = m["last_seq"] + 1
                    rows += m["rows"]
                elif m["type"] == "rows" and m["channel"] == "stats" and any(
                        s["run"]["phase"] == "done" for s in m["rows"]):
                    return rows
                else:
                    assert m["type"] in ("subscribed", "rows"), m


@TWO_CPUS
def test_a_placed_engine_thread_streams_every_row_of_its_run_in_order(tmp_path):
    cpu = sorted(os.sched_getaffinity(0))[-1]
    s = Server(tmp_path, "--replay", str(CAPTURE), "--market", str(MARKET), "--cpu", str(cpu), "--rt")
    try:
        rows = asyncio.run(_every_row_until_done(f"ws://127.0.0.1:{s.port}/ws"))
        assert rows == _run_rows(s.out)
        notes = s.get("/v1/stats").json()["run"]["engine_thread"]
        assert notes[0] == f"engine thread: pin to CPU {cpu}: yes (was {sorted(os.sched_getaffinity(0))})"
        assert notes[1].startswith("engine thread: SCHED_FIFO priority ")
    finally:
        s.stop()
