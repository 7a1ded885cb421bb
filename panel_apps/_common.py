"""What the two Panel apps share: argument parsing, clear messages for missing inputs, the
engine feed (one engine run in a background thread that pages watch), and the plots.

The engine never runs on the server's event loop: ``Feed`` starts ``workbench.runner.replay``
(paced or not) or ``workbench.runner.live`` on a thread of its own (its numba loop releases
the GIL) and collects the Arrow tables the runner hands to its ``sink``. Pages read the
feed from periodic callbacks, each page keeping its own read position, so a page never
waits for the engine and the engine never waits for a page.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
CAPTURE_SUFFIXES = (".pcap", ".pcapng")
TABLE_PAGE_SIZE = 50            # rows per Tabulator page (remote pagination: only the page is sent)
RESTREAM_PERIOD_S = 0.1         # --rate: rows are handed on in slices this far apart
STORE_POLL_S = 1.0              # store watch: seconds between polls
UPDATE_MS = 500                 # period of the pages' callbacks
PLOT_W, PLOT_H = 440, 260           # px of each plot
PROFIT_POINTS_PER_UPDATE = 20   # points per type a page update adds to the profit lines
PROFIT_POINTS_MAX = 5_000       # points per profit line kept in the browser (older ones roll off)
SCORE_BINS = 20                 # bins of the score histogram over [0, 1]
OPP_TYPES = ("arbitrage", "sandwich", "liquidation")
LAMPORTS_PER_SOL = 1_000_000_000

# columns of the opportunity table, in order (others stay in the DataFrame, hidden)
OPP_SHOWN = ("ts", "type", "expected_profit_sol", "score", "profit_quote", "tip_lamports", "amount_in",
             "amount_out", "pools", "victim_signature", "trigger_signature", "slot", "packet_index",
             "tx_index", "opportunity_id")
TX_SHOWN = ("ts", "tx_index", "packet_index", "slot", "signature", "version", "size", "num_instructions",
            "compute_unit_limit", "compute_unit_price", "priority_fee_lamports", "jito_tip_lamports",
            "programs")


# --- arguments ------------------------------------------------------------------------------
def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    """The apps' arguments (``panel serve panel_apps/X.py --args ...``)."""
    p = argparse.ArgumentParser(prog=prog, description="solana-mev-workbench view")
    src = p.add_argument_group("source (one of)")
    src.add_argument("--capture", help="pcap / pcapng to replay")
    src.add_argument("--iface", help="network interface for live mode (AF_PACKET; root)")
    src.add_argument("--udp-ports", help="live mode on plain UDP sockets, e.g. 8003 or 8001,8003-8009")
    src.add_argument("--store", help="ClickHouse DSN to watch, e.g. chdb:///path/data/clickhouse")
    src.add_argument("--run", help="a finished run directory (tx_features.parquet, ...) to show")
    p.add_argument("--speed", type=float, default=None,
                   help="replay pace: 1.0 = as captured, 2.0 twice as fast; none = as fast as possible")
    p.add_argument("--loop", type=int, default=1, help="replay the capture this many times")
    p.add_argument("--market", help="market snapshot folder (pools.parquet, tokens.parquet, ...)")
    p.add_argument("--model", help="model file written by `workbench compile`")
    p.add_argument("--out", help="run directory to write (default: a fresh one under runs/views/)")
    p.add_argument("--db", help="also write the run to this ClickHouse DSN")
    p.add_argument("--duration", type=float, default=None,
                   help="live mode, or --run with --rate: stop after this many seconds")
    p.add_argument("--rate", type=float, default=None,
                   help="with --run: stream the run's opportunities into the page at this many rows/s, "
                        "looping (try the page under load; benchmarks/bench_views.py)")
    p.add_argument("--pagination", choices=("remote", "local"), default="remote",
                   help="tables: remote (the browser gets one page) or local (every row is sent to the browser)")
    return p.parse_args(argv)


# --- clear messages instead of tracebacks -----------------------------------------------------
def missing_input(kind: str, path: str | None) -> str | None:
    """A sentence naming what is wrong with an input and how to fix it; None when it is usable."""
    if path is None or path == "":
        return None
    p = Path(path)
    if kind == "capture":
        if not p.exists():
            return (f"Capture not found: `{path}`. Pass `--capture FILE` with a pcap or pcapng of Solana UDP "
                    f"traffic, e.g. `captures/demo.pcapng`.")
        if p.is_dir():
            return f"Capture `{path}` is a folder; pass a pcap or pcapng file."
        return None
    if kind == "market":
        if not p.exists():
            return (f"Market snapshot not found: `{path}`. Pass `--market DIR`, a folder with pools.parquet "
                    f"and tokens.parquet (a market capture in captures/ has one beside it).")
        if not p.is_dir() or not (p / "pools.parquet").exists():
            return f"`{path}` is not a market snapshot: it has no pools.parquet."
        return None
    if kind == "model":
        if not p.exists():
            return (f"Model not found: `{path}`. Train and compile one with `workbench train` and "
                    f"`workbench compile`, then pass `--model FILE`.")
        return None
    if kind == "run":
        if not p.is_dir():
            return f"Run directory not found: `{path}`. Make one with `workbench replay CAPTURE --out DIR`."
        if not (p / "tx_features.parquet").exists():
            return f"`{path}` holds no tx_features.parquet: is it a run directory of `workbench replay`?"
        return None
    raise ValueError(kind)


def missing_store(dsn: str) -> str | None:
    """A message when the store to watch cannot be used: bad DSN, missing embedded folder,
    or a server that does not answer."""
    from workbench.store import StoreError, connect, parse_dsn
    try:
        d = parse_dsn(dsn)
    except StoreError as e:
        return str(e)
    if d.embedded and d.path and not Path(d.path).is_dir():
        return (f"Store not found: `{d.path}` does not exist. Write a run into it first: "
                f"`workbench replay CAPTURE --db {dsn}` (or pass the DSN of a ClickHouse server).")
    if d.embedded and d.path is None:
        return "An in-memory store (`chdb://memory`) holds nothing to watch: pass a store folder or a server DSN."
    if not d.embedded:
        try:
            connect(d, ensure_schema=False, connect_timeout=3).close()
        except StoreError as e:
            return f"Store {d.redacted()} cannot be used: {e}"
    return None


def replay_options() -> set[str]:
    """What this engine's replay can take (``market``, ``model`` as Settings fields, as they land)."""
    import dataclasses
    from workbench.config import Settings
    return {f.name for f in dataclasses.fields(Settings)}


def engine_problem(market: str | None, model: str | None) -> str | None:
    """A message when the engine cannot take a market or model it is given."""
    opts = replay_options()
    for kind, val in (("market", market), ("model", model)):
        if val and kind not in opts:
            return (f"This engine takes no {kind} yet (`workbench.config.Settings` has no `{kind}`); "
                    f"run without `--{kind}`.")
    return None


ERROR_CHARS_MAX = 600           # of an exception's message on a page (the server log has all of it)


def short_error(e: BaseException) -> str:
    """A few lines for the page: the exception's own message (the workbench's errors name the fix)."""
    msg = str(e).strip() or type(e).__name__
    msg = f"{type(e).__name__}: {msg}" if not msg.startswith(type(e).__name__) else msg
    if len(msg) > ERROR_CHARS_MAX:
        msg = msg[:ERROR_CHARS_MAX].rstrip() + " ... (the rest is in the server's log)"
    return msg


# --- tables as the pages show them ----------------------------------------------------------
def _join_list(col) -> list[str]:
    return [", ".join(v) if v is not None else "" for v in col]


def tx_frame(table: pa.Table) -> pd.DataFrame:
    """tx_features rows for display: event time, program names joined, short signatures."""
    df = table.to_pandas()
    if df.empty:
        return pd.DataFrame({c: [] for c in TX_SHOWN})
    df["ts"] = pd.to_datetime(df["ts_ns"], unit="ns", utc=True)
    if "programs" in df:
        df["programs"] = _join_list(table.column("programs").to_pylist())
    if "version" in df and df["version"].dtype.kind in "iu":
        df["version"] = np.where(df["version"] < 0, "legacy", "v0")
    return df[[c for c in TX_SHOWN if c in df.columns] + [c for c in df.columns if c not in TX_SHOWN]]


def opp_frame(table: pa.Table) -> pd.DataFrame:
    """opportunities rows for display (contract columns; pools joined with ' > ')."""
    df = table.to_pandas()
    if df.empty:
        return pd.DataFrame({c: [] for c in OPP_SHOWN})
    if "ts_ns" in df:
        df["ts"] = pd.to_datetime(df["ts_ns"], unit="ns", utc=True)
    if "pools" in df:
        df["pools"] = [" > ".join(v) if v is not None else "" for v in table.column("pools").to_pylist()]
    if "score" not in df:
        df["score"] = np.nan
    if "expected_profit_sol" not in df and "expected_profit_lamports" in df:
        df["expected_profit_sol"] = df["expected_profit_lamports"] / LAMPORTS_PER_SOL
    for c in ("amount_in", "amount_out"):
        if c in df and df[c].dtype == np.uint64:
            df[c] = df[c].astype(np.float64)      # the browser's numbers are doubles
    return df[[c for c in OPP_SHOWN if c in df.columns] + [c for c in df.columns if c not in OPP_SHOWN]]


BROWSER_DROP = ("ts_ns", "origin_ts_ns", "program_mask")   # int64 beyond 2**53: a browser's doubles lose them


def browser_safe(df: pd.DataFrame) -> pd.DataFrame:
    """The columns a table sends to the browser: none whose integers a double cannot hold
    (``ts`` shows the event time)."""
    return df.drop(columns=[c for c in BROWSER_DROP if c in df.columns])


def program_label(address: str) -> str:
    """A program's name when the workbench knows it (wire/keys.py KNOWN_PROGRAMS), else its address."""
    from workbench.wire.keys import KNOWN_PROGRAMS
    global _PROGRAM_NAMES
    if _PROGRAM_NAMES is None:
        _PROGRAM_NAMES = {addr: name for name, addr in KNOWN_PROGRAMS}
    return _PROGRAM_NAMES.get(address, address)


_PROGRAM_NAMES: dict | None = None


def filter_opps(df: pd.DataFrame, type_: str, score, min_profit) -> pd.DataFrame:
    if df.empty:
        return df
    m = np.ones(len(df), bool)
    if type_ and type_ != "all" and "type" in df:
        m &= (df["type"] == type_).to_numpy()
    lo, hi = score
    if (lo, hi) != (0.0, 1.0) and "score" in df:
        s = df["score"].to_numpy(dtype=float)
        m &= (s >= lo) & (s <= hi)
    if min_profit is not None and "expected_profit_sol" in df:
        m &= (df["expected_profit_sol"].to_numpy(dtype=float) >= float(min_profit))
    return df[m]


def filter_txs(df: pd.DataFrame, program: str, min_fee) -> pd.DataFrame:
    if df.empty:
        return df
    m = np.ones(len(df), bool)
    if program and program != "all" and "programs" in df:
        m &= df["programs"].str.contains(program, regex=False).to_numpy()
    if min_fee:
        m &= (df["priority_fee_lamports"].to_numpy() >= int(min_fee))
    return df[m]


def read_parquet_or_none(path: Path) -> pa.Table | None:
    return pq.read_table(path) if path.exists() else None


# --- the engine feed -----------------------------------------------------------------------
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
class Feed:
    """One engine run on a background thread; pages read what it collected.

    ``mode`` is 'replay' (``capture``), 'live' (``iface`` or ``udp_ports``) or 'run'
    (a finished run directory, read once). Tables handed to the runner's sink are kept
    as lists of Arrow tables per name; ``tables(name, start)`` gives the ones after a
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
    duration: float | None = None
    run_dir: str | None = None
    rate: float | None = None                # 'run' mode: re-stream its opportunities at this many rows/s
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

    # -- collecting ---------------------------------------------------------------------
    def sink(self, name: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        with self._lock:
            self._tables.setdefault(name, []).append(table)
            self._rows[name] = self._rows.get(name, 0) + table.num_rows
            if self.first_data_at is None and name in ("tx_features", "opportunities"):
                self.first_data_at = time.monotonic()
                if self.phase.startswith("compiling"):
                    self.phase = "replaying"

    def tables(self, name: str, start: int = 0) -> tuple[list[pa.Table], int]:
        """Tables of ``name`` from list position ``start``; and the next position."""
        with self._lock:
            lst = self._tables.get(name, [])
            return lst[start:], len(lst)

    def rows(self, name: str) -> int:
        with self._lock:
            return self._rows.get(name, 0)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._tables)

    # -- running ------------------------------------------------------------------------
    def start(self) -> "Feed":
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
        from workbench.config import Settings
        s = Settings()
        s.progress = False
        opts = replay_options()
        if self.market and "market" in opts:
            s.market = self.market
        if self.model and "model" in opts:
            s.model = self.model
        return s.validate()

    def _replay(self) -> None:
        from workbench import runner
        from workbench.engine.state import state_from_settings
        settings = self._settings()
        out = Path(self.out_dir)
        total = max(1, Path(self.capture).stat().st_size)
        for lap in range(max(1, self.loop)):
            if self._stop.is_set():
                self.phase = "stopped"
                return
            self.state = state_from_settings(settings)
            self.phase = "compiling the engine (first start: ~30 s)" if lap == 0 else f"replay {lap + 1}"

            def progress(done, _total, lap=lap):
                self.phase = "replaying" if self.loop == 1 else f"replaying (lap {lap + 1} of {self.loop})"
                self.progress = (lap + done / total) / max(1, self.loop)
                if self._stop.is_set():
                    raise KeyboardInterrupt("stopped from the page")

            self.result = runner.replay(self.capture, out / f"lap{lap}" if self.loop > 1 else out, settings,
                                        progress=progress, sink=self.sink, state=self.state, speed=self.speed,
                                        db=self.db)
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
        from workbench import runner
        settings = self._settings()
        self.phase = "starting live capture"

        def on_status(st):
            self.live_status = st
            self.phase = "live"

        kw = {}
        if self.udp_ports:
            from workbench.config import _parse_ports
            kw.update(source="udp", ports=_parse_ports(self.udp_ports))
        from workbench.engine.state import state_from_settings
        self.state = state_from_settings(settings)       # the page reads its histograms while the run goes on
        self.result = runner.live(self.iface, self.out_dir, settings, sink=self.sink, on_status=on_status,
                                  stop=self._stop, duration=self.duration, db=self.db, state=self.state, **kw)
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
            from workbench.engine.state import C_PACKETS, C_TRANSACTIONS
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

    def hist_views(self) -> dict:
        """{name: (bokeh columns, {'p50','p99','p99.9'} ns)} of the engine's HDR histograms:
        from the running engine's state, or from the store's latency_hist rows."""
        out = {}
        if self.state is not None:
            from workbench.engine.state import HIST_NAMES
            from workbench.metrics.hist import Histogram
            # one snapshot per tick: the engine thread keeps recording into the live arrays
            counts, stats = self.state.hist_counts.copy(), self.state.hist_stats.copy()
            for h, name in enumerate(HIST_NAMES):
                hist = Histogram(counts, stats, h, name)
                if hist.count:
                    out[name] = (hist_data(hist), hist.percentiles((50, 99, 99.9)))
        for name, (lows, counts, p50, p99, p999) in (self.store_hists or {}).items():
            keep = counts > 0
            lows, counts = lows[keep], counts[keep]
            if len(lows):
                out[name] = ({"left": lows.astype(float), "right": (bucket_highs(lows) + 1).astype(float),
                              "top": counts.astype(float)}, {"p50": p50, "p99": p99, "p99.9": p999})
        return out


def feed_from_args(args: argparse.Namespace, key: str) -> tuple["Feed | None", list[str]]:
    """The feed the arguments ask for (shared by the pages of one server), or the messages."""
    import panel as pn
    problems = []
    for kind in ("capture", "market", "model"):
        m = missing_input(kind, getattr(args, kind))
        if m:
            problems.append(m)
    if args.run:
        m = missing_input("run", args.run)
        if m:
            problems.append(m)
    if args.store:
        m = missing_store(args.store)
        if m:
            problems.append(m)
    if not problems and args.capture:
        m = engine_problem(args.market, args.model)
        if m:
            problems.append(m)
    if problems:
        return None, problems
    cache = pn.state.cache
    if key in cache:
        return cache[key], []
    out = args.out or str(REPO / "runs" / "views" / time.strftime("%Y%m%d-%H%M%S"))
    if args.capture:
        feed = Feed("replay", capture=args.capture, out_dir=out, speed=args.speed, loop=args.loop,
                    market=args.market, model=args.model, db=args.db)
    elif args.iface or args.udp_ports:
        feed = Feed("live", iface=args.iface, udp_ports=args.udp_ports, out_dir=out, duration=args.duration,
                    db=args.db)
    elif args.run:
        feed = Feed("run", run_dir=args.run, rate=args.rate, duration=args.duration)
    elif args.store:
        feed = Feed("store", db=args.store)
    else:
        return None, []
    cache[key] = feed.start()
    return feed, []


# --- the store (watch mode) -----------------------------------------------------------------
class StoreWatch:
    """Polls a ClickHouse store: the newest run's opportunities, transactions and histograms."""

    def __init__(self, dsn: str):
        from workbench.store import connect
        self.dsn = dsn
        self.store = connect(dsn, ensure_schema=False)
        self.run_id: str | None = None
        self._lock = threading.Lock()

    def latest_run(self) -> str | None:
        with self._lock:
            rows = self.store.query_rows(f"SELECT run_id FROM {self.store.table('runs')} "
                                         f"ORDER BY started_at DESC LIMIT 1")
        return str(rows[0][0]) if rows else None

    def query_arrow(self, sql: str, params: dict | None = None) -> pa.Table:
        with self._lock:
            return self.store.query_arrow(sql, params)

    def opportunities(self, run_id: str, after_ns: int) -> pa.Table:
        t = self.store.table("mev_opportunities")
        return self.query_arrow(
            f"SELECT toUnixTimestamp64Nano(timestamp) AS ts_ns, toString(opportunity_id) AS opportunity_id, "
            f"toString(type) AS type, profit_estimate AS expected_profit_sol, score, pools, victim_signature, "
            f"slot, tip_lamports, expected_profit_lamports, detect_latency_ns AS detect_ns "
            f"FROM {t} WHERE run_id = {{run:String}} AND toUnixTimestamp64Nano(timestamp) > {{after:Int64}} "
            f"ORDER BY timestamp", {"run": run_id, "after": after_ns})

    def tx_features(self, run_id: str, after_index: int, limit: int = 200_000) -> pa.Table:
        t = self.store.table("tx_features")
        return self.query_arrow(
            f"SELECT * EXCEPT (run_id, ts), ts_ns FROM {t} WHERE run_id = {{run:String}} "
            f"AND tx_index > {{after:Int64}} ORDER BY tx_index LIMIT {int(limit)}",
            {"run": run_id, "after": after_index})

    def counts(self, run_id: str) -> dict:
        """packets and transactions of a run: its runs row's counts (final) or its rows so far."""
        rows = self.query_arrow(f"SELECT counts FROM {self.store.table('runs')} FINAL WHERE run_id = {{run:String}}",
                                {"run": run_id}).to_pylist()
        counts = dict(rows[0]["counts"]) if rows and rows[0]["counts"] else {}
        if "transactions" not in counts:
            counts["transactions"] = int(self.query_arrow(
                f"SELECT count() AS n FROM {self.store.table('tx_features')} WHERE run_id = {{run:String}}",
                {"run": run_id}).column("n")[0].as_py())
        return {"packets": int(counts.get("packets", 0)), "transactions": int(counts["transactions"]),
                "drops": int(counts.get("drops", 0))}

    def histograms(self, run_id: str) -> dict:
        """{hist_name: (lows, counts, p50, p99, p999)} of the run's newest snapshot per histogram."""
        t = self.store.table("latency_hist")
        tab = self.query_arrow(
            f"SELECT hist_name, argMax(bucket_lower, interval_end) AS lows, argMax(bucket_count, interval_end) "
            f"AS counts, argMax(p50, interval_end) AS p50, argMax(p99, interval_end) AS p99, "
            f"argMax(p999, interval_end) AS p999 FROM {t} WHERE run_id = {{run:String}} GROUP BY hist_name "
            f"ORDER BY hist_name", {"run": run_id})
        out = {}
        for r in tab.to_pylist():
            out[r["hist_name"]] = (np.asarray(r["lows"], np.int64), np.asarray(r["counts"], np.int64),
                                   int(r["p50"]), int(r["p99"]), int(r["p999"]))
        return out


# --- plots ------------------------------------------------------------------------------------
def engine_hist_names() -> tuple[str, ...]:
    """The engine's histograms (workbench/engine/state.py HIST_NAMES)."""
    from workbench.engine.state import HIST_NAMES
    return tuple(HIST_NAMES)


def bucket_highs(lows: np.ndarray) -> np.ndarray:
    """Highest value of each HDR bucket given its lowest (the engine's bucket layout)."""
    from workbench.metrics.hist import bucket_high, bucket_of
    return np.array([bucket_high(bucket_of(int(v))) for v in lows], np.int64)


def hist_data(hist) -> dict:
    """Bokeh source columns of a workbench Histogram (non-empty buckets)."""
    lows, highs, counts = hist.buckets()
    return {"left": lows.astype(float), "right": (highs + 1).astype(float), "top": counts.astype(float)}


def fmt_ns(v: float) -> str:
    if v < 0:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{int(v)} ns"


class HistPlot:
    """A log-x histogram of ns values with p50 / p99 / p99.9 marked."""

    MARKS = (("p50", "#2a9d8f"), ("p99", "#e9c46a"), ("p99.9", "#e76f51"))

    def __init__(self, name: str, title: str | None = None, width: int = 0, height: int = 0):
        width, height = width or PLOT_W, height or PLOT_H
        from bokeh.models import ColumnDataSource, Label, Span
        from bokeh.plotting import figure
        self.name = name
        self.source = ColumnDataSource({"left": [], "right": [], "top": []}, name=f"hist_{name}")
        fig = figure(title=title or name, x_axis_type="log", height=height, width=width,
                     tools="pan,wheel_zoom,box_zoom,reset,hover", tooltips=[("from", "@left{0,0} ns"),
                                                                             ("to", "@right{0,0} ns"),
                                                                             ("count", "@top{0,0}")],
                     toolbar_location="above", name=f"fig_{name}")
        fig.quad(left="left", right="right", top="top", bottom=0, source=self.source, fill_color="#457b9d",
                 line_color="#1d3557", alpha=0.8)
        fig.xaxis.axis_label = "ns (log)"
        fig.yaxis.axis_label = "count"
        self.spans, self.labels = {}, {}
        for q, color in self.MARKS:
            s = Span(location=1, dimension="height", line_color=color, line_width=2, line_dash="dashed",
                     visible=False)
            lab = Label(x=1, y=4, y_units="screen", angle=math.pi / 2, text="", text_color=color,
                        text_font_size="10px", x_offset=-2, visible=False)
            fig.add_layout(s)
            fig.add_layout(lab)
            self.spans[q], self.labels[q] = s, lab
        self.title = title or name
        self.figure = fig

    def update(self, data: dict, marks: dict) -> None:
        """``data``: left/right/top columns; ``marks``: {'p50': ns, 'p99': ns, 'p99.9': ns}."""
        if len(data["top"]) != len(self.source.data["top"]) or list(data["top"]) != list(self.source.data["top"]):
            self.source.data = data
        for q, _c in self.MARKS:
            v = marks.get(q, -1)
            ok = v is not None and v > 0
            self.spans[q].visible = ok
            self.labels[q].visible = ok
            if ok:
                self.spans[q].location = float(v)
                self.labels[q].x = float(v)
                self.labels[q].text = f"{q} {fmt_ns(v)}"
        shown = [f"{q} {fmt_ns(marks[q])}" for q, _c in self.MARKS if (marks.get(q) or -1) > 0]
        self.figure.title.text = self.title + ("   (" + " · ".join(shown) + ")" if shown else "")

    def update_from(self, hist) -> None:
        if hist.count:
            self.update(hist_data(hist), hist.percentiles((50, 99, 99.9)))


def score_hist_data(scores: np.ndarray) -> dict:
    s = scores[np.isfinite(scores)]
    counts, edges = np.histogram(s, bins=SCORE_BINS, range=(0.0, 1.0))
    return {"left": edges[:-1], "right": edges[1:], "top": counts.astype(float)}


def profit_lines(df: pd.DataFrame, t0_ns: int) -> dict:
    """{type: (seconds since the start, cumulative expected profit SOL)}."""
    out = {}
    if df.empty or "type" not in df:
        return out
    for typ, g in df.groupby("type", observed=True):
        g = g.sort_values("ts_ns")
        out[str(typ)] = ((g["ts_ns"].to_numpy() - t0_ns) / 1e9, g["expected_profit_sol"].cumsum().to_numpy())
    return out


def thin(n: int, most: int = 0) -> np.ndarray:
    """Indexes of at most ``most`` (PROFIT_POINTS_PER_UPDATE) of ``n`` points, evenly spread, the last kept."""
    most = most or PROFIT_POINTS_PER_UPDATE
    if n <= most:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, most).round().astype(np.int64))
