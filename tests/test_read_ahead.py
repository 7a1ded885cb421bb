"""The replay's read-ahead thread (runner/replay.py) and the page releaser's lag (capture/pcap.py).

The reader scans on its own thread ahead of the engine: the batches must be the reader's
own, in the same order, a damaged capture must still give every good frame before the
error, and the pages of the batches the engine may still hold must not be released.
"""

from __future__ import annotations

import mmap
import threading

import numpy as np
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from workbench.capture import open_capture
from workbench.capture.pcap import RELEASE_STEP, PageReleaser, PcapWriter, open_memmap
from workbench.errors import CaptureTruncated
from workbench.runner.replay import _ReadAhead


def _write(path, n):
    frames = [bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP() / UDP(dport=8003)
                    / Raw(bytes([k % 251]) * (40 + k % 7))) for k in range(n)]
    with PcapWriter(path) as w:
        for k, f in enumerate(frames):
            w.write(f, 1_000 * k)
    return frames


def _rows(batch):
    return [(batch.first_index + i, bytes(batch.frame(i)), int(batch.ts_ns[i])) for i in range(batch.n)]


def test_same_batches_in_the_same_order(tmp_path):
    p = tmp_path / "a.pcap"
    _write(p, 203)
    plain = open_capture(p, batch_frames=8)
    want, want_pos = [], []
    for b in plain:
        want.append(_rows(b))
        want_pos.append(plain.bytes_read)
    ahead = _ReadAhead(open_capture(p, batch_frames=8), depth=2)
    got, got_pos = [], []
    for b in ahead:
        got.append(_rows(b))
        got_pos.append(ahead.bytes_read)       # the position after the batch handed out, not the scan's
    ahead.close()
    assert got == want and len(got) == 26
    assert got_pos == want_pos
    with pytest.raises(StopIteration):         # ended stays ended
        next(ahead)


def test_damaged_capture_gives_every_good_frame_then_the_error(tmp_path):
    p = tmp_path / "t.pcap"
    frames = _write(p, 30)
    data = p.read_bytes()
    p.write_bytes(data[:-10])                  # the last record cut inside its data
    ahead = _ReadAhead(open_capture(p, batch_frames=4))
    seen = []
    with pytest.raises(CaptureTruncated) as ei:
        for b in ahead:
            seen += [bytes(b.frame(i)) for i in range(b.n)]
    ahead.close()
    assert seen == frames[:29]
    assert ei.value.frame == 29


def test_error_in_the_first_batch_is_raised_at_the_first_next(tmp_path):
    p = tmp_path / "t.pcap"
    _write(p, 3)
    data = p.read_bytes()
    p.write_bytes(data[:24 + 5])               # the file header and part of a record header
    ahead = _ReadAhead(open_capture(p))        # the first read happens here; its error waits
    with pytest.raises(CaptureTruncated):
        next(ahead)
    ahead.close()


def test_close_mid_capture_stops_the_thread(tmp_path):
    p = tmp_path / "a.pcap"
    _write(p, 400)
    ahead = _ReadAhead(open_capture(p, batch_frames=4), depth=1)
    next(ahead)                                # the thread now waits on a full queue
    ahead.close()
    assert not any(t.name == "capture-read-ahead" and t.is_alive() for t in threading.enumerate())


@pytest.mark.skipif(not hasattr(mmap, "MADV_DONTNEED"), reason="no MADV_DONTNEED here")
def test_page_releaser_waits_lag_calls(tmp_path):
    p = tmp_path / "big.bin"
    with open(p, "wb") as f:                   # sparse: nothing is written
        f.truncate(4 * RELEASE_STEP)
    buf = open_memmap(p)
    assert isinstance(buf, np.memmap)
    positions = [RELEASE_STEP + 100, 2 * RELEASE_STEP + 100, 3 * RELEASE_STEP + 100]
    now = PageReleaser(buf)
    now.release_before(positions[0])
    assert now.done == RELEASE_STEP            # lag 0: released at once (whole pages before pos)
    lagged = PageReleaser(buf, lag=2)
    lagged.release_before(positions[0])
    lagged.release_before(positions[1])
    assert lagged.done == 0                    # the consumer may still hold those two batches
    lagged.release_before(positions[2])
    assert lagged.done == RELEASE_STEP         # now the first position is behind the consumer
