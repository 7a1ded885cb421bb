"""What the two Panel apps share: argument parsing, clear messages for missing inputs, the
tables and plots as pages show them.

The run a page watches is a ``workbench.runner.BackgroundRun`` (one engine run, a finished
run or a store, on a background thread); pages read it from periodic callbacks, each
keeping its own read position, so a page never waits for the engine and the engine never
waits for a page. One run per server is shared by its pages (``run_from_args``).
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from _display import SnapshotNames, int_column, snapshot_problem, ts_column
from workbench.runner import BackgroundRun, replay_options, short_error  # noqa: F401  (short_error: for the pages)
from workbench.store.schema import OPPORTUNITY_TYPES  # noqa: F401  (the pages read it as C.OPPORTUNITY_TYPES)

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
DATA_DIR_ENV = "WORKBENCH_DATA_DIR"   # where the apps list and write captures, models and runs
CAPTURE_SUFFIXES = (".pcap", ".pcapng")
TABLE_PAGE_SIZE = 50            # rows per Tabulator page (remote pagination: only the page is sent)
UPDATE_MS = 500                 # period of the pages' callbacks
LAMPORTS_PER_SOL = 1_000_000_000

# columns of the opportunity table, in order (others stay in the DataFrame, hidden)
OPP_SHOWN = ("ts", "type", "detail", "expected_profit_sol", "score", "profit_quote", "tip_lamports", "amount_in",
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
    p.add_argument("--data-dir", default=None,
                   help=f"folder whose captures/, models/ and runs/ the apps list and write (default: ${DATA_DIR_ENV}, "
                        f"else the folder the server was started from); the repository's captures are listed too")
    p.add_argument("--token-file", default=None,
                   help="file whose first line is the access token a page must present (?token=...); needed to "
                        "serve beyond loopback (or WORKBENCH_VIEWS_TOKEN, or Panel's --basic-auth)")
    return p.parse_args(argv)


# --- where data lives -------------------------------------------------------------------------
def data_dir(args: argparse.Namespace) -> Path:
    """The user's folder: --data-dir, else $WORKBENCH_DATA_DIR, else the server's working directory
    (where the user started it; never the repository unless started there)."""
    return Path(args.data_dir or os.environ.get(DATA_DIR_ENV) or os.getcwd()).resolve()


def search_dirs(args: argparse.Namespace) -> list[Path]:
    """Folders listed for captures, markets and models: the data folder, then the repository."""
    return list(dict.fromkeys([data_dir(args), REPO]))


def resolve(path: str | None, args: argparse.Namespace) -> str | None:
    """An absolute path for a path a page lists or a user typed: relative ones are looked up in
    the data folder, then the repository (the first that exists; the data folder's when none)."""
    if not path:
        return None
    p = Path(path)
    if p.is_absolute():
        return str(p)
    for d in search_dirs(args):
        if (d / p).exists():
            return str(d / p)
    return str(data_dir(args) / p)


def shown_path(path: Path, args: argparse.Namespace) -> str:
    """A listed path as a page shows it: relative to the data folder or the repository, else absolute."""
    for d in search_dirs(args):
        try:
            return str(path.relative_to(d))
        except ValueError:
            continue
    return str(path)


def views_out_dir(args: argparse.Namespace) -> Path:
    """Where a page's runs are written: --out, else runs/views/ of the data folder."""
    return Path(args.out).resolve() if args.out else data_dir(args) / "runs" / "views"


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
        return snapshot_problem(path)        # the engine's column checks, before anything runs
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


OPP_INT_COLUMNS = ("amount_in", "amount_out", "profit_quote", "tip_lamports", "expected_profit_lamports")


def _exact_ints(df: pd.DataFrame, table: pa.Table, columns) -> None:
    """Integer columns that may pass 2**53 as exact text (``_display.int_column``), read from the
    Arrow column (pandas would make a uint64 with nulls a float)."""
    for c in columns:
        if c in df and c in table.column_names and pa.types.is_integer(table.schema.field(c).type):
            df[c] = int_column(table.column(c).to_pylist())


def tx_frame(table: pa.Table) -> pd.DataFrame:
    """tx_features rows for display: event time to the microsecond, program names joined (fees stay
    numbers: the fee filter compares them, and fees are far below 2**53)."""
    df = table.to_pandas()
    if df.empty:
        return pd.DataFrame({c: [] for c in TX_SHOWN})
    df["ts"] = ts_column(df["ts_ns"])
    if "programs" in df:
        df["programs"] = _join_list(table.column("programs").to_pylist())
    if "version" in df and df["version"].dtype.kind in "iu":
        df["version"] = np.where(df["version"] < 0, "legacy", "v0")
    return df[[c for c in TX_SHOWN if c in df.columns] + [c for c in df.columns if c not in TX_SHOWN]]


def opp_frame(table: pa.Table, names: SnapshotNames | None = None) -> pd.DataFrame:
    """opportunities rows for display: pools as 'SYM/SYM addr' joined with ' > ' (the addresses kept
    in ``pool_addresses``), amounts as exact integers, event time to the microsecond."""
    df = table.to_pandas()
    if df.empty:
        return pd.DataFrame({c: [] for c in OPP_SHOWN})
    if "ts_ns" in df:
        df["ts"] = ts_column(df["ts_ns"])
    if "pools" in df:
        pools = [list(v) if v is not None else [] for v in table.column("pools").to_pylist()]
        df["pool_addresses"] = [" > ".join(v) for v in pools]
        label = names.pool_label if names is not None else (lambda a: a)
        df["pools"] = [" > ".join(label(a) for a in v) for v in pools]
    if "score" not in df:
        df["score"] = np.nan
    if "expected_profit_sol" not in df and "expected_profit_lamports" in df:
        df["expected_profit_sol"] = df["expected_profit_lamports"] / LAMPORTS_PER_SOL
    _exact_ints(df, table, OPP_INT_COLUMNS)
    return df[[c for c in OPP_SHOWN if c in df.columns] + [c for c in df.columns if c not in OPP_SHOWN]]


BROWSER_DROP = ("ts_ns", "origin_ts_ns", "program_mask")   # int64 beyond 2**53: a browser's doubles lose them


SAFE_TITLE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .\-]{0,63}")   # a column name a table may show as its title


def browser_safe(df: pd.DataFrame) -> pd.DataFrame:
    """The columns a table sends to the browser: none whose integers a double cannot hold
    (``ts`` shows the event time), and none whose NAME (a run folder's Parquet may carry any)
    is more than a plain title: a table writes titles as markup."""
    return df.drop(columns=[c for c in df.columns if c in BROWSER_DROP or not SAFE_TITLE.fullmatch(str(c))])


def retyped_table(table, value: pd.DataFrame, column, make):
    """``table`` showing ``value``, or, when ``value``'s columns (names and types) differ from the ones
    it shows, a new table ``make(value)`` put in its place in the layout ``column``. Panel rebuilds a Tabulator whose column configuration changes (its sorters
    follow the types; an empty table's columns have none), and the rows and page count sent while it
    rebuilds were sometimes lost: an empty table under a full page count, in the explorer's and the
    live page's browser tests (2026-12-07)."""
    if list(value.dtypes.items()) == list(table.value.dtypes.items()):
        table.value = value
        return table
    new = make(value)
    column[column.objects.index(table)] = new
    return new


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
    out = args.out or str(views_out_dir(args) / time.strftime("%Y%m%d-%H%M%S"))
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


def restart_out(run: BackgroundRun, args: argparse.Namespace, n: int) -> str | None:
    """The folder a page's n-th restart of ``run`` writes (beside the first run's; never over it)."""
    if run.out_dir is None:
        return None
    base = Path(args.out).resolve() if args.out else views_out_dir(args)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return str(base.with_name(f"{base.name}-restart-{stamp}-{os.getpid()}-{n}") if args.out
               else base / f"{stamp}-restart-{n}")


RESTARTABLE = ("replay", "run", "live")     # a store is watched, not run: nothing to restart
RUN_CONFIG = ("mode", "capture", "out_dir", "speed", "loop", "market", "model", "db", "iface", "udp_ports",
              "duration", "run_dir", "rate")     # what a BackgroundRun is asked to do (not what it found)
STOP_POLL_S = 0.05


def run_again(run: BackgroundRun, out_dir: str | None) -> BackgroundRun:
    """A fresh, unstarted run of ``run``'s source and options (a page's restart), writing to
    ``out_dir`` (a replay's outputs are never written over another run's)."""
    kw = {name: getattr(run, name) for name in RUN_CONFIG}
    if out_dir is not None:
        kw["out_dir"] = out_dir
    return BackgroundRun(**kw)


def stop_and_wait(run: BackgroundRun, timeout_s: float) -> bool:
    """Ask ``run`` to stop and wait up to ``timeout_s`` for its thread to end; whether it has."""
    run.stop()
    deadline = time.monotonic() + timeout_s
    while run.running and time.monotonic() < deadline:
        time.sleep(STOP_POLL_S)
    return not run.running
EXPLORER_APP = "explorer"                  # the explorer's URL beside this app's (one `panel serve` of both)
OPP_FORMATTERS = {"detail": {"type": "link", "label": "explain", "target": "_blank"}}
INT_ALIGN = {c: "right" for c in OPP_INT_COLUMNS}


def explorer_link(run_dir: str, opportunity_id, run: BackgroundRun, args: argparse.Namespace, token: str) -> str:
    """The explorer's URL for one opportunity of a run folder (with the capture, market and model
    the run used, so it can dissect the packet, show pool states and explain the score)."""
    from urllib.parse import urlencode
    if run.mode == "replay" and run.loop > 1:
        run_dir = str(Path(run_dir) / f"lap{run.loop - 1}")
    q = {"run": str(Path(run_dir).resolve()), "opportunity": str(opportunity_id)}
    for k in ("capture", "market", "model"):
        v = getattr(run, k, None) or getattr(args, k, None)
        if v:
            q[k] = str(Path(v).resolve())
    if token:
        q["token"] = token
    return f"{EXPLORER_APP}?{urlencode(q)}"   # a store is watched, not run: nothing to restart


# --- plots (panel_apps/_plots.py; the pages read them as C.HistPlot, ...) -----------------------
from _plots import (CDF_W, PLOT_H, PLOT_W, PROFIT_POINTS_MAX, HistPlot, RatePlot, engine_hist_names,  # noqa: E402,F401
                    fmt_ns, hist_views, profit_lines, score_hist_data, thin)
