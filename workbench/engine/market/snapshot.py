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

Addresses are base58 strings. A bad row (an address that is not 32 bytes of base58, an
unknown program, a mint missing from tokens.parquet, a zero fee denominator, a fee >= 1,
a u128 that does not parse, duplicate pool addresses, a threshold out of range) raises
``MarketError`` naming the file, the row and the column.

In the engine the snapshot is the ``Market`` tuple of arrays (layout.py); token prices in
SOL and the health of positions are set at load from the oracle pools (prices.py).
"""

from __future__ import annotations

from pathlib import Path

import base58
import numpy as np

from ...errors import MarketError
from ...wire.keys import MINT_USDC, MINT_WSOL, PUBKEY_SZ, intern
from .layout import N_WP, PK_RAYDIUM_V4, PK_WHIRLPOOL, PROGRAMS, SWAP_HISTORY, Market
from .prices import init_health

CYCLES_PER_POOL_MAX = 64    # three-pool cycles indexed per pool (the ones through the deepest pools first)

SNAPSHOT_FILES = {
    "tokens": ("mint", "decimals", "symbol"),
    "pools": ("address", "program", "mint_a", "mint_b", "vault_a", "vault_b", "reserve_a", "reserve_b",
              "fee_num", "fee_den", "sqrt_price_x64", "liquidity", "sqrt_price_lower_x64", "sqrt_price_upper_x64",
              "tick_spacing"),
    "lookup_tables": ("address", "keys"),
    "token_accounts": ("address", "mint", "owner"),
    "positions": ("position_id", "owner", "collateral_mint", "collateral_amount", "debt_mint", "debt_amount",
                  "liquidation_threshold", "liquidation_bonus"),
}


# ============================================================================================
# parsing helpers
# ============================================================================================

def _addr(value, file: str, row: int, col: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise MarketError(f"{file} row {row} column {col}: {value!r} is not a base58 address")
    try:
        raw = base58.b58decode(value)
    except ValueError:
        raise MarketError(f"{file} row {row} column {col}: {value!r} is not base58") from None
    if len(raw) != PUBKEY_SZ:
        raise MarketError(f"{file} row {row} column {col}: {value!r} decodes to {len(raw)} bytes, not 32")
    return raw


def _u64(value, file: str, row: int, col: str) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise MarketError(f"{file} row {row} column {col}: {value!r} is not an integer") from None
    if not 0 <= v < 1 << 64:
        raise MarketError(f"{file} row {row} column {col}: {v} is outside u64")
    return v


def _u128(value, file: str, row: int, col: str) -> int:
    try:
        v = int(str(value))
    except (TypeError, ValueError):
        raise MarketError(f"{file} row {row} column {col}: {value!r} is not a decimal u128") from None
    if not 0 <= v < 1 << 128:
        raise MarketError(f"{file} row {row} column {col}: {v} is outside u128")
    return v


def _read(folder: Path, name: str, required: bool):
    import pyarrow.parquet as pq
    path = folder / f"{name}.parquet"
    if not path.exists():
        if required:
            raise MarketError(f"{path}: missing (a market snapshot needs pools.parquet)")
        return None, path.name
    try:
        table = pq.read_table(path)
    except Exception as e:      # pyarrow raises several types for a damaged file
        raise MarketError(f"{path}: not a readable Parquet file ({e})") from None
    missing = [c for c in SNAPSHOT_FILES[name] if c not in table.column_names]
    if missing:
        raise MarketError(f"{path}: missing column(s) {', '.join(missing)}")
    return table.to_pydict(), path.name


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
    if tokens is not None:
        for r, (mint, dec) in enumerate(zip(tokens["mint"], tokens["decimals"])):
            raw = _addr(mint, tokens_name, r, "mint")
            if raw in token_rows:
                raise MarketError(f"{tokens_name} row {r} column mint: {mint} is listed twice")
            if dec is None or not 0 <= int(dec) <= 255:
                raise MarketError(f"{tokens_name} row {r} column decimals: {dec!r} is not in [0, 255]")
            token_rows[raw] = len(token_list)
            token_list.append((kid(raw, tokens_name, r, "mint"), int(dec)))

    def token_of(value, file, row, col) -> int:
        raw = _addr(value, file, row, col)
        t = token_rows.get(raw)
        if t is None:
            if tokens is not None:
                raise MarketError(f"{file} row {row} column {col}: mint {value} is not in {tokens_name}")
            t = token_rows[raw] = len(token_list)
            token_list.append((kid(raw, file, row, col), -1))
        return t

    pool_list = []
    seen_pools: dict[bytes, int] = {}
    account_mints: list[tuple[int, int]] = []     # (key id, token row)
    n = len(pools["address"])
    for r in range(n):
        g = {c: pools[c][r] for c in SNAPSHOT_FILES["pools"]}
        raw = _addr(g["address"], pools_name, r, "address")
        if raw in seen_pools:
            raise MarketError(f"{pools_name} row {r} column address: {g['address']} repeats row {seen_pools[raw]}")
        seen_pools[raw] = r
        kind = PROGRAMS.get(g["program"])
        if kind is None:
            raise MarketError(f"{pools_name} row {r} column program: {g['program']!r} is not one of "
                              f"{', '.join(PROGRAMS)}")
        ta = token_of(g["mint_a"], pools_name, r, "mint_a")
        tb = token_of(g["mint_b"], pools_name, r, "mint_b")
        if ta == tb:
            raise MarketError(f"{pools_name} row {r} column mint_b: the same mint as mint_a")
        ra = _u64(g["reserve_a"], pools_name, r, "reserve_a")
        rb = _u64(g["reserve_b"], pools_name, r, "reserve_b")
        fnum = _u64(g["fee_num"], pools_name, r, "fee_num")
        fden = _u64(g["fee_den"], pools_name, r, "fee_den")
        if fden == 0 or fnum >= fden:
            raise MarketError(f"{pools_name} row {r} column fee_num: fee {fnum}/{fden} is not in [0, 1)")
        wp = [0] * N_WP
        if kind == PK_WHIRLPOOL:
            price = _u128(g["sqrt_price_x64"], pools_name, r, "sqrt_price_x64")
            liq = _u128(g["liquidity"], pools_name, r, "liquidity")
            lo = _u128(g["sqrt_price_lower_x64"], pools_name, r, "sqrt_price_lower_x64")
            hi = _u128(g["sqrt_price_upper_x64"], pools_name, r, "sqrt_price_upper_x64")
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
            if v:
                account_mints.append((kid(_addr(v, pools_name, r, side), pools_name, r, side), t))
            elif kind != PK_RAYDIUM_V4:
                raise MarketError(f"{pools_name} row {r} column {side}: CPMM and Whirlpool pools need their vaults "
                                  "(the swap direction is read from them)")
        pool_list.append((kind, ta, tb, ra, rb, fnum, fden, wp, kid(raw, pools_name, r, "address")))

    tables = []
    if luts is not None:
        for r, (a, ks) in enumerate(zip(luts["address"], luts["keys"])):
            raw = _addr(a, luts_name, r, "address")
            kids = [kid(_addr(k, luts_name, r, f"keys[{j}]"), luts_name, r, f"keys[{j}]")
                    for j, k in enumerate(ks or [])]
            tables.append((raw, kids))

    if accts is not None:
        for r, (a, m) in enumerate(zip(accts["address"], accts["mint"])):
            account_mints.append((kid(_addr(a, accts_name, r, "address"), accts_name, r, "address"),
                                  token_of(m, accts_name, r, "mint")))

    pos_list = []
    if positions is not None:
        for r in range(len(positions["position_id"])):
            g = {c: positions[c][r] for c in SNAPSHOT_FILES["positions"]}
            tc = token_of(g["collateral_mint"], pos_name, r, "collateral_mint")
            td = token_of(g["debt_mint"], pos_name, r, "debt_mint")
            ca = _u64(g["collateral_amount"], pos_name, r, "collateral_amount")
            da = _u64(g["debt_amount"], pos_name, r, "debt_amount")
            if da == 0:
                raise MarketError(f"{pos_name} row {r} column debt_amount: a position without debt")
            thr, bonus = g["liquidation_threshold"], g["liquidation_bonus"]
            if thr is None or not 0.0 < float(thr) <= 1.0:
                raise MarketError(f"{pos_name} row {r} column liquidation_threshold: {thr!r} is not in (0, 1]")
            if bonus is None or not 0.0 <= float(bonus) < 1.0:
                raise MarketError(f"{pos_name} row {r} column liquidation_bonus: {bonus!r} is not in [0, 1)")
            pos_list.append((int(g["position_id"]), tc, td, ca, da, float(thr), float(bonus)))

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
