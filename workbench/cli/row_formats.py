"""How ``workbench db`` prints rows: a table that fits the terminal, one block per row
(``vertical``, like clickhouse-client's ``\\G``), JSON, NDJSON or CSV.

``auto`` (the default) prints a table when every column fits the terminal at a readable width
and one block per row otherwise, as psql's ``\\x auto`` does. In the table a long cell is cut
with an ellipsis (``…``); ``vertical``, ``json`` and ``ndjson`` show every value whole.

The machine formats keep every value exact:

* integers of every width (UInt64, Int128, UInt256 ...) are JSON numbers written digit for
  digit. A reader that parses JSON numbers as doubles (JavaScript's ``JSON.parse``) rounds those
  above 2**53; read them with a big-integer parser, or select ``toString(column)``. (ClickHouse's
  own JSON quotes 64-bit integers by default; we do not, so that the type of a field does not
  depend on the column's width and Python, jq 1.7 and pandas read numbers as numbers.)
* DateTime and DateTime64 are ISO 8601 strings with every digit of the column's precision
  (nanoseconds for DateTime64(9): the store's times) and the zone: ``Z`` for UTC and for columns
  without a zone (the ticks count from the Unix epoch in UTC), ``+hh:mm`` for a zoned column.
  Dates are ``YYYY-MM-DD``.
* Decimals are strings of their digits (a JSON number would be read as a double); UUIDs,
  IP addresses and Enum labels are strings; NaN and infinities are ``null`` (JSON has none).
* Arrays and tuples are arrays, maps objects (keys as strings). Bytes that are not UTF-8 are
  hex.

Text never goes through rich markup: a value ``[red]x[/red]`` is printed as it is.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
import sys
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

from rich import box
from rich.table import Table
from rich.text import Text

FORMATS = ("auto", "table", "vertical", "json", "ndjson", "csv")
TABLE_CELL_MAX = 32        # characters of a table cell before it is cut with an ellipsis
TABLE_COLUMN_MIN = 8       # a table column is never squeezed below this (or its content, if narrower)
ELLIPSIS = "…"


# ============================================================================================
# exact values
# ============================================================================================

@dataclass(frozen=True)
class Instant:
    """A DateTime/DateTime64 value as ClickHouse holds it: ``ticks`` of 10**-``scale`` s since
    the epoch, and the column's zone (None: shown in UTC)."""
    ticks: int
    scale: int
    tz: Any = None

    def _parts(self) -> tuple[dt.datetime, str]:
        sec, frac = divmod(int(self.ticks), 10 ** self.scale)
        when = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=sec)
        if self.tz is not None:
            when = when.astimezone(self.tz)
        return when, (f".{frac:0{self.scale}d}" if self.scale else "")

    def iso(self) -> str:
        when, frac = self._parts()
        off = when.strftime("%z")
        zone = "Z" if off in ("", "+0000") else f"{off[:3]}:{off[3:]}"
        return f"{when:%Y-%m-%dT%H:%M:%S}{frac}{zone}"

    def text(self) -> str:
        """As ClickHouse shows it (the column's zone, every digit), for the table and vertical forms."""
        when, frac = self._parts()
        return f"{when:%Y-%m-%d %H:%M:%S}{frac}"


def exact(value, ch_type=None):
    """``value`` with every DateTime/DateTime64 given as ticks (``Store.query_exact``) made an
    ``Instant``, following the column's type (a clickhouse-connect type object) into arrays,
    maps, tuples and nullables. Without a type the value is returned as it is."""
    if value is None or ch_type is None:
        return value
    base = getattr(ch_type, "base_type", "")
    if base in ("DateTime", "DateTime64") and isinstance(value, int) and not isinstance(value, bool):
        return Instant(value, int(getattr(ch_type, "scale", 0) or 0), getattr(ch_type, "tzinfo", None))
    if base == "Array" and isinstance(value, (list, tuple)):
        return [exact(v, ch_type.element_type) for v in value]
    if base == "Map" and isinstance(value, dict):
        return {exact(k, ch_type.key_type): exact(v, ch_type.value_type) for k, v in value.items()}
    if base == "Tuple" and isinstance(value, (list, tuple)):
        types = list(getattr(ch_type, "element_types", []))
        return tuple(exact(v, t) for v, t in zip(value, types + [None] * (len(value) - len(types))))
    if base == "Tuple" and isinstance(value, dict):                  # named tuples
        types = dict(zip(getattr(ch_type, "element_names", []) or [], getattr(ch_type, "element_types", [])))
        return {k: exact(v, types.get(k)) for k, v in value.items()}
    return value


def _bytes_text(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.hex()


def json_value(v):
    """A value as JSON (see the module docstring for each type)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Instant):
        return v.iso()
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None and v.utcoffset() == dt.timedelta(0):
            return v.replace(tzinfo=None).isoformat() + "Z"
        return v.isoformat()                 # pandas Timestamps keep their nanoseconds here
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, (uuid.UUID, decimal.Decimal)):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _bytes_text(bytes(v))
    if isinstance(v, dict):
        return {str(json_value(k)): json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    if hasattr(v, "item"):                   # numpy scalars
        return json_value(v.item())
    return str(v)                            # IP addresses and the like: their text


def text_value(v, whole: bool = False) -> str:
    """A value as text for people: integers with thousands separators, floats short (``whole``:
    exact), times as ClickHouse prints them, NULL for a missing value."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return repr(v) if whole else f"{v:.6g}"
    if isinstance(v, Instant):
        return v.text()
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ").replace("+00:00", "")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _bytes_text(bytes(v))
    if isinstance(v, dict):
        return "{" + ", ".join(f"{text_value(k, whole)}: {text_value(x, whole)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(text_value(x, whole) for x in v) + "]"
    if isinstance(v, tuple):
        return "(" + ", ".join(text_value(x, whole) for x in v) + ")"
    if hasattr(v, "item"):
        return text_value(v.item(), whole)
    return str(v)


def cut(s: str, n: int = TABLE_CELL_MAX) -> str:
    """``s`` on one line, at most ``n`` characters, the last an ellipsis when cut."""
    s = s.replace("\r", " ").replace("\n", " ")
    return s if len(s) <= n else s[: max(0, n - 1)] + ELLIPSIS


# ============================================================================================
# the forms
# ============================================================================================

def _is_number(v) -> bool:
    return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)


def column_widths(names: Sequence[str], cells: Sequence[Sequence[str]], numeric: Sequence[bool],
                  room: int) -> tuple[list[int], bool]:
    """(width of each column, whether they fit ``room`` characters of cell text).

    A column's natural width is its widest cell or header, at most ``TABLE_CELL_MAX``. When the
    natural widths do not fit, the widest text columns give way first, down to
    ``TABLE_COLUMN_MIN`` each (a narrower column keeps its width); numbers never give way (a cut
    number is a wrong number; their header may be cut). When even that does not fit, the natural widths are returned
    with ``False``.
    """
    natural = [min(TABLE_CELL_MAX, max([len(str(n)), *(len(r[i]) for r in cells)])) for i, n in enumerate(names)]
    floor = [max([min(len(str(names[i])), TABLE_COLUMN_MIN), *(len(r[i]) for r in cells)]) if numeric[i]
             else min(w, TABLE_COLUMN_MIN) for i, w in enumerate(natural)]   # a number's header may be cut, not it
    if sum(natural) <= room:
        return natural, True
    if sum(floor) > room:
        return natural, False
    lo, hi = 0, max(natural)                  # the largest cap every text column can be held to
    while lo < hi:
        cap = (lo + hi + 1) // 2
        if sum(max(f, min(w, cap)) for w, f in zip(natural, floor)) <= room:
            lo = cap
        else:
            hi = cap - 1
    widths = [max(f, min(w, lo)) for w, f in zip(natural, floor)]
    spare = room - sum(widths)
    while spare > 0:                          # what the cap leaves over: a character each to the capped ones
        short = [i for i in range(len(widths)) if widths[i] < natural[i]]
        if not short:
            break
        for i in short[:spare]:
            widths[i] += 1
        spare -= min(spare, len(short))
    return widths, True


def build_table(names: Sequence[str], rows: Sequence[Sequence], width: int, title: str | None = None,
                squeeze: bool = True) -> tuple[Table, int, bool]:
    """(the table, its width in characters, whether it fits ``width``). Columns have fixed widths
    (``column_widths``; with ``squeeze`` False, their natural ones) and cells are cut to them with
    an ellipsis, so nothing is cut anywhere else."""
    cells = [[text_value(v).replace("\r", " ").replace("\n", " ") for v in row] for row in rows]
    numeric = [bool(rows) and all(_is_number(r[i]) for r in rows if r[i] is not None) for i in range(len(names))]
    overhead = 3 * len(names) - 1             # one space each side of a cell, one rule between columns
    widths, fits = column_widths(names, cells, numeric, width - overhead)
    if not squeeze:
        widths = [min(TABLE_CELL_MAX, max([len(str(n)), *(len(r[i]) for r in cells)])) for i, n in enumerate(names)]
        fits = sum(widths) + overhead <= width
    t = Table(title=Text(title) if title else None, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
              pad_edge=False)
    for i, name in enumerate(names):
        t.add_column(Text(cut(str(name), widths[i])), justify="right" if numeric[i] else "left", no_wrap=True,
                     width=widths[i])
    for r in cells:
        t.add_row(*(Text("NULL", style="dim") if c == "NULL" else Text(cut(c, w)) for c, w in zip(r, widths)))
    return t, sum(widths) + overhead, fits


def print_vertical(console, names: Sequence[str], rows: Sequence[Sequence]) -> None:
    """One block per row, every value whole: ``Row n:``, then ``name: value`` lines (values that
    span lines are indented under their first)."""
    pad = max((len(str(n)) for n in names), default=0) + 2
    for k, row in enumerate(rows, 1):
        head = f"Row {k:,}:"
        console.print(Text(head, style="bold"))
        console.print(Text("─" * len(head)))
        for name, v in zip(names, row):
            value = text_value(v, whole=True).replace("\n", "\n" + " " * pad)
            console.print(Text.assemble((f"{name}:".ljust(pad), "bold"), ("NULL", "dim") if v is None else value),
                          soft_wrap=True, highlight=False)
        if k < len(rows):
            console.print()


def write_json(out, names: Sequence[str], rows: Sequence[Sequence], lines: bool) -> None:
    """JSON (an array of objects) or NDJSON (one object per line)."""
    objs = ({str(n): json_value(v) for n, v in zip(names, row)} for row in rows)
    if lines:
        for o in objs:
            out.write(json.dumps(o, ensure_ascii=False, allow_nan=False) + "\n")
        return
    out.write("[")
    for i, o in enumerate(objs):
        out.write(("," if i else "") + "\n  " + json.dumps(o, ensure_ascii=False, allow_nan=False))
    out.write("\n]\n" if rows else "]\n")


def write_csv(out, names: Sequence[str], rows: Sequence[Sequence]) -> None:
    """CSV with a header row; values in their JSON form (nested ones as JSON text)."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow([str(n) for n in names])
    for row in rows:
        vals = [json_value(v) for v in row]
        w.writerow(["" if v is None else json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list))
                    else str(v).lower() if isinstance(v, bool) else v for v in vals])


def _wide(console, width: int):
    """``console``, or one like it (same file, same colours) wide enough for ``width`` characters:
    rich never prints a renderable wider than its console, it squeezes it."""
    if width <= console.width:
        return console
    from rich.console import Console
    return Console(file=console.file, width=width, color_system=console.color_system, no_color=console.no_color,
                   force_terminal=console.is_terminal, highlight=False, soft_wrap=False)


def _header_and_cells(names, rows):
    """Per column, the longest text it was given (header or cell)."""
    return [max([len(str(n)), *(len(text_value(r[i]).replace("\n", " ")) for r in rows)]) for i, n in enumerate(names)]


def _widths_of(t: Table) -> list[int]:
    return [c.width for c in t.columns]


def print_rows(console, names: Sequence[str], rows: Sequence[Sequence], fmt: str = "auto", *,
               title: str | None = None, max_rows: int = 200, more_hint: str = "--max-rows",
               out=None) -> str:
    """Print ``rows`` in ``fmt`` (one of FORMATS); returns the form used (``auto`` resolved).

    Text forms (table, vertical) print at most ``max_rows`` rows and a count line; the
    machine forms (json, ndjson, csv) write every row to ``out`` (default stdout).
    """
    if fmt in ("json", "ndjson", "csv"):
        out = out if out is not None else sys.stdout
        if fmt == "csv":
            write_csv(out, names, rows)
        else:
            write_json(out, names, rows, lines=fmt == "ndjson")
        out.flush()
        return fmt
    shown = list(rows[:max_rows])
    used = fmt
    cut_cells = False
    if fmt in ("auto", "table"):
        t, t_width, fits = build_table(names, shown, console.width, title)
        if fmt == "auto" and not fits and len(names) > 1:
            used = "vertical"
        else:
            used = "table"
            if not fits:            # asked for: every cell whole up to the cut, however wide the lines
                t, t_width, _ = build_table(names, shown, console.width, title, squeeze=False)
            _wide(console, t_width).print(t)
            cut_cells = any(n > w for n, w in zip(_header_and_cells(names, shown), _widths_of(t)))
    if used == "vertical":
        if title:
            console.print(Text(title, style="italic"))
        print_vertical(console, names, shown)
    more = len(rows) - len(shown)
    note = f"{len(rows):,} row{'' if len(rows) == 1 else 's'}" + (f" ({more:,} not shown: {more_hint}, or --format json/csv)" if more else "")
    if used == "vertical" and fmt == "auto":
        note += f"; one block per row: the {len(names)} columns do not fit {console.width} characters " \
                f"(--format table forces a table)"
    elif cut_cells:
        note += f"; cells cut to fit ({ELLIPSIS}): --format vertical or json shows them whole"
    console.print(Text(note, style="dim"), soft_wrap=True, highlight=False)
    return used


def dump(names, rows, fmt: str) -> str:
    """The machine forms as a string (for writing to a file)."""
    buf = io.StringIO()
    if fmt == "csv":
        write_csv(buf, names, rows)
    else:
        write_json(buf, names, rows, lines=fmt == "ndjson")
    return buf.getvalue()


__all__ = ["ELLIPSIS", "FORMATS", "Instant", "TABLE_CELL_MAX", "build_table", "column_widths", "cut", "dump", "exact", "json_value",
           "print_rows", "print_vertical", "text_value", "write_csv", "write_json"]
