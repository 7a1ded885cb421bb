"""Pool state and the three detectors, on hand-built captures, against Python-integer references.

Each case is a real capture (solders transactions, scapy frames) replayed with a market
snapshot; the engine's swaps.parquet and opportunities.parquet are checked against
independent exact arithmetic (tests/reference/amm_ref.py) and brute-force searches.
"""

from __future__ import annotations

import math

import pyarrow.parquet as pq
import pytest

from market_case import FEE, Case
from reference.amm_ref import AmmFail, raydium_v4_amount_out
from workbench.config import Settings
from workbench.engine.market.snapshot import load_market, write_snapshot
from workbench.errors import MarketError
from workbench.runner import replay
from workbench.wire.keys import new_key_table

SOL, USD = 10**9, 10**6
TIP = 10_000


def out(a, x, y):
    try:
        return raydium_v4_amount_out(a, x, y, *FEE)[0]
    except AmmFail:
        return 0


def sandwich_ref(x, y, v, m):
    """Largest front-run f with the victim still >= m (bisection on exact amounts), back-run, profit."""
    def ok(f):
        of = out(f, x, y)
        return out(v, x + f, y - of) >= m
    lo, hi = 1, 1
    while ok(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    f = lo
    of = out(f, x, y)
    ov = out(v, x + f, y - of)
    back = out(of, y - of - ov, x + f + v)
    return f, back - f


def best_route(pools, a_max):
    """Brute force over a geometric grid, then ternary search on the exact integer profit."""
    def profit(a):
        for (x, y) in pools:
            a_next = out(a, x, y)
            if a_next == 0:
                return -a
            a = a_next
        return a

    def p(a):
        return profit(a) - a if a > 0 else 0
    grid = [int(a_max * 0.5 ** k) for k in range(60)]
    best = max(grid, key=p)
    if p(best) <= 0:
        return 0, 0
    lo, hi = max(1, best // 2), best * 2
    while hi - lo > 2:
        m1, m2 = lo + (hi - lo) // 3, hi - (hi - lo) // 3
        if p(m1) < p(m2):
            lo = m1
        else:
            hi = m2
    return max(range(lo, hi + 1), key=p), max(p(a) for a in range(lo, hi + 1))


def run(case: Case, tmp_path, **kw):
    cap, mk = case.write(tmp_path)
    r = replay(cap, tmp_path / "run", Settings(progress=False, market=str(mk), tip_lamports=TIP, **kw))
    sw = pq.read_table(tmp_path / "run" / "swaps.parquet").to_pandas()
    op = pq.read_table(tmp_path / "run" / "opportunities.parquet").to_pandas()
    return r, sw, op, case


def twins(c: Case):
    c.pool("s1", "WSOL", "USDC", 10_000 * SOL, 1_500_000 * USD)
    c.pool("s2", "WSOL", "USDC", 8_000 * SOL, 1_200_000 * USD)


def test_quiet_swaps_are_applied_exactly_and_find_nothing(tmp_path):
    c = Case(2)
    twins(c)
    x, y = 10_000 * SOL, 1_500_000 * USD
    exp = []
    for k in range(6):
        a = (k + 1) * SOL // 10
        o = out(a, x, y)
        c.swap("s1", "WSOL", a, o - o // 1000)             # 0.1 % slippage
        exp.append((a, o, x + a, y - o))
        x, y = x + a, y - o
    r, sw, op, _ = run(c, tmp_path)
    assert len(op) == 0
    assert list(sw["status"]) == ["applied"] * 6
    assert [(int(a), int(o), int(ra), int(rb)) for a, o, ra, rb in
            zip(sw["amount_in"], sw["amount_out"], sw["reserve_a"], sw["reserve_b"])] == exp
    assert r.market["swaps_applied"] == 6 and r.opportunities["count"] == 0


def test_sandwich_is_the_largest_front_run_the_victim_survives(tmp_path):
    c = Case(3)
    twins(c)
    x, y = 10_000 * SOL, 1_500_000 * USD
    v = 100 * SOL
    m = out(v, x, y) * 95 // 100                          # 5 % slippage
    c.swap("s1", "WSOL", v, m)
    r, sw, op, _ = run(c, tmp_path)
    s = op[op["type"] == "sandwich"]
    assert len(s) == 1
    f, profit = sandwich_ref(x, y, v, m)
    row = s.iloc[0]
    assert int(row["amount_in"]) == f and int(row["profit_quote"]) == profit
    assert row["victim_signature"] == row["trigger_signature"] != ""
    assert row["pools"].tolist() == [str(c.pools["s1"]["address"])]
    assert abs(row["expected_profit_sol"] - (profit - TIP) / 1e9) < 1e-9
    assert math.isclose(row["f_victim_slippage"], 0.05, rel_tol=1e-3)
    # the victim at f + 1 would fail: f is the largest
    of = out(f + 1, x, y)
    assert out(v, x + f + 1, y - of) < m


def test_two_pool_arbitrage_matches_the_numeric_optimum(tmp_path):
    c = Case(4)
    twins(c)
    a = 50_000 * USD
    c.swap("s2", "USDC", a, 1)
    r, sw, op, _ = run(c, tmp_path)
    arb = op[(op["type"] == "arbitrage") & (op["pools"].map(len) == 2)]
    assert len(arb) == 1
    x2, y2 = int(sw["reserve_a"][0]), int(sw["reserve_b"][0])   # s2 after the swap: WSOL, USDC
    x1, y1 = 10_000 * SOL, 1_500_000 * USD
    row = arb.iloc[0]
    # USDC was sold into s2, so WSOL is dear there: WSOL -> USDC in s2, USDC -> WSOL in s1 (from WSOL, the quote)
    _, wrong = best_route([(x1, y1), (y2, x2)], 10**13)
    best_in, best = best_route([(x2, y2), (y1, x1)], 10**13)
    assert wrong == 0 < best
    assert row["pools"].tolist() == [str(c.pools["s2"]["address"]), str(c.pools["s1"]["address"])]
    assert row["profit_mint"] == str(c.mints["WSOL"])
    # the exact profit is jagged (floors, fee ceilings): within amm.optimal_two_pool_arb_in's bound of the search
    assert abs(int(row["profit_quote"]) - best) <= 2 + math.ceil(x1 / y1)
    back = out(out(int(row["amount_in"]), x2, y2), y1, x1)
    assert back - int(row["amount_in"]) == int(row["profit_quote"])


def test_three_pool_cycle_and_liquidation(tmp_path):
    c = Case(5)
    twins(c)
    c.pool("xw", "X", "WSOL", 1_000_000 * USD, 5_000 * SOL)
    c.pool("xu", "X", "USDC", 1_000_000 * USD, 750_000 * USD)
    # X collateral 100k (500 SOL) * 0.8 against 59k USDC debt (~393 SOL): health 1.017
    c.position(7, "X", 100_000 * USD, "USDC", 59_000 * USD, 0.8, 0.05)
    c.swap("xw", "X", 30_000 * USD, 1)            # dump X on its oracle pool: health < 1, and a cycle opens
    r, sw, op, _ = run(c, tmp_path)
    liq = op[op["type"] == "liquidation"]
    assert len(liq) == 1
    row = liq.iloc[0]
    assert int(row["position_id"]) == 7 and row["profit_mint"] == str(c.mints["USDC"])
    assert int(row["amount_in"]) == 59_000 * USD // 2
    assert int(row["profit_quote"]) == int(59_000 * USD // 2 * 0.05) or \
        abs(int(row["profit_quote"]) - 59_000 * USD // 2 * 0.05) <= 1
    cyc = op[(op["type"] == "arbitrage") & (op["pools"].map(len) == 3)]
    assert len(cyc) >= 1
    # exact re-evaluation of the reported cycle on the post-swap reserves
    res = {str(p["address"]): (p["a"], p["b"], p["ra"], p["rb"]) for p in c.pools.values()}
    xw = str(c.pools["xw"]["address"])
    res[xw] = ("X", "WSOL", int(sw["reserve_a"][0]), int(sw["reserve_b"][0]))
    row = cyc.iloc[0]
    tok = {str(m): n for n, m in c.mints.items()}[row["profit_mint"]]
    route = []
    for addr in row["pools"]:
        a, b, ra, rb = res[addr]
        route.append((ra, rb) if tok == a else (rb, ra))
        tok = b if tok == a else a
    best_in, best = best_route(route, 10**14)
    assert int(row["profit_quote"]) >= best * 0.999
    amt = int(row["amount_in"])
    for (xx, yy) in route:
        amt = out(amt, xx, yy)
    assert amt - int(row["amount_in"]) == int(row["profit_quote"])


def test_a_swap_that_fails_its_limit_is_not_applied(tmp_path):
    c = Case(6)
    twins(c)
    x, y = 10_000 * SOL, 1_500_000 * USD
    c.swap("s1", "WSOL", SOL, out(SOL, x, y) + 1)           # asks one unit more than the pool gives
    c.swap("s1", "WSOL", SOL, 1)
    r, sw, op, _ = run(c, tmp_path)
    assert list(sw["status"]) == ["slippage", "applied"]
    assert int(sw["reserve_a"][0]) == x


def test_direction_unresolved_is_counted(tmp_path):
    c = Case(7)
    twins(c)
    cap, mk = c.write(tmp_path)
    unknown = c.key()
    c.accounts = {"WSOL": unknown, "USDC": c.key(), "X": c.key()}
    c.payloads = []
    c.swap("s1", "WSOL", SOL, 1)
    cap, _ = c.write(tmp_path / "b")                        # capture with unknown accounts, old snapshot
    replay(cap, tmp_path / "run", Settings(progress=False, market=str(mk)))
    sw = pq.read_table(tmp_path / "run" / "swaps.parquet").to_pandas()
    assert list(sw["status"]) == ["direction_unresolved"]
    assert int(sw["reserve_a"][0]) == 10_000 * SOL


def test_cpmm_and_whirlpool_swaps_move_their_pools_exactly(tmp_path):
    from reference.amm_ref import cpmm_amount_out, tick_sqrt_price, wp_swap_within_tick
    c = Case(10)
    twins(c)
    c.pool("cp", "WSOL", "USDC", 5_000 * SOL, 750_000 * USD, program="raydium_cpmm", fee=(2500, 1_000_000))
    sp, liq = tick_sqrt_price(-20_000), 10**13
    lower, upper = tick_sqrt_price(-20_064), tick_sqrt_price(-19_936)
    c.pool("wp", "WSOL", "USDC", 1_000 * SOL, 150_000 * USD, program="orca_whirlpool", fee=(3000, 1_000_000),
           wp=(sp, liq, lower, upper))
    c.cpmm_swap("cp", "USDC", 1_000 * USD, 1)                # direction from the input vault
    c.wp_swap("wp", True, 10**9, 1)                          # a_to_b within the range
    c.wp_swap("wp", True, 10**15, 1)                         # reaches the range's end: flagged
    r, sw, op, _ = run(c, tmp_path)
    assert list(sw["program"]) == ["raydium_cpmm", "orca_whirlpool", "orca_whirlpool"]
    o, _ = cpmm_amount_out(1_000 * USD, 750_000 * USD, 5_000 * SOL, 2500)
    assert (int(sw["a_to_b"][0]), int(sw["amount_out"][0])) == (0, o)
    assert (int(sw["reserve_a"][0]), int(sw["reserve_b"][0])) == (5_000 * SOL - o, 751_000 * USD)
    a_in, a_out, fee, nxt, flags = wp_swap_within_tick(10**9, 3000, liq, sp, 0, lower, True, True)
    assert flags == 0 and sw["status"][1] == "applied"
    assert (int(sw["amount_in"][1]), int(sw["amount_out"][1])) == (a_in + fee, a_out)
    a_in2, a_out2, fee2, nxt2, flags2 = wp_swap_within_tick(10**15, 3000, liq, nxt, 0, lower, True, True)
    assert flags2 & 1 and sw["status"][2] == "crosses_tick" and int(sw["amount_out"][2]) == a_out2


def test_replays_are_byte_identical(tmp_path):
    c = Case(8)
    twins(c)
    x, y = 10_000 * SOL, 1_500_000 * USD
    c.swap("s1", "WSOL", 100 * SOL, out(100 * SOL, x, y) * 9 // 10)
    c.swap("s2", "USDC", 80_000 * USD, 1)
    cap, mk = c.write(tmp_path)
    for k in ("a", "b"):
        replay(cap, tmp_path / k, Settings(progress=False, market=str(mk)))
    for name in ("opportunities", "swaps", "tx_features"):
        assert (tmp_path / "a" / f"{name}.parquet").read_bytes() == (tmp_path / "b" / f"{name}.parquet").read_bytes()
    assert len(pq.read_table(tmp_path / "a" / "opportunities.parquet")) >= 2


def _snapshot(tmp_path, **over):
    c = Case(9)
    twins(c)
    c.write(tmp_path)
    import pyarrow as pa
    t = pq.read_table(tmp_path / "market" / "pools.parquet").to_pydict()
    t.update(over)
    pq.write_table(pa.table(t), tmp_path / "market" / "pools.parquet")
    keys, slots, meta = new_key_table(1 << 10)
    return lambda: load_market(tmp_path / "market", keys, slots, meta)


@pytest.mark.parametrize("over, needle", [
    ({"program": ["raydium_amm_v4", "uniswap"]}, "pools.parquet row 1 column program"),
    ({"mint_a": ["So11111111111111111111111111111111111111112", "notbase58!"]}, "row 1 column mint_a"),
    ({"fee_den": [10_000, 0]}, "row 1 column fee_num"),
    ({"reserve_b": [1, 0]}, "row 1 column reserve_b"),
])
def test_bad_snapshot_rows_name_file_row_and_column(tmp_path, over, needle):
    with pytest.raises(MarketError, match=needle):
        _snapshot(tmp_path, **over)()


def test_missing_snapshot_and_mint_not_in_tokens(tmp_path):
    keys, slots, meta = new_key_table(1 << 10)
    with pytest.raises(MarketError, match="no such market snapshot folder"):
        load_market(tmp_path / "nope", keys, slots, meta)
    write_snapshot(tmp_path / "m", {"mint": [], "decimals": [], "symbol": []},
                   {c: [] for c in ("address", "program", "mint_a", "mint_b", "vault_a", "vault_b", "reserve_a",
                                    "reserve_b", "fee_num", "fee_den", "sqrt_price_x64", "liquidity",
                                    "sqrt_price_lower_x64", "sqrt_price_upper_x64", "tick_spacing")})
    assert load_market(tmp_path / "m", keys, slots, meta).pool_kind.shape == (0,)
