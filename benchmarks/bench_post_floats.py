"""A posted body's check when its floats are huge: msgspec's single pass beside orjson's parse and
msgspec's check of the values (``msgspec.convert``), in one run.

msgspec parses a float whose decimal exponent, over its digits, passes 288 (about 1e289 and up)
by an exact slow path; ``api/posted_json.py`` therefore has orjson parse every body of more than
``PARSED_FIRST_BYTES`` first. This prints, for bodies of ordinary floats and of huge ones, at
several sizes: the time of each way (median of ``--repeat``), ``decode_rows`` (the server's
choice), and the ratio single pass / parsed first. The check holds the GIL, so on the server its
time is time the event loop cannot run.

    python benchmarks/bench_post_floats.py [--rows 10,100,1000,10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import orjson

from workbench.api.post_columns import NAMES
from workbench.api.posted_json import PARSED_FIRST_BYTES, decode_rows, parsed_first, single_pass

FLOATS = [n for n in NAMES if n.startswith("f_")] + ["profit", "score"]
HUGE = (1e300, -1.7976931348623157e308, 1e289)
ORDINARY = (0.0123, -1.5, 123456.789)


def body(rows: int, values: tuple[float, ...]) -> bytes:
    out = []
    for i in range(rows):
        r = {"timestamp_ns": 1_750_000_000_000_000_000 + i, "opportunity_id": str(uuid.UUID(int=i + 1, version=4)),
             "type": "sandwich", "pools": ["PoolA", "PoolB"]}
        r.update({n: values[k % len(values)] for k, n in enumerate(FLOATS)})
        out.append(r)
    return orjson.dumps(out)


def timed(fn, data: bytes, repeat: int) -> float:
    """Median seconds of ``fn(data)``; its result must hold rows."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        got = fn(data)
        times.append(time.perf_counter() - t)
        assert got is not None and len(got) > 0
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default="10,100,1000,10000", help="rows per body, comma-separated")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    ways = {"single pass": single_pass, "parsed first": parsed_first, "decode_rows": decode_rows}
    print(f"{len(FLOATS)} float columns a row; bodies past {PARSED_FIRST_BYTES:,} bytes are parsed first")
    for name, values in (("ordinary", ORDINARY), ("huge", HUGE)):
        for rows in (int(r) for r in a.rows.split(",")):
            data = body(rows, values)
            got = {way: timed(fn, data, a.repeat) for way, fn in ways.items()}
            print(f"{name:8} floats, {rows:6,} rows ({len(data):>10,} B): "
                  + "  ".join(f"{way} {t * 1e3:9.3f} ms" for way, t in got.items())
                  + f"  single pass / parsed first {got['single pass'] / got['parsed first']:6.2f}x", flush=True)


if __name__ == "__main__":
    main()
