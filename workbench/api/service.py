"""What the routes share: the options, the store the process owns, the engine thread, the pump.

One process owns the store connections (so other processes read an embedded store through
it while a run writes) and, with ``replay`` or ``live``, runs the engine on a background thread
with the same runner as ``workbench replay`` / ``workbench live`` (runner/background.py
``BackgroundRun``: same rows, same outputs, the same store writer). The pump, a task on the
event loop, publishes the rows the run collected on the WebSocket channels. The run wakes it
(``loop.call_soon_threadsafe``, which never blocks) when it hands rows on, at most one wake
pending at a time, so a row waits for no tick: the engine's thread as it hands on a call's
opportunity records (the run's ``opportunity_feed``, made ready here by opportunity_records.py),
the run's sink thread as it hands on the other tables. The engine hands rows to a list and goes
on; only the pump and the sockets wait.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import anyio
import numpy as np
import orjson
import pyarrow as pa

from ..errors import ConfigError
from ..host.cpu import FIFO_PRIORITY_DEFAULT
from ..metrics.hist import Histogram
from ..runner.background import BackgroundRun
from .defaults import DEFAULT_HOST, DEFAULT_OUT_DIR, DEFAULT_PORT
from .engine_placement import EnginePlacement, check_cpu
from .engine_batches import EngineBatch, engine_batch, joined, preparer
from .fast_post import warm_up as answers_warm_up
from .posted_scan import warm_up as scan_warm_up
from .id_entries import warm_up as entries_warm_up
from .json_rows import warm_up as json_warm_up
from .loop_priority import raise_loop
from .opportunity_records import OpportunityRecords
from .opportunity_records import warm_up as records_warm_up
from .defaults import HISTORY_ITEMS, QUEUE_FRAMES
from .hub import Hub
from .seen_ids import warm_up as ids_warm_up
from .seq_index import SeqIndex
from .security import TOKEN_ENV, is_loopback
from .store_access import StoreAccess

log = logging.getLogger(__name__)

STATS_PERIOD_S = 1.0            # the stats channel gets one item this often (and pending gaps are told)
LIVE_SOURCES = ("afpacket", "udp")


@dataclass
class ServeOptions:
    db: str                                # store DSN (the CLI resolves the default)
    replay: str | None = None              # capture to replay on the engine thread
    live: bool = False                     # capture live on the engine thread (iface, or source udp and ports)
    iface: str | None = None
    source: str = "afpacket"               # live: afpacket (iface) or udp (ports)
    ports: str | None = None               # live: UDP ports (udp: bound; afpacket: the capture filter)
    market: str | None = None
    model: str | None = None
    out_dir: str = DEFAULT_OUT_DIR
    speed: float | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    queue_frames: int = QUEUE_FRAMES       # per WebSocket client, before it starts missing frames
    history_items: int = HISTORY_ITEMS     # items a channel keeps in memory for resumes (older: the store)
    rate_limit: float | None = None        # requests/s per client address; None: no limit
    settings: object = None                # the engine run's Settings (the CLI's: file < env < flags); None: defaults
    cpu: int | None = None                 # pin the engine thread to this CPU (the process's other threads stay off it)
    rt: bool = False                       # SCHED_FIFO for the engine thread (the live mode's live_fifo_priority)
    loop_rt: bool = False                  # SCHED_FIFO for the event loop thread, one below the engine's (loop_priority.py)

    def checked(self) -> "ServeOptions":
        """Fill the token from the environment; refuse an address off loopback without one."""
        self.token = self.token or os.environ.get(TOKEN_ENV) or None
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(f"--host {self.host} is not a loopback address: anyone who can reach it could read and "
                              f"write the store. Pass --token T (or set {TOKEN_ENV}); clients then send "
                              "'Authorization: Bearer T'")
        if not 0 <= self.port < 65536:
            raise ConfigError(f"--port {self.port}: expected 0..65535")
        if self.queue_frames < 1:
            raise ConfigError(f"--ws-queue-frames {self.queue_frames}: expected at least 1")
        check_cpu(self.cpu)
        if (self.cpu is not None or self.rt) and not (self.replay or self.live):
            raise ConfigError(f"{'--cpu' if self.cpu is not None else '--rt'} places the engine thread: add --replay "
                              "or --live")
        if self.history_items < 1:
            raise ConfigError(f"--ws-history-items {self.history_items}: expected at least 1")
        if self.rate_limit is not None and not (0 < self.rate_limit < float("inf")):
            raise ConfigError(f"--rate-limit {self.rate_limit}: expected requests per second > 0 (leave it unset "
                              "for no limit)")
        if self.live:
            if self.replay:
                raise ConfigError("--live and --replay: one source at a time")
            if self.source not in LIVE_SOURCES:
                raise ConfigError(f"--source {self.source}: expected one of {', '.join(LIVE_SOURCES)}")
            if self.source == "afpacket" and not self.iface:
                raise ConfigError("--live needs --iface IF (or --source udp --ports P)")
            if self.source == "udp" and not self.ports:
                raise ConfigError("--live --source udp needs --ports P (the UDP ports to bind)")
        elif self.iface or self.ports:
            raise ConfigError(f"{'--iface' if self.iface else '--ports'} is for live capture: add --live")
        return self


@dataclass
class Service:
    """What the routes share: the store, the run, the hub and the counters."""
    options: ServeOptions
    store: StoreAccess
    run: BackgroundRun | None = None
    hub: Hub = field(default_factory=Hub)
    http_requests: Counter = field(default_factory=Counter)
    opportunities_by_type: Counter = field(default_factory=Counter)
    posted: int = 0
    posts: object = None                   # the routes' GroupCommit (its counts go in /v1/stats)
    post_layer: object = None              # the POST route's layer (fast_post.py: posts taken below ASGI)
    started_at: float = field(default_factory=time.monotonic)
    index: SeqIndex = field(default_factory=SeqIndex)     # every opportunity numbered: seq -> (time, id)
    engine_keys: frozenset = frozenset()                   # the columns of an engine row's JSON
    opportunity_hooks: list = field(default_factory=list)  # called with each EngineBatch the pump takes (GET index)
    placement: EnginePlacement | None = None             # --cpu / --rt of the engine thread
    loop_policy: str | None = None                        # what --loop-rt was granted, in words
    _pump: asyncio.Task | None = None
    _warm: asyncio.Task | None = None           # the id set's kernels loading (seen_ids.warm_up)
    _wake: asyncio.Future | None = None         # what the pump awaits: a hand-off, or the next stats item
    _wake_pending: bool = False                 # a hand-off since the pump last took the run's rows
    # the engine's opportunity records as the run hands them on (the run's opportunity_feed): (records,
    # hand-off time) each, made ready by ``_records`` when the pump takes them
    _fed: collections.deque = field(default_factory=collections.deque)
    _records: OpportunityRecords | None = None
    _growing: asyncio.Future | None = None      # the posts' id set growing off the loop (_note_streamed)

    # -- lifecycle (called on the event loop)
    async def start(self) -> None:
        # anyio imports its asyncio backend at its first call, on the event loop: here, not under the
        # run's first rows (the GET memory's run-id look-up) or the first GET
        await anyio.to_thread.run_sync(lambda: None)
        await asyncio.to_thread(entries_warm_up)   # the GET memory's id map kernels, before any row enters it
        await asyncio.to_thread(answers_warm_up)   # the posts' answer timer, before the first post
        await asyncio.to_thread(scan_warm_up)      # the posted bodies' scan, likewise
        if self.options.loop_rt:
            grant = raise_loop(getattr(self.options.settings, "live_fifo_priority", FIFO_PRIORITY_DEFAULT))
            self.loop_policy = str(grant)
            (log.info if grant.granted else log.warning)("event loop thread: %s", grant)
        if self.run is not None:
            loop = asyncio.get_running_loop()

            def on_hand_off() -> bool:  # on the run's threads: one pending wake at a time, never blocks
                if self._wake_pending:
                    return False
                self._wake_pending = True
                try:
                    loop.call_soon_threadsafe(self._woken)
                except RuntimeError:        # the loop has closed: nobody is left to wake (never fail the run)
                    return False
                return True

            self.run.on_hand_off = on_hand_off

            def opportunity_feed(market_names, capture_id):     # (the run's, as it starts)
                self._records = OpportunityRecords(market_names, capture_id, self._source)

                def fed(recs, handed_ns):       # on the thread that hands the engine's rows on: never blocks
                    self._fed.append((recs, handed_ns))
                    if on_hand_off():
                        # the GIL to the loop just woken, now rather than after this thread's next stretch
                        # of Python (sleep(0) gives it up); not when the pump has yet to take earlier rows
                        # (a run at top speed), which would only make the engine wait for the loop
                        time.sleep(0)
                return fed

            self.run.opportunity_feed = opportunity_feed
            # a finished run's re-streamed opportunities are shaped and encoded on the run's thread
            self.run.prepare["opportunities"] = preparer(self._source)
            await asyncio.to_thread(json_warm_up)      # the rows' JSON kernels, before the run hands any on
            await asyncio.to_thread(records_warm_up)   # the engine's opportunities' JSON kernel, likewise
            self.run.start()
            if self.placement is not None and self.placement.asked:
                for note in self.placement.place(self.run._thread.native_id):
                    (log.warning if "REFUSED" in note else log.info)("%s", note)
        self._pump = asyncio.create_task(self._pump_loop())
        if self.store.writer.dsn.embedded:      # the posts' id set (seen_ids.py), off the loop meanwhile
            self._warm = asyncio.create_task(asyncio.to_thread(ids_warm_up))

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        if self.run is not None:
            self.run.stop()
            if self.run.running:
                # the run stops between batches and writes every row it processed; a first start may be
                # compiling the engine, which cannot be interrupted, and then this wait is that long
                log.warning("stopping: waiting for the engine thread (%s) to write what it processed", self.run.phase)
            await asyncio.to_thread(_join, self.run)
            self.pump_once()            # what the run handed on while it stopped (clients still connected get it)
        self.store.close()

    def _woken(self) -> None:
        """(on the loop) A hand-off: the pump goes on if it waits; if it is busy, it sees ``_wake_pending``."""
        _resolve(self._wake)

    async def _pump_loop(self) -> None:
        # the pump awaits one future, resolved by the hand-off's callback or by the stats item's timer:
        # wait_for on an Event made a task for each wait, and a wake reached the pump turns of the loop later
        loop = asyncio.get_running_loop()
        next_stats = time.monotonic()
        while True:
            delay = next_stats - time.monotonic()
            if delay > 0 and not self._wake_pending:
                self._wake = loop.create_future()
                timer = loop.call_later(delay, _resolve, self._wake)
                try:
                    await self._wake
                finally:
                    timer.cancel()
                    self._wake = None
            self._wake_pending = False      # before taking: rows handed on from here wake the pump again
            if self.placement is not None:
                self.placement.keep_others_off()    # threads the run started since (they inherit the engine's CPU)
            # the phase is read before the rows are taken: a run says "done" only after its last hand-off,
            # so a stats item saying "done" is published after every row of the run (a client may stop there)
            phase = self.run.phase if self.run is not None else None
            published = []
            try:
                published = self.publish_taken()
            except Exception:               # noqa: BLE001 - the rows are in the run's files and store; the stream goes on
                log.exception("the WebSocket pump could not publish a batch of the run's rows")
            if published:
                await asyncio.sleep(0)      # the socket writers send the frames before the GET memory takes the rows
                self.remember(published)
            now = time.monotonic()
            if now >= next_stats:
                self.hub.flush_gaps()
                stats = self.stats()
                if phase is not None:
                    stats["run"]["phase"] = phase
                self.hub.publish("stats", [orjson.dumps(stats)])
                if self.run is not None and self.hub.subscribed("latency"):
                    self.hub.publish("latency", [orjson.dumps(self.latency_percentiles())])
                next_stats = now + STATS_PERIOD_S

    def pump_once(self) -> None:
        """Publish the rows the run handed on since the last call and let the GET memory take them."""
        self.remember(self.publish_taken())

    def remember(self, published: list) -> None:
        """The GET memory's hooks over the opportunity batches ``publish_taken`` published (EngineBatch).
        The pump calls this after the socket writers had their turn: a client's frame does not wait
        for the memory's work (a GET in between reads the store and memory as before those rows came)."""
        for batch in published:
            for hook in self.opportunity_hooks:
                hook(batch)

    @property
    def _source(self) -> str:
        """The store's ``source`` of the run's opportunities."""
        return self.run.mode if self.run.mode in ("replay", "live") else "replay"

    def publish_taken(self) -> list:
        """Publish the rows the run handed on since the last call, in the run's order: opportunities,
        then transactions (the run's tables are taken, so the server holds only its bounded memory).
        An opportunities batch comes made ready by the run's sink thread (engine_batches.py); here
        it is numbered and queued. Returns, for ``remember``, each opportunity batch."""
        if self.run is None:
            return []
        out, fed = [], []
        taken = [(b if isinstance(b, EngineBatch) else engine_batch(b, self._source), handed_ns)
                 for b, handed_ns in self.run.take("opportunities")]
        if self._fed:
            fed = [self._fed.popleft() for _ in range(len(self._fed))]
            taken.append((self._records.ready(np.concatenate([r for r, _ in fed])), fed[0][1]))
        for b, handed_ns in joined(taken):
            if fed:             # ids known to the posts' id set before anyone sees them (store_access.py)
                self._note_streamed(b.ids)
            self.opportunities_by_type.update(b.types)
            if not self.engine_keys:
                self.engine_keys = frozenset(b.column_names)    # the columns of an engine row's JSON
            self.index.append(b.times_ns, b.id_bytes, engine=True)
            self.hub.publish("opportunities", b.items, handed_ns, table=lambda b=b: b.table, schema=b.schema)
            out.append(b)
        for t, handed_ns in _coalesced(self.run.take("tx_features")):
            self.hub.publish_transactions(t, handed_ns)
        return out

    def _note_streamed(self, ids: list[str]) -> None:
        if self.store.note_streamed(ids) and (self._growing is None or self._growing.done()):
            self._growing = asyncio.get_running_loop().run_in_executor(None, self.store.grow_seen)

    def published_posted(self, p) -> None:
        """A group's stored posts (posted_rows.PostedRows) numbered and sent on the opportunities channel."""
        self.posted += len(p)
        self.opportunities_by_type.update(p.types)
        self.index.append(p.times_ns, p.id_bytes, engine=False)
        self.hub.publish("opportunities", p.items)

    # -- what the routes show
    def stats(self) -> dict:
        run = self.run
        out = {"uptime_s": round(time.monotonic() - self.started_at, 3), "posted_opportunities": self.posted,
               "post_inserts": {"requests": getattr(self.posts, "requests", 0),
                                "store_inserts": getattr(self.posts, "groups", 0),
                                "in_protocol": getattr(self.post_layer, "in_protocol", 0)},
               "opportunities_by_type": dict(self.opportunities_by_type),
               "ws": {"clients": len(self.hub.clients), "frames_sent": self.hub.frames_sent,
                      "items_published": self.hub.items_published, "items_dropped": self.hub.missed,
                      "next_seq": {c: ch.next_seq for c, ch in self.hub.channels.items()}}}
        if self.loop_policy is not None:
            out["event_loop_thread"] = self.loop_policy
        if run is not None:
            r = run.update_rates()
            out["run"] = {"mode": run.mode, "phase": run.phase, "progress": round(run.progress, 4), "error": run.error,
                          "packets": r.packets, "transactions": r.transactions, "opportunities": r.opportunities,
                          "drops": r.drops, "packets_per_s": r.packets_per_s,
                          "transactions_per_s": r.transactions_per_s, "opportunities_per_s": r.opportunities_per_s,
                          "run_id": getattr(run.result, "run_id", None)}
            if self.placement is not None and self.placement.notes:
                out["run"]["engine_thread"] = self.placement.notes
        return out

    def latency(self) -> dict:
        """{histogram: {count, p50, p99, p99.9, buckets}} (ns): the run's engine histograms, then the
        server's own (``server_histograms``), each once it holds a value."""
        hists = self.run.histograms() if self.run is not None else {}
        for h in self.server_histograms():
            if h.count:
                hists[h.name] = (*h.buckets(), h.percentiles((50, 99, 99.9)))
        out = {}
        for name, (lows, highs, counts, pct) in hists.items():
            out[name] = {"count": int(counts.sum()), **{k: int(v) for k, v in pct.items()},
                         "buckets": [[int(lo), int(hi), int(c)] for lo, hi, c in zip(lows, highs, counts)]}
        return out

    def latency_percentiles(self) -> dict:
        """{histogram: {count, p50, p99, p99.9}} (ns), without buckets: one item of the latency channel."""
        return {name: {k: v for k, v in h.items() if k != "buckets"} for name, h in self.latency().items()}

    def server_histograms(self) -> list[Histogram]:
        """The server's own latency histograms (on the event loop): a post's answer (fast_post.py), a
        live WebSocket frame's delivery to a socket (hub.py)."""
        return ([self.post_layer.answer_ns] if self.post_layer is not None else []) + [self.hub.frame_ns]

    def metrics_snapshot(self) -> dict:
        run = self.run
        rates = run.rates if run is not None else None
        return {"state": getattr(run, "state", None), "opportunities_by_type": dict(self.opportunities_by_type),
                "opportunities_per_sec": rates.opportunities_per_s if rates else 0.0,
                "drops": rates.drops if rates else 0, "ws_clients": len(self.hub.clients),
                "ws_frames_sent": self.hub.frames_sent, "ws_items_dropped": self.hub.missed,
                "http_requests": dict(self.http_requests),
                "server_histograms": [(h.name, h.counts.copy(), h.stats.copy(), h.h) for h in self.server_histograms()]}


def _resolve(fut: asyncio.Future | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


def _coalesced(taken: list) -> list:
    """The tables one pump step took, as one table (with the first's hand-off time): a step that
    fell behind sends fewer, fuller frames; a table's rows keep their order and numbers."""
    if len(taken) < 2:
        return taken
    try:
        return [(pa.concat_tables([t for t, _ in taken]), taken[0][1])]
    except pa.ArrowInvalid:             # tables of different schemas (not the engine's): as they came
        return taken


def _join(run: BackgroundRun) -> None:
    if run._thread is not None:
        run._thread.join()


def make_service(opts: ServeOptions) -> Service:
    """Open the store and prepare (not start) the run."""
    store = StoreAccess(opts.db)
    run = None
    if opts.replay:
        run = BackgroundRun("replay", capture=opts.replay, out_dir=opts.out_dir, speed=opts.speed,
                            market=opts.market, model=opts.model, db=opts.db, settings=opts.settings)
    elif opts.live:
        run = BackgroundRun("live", iface=opts.iface, udp_ports=opts.ports, source=opts.source, out_dir=opts.out_dir,
                            market=opts.market, model=opts.model, db=opts.db, settings=opts.settings,
                            cpu=opts.cpu, rt=opts.rt)      # live() places its own engine thread
    service = Service(opts, store, run, Hub(queue_frames=opts.queue_frames, history_items=opts.history_items))
    if opts.replay:
        service.placement = EnginePlacement(opts.cpu, opts.rt, getattr(opts.settings, "live_fifo_priority",
                                                                       FIFO_PRIORITY_DEFAULT))
    return service
