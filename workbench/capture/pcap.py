"""Classic libpcap files: reader over ``np.memmap`` and writer.

Spec: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html (File Header,
Packet Record). The byte order is the writer's: the magic number read back in the other
order tells us to swap. Timestamps stay integer nanoseconds end to end (no float seconds).
"""

from __future__ import annotations

import collections
import mmap
import struct
from pathlib import Path

import numpy as np
from numba import njit

from ..binary import prefetch_upto, put_u32, u32
from ..errors import CaptureError, CaptureTruncated
from .frames import FrameBatch, empty_columns

MAGIC_USEC = 0xA1B2C3D4        # ts fraction in microseconds
MAGIC_NSEC = 0xA1B23C4D        # ts fraction in nanoseconds
MAGIC_MODIFIED = 0xA1B2CD34    # Kuznetzov's modified pcap: 8 more record-header bytes
FILE_HEADER_SZ = 24            # bytes: magic, major, minor, thiszone, sigfigs, snaplen, linktype
RECORD_HEADER_SZ = 16          # bytes: ts_sec, ts_frac, incl_len, orig_len
MODIFIED_EXTRA_SZ = 8          # bytes: ifindex u32, protocol u16, pkt_type u8, pad u8
CAPLEN_MAX = 1 << 24           # bytes: an incl_len above this is corruption, not a frame
RELEASE_STEP = 32 << 20        # bytes: release consumed pages of the mapping in steps this large

# scan status: why _scan_pcap stopped. SCAN_MORE and SCAN_END are what every file
# reader's scan returns (pcapng.py too); the negative codes are each format's own.
SCAN_MORE = 0                  # max_n frames read, more may follow
SCAN_END = 1                   # clean end of file
SCAN_TRUNC_HEADER = -1         # the file ends inside a record header
SCAN_TRUNC_DATA = -2           # the file ends inside a record's data
SCAN_BAD_LENGTH = -3           # incl_len > CAPLEN_MAX: the record header is garbage

SCAN_REASON = {
    SCAN_TRUNC_HEADER: "capture ends inside a record header (truncated file)",
    SCAN_TRUNC_DATA: "capture ends inside a record's packet data (truncated file)",
    SCAN_BAD_LENGTH: "record header has an impossible captured length (corrupt file)",
}


@njit(cache=True, nogil=True)
def _scan_pcap(buf, pos, swap, frac_ns, hdr_sz, off, caplen, wirelen, ts_ns, max_n):
    """Index up to ``max_n`` records from ``pos``. Returns (n, next_pos, status)."""
    end = buf.shape[0]
    n = 0
    pf = pos
    while n < max_n:
        pf = prefetch_upto(buf, pf, pos)
        if pos == end:
            return n, pos, SCAN_END
        if end - pos < hdr_sz:
            return n, pos, SCAN_TRUNC_HEADER
        sec = u32(buf, pos, swap)
        frac = u32(buf, pos + 4, swap)
        incl = u32(buf, pos + 8, swap)
        orig = u32(buf, pos + 12, swap)
        if incl > CAPLEN_MAX:
            return n, pos, SCAN_BAD_LENGTH
        if incl > end - pos - hdr_sz:
            return n, pos, SCAN_TRUNC_DATA
        off[n] = pos + hdr_sz
        caplen[n] = incl
        wirelen[n] = orig if orig >= incl else incl
        ts_ns[n] = sec * 1_000_000_000 + frac * frac_ns
        n += 1
        pos += hdr_sz + incl
    return n, pos, SCAN_MORE


def open_memmap(path) -> np.ndarray:
    """The file as a read-only uint8 memmap (an empty array for an empty file).

    The mapping is advised sequential, so the kernel reads ahead of the walk.
    """
    p = Path(path)
    if not p.exists():
        raise CaptureError(p, "no such file")
    if not p.is_file():
        raise CaptureError(p, "not a regular file")
    if p.stat().st_size == 0:
        return np.zeros(0, np.uint8)
    try:
        m = np.memmap(p, np.uint8, "r")
    except (OSError, ValueError) as e:
        raise CaptureError(p, f"cannot map the file: {e}") from None
    mm = getattr(m, "_mmap", None)
    if mm is not None and hasattr(mmap, "MADV_SEQUENTIAL"):
        mm.madvise(mmap.MADV_SEQUENTIAL)
    return m


class PageReleaser:
    """Drops the pages of a memory-mapped capture that every consumer is done with.

    A file mapping's resident pages count in RSS; without this, replaying a 2 GB capture
    would show 2 GB resident. ``release_before(pos)`` advises MADV_DONTNEED for whole
    pages before ``pos`` (the file stays in the page cache; our mapping lets go of it).
    Only call it once no batch that views those bytes is still in use.
    """

    def __init__(self, buf: np.ndarray, lag: int = 0):
        self.mm = getattr(buf, "_mmap", None)
        self.done = 0
        # ``lag`` > 0: the consumer may still hold the ``lag`` batches before the one being read
        # (a reader thread runs ahead of it), so each release waits that many calls
        self._lag = int(lag)
        self._behind: collections.deque[int] = collections.deque()

    def release_before(self, pos: int) -> None:
        if self._lag:
            self._behind.append(pos)
            if len(self._behind) <= self._lag:
                return
            pos = self._behind.popleft()
        if self.mm is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        end = (int(pos) // mmap.PAGESIZE) * mmap.PAGESIZE
        if end - self.done >= RELEASE_STEP:
            self.mm.madvise(mmap.MADV_DONTNEED, self.done, end - self.done)
            self.done = end


class PcapReader:
    """Frames of a classic pcap file, in batches that view the memory-mapped file.

    Iterating yields ``FrameBatch``es; if the file is damaged, every frame before the
    damage is yielded first, then ``CaptureTruncated`` names the file, frame and offset.
    ``release_lag``: batches the consumer may still use when the next one is read (0: none;
    a read-ahead thread sets it to its depth + 1), so their pages are not released under it.
    """

    format = "pcap"
    release_lag = 0

    def __init__(self, path, batch_frames: int = 16384, buf: np.ndarray | None = None):
        self.path = Path(path)
        self.buf = open_memmap(path) if buf is None else buf
        self.batch_frames = int(batch_frames)
        size = self.buf.shape[0]
        if size < 4:
            raise CaptureError(self.path, f"only {size} bytes: too short for a pcap file header", 0)
        head = bytes(self.buf[:FILE_HEADER_SZ])
        magic_le = struct.unpack("<I", head[:4])[0]
        for order, swap in (("<", False), (">", True)):
            magic = struct.unpack(order + "I", head[:4])[0]
            if magic in (MAGIC_USEC, MAGIC_NSEC, MAGIC_MODIFIED):
                break
        else:
            raise CaptureError(self.path, f"not a pcap file (magic 0x{magic_le:08x})", 0)
        if size < FILE_HEADER_SZ:   # the magic is there: the file was cut inside its header
            raise CaptureTruncated(self.path, f"capture ends inside the pcap file header ({size} of "
                                              f"{FILE_HEADER_SZ} bytes; truncated file)", offset=0, frame=0)
        self.swap = swap
        self.nanosecond = magic == MAGIC_NSEC
        self.record_header_sz = RECORD_HEADER_SZ + (MODIFIED_EXTRA_SZ if magic == MAGIC_MODIFIED else 0)
        (self.version_major, self.version_minor, _zone, _sigfigs, self.snaplen,
         network) = struct.unpack(order + "HHiIII", head[4:])
        self.linktype = network & 0x0FFFFFFF   # upper bits may carry the FCS length
        self.frames_read = 0
        self.bytes_read = FILE_HEADER_SZ

    def __iter__(self):
        pos = FILE_HEADER_SZ
        index = 0
        frac_ns = 1 if self.nanosecond else 1000
        pages = PageReleaser(self.buf, self.release_lag)
        while True:
            pages.release_before(pos)          # the consumer is done with every earlier batch (but the lag)
            off, caplen, wirelen, ts_ns, linktype = empty_columns(self.batch_frames)
            n, pos, status = _scan_pcap(self.buf, pos, self.swap, frac_ns, self.record_header_sz,
                                        off, caplen, wirelen, ts_ns, self.batch_frames)
            self.frames_read = index + n
            self.bytes_read = pos
            if n:
                linktype[:n] = self.linktype
                yield FrameBatch(self.buf, off[:n], caplen[:n], wirelen[:n], ts_ns[:n], linktype[:n], index)
                index += n
            if status == SCAN_END:
                return
            if status < 0:
                raise CaptureTruncated(self.path, SCAN_REASON[status], offset=pos, frame=index)


@njit(cache=True, nogil=True)
def _pack_pcap(src, off, lens, wirelen, ts_ns, frac_div, swap, out):
    """Pack records (header + bytes) into ``out``; returns the bytes used."""
    pos = 0
    for i in range(off.shape[0]):
        t = ts_ns[i]
        put_u32(out, pos, t // 1_000_000_000, swap)
        put_u32(out, pos + 4, (t % 1_000_000_000) // frac_div, swap)
        put_u32(out, pos + 8, lens[i], swap)
        put_u32(out, pos + 12, wirelen[i], swap)
        pos += RECORD_HEADER_SZ
        o = off[i]
        for j in range(lens[i]):
            out[pos + j] = src[o + j]
        pos += lens[i]
    return pos


class PcapWriter:
    """Writes a classic pcap file (nanosecond magic by default, either byte order)."""

    def __init__(self, path, linktype: int = 1, nanosecond: bool = True, snaplen: int = 262144,
                 big_endian: bool = False):
        self.path = Path(path)
        self.swap = bool(big_endian)
        self.nanosecond = nanosecond
        self.linktype = linktype
        self._f = open(self.path, "wb")
        order = ">" if big_endian else "<"
        magic = MAGIC_NSEC if nanosecond else MAGIC_USEC
        self._f.write(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        self.frames_written = 0

    def write(self, frame: bytes, ts_ns: int, wirelen: int | None = None) -> None:
        order = ">" if self.swap else "<"
        frac = ts_ns % 1_000_000_000 if self.nanosecond else (ts_ns % 1_000_000_000) // 1000
        self._f.write(struct.pack(order + "IIII", ts_ns // 1_000_000_000, frac, len(frame),
                                  len(frame) if wirelen is None else wirelen))
        self._f.write(frame)
        self.frames_written += 1

    def write_many(self, buf: np.ndarray, off: np.ndarray, lens: np.ndarray, ts_ns: np.ndarray,
                   wirelen: np.ndarray | None = None) -> None:
        """Frames ``buf[off[i]:off[i]+lens[i]]``, packed by a jitted loop (the fast path)."""
        lens = np.asarray(lens, np.int64)
        if lens.shape[0] == 0:
            return
        out = np.empty(int(lens.sum()) + RECORD_HEADER_SZ * lens.shape[0], np.uint8)
        wl = lens if wirelen is None else np.asarray(wirelen, np.int64)
        used = _pack_pcap(np.asarray(buf, np.uint8), np.asarray(off, np.int64), lens, wl,
                          np.asarray(ts_ns, np.int64), 1 if self.nanosecond else 1000, self.swap, out)
        self._f.write(memoryview(out)[:used])
        self.frames_written += lens.shape[0]

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
