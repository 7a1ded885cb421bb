"""A market snapshot's rows from the chain: pools, their vaults and mints, as the engine's
snapshot folder wants them (the columns of engine/market/snapshot.py; the runner writes them).

Two rounds of getMultipleAccounts: the pools (each decoded by the layout its owner names),
then everything the pools point at (vaults, mints, CPMM AmmConfigs) plus the lookup tables
and token accounts asked for. Per pool program, exactly:

====================  ===================================================================
Raydium AMM v4        reserve = vault balance - need_take_pnl (base, quote);
                      fee = swap_fee_numerator / swap_fee_denominator (on the input)
Raydium CPMM          reserve = vault balance - protocol - fund - creator fees owed;
                      fee = AmmConfig.trade_fee_rate (+ creator_fee_rate when on) / 10^6
Orca Whirlpool        sqrt price, liquidity; range = the tick-spacing interval of the current
                      tick (whirlpool.current_range); fee = fee_rate / 10^6;
                      reserve = vault balance - protocol_fee_owed (sizes only)
====================  ===================================================================

Every account is checked against the layout (owner, size, discriminator), each vault must
hold the mint its pool names, and every error names the account.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import permutations

from ..errors import ChainError
from ..wire.keys import MINT_USDC, MINT_WSOL
from . import raydium_amm_v4 as v4
from . import raydium_cpmm as cpmm
from . import whirlpool as wp
from .account import Account, address_bytes, b58, decode
from .lookup_table import decode_table
from .token_2022 import (ACCOUNT_LAYOUT, ACCOUNT_TYPE_ACCOUNT, ACCOUNT_TYPE_MINT, EXT_TRANSFER_FEE_CONFIG, MINT_LAYOUT,
                         check_extended, extensions)

# snapshot program names (engine/market/layout.py PROGRAMS keys) by owner program
POOL_PROGRAMS = {v4.PROGRAM: "raydium_amm_v4", cpmm.PROGRAM: "raydium_cpmm", wp.PROGRAM: "orca_whirlpool"}
POOL_LAYOUTS = {v4.PROGRAM: v4.LAYOUT, cpmm.PROGRAM: cpmm.POOL_LAYOUT, wp.PROGRAM: wp.LAYOUT}
KNOWN_SYMBOLS = {MINT_WSOL: "WSOL", MINT_USDC: "USDC"}

# getProgramAccounts discovery: (program, account size, offset of mint a, offset of mint b)
DISCOVERY = ((v4.PROGRAM, v4.SIZE, 400, 432), (cpmm.PROGRAM, cpmm.POOL_SIZE, 168, 200),
             (wp.PROGRAM, wp.SIZE, 101, 181))

POOL_COLUMNS = ("address", "program", "mint_a", "mint_b", "vault_a", "vault_b", "reserve_a", "reserve_b", "fee_num",
                "fee_den", "sqrt_price_x64", "liquidity", "sqrt_price_lower_x64", "sqrt_price_upper_x64",
                "tick_spacing")


@dataclass
class MarketRows:
    """Column dicts of the snapshot files, and what the fetch saw."""
    tokens: dict
    pools: dict
    lookup_tables: dict
    token_accounts: dict
    slot_min: int
    slot_max: int
    accounts_fetched: int
    pools_by_program: dict = field(default_factory=dict)
    transfer_fee_mints: list = field(default_factory=list)    # Token-2022 mints charging a fee per transfer


async def discover_pools(client, mints: list[str]) -> list[str]:
    """Addresses of every pool of the three programs trading two of ``mints`` (each ordered pair,
    one getProgramAccounts per program and pair: dataSize plus two memcmp filters)."""
    for m in mints:
        address_bytes(m, "--mints")
    found: list[str] = []
    for a, b in permutations(dict.fromkeys(mints), 2):
        for program, size, off_a, off_b in DISCOVERY:
            filters = [{"dataSize": size}, {"memcmp": {"offset": off_a, "bytes": a}},
                       {"memcmp": {"offset": off_b, "bytes": b}}]
            found += await client.get_program_account_keys(program, filters)
    return list(dict.fromkeys(found))


def _accounts(values: dict, keys) -> dict[str, Account]:
    return {k: Account.from_rpc(k, values.get(k)) for k in keys}


def _pool_links(program: str, rec, cfg_of=None) -> tuple[str, str, str, str]:
    """(mint a, mint b, vault a, vault b) of a decoded pool."""
    if program == v4.PROGRAM:
        f = ("base_mint", "quote_mint", "base_vault", "quote_vault")
    elif program == cpmm.PROGRAM:
        f = ("token0_mint", "token1_mint", "token0_vault", "token1_vault")
    else:
        f = ("token_mint_a", "token_mint_b", "token_vault_a", "token_vault_b")
    return tuple(b58(rec[x]) for x in f)


async def fetch_market(client, pool_addresses: list[str], lookup_tables=(), token_accounts=(),
                       progress=None) -> MarketRows:
    """Fetch and decode ``pool_addresses`` (and the lookup tables and token accounts named)
    into snapshot rows. ``progress(done, more)`` counts fetched keys (RpcClient.get_multiple_accounts)."""
    pool_addresses = list(dict.fromkeys(pool_addresses))
    if not pool_addresses:
        raise ChainError("snapshot", "no pools to fetch (an empty --pools file, or --mints found none)")
    for what, group in (("pool", pool_addresses), ("--lookup-tables", lookup_tables),
                        ("--token-accounts", token_accounts)):
        for a in group:
            address_bytes(a, what)
    values = await client.get_multiple_accounts(pool_addresses, progress)
    pools = []
    for addr, acct in _accounts(values, pool_addresses).items():
        program = acct.owner
        if program not in POOL_LAYOUTS:
            raise ChainError(f"account {addr}", f"owner {program} is none of the pool programs "
                                                f"({', '.join(f'{v} {k}' for k, v in POOL_PROGRAMS.items())})")
        rec = decode(POOL_LAYOUTS[program], [acct])[0]
        pools.append((addr, program, rec))

    # round 2: vaults, mints, AmmConfigs, and what was asked besides
    mints, vaults, configs = {}, {}, {}
    for addr, program, rec in pools:
        ma, mb, va, vb = _pool_links(program, rec)
        mints.setdefault(ma, addr), mints.setdefault(mb, addr)
        vaults[va], vaults[vb] = (addr, ma), (addr, mb)
        if program == cpmm.PROGRAM:
            configs.setdefault(b58(rec["amm_config"]), addr)
    keys = [*vaults, *mints, *configs, *lookup_tables, *token_accounts]
    values = await client.get_multiple_accounts(keys, progress)

    def fetched(k, what_for):
        try:
            return Account.from_rpc(k, values.get(k))
        except ChainError as e:
            raise ChainError(e.where, f"{e.reason} ({what_for})") from None

    balance = {}
    for v, (pool, mint) in vaults.items():
        acct = fetched(v, f"a vault of pool {pool}")
        rec = decode(ACCOUNT_LAYOUT, [acct])[0]
        check_extended(acct, ACCOUNT_TYPE_ACCOUNT)
        if b58(rec["mint"]) != mint:
            raise ChainError(f"account {v}", f"holds mint {b58(rec['mint'])}, but pool {pool} names it the vault "
                                             f"of mint {mint}")
        balance[v] = int(rec["amount"])
    decimals, fee_mints = {}, []
    for m, pool in mints.items():
        acct = fetched(m, f"a mint of pool {pool}")
        rec = decode(MINT_LAYOUT, [acct])[0]
        check_extended(acct, ACCOUNT_TYPE_MINT)
        decimals[m] = int(rec["decimals"])
        if any(kind == EXT_TRANSFER_FEE_CONFIG for kind, _, _ in extensions(acct)):
            fee_mints.append(m)         # the engine's swap maths does not take this fee: meta.json says so
    config_rec = {c: decode(cpmm.CONFIG_LAYOUT, [fetched(c, f"the AmmConfig of pool {p}")])[0]
                  for c, p in configs.items()}

    rows = {c: [] for c in POOL_COLUMNS}
    by_program: dict[str, int] = {}
    for addr, program, rec in pools:
        ma, mb, va, vb = _pool_links(program, rec)
        wp_words = ("", "", "", "")
        ts = 0
        if program == v4.PROGRAM:
            ra, rb = v4.reserves(addr, rec, balance[va], balance[vb])
            fee = (int(rec["swap_fee_numerator"]), int(rec["swap_fee_denominator"]))
        elif program == cpmm.PROGRAM:
            ra, rb = cpmm.reserves(addr, rec, balance[va], balance[vb])
            fee = cpmm.swap_fee(rec, config_rec[b58(rec["amm_config"])])
        else:
            ra, rb = wp.reserves(addr, rec, balance[va], balance[vb])
            fee = (int(rec["fee_rate"]), wp.FEE_RATE_DENOMINATOR)
            lo, hi = wp.current_range(addr, rec)
            price = int(rec["sqrt_price"][0]) | int(rec["sqrt_price"][1]) << 64
            liq = int(rec["liquidity"][0]) | int(rec["liquidity"][1]) << 64
            if not lo <= price <= hi:
                raise ChainError(f"account {addr}", f"sqrt_price {price} is outside the range [{lo}, {hi}] of its "
                                                    f"tick_current_index {int(rec['tick_current_index'])}")
            wp_words = (str(price), str(liq), str(lo), str(hi))
            ts = int(rec["tick_spacing"])
        if fee[1] == 0 or fee[0] >= fee[1]:
            raise ChainError(f"account {addr}", f"fee {fee[0]}/{fee[1]} is not in [0, 1)")
        name = POOL_PROGRAMS[program]
        by_program[name] = by_program.get(name, 0) + 1
        for c, v in zip(POOL_COLUMNS, (addr, name, ma, mb, va, vb, ra, rb, *fee, *wp_words, ts)):
            rows[c].append(v)

    tables = {"address": [], "keys": []}
    for t in lookup_tables:
        tables["address"].append(t)
        tables["keys"].append(decode_table(fetched(t, "--lookup-tables"))[1])
    accts = {"address": [], "mint": [], "owner": []}
    for t in token_accounts:
        acct = fetched(t, "--token-accounts")
        rec = decode(ACCOUNT_LAYOUT, [acct])[0]
        check_extended(acct, ACCOUNT_TYPE_ACCOUNT)
        m = b58(rec["mint"])
        if m not in decimals:           # a token account of a mint no pool trades: its decimals too
            raise ChainError(f"account {t}", f"holds mint {m}, which no snapshot pool trades")
        accts["address"].append(t), accts["mint"].append(m), accts["owner"].append(b58(rec["owner"]))
    tokens = {"mint": list(decimals), "decimals": list(decimals.values()),
              "symbol": [KNOWN_SYMBOLS.get(m, m[:6]) for m in decimals]}
    slots = client.stats.slots
    return MarketRows(tokens, rows, tables, accts, min(slots), max(slots), len(pool_addresses) + len(keys),
                      by_program, fee_mints)
