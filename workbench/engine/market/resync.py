"""Live resync: pool states from the chain, queued by Python, applied by the live loop between batches.

A Python thread (runner/live_resync.py) decodes account updates of the snapshot's pools and
vaults (chain/pool_updates.py) into whole pool states (both reserves, and a Whirlpool's
sqrt price, liquidity and current range), tagged with their slot, and ``push_state`` puts
each in ``Resync``'s bounded ring. The live loop (engine/live.py) calls ``drain_resync``
between two batches: it never waits on the network, and a full ring makes ``push_state``
refuse the state (counted ``dropped_full``): the next update of that pool carries a whole
state again, so nothing is half-applied.

Applying a state overwrites the pool's row of the ``Market`` (reserves, Whirlpool words,
the oracle prices it sets) and, when the state carries a fee other than the row's (the pool
account's fee fields, or a CPMM AmmConfig's rate, changed on chain), the fee the swap maths
reads and its float factor (``pool_fee``, ``pool_gamma``; counted ``fee_changes``).
A state older (by slot) than the one the pool holds from an
earlier update is ignored and counted (``stale_states``; chain/pool_updates.py refuses an
account update older than that account's last one before it gets here).

Drift (a research figure: how far our swap maths has wandered from the chain since the
pool's state was last known): for each applied state, per side k in (a, b),
``|predicted_k - chain_k| * 10^6 / chain_k`` with predicted the reserve the engine holds
just before the overwrite (the snapshot or the last update, moved by every swap the engine
applied since) and chain the reserve the update carries; the pool's drift is the larger of
the two sides, in parts per million, rounded down, recorded in that pool's row of the
drift histograms (metrics/hist.py). A side whose chain reserve is 0 is left out (no ratio).
The first update of a pool thus measures the drift from the snapshot.

A drain coalesces: of the states it takes for one pool, only the newest is written to the
pool table (with the newest fee any of them carried). The states between were each newer
than the one before, so applied one by one they would have overwritten each other before
any batch could read them: they are counted ``superseded``, not written. This keeps the
loop's pause between two batches bounded by the pools a drain touches, not by how fast the
chain sends (a Geyser chunk brings thousands of states of a few hot pools at once), and it
makes drift what it says: our maths' prediction (moved by every swap since the pool's last
state) against the chain, never one chain state against the one just before it. A drain
takes at most ``DRAIN_MAX`` entries; the rest wait for the next one, an iteration later.

The Geyser feed coalesces the same way before the ring (``push_newest_states``): of a chunk's
states it queues each pool's newest, with the newest fee, and counts the others superseded or
stale on its own ctl words. A drain's cost is its walk over the entries, each written by the
feed's thread on the other core and read across cores; a chunk of thousands of states of a
few pools then costs the loop a few entries, not thousands, between two batches. The end
state is the one applying every state in order gives: the loop never sees a chunk's states
apart, as it never sees a drain's.

Ring protocol (single producer, single consumer): Python writes entry ``head % Q`` and then
``ctl[Q_HEAD] = head + 1``; the loop reads entries up to head (load-acquire) and then
stores ``ctl[Q_TAIL]`` (store-release), which frees them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ...capture.kernel import load_acquire_i64, store_release_i64
from ...metrics.hist import new_histograms, record
from .layout import N_WP, PK_WHIRLPOOL
from .prices import oracle_price

# ctl words
Q_HEAD = 0              # Python: entries pushed (a running count)
Q_TAIL = 1              # loop: entries taken (a running count)
Q_APPLIED = 2           # loop: states applied to the pool table
Q_STALE = 3             # loop: states older than the pool's (ignored)
Q_DROPPED_FULL = 4      # Python: states refused because the ring was full
Q_DRAINS = 5            # loop: drains that took at least one entry
Q_FEE_CHANGES = 6       # loop: applied states whose fee differed from the pool row's (the row took it)
Q_SUPERSEDED = 7        # loop: states a newer state of the same pool replaced within one drain (not written)
Q_FEED_SUPERSEDED = 8   # Python: states a newer state of the same pool replaced within one pushed batch (not queued)
Q_FEED_STALE = 9        # Python: states of a pushed batch older than one before them of the same pool (not queued)
N_Q = 10

PPM = 1_000_000
RESYNC_QUEUE_DEFAULT = 65_536   # entries of the ring (states waiting for the loop)
DRAIN_MAX = 512                 # entries one drain takes: its walk is a few ns each, so the pause stays short


class Resync(NamedTuple):
    """The ring of pool states (Q entries) and what applying them measured (P pools)."""
    q_pool: np.ndarray          # int32[Q] pool row
    q_slot: np.ndarray          # int64[Q] slot of the state
    q_res: np.ndarray           # uint64[Q, 2] reserves a, b (base units; vault balance less what is owed)
    q_wp: np.ndarray            # uint64[Q, N_WP] Whirlpool words (layout.py WP_*); zero for constant-product pools
    ctl: np.ndarray             # int64[N_Q] Q_*
    pool_slot: np.ndarray       # int64[P] slot of the state each pool holds (-1: the snapshot's)
    pool_updates: np.ndarray    # int64[P] states applied per pool
    drift_counts: np.ndarray    # int64[P, N_BUCKETS] drift histogram per pool (ppm)
    drift_stats: np.ndarray     # int64[P, STATS_COLS]
    q_fee: np.ndarray           # uint64[Q, 2] fee numerator, denominator of the state; (0, 0): none carried (kept)
    pool_mark: np.ndarray       # int64[P] the drain that last took a state of the pool (its Q_DRAINS + 1)
    pool_take: np.ndarray       # int64[P] that drain: the ring entry to write (-1: none newer than the pool's)
    pool_fee_at: np.ndarray     # int64[P] that drain: the entry of the newest fee carried (-1: none)
    touched: np.ndarray         # int32[P] that drain: the pools it took states of, first seen first


def new_resync(n_pools: int, queue: int = RESYNC_QUEUE_DEFAULT) -> Resync:
    if queue < 1:
        raise ValueError(f"resync queue {queue}: at least 1 entry")
    counts, stats = new_histograms(max(1, n_pools))
    return Resync(np.zeros(queue, np.int32), np.zeros(queue, np.int64), np.zeros((queue, 2), np.uint64),
                  np.zeros((queue, N_WP), np.uint64), np.zeros(N_Q, np.int64), np.full(n_pools, -1, np.int64),
                  np.zeros(n_pools, np.int64), counts, stats, np.zeros((queue, 2), np.uint64),
                  np.zeros(n_pools, np.int64), np.full(n_pools, -1, np.int64), np.full(n_pools, -1, np.int64),
                  np.zeros(max(1, n_pools), np.int32))


def idle_resync() -> Resync:
    """A ring nobody pushes to, for a live run with a market and no resync: the live loop's
    ``rs`` is then a ``Resync`` in both, one signature, and a first run with --accounts after one
    without (or the other way) loads the loop numba compiled for the other instead of compiling
    the whole engine into it again. Its drain finds it empty: one load a loop iteration."""
    return new_resync(1, 1)


@njit(cache=True, nogil=True, inline="always")
def _drift_ppm(predicted, chain):
    if chain == 0:
        return np.int64(-1)
    d = np.float64(predicted) - np.float64(chain)
    if d < 0:
        d = -d
    x = d * PPM / np.float64(chain)
    return np.int64(x) if x < 4.0e18 else np.int64(4_000_000_000_000_000_000)


# The loop calls a drain at every iteration, often with nothing queued: compiled without the
# runtime's reference counting (_nrt=False; they allocate nothing), the call no longer increfs and
# decrefs the forty-odd arrays of the market and the ring, which cost more than an empty drain.
@njit(cache=True, nogil=True, _nrt=False)
def _apply_state(mk, rs, i, f):
    """Write ring entry ``i`` (a state newer than the pool's) to its pool, with the fee of entry ``f``
    (-1: keep the row's)."""
    p = rs.q_pool[i]
    drift = np.int64(-1)
    for k in range(2):
        d = _drift_ppm(mk.pool_res[p, k], rs.q_res[i, k])
        if d > drift:
            drift = d
        mk.pool_res[p, k] = rs.q_res[i, k]
    if drift >= 0:
        record(rs.drift_counts, rs.drift_stats, p, drift)
    if f >= 0:
        fee_num, fee_den = rs.q_fee[f, 0], rs.q_fee[f, 1]
        if fee_num != mk.pool_fee[p, 0] or fee_den != mk.pool_fee[p, 1]:
            mk.pool_fee[p, 0] = fee_num
            mk.pool_fee[p, 1] = fee_den
            mk.pool_gamma[p] = 1.0 - np.float64(fee_num) / np.float64(fee_den)     # as snapshot.py derives it
            rs.ctl[Q_FEE_CHANGES] += 1
    if mk.pool_kind[p] == PK_WHIRLPOOL:
        for w in range(N_WP):
            mk.pool_wp[p, w] = rs.q_wp[i, w]
    for k in range(2):
        t = mk.pool_mint[p, k]
        if mk.token_oracle[t] == p:
            mk.token_price[t] = oracle_price(mk, t)
    rs.pool_slot[p] = rs.q_slot[i]
    rs.pool_updates[p] += 1
    rs.ctl[Q_APPLIED] += 1


@njit(cache=True, nogil=True, _nrt=False)
def drain_resync(mk, rs):
    """Take what Python queued, at most ``DRAIN_MAX`` entries, and write each pool's newest state
    (the live loop, between two batches). Returns how many entries were taken."""
    head = load_acquire_i64(rs.ctl, Q_HEAD)
    tail = rs.ctl[Q_TAIL]
    if head == tail:
        return 0
    if head - tail > DRAIN_MAX:
        head = tail + DRAIN_MAX
    q = rs.q_pool.shape[0]
    stamp = rs.ctl[Q_DRAINS] + 1
    n_touched = 0
    for j in range(tail, head):        # in queue order, as applying one by one would see them
        i = j % q
        p = rs.q_pool[i]
        if rs.pool_mark[p] != stamp:
            rs.pool_mark[p] = stamp
            rs.pool_take[p] = -1
            rs.pool_fee_at[p] = -1
            rs.touched[n_touched] = p
            n_touched += 1
        t = rs.pool_take[p]
        newest = rs.pool_slot[p] if t < 0 else rs.q_slot[t]
        if rs.q_slot[i] < newest:
            rs.ctl[Q_STALE] += 1
            continue
        if t >= 0:
            rs.ctl[Q_SUPERSEDED] += 1
        rs.pool_take[p] = i
        if rs.q_fee[i, 1] != 0:
            rs.pool_fee_at[p] = i
    for k in range(n_touched):
        p = rs.touched[k]
        if rs.pool_take[p] >= 0:
            _apply_state(mk, rs, rs.pool_take[p], rs.pool_fee_at[p])
    rs.ctl[Q_DRAINS] = stamp
    store_release_i64(rs.ctl, Q_TAIL, head)
    return head - tail


# --- the Python side (one producer thread) ---------------------------------------------------------
def push_state(rs: Resync, pool: int, slot: int, reserve_a: int, reserve_b: int, wp_words=None, fee=None) -> bool:
    """Queue one pool state (``fee``: its (numerator, denominator), None to keep the row's); False
    (counted ``dropped_full``) when the ring is full."""
    ctl = rs.ctl
    head = int(ctl[Q_HEAD])
    q = rs.q_pool.shape[0]
    if head - int(ctl[Q_TAIL]) >= q:
        ctl[Q_DROPPED_FULL] += 1
        return False
    i = head % q
    rs.q_pool[i] = pool
    rs.q_slot[i] = slot
    rs.q_res[i, 0] = reserve_a
    rs.q_res[i, 1] = reserve_b
    if wp_words is not None:
        rs.q_wp[i] = wp_words
    rs.q_fee[i] = fee if fee is not None else (0, 0)
    ctl[Q_HEAD] = head + 1          # after the entry: x86 keeps the order of stores, the loop load-acquires
    return True


@njit(cache=True, nogil=True, inline="always")
def _put(rs, head, tail, pool, slot, res, wp, is_wp, fee, j, f):
    """Write state ``j`` (with the fee of state ``f``, -1: none carried) at ring position ``head``;
    returns (head, tail) after it: the head moved on, or not when the ring is full (counted)."""
    ctl = rs.ctl
    q = rs.q_pool.shape[0]
    if head - tail >= q:
        tail = load_acquire_i64(ctl, Q_TAIL)        # the loop may have freed entries meanwhile
        if head - tail >= q:
            ctl[Q_DROPPED_FULL] += 1
            return head, tail
    i = head % q
    rs.q_pool[i] = pool[j]
    rs.q_slot[i] = slot[j]
    rs.q_res[i, 0] = res[j, 0]
    rs.q_res[i, 1] = res[j, 1]
    if is_wp[j]:
        for w in range(N_WP):
            rs.q_wp[i, w] = wp[j, w]
    # (0, 0): none carried; always written, the entry may be a reused one
    rs.q_fee[i, 0] = fee[f, 0] if f >= 0 else np.uint64(0)
    rs.q_fee[i, 1] = fee[f, 1] if f >= 0 else np.uint64(0)
    return head + 1, tail


class FeedScratch(NamedTuple):
    """The producer's own per-pool scratch for ``push_newest_states`` (the loop's are Resync's)."""
    mark: np.ndarray            # int64[P] the call that last saw a state of the pool (stamp[0] of it)
    take: np.ndarray            # int64[P] that call: the batch row of the pool's newest state
    fee_at: np.ndarray          # int64[P] that call: the row of the newest fee carried (-1: none)
    order: np.ndarray           # int32[P] that call: the pools it saw, first seen first
    stamp: np.ndarray           # int64[1] calls made
    last_slot: np.ndarray       # int64[P] slot of the newest state queued for the pool (-1: none yet)


def new_feed_scratch(n_pools: int) -> FeedScratch:
    p = max(1, n_pools)
    return FeedScratch(np.zeros(p, np.int64), np.full(p, -1, np.int64), np.full(p, -1, np.int64),
                       np.zeros(p, np.int32), np.zeros(1, np.int64), np.full(p, -1, np.int64))


@njit(cache=True, nogil=True)
def push_newest_states(rs, pool, slot, res, wp, is_wp, fee, n, sc):
    """``push_state`` for the first ``n`` states of a batch (a Geyser chunk decoded in one call),
    with one head store at the end, and coalesced as a drain coalesces, before they reach the
    ring: each pool's newest state is queued, with the newest fee any of its states carried; the states between are counted
    ``superseded``, a state older than one before it ``stale``, neither queued. A chunk brings
    thousands of states of a few hot pools at once: queued one by one, each is read again by
    the loop, across cores, between two batches. Returns how many were queued; a full ring
    refuses the rest (counted ``dropped_full``), as ``push_state`` does."""
    sc.stamp[0] += 1
    stamp = sc.stamp[0]
    ctl = rs.ctl
    n_seen = 0
    for j in range(n):
        p = pool[j]
        if sc.mark[p] != stamp:
            # older than a state already queued (or, from another producer, applied): stale, as the
            # drain would find it; so its fee is not carried to a newer state of this batch either
            if slot[j] < max(sc.last_slot[p], rs.pool_slot[p]):
                ctl[Q_FEED_STALE] += 1
                continue
            sc.mark[p] = stamp
            sc.take[p] = j
            sc.fee_at[p] = j if fee[j, 1] != 0 else -1
            sc.order[n_seen] = p
            n_seen += 1
            continue
        if slot[j] < slot[sc.take[p]]:
            ctl[Q_FEED_STALE] += 1
            continue
        ctl[Q_FEED_SUPERSEDED] += 1
        sc.take[p] = j
        if fee[j, 1] != 0:
            sc.fee_at[p] = j
    head = ctl[Q_HEAD]
    tail = load_acquire_i64(ctl, Q_TAIL)
    first = head
    for k in range(n_seen):
        p = sc.order[k]
        queued = head
        head, tail = _put(rs, head, tail, pool, slot, res, wp, is_wp, fee, sc.take[p], sc.fee_at[p])
        if head != queued:
            sc.last_slot[p] = slot[sc.take[p]]
    store_release_i64(ctl, Q_HEAD, head)
    return head - first


def queued(rs: Resync) -> int:
    return int(rs.ctl[Q_HEAD] - rs.ctl[Q_TAIL])


def resync_counters(rs: Resync) -> dict:
    c = rs.ctl
    return {"states_queued": int(c[Q_HEAD]), "states_applied": int(c[Q_APPLIED]),
            "stale_states": int(c[Q_STALE] + c[Q_FEED_STALE]), "dropped_full": int(c[Q_DROPPED_FULL]),
            "still_queued": int(c[Q_HEAD] - c[Q_TAIL]), "drains": int(c[Q_DRAINS]),
            "fee_changes": int(c[Q_FEE_CHANGES]), "superseded_states": int(c[Q_SUPERSEDED] + c[Q_FEED_SUPERSEDED]),
            # what the feed handed on: queued, or coalesced away before the ring (not those a full ring refused)
            "states_handed": int(c[Q_HEAD] + c[Q_FEED_SUPERSEDED] + c[Q_FEED_STALE])}
