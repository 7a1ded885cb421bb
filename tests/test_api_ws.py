"""`workbench serve`'s WebSocket as a real process with real clients: with a tiny memory
(--ws-history-items), a client subscribing from 0 after the memory rolled over gets every row
once, in order, from the store and then memory; from a time; a reconnect mid-stream resumes
without a hole or a repeat; after a server restart a time resumes from the store; the
transactions channel delivers the run's tx_features rows, filtered per subscription with the
channel's sequence numbers; every rows frame carries handed_ns; opportunities in Arrow frames
hold the JSON frames' rows."""

from __future__ import annotations

import asyncio
import json
import time

import orjson
import pyarrow as pa
import pytest
import websockets

from test_api_serve import CAPTURE, MARKET, Server, _run_rows
from workbench.engine.tables import read_tx_features
from workbench.wire.keys import program_address

pytestmark = pytest.mark.timeout(600)

HISTORY = 7                     # items the server keeps in memory per channel in these tests


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A finished replay through serve, with a memory of HISTORY items per channel."""
    tmp = tmp_path_factory.mktemp("serve_ws")
    s = Server(tmp, "--replay", str(CAPTURE), "--market", str(MARKET), "--ws-history-items", str(HISTORY))
    s.tmp = tmp
    try:
        s.wait_done()
        yield s
    finally:
        s.stop()


async def _read(ws, until, budget_s: float = 120) -> list[dict]:
    """Messages until ``until(messages)`` holds."""
    got = []
    async with asyncio.timeout(budget_s):
        while not until(got):
            got.append(json.loads(await ws.recv()))
    return got


def _rows_of(msgs, kind="rows") -> list[dict]:
    return [r for m in msgs if m["type"] == kind for r in m["rows"]]


def _contiguous(msgs, start: int) -> int:
    """The rows frames cover start.. without a hole or a repeat; returns the next sequence."""
    seq = start
    for m in msgs:
        if m["type"] == "rows":
            assert m["first_seq"] == seq and m["last_seq"] == seq + len(m["rows"]) - 1, (m["first_seq"], seq)
            assert isinstance(m["handed_ns"], int) and 0 < m["handed_ns"] <= time.time_ns()
            seq = m["last_seq"] + 1
    return seq


def _url(s) -> str:
    return f"ws://127.0.0.1:{s.port}/ws"


def test_from_zero_after_memory_rolled_over_comes_from_the_store_then_memory(done):
    expected = _run_rows(done.out)
    n = len(expected)
    assert n > 10 * HISTORY

    async def go():
        async with websockets.connect(_url(done), max_size=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"], "from": 0}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert ack["type"] == "subscribed" and ack["next_seq"]["opportunities"] == n
            return await _read(ws, lambda got: len(_rows_of(got)) >= n or any(m["type"] == "gap" for m in got))

    msgs = asyncio.run(go())
    assert [m["type"] for m in msgs if m["type"] != "rows"] == []          # no gap: the store had every row
    assert _contiguous(msgs, 0) == n
    assert _rows_of(msgs) == expected                                     # every row once, in order


def _arrow_frames(msgs: list) -> tuple[list[dict], list[dict]]:
    """(headers, rows) of Arrow messages, as JSON would give the rows."""
    heads, rows = [], []
    for m in msgs:
        t = pa.ipc.open_stream(m).read_all()
        heads.append(orjson.loads(t.schema.metadata[b"frame"]))
        rows += [orjson.loads(orjson.dumps(r)) for r in t.to_pylist()]
    return heads, rows


def test_opportunities_in_arrow_frames_hold_the_json_rows_from_the_store_and_memory(done):
    """From 0 after memory rolled over: the store's part and memory's, each row once, in order, as Arrow
    frames whose headers carry the JSON frames' sequence numbers and hand-off times."""
    expected = _run_rows(done.out)

    async def go():
        async with websockets.connect(_url(done), max_size=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"], "from": 0, "format": "arrow"}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert ack["type"] == "subscribed"
            msgs, n = [], 0
            async with asyncio.timeout(120):
                while n < len(expected):
                    m = await ws.recv()
                    assert isinstance(m, bytes), m[:200]        # a gap or an error would be text
                    msgs.append(m)
                    n += pa.ipc.open_stream(m).read_all().num_rows
            return msgs

    heads, rows = _arrow_frames(asyncio.run(go()))
    assert rows == expected
    seq = 0
    for h in heads:
        assert h["type"] == "rows" and h["channel"] == "opportunities" and h["first_seq"] == seq
        assert isinstance(h["handed_ns"], int) and 0 < h["handed_ns"] <= time.time_ns()
        seq = h["last_seq"] + 1
    assert seq == len(expected)


def test_from_a_time_starts_at_the_first_item_numbered_at_or_after_it(done):
    expected = _run_rows(done.out)
    k = len(expected) // 3
    t = expected[k]["timestamp_ns"]
    first = next(i for i, r in enumerate(expected) if r["timestamp_ns"] >= t)
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 10**9)) + f".{(t % 10**9) // 1000:06d}Z"
    t_us = t // 1000 * 1000
    first_us = next(i for i, r in enumerate(expected) if r["timestamp_ns"] >= t_us)

    async def go(start):
        async with websockets.connect(_url(done), max_size=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"], "from": start}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
            want = len(expected) - ack["first_seq"]["opportunities"]
            return ack, await _read(ws, lambda got: len(_rows_of(got)) >= want)

    ack, msgs = asyncio.run(go({"time_ns": t}))
    assert ack["first_seq"]["opportunities"] == first
    assert _contiguous(msgs, first) == len(expected) and _rows_of(msgs) == expected[first:]
    ack, msgs = asyncio.run(go(iso))                                      # ISO-8601: microseconds
    assert ack["first_seq"]["opportunities"] == first_us and _rows_of(msgs) == expected[first_us:]


def test_a_reconnect_mid_stream_resumes_without_a_hole_or_a_repeat(done):
    expected = _run_rows(done.out)

    async def go():
        async with websockets.connect(_url(done), max_size=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"], "from": 0}))
            await asyncio.wait_for(ws.recv(), 30)
            head = await _read(ws, lambda got: len(_rows_of(got)) >= 20)
        nxt = _contiguous(head, 0)
        async with websockets.connect(_url(done), max_size=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"], "from": nxt}))
            await asyncio.wait_for(ws.recv(), 30)
            tail = await _read(ws, lambda got: nxt + len(_rows_of(got)) >= len(expected))
        assert _contiguous(tail, nxt) == len(expected)
        return _rows_of(head) + _rows_of(tail)

    assert asyncio.run(go()) == expected


def test_the_transactions_channel_filters_per_subscription_with_the_channels_seqs(done):
    txs = read_tx_features(done.out / "tx_features.parquet")       # as the channel sends them: base58
    rows = [orjson.loads(orjson.dumps(r)) for r in txs.to_pylist()]
    ray = program_address("raydium_amm_v4")
    fees = sorted(r["priority_fee_lamports"] for r in rows)
    min_fee = fees[len(fees) // 2]
    want = [i for i, r in enumerate(rows) if ray in r["programs"] and r["priority_fee_lamports"] >= min_fee]
    assert 0 < len(want) < len(rows)

    async def go():
        async with websockets.connect(_url(done), max_size=None) as ws:
            for bad, field in (({"program": "nope"}, "filter.program"), ({"min_fee": -3}, "filter.min_fee"),
                               ({"program": "I" * 44}, "filter.program")):
                await ws.send(json.dumps({"type": "subscribe", "channels": ["transactions"], "filter": bad}))
                err = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert err["type"] == "error" and err["field"] == field and field.split(".")[1] in err["message"]
            # memory of HISTORY items does not apply here: the channel keeps its own, larger one
            await ws.send(json.dumps({"type": "subscribe", "channels": ["transactions"], "from": 0,
                                      "filter": {"program": "raydium_amm_v4", "min_fee": min_fee}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "subscribed"
            filtered = await _read(ws, lambda got: sum(len(m.get("rows", [])) for m in got) >= len(want))
        async with websockets.connect(_url(done), max_size=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": ["transactions"], "from": 0}))
            await asyncio.wait_for(ws.recv(), 30)
            whole = await _read(ws, lambda got: len(_rows_of(got)) >= len(rows))
        async with websockets.connect(_url(done), max_size=None) as ws:        # the binary option
            await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities", "stats"], "format": "arrow"}))
            err = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert err["type"] == "error" and err["field"] == "format" and "opportunities and transactions" in err["message"]
            await ws.send(json.dumps({"type": "subscribe", "channels": ["transactions"], "from": 0, "format": "arrow",
                                      "filter": {"program": ray, "min_fee": min_fee}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "subscribed"
            tables = []
            async with asyncio.timeout(60):
                while sum(t.num_rows for t in tables) < len(want):
                    tables.append(pa.ipc.open_stream(await ws.recv()).read_all())
        return filtered, whole, tables

    filtered, whole, tables = asyncio.run(go())
    assert [s for t in tables for s in orjson.loads(t.schema.metadata[b"frame"])["seqs"]] == want
    assert [orjson.loads(orjson.dumps(r)) for t in tables for r in t.to_pylist()] == [rows[i] for i in want]
    assert all(m["type"] == "rows" for m in filtered)
    assert [s for m in filtered for s in m["seqs"]] == want
    assert _rows_of(filtered) == [rows[i] for i in want]
    assert all(m["first_seq"] == m["seqs"][0] and m["last_seq"] == m["seqs"][-1] for m in filtered)
    assert _contiguous(whole, 0) == len(rows) and _rows_of(whole) == rows


def test_after_a_restart_numbering_starts_over_and_a_time_resumes_from_the_store(done):
    """Last in this file: it stops the module's server to start another on the same store."""
    expected = _run_rows(done.out)
    t = expected[len(expected) // 2]["timestamp_ns"]
    want = sorted((r["timestamp_ns"], r["opportunity_id"]) for r in expected if r["timestamp_ns"] >= t)
    done.stop()                                  # the store is embedded: one process at a time
    again = Server(done.tmp)                     # the same store folder, no run
    try:
        async def go():
            async with websockets.connect(_url(again), max_size=None) as ws:
                await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"], "from": 0}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 30))["next_seq"]["opportunities"] == 0
                await ws.send(json.dumps({"type": "unsubscribe", "channels": ["opportunities"]}))
                await asyncio.wait_for(ws.recv(), 30)
                await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"], "from": {"time_ns": t}}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "subscribed"
                stored = await _read(ws, lambda got: len(_rows_of(got, "stored")) >= len(want))
            async with websockets.connect(_url(again), max_size=None) as ws:     # the same in Arrow frames
                await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"],
                                          "from": {"time_ns": t}, "format": "arrow"}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "subscribed"
                arrow, n = [], 0
                async with asyncio.timeout(120):
                    while n < len(want):
                        arrow.append(await ws.recv())
                        n += pa.ipc.open_stream(arrow[-1]).read_all().num_rows
            return stored, arrow

        msgs, arrow = asyncio.run(go())
        got = [(r["timestamp_ns"], r["opportunity_id"]) for r in _rows_of(msgs, "stored")]
        assert got == want                       # in the store's (time, id) order, each once
        heads, rows = _arrow_frames(arrow)
        assert all(h == {"type": "stored", "channel": "opportunities"} for h in heads)
        assert rows == _rows_of(msgs, "stored")
    finally:
        again.stop()
