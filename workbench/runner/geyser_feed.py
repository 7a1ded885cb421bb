"""``--accounts grpc://`` of a live run: Geyser chunks -> pool states -> the engine's resync ring.

For each chunk of the Subscribe response body (chain/geyser_stream.py) three jitted calls
run, whatever the number of messages in it: ``walk_updates`` finds the account updates
(chain/geyser_wire.py), ``track_updates`` turns them into pool states by PoolTracker's rule
(chain/pool_updates_batch.py), ``push_newest_states`` queues each pool's newest for the live loop
(engine/market/resync.py). Python touches only what is rare: a rejected update is named with
PoolTracker's own ChainError and told once per account in the run's notes, as
``AccountFeed.on_account`` tells it; the tracker's counters (``AccountFeed.tracker``) are
moved by what each chunk counted, so the summary reads the same whichever client ran.
A chunk is walked and taken under the feed's lock: the seed thread (runner/resync_seed.py)
queues states too, and once the stream is open its accounts come through ``take_seed``, the
same jitted calls, with the same scratch arrays, over the seed's accounts written as the
server would have sent them.
"""

from __future__ import annotations

import numpy as np

from ..chain import raydium_cpmm as cpmm
from ..chain.account import Account, address_bytes, decode
from ..chain.geyser_stream import account_message, stream_account_chunks
from ..chain.geyser_wire import (ERR_NAMES, grpc_frame, U_OWNER_OFF, U_OWNER_SZ, U_PUBKEY_OFF, U_PUBKEY_SZ, U_SLOT, U_DATA_OFF,
                                 U_DATA_SZ, new_updates, walk_updates)
from ..chain.pool_updates import POOL_LAYOUTS, ROLE_POOL
from ..chain.pool_updates_batch import (C_REJECTED, C_STALE, C_UPDATES, C_WAITING, address_text, new_state_rows,
                                        reject_error, track_updates, tracker_arrays)
from ..engine.market.resync import new_feed_scratch, push_newest_states
from ..errors import ChainError

UPDATES_PER_CALL = 16_384       # account updates walked and tracked per jitted call (a chunk may take several)


class GeyserChunks:
    """The per-chunk work of one feed (``runner/live_resync.py`` AccountFeed)."""

    def __init__(self, feed):
        self.feed = feed
        self.tr = tracker_arrays(feed.tracker)
        self.upd = new_updates(UPDATES_PER_CALL)
        self.rows = new_state_rows(UPDATES_PER_CALL)
        self.scratch = new_feed_scratch(feed.rs.pool_slot.shape[0])

    def on_chunk(self, buf: np.ndarray, end: int, base: int):
        """chain/geyser_stream.py's ``on_chunk``: (bytes consumed, account updates, error text or None).
        The walk and the take hold the feed's lock together: the seed thread (``take_seed``) walks its
        accounts through the same scratch arrays, whose update offsets index the chunk they were
        walked from."""
        with self.feed._lock:
            return self._on_chunk_locked(buf, end, base)

    def _on_chunk_locked(self, buf: np.ndarray, end: int, base: int):
        off = 0
        got = 0
        while True:
            view = buf[off:end]
            k, used, _msgs, err, err_off = walk_updates(view, end - off, self.upd)
            if k:
                self._take_locked(view, k)
                got += k
            if err:
                return off + used, got, f"{ERR_NAMES[err]} at byte {base + off + err_off} of the stream"
            off += used
            if k < UPDATES_PER_CALL:
                return off, got, None

    def warm_up(self) -> None:
        """Load (on a first run: compile) every kernel a chunk goes through, with the types a chunk
        gives them, taking nothing. A live run calls it before capture starts: compiled in the
        stream's thread on the first chunk, they would hold the GIL for seconds mid-run while the
        run's Stages wait for the sinks."""
        with self.feed._lock:
            view = np.zeros(1, np.uint8)[0:0]           # the type of a chunk's ``buf[off:end]``
            self._on_chunk_locked(view, 0, 0)           # the walk
            self._take_locked(view, 0)                  # the tracker, over no update
            rows = self.rows
            push_newest_states(self.feed.rs, rows.pool, rows.slot, rows.res, rows.wp, rows.is_wp, rows.fee, 0,
                               self.scratch)

    def take_seed(self, res) -> tuple[int, int]:
        """The seed's AmmConfigs and accounts (chain/account_seed.py ``fetch_seed``), taken holding the feed's
        lock: (configs, accounts) taken. A config goes to the tracker, and each seeded CPMM pool's fee to the
        arrays (the jitted tracker keeps a CPMM fee, which its pool account alone does not give); the
        accounts are then walked as a chunk of the stream, stale against what the stream already brought."""
        t = self.feed.tracker
        configs = 0
        for a in res.configs:
            try:
                t.config_update(a.address, a.owner, a.data, a.slot)    # its states: the arrays hold the pools
            except ChainError as e:
                res.failed.append((a.address, e.reason))
                continue
            configs += 1
        for a in res.accounts:
            p, role = t.role.get(a.address, (-1, -1))
            if role == ROLE_POOL and t.pools[p].program == "raydium_cpmm":
                try:
                    rec = decode(POOL_LAYOUTS[cpmm.PROGRAM], [Account(a.address, a.owner, a.data)])[0]
                    fee = t._pool_fee(p, rec)
                except ChainError:
                    continue                    # the walk refuses the account and names it
                if fee is not None:
                    self.tr.fee[p] = fee
        body = b"".join(grpc_frame(account_message(address_bytes(a.address), address_bytes(a.owner), bytes(a.data),
                                                   a.slot)) for a in res.accounts)
        buf = np.frombuffer(bytearray(body), np.uint8)
        rejected = t.rejected
        self.on_chunk(buf, len(body), 0)
        return configs, len(res.accounts) - (t.rejected - rejected)

    def _take_locked(self, view: np.ndarray, k: int) -> None:
        feed, tr, rows = self.feed, self.tr, self.rows
        before = tr.counters.copy()
        s, r = track_updates(tr, view, self.upd, k, rows)
        if s:
            push_newest_states(feed.rs, rows.pool, rows.slot, rows.res, rows.wp, rows.is_wp, rows.fee, s, self.scratch)
        d = tr.counters - before
        t = feed.tracker
        t.updates += int(d[C_UPDATES])
        t.stale += int(d[C_STALE])
        t.waiting += int(d[C_WAITING])
        t.rejected += int(d[C_REJECTED])
        for j in range(r):
            u = self.upd[rows.rj_upd[j]]
            field = lambda o, n: view[u[o]:u[o] + u[n]].tobytes()  # noqa: E731
            address = address_text(field(U_PUBKEY_OFF, U_PUBKEY_SZ))
            e = reject_error(t, int(rows.rj_code[j]), rows.rj_aux[j], address,
                             address_text(field(U_OWNER_OFF, U_OWNER_SZ)), field(U_DATA_OFF, U_DATA_SZ))
            feed.note(f"resync: {e.where}: {e.reason} (slot {int(u[U_SLOT])}; update skipped)",
                      key=f"{e.where}:{e.reason[:40]}")


def stream_geyser(feed) -> None:
    """The resync thread's work for a grpc:// or grpcs:// endpoint, until ``feed`` stops."""
    with feed._lock:                    # the arrays start from what the tracker holds (a seed already in)
        chunks = GeyserChunks(feed)
        feed.chunks = chunks
    stream_account_chunks(feed.url, feed.tracker.addresses(), chunks.on_chunk, feed._stop, feed.note)
