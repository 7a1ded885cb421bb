"""How values from files and the store reach a page: as text, never as markup, and exactly.

Every string that came from a capture, a snapshot, a run folder, the store or an error
message goes into Markdown / Alert panes through ``text_md`` (each character that HTML or
Markdown gives a meaning is written as a numeric character reference, which both show as
that character) or ``message_md`` (the same, with the workbench's own `code` spans kept as
``<code>``). Tables get plain values; Tabulator's default formatter writes them as text.

Amounts are integers of up to 64 bits; a browser's numbers are doubles, exact only to 2**53,
so integer columns go to tables as exact decimal text (``int_column``), padded on the left
so that the server's sort (remote pagination sorts the DataFrame) orders them as numbers.
Times are shown to the microsecond (``ts_column``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

# characters HTML (& < > " ') or Markdown (emphasis, code, links, headings, lists, tables,
# math, autolinks) may read as syntax
_SPECIAL = frozenset("&<>\"'`*_[](){}#+-!|\\~$=:.")
U64_DIGITS_WITH_COMMAS = 26        # len(f"{2**64 - 1:,}"): the pad width of integer text
TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # event time, to the microsecond (UTC)


def text_md(value) -> str:
    """``value`` as Markdown/HTML source that shows exactly its text (newlines as line breaks)."""
    s = "" if value is None else str(value)
    out = []
    for ch in s:
        if ch == "\n":
            out.append("<br>")
        elif ch in _SPECIAL or ord(ch) < 32:
            out.append(f"&#{ord(ch)};" if ord(ch) >= 32 else " ")
        else:
            out.append(ch)
    return "".join(out)


def code_md(value) -> str:
    """``value`` as inline code whose content is text (never Markdown's backticks, which a value can close)."""
    return f"<code>{text_md(value)}</code>"


_CODE = re.compile(r"`([^`]*)`")


def message_md(message) -> str:
    """A workbench message (which may quote file names and values) for an Alert: `spans` become
    <code>, everything is text."""
    s = "" if message is None else str(message)
    parts, pos = [], 0
    for m in _CODE.finditer(s):
        parts.append(text_md(s[pos:m.start()]))
        parts.append(code_md(m.group(1)))
        pos = m.end()
    parts.append(text_md(s[pos:]))
    return "".join(parts)


def int_text(v) -> str:
    """An integer with thousands separators, exactly (Python ints: no double in between)."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return f"{int(v):,}"


def int_column(values) -> list[str]:
    """Integers as exact text, left-padded with spaces to one width so that text order is number
    order for non-negative values (HTML does not show the leading spaces)."""
    return [int_text(v).rjust(U64_DIGITS_WITH_COMMAS) for v in values]


def ts_column(ts_ns) -> list[str]:
    """int64 ns since the epoch as UTC date and time to the microsecond (text sorts as time)."""
    return list(pd.to_datetime(np.asarray(ts_ns, np.int64), unit="ns", utc=True).strftime(TS_FORMAT))


def short_address(address: str) -> str:
    return address if len(address) <= 12 else f"{address[:4]}…{address[-4:]}"


class SnapshotNames:
    """Token symbols and pool labels of a market snapshot, read through the engine's validating
    loader (``read_snapshot_file``: the SNAPSHOT_COLUMNS checks), so a page never shows what the
    engine would refuse."""

    def __init__(self, folder: str | None):
        self.symbols: dict[str, str] = {}       # mint (base58) -> symbol
        self.pools: dict[str, tuple[str, str]] = {}   # pool -> (mint_a, mint_b)
        self.reserves0: dict[str, tuple[int, int]] = {}  # pool -> (reserve_a, reserve_b) at the snapshot
        if not folder:
            return
        import base58
        from workbench.engine.market.snapshot import read_snapshot_file
        b58 = lambda raw: base58.b58encode(raw).decode()          # noqa: E731
        if (Path(folder) / "tokens.parquet").exists():
            for t in read_snapshot_file(folder, "tokens"):
                self.symbols[b58(t["mint"])] = t["symbol"]
        for p in read_snapshot_file(folder, "pools"):
            a = b58(p["address"])
            self.pools[a] = (b58(p["mint_a"]), b58(p["mint_b"]))
            self.reserves0[a] = (p["reserve_a"], p["reserve_b"])

    def symbol(self, mint: str) -> str:
        return self.symbols.get(mint) or short_address(mint)

    def pool_label(self, pool: str) -> str:
        """'SOL/USDC 58oQ…YQo2' when the snapshot knows the pool, else the address."""
        mints = self.pools.get(pool)
        if mints is None:
            return pool
        return f"{self.symbol(mints[0])}/{self.symbol(mints[1])} {short_address(pool)}"


def snapshot_problem(folder: str | None) -> str | None:
    """The loader's message when a snapshot folder does not pass its checks, else None."""
    if not folder:
        return None
    from workbench.errors import WorkbenchError
    try:
        SnapshotNames(folder)
    except WorkbenchError as e:
        return f"The market snapshot `{folder}` cannot be used: {e}"
    return None
