"""What the two Panel apps share: argument parsing, clear messages for missing inputs, the
tables and plots as pages show them.

The run a page watches is a ``workbench.runner.BackgroundRun`` (one engine run, a finished
run or a store, on a background thread); pages read it from periodic callbacks, each
keeping its own read position, so a page never waits for the engine and the engine never
waits for a page. One run per server is shared by its pages (``run_from_args``).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from workbench.runner import BackgroundRun, replay_options, short_error  # noqa: F401  (short_error: for the pages)
from workbench.store.schema import OPPORTUNITY_TYPES  # noqa: F401  (the pages read it as C.OPPORTUNITY_TYPES)

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
CAPTURE_SUFFIXES = (".pcap", ".pcapng")
TABLE_PAGE_SIZE = 50            # rows per Tabulator page (remote pagination: only the page is sent)
UPDATE_MS = 500                 # period of the pages' callbacks
PLOT_W, PLOT_H = 440, 260           # px of each plot
PROFIT_POINTS_PER_UPDATE = 20   # points per type a page update adds to the profit lines
PROFIT_POINTS_MAX = 5_000       # points per profit line kept in the browser (older ones roll off)
SCORE_BINS = 20                 # bins of the score histogram over [0, 1]
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


def engine_problem(market: str | None, model: str | None) -> str | None:
    """A message when the engine cannot take a market or model it is given."""
    opts = replay_options()
    for kind, val in (("market", market), ("model", model)):
        if val and kind not in opts:
            return (f"This engine takes no {kind} yet (`workbench.config.Settings` has no `{kind}`); "
                    f"run without `--{kind}`.")
    return None


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


def run_from_args(args: argparse.Namespace, key: str) -> tuple[BackgroundRun | None, list[str]]:
    """The background run the arguments ask for (shared by the pages of one server), or the messages."""
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
        run = BackgroundRun("replay", capture=args.capture, out_dir=out, speed=args.speed, loop=args.loop,
                            market=args.market, model=args.model, db=args.db)
    elif args.iface or args.udp_ports:
        run = BackgroundRun("live", iface=args.iface, udp_ports=args.udp_ports, out_dir=out,
                            duration=args.duration, db=args.db)
    elif args.run:
        run = BackgroundRun("run", run_dir=args.run, rate=args.rate, duration=args.duration)
    elif args.store:
        run = BackgroundRun("store", db=args.store)
    else:
        return None, []
    cache[key] = run.start()
    return run, []


# --- plots ------------------------------------------------------------------------------------
def engine_hist_names() -> tuple[str, ...]:
    """The engine's histograms (workbench/engine/state.py HIST_NAMES)."""
    from workbench.engine.state import HIST_NAMES
    return tuple(HIST_NAMES)


def hist_columns(lows: np.ndarray, highs: np.ndarray, counts: np.ndarray) -> dict:
    """Bokeh source columns of histogram buckets (each bar from its low to one past its high)."""
    return {"left": lows.astype(float), "right": (highs + 1).astype(float), "top": counts.astype(float)}


def hist_views(run: BackgroundRun) -> dict:
    """{name: (bokeh columns, {'p50','p99','p99.9'} ns)} of the run's histograms."""
    return {name: (hist_columns(lows, highs, counts), marks)
            for name, (lows, highs, counts, marks) in run.histograms().items()}


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
