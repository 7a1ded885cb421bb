"""Store insert throughput and the top-opportunities query, on the embedded store (chDB).

Peer: clickhouse-connect ``Client.insert`` with Python rows (lists of Python values: int
ns timestamps, uuid.UUID, enum labels, lists of str), the way an application without Arrow
writes. Ours: ``Store.insert_batch`` (``conform`` + ``Client.insert_arrow`` with a
deduplication token), the path the StoreWriter thread runs for each engine batch.
Both insert the same rows into the same empty table (truncated between repetitions, not
timed); building the peer's Python rows is not timed either. Figures are medians.

Then the query ``top 100 opportunities by profit in the last hour`` over ``--query-rows``
rows spread over the last 24 hours (goal: p50 < 50 ms at 10M rows; the default is smaller
so that the script finishes in a few minutes on a 2-core machine: pass --query-rows 10000000).

    python benchmarks/bench_store_insert.py [--sizes 10000,100000,1000000] [--reps 5]
                                            [--query-rows 2000000] [--db chdb:///dir]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.store import StoreWriter, connect  # noqa: E402
from workbench.store.schema import OPPORTUNITY_TYPES  # noqa: E402
from workbench.wire.base58 import ALPHABET as B58  # noqa: E402
from workbench.wire.keys import program_address  # noqa: E402

GOALS = {"mev_opportunities": 2_000_000, "tx_features": 1_000_000}   # rows/s, our path
QUERY_GOAL_MS = 50.0
TOP_QUERY = ("SELECT timestamp, opportunity_id, type, profit, pools FROM mev_opportunities "
             "WHERE timestamp >= now64(9) - INTERVAL 1 HOUR ORDER BY profit DESC LIMIT 100")
POOLS = pa.array(["58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2", "7XawhbbxtsRcQA8KTkHT9f9nc6d69UwqCDh6U5EEbEmX",
                  "HJPjoWUrhoZzkNfRpHuieeFk9WcZWjwy6PBjZ81ngndJ", "Czfq3xZZDmsdGdUyrNLtRhGc47cXcZtLG4crryfu44zE",
                  "2QdhepnKRTLjjSqPL1PtKNwqrUkoLee5Gqs8bvZhRdMv", "8sLbNZoA1cfnvMJLPfp98ZLAnFSYCFApfJKMbiXNLwxj"])
PROGRAMS = pa.array([program_address(name) for name in ("compute_budget", "system", "jupiter_v6", "raydium_amm_v4",
                                                         "orca_whirlpool", "spl_token")])


def b58(rng, n, length):
    raw = B58[rng.integers(0, len(B58), (n, length))]
    offs = np.arange(0, (n + 1) * length, length, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offs), pa.py_buffer(raw.tobytes()))


def lists(rng, n, values, lo, hi):
    counts = rng.integers(lo, hi + 1, n).astype(np.int32)
    offs = np.zeros(n + 1, np.int32)
    np.cumsum(counts, out=offs[1:])
    return pa.ListArray.from_arrays(pa.array(offs), values.take(pa.array(rng.integers(0, len(values), int(offs[-1])))))


def opportunities(n, seed=0, t_end_ns=None, span_ns=3_600 * 10**9):
    """Engine-shaped opportunity rows; timestamps in [t_end - span, t_end)."""
    rng = np.random.default_rng(seed)
    t_end_ns = t_end_ns or time.time_ns()
    ids = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    kind = rng.integers(1, 4, n).astype(np.int8)
    # only a sandwich has a victim: the others carry '' (the column's sentinel)
    victim = pa.compute.if_else(pa.array(kind == 2), b58(rng, n, 88), pa.scalar("", pa.string()))
    return pa.table({
        "timestamp": pa.array(np.sort(t_end_ns - rng.integers(1, span_ns, n)), pa.timestamp("ns")),
        "opportunity_id": pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(ids.tobytes())]),
        "type": pa.array(kind),
        "profit": rng.gamma(2.0, 0.05, n),
        "pools": lists(rng, n, POOLS, 1, 3),
        "run_id": pa.repeat(pa.scalar("bench", pa.string()), n),
        "slot": 390_000_000 + np.arange(n, dtype=np.int64) // 1_000,
        "victim_signature": victim,
        "score": rng.random(n),
        "expected_profit_lamports": rng.integers(0, 10**9, n),
        "tip_lamports": rng.integers(0, 10**6, n),
        "detect_latency_ns": rng.integers(1_000, 10**6, n),
        "source": pa.array(np.ones(n, np.int8)),
    })


def tx_features(n, seed=0):
    rng = np.random.default_rng(seed)
    idx = np.arange(n, dtype=np.int64)
    return pa.table({
        "tx_index": idx,
        "packet_index": idx,
        "ts_ns": time.time_ns() - 3_600 * 10**9 + idx * 1_000,
        "slot": 390_000_000 + idx // 4_000,
        "signature": b58(rng, n, 88),
        "version": pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 2, n).astype(np.int8)),
                                                  pa.array(["legacy", "0"])).dictionary_decode(),
        "size": rng.integers(100, 1233, n).astype(np.int32),
        "num_signatures": rng.integers(1, 3, n).astype(np.int32),
        "num_account_keys": rng.integers(1, 64, n).astype(np.int32),
        "num_instructions": rng.integers(0, 12, n).astype(np.int32),
        "num_lookup_tables": rng.integers(0, 3, n).astype(np.int32),
        "compute_unit_limit": rng.integers(0, 1_400_001, n),
        "compute_unit_price": rng.integers(0, 10**9, n),
        "priority_fee_lamports": rng.integers(0, 10**7, n),
        "jito_tip_lamports": rng.integers(0, 10**6, n),
        "program_mask": rng.integers(0, 2**40, n),
        "programs": lists(rng, n, PROGRAMS, 0, 4),
    })


def python_rows(table_name: str, t: pa.Table, run_id: str = "bench"):
    """The peer's input: Python rows with Python values, in the table's column order."""
    cols, names = [], []
    for name in t.column_names:
        c = t.column(name)
        if name == "ts_ns":
            name = "ts"
        if pa.types.is_timestamp(c.type):
            vals = c.cast(pa.int64()).to_pylist()                     # raw DateTime64(9) ticks
        elif name == "opportunity_id":
            vals = [uuid.UUID(bytes=b) for b in c.to_pylist()]
        elif name in ("type", "source"):
            labels = OPPORTUNITY_TYPES if name == "type" else ("unknown", "replay", "live")
            off = 1 if name == "type" else 0
            vals = [labels[v - off] for v in c.to_pylist()]
        else:
            vals = c.to_pylist()
        cols.append(vals)
        names.append(name)
    if table_name == "tx_features":
        cols.insert(0, [run_id] * t.num_rows)
        names.insert(0, "run_id")
    return names, list(map(list, zip(*cols)))


def median_rate(rows, times):
    return rows / statistics.median(times)


def _timed(store, table, reps, insert) -> list[float]:
    times = []
    for r in range(reps):
        store.command(f"TRUNCATE TABLE {table}")
        t0 = time.perf_counter()
        insert(r)
        times.append(time.perf_counter() - t0)
    return times


def bench_writer(store, table, data, total, reps) -> float:
    """Rows/s through StoreWriter: ``total`` rows put as batches of ``data``, first put to close()."""
    k = max(1, total // data.num_rows)
    spool = tempfile.mkdtemp(prefix="bench-spool-")
    times = []
    try:
        for r in range(reps):
            store.command(f"TRUNCATE TABLE {table}")
            w = StoreWriter(store.dsn, spool, queue_batches=8, run_id=f"bench{r}").start()
            t0 = time.perf_counter()
            for _ in range(k):
                w.put(table, data)
            st = w.close()
            times.append(time.perf_counter() - t0)
            assert st.rows_inserted == k * data.num_rows and st.rows_spooled == 0, st
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    return median_rate(k * data.num_rows, times)


def bench_inserts(store, sizes, reps):
    results = []
    total = max(sizes)
    for table, make in (("mev_opportunities", opportunities), ("tx_features", tx_features)):
        for n in sizes:
            data = make(n, seed=n)
            ours = _timed(store, table, reps, lambda r: store.insert_batch(
                table, data, f"bench:{table}:{n}:{r}:{time.time_ns()}", run_id="bench"))
            assert store.count(table) == n, f"{table}: {store.count(table)} rows after inserting {n}"
            names, rows = python_rows(table, data)        # built after our runs: its memory is not around them
            gc.collect()
            gc.freeze()                                   # the peer's million lists need not be scanned
            peer = _timed(store, table, reps, lambda r: store.client.insert(table, rows, column_names=names))
            assert store.count(table) == n, f"{table}: {store.count(table)} rows after inserting {n}"
            del rows
            gc.unfreeze()
            gc.collect()
            writer = bench_writer(store, table, data, total, reps)
            results.append((table, n, median_rate(n, peer), median_rate(n, ours), writer))
            _print_row(*results[-1])
    store.command("TRUNCATE TABLE mev_opportunities")
    store.command("TRUNCATE TABLE tx_features")
    return results


def _print_row(table, n, peer, ours, writer):
    goal = GOALS[table]
    ok = "ok" if writer >= goal else "BELOW"
    print(f"{table:<18} {n:>10,} {peer:>13,.0f} {ours:>13,.0f} {ours / peer:>6.1f}x {writer:>13,.0f} "
          f"{writer / peer:>6.1f}x   {goal / 1e6:.0f}M: {ok}", flush=True)


def bench_query(store, n_rows, reps, chunk=1_000_000):
    store.command("TRUNCATE TABLE mev_opportunities")
    t_end = time.time_ns()
    t0 = time.perf_counter()
    for i, start in enumerate(range(0, n_rows, chunk)):
        n = min(chunk, n_rows - start)
        store.insert_batch("mev_opportunities", opportunities(n, seed=10_000 + i, t_end_ns=t_end,
                                                              span_ns=24 * 3_600 * 10**9), f"q:{t_end}:{i}")
    fill_s = time.perf_counter() - t0
    assert store.count("mev_opportunities") == n_rows
    in_hour = store.scalar("SELECT count() FROM mev_opportunities WHERE timestamp >= now64(9) - INTERVAL 1 HOUR")
    for _ in range(3):                                   # warm the caches, as a dashboard's repeat query would be
        store.query_arrow(TOP_QUERY)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        top = store.query_arrow(TOP_QUERY)
        times.append((time.perf_counter() - t) * 1e3)
    assert top.num_rows == 100
    times.sort()
    p50, p90 = times[len(times) // 2], times[int(len(times) * 0.9)]
    ok = "ok" if p50 < QUERY_GOAL_MS else "ABOVE"
    parts = store.scalar("SELECT count() FROM system.parts WHERE active AND table = 'mev_opportunities' "
                         "AND database = currentDatabase()")
    print(f"\ntop 100 opportunities by profit in the last hour, over {n_rows:,} rows "
          f"({in_hour:,} in the last hour, {parts} parts; filled in {fill_s:.1f} s):")
    print(f"  p50 {p50:.1f} ms   p90 {p90:.1f} ms   ({reps} runs)   goal p50 < {QUERY_GOAL_MS:.0f} ms: {ok}")
    return p50


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="batch sizes, comma-separated")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per size (median reported)")
    ap.add_argument("--query-rows", type=int, default=2_000_000, help="rows for the query benchmark (goal: 10000000)")
    ap.add_argument("--query-reps", type=int, default=30)
    ap.add_argument("--db", default=None, help="store DSN (default: a fresh chdb directory, removed after)")
    a = ap.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",") if s]
    tmp = None
    dsn = a.db
    if dsn is None:
        tmp = tempfile.mkdtemp(prefix="bench-store-")
        dsn = f"chdb://{tmp}/clickhouse"
    try:
        with connect(dsn) as store:
            version = store.scalar("SELECT version()")
            print(f"store insert, {dsn.split('@')[-1]} (ClickHouse {version}), medians of {a.reps} reps")
            print("peer: clickhouse-connect Client.insert(python rows), one batch per insert\n"
                  "ours, one insert: Store.insert_batch(arrow table), one batch per insert\n"
                  f"ours, StoreWriter: {max(sizes):,} rows put as batches of that size (queue 8, coalesced), "
                  "first put() to close()\n")
            print(f"{'':<18} {'':>10} {'peer':>13} {'ours: one insert':>21} {'ours: StoreWriter':>21}")
            print(f"{'table':<18} {'rows/batch':>10} {'rows/s':>13} {'rows/s':>13} {'ratio':>7} {'rows/s':>13} "
                  f"{'ratio':>7}   goal (writer)")
            bench_inserts(store, sizes, a.reps)
            if a.query_rows:
                bench_query(store, a.query_rows, a.query_reps)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
