"""pcapng files: block walker over ``np.memmap`` and writer.

Spec: draft-ietf-opsawg-pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html),
sections 4.1 (SHB), 4.2 (IDB), 4.3 (EPB), 4.4 (SPB), 3.1 (general block structure),
and Appendix A (obsolete Packet Block). Every section may change byte order and
interfaces; every interface has its own link type, snap length and timestamp resolution.
Unknown blocks are skipped by their length. The repeated trailing block length is
cross-checked (as dpkt does) so a damaged file is caught at the damaged block.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from numba import njit

from ..binary import prefetch_upto, put_u32, u16, u32
from ..errors import CaptureError, CaptureTruncated
from .frames import TS_MISSING, FrameBatch, empty_columns
from .pcap import SCAN_END, SCAN_MORE, PageReleaser, open_memmap

BT_SHB = 0x0A0D0D0A        # Section Header Block (palindromic: same in both byte orders)
BT_IDB = 0x00000001        # Interface Description Block
BT_PB = 0x00000002         # Packet Block (obsolete): if_id u16, drops u16, ts, caplen, len
BT_SPB = 0x00000003        # Simple Packet Block: original length only, interface 0, no ts
BT_EPB = 0x00000006        # Enhanced Packet Block: if_id, ts high/low, caplen, original length
BOM = 0x1A2B3C4D           # byte-order magic inside the SHB
OPT_ENDOFOPT = 0           # option list terminator
OPT_IF_TSRESOL = 9         # IDB option: 1 byte; MSB 0: 10^-n s, MSB 1: 2^-n s (default 10^-6)
OPT_IF_TSOFFSET = 14       # IDB option: int64 seconds added to every timestamp
BLOCK_MIN_SZ = 12          # bytes: type, length, trailing length
MAX_INTERFACES = 1024      # interfaces per section the walker keeps

# interface table columns (int64 [MAX_INTERFACES, IF_COLS])
IF_LINKTYPE, IF_SNAPLEN, IF_RES_BINARY, IF_RES_EXP, IF_OFFSET_S = 0, 1, 2, 3, 4
IF_COLS = 5
# walker state (int64 [ST_COLS])
ST_SWAP, ST_NIF, ST_SEEN_SHB = 0, 1, 2
ST_COLS = 3

# scan status beyond pcap.py's SCAN_MORE / SCAN_END: why _scan_pcapng stopped
SCAN_TRUNC_HEADER = -1     # file ends inside a block header
SCAN_TRUNC_BLOCK = -2      # file ends inside a block body
SCAN_BAD_LENGTH = -3       # block length < 12 or not a multiple of 4
SCAN_LENGTH_MISMATCH = -4  # trailing block length != leading block length
SCAN_BAD_BOM = -5          # SHB without a valid byte-order magic
SCAN_BAD_IFACE = -6        # packet names an interface with no IDB
SCAN_BAD_CAPLEN = -7       # captured length exceeds the block
SCAN_NO_SHB = -8           # a block before any SHB
SCAN_TOO_MANY_IF = -9      # more than MAX_INTERFACES interfaces in one section

SCAN_REASON = {
    SCAN_TRUNC_HEADER: "capture ends inside a block header (truncated file)",
    SCAN_TRUNC_BLOCK: "capture ends inside a block (truncated file)",
    SCAN_BAD_LENGTH: "block length is < 12 or not a multiple of 4 (corrupt file)",
    SCAN_LENGTH_MISMATCH: "trailing block length differs from the leading one (corrupt block)",
    SCAN_BAD_BOM: "section header block without byte-order magic 0x1A2B3C4D",
    SCAN_BAD_IFACE: "packet block names an interface that no IDB declared",
    SCAN_BAD_CAPLEN: "captured length exceeds its block (corrupt block)",
    SCAN_NO_SHB: "first block is not a section header block",
    SCAN_TOO_MANY_IF: f"more than {MAX_INTERFACES} interfaces in one section",
}


@njit(cache=True, nogil=True)
def _pow10(e):
    r = np.int64(1)
    for _ in range(e):
        r *= 10
    return r


@njit(cache=True, nogil=True)
def _to_ns(ts, iface):
    """Interface units -> ns since the epoch, in integers (no float seconds)."""
    e = iface[IF_RES_EXP]
    if iface[IF_RES_BINARY]:
        if e > 33:                       # keep (frac * 1e9) inside 63 bits
            ts >>= e - 33
            e = 33
        whole = ts >> e
        frac = ts & ((np.int64(1) << e) - 1)
        ns = whole * 1_000_000_000 + ((frac * 1_000_000_000) >> e)
    elif e <= 9:
        ns = ts * _pow10(9 - e)
    else:
        ns = ts // _pow10(e - 9)
    return ns + iface[IF_OFFSET_S] * 1_000_000_000


@njit(cache=True, nogil=True)
def _read_idb(buf, body, body_end, swap, ifaces, st):
    k = st[ST_NIF]
    if k >= MAX_INTERFACES:
        return SCAN_TOO_MANY_IF
    if body_end - body < 8:
        return SCAN_BAD_LENGTH
    ifaces[k, IF_LINKTYPE] = u16(buf, body, swap)
    ifaces[k, IF_SNAPLEN] = u32(buf, body + 4, swap)
    ifaces[k, IF_RES_BINARY] = 0
    ifaces[k, IF_RES_EXP] = 6
    ifaces[k, IF_OFFSET_S] = 0
    p = body + 8
    while body_end - p >= 4:
        code = u16(buf, p, swap)
        ln = u16(buf, p + 2, swap)
        p += 4
        if code == OPT_ENDOFOPT or ln > body_end - p:
            break
        if code == OPT_IF_TSRESOL and ln >= 1:
            r = np.int64(buf[p])
            ifaces[k, IF_RES_BINARY] = 1 if r & 0x80 else 0
            ifaces[k, IF_RES_EXP] = r & 0x7F
        elif code == OPT_IF_TSOFFSET and ln >= 8:
            lo = u32(buf, p, swap)
            hi = u32(buf, p + 4, swap)
            v = (hi << 32) | lo if not swap else (lo << 32) | hi
            ifaces[k, IF_OFFSET_S] = v
        p += (ln + 3) & ~3
    st[ST_NIF] = k + 1
    return 0


@njit(cache=True, nogil=True)
def _scan_pcapng(buf, pos, st, ifaces, off, caplen, wirelen, ts_ns, linktype, max_n):
    """Walk blocks from ``pos``, indexing up to ``max_n`` packets. Returns (n, next_pos, status).

    ``st`` and ``ifaces`` carry the section's byte order and interfaces between calls.
    """
    end = buf.shape[0]
    n = 0
    pf = pos
    while n < max_n:
        pf = prefetch_upto(buf, pf, pos)
        if pos == end:
            return n, pos, SCAN_END
        if end - pos < BLOCK_MIN_SZ:
            return n, pos, SCAN_TRUNC_HEADER
        btype = u32(buf, pos, False)
        if btype == BT_SHB:
            if end - pos < 12:
                return n, pos, SCAN_TRUNC_HEADER
            if u32(buf, pos + 8, False) == BOM:
                st[ST_SWAP] = 0
            elif u32(buf, pos + 8, True) == BOM:
                st[ST_SWAP] = 1
            else:
                return n, pos, SCAN_BAD_BOM
            st[ST_NIF] = 0
            st[ST_SEEN_SHB] = 1
        elif st[ST_SEEN_SHB] == 0:
            return n, pos, SCAN_NO_SHB
        swap = st[ST_SWAP] == 1
        btype = u32(buf, pos, swap)
        blen = u32(buf, pos + 4, swap)
        if blen < BLOCK_MIN_SZ or blen & 3:
            return n, pos, SCAN_BAD_LENGTH
        if blen > end - pos:
            return n, pos, SCAN_TRUNC_BLOCK
        if u32(buf, pos + blen - 4, swap) != blen:
            return n, pos, SCAN_LENGTH_MISMATCH
        body = pos + 8
        body_end = pos + blen - 4
        if btype == BT_IDB:
            r = _read_idb(buf, body, body_end, swap, ifaces, st)
            if r < 0:
                return n, pos, r
        elif btype == BT_EPB or btype == BT_PB:
            if body_end - body < 20:
                return n, pos, SCAN_BAD_LENGTH
            if btype == BT_EPB:
                ifid = u32(buf, body, swap)
            else:
                ifid = u16(buf, body, swap)
            if ifid >= st[ST_NIF]:
                return n, pos, SCAN_BAD_IFACE
            hi = u32(buf, body + 4, swap)
            lo = u32(buf, body + 8, swap)
            cl = u32(buf, body + 12, swap)
            ol = u32(buf, body + 16, swap)
            if cl > body_end - body - 20:
                return n, pos, SCAN_BAD_CAPLEN
            off[n] = body + 20
            caplen[n] = cl
            wirelen[n] = ol if ol >= cl else cl
            ts_ns[n] = _to_ns((hi << 32) | lo, ifaces[ifid])
            linktype[n] = ifaces[ifid, IF_LINKTYPE]
            n += 1
        elif btype == BT_SPB:
            if st[ST_NIF] < 1:
                return n, pos, SCAN_BAD_IFACE
            if body_end - body < 4:
                return n, pos, SCAN_BAD_LENGTH
            ol = u32(buf, body, swap)
            cl = min(ol, body_end - body - 4)
            snap = ifaces[0, IF_SNAPLEN]
            if snap > 0 and cl > snap:
                cl = snap
            off[n] = body + 4
            caplen[n] = cl
            wirelen[n] = ol if ol >= cl else cl
            ts_ns[n] = TS_MISSING
            linktype[n] = ifaces[0, IF_LINKTYPE]
            n += 1
        pos += blen
    return n, pos, SCAN_MORE


class PcapngReader:
    """Frames of a pcapng file, in batches that view the memory-mapped file.

    Like ``PcapReader``: good frames first, then ``CaptureTruncated`` at the damage.
    ``linktypes`` lists the link types of the interfaces seen so far.
    """

    format = "pcapng"

    def __init__(self, path, batch_frames: int = 16384, buf: np.ndarray | None = None):
        self.path = Path(path)
        self.buf = open_memmap(path) if buf is None else buf
        self.batch_frames = int(batch_frames)
        if self.buf.shape[0] < 12 or struct.unpack("<I", bytes(self.buf[:4]))[0] != BT_SHB:
            raise CaptureError(self.path, "not a pcapng file (no section header block at offset 0)", 0)
        self._st = np.zeros(ST_COLS, np.int64)
        self._ifaces = np.zeros((MAX_INTERFACES, IF_COLS), np.int64)
        self.frames_read = 0
        self.bytes_read = 0

    @property
    def linktypes(self) -> list[int]:
        return [int(x) for x in self._ifaces[: self._st[ST_NIF], IF_LINKTYPE]]

    def __iter__(self):
        pos = 0
        index = 0
        self._st[:] = 0
        pages = PageReleaser(self.buf)
        while True:
            pages.release_before(pos)          # the consumer is done with every earlier batch
            off, caplen, wirelen, ts_ns, linktype = empty_columns(self.batch_frames)
            n, pos, status = _scan_pcapng(self.buf, pos, self._st, self._ifaces, off, caplen, wirelen,
                                          ts_ns, linktype, self.batch_frames)
            self.frames_read = index + n
            self.bytes_read = pos
            if n:
                yield FrameBatch(self.buf, off[:n], caplen[:n], wirelen[:n], ts_ns[:n], linktype[:n], index)
                index += n
            if status == SCAN_END:
                return
            if status < 0:
                raise CaptureTruncated(self.path, SCAN_REASON[status], offset=pos, frame=index)


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


class PcapngWriter:
    """Writes pcapng: one SHB, IDBs with nanosecond ``if_tsresol``, EPBs.

    ``linktype`` declares interface 0; ``add_interface`` declares more (before or
    between packets). ``big_endian`` writes the whole section in big-endian order.
    """

    def __init__(self, path, linktype: int = 1, snaplen: int = 262144, big_endian: bool = False,
                 nanosecond: bool = True):
        self.path = Path(path)
        self.order = ">" if big_endian else "<"
        self.nanosecond = nanosecond
        self._f = open(self.path, "wb")
        shb_body = struct.pack(self.order + "IHHq", BOM, 1, 0, -1)
        self._block(BT_SHB, shb_body)
        self.n_interfaces = 0
        self.add_interface(linktype, snaplen)
        self.frames_written = 0

    def _block(self, btype: int, body: bytes) -> None:
        blen = 12 + len(body)
        self._f.write(struct.pack(self.order + "II", btype, blen) + body + struct.pack(self.order + "I", blen))

    def add_interface(self, linktype: int, snaplen: int = 262144) -> int:
        opts = b""
        if self.nanosecond:
            opts = struct.pack(self.order + "HHB3x", OPT_IF_TSRESOL, 1, 9)
        opts += struct.pack(self.order + "HH", OPT_ENDOFOPT, 0)
        self._block(BT_IDB, struct.pack(self.order + "HHI", linktype, 0, snaplen) + opts)
        self.n_interfaces += 1
        return self.n_interfaces - 1

    def write(self, frame: bytes, ts_ns: int, wirelen: int | None = None, interface: int = 0) -> None:
        units = ts_ns if self.nanosecond else ts_ns // 1000
        body = struct.pack(self.order + "IIIII", interface, (units >> 32) & 0xFFFFFFFF, units & 0xFFFFFFFF,
                           len(frame), len(frame) if wirelen is None else wirelen)
        self._block(BT_EPB, body + bytes(frame) + b"\0" * _pad4(len(frame)))
        self.frames_written += 1

    def write_many(self, buf: np.ndarray, off: np.ndarray, lens: np.ndarray, ts_ns: np.ndarray,
                   wirelen: np.ndarray | None = None, interface: int = 0) -> None:
        """Frames ``buf[off[i]:off[i]+lens[i]]`` as EPBs, packed by a jitted loop."""
        lens = np.asarray(lens, np.int64)
        if lens.shape[0] == 0:
            return
        out = np.empty(int(lens.sum()) + 35 * lens.shape[0], np.uint8)
        wl = lens if wirelen is None else np.asarray(wirelen, np.int64)
        ts = np.asarray(ts_ns, np.int64)
        if not self.nanosecond:
            ts = ts // 1000
        used = _pack_epb(np.asarray(buf, np.uint8), np.asarray(off, np.int64), lens, wl, ts, interface,
                         self.order == ">", out)
        self._f.write(memoryview(out)[:used])
        self.frames_written += lens.shape[0]

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@njit(cache=True, nogil=True)
def _pack_epb(src, off, lens, wirelen, ts, interface, swap, out):
    pos = 0
    for i in range(off.shape[0]):
        ln = lens[i]
        pad = (4 - ln % 4) % 4
        blen = 32 + ln + pad
        put_u32(out, pos, BT_EPB, swap)
        put_u32(out, pos + 4, blen, swap)
        put_u32(out, pos + 8, interface, swap)
        put_u32(out, pos + 12, (ts[i] >> 32) & 0xFFFFFFFF, swap)
        put_u32(out, pos + 16, ts[i] & 0xFFFFFFFF, swap)
        put_u32(out, pos + 20, ln, swap)
        put_u32(out, pos + 24, wirelen[i], swap)
        o = off[i]
        for j in range(ln):
            out[pos + 28 + j] = src[o + j]
        for j in range(pad):
            out[pos + 28 + ln + j] = 0
        put_u32(out, pos + 28 + ln + pad, blen, swap)
        pos += blen
    return pos
