"""engine/market/snapshot.py: every column of every snapshot file has its type and range checked.

A small valid snapshot is written with the project's ``write_snapshot``, then one column of
one file is replaced through pyarrow (another Arrow type, a null, a value out of range); the
load must raise MarketError naming the file, the row and the column, never a traceback and
never a silently truncated value.
"""

from __future__ import annotations

import math

import base58
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench.engine.market.snapshot import SNAPSHOT_COLUMNS, load_market, write_snapshot
from workbench.errors import MarketError
from workbench.wire.keys import MINT_USDC, MINT_WSOL, new_key_table


def addr(i: int) -> str:
    return base58.b58encode(bytes([i]) * 32).decode()


def base_snapshot(folder):
    """Two tokens, a Raydium v4 pool and a Whirlpool, a lookup table, two token accounts, two positions."""
    tokens = {"mint": [MINT_WSOL, MINT_USDC], "decimals": [9, 6], "symbol": ["WSOL", "USDC"]}
    pools = {"address": [addr(1), addr(2)], "program": ["raydium_amm_v4", "orca_whirlpool"],
             "mint_a": [MINT_WSOL, MINT_WSOL], "mint_b": [MINT_USDC, MINT_USDC],
             "vault_a": [addr(3), addr(4)], "vault_b": [addr(5), addr(6)],
             "reserve_a": [10**12, 0], "reserve_b": [2 * 10**11, 0], "fee_num": [25, 3000],
             "fee_den": [10_000, 1_000_000], "sqrt_price_x64": ["", str(1 << 64)], "liquidity": ["", str(10**12)],
             "sqrt_price_lower_x64": ["", str(1 << 63)], "sqrt_price_upper_x64": ["", str(1 << 65)],
             "tick_spacing": [0, 64]}
    luts = {"address": [addr(7), addr(8)], "keys": [[addr(1), addr(3)], [addr(2)]]}
    accts = {"address": [addr(9), addr(10)], "mint": [MINT_WSOL, MINT_USDC], "owner": [addr(11), addr(11)]}
    pos = {"position_id": [1, 2], "owner": [addr(11), addr(12)], "collateral_mint": [MINT_WSOL, MINT_WSOL],
           "collateral_amount": [10**9, 2 * 10**9], "debt_mint": [MINT_USDC, MINT_USDC],
           "debt_amount": [10**6, 3 * 10**6], "liquidation_threshold": [0.8, 1.0], "liquidation_bonus": [0.05, 0.0]}
    return write_snapshot(folder, tokens, pools, luts, accts, pos)


def corrupt(folder, name, column, values, type=None):
    """Replace one column of ``name``.parquet by ``values`` (an Arrow array of ``type``, inferred if None)."""
    path = folder / f"{name}.parquet"
    t = pq.read_table(path)
    t = t.set_column(t.column_names.index(column), column, pa.array(values, type=type))
    pq.write_table(t, path)


def load(folder):
    keys, slots, meta = new_key_table(1 << 10)
    return load_market(folder, keys, slots, meta)


def test_the_base_snapshot_loads(tmp_path):
    m = load(base_snapshot(tmp_path / "m"))
    assert m.pool_kind.tolist() == [1, 3] and m.pos_id.tolist() == [1, 2] and m.token_decimals.tolist() == [9, 6]
    assert m.tbl_cnt.tolist() == [2, 1] and m.pos_param[1].tolist() == [1.0, 0.0]


# (file, column, the column's new values, Arrow type or None, the row named, words of the message)
CASES = [
    ("tokens", "decimals", ["abc", "6"], None, 0, "'abc' is not an integer"),
    ("tokens", "decimals", [math.inf, 6.0], None, 0, "inf is not an integer"),
    ("tokens", "decimals", [9, 300], pa.int64(), 1, "300 is outside u8"),
    ("tokens", "symbol", ["WSOL", None], None, 1, "None is not a string"),
    ("pools", "program", [["raydium_amm_v4"], ["orca_whirlpool"]], None, 0, "is not one of"),
    ("pools", "program", ["raydium_amm_v4", "uniswap"], None, 1, "'uniswap' is not one of"),
    ("pools", "reserve_a", [math.inf, 0.0], None, 0, "inf is not an integer"),
    ("pools", "reserve_a", [1.5, 0.0], None, 0, "1.5 is not an integer"),
    ("pools", "reserve_b", ["200000000000", "0"], None, 0, "'200000000000' is not an integer"),
    ("pools", "reserve_a", [-1, 0], pa.int64(), 0, "-1 is outside u64"),
    ("pools", "fee_num", [25, None], pa.uint64(), 1, "None is not an integer"),
    ("pools", "tick_spacing", [0, 70_000], pa.int64(), 1, "70000 is outside u16"),
    ("pools", "sqrt_price_x64", ["", "1e19"], None, 1, "'1e19' is not a decimal u128"),
    ("pools", "liquidity", ["", str(1 << 128)], None, 1, "is outside u128"),
    ("pools", "liquidity", ["", "-5"], None, 1, "'-5' is not a decimal u128"),
    ("pools", "sqrt_price_lower_x64", ["", ""], None, 1, "empty; a Whirlpool pool needs it"),
    ("pools", "vault_b", [addr(5), "short"], None, 1, "'short' decodes to"),
    ("pools", "mint_a", [MINT_WSOL, None], None, 1, "None is not a base58 address"),
    ("lookup_tables", "keys", [[addr(1)], None], pa.list_(pa.string()), 1, "None is not a list of addresses"),
    ("lookup_tables", "keys", [[addr(1)], [addr(2), "0OIl"]], None, 1, "keys[1]: '0OIl' is not base58"),
    ("lookup_tables", "keys", [addr(1), addr(2)], None, 0, "is not a list of addresses"),
    ("token_accounts", "owner", [1, 2], None, 0, "1 is not a base58 address"),
    ("positions", "position_id", ["1", "2"], None, 0, "'1' is not an integer"),
    ("positions", "position_id", [1, None], pa.int64(), 1, "None is not an integer"),
    ("positions", "position_id", [1, 1], pa.int64(), 1, "1 repeats row 0"),
    ("positions", "liquidation_threshold", ["0.8", "1.0"], None, 0, "'0.8' is not a number in (0, 1]"),
    ("positions", "liquidation_threshold", [0.8, math.inf], None, 1, "inf is not in (0, 1]"),
    ("positions", "liquidation_threshold", [0.8, 0.0], None, 1, "0.0 is not in (0, 1]"),
    ("positions", "liquidation_bonus", [0.05, math.nan], None, 1, "nan is not in [0, 1)"),
    ("positions", "collateral_amount", [10**9, 2.5e9], None, 0, "1000000000.0 is not an integer"),
    ("positions", "debt_amount", [10**6, 0], pa.uint64(), 1, "a position without debt"),
]


@pytest.mark.parametrize("name, column, values, type, row, words", CASES,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_a_bad_value_names_file_row_and_column(tmp_path, name, column, values, type, row, words):
    folder = base_snapshot(tmp_path / "m")
    corrupt(folder, name, column, values, type)
    with pytest.raises(MarketError) as e:
        load(folder)
    msg = str(e.value)
    assert msg.startswith(f"{name}.parquet row {row} column {column}: "), msg
    assert words in msg, msg


@pytest.mark.parametrize("name, column", [(n, c) for n, cols in SNAPSHOT_COLUMNS.items() for c in cols])
def test_every_column_refuses_a_value_of_another_type(tmp_path, name, column):
    """The class: any column of any file holding values of a foreign Arrow type (a struct, which
    no column takes) is refused at its first row, naming file, row and column."""
    folder = base_snapshot(tmp_path / "m")
    n = pq.read_metadata(folder / f"{name}.parquet").num_rows
    corrupt(folder, name, column, [{"x": i} for i in range(n)])
    with pytest.raises(MarketError, match=rf"^{name}\.parquet row 0 column {column}: "):
        load(folder)


def test_the_labeller_reads_the_snapshot_with_the_same_checks(tmp_path):
    """model/labels.py reads pools.parquet for its own sums: a fractional reserve is refused there too,
    never truncated."""
    from workbench.model.labels import read_market_pools
    folder = base_snapshot(tmp_path / "m")
    assert read_market_pools(folder).loc[addr(1), "reserve_a"] == 10**12
    corrupt(folder, "pools", "reserve_a", [1.5, 0.0])
    with pytest.raises(MarketError, match=r"^pools\.parquet row 0 column reserve_a: 1\.5 is not an integer"):
        read_market_pools(folder)
