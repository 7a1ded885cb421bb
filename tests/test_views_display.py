"""How the views write values (panel_apps/_display.py): text never markup, integers exact and
sorted as numbers, times to the microsecond, snapshot names through the engine's loader."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "panel_apps"))
import _display as D  # noqa: E402

MARKET = REPO / "captures" / "market.pcapng.market"


@pytest.mark.parametrize("s", ['<img src=x onerror="a()">', "`</code><b>x</b>`", "**b** _i_ [l](javascript:x) $m$",
                               "# h\n- l\n1. n", "a & b &amp; &#60;", "\x00\x1b[31m"])
def test_text_md_leaves_no_markup(s):
    out = D.text_md(s)
    import html
    import re
    bare = re.sub(r"&#\d+;", "", out).replace("<br>", "")      # what is left is plain letters and spaces
    assert not set("<>`*_[]()#$&\\") & set(bare), bare
    assert html.unescape(out.replace("<br>", "\n")) == s.replace("\x00", " ").replace("\x1b", " ")


def test_message_md_keeps_code_spans_as_text():
    out = D.message_md("Capture not found: `<img src=x>`; pass `--capture FILE`.")
    assert out.count("<code>") == 2 and "<img" not in out and "&#60;img" in out


def test_int_column_is_exact_and_sorts_as_numbers():
    vals = [2**64 - 1, 11_410_318_210, 0, 9, 10, 2**53 + 1, 1_666_666_666_666]
    col = D.int_column(vals)
    assert [c.strip() for c in col] == [f"{v:,}" for v in vals]
    assert "18,446,744,073,709,551,615" in col[0] and "9,007,199,254,740,993" in col[5]
    assert [int(c.replace(",", "")) for c in sorted(col)] == sorted(vals)


def test_ts_column_to_the_microsecond():
    assert D.ts_column(np.array([1_750_000_000_123_456_789]))[0].endswith(".123456")


def test_snapshot_names_from_the_validating_loader(tmp_path):
    names = D.SnapshotNames(str(MARKET))
    pool = next(iter(names.pools))
    assert "/" in names.pool_label(pool) and names.pool_label("unknown") == "unknown"
    assert all(isinstance(r, int) for r in names.reserves0[pool])
    bad = tmp_path / "bad"
    shutil.copytree(MARKET, bad)
    t = pq.read_table(bad / "pools.parquet")
    i = t.schema.get_field_index("reserve_a")
    pq.write_table(t.set_column(i, "reserve_a", pa.array([1.5] * t.num_rows)), bad / "pools.parquet")
    msg = D.snapshot_problem(str(bad))
    assert msg and "pools.parquet row 0 column reserve_a" in msg
