"""One run of the engine and its sinks: what replay and live mode share.

The engine state, the reusable output rows and the sinks (Parquet, the optional
ClickHouse store, an optional extra ``sink`` callable) behind one SinkThread; the
warm-up that compiles or loads every kernel before a run's clock starts; the store's
first and last ``runs`` rows and its latency histograms.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import time
import uuid
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from ..capture.frames import FrameBatch, empty_columns
from ..capture.pace import Pacer
from ..config import Settings
from ..errors import ConfigError
from ..engine.market.counters import DETECT_COUNTER_NAMES
from ..engine.pipeline import N_OPPS, N_SWAPS, new_batch_out, process_batch
from ..engine.precompile import (compile_engine, discard_early_workers, engine_cached, first_run_lock,
                                 say_if_first_run, say_stderr)
from ..engine.state import (C_PACKETS, C_TRANSACTIONS, C_TS_FIRST, C_TS_LAST, HIST_DETECT_NS, HIST_NAMES,
                            HIST_PACKET_NS, HIST_SCORE_NS, EngineState)
from ..engine.tables import (KeyNames, MarketNames, empty_opp_table, empty_swap_table, empty_tx_table,
                             readable_tx_table, status_table, tx_table)
from ..store.columns import mev_opportunities_table, swaps_table
from ..metrics.hist import Histogram
from ..row_files import ParquetSink
from ..sinks import SinkThread
from .from_settings import deshred_state, engine_state, market_for, model_for
from .results import hist_summary
from .steady_call import SteadyCall
from .store_gather import StoreGather
from .stop import FAILED


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


FINGERPRINT_SPAN_SZ = 1 << 20      # bytes hashed at each end of a capture for its fingerprint


def capture_fingerprint(path) -> str:
    """The id that seeds a replay's opportunity ids: sha256 of the capture's size, its first and
    its last FINGERPRINT_SPAN_SZ bytes (hex). Reading all of a multi-gigabyte capture again
    (its full sha256) costs a sizeable share of a whole replay's CPU; a capture's head
    (file header, first timestamps) and tail with its size tell captures apart, and each
    opportunity id also carries its trigger transaction's signature (engine/tables.py)."""
    h = hashlib.sha256(b"workbench capture fingerprint 1\0")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        h.update(size.to_bytes(8, "little"))
        h.update(f.read(FINGERPRINT_SPAN_SZ))
        if size > FINGERPRINT_SPAN_SZ:
            f.seek(max(FINGERPRINT_SPAN_SZ, size - FINGERPRINT_SPAN_SZ))
            h.update(f.read(FINGERPRINT_SPAN_SZ))
    return h.hexdigest()


def _makeable(folder: Path, flag: str, path: Path) -> None:
    """ConfigError unless ``folder`` exists or can be made: its nearest existing ancestor a writable folder."""
    f = folder
    while not f.exists() and f != f.parent:
        f = f.parent
    if not f.is_dir():
        raise ConfigError(f"{flag} {path}: cannot create the folder {folder}: {f} is a file")
    if not os.access(f, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: cannot create or write in {folder}: {f} is not writable")


def out_folder(path, flag: str = "--out", create: bool = True) -> Path:
    """The output folder, made (with its parents) before any work; ConfigError naming it if it cannot be.

    ``create=False`` only checks that it could be made (live mode checks before opening its
    source and makes the folder once the source is open).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: is a file, not a folder; name a folder for the outputs")
    _makeable(path, flag, path)
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{flag} {path}: cannot create the output folder: {e.strerror or e}") from None
    return path


def out_file(path, flag: str, create: bool = True) -> Path:
    """A file a run will write, checked before any work: not a folder; its missing folders made
    (``create=False``: only checked)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; name a file in it, e.g. {path / 'capture.pcapng'}")
    _makeable(path.parent, flag, path)
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag} {path}: not writable")
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{flag} {path}: cannot create its folder {path.parent}: {e.strerror or e}") from None
    return path


def empty_batch(buf: np.ndarray) -> FrameBatch:
    """A batch of no frames over ``buf``: drains queued shred transactions. It views the
    source's own buffer so that numba sees the same types (a read-only memmap is not the
    same array type as a writable array, and each type is compiled apart)."""
    return FrameBatch(buf, *empty_columns(0), 0)


def warm_up(buf: np.ndarray, state: EngineState, ds, bout, market=None, model=None, market_folder: str = "",
            model_folder: str = "", say: Callable[[str], None] | None = say_stderr,
            final: tuple[str, ...] = (), stop: Callable[[], bool] | None = None, reader: str = "",
            process: Callable = process_batch) -> float:
    """Compile (first run) or load from the numba cache every kernel the run will call,
    with the run's own array types, before the clock of the run starts. Returns seconds.

    A first run (process_batch not in the cache for these types) compiles the engine in
    steps, several processes at once, and tells ``say`` each step (engine/precompile.py);
    ``final`` names what the caller compiles after (live mode: its loop). ``reader`` (a capture
    reader's ``format``) has a first run compile that reader's scan among the steps too, rather
    than alone when the first batch is read. ``stop()`` true (a signal) ends a first run's
    compile between steps: CompileStopped. ``process`` makes the last, empty call (a run's
    SteadyCall learns its arguments there, off the run's clock).
    """
    t = time.perf_counter()
    say = say or (lambda _text: None)
    cached = lambda: engine_cached(empty_batch(buf), state, ds, bout, market, model)  # noqa: E731
    cold = not cached()
    # a first run holds the cache's lock until process_batch is in it (another process compiling
    # the same meanwhile is waited for, then loaded from the cache)
    with first_run_lock(say, stop) if cold else nullcontext():
        if cold and not cached():
            compile_engine(not buf.flags.writeable, market_folder if market is not None else "",
                           model_folder if model is not None else "", say=say, final=final, stop=stop,
                           reader=reader)
        discard_early_workers()          # (the engine was cached after all: started for nothing)
        process(empty_batch(buf), state, ds, bout, 0, market, model)
        tx_table(bout.tx[:0], bout.prog_ids[:0], KeyNames(state.keys))
    return time.perf_counter() - t


class _Readable:
    """tx_features rows as text (base58 signatures, list<string> programs) for the consumers that
    are not the row files, converted once per table however many consumers take them."""

    def __init__(self):
        self._last: tuple[pa.Table | None, pa.Table | None] = (None, None)

    def of(self, name: str, table: pa.Table) -> pa.Table:
        if name != "tx_features":
            return table
        if self._last[0] is not table:
            self._last = (table, readable_tx_table(table))
        return self._last[1]

    def wrap(self, consumer: Callable[[str, pa.Table], None]) -> Callable[[str, pa.Table], None]:
        return lambda name, table: consumer(name, self.of(name, table))


class EngineRun:
    """One run of the engine and its sinks: what replay and live mode share.

    Holds the engine state, the reusable output rows, and the sinks (Parquet, the
    optional ClickHouse store, an optional extra ``sink`` callable) behind one SinkThread.
    ``feed`` is the replay loop over one FrameBatch (optionally paced); live mode runs its
    loop in nopython code and hands its staged rows to ``put_rows``. ``opportunity_feed`` (a
    server's, with a market): ``opportunity_feed(market_names, capture_id)`` gives the callable that
    gets each call's opportunity records (a copy, OPP_DTYPE) and their hand-off time as they are
    handed on, on the thread that hands them (sinks.py ``on_opportunities``), so that the server
    makes them ready itself instead of waiting for the sink thread's tables. ``drain`` moves the
    shred transactions still queued at the end; ``finish`` writes the latency histograms,
    the final ``runs`` row and ``summary.json``.
    """

    def __init__(self, out_dir, settings: Settings, *, state: EngineState | None = None, ds=None,
                 sink: Callable[[str, pa.Table], None] | None = None, db: str | None = None,
                 source: str = "replay", capture_path: str = "", capture_sha256: str = "",
                 batch_frames: int | None = None, sink_depth: int = 4, market=None, parquet: bool = True,
                 row_columns: Callable[[str, pa.Table], pa.Table] | None = None, gather_store: bool = False,
                 opportunity_feed=None):
        self.settings = settings
        self.out = out_folder(out_dir)
        # before the state and the market load, which compile too on a first run (and the compile
        # workers start meanwhile)
        say_if_first_run(market_folder=settings.market or "", model_folder=settings.model or "")
        self.state = state if state is not None else engine_state(settings)
        self.ds = ds if ds is not None else deshred_state(settings)
        self.bout = new_batch_out(batch_frames or settings.batch_frames)
        # output sets a replay hands to the sink thread without copying them (``feed``), made as they
        # are needed: one the engine fills, the sink queue's, one the sink thread takes its rows
        # from. They share the scratch and the carried shred transactions (``ready``, ``counts``).
        self.bouts = [self.bout]
        self._sets_max = sink_depth + 2
        self._free: queue.Queue[int] = queue.Queue()
        self._free.put(0)
        self.names = KeyNames(self.state.keys)
        self.market = market if market is not None else market_for(settings, self.state)
        self.model = model_for(settings)
        self.market_on = self.market is not None
        self.market_names = MarketNames(self.names, self.market) if self.market is not None else None
        self.run_id = str(uuid.uuid4())
        # parquet=False (live --no-parquet): no row files; rows still reach the store and ``sink``
        self.parquet = ParquetSink(self.out, self.names) if parquet else None
        self.writer = (open_store(db, settings, self.run_id, source=source, capture_path=capture_path,
                                  capture_sha256=capture_sha256) if db else None)
        # the row files keep raw signatures and dictionary-encoded programs; the other consumers (the
        # API, live views, the store) get tx_features rows as text (engine/tables.py readable_tx_table)
        readable = _Readable()
        if sink is not None:
            sink = readable.wrap(sink)
        # ``sink`` (the server, a live view) first: it waits for the rows, the row files do not
        consumers = ([sink] if sink is not None else []) + ([self.parquet.write] if self.parquet is not None else [])
        # row_columns (a backfilled-blocks source: index_in_block, landed) widens the rows of Parquet and
        # ``sink``; the store keeps its own schema
        self.row_columns = row_columns
        if row_columns is not None:
            consumers = [lambda name, t, c=c: c(name, row_columns(name, t)) for c in consumers]
        if self.writer is not None:
            writer = self.writer
            def to_store(name, table, writer=writer, source=source):
                # the store keeps tx_features, swaps and opportunities (packet_status stays in Parquet)
                if name == "tx_features":
                    writer.put(name, table)
                elif name == "swaps":
                    writer.put("swaps", swaps_table(table))
                elif name == "opportunities":
                    writer.put("mev_opportunities", mev_opportunities_table(table, source))
            # gather_store (an unpaced replay): tables wait a little to go to the store joined (store_gather.py)
            consumers.append(StoreGather(readable.wrap(to_store)) if gather_store else readable.wrap(to_store))
        # opportunity ids are seeded by the replayed capture's fingerprint (read at the first opportunity);
        # a run with no capture file to read (live mode, whose --record file is still being written) by
        # the given sha256, else by the run id
        replayed = source == "replay" and capture_path and Path(capture_path).is_file()
        capture_id = ((lambda: capture_fingerprint(capture_path)) if replayed
                      else (lambda: capture_sha256) if capture_sha256 else (lambda: self.run_id))
        # a Parquet-only run gets its rows built into Arrow once per row group (sinks.py SinkThread)
        group_rows = self.parquet.rg if self.parquet is not None and len(consumers) == 1 else 0
        # (``sink`` still gets the opportunities tables: the same rows, for whatever else reads them)
        feed = opportunity_feed if self.market_names is not None else None
        self.sinks = SinkThread(self.names, consumers, depth=sink_depth, market_names=self.market_names,
                                capture_id=capture_id, group_rows=group_rows,
                                hurry=consumers[:1] if sink is not None and feed is None else [])
        if feed is not None:
            self.sinks.on_opportunities = feed(self.market_names, self.sinks.capture_id)
        self.engine_s = 0.0
        # the engine thread's CPU time in those calls: what the wall time has beyond it the thread spent
        # waiting (for the GIL as a call returns, or for a CPU), not processing
        self.engine_cpu_s = 0.0
        # process_batch called at its compiled entry while the arguments keep their types (steady_call.py)
        self._process = SteadyCall(process_batch)
        self._closed = False

    def warm_up(self, buf: np.ndarray, stop: Callable[[], bool] | None = None, reader: str = "") -> float:
        return warm_up(buf, self.state, self.ds, self.bout, self.market, self.model, self.settings.market,
                       self.settings.model, stop=stop, reader=reader, process=self._process)

    def feed(self, batch: FrameBatch, pacer: Pacer | None = None) -> None:
        """Process every frame of ``batch`` (released as ``pacer`` says) and hand the rows on."""
        state, ds, sinks = self.state, self.ds, self.sinks
        start = 0
        while start < batch.n:
            part = batch
            if pacer is not None:
                end = pacer.wait_due(batch.ts_ns, start)
                if end < batch.n:
                    part = batch._replace(off=batch.off[:end], caplen=batch.caplen[:end],
                                          wirelen=batch.wirelen[:end], ts_ns=batch.ts_ns[:end],
                                          linktype=batch.linktype[:end])
            k = self._take_out()             # an output set the sink thread is done with (backpressure)
            bout = self.bouts[k]
            t, cpu = time.perf_counter(), time.thread_time()
            try:
                nxt, n_tx, n_prog, queued = self._process(part, state, ds, bout, start, self.market, self.model)
            except BaseException:
                self._free.put(k)
                raise
            self.engine_s += time.perf_counter() - t
            self.engine_cpu_s += time.thread_time() - cpu
            if nxt == start and n_tx == 0:   # cannot happen with new_batch_out's sizes; never spin
                self._free.put(k)
                raise RuntimeError(f"process_batch made no progress at frame {batch.first_index + start}")
            # the rows are handed over as they are; the sink thread copies what it keeps and frees the set
            sinks.put(bout.tx[:n_tx], bout.prog_ids[:n_prog], bout.pkt_status[start:nxt],
                      batch.first_index + start, batch.ts_ns[start:nxt], bout.swaps[:bout.counts[N_SWAPS]],
                      bout.opps[:bout.counts[N_OPPS]], release=lambda k=k: self._free.put(k))
            start = nxt

    def _take_out(self) -> int:
        """The index of an output set free to fill: a released one, a new one while fewer than
        ``_sets_max`` exist, else the next one the sink thread releases."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        if len(self.bouts) < self._sets_max:
            b = self.bout
            # np.zeros, not zeros_like: pages are only committed once the engine writes them
            self.bouts.append(b._replace(**{f: np.zeros(getattr(b, f).shape, getattr(b, f).dtype)
                                            for f in ("pkt_status", "tx", "prog_ids", "swaps", "opps")}))
            return len(self.bouts) - 1
        return self._free.get()

    def put_rows(self, tx: np.ndarray, prog_ids: np.ndarray, status: np.ndarray, first_index: int,
                 ts_ns: np.ndarray, swaps: np.ndarray | None = None, opps: np.ndarray | None = None) -> None:
        """Rows made elsewhere (the live loop's Stage): copied, then built and written by the sink thread."""
        self.sinks.put(tx, prog_ids, status, first_index, ts_ns, swaps, opps)

    def drain(self, buf: np.ndarray) -> None:
        """Transactions of the last completed entry batches, still queued in the reassembly."""
        queued = 1
        while queued:
            drain = empty_batch(buf)
            k = self._take_out()
            b = self.bouts[k]
            try:
                _, n_tx, n_prog, queued = self._process(drain, self.state, self.ds, b, 0, self.market, self.model)
                self.sinks.put(b.tx[:n_tx], b.prog_ids[:n_prog], b.pkt_status[:0], 0, drain.ts_ns,
                               b.swaps[:b.counts[N_SWAPS]], b.opps[:b.counts[N_OPPS]])
            finally:
                self._free.put(k)

    def end_counts(self) -> dict[str, int]:
        """The counters a run's final ``runs`` row carries when it ends early."""
        return {"packets": int(self.state.counters[C_PACKETS]), "transactions": int(self.state.counters[C_TRANSACTIONS])}

    def abort(self, status: str = FAILED, error: BaseException | None = None) -> BaseException | None:
        """The run stops on an error: every row already handed on is still written (the sink
        thread drains into Parquet and the store writer, the Parquet files are closed, the store
        inserts or spools), THEN the store gets the final ``runs`` row with ``status`` and the
        writer closes. The order matters: a writer closed before the sinks drain loses their
        last rows. ``summary.json`` then says the status, the counts and ``error``. Returns the
        first error met while finishing (the caller raises its own)."""
        first: BaseException | None = None
        try:
            self.close_sinks()
        except BaseException as e:  # noqa: BLE001 - reported by the caller with its own error
            first = e
        writer, self.writer = self.writer, None
        if writer is not None:
            for step in (lambda: writer.record_run_end(self.end_counts(), status=status), writer.close):
                try:
                    step()
                except BaseException as e:  # noqa: BLE001
                    first = first or e
        try:
            summary = {"run_id": self.run_id, "status": status, "error": str(error or first or ""),
                       **self.end_counts(), "rows": dict(self.sinks.rows), "outputs": self.outputs()}
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        except OSError as e:
            first = first or e
        return first

    def close_sinks(self) -> None:
        """Every row handed on is written: the sink thread drains into every consumer that has not
        failed, then the Parquet files are closed (complete and readable even when a consumer
        failed). A consumer's error is raised after that."""
        if self._closed:
            return
        self._closed = True
        try:
            self.sinks.close()
        finally:
            if self.parquet is not None:
                market = ({"swaps": empty_swap_table(self.market_names),
                           "opportunities": empty_opp_table(self.market_names)} if self.market_names is not None else {})
                empties = {"tx_features": empty_tx_table(self.names),
                           "packet_status": status_table(np.zeros(0, np.int16), 0, np.zeros(0, np.int64)), **market}
                if self.row_columns is not None:
                    empties = {k: self.row_columns(k, t) for k, t in empties.items()}
                self.parquet.close(empties)

    def packet_ns(self) -> dict:
        hist = Histogram(self.state.hist_counts, self.state.hist_stats, HIST_PACKET_NS, HIST_NAMES[HIST_PACKET_NS])
        return {**hist.percentiles((50, 99, 99.9)), "max": hist.max,
                "mean": round(float(hist.mean), 1) if hist.count else -1}

    def market_summary(self) -> tuple[dict, dict, dict, dict]:
        """(market counters, opportunity summary, detection cost, model cost) for the result; empty without a
        market (and the last without a model)."""
        if not self.market_on:
            return {}, {}, {}, {}
        counters = {k: int(v) for k, v in zip(DETECT_COUNTER_NAMES, self.state.dcount)}
        st = self.state
        det = hist_summary(Histogram(st.hist_counts, st.hist_stats, HIST_DETECT_NS, HIST_NAMES[HIST_DETECT_NS]))
        ml = (hist_summary(Histogram(st.hist_counts, st.hist_stats, HIST_SCORE_NS, HIST_NAMES[HIST_SCORE_NS]))
              if self.model is not None else {})
        return counters, self.sinks.opps.as_dict(), det, ml

    def outputs(self) -> dict[str, str]:
        files = self.parquet.paths.items() if self.parquet is not None else ()
        return {**{k: str(v) for k, v in files}, "summary": str(self.out / "summary.json")}

    def finish(self, result, counts: dict[str, int], status: str, extra_hists=()) -> None:
        """After ``close_sinks``: the store's latency histograms (the engine's, then ``extra_hists``:
        (name, Histogram)) and the final runs row with ``status`` (how the run ended); then
        ``summary.json`` (with the store's figures and the status)."""
        result.status = status
        if self.writer is not None:
            writer, self.writer = self.writer, None
            dsn = str(writer.dsn.redacted()) if hasattr(writer, "dsn") else ""
            try:
                writer.put("latency_hist", latency_table(self.run_id, self.state, extra_hists))
                writer.record_run_end(counts, status=status)
                stats = writer.close()
            except BaseException as e:
                # the writer failed (the store AND the spool refused rows): the Parquet files are complete;
                # summary.json says the run failed and why, then the error is raised
                try:
                    writer.close()
                except BaseException:  # noqa: BLE001 - the first error is the one to report
                    pass
                result.status, result.store = FAILED, {"dsn": dsn, "error": str(e)}
                (self.out / "summary.json").write_text(result.to_json())
                raise
            result.store = {"dsn": dsn, **stats.as_dict()}
        (self.out / "summary.json").write_text(result.to_json())


def open_store(dsn: str, settings: Settings, run_id: str, *, source: str, capture_path: str,
               capture_sha256: str):
    """A started StoreWriter with the run's first ``runs`` row written."""
    from ..store import StoreWriter, default_spool_dir
    writer = StoreWriter(dsn, default_spool_dir(settings.data_dir), run_id=run_id,
                         connect_timeout_s=settings.store_connect_timeout_s,
                         read_timeout_s=settings.store_read_timeout_s).start()
    writer.record_run_start(run_id, source=source, capture_path=capture_path,
                            capture_sha256=capture_sha256, config=asdict(settings))
    return writer


def latency_table(run_id: str, state: EngineState, extra=()) -> pa.Table:
    """One latency_hist row per engine histogram (then per ``(name, Histogram)`` of ``extra``):
    the whole run as one interval. Detection and inference histograms only when they ran."""
    rows = {k: [] for k in ("run_id", "interval_start_ns", "interval_end_ns", "hist_name", "bucket_lower",
                            "bucket_count", "count", "p50", "p99", "p999", "min", "max")}
    hists = [(name, Histogram(state.hist_counts, state.hist_stats, h, name)) for h, name in enumerate(HIST_NAMES)]
    for name, hist in hists + list(extra):
        if not hist.count and name not in (HIST_NAMES[0], HIST_NAMES[1]):
            continue              # detection / inference histograms of a run without a market / model
        lows, _highs, counts = hist.buckets()
        rows["run_id"].append(run_id)
        rows["interval_start_ns"].append(int(state.counters[C_TS_FIRST]))
        rows["interval_end_ns"].append(int(state.counters[C_TS_LAST]))
        rows["hist_name"].append(name)
        rows["bucket_lower"].append([int(x) for x in lows])
        rows["bucket_count"].append([int(x) for x in counts])
        rows["count"].append(hist.count)
        for q, col in ((50, "p50"), (99, "p99"), (99.9, "p999")):
            rows[col].append(max(0, hist.percentile(q)))
        rows["min"].append(max(0, hist.min))
        rows["max"].append(max(0, hist.max))
    return pa.table(rows)
