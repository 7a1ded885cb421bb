"""The live resync's seed: the tracked accounts as the RPC has them now, taken before the stream sends them.

A Geyser or accountSubscribe stream sends an account only when it changes, and a pool yields
states only once its pool account and both vaults are known (chain/pool_updates.py), so a quiet
vault would keep its pool waiting. ``seed_feed`` runs on a thread of the feed's own
(runner/live_resync.py ``AccountFeed``; the live loop and the stream never wait for it): it
fetches every pool account and vault, then the AmmConfig each CPMM pool names
(chain/account_seed.py, getMultipleAccounts), and hands them to the feed's tracker at their
request's context slot, holding the feed's lock (the stream thread queues states too). A
request that fails after its retries, or an account the node does not have or that does not
decode, is a note naming the URL and the account; the pools then wait for the stream. When the
run stops first, the requests still out (an RPC that is slow or unreachable, retrying with
backoff) are abandoned at once, so the run's end never waits on them; the seed says ``stopped``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..errors import ChainError


def seed_url(market_dir, rpc: str | None, seed: bool) -> tuple[str | None, str | None]:
    """(the RPC URL to seed the resync from, or None; a note when there is none to use): ``rpc``
    (--rpc), else the ``rpc_url`` of the snapshot's meta.json (kept without its query, where
    providers put keys: --rpc gives the whole URL)."""
    if not seed:
        return None, None
    if rpc:
        return rpc, None
    meta = Path(market_dir) / "meta.json"
    try:
        url = json.loads(meta.read_text()).get("rpc_url")
    except (OSError, ValueError, AttributeError):
        url = None
    if not url:
        return None, (f"resync seed: {meta} names no rpc_url (a snapshot not made by `workbench snapshot`): "
                      "the pools wait for the stream; give --rpc URL to seed them")
    return url, None


def seed_feed(feed) -> None:
    """Fetch ``feed``'s tracked accounts from ``feed.seed_rpc`` and take them as updates; what it did
    goes in ``feed.seed`` (summary.json ``resync.seed``), what failed in the feed's notes."""
    from ..chain.account_seed import fetch_seed
    from ..chain.rpc import public_url
    shown = public_url(feed.seed_rpc)
    t0 = time.perf_counter()
    feed.seed = {"rpc": shown, "accounts": 0, "configs": 0, "failed": 0}
    try:
        res = fetch_seed(feed.seed_rpc, feed.tracker.addresses(),
                         {t.address for t in feed.pools if t.program == "raydium_cpmm"}, stop=feed._stop)
    except Exception as e:  # noqa: BLE001 - a failed seed is told; the stream goes on without it
        why = f"{e.where}: {e.reason}" if isinstance(e, ChainError) else f"{shown}: {type(e).__name__}: {e}"
        feed.seed["error"] = why
        feed.note(f"resync seed: {why}; the pools wait for the stream")
        return
    if res.stopped or feed._stop.is_set():
        feed.seed.update(stopped=True, requests=res.requests, seconds=round(time.perf_counter() - t0, 3))
        return
    with feed._lock:
        if feed.chunks is not None:     # a Geyser stream is open: its jitted tracker takes the seed
            feed.seed["configs"], feed.seed["accounts"] = feed.chunks.take_seed(res)
        else:
            _take_in_tracker(feed, res)
    for address, reason in res.failed:
        feed.note(f"resync seed {shown}: account {address}: {reason} (not seeded)", key=f"seed:{address}")
    slots = [a.slot for a in res.accounts]
    feed.seed.update(failed=len(res.failed), requests=res.requests, seconds=round(time.perf_counter() - t0, 3),
                     slot=max(slots) if slots else -1)


def _take_in_tracker(feed, res) -> None:
    """The seed into ``feed.tracker`` (PoolTracker), its states queued: AmmConfigs first, so that the CPMM
    pools' first states carry their fee."""
    for a in res.configs:
        try:
            states = feed.tracker.config_update(a.address, a.owner, a.data, a.slot)
        except ChainError as e:
            res.failed.append((a.address, e.reason))
            continue
        for st in states:
            feed._push(st)
        feed.seed["configs"] += 1
    for a in res.accounts:
        try:
            st = feed.tracker.update(a.address, a.owner, a.data, a.slot)
        except ChainError as e:
            res.failed.append((a.address, e.reason))
            continue
        feed.seed["accounts"] += 1
        if st is not None:
            feed._push(st)
