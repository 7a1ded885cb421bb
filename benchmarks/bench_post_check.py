"""A posted batch's check, JSON and Arrow IPC bodies: ours beside pydantic (FastAPI's way) and the
value-by-value check, in one run.

Ours: ``check_group`` of one body (api/post_columns.py), the server's work from a post's bytes to
its rows checked and each row's JSON made (for the post log, the GET memory and the WebSocket).
A JSON body takes the jitted scan (posted_scan.py), an Arrow body its columns checked one by
one (posted_arrow.py ``by_columns``). Beside it, in the same run:

- "msgspec's pass": the same with the scan turned off, so the JSON body is decoded by msgspec into
  one Struct a row, and each row's JSON encoded from it (posted_json.py: the way before the scan,
  and still the way of a body outside the scan's subset);

- "Arrow converted": the same with the column check turned off, so the Arrow body's table is
  converted by msgspec row dict by row dict (its way before ``by_columns``, and still the way of a
  table whose columns are not of GET's types);

- "value by value": the same ``check_group`` with the scan and the one-pass decoders turned off, so every body
  goes through ``check_rows`` (for Arrow: ``check_arrow_batch``), the path every Arrow body took
  before posted_arrow.py and every body its pass refuses still takes;
- pydantic: a model of the table's columns (the same bounds, labels, canonical UUIDs and defaults,
  strict, extra fields forbidden), ``TypeAdapter(list[Row]).validate_json`` of a JSON body or
  ``validate_python`` of an Arrow body's ``to_pylist()``, then each row's JSON (``dump_json``): what
  a FastAPI route taking ``list[Row]`` does.

The rows are one row of the bundled market capture's replay (every column filled, as the engine
writes it), with a fresh id and time each. Each figure is the median of ``--repeat`` timings of
``--number`` calls, the ways timed in turn, in µs per row.

    python benchmarks/bench_post_check.py [--rows 1,10,100,1000] [--repeat 7] [--number 0]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Annotated, Literal, Optional

import orjson
import pyarrow as pa
import pydantic

from common import REPLAY_ROW, table
from workbench.api import post_columns, posted_arrow
from workbench.api.opportunity_rows import REQUIRED, TABLE, enum_pairs, int_range, json_name, literal_default
from workbench.api.post_columns import check_group
from workbench.store import schema as S

MSGSPEC = "msgspec's pass, JSON"
_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def rows(n: int) -> list[dict]:
    t0 = time.time_ns()
    return [{**REPLAY_ROW, "timestamp_ns": t0 + i, "opportunity_id": str(uuid.uuid4())} for i in range(n)]


def arrow_body(batch: list[dict]) -> bytes:
    """The rows as an Arrow IPC stream in GET's shape (each column of the JSON shape's type)."""
    types = {r.name: r.arrow for r in post_columns.RULES}
    t = pa.table({k: pa.array([r[k] for r in batch], types[k]) for k in batch[0]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    return sink.getvalue().to_pybytes()


def pydantic_row():
    """The table's columns as a strict pydantic model with the same checks as ours."""
    fields = {}
    for col in S.TABLES[TABLE].columns:
        name, t = json_name(col), col.arrow
        if col.kind == S.TIME:
            typ = Annotated[int, pydantic.Field(ge=0, le=2**63 - 1)]
        elif col.kind == S.UUID_:
            typ = Annotated[str, pydantic.Field(pattern=_UUID)]
        elif col.kind == S.ENUM:
            typ = Literal[tuple(lab for lab, _ in enum_pairs(col))]
        elif pa.types.is_floating(t):
            typ = Optional[float] if col.default == "nan" else float
        elif int_range(t) is not None:
            lo, hi = int_range(t)
            typ = Annotated[int, pydantic.Field(ge=lo, le=hi - 1)]
        elif pa.types.is_list(t):
            typ = list[str]
        else:
            typ = str
        default = literal_default(col)
        fields[name] = (typ, ... if default is REQUIRED else (None if col.default == "nan" else default))
    return pydantic.create_model("Row", __config__=pydantic.ConfigDict(strict=True, extra="forbid"), **fields)


def per_row(fns: dict, n: int, repeat: int, number: int) -> dict[str, float]:
    """Median µs per row of each of ``fns``' calls over ``repeat`` timings of ``number`` calls, the
    timings taken in turn (one of each, then again), so that a noisy machine's slow spells fall on
    every way alike."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(number):
                fn()
            times[name].append((time.perf_counter() - t) / number / n * 1e6)
    return {name: statistics.median(ts) for name, ts in times.items()}


def turned_off(fn, module, names: tuple[str, ...], off):
    """``fn`` with ``module``'s functions ``names`` replaced by ``off`` while it runs."""
    def call():
        kept = [getattr(module, name) for name in names]
        for name in names:
            setattr(module, name, off)
        try:
            return fn()
        finally:
            for name, f in zip(names, kept):
                setattr(module, name, f)
    return call


def msgspec_pass(fn):
    """``fn`` with the scan turned off: a JSON body through msgspec's one pass."""
    return turned_off(fn, post_columns, ("scan",), lambda body: None)


def value_by_value(fn):
    """``fn`` with the scan and the one-pass decoders turned off: every body through ``check_rows``."""
    return turned_off(fn, post_columns, ("scan", "decode_rows", "decode_arrow"), lambda body: None)


def converted(fn):
    """``fn`` with the Arrow body's column-by-column check turned off: its table converted by msgspec
    (posted_arrow.py), every Arrow body's way before ``by_columns``."""
    return turned_off(fn, posted_arrow, ("by_columns",), lambda table, types: None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default="1,10,100,1000", help="rows per body, comma-separated")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--number", type=int, default=0, help="calls per timing (0: about 20 ms of rows)")
    a = ap.parse_args()
    row_type = pydantic_row()
    many, one = pydantic.TypeAdapter(list[row_type]), pydantic.TypeAdapter(row_type)
    out = []
    for n in (int(x) for x in a.rows.split(",")):
        batch = rows(n)
        js, ab = orjson.dumps(batch), arrow_body(batch)
        number = a.number or max(1, 4000 // n)
        ours_json, ours_arrow = (lambda: check_group([(js, False)])), (lambda: check_group([(ab, True)]))
        assert ours_json().items == msgspec_pass(ours_json)().items == ours_arrow().items == \
            value_by_value(ours_arrow)().items == converted(ours_arrow)().items
        got = per_row({
            "ours JSON": ours_json,
            MSGSPEC: msgspec_pass(ours_json),
            "ours Arrow": ours_arrow,
            "Arrow converted": converted(ours_arrow),
            "value by value, JSON": value_by_value(ours_json),
            "value by value, Arrow": value_by_value(ours_arrow),
            "pydantic JSON": lambda: [one.dump_json(r) for r in many.validate_json(js)],
            "pydantic Arrow": lambda: [one.dump_json(r) for r in many.validate_python(
                pa.ipc.open_stream(ab).read_all().to_pylist())],
        }, n, a.repeat, number)
        out.append((f"{n:,}", f"{len(js):,} / {len(ab):,}", *(f"{v:.2f}" for v in got.values()),
                    f"{got[MSGSPEC] / got['ours JSON']:.1f}x",
                    f"{got['Arrow converted'] / got['ours Arrow']:.1f}x",
                    f"{got['value by value, Arrow'] / got['ours Arrow']:.1f}x",
                    f"{got['pydantic JSON'] / got['ours JSON']:.1f}x / {got['pydantic Arrow'] / got['ours Arrow']:.1f}x"))
        print(f"# {n:,} rows done", flush=True)
    table("a posted body checked, µs a row (median)", out,
          ("rows", "bytes JSON / Arrow", *got, "JSON: msgspec's pass / ours", "Arrow: converted / ours", "Arrow: value by value / ours",
           "pydantic / ours (JSON / Arrow)"))


if __name__ == "__main__":
    main()
