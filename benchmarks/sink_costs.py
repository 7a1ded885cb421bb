"""Where a whole replay's time goes, per packet: the engine thread, the sink threads and their parts.

Runs ``workbench.runner.replay`` in this process on a capture (by default the unique-transaction
capture of ``unique_capture.py``, ``--packets`` long, with its market) and times, with each
thread's own CPU clock (``time.thread_time``, so that other processes on a shared machine do not
count), every step a packet's rows pass through:

- engine thread: ``process_batch`` and the hand-off to the sink thread (``SinkThread.put``: a copy
  only where the caller reuses its arrays at once, e.g. live mode);
- sink thread: the gathering (the rows copied in once), building Arrow tables (``tx_table`` with
  raw signatures and program lists, ``status_table``, ``swap_table``, ``opp_table`` with base58
  signatures and its opportunity ids);
- write thread: Parquet encoding and compression (``ParquetWriter.write_table``) per file;
- the capture fingerprint that seeds opportunity ids.

Then it writes one row group of each table again with other Parquet settings (no compression,
plain encodings) to show what each setting costs. Usage:
``python benchmarks/sink_costs.py --packets 1000000``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from common import table
from unique_capture import unique_capture

COST = defaultdict(float)          # step -> thread CPU seconds
CALLS = defaultdict(int)


def timed(step: str, fn):
    def wrapper(*args, **kwargs):
        t = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            COST[step] += time.thread_time() - t
            CALLS[step] += 1
    return wrapper


def instrument():
    """Wrap each step where its callers look it up (module globals), keeping the originals."""
    import workbench.engine.tables as tables
    import workbench.runner.engine_run as engine_run
    import workbench.row_files as row_files
    import workbench.sinks as sinks

    engine_run.process_batch = timed("engine: process_batch", engine_run.process_batch)
    sinks.SinkThread.put = timed("engine: hand rows to the sink thread", sinks.SinkThread.put)
    tables.encode_strings = timed("sink: base58 (signatures)", tables.encode_strings)
    for name in ("tx_table", "status_table", "swap_table", "opp_table"):
        setattr(sinks, name, timed(f"sink: {name} (Arrow)", getattr(sinks, name)))
    sinks.SinkThread._gather = timed("sink: gather engine rows", sinks.SinkThread._gather)
    row_files.ParquetSink._flush = timed("write: regroup + write (all files)", row_files.ParquetSink._flush)
    orig = pq.ParquetWriter.write_table

    def write_table(self, t, *a, **k):
        step = f"write: Parquet {Path(self.where).name.split('.')[0]}"
        return timed(step, orig)(self, t, *a, **k)
    pq.ParquetWriter.write_table = write_table
    return orig


def settings_variants(t: pa.Table, options: dict, orig_write) -> list[tuple[str, float]]:
    """Seconds to write ``t`` (one row group) with ``options`` and with each setting taken away."""
    out = []
    variants = {"as written": options,
                "no compression": {**options, "compression": "none"},
                "lz4": {**options, "compression": "lz4"},
                "zstd level 1": {**options, "compression": "zstd", "compression_level": 1}}
    with tempfile.TemporaryDirectory() as d:
        for label, opts in variants.items():
            best = float("inf")
            for _ in range(3):
                w = pq.ParquetWriter(Path(d) / "x.parquet", t.schema, **opts)
                c = time.thread_time()
                orig_write(w, t, row_group_size=t.num_rows)
                best = min(best, time.thread_time() - c)
                w.close()
            out.append((label, best))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000, help="packets of the unique-transaction capture")
    ap.add_argument("--capture", type=Path, default=None)
    a = ap.parse_args()
    path = a.capture or unique_capture(a.packets)
    market = path.with_name(path.name + ".market")

    from workbench.config import Settings
    from workbench.runner.replay import replay
    from workbench import row_files
    orig_write = instrument()
    groups: dict[str, pa.Table] = {}
    keep = row_files.ParquetSink.write

    def write(self, name, t):          # keep one whole row group of each table for the settings table
        if t.num_rows >= row_files.ROW_GROUP_ROWS // 2 and name not in groups:
            groups[name] = t
        return keep(self, name, t)
    row_files.ParquetSink.write = write
    settings = Settings(market=str(market)) if market.is_dir() else Settings()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        r = replay(path, d, settings)
        wall = time.perf_counter() - t0
    n = r.packets
    rows = [(step, f"{COST[step]:.2f}", f"{COST[step] / n * 1e9:,.0f}", f"{CALLS[step]:,}") for step in sorted(COST)]
    rows.append(("replay wall (end to end)", f"{r.wall_s:.2f}", f"{r.wall_s / n * 1e9:,.0f}", ""))
    table(f"thread CPU per step, {n:,} packets of {path.name} ({r.transactions:,} transactions), "
          f"call wall {wall:.1f} s", rows, ("step", "CPU s", "ns/packet", "calls"))
    for name, t in groups.items():
        opts = row_files.writer_options(name, t.schema)
        rows = [(label, f"{s * 1e3:.1f}", f"{s / t.num_rows * 1e9:,.0f}")
                for label, s in settings_variants(t, opts, orig_write)]
        cols = []
        for c in t.column_names:        # each column alone, as written
            one = t.select([c])
            sub = {k: v for k, v in opts.items() if k in ("compression",)}
            s = settings_variants(one, sub, orig_write)[0][1]
            cols.append((c, s))
        cols.sort(key=lambda x: -x[1])
        rows += [(f"  column {c} alone (zstd)", f"{s * 1e3:.1f}", f"{s / t.num_rows * 1e9:,.0f}") for c, s in cols[:6]]
        table(f"{name}: one row group of {t.num_rows:,} rows", rows, ("settings", "ms", "ns/row"))


if __name__ == "__main__":
    main()
