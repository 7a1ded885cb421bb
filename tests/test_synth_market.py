"""synth/market/: a market and swap traffic consistent with it, injected opportunities and
their truth. The truth is checked against an independent replay of the written bytes
(frames cut by hand, transactions parsed by solders, the market's own Python-integer rules;
no engine decoder, no engine detector)."""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from workbench.engine.market.constant_product import raydium_v4_amount_in, raydium_v4_amount_out
from workbench.engine.market.layout import M_POOLS, M_TOKENS
from workbench.engine.market.snapshot import load_market
from workbench.errors import ConfigError
from workbench.synth import generate_capture
from workbench.synth.market.baseline_walk import SLIP_MAX
from workbench.synth.market.replay import replay_truth
from workbench.synth.market.simulation import COMPETITOR_MS, MIN_PROFIT_LAMPORTS, VICTIM_SLIP
from workbench.synth.market.spec import POOLS, POS_PER_LST, POS_SOL_USDC, TOKENS
from workbench.config import DEFAULT_TIP_LAMPORTS
from workbench.synth.market.truth_rules import Detector, ray_in, ray_out
from workbench.synth.outputs import market_path, opportunities_truth_path
from workbench.wire.keys import MINT_WSOL, new_key_table

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
KEY_COLS = ("type", "packet_index", "pools", "profit_mint", "profit_quote", "amount_in", "amount_out", "position_id")


def _rows(rows):
    return sorted(tuple(str(r[c]) for c in KEY_COLS) for r in rows)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    out = tmp_path_factory.mktemp("market") / "busy.pcapng"
    return generate_capture(out, seconds=3.0, tps=600.0, seed=5, market=True, opportunities=12.0)


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    out = tmp_path_factory.mktemp("quiet") / "quiet.pcap"
    return generate_capture(out, seconds=3.0, tps=600.0, seed=5, market=True, opportunities=0.0)


# --- maths twin ----------------------------------------------------------------------------------

def test_python_raydium_maths_equal_the_engine_amm():
    rnd = random.Random(3)
    for _ in range(3000):
        x = rnd.choice([rnd.randrange(1, 10**6), rnd.randrange(10**9, 10**16)])
        y = rnd.choice([rnd.randrange(1, 10**6), rnd.randrange(10**9, 10**16)])
        a = rnd.choice([rnd.randrange(1, 300), rnd.randrange(1, max(2, x))])
        st, out, _ = raydium_v4_amount_out(np.uint64(a), np.uint64(x), np.uint64(y), np.uint64(25), np.uint64(10000))
        assert ray_out(a, x, y) == (int(out) if st == 0 else 0), (a, x, y)
        b = rnd.randrange(1, max(2, y))
        st, need, _ = raydium_v4_amount_in(np.uint64(b), np.uint64(x), np.uint64(y), np.uint64(25), np.uint64(10000))
        assert ray_in(b, x, y) == (int(need) if st == 0 else 0), (b, x, y)


def test_sandwich_is_the_largest_front_run_by_brute_force():
    # a small pool: every front-run size can be tried
    det = Detector([[50_000, 80_000]], [(0, 1)], 2, 0, 1, [], tip=0)
    amount = 3_000
    out = ray_out(amount, 50_000, 80_000)
    limit = out - out * 8 // 100
    opp, = det.sandwich(0, True, True, amount, limit)
    ok = [f for f in range(1, 50_000) if (o := ray_out(f, 50_000, 80_000)) > 0
          and ray_out(amount, 50_000 + f, 80_000 - o) >= limit]
    assert opp.amount_in == max(ok)
    f = opp.amount_in
    o = ray_out(f, 50_000, 80_000)
    ov = ray_out(amount, 50_000 + f, 80_000 - o)
    assert opp.profit_quote == ray_out(o, 80_000 - o - ov, 50_000 + f + amount) - f


def test_two_pool_arbitrage_is_the_exact_optimum():
    det = Detector([[40_000, 90_000], [40_000, 99_000]], [(0, 1), (0, 1)], 2, 1, -1, [], tip=0)
    opp, = det.arbitrage(0)
    route = opp.pools
    best = max(det.route_out(route, 1, d) - d for d in range(1, 20_000))
    assert opp.profit_quote == best
    assert opp.amount_out - opp.amount_in == best


# --- the generator -------------------------------------------------------------------------------

def test_market_output_is_deterministic(busy, tmp_path):
    again = generate_capture(tmp_path / busy.capture.name, seconds=3.0, tps=600.0, seed=5, market=True,
                             opportunities=12.0)
    for a, b in ((busy.capture, again.capture), (busy.truth, again.truth),
                 (busy.opportunities_truth, again.opportunities_truth)):
        assert _sha(a) == _sha(b), a.name
    names = sorted(p.name for p in busy.market.iterdir())
    assert names == sorted(p.name for p in again.market.iterdir())
    for n in names:
        assert _sha(busy.market / n) == _sha(again.market / n), n


def test_snapshot_loads_in_the_engine(busy):
    keys, slots, meta = new_key_table(1 << 17)
    mk = load_market(busy.market, keys, slots, meta)
    assert int(mk.meta[M_POOLS]) == len(POOLS)
    assert int(mk.meta[M_TOKENS]) == len(TOKENS)
    assert mk.pos_id.shape[0] == 2 * POS_PER_LST + POS_SOL_USDC
    assert mk.pos_healthy.all()                         # every position starts healthy
    assert mk.cycles.shape[0] > 0                       # JUP / WSOL / USDC
    assert mk.tbl_keys.shape[0] > len(POOLS)          # pool tables, the common one, bots' tables
    assert (mk.token_oracle >= 0).sum() == len(TOKENS) - 2   # all but WSOL and JTO (USDC pools only)
    accts = pq.read_table(busy.market / "token_accounts.parquet").to_pydict()
    assert len(accts["address"]) == len(set(accts["address"])) > 100


def test_truth_equals_an_independent_replay_of_the_bytes(busy):
    rows, stats = replay_truth(busy.capture)
    truth = pq.read_table(busy.opportunities_truth).to_pylist()
    assert _rows(rows) == _rows(truth)
    assert stats["applied"] > 300 and stats["failed"] > 0
    types = {r["type"] for r in truth}
    assert types == {"sandwich", "arbitrage", "liquidation"}
    assert sum(r["primary"] for r in truth) == busy.opportunities["injected"] >= 20


def test_baseline_limits_are_tight(busy):
    _, stats = replay_truth(busy.capture)
    victims = {r["packet_index"] for r in pq.read_table(busy.opportunities_truth).to_pylist()
               if r["type"] == "sandwich"}
    slack = stats["slack"]
    assert len(slack) > 300
    for i, s in slack.items():
        if i in victims:
            assert VICTIM_SLIP[0] * 0.99 <= s <= VICTIM_SLIP[1] * 1.01, (i, s)
        else:                              # baseline 0.1-0.5 %, injected and closing swaps exact
            assert 0.0 <= s <= SLIP_MAX * 1.01, (i, s)
    assert sum(s == 0.0 for s in slack.values()) >= busy.opportunities["injected"]


def test_truth_rows_are_self_consistent(busy):
    truth = pq.read_table(busy.opportunities_truth).to_pylist()
    packets = pq.read_table(busy.truth).to_pydict()
    tip = DEFAULT_TIP_LAMPORTS
    for r in truth:
        i = r["packet_index"]
        assert packets["kind"][i] in ("transaction", "vlan_transaction")
        assert packets["signature"][i] == r["trigger_signature"] and packets["ts_ns"][i] == r["ts_ns"]
        assert r["expected_profit_sol"] * 1e9 >= MIN_PROFIT_LAMPORTS - tip or r["type"] == "liquidation"
        if r["type"] in ("sandwich", "arbitrage"):
            assert r["profit_quote"] == r["amount_out"] - r["amount_in"] > 0
            assert r["position_id"] == -1
            assert len(r["pools"]) == (1 if r["type"] == "sandwich" else 2)
        else:
            assert r["position_id"] > 0 and len(r["pools"]) == 1
            assert r["profit_mint"] == MINT_WSOL
        if r["taken_by_competitor"]:
            c = r["competitor_packet_index"]
            assert c > i
            dt_ms = (packets["ts_ns"][c] - r["ts_ns"]) / 1e6
            assert COMPETITOR_MS[0] <= dt_ms <= COMPETITOR_MS[1] + 5, dt_ms
        else:
            assert r["competitor_packet_index"] == -1


def test_quiet_market_has_no_opportunity(quiet):
    assert pq.read_table(quiet.opportunities_truth).num_rows == 0
    rows, stats = replay_truth(quiet.capture)
    assert rows == []
    assert stats["applied"] > 300


def test_bundled_market_captures():
    busy, quiet = CAPTURES / "market.pcapng", CAPTURES / "market-quiet.pcapng"
    rows, _ = replay_truth(busy)
    truth = pq.read_table(opportunities_truth_path(busy)).to_pylist()
    assert _rows(rows) == _rows(truth) and len(truth) >= 50
    rows, _ = replay_truth(quiet)
    assert rows == [] and pq.read_table(opportunities_truth_path(quiet)).num_rows == 0


def test_generation_is_fast(busy, tmp_path):
    t0 = time.perf_counter()
    res = generate_capture(tmp_path / "speed.pcapng", seconds=4.0, tps=2000.0, seed=9, market=True)
    wall = time.perf_counter() - t0
    assert res.packets > 7000
    assert wall < 20.0, f"{res.packets} packets in {wall:.1f} s"


def test_market_arguments_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="market"):
        generate_capture(tmp_path / "x.pcap", seconds=1.0, tps=10.0, opportunities=3.0)
    with pytest.raises(ConfigError, match="opportunities"):
        generate_capture(tmp_path / "x.pcap", seconds=1.0, tps=10.0, market=True, opportunities=-1.0)


def test_cli_generate_market(tmp_path):
    from typer.testing import CliRunner

    from workbench.cli import app
    out = tmp_path / "cli.pcap"
    r = CliRunner().invoke(app, ["generate", "--out", str(out), "--seconds", "1", "--tps", "300", "--seed", "2",
                                 "--market", "--opportunities", "4"])
    assert r.exit_code == 0, r.output
    assert market_path(out).is_dir() and opportunities_truth_path(out).is_file()
