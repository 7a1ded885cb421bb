"""The current accounts of a snapshot's pools, vaults and CPMM AmmConfigs, to seed a live resync.

Why: a Geyser or accountSubscribe stream sends an account only when it changes, and a pool
yields states only once its pool account and both vaults are known (pool_updates.py): a
quiet vault could keep its pool waiting for the whole run. At resync start the feed asks the
snapshot's RPC for every tracked account with getMultipleAccounts (rpc.py: batches of 100,
concurrent, the same retries and backoff) and hands them to the tracker as updates at their
batch's context slot, so a stream update older than the seeded account is stale exactly as
one older than an earlier stream update is. A second round fetches the AmmConfig that each
CPMM pool account names (its trade fee lives there, not in the pool).

An account the node answers null for, or that does not decode as its role, is left out and
named in ``SeedResult.failed``; a request that fails after its retries raises ChainError
naming the URL and the first account of its batch. The caller (runner/live_resync.py) turns
both into notes: the stream path works without the seed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
from dataclasses import dataclass, field

from ..errors import ChainError
from . import raydium_cpmm as cpmm
from .account import Account, b58, decode
from .rpc import RpcClient, run_sync


STOP_POLL_S = 0.05          # how often a seed's fetch looks whether its caller asked it to stop


@dataclass(frozen=True)
class SeedAccount:
    """One fetched account and the context slot of the request that returned it."""
    address: str
    owner: str
    data: bytes
    slot: int


@dataclass
class SeedResult:
    """What the seed fetched: pool and vault accounts (request order), CPMM AmmConfigs, and the
    accounts it could not take (address, reason)."""
    accounts: list[SeedAccount] = field(default_factory=list)
    configs: list[SeedAccount] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    requests: int = 0
    stopped: bool = False               # the caller asked to stop before every request came back


def _account(address: str, value, slot: int) -> SeedAccount:
    """A getMultipleAccounts value as a SeedAccount; ChainError naming the account otherwise."""
    if value is None:
        raise ChainError(f"account {address}", "does not exist (the RPC returned null)")
    try:
        data, enc = value["data"]
        if enc != "base64":
            raise ValueError(f"data encoding {enc!r}, expected 'base64'")
        return SeedAccount(address, str(value["owner"]), base64.b64decode(data, validate=True), slot)
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise ChainError(f"account {address}", f"not an account object with base64 data ({e})") from None


async def _fetch(client: RpcClient, keys: list[str], out: list[SeedAccount], failed: list) -> None:
    """Every key of ``keys``, a batch of rpc.KEYS_PER_REQUEST per request, each account tagged with its
    request's context slot (the first batch's slot is every later one's minContextSlot)."""
    async def one(batch):
        try:
            slot, values = await client._batch(batch)
        except ChainError as e:
            raise ChainError(e.where, f"{e.reason} (a request for {len(batch)} accounts, the first {batch[0]})") \
                from None
        for k, v in zip(batch, values):
            try:
                out.append(_account(k, v, slot))
            except ChainError as e:
                failed.append((k, e.reason))

    await client.each_batch(keys, one)


def cpmm_configs(accounts: list[SeedAccount], cpmm_pools: set[str]) -> list[str]:
    """The AmmConfig addresses named by the CPMM pool accounts among ``accounts`` (those that decode)."""
    out = []
    for a in accounts:
        if a.address in cpmm_pools:
            try:
                rec = decode(cpmm.POOL_LAYOUT, [Account(a.address, a.owner, a.data)])[0]
            except ChainError:
                continue                # the tracker refuses it too, with the note naming it
            out.append(b58(rec["amm_config"]))
    return list(dict.fromkeys(out))


def fetch_seed(url: str, addresses: list[str], cpmm_pools: set[str], *, commitment: str = "processed",
               stop: threading.Event | None = None, **client_kw) -> SeedResult:
    """The current ``addresses`` and the AmmConfigs of the ``cpmm_pools`` among them (see the module).
    Blocking: the caller runs it on a thread of its own. When ``stop`` is set the requests still
    out (and their retries' waits) are abandoned within ``STOP_POLL_S``: the result then says
    ``stopped`` and holds what came back before."""
    res = SeedResult()

    async def fetch():
        async with RpcClient(url, commitment=commitment, **client_kw) as client:
            try:
                await _fetch(client, list(dict.fromkeys(addresses)), res.accounts, res.failed)
                await _fetch(client, cpmm_configs(res.accounts, cpmm_pools), res.configs, res.failed)
            finally:
                res.requests = client.stats.requests

    async def run():
        if stop is None:
            return await fetch()
        task = asyncio.ensure_future(fetch())
        while not task.done():
            await asyncio.wait({task}, timeout=STOP_POLL_S)
            if stop.is_set() and not task.done():
                task.cancel()
                res.stopped = True
        try:
            await task
        except asyncio.CancelledError:
            if not res.stopped:
                raise
    run_sync(run())
    return res
