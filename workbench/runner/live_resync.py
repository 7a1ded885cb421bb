"""``workbench live --accounts URL``: pool states from the chain fed to the live loop.

A thread streams account updates of the snapshot's pools and vaults (chain/geyser_stream.py
for grpc:// and grpcs://, in chunks that runner/geyser_feed.py decodes in jitted calls;
chain/ws_stream.py for ws:// and wss://), decodes each into the pool's state
(chain/pool_updates.py's rule) and queues it for the engine (engine/market/resync.py
``push_state``); the live loop applies queued states between two batches and never waits
on this thread. A bad update (wrong owner or size, a vault of another mint, an account the
snapshot does not name, a malformed message) is counted, and told once per account in the
run's notes, never more than ``NOTES_MAX`` lines; an unreachable endpoint is retried with
backoff and told likewise. The counters and the drift histograms go in the live summary
(``resync``) and the store (the runs row's counts, ``latency_hist`` rows named
``resync_drift_ppm``).

Seeding (``seed_rpc``): a stream sends an account only when it changes, so at start every
tracked account is fetched from the snapshot's RPC (runner/resync_seed.py) and handed to the
tracker at its context slot, by a second thread while the stream runs. The two take
accounts one at a time under the feed's lock (``_one_producer``: the ring has a single
producer): before a Geyser stream opens the seed goes to ``tracker``, whose state the
stream's jitted tracker starts from; once it is open (``chunks``, runner/geyser_feed.py) the
seed's accounts are walked through that jitted tracker like a chunk of the stream. A failed
seed is a note naming the URL and the account; the stream goes on without it.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from ..chain.pool_updates import PoolTracker, TrackedPool
from ..engine.market.layout import N_WP, PROGRAM_NAMES
from ..engine.market.resync import RESYNC_QUEUE_DEFAULT, Resync, new_resync, push_state, resync_counters
from ..engine.market.snapshot import read_snapshot_file
from ..errors import ChainError, ConfigError
from ..metrics.hist import Histogram, merge

NOTES_MAX = 50              # note lines kept (bad updates, reconnections); the rest are only counted
DRIFT_HIST = "resync_drift_ppm"
JOIN_S = 5.0


def _b58(raw) -> str | None:
    import base58
    return base58.b58encode(raw).decode() if raw is not None else ""


def tracked_pools(market_dir) -> list[TrackedPool]:
    """The snapshot's pools (row order, as the engine numbers them) with their vaults and mints."""
    rows = read_snapshot_file(market_dir, "pools")
    return [TrackedPool(_b58(r["address"]), PROGRAM_NAMES[r["program"]], _b58(r["mint_a"]), _b58(r["mint_b"]),
                        _b58(r["vault_a"]), _b58(r["vault_b"])) for r in rows]


def check_accounts_url(url: str) -> str:
    """'grpc' or 'ws': which client serves ``url``; ConfigError naming --accounts otherwise."""
    from ..chain.geyser_stream import parse_grpc_url
    from ..chain.ws_stream import check_ws_url
    try:
        if url.startswith(("grpc://", "grpcs://")):
            parse_grpc_url(url)
            return "grpc"
        check_ws_url(url)
        return "ws"
    except ChainError as e:
        raise ConfigError(f"{e.where}: {e.reason}") from None


def wp_words(price: int, liquidity: int, lower: int, upper: int) -> np.ndarray:
    """The Whirlpool words of a pool row (engine/market/layout.py WP_*: each u128 as hi, lo)."""
    w = np.zeros(N_WP, np.uint64)
    for j, v in enumerate((price, liquidity, lower, upper)):
        w[2 * j], w[2 * j + 1] = v >> 64, v & ((1 << 64) - 1)
    return w


def _one_producer(method):
    """Run ``method`` holding the feed's lock: the seed and the stream threads both queue states."""
    @functools.wraps(method)
    def locked(self, *args, **kw):
        with self._lock:
            return method(self, *args, **kw)
    return locked


class AccountFeed:
    """The resync thread of one live run: stream -> decode -> queue for the loop (and the seed thread)."""

    def __init__(self, url: str, market_dir, n_pools: int, queue: int = RESYNC_QUEUE_DEFAULT,
                 seed_rpc: str | None = None):
        self.url, self.kind = url, check_accounts_url(url)
        self.pools = tracked_pools(market_dir)
        if len(self.pools) != n_pools:
            raise ConfigError(f"--accounts: the snapshot {market_dir} has {len(self.pools)} pools, the engine "
                              f"loaded {n_pools}")
        self.tracker = PoolTracker(self.pools)
        self.rs: Resync = new_resync(n_pools, queue)
        self.notes: list[str] = []
        self.notes_dropped = 0
        self._noted: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.seed_rpc = seed_rpc
        self.seed: dict = {}            # what the seed did (summary.json ``resync.seed``); {} without one
        self._lock = threading.RLock()
        self.chunks = None              # a Geyser stream's jitted tracker, once the stream is open
        self._seed_thread: threading.Thread | None = None

    # --- the thread ---------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Before capture starts: a Geyser stream's chunk kernels loaded (compiled on a first run), so
        the stream's thread never compiles them mid-run (geyser_feed.py ``GeyserChunks.warm_up``)."""
        if self.kind == "grpc":
            from .geyser_feed import GeyserChunks
            GeyserChunks(self).warm_up()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="workbench-resync", daemon=True)
        self._thread.start()
        if self.seed_rpc:
            self._seed_thread = threading.Thread(target=self._seed, name="workbench-resync-seed", daemon=True)
            self._seed_thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_S)
        if self._seed_thread is not None:
            self._seed_thread.join(JOIN_S)

    def _seed(self) -> None:
        from .resync_seed import seed_feed
        seed_feed(self)

    def _push(self, s) -> None:
        push_state(self.rs, s.pool, s.slot, s.reserve_a, s.reserve_b,
                   wp_words(*s.whirlpool) if s.whirlpool is not None else None, s.fee)

    def _run(self) -> None:
        try:
            if self.kind == "grpc":
                from .geyser_feed import stream_geyser      # whole chunks of the stream per jitted call
                stream_geyser(self)
            else:
                from ..chain.ws_stream import stream_accounts
                stream_accounts(self.url, self.tracker.addresses(), self.on_account, self._stop, self.note)
        except BaseException as e:  # noqa: BLE001 - a failed stream ends resync, never the run: told in the notes
            self.error = e
            self.note(f"{self.url}: account stream stopped: {type(e).__name__}: {e}")

    def note(self, line: str, key: str | None = None) -> None:
        if key is not None:
            if key in self._noted:
                self.notes_dropped += 1
                return
            self._noted.add(key)
        if len(self.notes) >= NOTES_MAX:
            self.notes_dropped += 1
            return
        self.notes.append(line)

    @_one_producer
    def on_account(self, address: str, owner: str, data: bytes, slot: int) -> None:
        """One account update: decoded into its pool's state, queued for the loop."""
        try:
            s = self.tracker.update(address, owner, data, slot)
        except ChainError as e:
            self.note(f"resync: {e.where}: {e.reason} (slot {slot}; update skipped)", key=f"{e.where}:{e.reason[:40]}")
            return
        except Exception as e:  # noqa: BLE001 - one update that does not decode never ends the stream
            self.tracker.rejected += 1
            self.note(f"resync: account {address}: {type(e).__name__}: {e} (slot {slot}; update skipped)",
                      key=f"{address}:{type(e).__name__}")
            return
        if s is None:
            return
        push_state(self.rs, s.pool, s.slot, s.reserve_a, s.reserve_b,
                   wp_words(*s.whirlpool) if s.whirlpool is not None else None, s.fee)

    # --- what the run reports -----------------------------------------------------------------------
    def drift(self) -> Histogram:
        """The drift (ppm) of every applied state, all pools together."""
        rs = self.rs
        h = Histogram(name=DRIFT_HIST)
        for p in range(rs.pool_slot.shape[0]):
            merge(h.counts, h.stats, 0, rs.drift_counts, rs.drift_stats, p)
        return h

    def summary(self, market=None) -> dict:
        """Counters, the drift over all pools and, per pool that got states: their count, the last slot,
        drift p50, p99, max (ppm) and, given the ``market`` after the run, the reserves it ended with."""
        from .results import hist_summary
        rs = self.rs
        per_pool = {}
        for p in np.nonzero(rs.pool_updates)[0]:
            h = Histogram(rs.drift_counts, rs.drift_stats, int(p), DRIFT_HIST)
            per_pool[self.pools[p].address] = {"states": int(rs.pool_updates[p]), "slot": int(rs.pool_slot[p]),
                                              **h.percentiles((50, 99)), "max": h.max}
            if market is not None:
                per_pool[self.pools[p].address]["reserves"] = [int(x) for x in market.pool_res[p]]
        return {"endpoint": self.url, **self.tracker.counters(), **resync_counters(rs),
                "drift_ppm": hist_summary(self.drift()), "drift_ppm_by_pool": per_pool,
                "notes": list(self.notes), "notes_not_shown": self.notes_dropped, "seed": dict(self.seed)}

    def counts(self) -> dict[str, int]:
        """The integer counters, for the store's runs row (``resync_*``)."""
        c = {**self.tracker.counters(), **resync_counters(self.rs), "seeded_accounts": self.seed.get("accounts", 0)}
        return {f"resync_{k}": int(v) for k, v in c.items()}
