"""Account updates of a snapshot's pools and vaults, decoded into whole pool states (live resync).

An update (from a Geyser stream or accountSubscribe: address, owner, data, slot) of a pool
account or of one of its two vaults is decoded with this package's layouts (raydium_amm_v4,
raydium_cpmm, whirlpool, token_2022's token account) and combined with the latest of the
pool's other two accounts into the state the engine's AMM maths uses, by the same rule as
the snapshot (market.py): reserve = vault balance less what the pool account says is owed
(Raydium v4 need_take_pnl, CPMM protocol + fund + creator fees, Whirlpool protocol_fee_owed),
plus a Whirlpool's sqrt price, liquidity and current tick-spacing range. The state's slot
is the newest of the three accounts' slots.

A pool yields states only once all three of its accounts have been seen since the start
(the snapshot holds reserves, not the balances and debts they came from, and a Geyser or
accountSubscribe stream sends an account only when it changes): until then its updates
are kept and counted ``waiting``. An update older (by slot) than the last one of the same
account is ignored and counted ``stale``. An account whose owner, size or discriminator
does not fit its role, or a vault holding another mint, raises ChainError naming it; the
caller counts it and carries on.

Each state also carries the pool's fee, read as the snapshot reads it: Raydium v4's
swap_fee_numerator / swap_fee_denominator and a Whirlpool's fee_rate / 10^6 from the pool
account; a CPMM pool's AmmConfig trade_fee_rate (+ creator_fee_rate when the pool has it on)
/ 10^6 once its AmmConfig has been given (``config_update``: the live resync's seed fetches
it; until then a CPMM state carries no fee and the snapshot's stays). The engine takes a fee
only when it differs from the one it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ChainError
from . import raydium_amm_v4 as v4
from . import raydium_cpmm as cpmm
from . import whirlpool as wp
from .account import Account, address_bytes, b58, decode
from .market import POOL_LAYOUTS, POOL_PROGRAMS
from .token_2022 import ACCOUNT_LAYOUT

PROGRAM_OF_NAME = {name: program for program, name in POOL_PROGRAMS.items()}
_MINT_OFF = ACCOUNT_LAYOUT.dtype.fields["mint"][1]         # the token account's fields, from its layout
_AMOUNT_OFF = ACCOUNT_LAYOUT.dtype.fields["amount"][1]
ROLE_POOL = 2           # roles of an account: 0 vault a, 1 vault b, ROLE_POOL the pool account


@dataclass(frozen=True)
class PoolState:
    """One pool's state from the chain. ``whirlpool``: (sqrt price, liquidity, range lower, upper), Q64.64 / u128."""
    pool: int               # row in the snapshot's pools.parquet
    slot: int
    reserve_a: int
    reserve_b: int
    whirlpool: tuple[int, int, int, int] | None = None
    fee: tuple[int, int] | None = None      # (numerator, denominator) on the input; None: not known (CPMM, no config)


@dataclass(frozen=True)
class TrackedPool:
    """A snapshot pool as the tracker needs it (addresses base58, ``program`` a snapshot program name)."""
    address: str
    program: str
    mint_a: str
    mint_b: str
    vault_a: str
    vault_b: str


class PoolTracker:
    """The latest pool account and vault balances of every snapshot pool, and the states they make."""

    def __init__(self, pools: list[TrackedPool]):
        self.pools = pools
        self.role: dict[str, tuple[int, int]] = {}
        for p, t in enumerate(pools):
            if t.program not in PROGRAM_OF_NAME:
                raise ChainError(f"pool {t.address}", f"program {t.program!r} is none of {', '.join(PROGRAM_OF_NAME)}")
            for role, a in ((ROLE_POOL, t.address), (0, t.vault_a), (1, t.vault_b)):
                if not a:
                    continue        # a Raydium v4 pool without its vaults in the snapshot: never complete
                address_bytes(a, f"pool {t.address} account")
                self.role[a] = (p, role)
        self._mint_raw = [(address_bytes(t.mint_a), address_bytes(t.mint_b)) for t in pools]
        self._rec: list = [None] * len(pools)           # decoded pool account
        self._bal: list[list] = [[None, None] for _ in pools]
        self._slot: dict[str, int] = {}                 # latest slot of each account
        self._pool_slot = [0] * len(pools)
        self._fee: list = [None] * len(pools)          # (num, den) from the pool account (and its AmmConfig)
        self._config: dict[str, tuple] = {}             # CPMM AmmConfig address -> (decoded record, slot)
        self._config_of: list = [None] * len(pools)     # CPMM: the AmmConfig its pool account names
        self.updates = 0        # account updates taken (every one, good or not)
        self.stale = 0          # older than the account's last one: ignored
        self.waiting = 0        # decoded, but the pool's three accounts are not all seen yet
        self.rejected = 0       # ChainError: owner, size, discriminator, mint, or not a snapshot account

    def addresses(self) -> list[str]:
        """Every account to subscribe to: each pool and its vaults."""
        return list(self.role)

    def update(self, address: str, owner: str, data: bytes, slot: int) -> PoolState | None:
        """Take one account update; the pool's new state, or None (stale, or the pool not complete yet).
        ChainError (counted ``rejected``) when the account cannot be what the snapshot says it is."""
        self.updates += 1
        try:
            return self._update(address, owner, data, slot)
        except ChainError:
            self.rejected += 1
            raise

    def _update(self, address, owner, data, slot):
        hit = self.role.get(address)
        if hit is None and address in self._config:     # a CPMM AmmConfig (the seed's, or a stream naming it)
            self.config_update(address, owner, data, slot)
            return None
        if hit is None:
            raise ChainError(f"account {address}", "is neither a pool nor a vault of the snapshot")
        p, role = hit
        if slot < self._slot.get(address, -1):
            self.stale += 1
            return None
        acct = Account(address, owner, bytes(data))
        t = self.pools[p]
        if role == ROLE_POOL:
            rec = decode(POOL_LAYOUTS[PROGRAM_OF_NAME[t.program]], [acct])[0]
            self._fee[p] = self._pool_fee(p, rec)
            self._rec[p] = rec
        else:
            # the layout's own check (owner, size), then its two fields read in place: a vault's balance is
            # most of the stream, and a structured decode per update would cost more than the rest together
            ACCOUNT_LAYOUT.check(acct)
            mint = acct.data[_MINT_OFF:_MINT_OFF + 32]
            if mint != self._mint_raw[p][role]:
                raise self.wrong_mint(address, mint, p, role)
            self._bal[p][role] = int.from_bytes(acct.data[_AMOUNT_OFF:_AMOUNT_OFF + 8], "little")
        self._slot[address] = slot
        self._pool_slot[p] = max(self._pool_slot[p], slot)
        rec, (ba, bb) = self._rec[p], self._bal[p]
        if rec is None or ba is None or bb is None:
            self.waiting += 1
            return None
        program = PROGRAM_OF_NAME[t.program]
        words = None
        if program == v4.PROGRAM:
            ra, rb = v4.reserves(t.address, rec, ba, bb)
        elif program == cpmm.PROGRAM:
            ra, rb = cpmm.reserves(t.address, rec, ba, bb)
        else:
            ra, rb = wp.reserves(t.address, rec, ba, bb)
            lo, hi = wp.current_range(t.address, rec)
            price = _u128(rec["sqrt_price"])
            if not lo <= price <= hi:
                raise price_outside(t.address, price, lo, hi, int(rec["tick_current_index"]))
            words = (price, _u128(rec["liquidity"]), lo, hi)
        return PoolState(p, self._pool_slot[p], ra, rb, words, self._fee[p])

    def _pool_fee(self, p: int, rec) -> tuple[int, int] | None:
        """The fee of pool ``p`` whose account decoded to ``rec``, by the snapshot's rule (chain/market.py)."""
        t = self.pools[p]
        program = PROGRAM_OF_NAME[t.program]
        if program == v4.PROGRAM:
            fee = (int(rec["swap_fee_numerator"]), int(rec["swap_fee_denominator"]))
        elif program == wp.PROGRAM:
            fee = (int(rec["fee_rate"]), wp.FEE_RATE_DENOMINATOR)
        else:
            self._config_of[p] = b58(rec["amm_config"])
            cfg = self._config.get(self._config_of[p])
            if cfg is None:
                return None
            fee = cpmm.swap_fee(rec, cfg[0])
        if fee[1] == 0 or fee[0] >= fee[1]:
            raise ChainError(f"account {t.address}", f"fee {fee[0]}/{fee[1]} is not in [0, 1)")
        return fee

    def config_update(self, address: str, owner: str, data: bytes, slot: int) -> list[PoolState]:
        """Take a CPMM AmmConfig account; the new states (with the fee) of the complete pools that name it.
        An update older than the config's last one is ignored (counted ``stale``); ChainError when the
        account is no AmmConfig."""
        old = self._config.get(address)
        if old is not None and slot < old[1]:
            self.stale += 1
            return []
        self._config[address] = (decode(cpmm.CONFIG_LAYOUT, [Account(address, owner, bytes(data))])[0], slot)
        states = []
        for p, name in enumerate(self._config_of):
            if name == address and self._rec[p] is not None:
                self._fee[p] = self._pool_fee(p, self._rec[p])
                if self._bal[p][0] is not None and self._bal[p][1] is not None:
                    ra, rb = cpmm.reserves(self.pools[p].address, self._rec[p], *self._bal[p])
                    states.append(PoolState(p, self._pool_slot[p], ra, rb, None, self._fee[p]))
        return states

    def wrong_mint(self, address: str, mint: bytes, p: int, role: int) -> ChainError:
        """The error of vault ``address`` of pool ``p`` holding ``mint`` (32 bytes), not the pool's."""
        t = self.pools[p]
        return ChainError(f"account {address}", f"holds mint {b58(np.frombuffer(mint, np.uint8))}, but pool "
                                                f"{t.address} names it the vault of mint {(t.mint_a, t.mint_b)[role]}")

    def counters(self) -> dict:
        return {"account_updates": self.updates, "stale_account_updates": self.stale,
                "waiting_for_accounts": self.waiting, "rejected_updates": self.rejected}


def price_outside(address: str, price: int, lo: int, hi: int, tick: int) -> ChainError:
    """The error of a Whirlpool whose sqrt price is outside the range of its current tick."""
    return ChainError(f"account {address}", f"sqrt_price {price} is outside the range [{lo}, {hi}] of "
                                            f"its tick_current_index {tick}")


def _u128(words) -> int:
    w = np.asarray(words, np.uint64)
    return int(w[0]) | int(w[1]) << 64
