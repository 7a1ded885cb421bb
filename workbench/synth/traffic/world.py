"""The fixed cast of a seed (``World``): Raydium AMM v4 pools with their OpenBook markets and
lookup tables, the program keys, and the wallets and keys the shapes draw.

Without a market, ``N_POOLS`` pools in twin pairs (pools 2k and 2k+1 trade the same pair at
a price a little off: arbitrage twins), accounts derived from the seed, authority and market
program the real ones. With a market (synth/market/spec.py) the pools are the market's:
twins first, then single pools.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...wire.keys import JITO_TIP_ACCOUNTS, MINT_USDC, MINT_WSOL, program_address
from .protocol import (PROGRAM_ATA, PROGRAM_MEMO, PROGRAM_OPENBOOK, PROGRAM_SYSTEM, PROGRAM_TOKEN, PROGRAM_VOTE,
                       RAYDIUM_AMM_AUTHORITY, SYSVAR_RENT)

N_POOLS = 16                   # Raydium pools; pools 2k and 2k+1 trade the same pair (arbitrage twins)


@dataclass
class Pool:
    """One Raydium AMM v4 pool with its OpenBook market (all accounts but the authority are synthetic)."""

    amm: object
    open_orders: object
    target_orders: object
    coin_vault: object          # pool coin token account
    pc_vault: object            # pool pc token account
    market: object
    bids: object
    asks: object
    event_queue: object
    market_coin_vault: object
    market_pc_vault: object
    vault_signer: object
    coin_mint: object
    pc_mint: object
    price: float                # pc base units per coin base unit
    table: object               # AddressLookupTableAccount holding the pool's accounts


class Wallet:
    """A solders Keypair with its public key computed once (``Keypair.pubkey`` is not free, and
    building a template asks for it many times)."""

    __slots__ = ("keypair", "_pubkey")

    def __init__(self, keypair):
        self.keypair = keypair
        self._pubkey = keypair.pubkey()

    def pubkey(self):
        return self._pubkey

    def sign_message(self, message: bytes):
        return self.keypair.sign_message(message)


class World:
    """The fixed cast of a seed: pools, lookup tables, program keys."""

    def __init__(self, rng: np.random.Generator, market=None):
        from solders.address_lookup_table_account import AddressLookupTableAccount
        from solders.pubkey import Pubkey

        P = Pubkey.from_string
        self.rng = rng
        self.system = P(PROGRAM_SYSTEM)
        self.token = P(PROGRAM_TOKEN)
        self.ata = P(PROGRAM_ATA)
        self.raydium = P(program_address("raydium_amm_v4"))
        self.openbook = P(PROGRAM_OPENBOOK)
        self.vote = P(PROGRAM_VOTE)
        self.memo = P(PROGRAM_MEMO)
        self.authority = P(RAYDIUM_AMM_AUTHORITY)
        self.wsol = P(MINT_WSOL)
        self.usdc = P(MINT_USDC)
        self.tips = [P(s) for s in JITO_TIP_ACCOUNTS]
        self.market = market
        self.pools: list[Pool] = []
        self.tables: list = []
        self.n_pools = N_POOLS if market is None else len(market.pools)
        for k in range(self.n_pools):
            if market is not None:      # the market's pools: twins 2k, 2k+1 first (N_POOLS), then single pools
                spec = market.pools[k]
                coin, pc, price = P(spec.coin), P(spec.pc), spec.price
            elif k % 2 == 0:
                coin = self.key()
                pc = self.wsol if rng.random() < 0.7 else self.usdc
                price = float(np.exp(rng.uniform(np.log(1e-4), np.log(1e2))))
            else:                       # the twin: same pair, a price a little off
                prev = self.pools[-1]
                coin, pc, price = prev.coin_mint, prev.pc_mint, prev.price * float(rng.uniform(0.97, 1.03))
            keys = [self.key() for _ in range(12)]
            table = AddressLookupTableAccount(self.key(), keys + [self.authority, self.openbook, coin, pc])
            self.pools.append(Pool(*keys, coin_mint=coin, pc_mint=pc, price=price, table=table))
            self.tables.append(table)
        common = [self.token, self.system, self.ata, self.openbook, self.authority, self.wsol, self.usdc,
                  P(SYSVAR_RENT)] + [self.key() for _ in range(24)]
        self.common_table = AddressLookupTableAccount(self.key(), common)
        self.tables.append(self.common_table)

    def key(self):
        from solders.pubkey import Pubkey
        return Pubkey(self.rng.bytes(32))

    def wallet(self) -> "Wallet":
        from solders.keypair import Keypair
        return Wallet(Keypair.from_seed(self.rng.bytes(32)))

    def log_uniform(self, lo: float, hi: float) -> float:
        return float(np.exp(self.rng.uniform(np.log(lo), np.log(hi))))

    def ata_of(self, owner, mint):
        from solders.token.associated import get_associated_token_address
        return get_associated_token_address(owner, mint)

    def table(self, keys):
        from solders.address_lookup_table_account import AddressLookupTableAccount
        t = AddressLookupTableAccount(self.key(), list(keys))
        self.tables.append(t)
        return t
