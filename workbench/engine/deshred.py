"""Deshredding: data shreds -> entry batches -> entries -> transactions, in numba.

Turbine / ShredStream deliver a slot's block as data shreds (wire/shred.py), out of
order and with duplicates. An ENTRY BATCH is the data of the shreds from the batch start
(index 0 of the slot, or the shred after one flagged DATA_COMPLETE or SLOT_COMPLETE)
through the next shred flagged DATA_COMPLETE (agave ``ledger/src/shred.rs`` ShredFlags,
``blockstore.rs`` completed data ranges; Firedancer ``fd_shred.h``, ``fd_deshredder.h``).
Its bytes are a bincode ``Vec<Entry>`` (wire/entries.py).

Memory is fixed at construction (``new_deshred_state``), nothing is allocated per shred:

- a SLOT TABLE of ``n_slots`` rows; a new slot takes a free row, else the row of the
  LOWEST slot (evicted, counted) if the new slot is higher; a shred of a slot lower than
  every held slot when the table is full is dropped (``shred_dropped``). Each row has a
  generation number, bumped when a slot takes it.
- per row and shred index ``[0, shreds_per_slot)``: a state byte (absent / present /
  consumed), the flags, the data size, the arrival time, and the two ends of the
  contiguous RUN of present shreds it belongs to (runs never cross a DATA_COMPLETE
  shred: a run ends at one). Inserting a shred merges at most two runs in O(1); a batch
  is complete when a run ends at a DATA_COMPLETE shred and starts at index 0 or right
  after a DATA_COMPLETE shred. Shreds past ``shreds_per_slot`` are dropped and counted.
- the SLAB, ``uint8[n_slots * shreds_per_slot * SLAB_STRIDE]``: a data shred's payload
  is copied ONCE into its fixed place, row base + index * SLAB_STRIDE. When a batch
  completes its payloads are moved left in place so that the batch is contiguous from
  its first shred's place (each shred holds <= SLAB_STRIDE bytes, so the moves never
  overlap another shred or batch), then parsed there: entries and transactions are
  OFFSETS into the slab.
- a ring QUEUE of ready transactions (``READY_DTYPE``: slot, offsets in the slab, entry
  index, times). ``drain_ready`` hands out up to N of them; a row whose slot row was
  reused since (generation changed) is skipped and counted as stale. Transactions that
  find the ring full are dropped and counted: size the queue above the transactions of
  the largest batch and drain after each shred.
- a ring LOG of completed batches (``BATCH_DTYPE``), for sinks, notebooks and tests.

Code shreds are decoded and counted only. Reed-Solomon recovery of missing data shreds
from code shreds is OUT OF SCOPE: a batch with a lost data shred never completes, and
stays in its slot row until the slot is evicted. Signatures and merkle proofs are not
verified (the slot number of an unverified shred can evict a slot).

Engine use (one call per shred packet, then drain into the output rows):

    st = add_data_shred(ds, buf, poff, psz, ts_ns, packet_index)      # SHRED, DUPLICATE or < 0
    n, left = drain_ready(ds, ready, 0, room)
    for k in range(n): decode_txn(ds.slab, ready[k].off, ready[k].end, ...)   # bytes live in ds.slab
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..wire.entries import ENTRY_DTYPE, ENTRY_TX_DTYPE, parse_entries
from ..wire.shred import (DATA_CAPACITY_MAX, FLAG_DATA_COMPLETE, FLAG_SLOT_COMPLETE, KIND_CODE,
                          MAX_SHREDS_PER_SLOT, SHRED_DTYPE, decode_shred)
from ..wire.status import DUPLICATE, ERR_SHRED_DROPPED, SHRED, STATUS_MIN, STATUS_SLOTS, TXN
from ..wire.txn import INSTR_DTYPE, LUT_DTYPE, PACKET_DATA_SIZE, TXN_DTYPE

SLAB_STRIDE = DATA_CAPACITY_MAX   # 1115 bytes of slab per shred index: the most data any data shred holds

# shred_st values
ST_ABSENT = 0                     # not received
ST_PRESENT = 1                    # received, its batch not complete yet
ST_CONSUMED = 2                   # its batch completed and was parsed

# counters (rows of ``counters``)
D_DATA_SHREDS = 0                 # data shreds stored
D_CODE_SHREDS = 1                 # code shreds seen (counted only: no Reed-Solomon recovery)
D_DUPLICATES = 2                  # data shreds whose (slot, index) was held already
D_DROPPED = 3                     # valid data shreds not kept: index >= shreds_per_slot, or slot too old
D_REJECTED = 4                    # packets whose shred headers did not decode
D_BATCHES = 5                     # entry batches completed
D_BATCH_BYTES = 6                 # bytes of completed batches
D_ENTRIES = 7                     # entries parsed
D_TXS = 8                         # transactions parsed (and queued unless the queue was full)
D_PARSE_FAILURES = 9              # batches whose parse did not end cleanly (by status: parse_status)
D_SLOTS_EVICTED = 10              # slot rows taken from a lower slot
D_TX_QUEUE_FULL = 11              # parsed transactions dropped because the queue was full
D_TX_STALE = 12                   # queued transactions skipped by drain_ready: their slot was evicted
COUNTER_NAMES = ("data_shreds", "code_shreds", "duplicates", "dropped", "rejected", "batches", "batch_bytes",
                 "entries", "transactions", "parse_failures", "slots_evicted", "tx_queue_full", "tx_stale")
N_COUNTERS = len(COUNTER_NAMES)

# meta (rows of ``meta``)
M_Q_HEAD = 0                      # transactions handed out or skipped (ring index = value % queue rows)
M_Q_TAIL = 1                      # transactions queued so far
M_BATCHES = 2                     # batches logged so far (ring index = value % batch log rows)
M_GEN = 3                         # last generation number given to a slot row
N_META = 4

# A ready transaction: its bytes are ``slab[off:end]``.
READY_DTYPE = np.dtype([
    ("slot", np.int64),               # slot of the block
    ("off", np.int64),                # first byte of the transaction in ``ds.slab``
    ("end", np.int64),                # one past its last byte, (off, off + 1232]
    ("ts_first_ns", np.int64),        # event time the batch's earliest shred was seen (ns)
    ("ts_done_ns", np.int64),         # event time of the shred that completed the batch (ns)
    ("packet_index", np.int64),       # caller's index of the packet that completed the batch
    ("gen", np.int64),                # generation of the slot row (internal: stale check)
    ("batch_first", np.int32),        # shred index that starts the batch, [0, 32768)
    ("entry", np.int32),              # entry index within the batch, [0, entries)
    ("entry_tx_idx", np.int32),       # index within the entry, [0, tx_cnt)
    ("tab", np.int32),                # slot table row (internal: stale check)
], align=True)

# One completed entry batch.
BATCH_DTYPE = np.dtype([
    ("slot", np.int64),               # slot of the block
    ("off", np.int64),                # first batch byte in ``ds.slab`` (valid until the slot is evicted)
    ("end", np.int64),                # one past the last batch byte (zero padding included)
    ("stop", np.int64),               # where parsing stopped: end of the Vec<Entry> when status is 0
    ("ts_first_ns", np.int64),        # event time of the earliest shred of the batch (ns)
    ("ts_done_ns", np.int64),         # event time of the shred that completed it (ns)
    ("packet_index", np.int64),       # caller's index of that shred's packet
    ("gen", np.int64),                # generation of the slot row
    ("first", np.int32),              # first shred index, [0, 32768)
    ("last", np.int32),               # last shred index (the DATA_COMPLETE one), [first, 32768)
    ("n_entries", np.int32),          # entries parsed
    ("n_txs", np.int32),              # transactions parsed
    ("status", np.int32),             # 0, or the parse status (wire/entries.py)
    ("slot_complete", np.int8),       # 1 if the last shred carries SLOT_COMPLETE
    ("tab", np.int8),                 # slot table row
], align=True)


class DeshredState(NamedTuple):
    """Reassembly state: numpy arrays only (numba takes it as one argument; np.savez saves it)."""

    slot_id: np.ndarray       # int64[S] slot held by each table row, -1 free
    slot_gen: np.ndarray      # int64[S] generation of each row
    shred_st: np.ndarray      # uint8[S, I] ST_ABSENT / ST_PRESENT / ST_CONSUMED per shred index
    shred_flags: np.ndarray   # uint8[S, I] data header flags
    shred_sz: np.ndarray      # int16[S, I] data bytes stored, [0, SLAB_STRIDE]
    shred_ts: np.ndarray      # int64[S, I] event time the shred was seen (ns)
    run_lo: np.ndarray        # int32[S, I] valid at a run's right end: its left end
    run_hi: np.ndarray        # int32[S, I] valid at a run's left end: its right end
    slab: np.ndarray          # uint8[S * I * SLAB_STRIDE] shred payloads, batches after completion
    queue: np.ndarray         # READY_DTYPE[Q] ring of ready transactions
    batches: np.ndarray       # BATCH_DTYPE[B] ring log of completed batches
    entries: np.ndarray       # ENTRY_DTYPE[E] entries of the latest completed batch
    batch_txs: np.ndarray     # ENTRY_TX_DTYPE[X] transactions of the latest completed batch
    hdr: np.ndarray           # SHRED_DTYPE[1] scratch: the shred being added
    txn: np.ndarray           # TXN_DTYPE[1] scratch for transaction decode
    instrs: np.ndarray        # INSTR_DTYPE[1232] scratch
    luts: np.ndarray          # LUT_DTYPE[39] scratch
    counters: np.ndarray      # int64[N_COUNTERS]
    parse_status: np.ndarray  # int64[STATUS_SLOTS] failed batch parses by status (index code - STATUS_MIN)
    meta: np.ndarray          # int64[N_META]


def new_deshred_state(n_slots: int = 4, shreds_per_slot: int = 8192, queue_rows: int = 1 << 16,
                      batch_log_rows: int = 1024, max_batch_entries: int = 1 << 15,
                      max_batch_txs: int = 1 << 16) -> DeshredState:
    """Allocate the reassembly state.

    n_slots            slots reassembled at once, [1, 127]
    shreds_per_slot    data shred indexes kept per slot, [1, 32768]; the slab takes
                       n_slots * shreds_per_slot * 1115 bytes (defaults: 36.5 MB, pages
                       touched only when used)
    queue_rows         ready transactions the queue holds
    batch_log_rows     completed batches the log keeps
    max_batch_entries  entries of one batch that can be parsed (more: ``output_full``)
    max_batch_txs      transactions of one batch that can be parsed (more: ``output_full``)
    """
    checks = (("n_slots", n_slots, 1, 127), ("shreds_per_slot", shreds_per_slot, 1, MAX_SHREDS_PER_SLOT),
              ("queue_rows", queue_rows, 1, 1 << 30), ("batch_log_rows", batch_log_rows, 1, 1 << 30),
              ("max_batch_entries", max_batch_entries, 1, 1 << 30), ("max_batch_txs", max_batch_txs, 1, 1 << 30))
    for name, v, lo, hi in checks:
        if not (lo <= int(v) <= hi):
            raise ValueError(f"{name}={v}: must be in [{lo}, {hi}]")
    S, I = int(n_slots), int(shreds_per_slot)
    return DeshredState(
        np.full(S, -1, np.int64), np.zeros(S, np.int64), np.zeros((S, I), np.uint8), np.zeros((S, I), np.uint8),
        np.zeros((S, I), np.int16), np.zeros((S, I), np.int64), np.zeros((S, I), np.int32),
        np.zeros((S, I), np.int32), np.zeros(S * I * SLAB_STRIDE, np.uint8), np.zeros(int(queue_rows), READY_DTYPE),
        np.zeros(int(batch_log_rows), BATCH_DTYPE), np.zeros(int(max_batch_entries), ENTRY_DTYPE),
        np.zeros(int(max_batch_txs), ENTRY_TX_DTYPE), np.zeros(1, SHRED_DTYPE), np.zeros(1, TXN_DTYPE),
        np.zeros(PACKET_DATA_SIZE, INSTR_DTYPE), np.zeros(PACKET_DATA_SIZE // 32 + 1, LUT_DTYPE),
        np.zeros(N_COUNTERS, np.int64), np.zeros(STATUS_SLOTS, np.int64), np.zeros(N_META, np.int64))


# Helpers on the per-shred path take arrays, not the state tuple: passing the tuple to a
# function costs a reference-count update per array it holds, on every call.

@njit(cache=True, nogil=True)
def _slot_row(slot_id, slot_gen, shred_st, counters, meta, slot):
    """Table row holding ``slot``, taking a free row or the lowest slot's; -1 if too old."""
    free = -1
    low = -1
    for r in range(slot_id.shape[0]):
        s = slot_id[r]
        if s == slot:
            return r
        if s < 0:
            if free < 0:
                free = r
        elif low < 0 or s < slot_id[low]:
            low = r
    if free < 0:
        if slot < slot_id[low]:
            return -1
        free = low
        counters[D_SLOTS_EVICTED] += 1
    slot_id[free] = slot
    meta[M_GEN] += 1
    slot_gen[free] = meta[M_GEN]
    shred_st[free, :] = ST_ABSENT
    return free


@njit(cache=True, nogil=True, inline="always")
def _batch_ready(shred_st, shred_flags, r, lo, hi):
    """True if shreds [lo, hi] of row r are an unparsed, complete entry batch."""
    if shred_st[r, lo] != ST_PRESENT or not (shred_flags[r, hi] & FLAG_DATA_COMPLETE):
        return False
    if lo == 0:
        return True
    return shred_st[r, lo - 1] != ST_ABSENT and (shred_flags[r, lo - 1] & FLAG_DATA_COMPLETE) != 0


@njit(cache=True, nogil=True, inline="always")
def _copy(dst, src, n):
    """dst[:n] = src[:n] on views: indexes from 0 let LLVM drop wraparound checks and vectorize."""
    for j in range(n):
        dst[j] = src[j]


@njit(cache=True, nogil=True)
def _move_left(a, dst, src, n):
    """Move a[src:src+n] to a[dst:dst+n], dst <= src, in chunks that do not overlap."""
    gap = src - dst
    if gap == 0:
        return
    done = 0
    while done < n:
        c = min(gap, n - done)
        _copy(a[dst + done:dst + done + c], a[src + done:src + done + c], c)
        done += c


@njit(cache=True, nogil=True)
def _complete(ds, r, lo, hi, ts_ns, packet_index):
    """Lay batch [lo, hi] of row r contiguously in the slab, parse it, queue its transactions."""
    per = ds.shred_st.shape[1]
    base = np.int64(r) * per * SLAB_STRIDE
    b_off = base + np.int64(lo) * SLAB_STRIDE
    w = b_off + ds.shred_sz[r, lo]
    ts_first = ds.shred_ts[r, lo]
    ds.shred_st[r, lo] = ST_CONSUMED
    for k in range(lo + 1, hi + 1):
        src = base + np.int64(k) * SLAB_STRIDE
        n = np.int64(ds.shred_sz[r, k])
        _move_left(ds.slab, w, src, n)
        w += n
        if ds.shred_ts[r, k] < ts_first:
            ts_first = ds.shred_ts[r, k]
        ds.shred_st[r, k] = ST_CONSUMED
    b_end = w
    st, ne, nx, stop = parse_entries(ds.slab[:b_end], b_off, b_end, ds.entries, 0, ds.batch_txs, 0, ds.txn,
                                     ds.instrs, ds.luts)
    slot = ds.slot_id[r]
    gen = ds.slot_gen[r]
    ds.counters[D_BATCHES] += 1
    ds.counters[D_BATCH_BYTES] += b_end - b_off
    ds.counters[D_ENTRIES] += ne
    ds.counters[D_TXS] += nx
    if st != TXN:
        ds.counters[D_PARSE_FAILURES] += 1
        ds.parse_status[st - STATUS_MIN] += 1
    nb = ds.batches.shape[0]
    b = ds.batches[ds.meta[M_BATCHES] % nb]
    ds.meta[M_BATCHES] += 1
    b.slot = slot
    b.off = b_off
    b.end = b_end
    b.stop = stop
    b.ts_first_ns = ts_first
    b.ts_done_ns = ts_ns
    b.packet_index = packet_index
    b.gen = gen
    b.first = lo
    b.last = hi
    b.n_entries = ne
    b.n_txs = nx
    b.status = st
    b.slot_complete = 1 if ds.shred_flags[r, hi] & FLAG_SLOT_COMPLETE else 0
    b.tab = r
    q = ds.queue
    nq = q.shape[0]
    for k in range(nx):
        tail = ds.meta[M_Q_TAIL]
        if tail - ds.meta[M_Q_HEAD] >= nq:
            ds.counters[D_TX_QUEUE_FULL] += nx - k
            break
        x = ds.batch_txs[k]
        row = q[tail % nq]
        row.slot = slot
        row.off = x.off
        row.end = x.end
        row.ts_first_ns = ts_first
        row.ts_done_ns = ts_ns
        row.packet_index = packet_index
        row.gen = gen
        row.batch_first = lo
        row.entry = x.entry
        row.entry_tx_idx = x.entry_tx_idx
        row.tab = r
        ds.meta[M_Q_TAIL] = tail + 1


@njit(cache=True, nogil=True, _nrt=False)
def add_data_shred(ds, buf, off, sz, ts_ns, packet_index):
    """Add the shred ``buf[off:off+sz]`` (a UDP payload) to the reassembly.

    A data shred's payload is copied into the slab; when it completes an entry batch, the
    batch is parsed and its transactions queued for ``drain_ready``. A code shred is
    counted only. Returns SHRED (stored or counted), DUPLICATE ((slot, index) held
    already), ``shred_dropped`` (index >= shreds_per_slot, or slot lower than every held
    slot with the table full) or the header status of ``wire.shred.decode_shred``.
    ``ts_ns`` (event time) and ``packet_index`` are carried to the batch and its
    transactions. Never reads outside ``buf[off:off+sz]``.
    """
    st = decode_shred(buf, off, sz, ds.hdr, 0)
    if st != SHRED:
        ds.counters[D_REJECTED] += 1
        return st
    h = ds.hdr[0]
    counters = ds.counters
    if h.kind == KIND_CODE:
        counters[D_CODE_SHREDS] += 1
        return SHRED
    shred_st = ds.shred_st
    shred_flags = ds.shred_flags
    per = shred_st.shape[1]
    idx = np.int64(h.index)
    if idx >= per:
        counters[D_DROPPED] += 1
        return ERR_SHRED_DROPPED
    r = _slot_row(ds.slot_id, ds.slot_gen, shred_st, counters, ds.meta, h.slot)
    if r < 0:
        counters[D_DROPPED] += 1
        return ERR_SHRED_DROPPED
    if shred_st[r, idx] != ST_ABSENT:
        counters[D_DUPLICATES] += 1
        return DUPLICATE
    n = np.int64(h.data_sz)
    slab = ds.slab
    dst = np.int64(r) * per * SLAB_STRIDE + idx * SLAB_STRIDE
    src = h.data_off
    _copy(slab[dst:dst + n], buf[src:src + n], n)
    flags = h.flags
    shred_st[r, idx] = ST_PRESENT
    shred_flags[r, idx] = flags
    ds.shred_sz[r, idx] = n
    ds.shred_ts[r, idx] = ts_ns
    counters[D_DATA_SHREDS] += 1
    done = (flags & FLAG_DATA_COMPLETE) != 0
    run_lo = ds.run_lo
    run_hi = ds.run_hi
    lo = idx
    hi = idx
    if idx > 0 and shred_st[r, idx - 1] != ST_ABSENT and not (shred_flags[r, idx - 1] & FLAG_DATA_COMPLETE):
        lo = np.int64(run_lo[r, idx - 1])
    if not done and idx + 1 < per and shred_st[r, idx + 1] != ST_ABSENT:
        hi = np.int64(run_hi[r, idx + 1])
    run_hi[r, lo] = hi
    run_lo[r, hi] = lo
    if _batch_ready(shred_st, shred_flags, r, lo, hi):
        _complete(ds, r, lo, hi, ts_ns, packet_index)
    if done and idx + 1 < per and shred_st[r, idx + 1] == ST_PRESENT:
        lo2 = idx + 1                          # this shred starts the batch after it
        hi2 = np.int64(run_hi[r, lo2])
        if _batch_ready(shred_st, shred_flags, r, lo2, hi2):
            _complete(ds, r, lo2, hi2, ts_ns, packet_index)
    return SHRED


@njit(cache=True, nogil=True)
def add_shreds(ds, buf, off, sz, ts_ns, first_index, status):
    """``add_data_shred`` for each shred ``buf[off[i]:off[i]+sz[i]]``; statuses into ``status[i]``."""
    for i in range(off.shape[0]):
        status[i] = add_data_shred(ds, buf, off[i], sz[i], ts_ns[i], first_index + i)


@njit(cache=True, nogil=True, _nrt=False)
def drain_ready(ds, dst, d0, n_max):
    """Hand out up to ``n_max`` queued transactions into ``dst[d0:]`` (READY_DTYPE rows).

    Returns ``(n, left)``: rows written ``dst[d0:d0+n]`` and transactions still queued.
    The bytes of row k are ``ds.slab[dst[k].off:dst[k].end]``, valid until the next
    ``add_data_shred`` call may evict its slot. Rows whose slot was evicted since they
    were queued are skipped and counted (``tx_stale``).
    """
    q = ds.queue
    nq = q.shape[0]
    lim = min(n_max, dst.shape[0] - d0)
    head = ds.meta[M_Q_HEAD]
    tail = ds.meta[M_Q_TAIL]
    n = 0
    while n < lim and head < tail:
        src = q[head % nq]
        head += 1
        if ds.slot_gen[src.tab] != src.gen or ds.slot_id[src.tab] != src.slot:
            ds.counters[D_TX_STALE] += 1
            continue
        d = dst[d0 + n]
        d.slot = src.slot
        d.off = src.off
        d.end = src.end
        d.ts_first_ns = src.ts_first_ns
        d.ts_done_ns = src.ts_done_ns
        d.packet_index = src.packet_index
        d.gen = src.gen
        d.batch_first = src.batch_first
        d.entry = src.entry
        d.entry_tx_idx = src.entry_tx_idx
        d.tab = src.tab
        n += 1
    ds.meta[M_Q_HEAD] = head
    return n, tail - head


def counters_dict(ds: DeshredState) -> dict[str, int]:
    """{counter name: value} for summaries."""
    return {name: int(ds.counters[i]) for i, name in enumerate(COUNTER_NAMES)}


def logged_batches(ds: DeshredState) -> np.ndarray:
    """The batch log in completion order (the last ``batch_log_rows`` batches), as a copy."""
    total = int(ds.meta[M_BATCHES])
    nb = ds.batches.shape[0]
    first = max(0, total - nb)
    return np.array([ds.batches[i % nb] for i in range(first, total)], BATCH_DTYPE)
