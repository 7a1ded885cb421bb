"""The market snapshot of a capture: the spec and the templates' accounts as the engine loads
them (``engine.market.write_snapshot``), the state at the capture start."""

from __future__ import annotations

from pathlib import Path

from ...engine.market.snapshot import write_snapshot
from .spec import FEE_DEN, FEE_NUM, MarketSpec


def write_market_snapshot(spec: MarketSpec, tm, folder) -> Path:
    """Write ``folder`` from the market ``spec`` and its ``TemplateSet`` ``tm`` (pools'
    addresses and vaults, lookup tables, the token accounts the swaps pay from and into)."""
    tokens = dict(mint=list(spec.mints), decimals=list(spec.decimals), symbol=list(spec.symbols))
    pools = {c: [] for c in ("address", "program", "mint_a", "mint_b", "vault_a", "vault_b", "reserve_a",
                             "reserve_b", "fee_num", "fee_den", "sqrt_price_x64", "liquidity",
                             "sqrt_price_lower_x64", "sqrt_price_upper_x64", "tick_spacing")}
    for ps, pool in zip(spec.pools, tm.pools):
        for c, v in (("address", str(pool.amm)), ("program", "raydium_amm_v4"), ("mint_a", ps.coin),
                     ("mint_b", ps.pc), ("vault_a", str(pool.coin_vault)), ("vault_b", str(pool.pc_vault)),
                     ("reserve_a", ps.reserve_a), ("reserve_b", ps.reserve_b), ("fee_num", FEE_NUM),
                     ("fee_den", FEE_DEN), ("sqrt_price_x64", ""), ("liquidity", ""),
                     ("sqrt_price_lower_x64", ""), ("sqrt_price_upper_x64", ""), ("tick_spacing", 0)):
            pools[c].append(v)
    luts = dict(address=[], keys=[])
    for t in tm.tables:
        luts["address"].append(str(t.key))
        luts["keys"].append([str(k) for k in t.addresses])
    accts = {}
    for sw in tm.swaps:
        for m in sw:
            accts.setdefault(m.src, (m.src_mint, m.owner))
            accts.setdefault(m.dst, (m.dst_mint, m.owner))
    token_accounts = dict(address=list(accts), mint=[v[0] for v in accts.values()],
                          owner=[v[1] for v in accts.values()])
    positions = {c: [] for c in ("position_id", "owner", "collateral_mint", "collateral_amount", "debt_mint",
                                 "debt_amount", "liquidation_threshold", "liquidation_bonus")}
    for pid, owner, tc, ca, td, da, thr, bonus in spec.positions:
        for c, v in (("position_id", pid), ("owner", owner), ("collateral_mint", spec.mints[tc]),
                     ("collateral_amount", ca), ("debt_mint", spec.mints[td]), ("debt_amount", da),
                     ("liquidation_threshold", thr), ("liquidation_bonus", bonus)):
            positions[c].append(v)
    return write_snapshot(folder, tokens, pools, luts, token_accounts, positions)
