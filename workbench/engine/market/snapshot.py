"""Market snapshot: the engine's starting state of pools, lookup tables, token accounts and
lending positions, read from a folder of Parquet files (``workbench replay --market DIR``).

Files (one schema each, ``SNAPSHOT_FILES``; every file but ``pools.parquet`` may be absent):

=======================  ====================================================================
tokens.parquet           mint, decimals (uint8), symbol
pools.parquet            address, program ('raydium_amm_v4' | 'raydium_cpmm' | 'orca_whirlpool'),
                         mint_a, mint_b, vault_a, vault_b, reserve_a, reserve_b (uint64 base
                         units), fee_num, fee_den (uint64; Whirlpool fee_rate / 1_000_000),
                         sqrt_price_x64, liquidity, sqrt_price_lower_x64, sqrt_price_upper_x64
                         (decimal strings of u128, '' for constant-product pools),
                         tick_spacing (uint16, 0 for constant-product pools)
lookup_tables.parquet    address, keys (list of addresses, in table order)
token_accounts.parquet   address, mint, owner (the direction of a Raydium v4 swap is the mint
                         of the user's source account: a swap whose source is not here is
                         counted ``direction_unresolved``, never guessed)
positions.parquet        position_id (int64), owner, collateral_mint, collateral_amount (uint64),
                         debt_mint, debt_amount (uint64), liquidation_threshold (0, 1],
                         liquidation_bonus [0, 1)
=======================  ====================================================================

Addresses are base58 strings. Every column of every file has its type and range checked
(``SNAPSHOT_COLUMNS``: integers are integers, never floats whose fraction would be
truncated; nulls only where a value may be absent), then the rows' consistency (a mint
missing from tokens.parquet, a zero fee denominator, a fee >= 1, duplicate pool addresses or
position ids, a Whirlpool price outside its range). A bad value raises ``MarketError``
naming the file, the row and the column.

In the engine the snapshot is the ``Market`` tuple of arrays (layout.py); token prices in
SOL and the health of positions are set at load from the oracle pools (prices.py).
"""

from __future__ import annotations

from pathlib import Path

import base58
import numpy as np

from ...errors import MarketError
from ...wire.base58 import decode32_texts
from ...wire.keys import MINT_USDC, MINT_WSOL, PUBKEY_SZ, intern
from .layout import N_WP, PK_RAYDIUM_V4, PK_WHIRLPOOL, PROGRAMS, SWAP_HISTORY, Market
from .prices import init_health

CYCLES_PER_POOL_MAX = 64    # three-pool cycles indexed per pool (the ones through the deepest pools first)


# ============================================================================================
# column checks: every column of every file has a parser; a bad value names file, row, column
# ============================================================================================

class _Bad(ValueError):
    """A value refused by a column parser; ``_checked_rows`` adds the file, row and column."""


def _integer(lo: int, hi: int, what: str):
    # Python int only: a float column would truncate fractions and cannot hold every u64
    def parse(v):
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Bad(f"{v!r} is not an integer ({what})")
        if not lo <= v <= hi:
            raise _Bad(f"{v} is outside {what} [{lo}, {hi}]")
        return v
    return parse


def _real(lo: float, hi: float, lo_open: bool, hi_open: bool):
    span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def parse(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _Bad(f"{v!r} is not a number in {span}")
        x = float(v)
        if not (lo < x if lo_open else lo <= x) or not (x < hi if hi_open else x <= hi):    # NaN fails too
            raise _Bad(f"{v!r} is not in {span}")
        return x
    return parse


def _address(v) -> bytes:
    if not isinstance(v, str) or not v:
        raise _Bad(f"{v!r} is not a base58 address")
    try:
        raw = base58.b58decode(v)
    except ValueError:
        raise _Bad(f"{v!r} is not base58") from None
    if len(raw) != PUBKEY_SZ:
        raise _Bad(f"{v!r} decodes to {len(raw)} bytes, not 32")
    return raw


def _u128_text(v) -> int:
    if not isinstance(v, str) or not v.isascii() or not v.isdigit():
        raise _Bad(f"{v!r} is not a decimal u128")
    x = int(v)
    if x >= 1 << 128:
        raise _Bad(f"{x} is outside u128")
    return x


def _absent_or(parse):
    """'' or null is absent (None): vaults of Raydium v4 pools, Whirlpool words of constant-product pools."""
    def absent_or(v):
        return None if v is None or v == "" else parse(v)
    absent_or.inner = parse
    return absent_or


def _text(v) -> str:
    if not isinstance(v, str):
        raise _Bad(f"{v!r} is not a string")
    return v


def _program(v) -> int:
    kind = PROGRAMS.get(v) if isinstance(v, str) else None
    if kind is None:
        raise _Bad(f"{v!r} is not one of {', '.join(PROGRAMS)}")
    return kind


def _addresses(v) -> list[bytes]:
    if not isinstance(v, list):
        raise _Bad(f"{v!r} is not a list of addresses")
    out = []
    for j, a in enumerate(v):
        try:
            out.append(_address(a))
        except _Bad as e:
            raise _Bad(f"keys[{j}]: {e}") from None
    return out


U8, U16 = _integer(0, 255, "u8"), _integer(0, (1 << 16) - 1, "u16")
U64, I64 = _integer(0, (1 << 64) - 1, "u64"), _integer(-(1 << 63), (1 << 63) - 1, "i64")
U128 = _absent_or(_u128_text)

# file -> column -> parser (the parsed value is what load_market uses: addresses as 32 bytes,
# the program as its PK_* kind, absent values as None)
SNAPSHOT_COLUMNS = {
    "tokens": {"mint": _address, "decimals": U8, "symbol": _text},
    "pools": {"address": _address, "program": _program, "mint_a": _address, "mint_b": _address,
              "vault_a": _absent_or(_address), "vault_b": _absent_or(_address), "reserve_a": U64, "reserve_b": U64,
              "fee_num": U64, "fee_den": U64, "sqrt_price_x64": U128, "liquidity": U128,
              "sqrt_price_lower_x64": U128, "sqrt_price_upper_x64": U128, "tick_spacing": U16},
    "lookup_tables": {"address": _address, "keys": _addresses},
    "token_accounts": {"address": _address, "mint": _address, "owner": _address},
    "positions": {"position_id": I64, "owner": _address, "collateral_mint": _address, "collateral_amount": U64,
                  "debt_mint": _address, "debt_amount": U64,
                  "liquidation_threshold": _real(0.0, 1.0, True, False),
                  "liquidation_bonus": _real(0.0, 1.0, False, True)},
}
SNAPSHOT_FILES = {name: tuple(cols) for name, cols in SNAPSHOT_COLUMNS.items()}


def _address_columns(parsers: dict) -> tuple[set, set]:
    """The columns whose parser reads one address (absent allowed or not), and those reading a list."""
    one = {c for c, parse in parsers.items() if getattr(parse, "inner", parse) is _address}
    return one, {c for c, parse in parsers.items() if parse is _addresses}


def _decoded_addresses(cols: dict, one: set, lists: set) -> dict[str, bytes]:
    """{text: 32 bytes} of every address in the address columns of ``cols`` that decodes (all at
    once, wire/base58.py); the parsers still see the others, and say what is wrong with them."""
    texts = [a for c in one for a in cols[c]]
    texts += [a for c in lists for v in cols[c] if isinstance(v, list) for a in v]
    raw, ok = decode32_texts(texts)
    return {texts[i]: raw[i].tobytes() for i in np.flatnonzero(ok)}


def _checked_rows(cols: dict, name: str, file: str) -> list[dict]:
    """Every row of snapshot file ``name`` as {column: parsed value}, each column through its
    SNAPSHOT_COLUMNS parser; the first bad value raises MarketError naming file, row and column.
    Addresses that decode are taken from one decode of them all."""
    parsers = SNAPSHOT_COLUMNS[name]
    n = len(cols[next(iter(parsers))])
    one, lists = _address_columns(parsers)
    decoded = _decoded_addresses(cols, one, lists)
    rows = []
    for r in range(n):
        row = {}
        for c, parse in parsers.items():
            v = cols[c][r]
            if c in one and isinstance(v, str) and v in decoded:
                row[c] = decoded[v]
                continue
            if c in lists and isinstance(v, list) and all(isinstance(a, str) and a in decoded for a in v):
                row[c] = [decoded[a] for a in v]
                continue
            try:
                row[c] = parse(v)
            except _Bad as e:
                raise MarketError(f"{file} row {r} column {c}: {e}") from None
        rows.append(row)
    return rows


def _b58(raw: bytes) -> str:
    return base58.b58encode(raw).decode()


def _read(folder: Path, name: str, required: bool):
    """The checked rows of ``name``.parquet (None when absent and not required), and its file name."""
    import pyarrow.parquet as pq
    path = folder / f"{name}.parquet"
    if not path.exists():
        if required:
            raise MarketError(f"{path}: missing (a market snapshot needs {path.name})")
        return None, path.name
    try:
        table = pq.ParquetFile(path).read()     # read_table would import pyarrow.dataset, and pandas with it
    except Exception as e:      # pyarrow raises several types for a damaged file
        raise MarketError(f"{path}: not a readable Parquet file ({e})") from None
    missing = [c for c in SNAPSHOT_FILES[name] if c not in table.column_names]
    if missing:
        raise MarketError(f"{path}: missing column(s) {', '.join(missing)}")
    return _checked_rows(table.select(list(SNAPSHOT_FILES[name])).to_pydict(), name, path.name), path.name


def read_snapshot_file(folder, name: str) -> list[dict]:
    """The checked rows of one snapshot file (``name`` a key of SNAPSHOT_COLUMNS), for readers
    other than the engine (model/labels.py), so that a bad value gets the same MarketError."""
    return _read(Path(folder), name, True)[0]


# ============================================================================================
# load
# ============================================================================================

def load_market(folder, keys, key_slots, key_meta) -> Market:
    """Read and validate a snapshot folder; intern its addresses in the engine's key table."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MarketError(f"{folder}: no such market snapshot folder")
    pools, pools_name = _read(folder, "pools", True)
    tokens, tokens_name = _read(folder, "tokens", False)
    luts, luts_name = _read(folder, "lookup_tables", False)
    accts, accts_name = _read(folder, "token_accounts", False)
    positions, pos_name = _read(folder, "positions", False)
    key_capacity = keys.shape[0]

    def kid(raw: bytes, file, row, col) -> int:
        k = intern(keys, key_slots, key_meta, np.frombuffer(raw, np.uint8), 0)
        if k < 0:
            raise MarketError(f"{file} row {row} column {col}: the key table is full "
                              f"(key_capacity {key_capacity}); raise key_capacity")
        return int(k)

    # tokens: from tokens.parquet, or from the pools' mints when absent
    token_rows: dict[bytes, int] = {}
    token_list = []
    for r, g in enumerate(tokens or ()):
        raw = g["mint"]
        if raw in token_rows:
            raise MarketError(f"{tokens_name} row {r} column mint: {_b58(raw)} is listed twice")
        token_rows[raw] = len(token_list)
        token_list.append((kid(raw, tokens_name, r, "mint"), g["decimals"]))

    def token_of(raw, file, row, col) -> int:
        t = token_rows.get(raw)
        if t is None:
            if tokens is not None:
                raise MarketError(f"{file} row {row} column {col}: mint {_b58(raw)} is not in {tokens_name}")
            t = token_rows[raw] = len(token_list)
            token_list.append((kid(raw, file, row, col), -1))
        return t

    pool_list = []
    seen_pools: dict[bytes, int] = {}
    account_mints: list[tuple[int, int]] = []     # (key id, token row)
    for r, g in enumerate(pools):
        raw, kind = g["address"], g["program"]
        if raw in seen_pools:
            raise MarketError(f"{pools_name} row {r} column address: {_b58(raw)} repeats row {seen_pools[raw]}")
        seen_pools[raw] = r
        ta = token_of(g["mint_a"], pools_name, r, "mint_a")
        tb = token_of(g["mint_b"], pools_name, r, "mint_b")
        if ta == tb:
            raise MarketError(f"{pools_name} row {r} column mint_b: the same mint as mint_a")
        ra, rb, fnum, fden = g["reserve_a"], g["reserve_b"], g["fee_num"], g["fee_den"]
        if fden == 0 or fnum >= fden:
            raise MarketError(f"{pools_name} row {r} column fee_num: fee {fnum}/{fden} is not in [0, 1)")
        wp = [0] * N_WP
        if kind == PK_WHIRLPOOL:
            words = ("sqrt_price_x64", "liquidity", "sqrt_price_lower_x64", "sqrt_price_upper_x64")
            for c in words:
                if g[c] is None:
                    raise MarketError(f"{pools_name} row {r} column {c}: empty; a Whirlpool pool needs it")
            price, liq, lo, hi = (g[c] for c in words)
            if not lo <= price <= hi:
                raise MarketError(f"{pools_name} row {r} column sqrt_price_x64: {price} is outside its range "
                                  f"[{lo}, {hi}] (sqrt_price_lower_x64, sqrt_price_upper_x64)")
            for j, v in enumerate((price, liq, lo, hi)):
                wp[2 * j], wp[2 * j + 1] = v >> 64, v & ((1 << 64) - 1)
        elif ra == 0 or rb == 0:
            raise MarketError(f"{pools_name} row {r} column {'reserve_a' if ra == 0 else 'reserve_b'}: "
                              "a constant-product pool with an empty reserve")
        for side, t in (("vault_a", ta), ("vault_b", tb)):
            v = g[side]
            if v is not None:
                account_mints.append((kid(v, pools_name, r, side), t))
            elif kind != PK_RAYDIUM_V4:
                raise MarketError(f"{pools_name} row {r} column {side}: CPMM and Whirlpool pools need their vaults "
                                  "(the swap direction is read from them)")
        pool_list.append((kind, ta, tb, ra, rb, fnum, fden, wp, kid(raw, pools_name, r, "address")))

    tables = []
    for r, g in enumerate(luts or ()):
        kids = [kid(k, luts_name, r, f"keys[{j}]") for j, k in enumerate(g["keys"])]
        tables.append((g["address"], kids))

    for r, g in enumerate(accts or ()):
        account_mints.append((kid(g["address"], accts_name, r, "address"), token_of(g["mint"], accts_name, r, "mint")))

    pos_list = []
    seen_pos: dict[int, int] = {}
    for r, g in enumerate(positions or ()):
        pid = g["position_id"]
        if pid in seen_pos:
            raise MarketError(f"{pos_name} row {r} column position_id: {pid} repeats row {seen_pos[pid]}")
        seen_pos[pid] = r
        tc = token_of(g["collateral_mint"], pos_name, r, "collateral_mint")
        td = token_of(g["debt_mint"], pos_name, r, "debt_mint")
        if g["debt_amount"] == 0:
            raise MarketError(f"{pos_name} row {r} column debt_amount: a position without debt")
        pos_list.append((pid, tc, td, g["collateral_amount"], g["debt_amount"], g["liquidation_threshold"],
                         g["liquidation_bonus"]))

    wsol = token_rows.get(base58.b58decode(MINT_WSOL), -1)
    usdc = token_rows.get(base58.b58decode(MINT_USDC), -1)
    return _build_market(key_capacity, token_list, pool_list, tables, dict(account_mints), pos_list, wsol, usdc)


def _build_market(key_capacity, token_list, pool_list, tables, mint_of, pos_list, wsol, usdc) -> Market:
    """The Market arrays of the validated rows, with their indexes: the oracle pool of each token,
    the constant-product pools of each pair, the three-pool cycles through each pool, the positions
    holding each token; prices and position health set from the oracle pools."""
    P, T, N = len(pool_list), len(token_list), len(pos_list)
    pool_kind = np.zeros(P, np.int8)
    pool_mint = np.zeros((P, 2), np.int32)
    pool_res = np.zeros((P, 2), np.uint64)
    pool_fee = np.zeros((P, 2), np.uint64)
    pool_wp = np.zeros((P, N_WP), np.uint64)
    pool_kid = np.zeros(P, np.int32)
    pool_of_key = np.full(key_capacity, -1, np.int32)
    for p, (kind, ta, tb, ra, rb, fnum, fden, wp, k) in enumerate(pool_list):
        pool_kind[p] = kind
        pool_mint[p] = (ta, tb)
        pool_res[p] = (ra, rb)
        pool_fee[p] = (fnum, fden)
        pool_wp[p] = wp
        pool_kid[p] = k
        pool_of_key[k] = p
    mint_of_key = np.full(key_capacity, -1, np.int32)
    for k, t in mint_of.items():
        mint_of_key[k] = t
    token_kid = np.array([k for k, _ in token_list], np.int32)
    for t, k in enumerate(token_kid):       # a mint names its own token (CPMM, Whirlpool v2 carry mints)
        mint_of_key[k] = t
    token_decimals = np.array([d for _, d in token_list], np.int16)

    cp = [p for p in range(P) if pool_kind[p] != PK_WHIRLPOOL]
    token_oracle = np.full(T, -1, np.int32)
    if wsol >= 0:
        best = {}
        for p in cp:
            a, b = pool_mint[p]
            if wsol in (a, b):
                other, res = (b, pool_res[p, 0]) if a == wsol else (a, pool_res[p, 1])
                if other not in best or res > best[other][0]:
                    best[other] = (res, p)
        for t, (_, p) in best.items():
            token_oracle[t] = p

    by_pair: dict[tuple[int, int], list[int]] = {}
    for p in cp:
        by_pair.setdefault(tuple(sorted(pool_mint[p])), []).append(p)
    sib_first = np.zeros(P + 1, np.int32)
    sibs = []
    for p in range(P):
        if pool_kind[p] != PK_WHIRLPOOL:
            sibs += [q for q in by_pair[tuple(sorted(pool_mint[p]))] if q != p]
        sib_first[p + 1] = len(sibs)

    # three-pool cycles: P (a, b), Q (b, c), R (c, a) for every constant-product P
    by_token: dict[int, list[int]] = {}
    for p in cp:
        for t in pool_mint[p]:
            by_token.setdefault(int(t), []).append(p)
    cyc_first = np.zeros(P + 1, np.int32)
    cycles = []
    for p in range(P):
        mine = []
        if pool_kind[p] != PK_WHIRLPOOL:
            a, b = (int(x) for x in pool_mint[p])
            for q in by_token.get(b, []):
                if q == p:
                    continue
                qa, qb = (int(x) for x in pool_mint[q])
                c = qb if qa == b else qa
                if c in (a, b):
                    continue
                for r in by_token.get(c, []):
                    if r in (p, q) or set(int(x) for x in pool_mint[r]) != {a, c}:
                        continue
                    toks = {a, b, c}
                    start = wsol if wsol in toks else usdc if usdc in toks else b
                    depth = min(int(pool_res[q].min()), int(pool_res[r].min()))
                    mine.append((-depth, q, r, start))
        mine.sort()
        for _, q, r, start in mine[:CYCLES_PER_POOL_MAX]:
            cycles.append((p, q, r, start))
        cyc_first[p + 1] = len(cycles)
    cycles_arr = np.array(cycles, np.int32).reshape(-1, 4)

    L = len(tables)
    tbl_keys = np.zeros((L, PUBKEY_SZ), np.uint8)
    tbl_first = np.zeros(L, np.int64)
    tbl_cnt = np.zeros(L, np.int32)
    tbl_kid = []
    for i, (raw, kids) in enumerate(tables):
        tbl_keys[i] = np.frombuffer(raw, np.uint8)
        tbl_first[i] = len(tbl_kid)
        tbl_cnt[i] = len(kids)
        tbl_kid += kids

    pos_id = np.array([x[0] for x in pos_list], np.int64)
    pos_mint = np.array([(x[1], x[2]) for x in pos_list], np.int32).reshape(-1, 2)
    pos_amount = np.array([(x[3], x[4]) for x in pos_list], np.uint64).reshape(-1, 2)
    pos_param = np.array([(x[5], x[6]) for x in pos_list], np.float64).reshape(-1, 2)
    tok_pos_first = np.zeros(T + 1, np.int32)
    tok_pos = []
    for t in range(T):
        tok_pos += [i for i in range(N) if pos_mint[i, 0] == t or pos_mint[i, 1] == t]
        tok_pos_first[t + 1] = len(tok_pos)
    meta = np.array([wsol, usdc, P, T, -1, -1], np.int64)
    gamma = 1.0 - pool_fee[:, 0].astype(np.float64) / np.maximum(pool_fee[:, 1], 1).astype(np.float64)
    m = Market(pool_kind, pool_mint, pool_res, pool_fee, gamma, pool_wp, np.zeros((P, SWAP_HISTORY), np.int64),
               np.zeros(P, np.int64), pool_kid, sib_first, np.array(sibs, np.int32), cyc_first, cycles_arr,
               token_oracle, np.full(T, np.nan), token_decimals, token_kid, pool_of_key, mint_of_key, tbl_keys, tbl_first, tbl_cnt,
               np.array(tbl_kid, np.int32), pos_id, pos_mint, pos_amount, pos_param, np.ones(N, np.int8),
               np.array(tok_pos_first, np.int32), np.array(tok_pos, np.int32), meta)
    init_health(m)
    return m


# ============================================================================================
# write (synth/ and tests build snapshots with this)
# ============================================================================================

def write_snapshot(folder, tokens: dict, pools: dict, lookup_tables: dict | None = None,
                   token_accounts: dict | None = None, positions: dict | None = None) -> Path:
    """Write a snapshot folder from column dicts (keys as in SNAPSHOT_FILES). Returns the folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    u64 = {"reserve_a", "reserve_b", "fee_num", "fee_den", "collateral_amount", "debt_amount"}
    types = {"decimals": pa.uint8(), "tick_spacing": pa.uint16(), "position_id": pa.int64(),
             "liquidation_threshold": pa.float64(), "liquidation_bonus": pa.float64(),
             "keys": pa.list_(pa.string())} | {c: pa.uint64() for c in u64}
    for name, cols in (("tokens", tokens), ("pools", pools), ("lookup_tables", lookup_tables),
                       ("token_accounts", token_accounts), ("positions", positions)):
        if cols is None:
            continue
        missing = [c for c in SNAPSHOT_FILES[name] if c not in cols]
        if missing:
            raise MarketError(f"write_snapshot {name}: missing column(s) {', '.join(missing)}")
        arrays = [pa.array(cols[c], type=types.get(c, pa.string())) for c in SNAPSHOT_FILES[name]]
        pq.write_table(pa.Table.from_arrays(arrays, names=list(SNAPSHOT_FILES[name])), folder / f"{name}.parquet")
    return folder


def pool_addresses(folder) -> list[str]:
    """Pool addresses in row order (what ``pool_row`` in swaps/opportunities indexes)."""
    import pyarrow.parquet as pq
    return pq.read_table(Path(folder) / "pools.parquet", columns=["address"]).column(0).to_pylist()
