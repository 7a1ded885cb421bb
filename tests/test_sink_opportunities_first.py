"""The sink thread serves opportunities first (sinks.py ``SinkThread`` ``hurry``): it takes every
call queued when it comes back, gives their opportunities at once to the consumer that waits for
them (a server, a live view), and builds the other tables, and the opportunities for the other
consumers, joined, once no call waits. Every consumer must still get every row once, in order, and
the row files must be those of the call-by-call path; a consumer asking ``engine_handed_ns`` gets
when the engine handed the oldest rows of a table on."""

from __future__ import annotations

import bisect
import threading
import time

import pyarrow as pa
import pytest

from test_sink_grouping import _through_sinks, closed_files, engine_calls  # noqa: F401  (the module's fixture)
from workbench.row_files import ParquetSink
from workbench.sinks import SinkThread, engine_handed_ns


class _Recorder:
    """A consumer keeping (name, table, engine_handed_ns(), time.time_ns()) of each table it gets; with
    ``gate``, its first table waits until the gate is set (the sink thread is held meanwhile)."""

    def __init__(self, gate: threading.Event | None = None, fail_on: str | None = None):
        self.got, self.gate, self.fail_on = [], gate, fail_on

    def __call__(self, name, table):
        if self.gate is not None:
            self.gate.wait(30)
            self.gate = None
        if name == self.fail_on:
            raise OSError(f"the page cannot take {name}")
        self.got.append((name, table, engine_handed_ns(), time.time_ns()))

    def tables(self, name):
        return [t for n, t, *_ in self.got if n == name]


def _run(run, calls, out, *, gate=None, hurry_fail=None, depth=None, spaced=False):
    """The calls through a SinkThread with a hurried recorder, another recorder and the row files.
    ``gate`` holds the sink thread at its first table until every call is queued (``depth``: the
    queue's room); ``spaced``: each call waits until the one before it was delivered."""
    out.mkdir()
    parquet = ParquetSink(out, run.names)
    hurry, other = _Recorder(gate, hurry_fail), _Recorder()
    sinks = SinkThread(run.names, [hurry, parquet.write, other], depth=depth or len(calls) + 1,
                       market_names=run.market_names, capture_id=lambda: "capture", hurry=[hurry])
    put_ns, raised, tx_rows = [], [], 0
    for c in calls:
        put_ns.append(time.time_ns())
        try:
            sinks.put(*c)           # (queues the rows, then raises a consumer's error)
        except OSError as e:
            raised.append(e)
        tx_rows += c[0].shape[0]
        deadline = time.monotonic() + 30
        while spaced and sum(t.num_rows for t in other.tables("tx_features")) < tx_rows:
            assert time.monotonic() < deadline, "the sink thread did not deliver a lone call"
            time.sleep(0.001)
    if gate is not None:
        gate.set()
    try:
        sinks.close()
    except OSError as e:
        raised.append(e)
    return sinks, hurry, other, closed_files(run, parquet, out), put_ns, raised


def _same_rows(tables, want):
    got = pa.concat_tables(tables)
    return got.schema == want.schema and repr(got.to_pylist()) == repr(want.to_pylist())   # score: nan


@pytest.mark.parametrize("held", [False, True])
def test_every_consumer_gets_every_row_once_in_order_and_the_files_are_the_same(engine_calls, tmp_path, held):
    run, calls = engine_calls
    seen0, files0, opps0, rows0 = _through_sinks(run, calls, 0, tmp_path / "per-call", 65_536)
    sinks, hurry, other, files, _, raised = _run(run, calls, tmp_path / "hurried",
                                                 gate=threading.Event() if held else None)
    assert not raised
    assert files == files0 and sinks.opps.as_dict() == opps0 and dict(sinks.rows) == rows0
    for rec in (hurry, other):
        for name, tables in seen0.items():
            assert _same_rows(rec.tables(name), pa.concat_tables(tables)), name
    if held:        # every call was queued behind the first: their rows came joined
        assert len(other.tables("tx_features")) < len(calls) / 2
        assert len(hurry.tables("opportunities")) < len(calls) / 2


def test_the_waiting_consumer_gets_opportunities_before_the_transactions_of_their_calls(engine_calls, tmp_path):
    run, calls = engine_calls
    _, hurry, other, *_ = _run(run, calls, tmp_path / "hurried", gate=threading.Event())
    last_tx = -1                # the greatest packet index of the transactions given so far
    opps_tables = 0
    for name, table, *_ in hurry.got:
        if name == "tx_features" and table.num_rows:
            last_tx = max(last_tx, max(table.column("packet_index").to_pylist()))
        elif name == "opportunities" and table.num_rows:
            assert min(table.column("packet_index").to_pylist()) > last_tx
            opps_tables += 1
    assert opps_tables > 0
    # the other consumers got the opportunities joined, after the waiting one
    first_hurried = next(t for n, _, _, t in hurry.got if n == "opportunities")
    first_other = next(t for n, _, _, t in other.got if n == "opportunities")
    assert first_hurried <= first_other


def test_engine_handed_ns_is_when_the_engine_handed_the_oldest_rows_on(engine_calls, tmp_path):
    run, calls = engine_calls
    start = time.time_ns()
    _, hurry, other, _, put_ns, _ = _run(run, calls, tmp_path / "spaced", spaced=True)
    assert engine_handed_ns() is None                       # not on a sink thread
    for rec in (hurry, other):
        assert rec.got
        for name, table, handed, at in rec.got:
            assert start <= handed <= at, name
    # one call at a time (each delivered before the next is put): a table's time lies between its
    # call's put and the next call's, and each call's opportunities come in a table of their own
    hurried = [h for n, _, h, _ in hurry.got if n == "opportunities"]
    calls_of = [bisect.bisect_right(put_ns, h) - 1 for h in hurried]
    assert len(hurried) > 1 and min(calls_of) >= 0
    assert calls_of == sorted(set(calls_of))
    assert calls_of == [i for i, c in enumerate(calls) if c[6] is not None and c[6].shape[0]]


def test_a_waiting_consumer_that_fails_is_raised_and_the_others_get_every_row(engine_calls, tmp_path):
    run, calls = engine_calls
    seen0, files0, opps0, rows0 = _through_sinks(run, calls, 0, tmp_path / "per-call", 65_536)
    sinks, hurry, other, files, _, raised = _run(run, calls, tmp_path / "hurried", hurry_fail="opportunities")
    assert raised and all("cannot take opportunities" in str(e) for e in raised)
    assert hurry in sinks.failed and files == files0
    for name, tables in seen0.items():
        assert _same_rows(other.tables(name), pa.concat_tables(tables)), name
