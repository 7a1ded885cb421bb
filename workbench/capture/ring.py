"""A lock-free single-producer single-consumer ring of frames in shared memory.

``workbench live --split`` runs capture and engine as two processes, each pinned to its
own CPU: the capture process copies frames from the socket into this ring, the engine
process reads them in place (its FrameBatch views the ring's slots) and frees slots
once they are processed.

Layout of the shared buffer (bytes)::

    [0, 128)      read-only after creation: MAGIC, SLOTS, SLOT_SZ          (int64 words 0..)
    [128, 256)    written by the producer only: HEAD, CLOSED, FULL_WAITS,
                  READY and the source's kernel counters                   (words 16..)
    [256, 384)    written by the consumer only: TAIL, STOP                 (words 32..)
    [384, ...)    SLOTS slots of SLOT_SZ bytes: a 32-byte header, then the frame

HEAD and TAIL are free-running counters of slots (published, freed); slot ``i`` lives at
``(i & (SLOTS - 1)) * SLOT_SZ``, so SLOTS is a power of two. The producer's and the
consumer's words sit 128 bytes apart: on separate cache lines and outside the adjacent
line the L2 prefetcher fetches in pairs, so neither side's writes invalidate the line the
other side polls (no false sharing). Each side also keeps a private copy of the other's
counter (``local``) and rereads the shared one only when its copy says full / empty.

Memory ordering (x86-64 is TSO: stores are seen in program order, loads are not
reordered with older loads, a store is never moved before an older load; only a load
may pass an older store to ANOTHER address, which no step below depends on):

- producer: write the slots (plain stores), then ``store_release(HEAD)``. A consumer
  that sees the new HEAD sees the slot bytes written before it.
- consumer: ``load_acquire(HEAD)``, then read slots (plain loads, never satisfied
  before the acquire load), process them, then ``store_release(TAIL)``: the slot reads
  are done before the producer can see the slots free.
- producer: ``load_acquire(TAIL)`` before overwriting freed slots.

On x86-64 acquire loads and release stores are plain ``mov`` instructions; declaring
them atomic in LLVM (capture/kernel.py) is what stops the COMPILER from reordering them
or hoisting a polled load out of a loop. On aarch64 the same code emits ``ldar``/``stlr``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .kernel import load_acquire_i64, store_release_i64

MAGIC = 0x31474E4952425754        # b"TWBRING1" little-endian: a buffer laid out as below
HDR_SZ = 384                      # bytes of the control block before slot 0
# int64 words of the control block
W_MAGIC, W_SLOTS, W_SLOT_SZ = 0, 1, 2            # read-only after creation
W_HEAD, W_CLOSED, W_FULL_WAITS = 16, 17, 18      # producer's cache lines: published slots, no more to come, full hits
W_READY = 19                                     # producer: 1 once its source is open, -1 if it failed
W_SRC_PACKETS, W_SRC_DROPS, W_SRC_FREEZES = 20, 21, 22   # producer: its source's kernel counters (afpacket RingStats)
W_SRC_FRAMES = 23                                # producer: frames it took from its source
W_TAIL, W_STOP = 32, 33                          # consumer's cache lines: freed slots, "please stop" to the producer
N_WORDS = HDR_SZ // 8
# slot header, bytes from the slot start
S_TS = 0                          # int64 timestamp of the frame, ns since the epoch (-1 none)
S_CAPLEN = 8                      # int32 bytes of the frame stored in the slot
S_WIRELEN = 12                    # int32 bytes it had on the wire (>= caplen; larger if the slot truncated it)
S_LINKTYPE = 16                   # int32 link type
S_INDEX = 24                      # int64 producer's sequence number of the frame (its source index)
SLOT_HDR_SZ = 32
SLOT_SZ_DEFAULT = 2048            # bytes: 2016 bytes of frame, more than an Ethernet MTU frame + VLAN tag
# process-private state (int64[LOCAL_COLS]), one per side
L_OTHER = 0                       # cached copy of the other side's counter (producer: TAIL, consumer: HEAD)
L_MINE = 1                        # this side's own counter (HEAD / TAIL), mirrored locally
LOCAL_COLS = 2


def ring_bytes(slots: int, slot_sz: int = SLOT_SZ_DEFAULT) -> int:
    return HDR_SZ + int(slots) * int(slot_sz)


def check_geometry(slots: int, slot_sz: int) -> None:
    if slots < 2 or slots & (slots - 1):
        raise ValueError(f"ring slots={slots}: must be a power of two >= 2")
    if slot_sz < SLOT_HDR_SZ + 64 or slot_sz % 64:
        raise ValueError(f"ring slot size={slot_sz}: must be a multiple of 64 bytes >= {SLOT_HDR_SZ + 64}")


def init_ring(buf: np.ndarray, slots: int, slot_sz: int = SLOT_SZ_DEFAULT):
    """Lay out a fresh ring in ``buf`` (uint8, shared); returns (ctl int64 view, data uint8 view)."""
    check_geometry(slots, slot_sz)
    if buf.shape[0] < ring_bytes(slots, slot_sz):
        raise ValueError(f"ring buffer of {buf.shape[0]} bytes; {ring_bytes(slots, slot_sz)} needed")
    ctl, data = ring_views(buf, slots, slot_sz, check=False)
    ctl[:] = 0
    ctl[W_SLOTS], ctl[W_SLOT_SZ] = slots, slot_sz
    ctl[W_MAGIC] = MAGIC
    return ctl, data


def ring_views(buf: np.ndarray, slots: int | None = None, slot_sz: int | None = None, check: bool = True):
    """(ctl, data) views of a ring laid out by ``init_ring`` (in this or another process)."""
    ctl = buf[:HDR_SZ].view(np.int64)
    if check:
        if int(ctl[W_MAGIC]) != MAGIC:
            raise ValueError("not a workbench SPSC ring (bad magic)")
        slots, slot_sz = int(ctl[W_SLOTS]), int(ctl[W_SLOT_SZ])
    data = buf[HDR_SZ:HDR_SZ + slots * slot_sz]
    return ctl, data


def new_local() -> np.ndarray:
    return np.zeros(LOCAL_COLS, np.int64)


@njit(cache=True, nogil=True, inline="always")
def _put_i64(b, i, v):
    v = np.int64(v)
    for j in range(8):
        b[i + j] = (v >> (8 * j)) & 0xFF


@njit(cache=True, nogil=True, inline="always")
def _get_i64(b, i):
    v = np.int64(0)
    for j in range(8):
        v |= np.int64(b[i + j]) << (8 * j)
    return v


@njit(cache=True, nogil=True, inline="always")
def _get_i32(b, i):
    return np.int64(b[i]) | (np.int64(b[i + 1]) << 8) | (np.int64(b[i + 2]) << 16) | (np.int64(b[i + 3]) << 24)


@njit(cache=True, nogil=True)
def ring_free(ctl, local):
    """Slots the producer may fill now (rereads TAIL only when its cached copy says full)."""
    slots = ctl[W_SLOTS]
    free = slots - (local[L_MINE] - local[L_OTHER])
    if free == 0:
        local[L_OTHER] = load_acquire_i64(ctl, W_TAIL)
        free = slots - (local[L_MINE] - local[L_OTHER])
    return free


@njit(cache=True, nogil=True)
def ring_push_frames(ctl, data, local, src, off, caplen, wirelen, ts_ns, linktype, first_index, lo, hi):
    """Copy frames ``[lo, hi)`` of a batch into free slots; publish them with one release store.

    Returns how many were pushed (fewer than asked when the ring is full; the caller
    retries the rest). A frame longer than a slot keeps its first bytes (caplen shrinks,
    wirelen stays).
    """
    slots = ctl[W_SLOTS]
    slot_sz = ctl[W_SLOT_SZ]
    cap = slot_sz - SLOT_HDR_SZ
    free = ring_free(ctl, local)
    n = min(hi - lo, free)
    if n <= 0:
        if hi > lo:
            ctl[W_FULL_WAITS] += 1
        return 0
    head = local[L_MINE]
    for j in range(n):
        i = lo + j
        s = ((head + j) & (slots - 1)) * slot_sz
        cl = min(np.int64(caplen[i]), cap)
        o = off[i]
        for b in range(cl):
            data[s + SLOT_HDR_SZ + b] = src[o + b]
        _put_i64(data, s + S_TS, ts_ns[i])
        wl = max(np.int64(wirelen[i]), np.int64(caplen[i]))
        for b in range(4):
            data[s + S_CAPLEN + b] = (cl >> (8 * b)) & 0xFF
            data[s + S_WIRELEN + b] = (wl >> (8 * b)) & 0xFF
            data[s + S_LINKTYPE + b] = (np.int64(linktype[i]) >> (8 * b)) & 0xFF
        _put_i64(data, s + S_INDEX, first_index + i)
    local[L_MINE] = head + n
    store_release_i64(ctl, W_HEAD, head + n)
    return n


@njit(cache=True, nogil=True)
def ring_push_bytes(ctl, data, local, payload, n_bytes, ts_ns, index):
    """Publish one message of ``n_bytes`` from ``payload``; returns 1, or 0 if the ring is full."""
    slots = ctl[W_SLOTS]
    slot_sz = ctl[W_SLOT_SZ]
    if ring_free(ctl, local) <= 0:
        ctl[W_FULL_WAITS] += 1
        return 0
    head = local[L_MINE]
    s = (head & (slots - 1)) * slot_sz
    cl = min(np.int64(n_bytes), slot_sz - SLOT_HDR_SZ)
    for b in range(cl):
        data[s + SLOT_HDR_SZ + b] = payload[b]
    _put_i64(data, s + S_TS, ts_ns)
    for b in range(4):
        data[s + S_CAPLEN + b] = (cl >> (8 * b)) & 0xFF
        data[s + S_WIRELEN + b] = (np.int64(n_bytes) >> (8 * b)) & 0xFF
        data[s + S_LINKTYPE + b] = 0
    _put_i64(data, s + S_INDEX, index)
    local[L_MINE] = head + 1
    store_release_i64(ctl, W_HEAD, head + 1)
    return 1


@njit(cache=True, nogil=True)
def ring_available(ctl, local):
    """Slots the consumer may read now (rereads HEAD only when its cached copy says empty)."""
    avail = local[L_OTHER] - local[L_MINE]
    if avail == 0:
        local[L_OTHER] = load_acquire_i64(ctl, W_HEAD)
        avail = local[L_OTHER] - local[L_MINE]
    return avail


@njit(cache=True, nogil=True)
def ring_peek(ctl, data, local, off, caplen, wirelen, ts_ns, linktype, index, k0, max_n):
    """Describe up to ``max_n`` published slots as FrameBatch columns ``[k0, k0 + n)``.

    ``off`` indexes ``data`` (no copy); ``index`` gets each frame's producer sequence
    number. The slots stay owned by the consumer until ``ring_release``. Returns ``n``.
    """
    slots = ctl[W_SLOTS]
    slot_sz = ctl[W_SLOT_SZ]
    n = min(ring_available(ctl, local), max_n)
    tail = local[L_MINE]
    for j in range(n):
        s = ((tail + j) & (slots - 1)) * slot_sz
        k = k0 + j
        off[k] = s + SLOT_HDR_SZ
        caplen[k] = _get_i32(data, s + S_CAPLEN)
        wirelen[k] = _get_i32(data, s + S_WIRELEN)
        linktype[k] = _get_i32(data, s + S_LINKTYPE)
        ts_ns[k] = _get_i64(data, s + S_TS)
        index[k] = _get_i64(data, s + S_INDEX)
    return n


@njit(cache=True, nogil=True)
def ring_release(ctl, local, n):
    """Free the ``n`` oldest peeked slots (their frames are processed): one release store."""
    if n > 0:
        local[L_MINE] += n
        store_release_i64(ctl, W_TAIL, local[L_MINE])


@njit(cache=True, nogil=True)
def ring_closed_and_empty(ctl, local):
    """True when the producer closed the ring and every slot was consumed."""
    if load_acquire_i64(ctl, W_CLOSED) == 0:
        return False
    return ring_available(ctl, local) == 0


def close_producer(ctl) -> None:
    """Producer: no more frames will come (after the last ``ring_push_*``)."""
    _close(ctl)


@njit(cache=True, nogil=True)
def _close(ctl):
    store_release_i64(ctl, W_CLOSED, 1)


@njit(cache=True, nogil=True)
def request_stop(ctl):
    """Consumer: ask the producer to stop producing (it polls ``stop_requested``)."""
    store_release_i64(ctl, W_STOP, 1)


@njit(cache=True, nogil=True)
def stop_requested(ctl):
    return load_acquire_i64(ctl, W_STOP) != 0


# --- the producer's status words, from Python ----------------------------------------------------
READY_WAITING, READY_OK, READY_FAILED = 0, 1, -1   # W_READY: not yet / source open and loop loaded / failed


def producer_ready(ctl) -> int:
    """W_READY as the consumer reads it: READY_WAITING, READY_OK or READY_FAILED."""
    return int(ctl[W_READY])


def set_producer_ready(ctl, ready: int) -> None:
    """Producer: say whether its source opened (READY_OK) or not (READY_FAILED)."""
    ctl[W_READY] = ready


def publish_source_stats(ctl, packets: int | None = None, drops: int = 0, freezes: int | None = None) -> None:
    """Producer: its source's kernel counters, for the consumer to report (None: the source has none)."""
    if packets is not None:
        ctl[W_SRC_PACKETS] = packets
    ctl[W_SRC_DROPS] = drops
    if freezes is not None:
        ctl[W_SRC_FREEZES] = freezes


def source_stats(ctl) -> dict:
    """Consumer: the producer's source counters and its own (frames into the ring, full-ring waits)."""
    return {"packets": int(ctl[W_SRC_PACKETS]), "drops": int(ctl[W_SRC_DROPS]), "freezes": int(ctl[W_SRC_FREEZES]),
            "frames_into_ring": int(ctl[W_SRC_FRAMES]), "ring_full_waits": int(ctl[W_FULL_WAITS])}
