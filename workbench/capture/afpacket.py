"""AF_PACKET socket with a TPACKET_V3 receive ring: frames straight from the NIC's driver.

Spec: Linux ``Documentation/networking/packet_mmap.rst`` and ``<linux/if_packet.h>``;
the kernel side is ``net/packet/af_packet.c`` (``tpacket_rcv``, ``prb_*``).

The kernel fills a ring of ``block_nr`` blocks of ``block_size`` bytes, mmap'd into this
process. A block holds many frames, each behind a ``tpacket3_hdr``; the kernel hands a
block to user space (``block_status |= TP_STATUS_USER``) when the next frame does not
fit or when the retire timeout (``retire_blk_tov`` ms) expires, and takes it back when
user space writes ``TP_STATUS_KERNEL``. ``scan_ring`` (jitted) turns a block into
FrameBatch columns: offsets INTO THE RING (zero copy), lengths, kernel timestamps.

Open-block peek (``peek=True``, x86-64 only). A block is retired when full or on a
timer of whole milliseconds, so block-by-block delivery alone costs up to a block's fill
time per packet. With peek the scan also reads frames of the block the kernel is still
filling, as each one completes. The kernel publishes no per-frame status in V3, so
completion is read from the frame's ``sockaddr_ll``: ``tpacket_rcv`` copies the frame,
writes every ``tpacket3_hdr`` field, then calls the device's ``header_ops->parse``
(``dev_parse_header``, an opaque indirect call the compiler cannot move stores across),
and only then writes ``sll_family = AF_PACKET``. On x86-64 stores become visible in
program order (TSO), so ``sll_family == AF_PACKET`` (read with acquire ordering) means
the frame and its header are complete. That needs every frame slot to read 0 before the
kernel writes it: the ring starts zeroed (the kernel allocates it with ``__GFP_ZERO``)
and ``release_block`` zeroes the used part of a block before giving it back. Devices
without ``header_ops->parse`` (not Ethernet) get block-by-block delivery only.

VLAN tags: the receive path moves an 802.1Q / 802.1ad tag out of the frame into the skb
before AF_PACKET sees it (``skb_vlan_untag``); the ring header keeps it
(``TP_STATUS_VLAN_VALID``, ``tp_vlan_tci``, ``tp_vlan_tpid``). The scan puts it back in
place, as libpcap does: the two MAC addresses move 4 bytes down into the frame's
headroom and the tag goes after them, so the engine and the recording see the frame as
it was on the wire.
"""

from __future__ import annotations

import mmap
import platform
import socket
import struct
from typing import NamedTuple

import numpy as np
from numba import njit

from ..binary import u16le, u32le
from ..errors import CaptureError, ConfigError
from .bpf import attach_filter, udp_port_filter
from .frames import FrameBatch
from ..linktypes import ETHERTYPE_VLAN, LINKTYPE_ETHERNET, LINKTYPE_RAW, VLAN_TAG_SZ
from .kernel import load_acquire_u32, store_release_u32

# --- <linux/if_ether.h>, <linux/socket.h> ---------------------------------------------------------
ETH_P_ALL = 0x0003                # every protocol
AF_PACKET = 17                    # address family: sockaddr_ll.sll_family
SOL_PACKET = 263

# --- <linux/if_packet.h>: socket options (level SOL_PACKET) ----------------------------------
PACKET_ADD_MEMBERSHIP = 1         # struct packet_mreq: PACKET_MR_PROMISC puts the NIC in promiscuous mode
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5                # struct tpacket_req3: set up the receive ring
PACKET_STATISTICS = 6             # struct tpacket_stats_v3: packets, drops, freezes (cleared on read)
PACKET_VERSION = 10               # int: TPACKET_V1/V2/V3
PACKET_TIMESTAMP = 17             # int: SOF_TIMESTAMPING_* source of tp_sec/tp_nsec
PACKET_FANOUT = 18                # int: group id | (type | flags) << 16
PACKET_QDISC_BYPASS = 20          # int: transmit straight to the driver (sender.py)
TPACKET_V3 = 2
PACKET_FANOUT_HASH = 0            # fanout by flow hash: a flow stays on one socket
PACKET_FANOUT_LB = 1              # round robin
PACKET_FANOUT_CPU = 2             # by receiving CPU
PACKET_FANOUT_FLAG_DEFRAG = 0x8000  # reassemble IP fragments before hashing (not used: see AfPacketSource)
FANOUT_MODES = {"hash": PACKET_FANOUT_HASH, "lb": PACKET_FANOUT_LB, "cpu": PACKET_FANOUT_CPU}

# --- <linux/if_packet.h>: tp_status / block_status bits --------------------------------------
TP_STATUS_KERNEL = 0              # block belongs to the kernel
TP_STATUS_USER = 1 << 0           # block (frame) is ready for user space
TP_STATUS_COPY = 1 << 1           # frame was truncated to the ring's frame space (caplen < wirelen)
TP_STATUS_LOSING = 1 << 2         # drops happened since the last PACKET_STATISTICS read
TP_STATUS_VLAN_VALID = 1 << 4     # tp_vlan_tci holds a tag the receive path took out of the frame
TP_STATUS_BLK_TMO = 1 << 5        # block retired by the timeout, not because it was full
TP_STATUS_VLAN_TPID_VALID = 1 << 6  # tp_vlan_tpid is valid (else the TPID is 0x8100)
TP_STATUS_TS_SOFTWARE = 1 << 29   # tp_sec/tp_nsec came from the kernel's software clock
TP_STATUS_TS_RAW_HARDWARE = 1 << 31  # ... from the NIC's hardware clock

# --- struct tpacket_block_desc (the head of every block), byte offsets ------------------------
BD_VERSION = 0                    # u32 block descriptor version (1)
BD_OFFSET_TO_PRIV = 4             # u32 offset of the private area
BD_BLOCK_STATUS = 8               # u32 hdr.bh1.block_status: TP_STATUS_KERNEL / TP_STATUS_USER | flags
BD_NUM_PKTS = 12                  # u32 hdr.bh1.num_pkts: frames in the block
BD_OFFSET_TO_FIRST_PKT = 16       # u32 hdr.bh1.offset_to_first_pkt: first tpacket3_hdr, from the block start
BD_BLK_LEN = 20                   # u32 hdr.bh1.blk_len: bytes used, block header included
BD_SEQ_NUM = 24                   # u64 hdr.bh1.seq_num: block sequence number (aligned 8)
BD_TS_FIRST_PKT = 32              # struct tpacket_bd_ts {u32 sec, u32 nsec}: first frame's timestamp
BD_TS_LAST_PKT = 40               # struct tpacket_bd_ts: last frame's timestamp
BD_SZ = 48                        # sizeof(struct tpacket_block_desc)
BLOCK_FIRST_PKT = 48              # BLK_PLUS_PRIV(0) = ALIGN8(sizeof(tpacket_block_desc)) + ALIGN8(0 priv)

# --- struct tpacket3_hdr (every frame), byte offsets from the frame start ---------------------
H3_NEXT_OFFSET = 0                # u32 tp_next_offset: next frame, from this one; 0 for the last of a block
H3_SEC = 4                        # u32 tp_sec: timestamp, seconds (CLOCK_REALTIME)
H3_NSEC = 8                       # u32 tp_nsec: timestamp, nanoseconds
H3_SNAPLEN = 12                   # u32 tp_snaplen: bytes of the frame in the ring (caplen)
H3_LEN = 16                       # u32 tp_len: bytes of the frame on the wire (wirelen)
H3_STATUS = 20                    # u32 tp_status: TP_STATUS_* of this frame
H3_MAC = 24                       # u16 tp_mac: frame data (link header), from the frame start
H3_NET = 26                       # u16 tp_net: network header, from the frame start
H3_RXHASH = 28                    # u32 hv1.tp_rxhash
H3_VLAN_TCI = 32                  # u32 hv1.tp_vlan_tci: the VLAN TCI the receive path took out
H3_VLAN_TPID = 36                 # u16 hv1.tp_vlan_tpid: its TPID (0x8100 / 0x88a8)
H3_SZ = 48                        # sizeof(struct tpacket3_hdr) = TPACKET_ALIGN(48)
# struct sockaddr_ll right after it, at TPACKET_ALIGN(sizeof(tpacket3_hdr))
SLL_FAMILY = H3_SZ + 0            # u16 sll_family = AF_PACKET: written LAST (see the module docstring)
SLL_PROTOCOL = H3_SZ + 2          # be16 sll_protocol: EtherType
SLL_IFINDEX = H3_SZ + 4           # i32 sll_ifindex
SLL_HATYPE = H3_SZ + 8            # u16 sll_hatype: ARPHRD_* of the device
SLL_PKTTYPE = H3_SZ + 10          # u8 sll_pkttype: PACKET_HOST / BROADCAST / ... / OUTGOING
SLL_END = H3_SZ + 20              # end of sockaddr_ll: the frame's own headroom starts here
PACKET_OUTGOING = 4               # sll_pkttype of a frame this host sent
ETH_ADDRS_SZ = 12                 # bytes: destination + source MAC

# --- <linux/if_arp.h>: device types -> link types --------------------------------------------
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772             # lo: Ethernet framing with zero MACs
ARPHRD_NONE = 0xFFFE              # tun and other headerless devices: raw IP
ARPHRD_RAWIP = 519
HATYPE_LINKTYPE = {ARPHRD_ETHER: LINKTYPE_ETHERNET, ARPHRD_LOOPBACK: LINKTYPE_ETHERNET,
                   ARPHRD_NONE: LINKTYPE_RAW, ARPHRD_RAWIP: LINKTYPE_RAW}

# --- cursor: where the consumer is in the ring (int64[CUR_COLS]) ------------------------------
CUR_BLOCK = 0                     # index of the block being read, [0, block_nr)
CUR_DONE = 1                      # frames of it already handed out
CUR_POS = 2                       # offset in the block of the next frame to hand out
CUR_RETIRED = 3                   # 1: the block is retired and fully handed out; release it after processing
CUR_BLOCKS = 4                    # blocks given back to the kernel
CUR_BLOCKS_TMO = 5                # ... of which the retire timeout closed
CUR_FRAMES = 6                    # frames handed out
CUR_PEEKED = 7                    # ... of which from a block the kernel was still filling
CUR_VLAN = 8                      # VLAN tags put back into frames
CUR_OUTGOING = 9                  # frames this host sent (skipped: a capture sees what arrives)
CUR_COLS = 10

# --- tunables' limits -----------------------------------------------------------------------
PAGE_SZ = mmap.PAGESIZE
MIN_BLOCK_SZ = PAGE_SZ            # the kernel wants block_size a multiple of the page size
RETIRE_TOV_MAX_MS = 60_000        # retire timeout sanity bound
PEEK_SUPPORTED = platform.machine() in ("x86_64", "AMD64")   # the completion rule needs TSO


@njit(cache=True, nogil=True, inline="always")
def _take_frame(ring, fp, linktype, off, caplen, wirelen, ts_ns, lt, k, cursor):
    """Fill column ``k`` from the frame header at ring offset ``fp``. Returns 1 if taken."""
    if ring[fp + SLL_PKTTYPE] == PACKET_OUTGOING:
        cursor[CUR_OUTGOING] += 1
        return 0
    mac = fp + u16le(ring, fp + H3_MAC)
    snap = u32le(ring, fp + H3_SNAPLEN)
    wl = u32le(ring, fp + H3_LEN)
    status = u32le(ring, fp + H3_STATUS)
    if (status & TP_STATUS_VLAN_VALID) != 0 and linktype == LINKTYPE_ETHERNET and snap >= ETH_ADDRS_SZ \
            and mac - VLAN_TAG_SZ >= fp + SLL_END:
        tci = u32le(ring, fp + H3_VLAN_TCI)
        tpid = u16le(ring, fp + H3_VLAN_TPID) if (status & TP_STATUS_VLAN_TPID_VALID) != 0 else ETHERTYPE_VLAN
        if tpid == 0:
            tpid = ETHERTYPE_VLAN
        for j in range(ETH_ADDRS_SZ):                     # MACs 4 bytes down, into the headroom
            ring[mac - VLAN_TAG_SZ + j] = ring[mac + j]
        mac -= VLAN_TAG_SZ
        ring[mac + 12] = (tpid >> 8) & 0xFF
        ring[mac + 13] = tpid & 0xFF
        ring[mac + 14] = (tci >> 8) & 0xFF
        ring[mac + 15] = tci & 0xFF
        snap += VLAN_TAG_SZ
        wl += VLAN_TAG_SZ
        cursor[CUR_VLAN] += 1                             # (the cursor passes every frame once)
    off[k] = mac
    caplen[k] = snap
    wirelen[k] = wl if wl >= snap else snap
    ts_ns[k] = u32le(ring, fp + H3_SEC) * 1_000_000_000 + u32le(ring, fp + H3_NSEC)
    lt[k] = linktype
    return 1


@njit(cache=True, nogil=True)
def scan_ring(ring, cursor, block_size, block_nr, linktype, peek, off, caplen, wirelen, ts_ns, lt, k0, max_n):
    """Hand out the next frames of the ring into columns ``[k0, k0 + n)``; returns ``n``.

    Frames come from one block per call: the block at ``cursor[CUR_BLOCK]``. If it is
    retired (``TP_STATUS_USER``) every frame left in it is handed out and
    ``cursor[CUR_RETIRED]`` is set: the caller processes the frames, then calls
    ``release_block``. If not and ``peek``, the frames of the open block that are complete
    are handed out (module docstring). Offsets in ``off`` index ``ring``: no byte is copied.
    """
    if cursor[CUR_RETIRED] != 0:
        return 0
    b = cursor[CUR_BLOCK]
    base = b * block_size
    status = load_acquire_u32(ring, base + BD_BLOCK_STATUS)
    retired = (status & TP_STATUS_USER) != 0
    if not retired and not peek:
        return 0
    done = cursor[CUR_DONE]
    pos = cursor[CUR_POS]
    if done == 0:
        pos = u32le(ring, base + BD_OFFSET_TO_FIRST_PKT) if retired else BLOCK_FIRST_PKT
        if pos < BD_SZ or pos >= block_size:
            pos = BLOCK_FIRST_PKT
    num = u32le(ring, base + BD_NUM_PKTS)
    k = k0
    while k < k0 + max_n and done < num:
        fp = base + pos
        if pos < BD_SZ or pos + SLL_END > block_size:
            done = num                                     # a corrupt offset: skip the rest of the block
            break
        if not retired and load_acquire_u32(ring, fp + SLL_FAMILY) & 0xFFFF != AF_PACKET:
            break                                          # the kernel is still writing this frame
        if _take_frame(ring, fp, linktype, off, caplen, wirelen, ts_ns, lt, k, cursor):
            k += 1
            if not retired:
                cursor[CUR_PEEKED] += 1
        done += 1
        nxt = u32le(ring, fp + H3_NEXT_OFFSET)
        if nxt == 0:                                       # the last frame of a closed block
            done = max(done, num) if retired else done
            break
        pos += nxt
    cursor[CUR_DONE] = done
    cursor[CUR_POS] = pos
    cursor[CUR_FRAMES] += k - k0
    if retired and done >= u32le(ring, base + BD_NUM_PKTS):
        cursor[CUR_RETIRED] = 1
        if (status & TP_STATUS_BLK_TMO) != 0:
            cursor[CUR_BLOCKS_TMO] += 1
    return k - k0


@njit(cache=True, nogil=True)
def release_block(ring, cursor, block_size, block_nr):
    """Give the current (retired, processed) block back to the kernel and move to the next.

    The used part of the block is zeroed first (the peek completion rule needs frame
    slots to read 0 until the kernel writes them), then ``block_status`` is set to
    ``TP_STATUS_KERNEL`` with release ordering, so the kernel sees the zeroes first.
    """
    if cursor[CUR_RETIRED] == 0:
        return 0
    base = cursor[CUR_BLOCK] * block_size
    first = u32le(ring, base + BD_OFFSET_TO_FIRST_PKT)
    used = u32le(ring, base + BD_BLK_LEN)
    if first < BD_SZ:
        first = BD_SZ
    if used > block_size:
        used = block_size
    for j in range(base + first, base + used):
        ring[j] = 0
    store_release_u32(ring, base + BD_BLOCK_STATUS, TP_STATUS_KERNEL)
    cursor[CUR_BLOCK] = (cursor[CUR_BLOCK] + 1) % block_nr
    cursor[CUR_DONE] = 0
    cursor[CUR_POS] = BLOCK_FIRST_PKT
    cursor[CUR_RETIRED] = 0
    cursor[CUR_BLOCKS] += 1
    return 1


def if_index(iface: str) -> int:
    try:
        return socket.if_nametoindex(iface)
    except OSError:
        names = ", ".join(n for _, n in socket.if_nameindex())
        raise CaptureError(iface, f"no network interface named {iface!r} (here: {names})") from None


class InterfaceWatch:
    """Whether the interface a live capture opened is still there under its name.

    An AF_PACKET socket is bound to an interface index. When the device is unregistered (a
    veth or its namespace deleted, a USB NIC pulled, a driver unloaded) the kernel unhooks the
    socket and never hooks it again: the ring stays empty for good, and a run without
    ``--duration`` would wait forever on a NIC that no longer exists. A device made again under
    the same name has a new index, which the socket does not follow either. (A link that goes
    down and up keeps its index, and the kernel hooks the socket again: that is not gone.)"""

    def __init__(self, iface: str):
        self.iface = iface
        self.index = if_index(iface)

    def gone(self) -> str | None:
        """Why the capture can get no more frames from the interface, or None while it can."""
        try:
            now = socket.if_nametoindex(self.iface)
        except OSError:
            return f"interface {self.iface} went away (its device was removed)"
        if now != self.index:
            return (f"interface {self.iface} was made again (index {self.index} -> {now}): "
                    "the capture's socket stays bound to the device that went away")
        return None


def if_hatype(iface: str) -> int:
    try:
        return int(open(f"/sys/class/net/{iface}/type").read())
    except OSError:
        return ARPHRD_ETHER


class RingStats(NamedTuple):
    """Kernel counters of one socket since it opened (``PACKET_STATISTICS``, accumulated)."""

    packets: int        # frames the socket accepted (after the filter), dropped ones included
    drops: int          # frames dropped because the ring had no room
    freezes: int        # times the queue froze: every block was owned by user space


class AfPacketSource:
    """A TPACKET_V3 receive ring on one interface.

    ``block_size`` bytes per block (a multiple of the page size, larger than the largest
    frame plus 96 bytes of headers), ``block_nr`` blocks, ``retire_ms`` block retire
    timeout. ``ports`` (UDP destination ports) installs a BPF filter; none captures
    every frame. ``fanout_group`` > 0 joins a ``PACKET_FANOUT`` group (``fanout_mode``
    hash by default) so several engine processes share the interface. ``peek`` reads
    frames of the open block as they complete (x86-64; module docstring).

    The Python face (``poll`` / ``release``) is for tests and notebooks; the live loop
    calls ``scan_ring`` and ``release_block`` from nopython code with ``ring`` and
    ``cursor``.
    """

    def __init__(self, iface: str, *, block_size: int = 1 << 18, block_nr: int = 128, retire_ms: int = 10,
                 ports=(), fanout_group: int = 0, fanout_mode: str = "hash", peek: bool = True,
                 promisc: bool = False, batch_frames: int = 4096):
        if block_size < MIN_BLOCK_SZ or block_size % PAGE_SZ:
            raise ConfigError(f"afpacket_block_size={block_size}: must be a multiple of the page size ({PAGE_SZ})")
        if block_size & (block_size - 1):
            raise ConfigError(f"afpacket_block_size={block_size}: must be a power of two")
        if block_nr < 2:
            raise ConfigError(f"afpacket_block_count={block_nr}: must be >= 2")
        if not 1 <= retire_ms <= RETIRE_TOV_MAX_MS:
            raise ConfigError(f"afpacket_retire_ms={retire_ms}: must be in [1, {RETIRE_TOV_MAX_MS}]")
        if fanout_mode not in FANOUT_MODES:
            raise ConfigError(f"fanout_mode={fanout_mode!r}: one of {', '.join(FANOUT_MODES)}")
        self.iface = iface
        self.ifindex = if_index(iface)
        hatype = if_hatype(iface)
        if hatype not in HATYPE_LINKTYPE:
            raise CaptureError(iface, f"device type ARPHRD {hatype} is not Ethernet or raw IP")
        self.linktype = HATYPE_LINKTYPE[hatype]
        self.block_size, self.block_nr, self.retire_ms = int(block_size), int(block_nr), int(retire_ms)
        self.peek = bool(peek) and PEEK_SUPPORTED and hatype == ARPHRD_ETHER
        self.ports = tuple(ports)
        try:
            # protocol 0 until the ring is ready: bind() below starts delivery with ETH_P_ALL
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise CaptureError(iface, "AF_PACKET needs root or CAP_NET_RAW (use --source udp otherwise)") from None
        try:
            s = self.sock
            if self.ports:
                attach_filter(s, udp_port_filter(self.ports))
            s.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            # struct tpacket_req3: block_size, block_nr, frame_size, frame_nr, retire_blk_tov,
            # sizeof_priv, feature_req_word (frame_* only bound the ring in V3)
            frame_size = 2048
            req = struct.pack("7I", self.block_size, self.block_nr, frame_size,
                              self.block_size * self.block_nr // frame_size, self.retire_ms, 0, 0)
            s.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self._mm = mmap.mmap(s.fileno(), self.block_size * self.block_nr, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
            self.ring = np.frombuffer(self._mm, np.uint8)
            s.bind((iface, ETH_P_ALL))
            if promisc:
                s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", self.ifindex, PACKET_MR_PROMISC,
                                                                           0, b""))
            if fanout_group:
                # no PACKET_FANOUT_FLAG_DEFRAG: it would withhold IP fragments for reassembly, and the
                # engine counts fragments as they came (as replay does)
                s.setsockopt(SOL_PACKET, PACKET_FANOUT,
                             (int(fanout_group) & 0xFFFF) | (FANOUT_MODES[fanout_mode] << 16))
        except OSError as e:
            self.close()
            raise CaptureError(iface, f"AF_PACKET ring setup failed: {e.strerror or e}") from None
        self.cursor = np.zeros(CUR_COLS, np.int64)
        self.cursor[CUR_POS] = BLOCK_FIRST_PKT
        self._stats = [0, 0, 0]
        n = max(1, int(batch_frames))
        self.cols = (np.empty(n, np.int64), np.empty(n, np.int32), np.empty(n, np.int32),
                     np.empty(n, np.int64), np.empty(n, np.int32))
        self.frames_read = 0

    @property
    def fd(self) -> int:
        return self.sock.fileno()

    @property
    def max_batch_bytes(self) -> int:
        """Most frame bytes one ``scan_ring`` call can hand out (one block)."""
        return self.block_size

    def poll(self, max_n: int | None = None) -> FrameBatch | None:
        """The next frames (a batch viewing the ring), or None if none are ready.

        Call ``release()`` once the batch is processed.
        """
        off, caplen, wirelen, ts, lt = self.cols
        m = off.shape[0] if max_n is None else min(int(max_n), off.shape[0])
        n = scan_ring(self.ring, self.cursor, self.block_size, self.block_nr, self.linktype, self.peek,
                      off, caplen, wirelen, ts, lt, 0, m)
        if n == 0:
            self.release()
            return None
        batch = FrameBatch(self.ring, off[:n], caplen[:n], wirelen[:n], ts[:n], lt[:n], self.frames_read)
        self.frames_read += n
        return batch

    def release(self) -> None:
        """Give a fully read block back to the kernel (no-op while frames are still due)."""
        release_block(self.ring, self.cursor, self.block_size, self.block_nr)

    def stats(self) -> RingStats:
        """Kernel counters since the socket opened (each read clears the kernel's, so they add up here)."""
        try:
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
        except OSError:
            raw = b"\0" * 12
        p, d, f = struct.unpack("3I", raw)
        self._stats[0] += p
        self._stats[1] += d
        self._stats[2] += f
        return RingStats(*self._stats)

    def counters(self) -> dict[str, int]:
        c = self.cursor
        return {"blocks": int(c[CUR_BLOCKS]), "blocks_timeout": int(c[CUR_BLOCKS_TMO]), "frames": int(c[CUR_FRAMES]),
                "frames_peeked": int(c[CUR_PEEKED]), "vlan_tags_restored": int(c[CUR_VLAN]),
                "outgoing_skipped": int(c[CUR_OUTGOING])}

    def close(self) -> None:
        ring = getattr(self, "ring", None)
        if ring is not None:
            self.ring = None
            del ring
        mm = getattr(self, "_mm", None)
        if mm is not None:
            try:
                mm.close()
            except BufferError:            # a batch still views the ring: the mapping goes with it
                pass
            self._mm = None
        sock = getattr(self, "sock", None)
        if sock is not None:
            sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

