"""Sinks run beside the engine: a thread turns engine rows into Arrow tables and hands them to the
row files (row_files.py), the store and a server or view.

The engine thread only runs ``process_batch`` (nogil) and hands over its output arrays (a
replay's rotate: runner/engine_run.py; live mode's are copied in ``put``); this thread copies
the rows in, builds the Arrow tables and hands them on; a Parquet-only run writes them on a
second thread. On a 2-core machine the two overlap, so a replay runs at the speed of the slower
of the two rather than their sum. The queue is bounded: a slow sink slows the engine
(backpressure) instead of growing memory. An exception in the thread is re-raised in the
engine thread at the next ``put`` or at ``close``.

Opportunities go first. A paced replay or a live run hands on many small calls, each of whose
tables cost a fixed share per column and per consumer; built call by call, in the order
transactions, packets, swaps, opportunities, they kept a server's opportunities waiting behind
the transactions of their own call and of every call queued before it. A server now takes each
call's opportunity records as they are put (``SinkThread.on_opportunities``), before the queue,
and this thread builds every table for the others in few, large rounds; a live view still gets
the opportunities first from this thread (``hurry``). README: *Opportunities first* and *The
engine's opportunities straight to the server*; benchmarks/bench_ws.py ``--speed``.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from typing import Callable

import numpy as np
import pyarrow as pa

from .arrow_columns import column, numbers
from .engine.tables import KeyNames, MarketNames, opp_table, status_table, swap_table, tx_table

_STOP = object()
DRAIN_CALLS = 64        # engine calls the sink thread takes together at most (those queued when it comes back)
# the rows held back (while more calls wait, or in a server's run: SinkThread) go on once held this long,
# or once this many
BULK_NS = 50_000_000
BULK_ROWS = 65_536
_delivering = threading.local()     # .ns: the hand-off time of the table a sink thread's consumers get now


def engine_handed_ns() -> int | None:
    """Called by a consumer on a SinkThread's thread: when the engine handed on the oldest rows of the
    table it is being given (``time.time_ns()``, taken in ``put``); None on any other thread."""
    return getattr(_delivering, "ns", None)

class OppSummary:
    """Opportunities by type, total expected profit and the top ten, gathered as rows pass."""

    TOP = 10

    def __init__(self):
        self.by_type: dict[str, int] = {}
        self.profit_sol: dict[str, float] = {}
        self.top: list[dict] = []

    def add(self, t: pa.Table) -> None:
        if t.num_rows == 0:
            return
        types = t.column("type").to_pylist()
        profit = numbers(t.column("expected_profit_sol"))
        for k, p in zip(types, profit):
            self.by_type[k] = self.by_type.get(k, 0) + 1
            self.profit_sol[k] = self.profit_sol.get(k, 0.0) + float(p)
        best = np.argsort(-profit, kind="stable")[:self.TOP]
        cols = ("opportunity_id", "type", "ts_ns", "packet_index", "pools", "amount_in", "profit_quote",
                "expected_profit_sol", "victim_signature")
        sub = t.take(column(best)).select(list(cols)).to_pylist()
        self.top = sorted(self.top + sub, key=lambda r: (-r["expected_profit_sol"], r["ts_ns"]))[:self.TOP]

    def as_dict(self) -> dict:
        return {"count": sum(self.by_type.values()), "by_type": dict(sorted(self.by_type.items())),
                "expected_profit_sol": round(sum(self.profit_sol.values()), 9),
                "expected_profit_sol_by_type": {k: round(v, 9) for k, v in sorted(self.profit_sol.items())},
                "top": self.top}


def _raw(a: np.ndarray) -> np.ndarray:
    """A contiguous record array as plain bytes per row (numpy copies a record dtype field by field)."""
    return a.view(np.dtype((np.void, a.dtype.itemsize))) if a.dtype.names is not None else a


class _Gathered:
    """Engine rows of one table gathered across calls (each call a tuple of equally long arrays)
    into arrays of this thread's own, copied in once and grown as needed, until they fill whole
    row groups: ``take`` returns views of the rows of every full group (all rows when ``final``)
    and keeps the rest. The views stay valid until the next ``add``: the tables built from them
    must copy what they keep (engine/tables.py builders do)."""

    def __init__(self, group_rows: int):
        self.g = group_rows
        self.bufs: tuple | None = None
        self.n = 0                   # rows kept
        self._taken = 0              # rows at the front given out by the last take (dropped at the next add)
        # when the engine handed on the calls of the rows kept (time.time_ns()): (first row, time) of
        # each call, oldest first; ``handed_ns`` is the oldest's
        self._handed: collections.deque = collections.deque()
        self._dropped = 0            # rows taken since the first row of ``_handed``'s counting

    def note(self, handed_ns: int, k: int) -> None:
        """The last ``k`` rows added came from a call the engine handed on at ``handed_ns``."""
        if k:
            self._handed.append((self._dropped + self.n - k, handed_ns))

    @property
    def handed_ns(self) -> int:
        """When the engine handed on the oldest row kept (0 when none is)."""
        return self._handed[0][1] if self._handed else 0

    def _compact(self) -> None:
        if self._taken:
            for b in self.bufs:
                _raw(b)[:self.n] = _raw(b)[self._taken:self._taken + self.n]   # (overlapping ranges are safe)
            self._taken = 0

    def add(self, *cols: np.ndarray) -> None:
        k = cols[0].shape[0]
        if not k:
            return
        self._compact()
        need = self.n + k
        if self.bufs is None or need > self.bufs[0].shape[0]:
            cap = max(need, 2 * self.n, self.g + k)
            grown = tuple(np.empty((cap,) + c.shape[1:], c.dtype) for c in cols)
            if self.bufs is not None:
                for g, b in zip(grown, self.bufs):
                    _raw(g)[:self.n] = _raw(b)[:self.n]
            self.bufs = grown
        for b, c in zip(self.bufs, cols):
            _raw(b)[self.n:need] = _raw(np.ascontiguousarray(c))
        self.n = need

    def ready(self, final: bool) -> bool:
        return self.n > 0 and (final or self.n >= self.g)

    def take(self, final: bool) -> tuple:
        return self.take_n(self.n if final else self.n // self.g * self.g)

    def take_n(self, cut: int) -> tuple:
        self._compact()
        self._taken, self.n = cut, self.n - cut
        self._dropped += cut
        # calls whose rows were all taken: the next call's first row is at or before the first row kept
        h = self._handed
        while len(h) > 1 and h[1][0] <= self._dropped:
            h.popleft()
        if not self.n:
            h.clear()
        return tuple(b[:cut] for b in self.bufs)


class _GatheredTx(_Gathered):
    """Transaction rows with their program-id rows: each row's ``_prog_first`` is rebased onto
    the program rows kept here (trimmed at each ``take``)."""

    def __init__(self, group_rows: int):
        super().__init__(group_rows)
        self.progs = _Gathered(0)

    def add_tx(self, tx: np.ndarray, prog_ids: np.ndarray) -> None:
        if not tx.shape[0]:
            return
        base = self.progs.n
        if prog_ids.shape[0]:
            self.progs.add(prog_ids)
        self.add(tx)
        self.bufs[0]["_prog_first"][self.n - tx.shape[0]:self.n] += base

    def take_tx(self, final: bool) -> tuple[np.ndarray, np.ndarray]:
        (tx,) = self.take(final)
        rest = self.bufs[0][self._taken:self._taken + self.n]
        with_progs = rest["_prog_first"][rest["num_programs"] > 0]
        keep = int(with_progs[0]) if with_progs.shape[0] else self.progs.n
        rest["_prog_first"] -= keep
        # the rows taken use program rows [0, keep) only (a transaction's program rows follow the last one's)
        progs = self.progs.take_n(keep)[0] if self.progs.bufs is not None else np.zeros(0, np.int32)
        return tx, progs


def _copies(tx, prog_ids, status, first_index, ts_ns, swaps, opps) -> tuple:
    """One call's rows as the sink thread's own arrays (no swaps or opportunities: None)."""
    return (tx.copy(), prog_ids.copy(), status.copy(), first_index, ts_ns.copy(),
            None if swaps is None or not swaps.shape[0] else swaps.copy(),
            None if opps is None or not opps.shape[0] else opps.copy())


class SinkThread:
    """Builds Arrow tables from copied engine rows and passes them to ``consumers``.

    ``market_names`` (engine/tables.py MarketNames) names pools and tokens of the swap and
    opportunity rows; ``capture_id`` (a callable, called once at the first opportunity)
    seeds their deterministic UUIDs. ``group_rows`` > 0 (for a Parquet-only run, whose files
    take whole row groups of that many rows anyway): rows are gathered as engine rows and
    built into Arrow once per whole row groups, not per call, so that the Parquet writer gets
    tables it writes without joining and copying them. A consumer with a ``flush`` method (one
    that holds tables back, runner/store_gather.py) has it called after the last rows.

    Each time the thread comes back it takes every call queued (up to ``DRAIN_CALLS``). The
    opportunities among them go first, as one table, to the consumers in ``hurry`` (one of
    ``consumers``: a server or a live view, which waits for them). The other rows, and the
    opportunities for the other consumers (row files, the store), follow when no call waits,
    joined, or once held ``BULK_NS`` or ``BULK_ROWS``: each table costs a fixed share per column
    and per consumer, so a thread behind the engine builds few large ones and is back sooner.
    A consumer that asks ``engine_handed_ns()`` learns when the engine handed on a table's oldest
    rows, so the time they waited here counts in a latency it measures.

    ``on_opportunities`` (set by a server's run, runner/engine_run.py ``opportunity_feed``) gets a
    copy of each call's opportunity records and the call's hand-off time in ``put``, on the caller's
    thread, before a full queue can hold it. Nobody then waits for this thread's tables, so it holds
    every row, queue empty or not, until held ``BULK_NS`` or ``BULK_ROWS``: fewer rounds, each with
    its fixed costs, on a machine whose cores the server's event loop needs.
    """

    def __init__(self, key_names: KeyNames, consumers: list[Callable[[str, pa.Table], None]], depth: int = 4,
                 market_names: MarketNames | None = None, capture_id: Callable[[], str] | None = None,
                 group_rows: int = 0, hurry: list[Callable[[str, pa.Table], None]] = ()):
        self.group_rows = group_rows
        self.hurry = list(hurry)
        # called on the engine's thread with a copy of each call's opportunity records and their hand-off
        # time (EngineRun ``opportunity_feed``: a server, which must not wait for this thread); never blocks
        self.on_opportunities: Callable[[np.ndarray, int], None] | None = None
        self._broken = False        # building tables failed: nothing more can be built
        self._opps_later: list[pa.Table] = []    # opportunities given to ``hurry``, not yet to the others
        self._opps_later_ns = 0
        self._tx = _GatheredTx(group_rows)
        self._status = _Gathered(group_rows)
        self._status_first = self._status_next = 0
        self._swaps = _Gathered(group_rows)
        self._opps = _Gathered(group_rows)
        # grouped: a second thread calls the consumers (Parquet encodes and compresses without the
        # GIL), so that building the next tables and writing the last ones overlap
        self._wq: queue.Queue | None = queue.Queue(maxsize=2) if group_rows else None
        self._wt = (threading.Thread(target=self._write_run, name="workbench-sinks-write", daemon=True)
                    if group_rows else None)
        if self._wt is not None:
            self._wt.start()
        self.names = key_names
        self.market_names = market_names
        self._capture_id_fn = capture_id
        self._capture_id: str | None = None
        self.consumers = consumers
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.failed: list[Callable[[str, pa.Table], None]] = []   # consumers that raised: they get no more rows
        self.rows = {"tx_features": 0, "packet_status": 0, "swaps": 0, "opportunities": 0}
        self.opps = OppSummary()
        self.t = threading.Thread(target=self._run, name="workbench-sinks", daemon=True)
        self.t.start()

    def put(self, tx: np.ndarray, prog_ids: np.ndarray, status: np.ndarray, first_index: int, ts_ns: np.ndarray,
            swaps: np.ndarray | None = None, opps: np.ndarray | None = None,
            release: Callable[[], None] | None = None):
        """Hand over one call's rows. Without ``release`` they are copied here (the caller reuses its
        buffers at once); with it the arrays themselves travel, the sink thread copies them (off the
        engine's thread) and calls ``release()`` once it no longer reads them. With no consumer only
        the opportunities travel (the run's opportunity summary needs them). A consumer's error is
        raised AFTER the rows are queued: rows the engine made are never left out."""
        handed_ns = time.time_ns()
        if self.on_opportunities is not None and opps is not None and opps.shape[0]:
            self.on_opportunities(opps.copy(), handed_ns)       # before a full queue can hold the engine
        if not self.consumers:
            if opps is not None and opps.shape[0]:
                self.q.put(((None, None, None, first_index, None, None, opps.copy()), None, handed_ns))
            if release is not None:
                release()
        elif release is not None:
            self.q.put(((tx, prog_ids, status, first_index, ts_ns, swaps, opps), release, handed_ns))
        else:
            self.q.put((_copies(tx, prog_ids, status, first_index, ts_ns, swaps, opps), None, handed_ns))
        self._raise()

    def capture_id(self) -> str:
        if self._capture_id is None:
            self._capture_id = self._capture_id_fn() if self._capture_id_fn is not None else ""
        return self._capture_id

    def _run(self):
        while True:
            items = self._queued()
            stop = bool(items) and items[-1] is _STOP
            if stop:
                items.pop()
            for rows, release, handed_ns in items:
                try:
                    if not self._broken:
                        self._gather(handed_ns, *rows)          # copies the rows in
                except BaseException as e:    # noqa: BLE001 - re-raised in the engine thread
                    self.error, self._broken = self.error or e, True
                finally:
                    if release is not None:
                        release()
            if not self._broken:
                # a Parquet-only run builds whole row groups; any other builds what it took, at once
                final = stop or not self.group_rows
                try:
                    # the opportunities go on before the other tables are built: they are few, a
                    # searcher waits for them, and the transactions of the same calls cost far more
                    opps = self._opportunity_tables(final) if self.hurry else []
                    if opps:
                        self._consume([(*t, self.hurry) for t in opps])
                        self._opps_later += [t for _, t, _ in opps]
                        self._opps_later_ns = self._opps_later_ns or opps[0][2]
                    if (self.group_rows or stop or not items or self._bulk_due()
                            or self.q.empty() and self.on_opportunities is None):
                        self._deliver(self._later() + self._opportunity_tables(final) + self._row_tables(final))
                except BaseException as e:    # noqa: BLE001 - re-raised in the engine thread
                    self.error, self._broken = self.error or e, True
            if stop:
                if self._wq is not None:
                    self._wq.put(_STOP)
                    self._wt.join()
                else:
                    self._flush_consumers()
                return

    def _give_way(self) -> None:
        """Between two tables, with a server's run (``on_opportunities``): give the GIL up, so that
        the server's event loop, if it waits for it, goes first rather than after this thread's
        next stretch of Python (a round builds and hands on 50 ms of rows)."""
        if self.on_opportunities is not None:
            time.sleep(0)

    def _held_for(self) -> float | None:
        """How long the thread may wait for the next call before the rows it holds must go (s);
        None when it holds none, or holds rows only while calls are queued."""
        if self.on_opportunities is None or self.group_rows or self._broken:
            return None
        held = self._held()
        return max(0.0, (min(held) + BULK_NS - time.time_ns()) / 1e9) if held else None

    def _held(self) -> list[int]:
        return [g.handed_ns for g in (self._tx, self._status, self._swaps, self._opps) if g.n] + \
            ([self._opps_later_ns] if self._opps_later else [])

    def _bulk_due(self) -> bool:
        """Whether the rows held back have waited long enough, or are many."""
        held = self._held()
        return bool(held) and (time.time_ns() - min(held) >= BULK_NS or self._tx.n + self._status.n >= BULK_ROWS)

    def _later(self) -> list[tuple[str, pa.Table, int, list | None]]:
        """The opportunities ``hurry`` had, joined, for the other consumers (the summary, the counts)."""
        if not self._opps_later:
            return []
        t, handed = pa.concat_tables(self._opps_later), self._opps_later_ns
        self._opps_later, self._opps_later_ns = [], 0
        return [("opportunities", t, handed, [c for c in self.consumers if c not in self.hurry])]

    def _queued(self) -> list:
        """The next call's rows (waiting for them), and every call queued behind them, up to
        ``DRAIN_CALLS``; ``_STOP`` comes last when it was queued. Nothing, when rows are held
        (``_held_for``) and their time came first."""
        wait = self._held_for()
        try:
            items = [self.q.get(timeout=wait) if wait is not None else self.q.get()]
        except queue.Empty:             # rows held (``on_opportunities``) whose time is up, and no call came
            return []
        while items[-1] is not _STOP and len(items) < DRAIN_CALLS:
            try:
                items.append(self.q.get_nowait())
            except queue.Empty:
                break
        return items

    def _deliver(self, tables: list[tuple]) -> None:
        """Count ``tables`` ((name, table, handed_ns[, its consumers when not all]) each) and pass
        them on."""
        for name, table, *_ in tables:
            if name == "opportunities":
                self.opps.add(table)
            self.rows[name] += table.num_rows
        if self._wq is not None:
            if tables:
                self._wq.put(tables)
        else:
            self._consume(tables)

    def _consume(self, tables: list[tuple]) -> None:
        """Each table to its own consumers when it names them, else to every consumer."""
        try:
            for name, table, handed_ns, *only in tables:
                _delivering.ns = handed_ns
                for c in list(only[0] if only else self.consumers):
                    if c in self.consumers:             # (not one that failed)
                        self._call(c, c, name, table)
                        self._give_way()
        finally:
            _delivering.ns = None

    def _flush_consumers(self) -> None:
        """After the last rows: consumers that hold rows back (a ``flush`` method) hand them on."""
        for c in list(self.consumers):
            if hasattr(c, "flush"):
                self._call(c, c.flush)

    def _call(self, c, fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as e:    # noqa: BLE001 - re-raised in the engine thread
            # a failed consumer (the store writer) gets no more rows; the others (the Parquet
            # files) go on getting every row, so the row files stay complete and agree
            self.consumers.remove(c)
            self.failed.append(c)
            self.error = self.error or e

    def _write_run(self) -> None:
        while True:
            tables = self._wq.get()
            if tables is _STOP:
                self._flush_consumers()
                return
            self._consume(tables)

    def _gather(self, handed_ns: int, tx, prog_ids, status, first, ts, swaps, opps) -> None:
        if tx is not None:
            self._tx.add_tx(tx, prog_ids)
            self._tx.note(handed_ns, tx.shape[0])
            if status.shape[0]:
                if self._status.n and first != self._status_next:
                    # not the packets that follow: the gathered ones are built on their own
                    handed = self._status.handed_ns
                    self._deliver([("packet_status", status_table(*self._status_rows(True)), handed)])
                if not self._status.n:
                    self._status_first = first
                self._status.add(status, ts)
                self._status.note(handed_ns, status.shape[0])
                self._status_next = first + status.shape[0]
        if self.market_names is not None:
            if swaps is not None:
                self._swaps.add(swaps)
                self._swaps.note(handed_ns, swaps.shape[0])
            if opps is not None:
                self._opps.add(opps)
                self._opps.note(handed_ns, opps.shape[0])

    def _status_rows(self, final: bool) -> tuple[np.ndarray, int, np.ndarray]:
        first = self._status_first
        status, ts = self._status.take(final)
        self._status_first = first + status.shape[0]
        return status, first, ts

    def _opportunity_tables(self, final: bool) -> list[tuple[str, pa.Table, int]]:
        """The gathered opportunities as a table (with when the engine handed on the oldest of them),
        when they fill whole row groups (or all of them, when ``final``)."""
        if not self._opps.ready(final):
            return []
        handed = self._opps.handed_ns
        return [("opportunities", opp_table(self._opps.take(final)[0].copy(), self.market_names, self.capture_id()),
                 handed)]

    def _row_tables(self, final: bool) -> list[tuple[str, pa.Table, int]]:
        """The other gathered rows' tables, as ``_opportunity_tables``."""
        tables = []
        if self._tx.ready(final):
            handed = self._tx.handed_ns
            tables.append(("tx_features", tx_table(*self._tx.take_tx(final), self.names), handed))
            self._give_way()
        if self._status.ready(final):
            handed = self._status.handed_ns
            tables.append(("packet_status", status_table(*self._status_rows(final)), handed))
        if self._swaps.ready(final):
            handed = self._swaps.handed_ns
            tables.append(("swaps", swap_table(self._swaps.take(final)[0], self.market_names), handed))
        return tables

    def _raise(self):
        if self.error is not None:
            e, self.error = self.error, None
            raise e

    def close(self) -> None:
        self.q.put(_STOP)
        self.t.join()
        self._raise()
