"""``generate_capture``: a deterministic synthetic capture of a validator's TPU port, with ground truth.

One call writes two files:

* the capture (pcap or pcapng, chosen by the suffix through ``capture.open.open_writer``):
  Ethernet frames (linktype 1) carrying IPv4/UDP to ``txn_port`` of 10.0.0.1 from clients in
  10.x.x.x, Poisson arrivals at ``tps`` packets per second over ``seconds``, int64 ns
  timestamps from ``start_ns``; a fraction ``bad_rate`` of the packets are bad (kinds and
  shares in ``frame.BAD_KIND_SHARES``), and 3 % of the good transactions ride in 802.1Q frames;
* ``<capture>.truth.parquet``: one row per packet (``outputs.truth_schema``), with the kind, the
  status the decoder must report (a name of ``wire.status.STATUS_NAMES``, "" for random
  garbage) and, for transactions and duplicates, what the transaction holds.

With ``market=True`` (synth/market/) the seed also builds a market: the swaps are
rewritten on its exact pool state in capture order (tight limits, no opportunity in the
baseline), opportunities are injected at ``opportunities`` per second with competitors'
back-runs, and two more outputs appear beside the capture: ``<capture>.market/`` (the engine's
market snapshot, state at the capture start) and ``<capture>.opportunities.truth.parquet``.
The market draws from a fifth stream of the seed, so the other four are as without it.

With ``shreds`` (the default with ``market``) a ShredStream rides beside the TPU traffic
(``shreds.py``): the leader's data shreds of each slot, so the engine knows the current slot
(UDP transactions carry none) and ``f_ms_since_slot_start`` has values. The shreds are
extra packets at fixed times (not counted in ``tps``); the Poisson times and kinds of the
other packets stay as without them, what is drawn per packet does not.

Everything comes from ``numpy.random.default_rng(seed)``: the same arguments give
byte-identical files. The seed's "world" (pools, lookup tables, wallets, validators,
clients) is drawn from its own stream, so every capture of a seed shares it whatever
``seconds`` and ``tps`` are.

Packets are made in chunks of ``CHUNK_PACKETS``: numpy draws the per-packet choices,
``traffic.staging._stage_txns`` writes the transactions, ``frame._frame_packets`` the frames, a
jitted packer writes them to the file and pyarrow the truth rows: no Python object per
packet (``sign=True`` adds one ed25519 signature per signer per transaction).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..capture.open import open_writer
from ..config import DEFAULT_IGNORE_PORTS, DEFAULT_TIP_LAMPORTS
from ..errors import ConfigError
from . import frame as F
from .market.simulation import DEFAULT_OPPORTUNITIES_PER_S, MarketSim
from .market.snapshot import write_market_snapshot
from .market.spec import build_market
from .outputs import b58_column, market_path, opportunities_truth_path, truth_path_for, truth_schema
from .shreds import SHRED_PORT, SHREDSTREAM_IP, SHREDSTREAM_MAC, SHREDSTREAM_SPORT, data_shred, shred_times
from .traffic.fields import HASH_ROWS, SLOT_HISTORY, SLOT_NS
from .traffic.shapes import SHAPE_NAMES
from .traffic.staging import _stage_txns, sign_staged
from .traffic.templates import VERSION_NAMES, build_templates

CHUNK_PACKETS = 1 << 15         # packets per chunk (bounds memory; fixed, so output does not depend on it)
MAX_PACKETS = 20_000_000        # packets one capture holds: their times and kinds are drawn whole, in memory
MAX_SECONDS = 86_400            # a day: the slot hashes are drawn for the whole span up front
DEFAULT_START_NS = 1_750_000_000_000_000_000   # 2025-06-15T15:06:40Z

_TX_KINDS = (F.KIND_TRANSACTION, F.KIND_VLAN_TRANSACTION, F.KIND_DUPLICATE)
_SIDE_KINDS = (F.KIND_GARBAGE, F.KIND_NON_SOLANA, F.KIND_NOT_UDP, F.KIND_SHRED)
_GOOD_TEMPLATE_KINDS = (F.KIND_TRANSACTION, F.KIND_VLAN_TRANSACTION, F.KIND_TRUNCATED, F.KIND_TRAILING,
                        F.KIND_IP_FRAGMENT)
TRAILING_MAX = 16               # bytes appended to a `trailing` transaction, [1, 16]


@dataclass
class GenerateResult:
    capture: Path                       # the capture file written
    truth: Path                         # its ground truth, <capture>.truth.parquet
    packets: int                        # frames written
    transactions: int                   # frames whose expected status is "transaction"
    elapsed_s: float                    # wall time of the whole call (templates, kernels, files)
    counts: dict = field(default_factory=dict)   # frames by kind name (every kind, zeros included)
    market: Path | None = None          # with market=True: the snapshot folder, <capture>.market/
    opportunities_truth: Path | None = None   # and <capture>.opportunities.truth.parquet
    opportunities: dict = field(default_factory=dict)   # truth rows by type (primary ones under "injected")

    @property
    def packets_per_s(self) -> float:
        return self.packets / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def _check(out: Path, seconds, tps, bad_rate, start_ns, txn_port) -> None:
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise ConfigError(f"generate: seconds={seconds!r} (--seconds): must be a number > 0 and <= {MAX_SECONDS:,}")
    if not (isinstance(tps, (int, float)) and math.isfinite(tps) and tps > 0):
        raise ConfigError(f"generate: tps={tps!r} (--tps): must be a finite number of packets per second > 0")
    if tps * seconds > MAX_PACKETS:
        raise ConfigError(f"generate: tps={tps!r} x seconds={seconds!r} (--tps x --seconds) = {tps * seconds:.4g} "
                          f"packets: more than the {MAX_PACKETS:,} one capture holds (every packet's time and kind "
                          f"are drawn in memory); lower --tps or --seconds")
    if not (0.0 <= bad_rate <= 1.0):
        raise ConfigError(f"generate: bad_rate={bad_rate!r}: must be a fraction in [0, 1]")
    if not (0 <= int(start_ns) < 2**62):
        raise ConfigError(f"generate: start_ns={start_ns!r}: must be ns since the Unix epoch, >= 0")
    if not (1 <= int(txn_port) <= 65535) or int(txn_port) in DEFAULT_IGNORE_PORTS or int(txn_port) == F.RPC_PORT:
        raise ConfigError(f"generate: txn_port={txn_port!r}: must be in 1-65535 and not a port the decoder "
                          f"treats as non-Solana ({', '.join(map(str, DEFAULT_IGNORE_PORTS))}) nor the RPC "
                          f"port {F.RPC_PORT}")
    if out.suffix.lower() not in (".pcap", ".pcapng", ".cap"):
        raise ConfigError(f"generate: {out}: unknown capture suffix {out.suffix!r}; use .pcap or .pcapng")
    if not out.parent.is_dir():
        raise ConfigError(f"generate: {out.parent} is not a directory; create it first")


def _draw_kinds(rng: np.random.Generator, n: int, bad_rate: float) -> np.ndarray:
    kinds = np.where(rng.random(n) < F.VLAN_SHARE, F.KIND_VLAN_TRANSACTION, F.KIND_TRANSACTION).astype(np.int64)
    bad = rng.random(n) < bad_rate
    codes = np.array(list(F.BAD_KIND_SHARES), np.int64)
    shares = np.array(list(F.BAD_KIND_SHARES.values()))
    kinds[bad] = codes[rng.choice(codes.shape[0], size=int(bad.sum()), p=shares / shares.sum())]
    return kinds


class _Gen:
    """The per-capture state the chunks share."""

    def __init__(self, seed: int, seconds: float, tps: float, bad_rate: float, start_ns: int, txn_port: int,
                 sign: bool, market: bool = False, opportunities: float = 0.0,
                 tip_lamports: int = DEFAULT_TIP_LAMPORTS, competition: str = "flat", shreds: bool = False):
        root = np.random.default_rng(seed)
        world_rng, time_rng, slot_rng, self.rng = root.spawn(4)
        spec = None
        if market:
            self.mkt_rng = root.spawn(1)[0]         # the market's own stream: the four above stay as they were
            spec = build_market(self.mkt_rng)
            self.tmpl = build_templates(world_rng, market=spec)
        else:
            self.tmpl = build_templates(world_rng)
        self.cl_ip, self.cl_mac, self.cl_port, self.cl_ttl = F.clients(world_rng)
        dur_ns = max(1, int(round(seconds * 1e9)))
        self.n = int(time_rng.poisson(tps * seconds))
        self.ts = int(start_ns) + np.sort(time_rng.integers(0, dur_ns, self.n))
        self.kinds = _draw_kinds(time_rng, self.n, bad_rate)
        self.shred_slot = np.full(self.n, -1, np.int64)   # slot and in-slot index of each shred packet
        self.shred_j = np.full(self.n, -1, np.int64)
        if shreds:                                  # fixed times, drawn from no stream; a shred goes first at a tie
            s_ts, s_slot, s_j = shred_times(int(start_ns), dur_ns)
            at = np.searchsorted(self.ts, s_ts, side="left") + np.arange(s_ts.shape[0])
            n = self.n + s_ts.shape[0]
            is_shred = np.zeros(n, bool)
            is_shred[at] = True

            def merged(rest, sh):
                a = np.empty(n, np.int64)
                a[is_shred], a[~is_shred] = sh, rest
                return a
            self.ts = merged(self.ts, s_ts)
            self.kinds = merged(self.kinds, np.full(s_ts.shape[0], F.KIND_SHRED, np.int64))
            self.shred_slot = merged(self.shred_slot, s_slot)
            self.shred_j = merged(self.shred_j, s_j)
            self.n = n
        n_slots = SLOT_HISTORY + dur_ns // SLOT_NS + 2
        self.slot_hash = np.frombuffer(slot_rng.bytes(HASH_ROWS * n_slots * 32), np.uint8).reshape(
            HASH_ROWS, n_slots, 32)
        self.start_ns = int(start_ns)
        self.txn_port = int(txn_port)
        self.sign = sign
        self.market = None
        if market:
            self.market = MarketSim(spec, self.tmpl, self.ts, self.kinds, self.start_ns, seconds, self.mkt_rng,
                                    float(opportunities), int(tip_lamports), competition)
        self._signed_seen: set[bytes] = set()     # first signatures of signed transactions so far
        self.max_sig_b = int(self.tmpl.nsig.max()) * 64
        import pyarrow as pa
        self._kind_names = pa.array(list(F.KIND_NAMES), pa.string())
        self._expected = pa.array(list(F.KIND_EXPECTED), pa.string())
        self._versions = pa.array(list(VERSION_NAMES) + [""], pa.string())
        self._shapes = pa.array(list(SHAPE_NAMES) + [""], pa.string())
        self._programs = pa.array(self.tmpl.programs + [[]], pa.list_(pa.string()))

    def chunk(self, a: int, b: int):
        """Frames (buf, off, sz), timestamps and the truth table of packets [a, b)."""
        import pyarrow as pa

        rng, tm = self.rng, self.tmpl
        m = b - a
        ts = self.ts[a:b]
        k = self.kinds[a:b].copy()

        # duplicates re-send one of the last DUPLICATE_LOOKBACK good transactions of the chunk
        is_src = (k == F.KIND_TRANSACTION) | (k == F.KIND_VLAN_TRANSACTION)
        first = int(np.argmax(is_src)) if is_src.any() else m
        k[(k == F.KIND_DUPLICATE) & (np.arange(m) < first)] = F.KIND_TRANSACTION   # nothing to re-send yet
        is_src = (k == F.KIND_TRANSACTION) | (k == F.KIND_VLAN_TRANSACTION)
        dup = np.flatnonzero(k == F.KIND_DUPLICATE)
        src_pos = np.flatnonzero(is_src)
        g = np.cumsum(is_src)[dup]
        back = (rng.random(dup.shape[0]) * np.minimum(g, F.DUPLICATE_LOOKBACK)).astype(np.int64)
        dup_src = src_pos[g - 1 - back]

        # templates
        tidx = np.full(m, -1, np.int64)
        need = np.isin(k, _GOOD_TEMPLATE_KINDS)
        tidx[need] = rng.choice(tm.count, size=int(need.sum()), p=tm.good_prob)
        long_ = k == F.KIND_TOO_LONG
        tidx[long_] = tm.too_long[rng.integers(0, tm.too_long.shape[0], int(long_.sum()))]
        if self.market is not None:                 # injected and closing swaps: the schedule's templates
            rt = self.market.role_tmpl[a:b]
            tidx[rt >= 0] = rt[rt >= 0]

        # stage the transactions
        sig_rand = np.frombuffer(rng.bytes(m * self.max_sig_b), np.uint8).reshape(m, self.max_sig_b)
        u = rng.random((m, tm.fields_max))
        side = np.flatnonzero(np.isin(k, _SIDE_KINDS))
        client = np.where(tidx >= 0, tidx % F.N_CLIENTS, rng.integers(0, F.N_CLIENTS, m))
        client[dup] = client[dup_src]
        payloads = []
        is_ntp = np.zeros(m, bool)
        for i in side:
            if k[i] == F.KIND_SHRED:
                payloads.append(data_shred(int(self.shred_slot[a + i]), int(self.shred_j[a + i]), self.slot_hash))
            elif k[i] == F.KIND_GARBAGE:
                payloads.append(F.garbage(rng))
            elif k[i] == F.KIND_NON_SOLANA:
                is_ntp[i] = rng.random() < 0.5
                payloads.append(F.ntp_request(int(ts[i])) if is_ntp[i] else F.dns_query(rng))
            else:
                payloads.append(F.tcp_segment(rng, int(self.cl_port[client[i]]), F.RPC_PORT))
        side_sz = sum(len(p) for p in payloads)
        stage = np.empty(int(tm.sz[tidx[tidx >= 0]].sum()) + side_sz + 1, np.uint8)
        stage_off = np.empty(m, np.int64)
        stage_sz = np.empty(m, np.int64)
        cu_limit = np.zeros(m, np.int64)
        cu_price = np.zeros(m, np.int64)
        tip = np.zeros(m, np.int64)
        pos = _stage_txns(tm.buf, tm.off, tm.sz, tm.nsig, tm.fld_start, tm.fld_cnt, tm.fld_off, tm.fld_gen,
                          tm.fld_p0, tm.fld_p1, tidx, ts, self.start_ns, sig_rand, u, self.slot_hash, stage,
                          stage_off, stage_sz, cu_limit, cu_price, tip)
        for i, p in zip(side, payloads):
            stage[pos:pos + len(p)] = np.frombuffer(p, np.uint8)
            stage_off[i], stage_sz[i] = pos, len(p)
            pos += len(p)
        if self.market is not None:                 # swaps consistent with the market (before signing)
            self.market.walk(a, k, tidx, stage, stage_off, self.mkt_rng.random((m, 2)))
        if self.sign:
            sign_staged(tm, stage, stage_off, tidx)
        if self.market is not None:
            self.market.sign_rows(a, stage, stage_off, ts)
        truth_t = tidx.copy()
        for arr in (stage_off, stage_sz, cu_limit, cu_price, tip, truth_t):
            arr[dup] = arr[dup_src]

        # what each frame carries
        emit_sz = stage_sz.copy()
        trunc = np.flatnonzero(k == F.KIND_TRUNCATED)
        emit_sz[trunc] = 1 + (rng.random(trunc.shape[0]) * (stage_sz[trunc] - 1)).astype(np.int64)
        extra = np.frombuffer(rng.bytes(m * TRAILING_MAX), np.uint8).reshape(m, TRAILING_MAX)
        extra_sz = np.zeros(m, np.int64)
        trail = k == F.KIND_TRAILING
        extra_sz[trail] = rng.integers(1, TRAILING_MAX + 1, int(trail.sum()))
        frag = np.flatnonzero(k == F.KIND_IP_FRAGMENT)
        units = (stage_sz[frag] + F.UDP_HDR_SZ - 1) // 8          # 8-byte units strictly inside the datagram
        x = 1 + (rng.random(frag.shape[0]) * units).astype(np.int64)
        y = 1 + (rng.random(frag.shape[0]) * units).astype(np.int64)
        first_frag = (rng.random(frag.shape[0]) < F.FIRST_FRAGMENT_SHARE) | (np.minimum(x, y) == np.maximum(x, y))
        frag_lo = np.zeros(m, np.int64)
        frag_hi = np.zeros(m, np.int64)
        frag_lo[frag] = np.where(first_frag, 0, 8 * np.minimum(x, y))
        frag_hi[frag] = np.where(first_frag, 8 * x, 8 * np.maximum(x, y))

        # addresses
        src_ip, src_mac = self.cl_ip[client], self.cl_mac[client]
        dst_ip = np.full(m, F.VALIDATOR_IP, np.int64)
        dst_mac = np.full(m, F.VALIDATOR_MAC, np.int64)
        sport, dport = self.cl_port[client], np.full(m, self.txn_port, np.int64)
        ttl = self.cl_ttl[client].copy()
        ip_id = rng.integers(0, 65536, m)
        ns = np.flatnonzero(k == F.KIND_NON_SOLANA)
        src_ip[ns], src_mac[ns], dst_mac[ns], ttl[ns] = F.VALIDATOR_IP, F.VALIDATOR_MAC, F.GATEWAY_MAC, 64
        dst_ip[ns] = np.where(is_ntp[ns], F.NTP_SERVER_IP, F.RESOLVER_IP)
        dport[ns] = np.where(is_ntp[ns], F.NTP_PORT, F.DNS_PORT)
        sport[ns] = rng.integers(F.EPHEMERAL_PORTS[0], F.EPHEMERAL_PORTS[1] + 1, ns.shape[0])
        sh = k == F.KIND_SHRED
        src_ip[sh], src_mac[sh], ttl[sh] = SHREDSTREAM_IP, SHREDSTREAM_MAC, 64
        sport[sh], dport[sh] = SHREDSTREAM_SPORT, SHRED_PORT

        out = np.empty(F.frame_capacity(k, stage_sz, extra_sz), np.uint8)
        out_off = np.empty(m, np.int64)
        out_sz = np.empty(m, np.int64)
        F._frame_packets(k, stage, stage_off, stage_sz, emit_sz, extra, extra_sz, frag_lo, frag_hi, src_mac, dst_mac,
                         src_ip, dst_ip, sport, dport, ip_id, ttl, out, out_off, out_sz)

        if self.sign:
            # identical messages signed by the same key have identical signatures (a validator
            # re-sending its vote); the validator drops the repeats, so the truth says duplicate
            for i in np.flatnonzero((k == F.KIND_TRANSACTION) | (k == F.KIND_VLAN_TRANSACTION)):
                sig = stage[stage_off[i] + 1: stage_off[i] + 65].tobytes()
                if sig in self._signed_seen:
                    k[i] = F.KIND_DUPLICATE
                else:
                    self._signed_seen.add(sig)

        # ground truth
        is_tx = np.isin(k, _TX_KINDS)
        tt = np.where(is_tx, truth_t, -1)
        has = tt >= 0
        ttc = np.where(has, tt, 0)

        def per_template(col):
            return np.where(has, col[ttc], 0).astype(np.int32)

        size = np.where(np.isin(k, (F.KIND_NOT_UDP, F.KIND_IP_FRAGMENT)), 0, emit_sz + extra_sz).astype(np.int32)
        table = pa.table([
            pa.array(np.arange(a, b, dtype=np.int64)),
            pa.array(ts),
            self._kind_names.take(pa.array(k)),
            self._expected.take(pa.array(k)),
            b58_column(stage, np.where(is_tx, stage_off + 1, -1)),
            self._versions.take(pa.array(np.where(has, tm.version[ttc], len(VERSION_NAMES)))),
            pa.array(size),
            pa.array(per_template(tm.nsig)),
            pa.array(per_template(tm.num_account_keys)),
            pa.array(per_template(tm.num_instructions)),
            pa.array(per_template(tm.num_lookup_tables)),
            pa.array(np.where(is_tx, cu_limit, 0)),
            pa.array(np.where(is_tx, cu_price, 0)),
            pa.array(np.where(is_tx, tip, 0)),
            self._programs.take(pa.array(np.where(has, tt, tm.count))),
            self._shapes.take(pa.array(np.where(has, tm.shape[ttc], len(SHAPE_NAMES)))),
        ], schema=truth_schema())
        return out, out_off, out_sz, ts, table, k


def generate_capture(out, seconds: float = 10.0, tps: float = 5000.0, seed: int = 7, sign: bool = False,
                     bad_rate: float = 0.02, start_ns: int = DEFAULT_START_NS, txn_port: int = 8003,
                     progress=None, market: bool = False, opportunities: float | None = None,
                     tip_lamports: int = DEFAULT_TIP_LAMPORTS, competition: str = "flat",
                     shreds: bool | None = None) -> GenerateResult:
    """Write a synthetic capture ``out`` (.pcap or .pcapng) and ``<out>.truth.parquet``.

    Parameters
    ----------
    out : path of the capture; the suffix picks the format (``capture.open.open_writer``).
    seconds : capture duration; packets arrive in [start_ns, start_ns + seconds).
    tps : mean packet rate (all packets, good and bad), Poisson arrivals.
    seed : everything derives from ``numpy.random.default_rng(seed)``; same arguments, same bytes.
    sign : real ed25519 signatures (solders) instead of random signature bytes (slower).
    bad_rate : fraction of packets that are bad (``frame.BAD_KIND_SHARES`` splits them).
    start_ns : timestamp of the capture start, ns since the Unix epoch.
    txn_port : the validator's UDP transaction port.
    progress : optional ``callable(done, total)`` called after each chunk.
    market : build a market (synth/market/): swaps consistent with its pools, the snapshot
        written to ``<out>.market/``, injected opportunities and their truth in
        ``<out>.opportunities.truth.parquet``.
    opportunities : with ``market``, injected opportunities per second (default
        ``market.simulation.DEFAULT_OPPORTUNITIES_PER_S``; 0 = none: a quiet capture).
    tip_lamports : with ``market``, the tip the truth's profits are counted after (the engine's
        ``Settings.tip_lamports``).
    competition : with ``market``, how rivals close injected opportunities: ``"flat"``
        (independent of the opportunity) or ``"prize"`` (faster and likelier for attractive
        ones: training data whose labels depend on more than profit); see synth/market/simulation.py.
    shreds : a ShredStream beside the TPU traffic (``shreds.py``): the leader's data shreds of
        each slot, so the engine knows the slots; default: with ``market``.

    Returns a ``GenerateResult``. Raises ``ConfigError`` naming the bad argument.
    """
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    out = Path(out)
    _check(out, seconds, tps, bad_rate, start_ns, txn_port)
    if opportunities is not None and not market:
        raise ConfigError("generate: opportunities needs market=True (--market)")
    if opportunities is None:
        opportunities = DEFAULT_OPPORTUNITIES_PER_S
    if not (math.isfinite(opportunities) and 0 <= opportunities * seconds <= MAX_PACKETS):
        raise ConfigError(f"generate: opportunities={opportunities!r} (--opportunities): must be a finite rate per "
                          f"second >= 0, at most {MAX_PACKETS:,} over the capture (each is drawn in turn)")
    if not (0 <= int(tip_lamports) < 2**62):
        raise ConfigError(f"generate: tip_lamports={tip_lamports!r}: must be >= 0")
    if competition not in ("flat", "prize"):
        raise ConfigError(f"generate: competition={competition!r}: 'flat' or 'prize'")
    if competition != "flat" and not market:
        raise ConfigError("generate: competition needs market=True (--market)")
    if shreds is None:
        shreds = bool(market)
    truth = truth_path_for(out)
    g = _Gen(int(seed), float(seconds), float(tps), float(bad_rate), int(start_ns), int(txn_port), bool(sign),
             bool(market), float(opportunities), int(tip_lamports), competition, bool(shreds))
    counts = np.zeros(len(F.KIND_NAMES), np.int64)
    writer = open_writer(out, linktype=1)
    try:
        with pq.ParquetWriter(truth, truth_schema(), compression="zstd") as pw:
            for a in range(0, g.n, CHUNK_PACKETS):
                b = min(g.n, a + CHUNK_PACKETS)
                buf, off, sz, ts, table, kinds = g.chunk(a, b)
                writer.write_many(buf, off, sz, ts)
                pw.write_table(table)
                counts += np.bincount(kinds, minlength=len(F.KIND_NAMES))
                if progress is not None:
                    progress(b, g.n)
    finally:
        writer.close()
    if progress is not None and g.n == 0:
        progress(0, 0)
    by_kind = {name: int(c) for name, c in zip(F.KIND_NAMES, counts)}
    good = by_kind["transaction"] + by_kind["vlan_transaction"]
    res = GenerateResult(out, truth, g.n, good, 0.0, by_kind)
    if g.market is not None:
        table = g.market.truth_table()
        res.opportunities_truth = opportunities_truth_path(out)
        pq.write_table(table, res.opportunities_truth, compression="zstd")
        res.market = market_path(out)
        if res.market.exists():
            shutil.rmtree(res.market)
        write_market_snapshot(g.market.spec, g.market.tmpl, res.market)
        kinds = table.column("type").to_pylist()
        prim = table.column("primary").to_pylist()
        res.opportunities = {t: kinds.count(t) for t in ("sandwich", "arbitrage", "liquidation")}
        res.opportunities["injected"] = sum(prim)
        res.opportunities["scheduled"] = len(g.market.injections)
    res.elapsed_s = time.perf_counter() - t0
    return res
