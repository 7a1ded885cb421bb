"""The SPSC ring (capture/ring.py): order, wrap-around, full / empty, truncation, and 10M
messages between two processes arriving complete and in order."""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pytest
from numba import njit

from workbench.capture.ring import (S_INDEX, SLOT_HDR_SZ, W_CLOSED, W_HEAD, W_TAIL, close_producer, init_ring,
                                    new_local, request_stop, ring_available, ring_bytes, ring_closed_and_empty,
                                    ring_peek, ring_push_bytes, ring_push_frames, ring_release, ring_views,
                                    stop_requested)
from workbench.host import SharedBuffer
from workbench.capture.clock import monotonic_ns

N_MESSAGES = 10_000_000
SLOTS = 1 << 12
SLOT_SZ = 128
PUSH_BATCH = 64               # messages published per release store
TIMEOUT_S = 240.0             # whole-transfer bound (cold numba compile in the child included)


def _cols(n):
    return (np.zeros(n, np.int64), np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.int64),
            np.zeros(n, np.int32), np.zeros(n, np.int64))


def _ring(slots=8, slot_sz=128):
    buf = np.zeros(ring_bytes(slots, slot_sz), np.uint8)
    ctl, data = init_ring(buf, slots, slot_sz)
    return buf, ctl, data


def test_geometry_is_checked():
    with pytest.raises(ValueError, match="power of two"):
        init_ring(np.zeros(ring_bytes(6, 128), np.uint8), 6, 128)
    with pytest.raises(ValueError, match="multiple of 64"):
        init_ring(np.zeros(ring_bytes(8, 100), np.uint8), 8, 100)
    with pytest.raises(ValueError, match="bad magic"):
        ring_views(np.zeros(4096, np.uint8))


def test_head_and_tail_sit_on_their_own_cache_lines():
    _, ctl, _ = _ring()
    head_line, tail_line = (W_HEAD * 8) // 64, (W_TAIL * 8) // 64
    assert abs(head_line - tail_line) >= 2 and W_HEAD * 8 >= 128    # 2 lines apart: no adjacent-line prefetch pairing


def test_fill_drain_wrap_and_order():
    _, ctl, data = _ring(8, 128)
    prod, cons = new_local(), new_local()
    payload = np.arange(256, dtype=np.uint8)
    expect = 0
    sent = 0
    for rnd in range(5):                              # 5 rounds x 8 slots: the counters wrap the slots 5 times
        while ring_push_bytes(ctl, data, prod, payload[sent % 50:], 10 + sent % 7, 1000 + sent, sent):
            sent += 1
        assert ring_available(ctl, cons) == 8         # full: exactly SLOTS published
        cols = _cols(16)
        n = ring_peek(ctl, data, cons, *cols[:5], cols[5], 0, 16)
        assert n == 8
        for k in range(n):
            assert cols[5][k] == expect and cols[3][k] == 1000 + expect and cols[1][k] == 10 + expect % 7
            o = cols[0][k]
            assert bytes(data[o:o + cols[1][k]]) == bytes(payload[expect % 50: expect % 50 + 10 + expect % 7])
            expect += 1
        assert ring_push_bytes(ctl, data, prod, payload, 5, 0, 0) == 0      # still full until released
        ring_release(ctl, cons, n)
    assert ctl[W_HEAD] == ctl[W_TAIL] == 40


def test_frames_longer_than_a_slot_keep_their_head_and_wire_length():
    _, ctl, data = _ring(4, 128)
    prod, cons = new_local(), new_local()
    src = np.arange(300, dtype=np.uint8)
    off = np.array([0, 10], np.int64)
    caplen = np.array([300, 20], np.int32)
    n = ring_push_frames(ctl, data, prod, src, off, caplen, caplen.copy(), np.array([5, 6], np.int64),
                         np.array([1, 101], np.int32), 77, 0, 2)
    assert n == 2
    cols = _cols(4)
    assert ring_peek(ctl, data, cons, *cols[:5], cols[5], 0, 4) == 2
    assert list(cols[1][:2]) == [128 - SLOT_HDR_SZ, 20] and list(cols[2][:2]) == [300, 20]
    assert list(cols[4][:2]) == [1, 101] and list(cols[5][:2]) == [77, 78]
    assert bytes(data[cols[0][1]:cols[0][1] + 20]) == bytes(src[10:30])


def test_close_and_stop_flags():
    _, ctl, data = _ring()
    prod, cons = new_local(), new_local()
    assert not ring_closed_and_empty(ctl, cons)
    ring_push_bytes(ctl, data, prod, np.zeros(4, np.uint8), 4, 0, 0)
    close_producer(ctl)
    assert ctl[W_CLOSED] == 1 and not ring_closed_and_empty(ctl, cons)   # one message left
    ring_release(ctl, cons, ring_peek(ctl, data, cons, *_cols(4)[:5], _cols(4)[5], 0, 4))
    assert ring_closed_and_empty(ctl, cons)
    assert not stop_requested(ctl)
    request_stop(ctl)
    assert stop_requested(ctl)


@njit(cache=True, nogil=True)
def _produce(ctl, data, local, count, batch, deadline_ns):
    """Push messages 0..count-1: 8-byte sequence number + (seq % 57) bytes derived from it."""
    src = np.zeros(batch * 80, np.uint8)
    off = np.zeros(batch, np.int64)
    ln = np.zeros(batch, np.int32)
    ts = np.zeros(batch, np.int64)
    lt = np.zeros(batch, np.int32)
    seq = 0
    while seq < count:
        m = min(batch, count - seq)
        pos = 0
        for j in range(m):
            s = seq + j
            off[j] = pos
            n = 8 + s % 57
            ln[j] = n
            ts[j] = s * 3
            for b in range(8):
                src[pos + b] = (s >> (8 * b)) & 0xFF
            for b in range(8, n):
                src[pos + b] = (s * 31 + b) & 0xFF
            pos += n
        i = 0
        while i < m:
            i += ring_push_frames(ctl, data, local, src, off, ln, ln, ts, lt, seq, i, m)
            if monotonic_ns() > deadline_ns:
                return seq + i
        seq += m
    return seq


@njit(cache=True, nogil=True)
def _consume(ctl, data, local, count, deadline_ns):
    """Read until ``count`` messages or the deadline; returns (received, first bad seq or -1)."""
    off = np.zeros(256, np.int64)
    cl = np.zeros(256, np.int32)
    wl = np.zeros(256, np.int32)
    ts = np.zeros(256, np.int64)
    lt = np.zeros(256, np.int32)
    idx = np.zeros(256, np.int64)
    got = 0
    bad = -1
    while got < count:
        n = ring_peek(ctl, data, local, off, cl, wl, ts, lt, idx, 0, 256)
        if n == 0:
            if monotonic_ns() > deadline_ns:
                break
            continue
        for k in range(n):
            s = got + k
            o = off[k]
            v = np.int64(0)
            for b in range(8):
                v |= np.int64(data[o + b]) << (8 * b)
            ok = v == s and idx[k] == s and ts[k] == s * 3 and cl[k] == 8 + s % 57
            if ok:
                for b in range(8, cl[k]):
                    if data[o + b] != (s * 31 + b) & 0xFF:
                        ok = False
                        break
            if not ok and bad < 0:
                bad = s
        got += n
        ring_release(ctl, local, n)
    return got, bad


def _producer_main(path, nbytes, count, timeout_s):
    shm = SharedBuffer.attach(path, nbytes)
    ctl, data = ring_views(shm.buf)
    _produce(ctl, data, new_local(), count, PUSH_BATCH, monotonic_ns() + int(timeout_s * 1e9))
    close_producer(ctl)


def test_ten_million_messages_between_two_processes_arrive_complete_and_in_order():
    nbytes = ring_bytes(SLOTS, SLOT_SZ)
    shm = SharedBuffer.create(nbytes, prefix="workbench-test-ring")
    try:
        ctl, data = init_ring(shm.buf, SLOTS, SLOT_SZ)
        _consume(ctl, data, new_local(), 0, 0)                    # compile before the clock starts
        ctx = mp.get_context("spawn")
        proc = ctx.Process(target=_producer_main, args=(shm.path, nbytes, N_MESSAGES, TIMEOUT_S), daemon=True)
        t0 = time.perf_counter()
        proc.start()
        got, bad = _consume(ctl, data, new_local(), N_MESSAGES, monotonic_ns() + int(TIMEOUT_S * 1e9))
        wall = time.perf_counter() - t0
        proc.join(30)
        assert proc.exitcode == 0
        assert bad == -1, f"message {bad} arrived out of order or damaged"
        assert got == N_MESSAGES, f"{got} of {N_MESSAGES} messages arrived in {wall:.1f} s"
        assert ctl[W_CLOSED] == 1 and ctl[W_HEAD] == ctl[W_TAIL] == N_MESSAGES
        head = ctl[W_HEAD]
        assert int(head) == N_MESSAGES
        assert (N_MESSAGES - 1) % SLOTS == ((N_MESSAGES - 1) & (SLOTS - 1))
        print(f"10M messages in {wall:.2f} s (process start and numba cache load included)")
    finally:
        shm.close()


def test_slot_index_field_is_the_producers_sequence():
    _, ctl, data = _ring(8, 128)
    prod = new_local()
    ring_push_bytes(ctl, data, prod, np.zeros(8, np.uint8), 8, 0, 12345)
    assert int.from_bytes(bytes(data[S_INDEX:S_INDEX + 8]), "little") == 12345
