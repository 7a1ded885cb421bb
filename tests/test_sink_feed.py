"""The sink thread's ``on_opportunities`` (a server's EngineRun ``opportunity_feed``): each call's
opportunity records reach it on the thread that puts the call, copied, with the call's hand-off
time, before the queue can hold that thread back; the consumers and the row files get what they
get without it; the rows the thread then holds (while no call is queued as well) go on once held
``BULK_NS``, with no further call."""

from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from test_sink_grouping import _through_sinks, closed_files, engine_calls  # noqa: F401  (the module's fixture)
from test_sink_opportunities_first import _Recorder, _same_rows
from workbench.row_files import ParquetSink
from workbench.sinks import BULK_NS, SinkThread

pytestmark = pytest.mark.timeout(300)


class _Feed:
    """Keeps what ``on_opportunities`` is given, and the time.time_ns() it was given."""

    def __init__(self):
        self.got = []

    def __call__(self, recs, handed_ns):
        self.got.append((recs, handed_ns, time.time_ns()))


def _fields(recs: np.ndarray) -> list[bytes]:
    """The records' values, field by field (a copy need not keep the padding between fields)."""
    return [np.ascontiguousarray(recs[f]).tobytes() for f in recs.dtype.names]


def _fed_sinks(run, consumers, depth=4):
    sinks = SinkThread(run.names, consumers, depth=depth, market_names=run.market_names,
                       capture_id=lambda: "capture")
    sinks.on_opportunities = feed = _Feed()
    return sinks, feed


class _Held:
    """A consumer that holds the sink thread at its first table until ``gate`` is set."""

    def __init__(self):
        self.entered, self.gate = threading.Event(), threading.Event()

    def __call__(self, _name, _table):
        self.entered.set()
        self.gate.wait(30)


def test_the_feed_gets_each_calls_records_before_a_full_queue_holds_the_caller(engine_calls):
    run, calls = engine_calls
    with_opps = [c for c in calls if c[6] is not None and c[6].shape[0]][:5]
    held = _Held()
    sinks, feed = _fed_sinks(run, [held], depth=1)
    sinks.put(*with_opps[0])
    assert held.entered.wait(30), "the sink thread never delivered the first call's rows"
    putter = threading.Thread(target=lambda: [sinks.put(*c) for c in with_opps[1:]])
    putter.start()
    deadline = time.monotonic() + 30
    # the thread is held and the queue's one place taken by the second call: the third call's put waits
    # for room, yet the feed has its records already
    while len(feed.got) < 3:
        assert time.monotonic() < deadline, f"the feed got {len(feed.got)} calls while the sink thread was held"
        time.sleep(0.005)
    time.sleep(0.05)
    assert putter.is_alive() and len(feed.got) == 3
    held.gate.set()
    putter.join(30)
    sinks.close()
    assert len(feed.got) == len(with_opps)
    for (recs, handed, at), c in zip(feed.got, with_opps):
        assert _fields(recs) == _fields(c[6]) and not np.shares_memory(recs, c[6])
        assert handed <= at


def test_with_a_feed_every_consumer_gets_every_row_once_and_the_files_are_the_same(engine_calls, tmp_path):
    run, calls = engine_calls
    seen0, files0, opps0, rows0 = _through_sinks(run, calls, 0, tmp_path / "plain", 65_536)
    out = tmp_path / "fed"
    out.mkdir()
    parquet, other = ParquetSink(out, run.names), _Recorder()
    sinks, feed = _fed_sinks(run, [parquet.write, other])
    for c in calls:
        sinks.put(*c)
    sinks.close()
    assert closed_files(run, parquet, out) == files0
    assert sinks.opps.as_dict() == opps0 and dict(sinks.rows) == rows0
    for name, tables in seen0.items():
        assert _same_rows(other.tables(name), pa.concat_tables(tables)), name
    fed = np.concatenate([r for r, _, _ in feed.got])
    assert _fields(fed) == _fields(np.concatenate([c[6] for c in calls if c[6] is not None]))


def test_held_rows_go_on_once_held_bulk_ns_with_no_further_call(engine_calls):
    run, calls = engine_calls
    other = _Recorder()
    sinks, _ = _fed_sinks(run, [other])
    put_ns = time.time_ns()
    sinks.put(*calls[0])
    deadline = time.monotonic() + 30
    while not other.tables("tx_features"):
        assert time.monotonic() < deadline, "the held rows never went on"
        time.sleep(0.005)
    (name, table, handed, at), *_ = [g for g in other.got if g[0] == "tx_features"]
    assert table.num_rows == calls[0][0].shape[0] and handed >= put_ns
    assert at - handed >= BULK_NS                       # held until then, with nothing queued
    sinks.close()
