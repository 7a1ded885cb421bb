"""A posted body's check when its floats are huge: msgspec's single pass beside orjson's parse and
msgspec's check of the values (``msgspec.convert``), in one run.

msgspec parses a float whose decimal exponent, over its digits, passes 288 (about 1e289 and up)
by an exact slow path. ``api/posted_json.py`` decodes a body by the single pass, a large one in
pieces, and after a pass far slower than its size explains, parses bodies by orjson first for a
while. This prints, for bodies of ordinary floats and of huge ones, at several sizes (median of
``--repeat``): the single pass, orjson then ``msgspec.convert``, ``decode_rows`` with no slow pass
seen before each call (its first piece of huge floats pays the single pass), and the longest
single call ``decode_rows`` makes (the longest the GIL is held in one go: on the server, time the
event loop cannot run).

    python benchmarks/bench_post_floats.py [--rows 10,100,1000,10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import uuid

import orjson

from workbench.api import posted_json
from workbench.api.post_columns import NAMES
from workbench.api.posted_json import PIECE_BYTES, decode_rows, parsed_first, single_pass

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


def decode_rows_first(data: bytes):
    """``decode_rows`` with the parsed-first window closed (as if no slow pass came before)."""
    posted_json.parsed_first_until = 0.0
    return decode_rows(data)


class _TimedRaws:
    """posted_json's cut of a body into its rows, timed (it holds the GIL too)."""

    def __init__(self, real, note):
        self.real, self.note = real, note

    def decode(self, data):
        t = time.perf_counter()
        try:
            return self.real.decode(data)
        finally:
            self.note(time.perf_counter() - t)


def longest_call(data: bytes, repeat: int) -> float:
    """Median over ``repeat`` of the longest single C call ``decode_rows_first`` makes (seconds): the
    cut into rows, a piece's single pass or its parse by orjson first."""
    one, first, raws = posted_json.single_pass, posted_json.parsed_first, posted_json._RAWS
    longest = [0.0]

    def note(s: float) -> None:
        longest[0] = max(longest[0], s)

    def timed_call(fn):
        def call(b):
            t = time.perf_counter()
            try:
                return fn(b)
            finally:
                note(time.perf_counter() - t)
        return call

    out = []
    posted_json.single_pass, posted_json.parsed_first = timed_call(one), timed_call(first)
    posted_json._RAWS = _TimedRaws(raws, note)
    try:
        for _ in range(repeat):
            longest[0] = 0.0
            decode_rows_first(data)
            out.append(longest[0])
    finally:
        posted_json.single_pass, posted_json.parsed_first, posted_json._RAWS = one, first, raws
        posted_json.parsed_first_until = 0.0
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default="10,100,1000,10000", help="rows per body, comma-separated")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    logging.getLogger(posted_json.__name__).setLevel(logging.ERROR)      # (each slow first piece says so)
    ways = {"single pass": single_pass, "parsed first": parsed_first, "decode_rows": decode_rows_first}
    print(f"{len(FLOATS)} float columns a row; bodies past {PIECE_BYTES:,} bytes are decoded in pieces")
    for name, values in (("ordinary", ORDINARY), ("huge", HUGE)):
        for rows in (int(r) for r in a.rows.split(",")):
            data = body(rows, values)
            got = {way: timed(fn, data, a.repeat) for way, fn in ways.items()}
            got["its longest call"] = longest_call(data, a.repeat)
            print(f"{name:8} floats, {rows:6,} rows ({len(data):>10,} B): "
                  + "  ".join(f"{way} {t * 1e3:9.3f} ms" for way, t in got.items())
                  + f"  single pass / decode_rows {got['single pass'] / got['decode_rows']:6.2f}x", flush=True)


if __name__ == "__main__":
    main()
