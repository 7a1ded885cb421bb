"""Per-row cost of what the server does with each engine opportunity row: its WebSocket
JSON (frames.py ``row_items``, made on the run's sink thread) and the GET memory taking it (recent.py
``add_lazy``: its keys) and shaping it when a page first reads it (recent_route.py ``_shape``: conform,
page shape; then its row dicts). CPU time (time.process_time) per row over an engine run's
opportunities.parquet, in batches of ``--batch`` rows as the pump takes them.

Peer: ``orjson.dumps`` of each row dict (``table.to_pylist()``), the plain way to the same bytes.
Then ``row_items``' two paths side by side at each of ``--sizes`` rows a batch: the column kernels
(json_rows.py ``row_bytes``) and the row dicts in one orjson call; ``frames.KERNEL_ROWS_MIN`` is
where the first starts to pay (measured alone here: on the server's event loop the kernels'
calls also wait to take the GIL back).

    python benchmarks/bench_ws_rows.py [OPPORTUNITIES.parquet] [--batch 1024] [--repeat 5] [--sizes 8,32,...]

Without a file it uses the opportunities of a replay of bench_ws.py's capture (the 300k-packet
unique capture, made once under runs/bench/), replayed once and kept beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq


def per_row_us(make, batches, repeat: int) -> float:
    """Median CPU us per row of ``make()`` (a fresh function per repetition) over the batches."""
    rows = sum(b.num_rows for b in batches)
    out = []
    for _ in range(repeat):
        fn = make()
        t0 = time.process_time()
        for b in batches:
            fn(b)
        out.append((time.process_time() - t0) / rows * 1e6)
    return statistics.median(out)


UNIQUE_PACKETS = 300_000           # bench_ws.py's default capture


def default_opportunities() -> Path:
    """opportunities.parquet of a replay (no store) of bench_ws.py's capture: made on first use."""
    from common import REPO
    from unique_capture import unique_capture
    capture = unique_capture(UNIQUE_PACKETS, base=REPO / "captures" / "market.pcapng")
    run = capture.with_name(capture.stem + "-run")
    out = run / "opportunities.parquet"
    if not out.exists() or out.stat().st_mtime < capture.stat().st_mtime:
        print(f"replaying {capture.name} once for its opportunities ({run})", flush=True)
        subprocess.run([sys.executable, "-m", "workbench.cli", "replay", str(capture), "--market",
                        str(capture.with_name(capture.name + ".market")), "--no-db", "--out", str(run), "-q"],
                       check=True, timeout=1800)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("parquet", nargs="?", help="an engine run's opportunities.parquet (default: see above)")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", default="8,32,128,256,512,1024", help="batch sizes of the two paths' comparison")
    a = ap.parse_args()
    from workbench.api.frames import KERNEL_ROWS_MIN, dict_items, row_items, table_rows
    from workbench.api.json_rows import row_bytes
    from workbench.api.opportunity_rows import TABLE
    from workbench.api.recent import RecentOpportunities, page_table
    from workbench.api.store_access import StoreAccess
    from workbench.store.columns import conform, mev_opportunities_table

    t = mev_opportunities_table(pq.read_table(a.parquet or default_opportunities()), "replay")
    batches = [t.slice(i, a.batch) for i in range(0, t.num_rows, a.batch)]
    print(f"{t.num_rows:,} rows in batches of {a.batch} [load {os.getloadavg()[0]:.2f}]")
    peer = per_row_us(lambda: lambda b: [orjson.dumps(r) for r in b.to_pylist()], batches, a.repeat)
    ours = per_row_us(lambda: row_items, batches, a.repeat)
    print(f"WebSocket JSON: row_items {ours:.3f} us/row; peer orjson per dict {peer:.3f} us/row")
    for size in (int(x) for x in a.sizes.split(",")):
        part = [t.slice(i, size) for i in range(0, t.num_rows - size + 1, size)] or [t]
        kern = per_row_us(lambda: row_bytes, part, a.repeat) * size
        dicts = per_row_us(lambda: lambda b: dict_items(table_rows(b)), part, a.repeat) * size
        print(f"  {part[0].num_rows:5d} rows a batch: column kernels {kern:8.1f} us, row dicts + one orjson call "
              f"{dicts:8.1f} us (kernels/dicts {kern / dicts:.2f}x; row_items takes the kernels from "
              f"{KERNEL_ROWS_MIN} rows)")
    with tempfile.TemporaryDirectory() as tmp:
        store = StoreAccess(f"chdb://{tmp}/db")
        schema = store.page_schema()
        store.close()

    def keys_in():
        recent = RecentOpportunities(schema, None)
        return lambda b: recent.add_lazy(b.column("opportunity_id").to_pylist(), b.column("timestamp_ns").to_pylist(),
                                         lambda: table_rows(page_table(conform(TABLE, b, "run-1"), schema)))

    def first_read():
        return lambda b: table_rows(page_table(conform(TABLE, b, "run-1"), schema))

    keys, shaped = per_row_us(keys_in, batches, a.repeat), per_row_us(first_read, batches, a.repeat)
    print(f"GET memory: a batch in by its keys {keys:.3f} us/row; shaped when a page first reads it (conform + "
          f"page_table + row dicts) {shaped:.3f} us/row [load {os.getloadavg()[0]:.2f}]")


if __name__ == "__main__":
    main()
