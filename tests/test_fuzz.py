"""Property tests (hypothesis): random, truncated and bit-flipped input never crashes a kernel,
never reads outside its bounds, and always yields a status.

``make test`` runs the whole suite with NUMBA_BOUNDSCHECK=1, so an out-of-bounds read in a
kernel raises IndexError here. Buffers are sliced to exactly ``end`` so that reading past
``end`` is out of bounds too.
"""

from __future__ import annotations

import os
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import fixture_txn_files, fixtures_dir
from reference.txn_ref import decode as ref_decode
from txn_helpers import kernel_decode
from workbench.capture import open_capture
from workbench.capture.frames import batch_from_frames
from workbench.engine.deshred import new_deshred_state
from workbench.engine.pipeline import new_batch_out, process_batch
from workbench.engine.state import new_state
from workbench.errors import CaptureError
from workbench.wire.net import udp_payload
from workbench.wire.shred import shred_kind
from workbench.wire.status import STATUS_NAMES

pytestmark = pytest.mark.fuzz
FUZZ = settings(max_examples=int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", "400")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def test_boundscheck_is_on_in_make_test():
    """`make test` sets NUMBA_BOUNDSCHECK=1: an out-of-bounds read in a kernel raises here."""
    from numba import config, njit
    if not config.BOUNDSCHECK:
        pytest.skip("run through `make test` (NUMBA_BOUNDSCHECK=1) for out-of-bounds detection")

    @njit
    def oob(a):
        return a[5]
    with pytest.raises(IndexError):
        oob(np.zeros(2, np.uint8))


def _fixture_payloads():
    return [f.read_bytes() for f in fixture_txn_files(fixtures_dir())]


PAYLOADS = _fixture_payloads()


@FUZZ
@given(st.binary(min_size=0, max_size=1300))
def test_random_bytes_decode_like_the_twin(b):
    assert kernel_decode(b)[0] == ref_decode(b)[0]


@FUZZ
@given(st.integers(0, len(PAYLOADS) - 1), st.lists(st.tuples(st.integers(0, 1300), st.integers(0, 7)), max_size=6),
       st.integers(0, 1300))
def test_bit_flipped_and_cut_fixtures(k, flips, cut):
    b = bytearray(PAYLOADS[k])
    for pos, bit in flips:
        if pos < len(b):
            b[pos] ^= 1 << bit
    b = bytes(b[: max(cut, 0)] if cut < len(b) else b)
    kd, rd = kernel_decode(b), ref_decode(b)
    assert kd[0] == rd[0] and kd[1] == rd[1]


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([0, 1, 12, 101, 113, 228, 229, 276, 999]))
def test_random_frames_walk_safely(frame, linktype):
    buf = np.frombuffer(frame, np.uint8) if frame else np.zeros(0, np.uint8)
    st_, poff, psz, _, _ = udp_payload(buf, 0, len(frame), linktype)
    assert st_ in STATUS_NAMES or st_ == 0
    if st_ == 0:
        assert 0 <= poff and poff + psz <= len(frame)
    assert shred_kind(buf, 0, len(frame)) in (0, 1, 2)


@FUZZ
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=20), st.sampled_from([1, 101, 113, 276]))
def test_engine_on_garbage_batches(frames, linktype):
    state, out = new_state(key_capacity=1 << 10, dedup_slots=1 << 6, tip_lamports=0), new_batch_out(len(frames))
    ds = new_deshred_state(n_slots=2, shreds_per_slot=64, queue_rows=64)
    batch = batch_from_frames(frames, linktype=linktype)
    nxt, n_tx, _, _ = process_batch(batch, state, ds, out, 0, None, None)
    assert nxt == len(frames) and state.status_counts.sum() == len(frames)
    assert all(int(s) in STATUS_NAMES for s in out.pkt_status[: len(frames)])


def test_an_output_smaller_than_its_batch_is_refused_before_any_frame():
    """Each frame's status is written at its index in the batch: an output made for fewer frames
    would be written past its end (heap corruption without bounds checks), so the call refuses it
    and counts nothing."""
    frames = [bytes(60)] * 8
    state, out = new_state(key_capacity=1 << 10, dedup_slots=1 << 6, tip_lamports=0), new_batch_out(4)
    ds = new_deshred_state(n_slots=2, shreds_per_slot=64, queue_rows=64)
    with pytest.raises(ValueError, match="new_batch_out"):
        process_batch(batch_from_frames(frames, linktype=1), state, ds, out, 0, None, None)
    assert state.status_counts.sum() == 0 and not out.pkt_status.any()


def _pcap_header(order="<"):
    return struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def _pcapng_header():
    def block(bt, body):
        return struct.pack("<II", bt, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)) + \
        block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 0, 0))


@FUZZ
@given(st.sampled_from(["pcap", "pcapng"]), st.binary(max_size=600))
def test_random_capture_bodies_never_crash(fmt, body):
    head = _pcap_header() if fmt == "pcap" else _pcapng_header()
    with tempfile.NamedTemporaryFile(suffix="." + fmt) as f:
        f.write(head + body)
        f.flush()
        size = len(head) + len(body)
        try:
            for b in open_capture(f.name, batch_frames=4):
                assert ((b.off >= 0) & (b.off + b.caplen <= size)).all()
        except CaptureError as e:
            assert e.offset is None or 0 <= e.offset <= size


def _pcapng_with_options(tsresol, units, tsoffset, major, minor, order):
    def block(bt, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack(order + "II", bt, 12 + len(body)) + body + struct.pack(order + "I", 12 + len(body))
    opts = struct.pack(order + "HHB3x", 9, 1, tsresol)
    if tsoffset is not None:
        opts += struct.pack(order + "HHq", 14, 8, tsoffset)
    return (block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, major, minor, -1))
            + block(1, struct.pack(order + "HHI", 1, 0, 0) + opts + struct.pack(order + "HH", 0, 0))
            + block(6, struct.pack(order + "IIIII", 0, units >> 32, units & 0xFFFFFFFF, 4, 4) + b"abcd"))


@FUZZ
@given(st.integers(0, 255), st.integers(0, 2**64 - 1), st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
       st.sampled_from([0, 1, 2, 0xFFFF]), st.integers(0, 0xFFFF), st.sampled_from(["<", ">"]))
def test_pcapng_option_values_read_exactly_or_refuse_with_offset(tsresol, units, tsoffset, major, minor, order):
    """Every if_tsresol byte, any 64-bit count, any if_tsoffset, any SHB version: the reader
    gives the exact nanoseconds or a CaptureError naming the offset; no other exception."""
    data = _pcapng_with_options(tsresol, units, tsoffset, major, minor, order)
    with tempfile.NamedTemporaryFile(suffix=".pcapng") as f:
        f.write(data)
        f.flush()
        try:
            ts = [int(t) for b in open_capture(f.name) for t in b.ts_ns]
        except CaptureError as e:
            assert e.offset is not None and 0 <= e.offset < len(data) and f"+0x{e.offset:x}" in str(e)
            return
    exp = tsresol & 0x7F
    scaled = (units * 10**9) >> exp if tsresol & 0x80 else units * 10**9 // 10**exp
    assert major == 1 and ts == [scaled + (tsoffset or 0) * 10**9]
    assert 0 <= ts[0] < 2**63
