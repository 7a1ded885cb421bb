"""pcapng files: block walker over ``np.memmap`` and writer.

Spec: draft-ietf-opsawg-pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html),
sections 4.1 (SHB), 4.2 (IDB), 4.3 (EPB), 4.4 (SPB), 3.1 (general block structure),
and Appendix A (obsolete Packet Block). Every section may change byte order and
interfaces; every interface has its own link type, snap length and timestamp resolution.
Unknown blocks are skipped by their length. The repeated trailing block length is
cross-checked (as dpkt does) so a damaged file is caught at the damaged block.
Timestamps convert exactly to int64 ns since the epoch; an if_tsresol too fine to convert, a
time outside int64 ns or a section of another major version stops the walk at that block.
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
SHB_MIN_SZ = 28            # bytes: block frame + byte-order magic, major, minor, section length
SHB_MAJOR = 1              # the only major version the spec defines; another one is another format
MAX_INTERFACES = 1024      # interfaces per section the walker keeps
NS_PER_S = 1_000_000_000
INT64_MAX = 0x7FFFFFFFFFFFFFFF
# Finest if_tsresol the walker converts. Decimal: 10^(e-9) must fit an int64 divisor (e <= 27).
# Binary: the 64-bit unit count is shifted by at most 63. Finer ones are refused, never wrapped.
MAX_DEC_EXP = 27
MAX_BIN_EXP = 63
MAX_OFFSET_S = INT64_MAX // NS_PER_S  # if_tsoffset seconds whose nanoseconds fit int64

# interface table columns (int64 [MAX_INTERFACES, IF_COLS])
IF_LINKTYPE, IF_SNAPLEN, IF_RES_BINARY, IF_RES_EXP, IF_OFFSET_S = 0, 1, 2, 3, 4
IF_COLS = 5
# walker state (int64 [ST_COLS]); ST_DETAIL is the value an error message quotes
ST_SWAP, ST_NIF, ST_SEEN_SHB, ST_DETAIL = 0, 1, 2, 3
ST_COLS = 4

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
SCAN_BAD_VERSION = -10     # SHB major version other than 1 (detail: major << 16 | minor)
SCAN_BAD_TSRESOL = -11     # if_tsresol finer than the walker converts (detail: the option byte)
SCAN_BAD_TSOFFSET = -12    # if_tsoffset whose nanoseconds do not fit int64 (detail: the seconds)
SCAN_TS_RANGE = -13        # a packet's time is not in int64 ns since the epoch (detail: interface id)

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
    SCAN_BAD_VERSION: "section header block version {major}.{minor}: only major version 1 is pcapng as read here",
    SCAN_BAD_TSRESOL: ("interface description block: if_tsresol 0x{detail:02x} (units of {unit} s) is finer than "
                       f"the reader converts (10^-{MAX_DEC_EXP} s or 2^-{MAX_BIN_EXP} s at most)"),
    SCAN_BAD_TSOFFSET: ("interface description block: if_tsoffset {detail} s is outside "
                        f"+-{MAX_OFFSET_S} s (int64 nanoseconds)"),
    SCAN_TS_RANGE: ("packet timestamp at interface {detail}'s if_tsresol and if_tsoffset is not within int64 "
                    "nanoseconds since the epoch (a nanosecond count under the default microsecond resolution?)"),
}


def scan_reason(status: int, detail: int) -> str:
    """The message of a negative scan status, with the value the walker left in ST_DETAIL."""
    if status == SCAN_BAD_VERSION:
        return SCAN_REASON[status].format(major=detail >> 16, minor=detail & 0xFFFF)
    if status == SCAN_BAD_TSRESOL:
        unit = f"2^-{detail & 0x7F}" if detail & 0x80 else f"10^-{detail}"
        return SCAN_REASON[status].format(detail=detail, unit=unit)
    return SCAN_REASON[status].format(detail=detail) if "{detail}" in SCAN_REASON[status] else SCAN_REASON[status]


@njit(cache=True, nogil=True)
def _pow10(e):
    r = np.int64(1)
    for _ in range(e):
        r *= 10
    return r


@njit(cache=True, nogil=True)
def _shr(u, k):
    """Logical right shift of the 64 bits ``u`` holds (an unsigned unit count), 0 <= k <= 63."""
    if k == 0:
        return u
    return ((u >> 1) & INT64_MAX) >> (k - 1)


@njit(cache=True, nogil=True)
def _udiv(u, d):
    """Unsigned floor division of the 64 bits ``u`` holds by 0 < d < 2^62."""
    if u >= 0:
        return u // d
    q = (_shr(u, 1) // d) << 1
    r = u - q * d                  # the true remainder is < 2d, so the wrapped difference is exact
    if r >= d:
        q += 1
    return q


@njit(cache=True, nogil=True)
def _to_ns(u, iface):
    """Interface units (unsigned 64 bits held in ``u``) -> (ns since the epoch, ok), in integers.

    ok is False when the time is not within int64 ns since the epoch: it is never wrapped.
    Resolutions finer than MAX_DEC_EXP / MAX_BIN_EXP never get here (_read_idb refuses them).
    """
    e = iface[IF_RES_EXP]
    if iface[IF_RES_BINARY]:
        whole = _shr(u, e)
        frac = u & ((np.int64(1) << e) - 1)      # < 2^63 since e <= 63
        if e <= 33:
            frac_ns = (frac * NS_PER_S) >> e     # frac < 2^33: the product fits 63 bits
        else:                                    # split frac at bit 32 so each product fits
            hi = (frac >> 32) * NS_PER_S
            lo = (frac & 0xFFFFFFFF) * NS_PER_S
            frac_ns = (hi + (lo >> 32)) >> (e - 32)
        if whole < 0 or whole > (INT64_MAX - frac_ns) // NS_PER_S:
            return np.int64(0), False
        ns = whole * NS_PER_S + frac_ns
    elif e <= 9:
        m = _pow10(9 - e)
        if u < 0 or u > INT64_MAX // m:
            return np.int64(0), False
        ns = u * m
    else:
        ns = _udiv(u, _pow10(e - 9))
    off = iface[IF_OFFSET_S] * NS_PER_S
    if off > 0 and ns > INT64_MAX - off:
        return np.int64(0), False
    ns += off
    if ns < 0:                                   # before 1970, and -1 is TS_MISSING
        return np.int64(0), False
    return ns, True


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
            binary = r & 0x80
            if (binary and r & 0x7F > MAX_BIN_EXP) or (not binary and r > MAX_DEC_EXP):
                st[ST_DETAIL] = r
                return SCAN_BAD_TSRESOL
            ifaces[k, IF_RES_BINARY] = 1 if binary else 0
            ifaces[k, IF_RES_EXP] = r & 0x7F
        elif code == OPT_IF_TSOFFSET and ln >= 8:
            lo = u32(buf, p, swap)
            hi = u32(buf, p + 4, swap)
            v = (hi << 32) | lo if not swap else (lo << 32) | hi
            if v > MAX_OFFSET_S or v < -MAX_OFFSET_S:
                st[ST_DETAIL] = v
                return SCAN_BAD_TSOFFSET
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
        if btype == BT_SHB:
            if blen < SHB_MIN_SZ:
                return n, pos, SCAN_BAD_LENGTH
            major = u16(buf, body + 4, swap)
            if major != SHB_MAJOR:
                st[ST_DETAIL] = (major << 16) | u16(buf, body + 6, swap)
                return n, pos, SCAN_BAD_VERSION
        elif btype == BT_IDB:
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
            t, ok = _to_ns((hi << 32) | lo, ifaces[ifid])
            if not ok:
                st[ST_DETAIL] = ifid
                return n, pos, SCAN_TS_RANGE
            ts_ns[n] = t
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
    ``linktypes`` lists the link types of the interfaces seen so far; ``release_lag`` as
    ``PcapReader``'s.
    """

    format = "pcapng"
    release_lag = 0

    def __init__(self, path, batch_frames: int = 16384, buf: np.ndarray | None = None):
        self.path = Path(path)
        self.buf = open_memmap(path) if buf is None else buf
        self.batch_frames = int(batch_frames)
        size = self.buf.shape[0]
        if size < 4 or struct.unpack("<I", bytes(self.buf[:4]))[0] != BT_SHB:
            raise CaptureError(self.path, "not a pcapng file (no section header block at offset 0)", 0)
        if size < SHB_MIN_SZ:     # the magic is there: the file was cut inside its first block
            raise CaptureTruncated(self.path, f"capture ends inside the section header block ({size} of "
                                              f"{SHB_MIN_SZ} bytes at least; truncated file)", offset=0, frame=0)
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
        pages = PageReleaser(self.buf, self.release_lag)
        while True:
            pages.release_before(pos)          # the consumer is done with every earlier batch (but the lag)
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
                raise CaptureTruncated(self.path, scan_reason(status, int(self._st[ST_DETAIL])), offset=pos,
                                       frame=index)


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
