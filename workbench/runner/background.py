"""A run on a background thread that views share: Panel pages, notebooks, a REST server.

The engine never runs on a server's event loop: ``BackgroundRun`` starts ``replay``
(paced or not) or ``live`` on a thread of its own (the engine's numba loop releases the
GIL) and collects the Arrow tables the run hands to its ``sink``. Viewers read it when
they like, each keeping its own read position, so a viewer never waits for the engine
and the engine never waits for a viewer. It can also show a finished run directory (read
once, or re-streamed at a rate to try a page under load) or the newest run of a store.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

from ..config import Settings, parse_ports
from ..engine.state import C_PACKETS, C_TRANSACTIONS, HIST_NAMES
from ..engine.tables import readable_tx_table
from ..metrics.hist import Histogram, bucket_high, bucket_of
from ..sinks import engine_handed_ns
from .from_settings import engine_state
from .live import live
from .replay import replay
from .store_watch import StoreWatch

RESTREAM_PERIOD_S = 0.1         # --rate: rows are handed on in slices this far apart
STORE_POLL_S = 1.0              # store watch: seconds between polls
ERROR_CHARS_MAX = 600           # of an exception's message on a page (the server log has all of it)


def short_error(e: BaseException) -> str:
    """A few lines for a viewer: the exception's own message (the workbench's errors name the fix)."""
    msg = str(e).strip() or type(e).__name__
    msg = f"{type(e).__name__}: {msg}" if not msg.startswith(type(e).__name__) else msg
    if len(msg) > ERROR_CHARS_MAX:
        msg = msg[:ERROR_CHARS_MAX].rstrip() + " ... (the rest is in the server's log)"
    return msg


def replay_options() -> set[str]:
    """What this engine's replay can take (``market``, ``model`` as Settings fields, as they land)."""
    return {f.name for f in dataclasses.fields(Settings)}


def read_parquet_or_none(path: Path) -> pa.Table | None:
    """A run's output file as views and the API take it (tx_features with base58 signatures and
    list<string> programs: engine/tables.py readable_tx_table), or None if it is not there."""
    return readable_tx_table(pq.read_table(path)) if path.exists() else None


def bucket_highs(lows: np.ndarray) -> np.ndarray:
    """Highest value of each HDR bucket given its lowest (the engine's bucket layout)."""
    return np.array([bucket_high(bucket_of(int(v))) for v in lows], np.int64)


@dataclass
class Rates:
    """Per-second rates over the last interval, and totals."""
    packets: int = 0
    transactions: int = 0
    opportunities: int = 0
    drops: int = 0
    packets_per_s: float = 0.0
    transactions_per_s: float = 0.0
    opportunities_per_s: float = 0.0


@dataclass
class BackgroundRun:
    """One engine run (or a finished run, or a store) on a background thread; viewers read
    what it collected.

    ``mode`` is 'replay' (``capture``), 'live' (``iface`` or ``udp_ports``), 'run' (a
    finished run directory, read once, or re-streamed at ``rate``) or 'store' (the newest
    run of the ClickHouse store ``db``, polled). Tables handed to the runner's sink are
    kept as lists of Arrow tables per name; ``tables(name, start)`` gives the ones after a
    reader's position.
    """

    mode: str
    capture: str | None = None
    out_dir: str | None = None
    speed: float | None = None
    loop: int = 1
    market: str | None = None
    model: str | None = None
    db: str | None = None
    iface: str | None = None
    udp_ports: str | None = None
    source: str | None = None                # 'live': afpacket or udp (default: udp with udp_ports, else afpacket)
    duration: float | None = None
    run_dir: str | None = None
    rate: float | None = None                # 'run' mode: re-stream its opportunities at this many rows/s
    settings: Settings | None = None         # the run's settings (a server passes the CLI's); default: Settings()
    cpu: int | None = None                   # 'live': pin the engine thread to this CPU (live()'s own placement)
    rt: bool = False                         # 'live': SCHED_FIFO for the engine thread
    phase: str = "starting"
    error: str | None = None
    result: object = None
    progress: float = 0.0                    # fraction of the capture bytes read
    started_at: float = field(default_factory=time.monotonic)
    first_data_at: float | None = None       # monotonic time of the first rows
    summary: dict | None = None
    state: object = None
    live_status: object = None
    run_id: str | None = None
    store_hists: dict | None = None
    store_counts: dict | None = None
    _tables: dict = field(default_factory=dict)
    _rows: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _rate_prev: tuple = (0.0, 0, 0, 0)
    rates: Rates = field(default_factory=Rates)
    # called (from the thread that hands tables to ``sink``) after rows were collected: a server wakes its
    # reader with it instead of polling. It must not block: it runs on the run's sink thread
    on_hand_off: object = None
    # name -> f(table): called on the thread that hands a table of that name on, after its hand-off time
    # is taken; what it returns is kept (and given by ``take`` / ``tables``) in place of the table. A
    # reader's per-table work runs there, beside the engine, not on the reader's thread. It must not
    # raise for a table it cannot use: it returns the table then (it runs on the run's sink thread)
    prepare: dict = field(default_factory=dict)
    _handed: dict = field(default_factory=dict)     # name -> time.time_ns() each table was handed on
    # a replay's or live run's EngineRun ``opportunity_feed`` (a server's): the engine's opportunity records go
    # to what it makes as they are handed on, and the engine's opportunities tables are only counted here
    opportunity_feed: object = None

    # -- collecting ---------------------------------------------------------------------
    def sink(self, name: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        # on the run's sink thread: when the engine handed the rows on (so the time they waited there
        # for their table counts); a table handed on from elsewhere (a finished run's files): now
        engine_ns = engine_handed_ns()
        handed_ns = engine_ns or time.time_ns()
        fed = name == "opportunities" and engine_ns is not None and self.opportunity_feed is not None
        prepare = None if fed else self.prepare.get(name)
        kept = table if prepare is None else prepare(table)
        with self._lock:
            if not fed:
                self._tables.setdefault(name, []).append(kept)
                self._handed.setdefault(name, []).append(handed_ns)
            self._rows[name] = self._rows.get(name, 0) + table.num_rows
            if self.first_data_at is None and name in ("tx_features", "opportunities"):
                self.first_data_at = time.monotonic()
                if self.phase.startswith("compiling"):
                    self.phase = "replaying"
        if self.on_hand_off is not None and (name == "tx_features" or name == "opportunities" and not fed):
            self.on_hand_off()

    def tables(self, name: str, start: int = 0) -> tuple[list[pa.Table], int]:
        """Tables of ``name`` from list position ``start``; and the next position."""
        with self._lock:
            lst = self._tables.get(name, [])
            return lst[start:], len(lst)

    def take(self, name: str) -> list[tuple[pa.Table, int]]:
        """Remove and return the tables of ``name`` collected so far (or what ``prepare`` made of them),
        each with the time.time_ns() it was handed on: for a single reader that keeps what it needs itself (the server), so that a long
        live run does not keep every table in memory. Positions of ``tables`` readers do not survive it."""
        with self._lock:
            tables, handed = self._tables.pop(name, []), self._handed.pop(name, [])
        return list(zip(tables, handed))

    def rows(self, name: str) -> int:
        with self._lock:
            return self._rows.get(name, 0)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._tables)

    # -- running ------------------------------------------------------------------------
    def start(self) -> "BackgroundRun":
        self._thread = threading.Thread(target=self._main, name=f"engine-{self.mode}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _main(self) -> None:
        try:
            if self.mode == "replay":
                self._replay()
            elif self.mode == "live":
                self._live()
            elif self.mode == "run":
                self._load_run(Path(self.run_dir))
            elif self.mode == "store":
                self._watch_store()
            self.phase = "done" if self.phase != "stopped" else "stopped"
        except BaseException as e:      # the page shows it; the server goes on
            self.error = short_error(e)
            self.phase = "failed"
            traceback.print_exc()

    def _settings(self):
        s = dataclasses.replace(self.settings) if self.settings is not None else Settings()
        s.progress = False
        opts = replay_options()
        if self.market and "market" in opts:
            s.market = self.market
        if self.model and "model" in opts:
            s.model = self.model
        return s.validate()

    def _replay(self) -> None:
        settings = self._settings()
        out = Path(self.out_dir)
        total = max(1, Path(self.capture).stat().st_size)
        for lap in range(max(1, self.loop)):
            if self._stop.is_set():
                self.phase = "stopped"
                return
            self.state = engine_state(settings)
            self.phase = "compiling the engine (first start: ~30 s)" if lap == 0 else f"replay {lap + 1}"

            def progress(done, _total, lap=lap):
                self.phase = "replaying" if self.loop == 1 else f"replaying (lap {lap + 1} of {self.loop})"
                self.progress = (lap + done / total) / max(1, self.loop)
                if self._stop.is_set():
                    raise KeyboardInterrupt("stopped from the page")

            self.result = replay(self.capture, out / f"lap{lap}" if self.loop > 1 else out, settings,
                                 progress=progress, sink=self.sink, state=self.state, speed=self.speed,
                                 db=self.db, stop=self._stop,   # (a paced replay stops mid-batch too)
                                 opportunity_feed=self.opportunity_feed)
            if self.result.status == "interrupted":    # stopped from the page: its rows are written
                self.phase = "stopped"
                return
        self.progress = 1.0
        self._load_after(out if self.loop == 1 else out / f"lap{self.loop - 1}")

    def _load_after(self, run: Path) -> None:
        """Outputs written at the end of a run that did not come through the sink."""
        s = run / "summary.json"
        if s.exists():
            self.summary = json.loads(s.read_text())
        for name in ("opportunities", "swaps"):
            if self.rows(name) == 0:
                t = read_parquet_or_none(run / f"{name}.parquet")
                if t is not None:
                    self.sink(name, t)

    def _load_run(self, run: Path) -> None:
        self.phase = "reading the run"
        if self.rate:
            opps = read_parquet_or_none(run / "opportunities.parquet")
            if opps is None or opps.num_rows == 0:
                raise FileNotFoundError(f"{run} holds no opportunities to stream: replay it with --market first")
            self._restream(opps)
            return
        for name in ("tx_features", "opportunities", "swaps"):
            t = read_parquet_or_none(run / f"{name}.parquet")
            if t is not None:
                self.sink(name, t)
        s = run / "summary.json"
        if s.exists():
            self.summary = json.loads(s.read_text())
        self.progress = 1.0

    def _restream(self, opps: pa.Table) -> None:
        """Hand ``opps`` to the pages at ``rate`` rows/s in RESTREAM_PERIOD_S slices, looping (each lap's
        event times shifted past the previous lap), until stopped or ``duration`` has passed."""
        n, rate = opps.num_rows, float(self.rate)
        ts = opps.column("ts_ns").to_numpy()
        span = int(ts.max() - ts.min()) + 1
        per = max(1, int(rate * RESTREAM_PERIOD_S))
        t0, sent, i, lap = time.monotonic(), 0, 0, 0
        self.phase = f"streaming the run's opportunities at {rate:,.0f} rows/s"
        while not self._stop.is_set():
            if self.duration is not None and time.monotonic() - t0 >= self.duration:
                break
            idx = (np.arange(i, i + per) % n)
            laps = lap + (np.arange(i, i + per) // n)
            chunk = opps.take(pa.array(idx))
            chunk = chunk.set_column(chunk.schema.get_field_index("ts_ns"), "ts_ns",
                                     pa.array(ts[idx] + laps * span, pa.int64()))
            self.sink("opportunities", chunk)
            i += per
            lap, i = lap + i // n, i % n
            sent += per
            delay = t0 + sent / rate - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
        self.phase = "done streaming"

    def _watch_store(self) -> None:
        """Poll the store every STORE_POLL_S: the newest run's new rows and its histograms."""
        self.phase = "connecting to the store"
        watch = StoreWatch(self.db)
        last_ts, last_tx, run = -1, -1, None
        while not self._stop.is_set():
            newest = watch.latest_run()
            if newest is None:
                self.phase = "the store holds no run yet (waiting)"
            else:
                if newest != run:                      # a newer run: start over with it
                    run, last_ts, last_tx = newest, -1, -1
                    with self._lock:
                        self._tables.clear()
                        self._handed.clear()
                        self._rows.clear()
                    self.run_id = run
                self.phase = f"watching run {run}"
                opps = watch.opportunities(run, last_ts)
                if opps.num_rows:
                    last_ts = int(pa.compute.max(opps.column("ts_ns")).as_py())
                    self.sink("opportunities", opps)
                txs = watch.tx_features(run, last_tx)
                if txs.num_rows:
                    last_tx = int(pa.compute.max(txs.column("tx_index")).as_py())
                    self.sink("tx_features", txs)
                self.store_hists = watch.histograms(run)
                self.store_counts = watch.counts(run)
            self._stop.wait(STORE_POLL_S)
        self.phase = "stopped"

    def _live(self) -> None:
        settings = self._settings()
        self.phase = "starting live capture"

        def on_status(st):
            self.live_status = st
            self.phase = "live"

        kw = {}
        if self.udp_ports:
            kw.update(source=self.source or "udp", ports=parse_ports(self.udp_ports))
        elif self.source:
            kw.update(source=self.source)
        self.state = engine_state(settings)       # the page reads its histograms while the run goes on
        self.result = live(self.iface, self.out_dir, settings, sink=self.sink, on_status=on_status,
                           stop=self._stop, duration=self.duration, db=self.db, state=self.state, cpu=self.cpu,
                           rt=self.rt, opportunity_feed=self.opportunity_feed, **kw)
        self._load_after(Path(self.out_dir))

    # -- what the pages show ------------------------------------------------------------
    def counters(self) -> dict:
        """packets, transactions, opportunities, drops: totals so far."""
        opps = self.rows("opportunities")
        st = self.live_status
        if st is not None:
            return {"packets": st.packets, "transactions": st.transactions, "opportunities": opps,
                    "drops": st.drops}
        if self.state is not None:
            return {"packets": int(self.state.counters[C_PACKETS]),
                    "transactions": int(self.state.counters[C_TRANSACTIONS]),
                    "opportunities": opps, "drops": 0}
        if self.store_counts:
            return {**self.store_counts, "opportunities": opps}
        if self.summary:
            return {"packets": int(self.summary.get("packets", 0)),
                    "transactions": int(self.summary.get("transactions", 0)), "opportunities": opps,
                    "drops": int(self.summary.get("drops", 0))}
        return {"packets": 0, "transactions": self.rows("tx_features"), "opportunities": opps, "drops": 0}

    def update_rates(self) -> Rates:
        """Rates since the previous call (the server calls it once per tick for every page)."""
        now = time.monotonic()
        c = self.counters()
        res = self.result
        if not self.running and res is not None and getattr(res, "wall_s", 0):
            w = res.wall_s                          # finished: the whole run's averages
            self.rates = Rates(c["packets"], c["transactions"], c["opportunities"], c["drops"],
                               c["packets"] / w, c["transactions"] / w, c["opportunities"] / w)
            return self.rates
        t0, p0, x0, o0 = self._rate_prev
        dt = now - t0
        if dt >= 0.25:
            self.rates = Rates(c["packets"], c["transactions"], c["opportunities"], c["drops"],
                               (c["packets"] - p0) / dt if t0 else 0.0, (c["transactions"] - x0) / dt if t0 else 0.0,
                               (c["opportunities"] - o0) / dt if t0 else 0.0)
            self._rate_prev = (now, c["packets"], c["transactions"], c["opportunities"])
        else:
            self.rates.packets, self.rates.transactions = c["packets"], c["transactions"]
            self.rates.opportunities, self.rates.drops = c["opportunities"], c["drops"]
        return self.rates

    def histograms(self) -> dict:
        """{name: (bucket lows, bucket highs, counts, {'p50','p99','p99.9'} ns)} of the engine's HDR
        histograms, non-empty buckets only: from the running engine's state, or from the store's
        latency_hist rows."""
        out = {}
        if self.state is not None:
            # one snapshot per tick: the engine thread keeps recording into the live arrays
            counts, stats = self.state.hist_counts.copy(), self.state.hist_stats.copy()
            for h, name in enumerate(HIST_NAMES):
                hist = Histogram(counts, stats, h, name)
                if hist.count:
                    lows, highs, nonzero = hist.buckets()
                    out[name] = (lows, highs, nonzero, hist.percentiles((50, 99, 99.9)))
        for name, (lows, counts, p50, p99, p999) in (self.store_hists or {}).items():
            keep = counts > 0
            lows, counts = lows[keep], counts[keep]
            if len(lows):
                out[name] = (lows, bucket_highs(lows), counts, {"p50": p50, "p99": p99, "p99.9": p999})
        return out
