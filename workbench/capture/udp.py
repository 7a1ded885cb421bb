"""Plain UDP sockets as a source, for hosts where AF_PACKET is not allowed.

One socket per configured port (IPv4, bound to ``bind_addr``), read in batches with
``recvmmsg`` called from nopython code (capture/kernel.py): one system call hands up to
``batch`` datagrams. Per socket: ``SO_RCVBUF`` from the config (``SO_RCVBUFFORCE`` as
root, which may exceed ``net.core.rmem_max``), ``SO_TIMESTAMPNS`` (the kernel's receive
timestamp, CLOCK_REALTIME, in a control message), ``IP_PKTINFO`` (the datagram's
destination address) and ``SO_RXQ_OVFL`` (the socket's running count of datagrams
dropped for want of buffer space, in a control message: the drop counter).

A socket gives payloads, not frames. So that the one engine walks the same bytes in
replay and live mode, every datagram lands in its slot ``HDR_SZ`` bytes in, and the
scan writes a minimal IPv4 + UDP header in front of it (addresses and ports from the
socket, lengths from the datagram, checksums 0, which IPv4 UDP allows): a
``LINKTYPE_RAW`` frame. What the engine sees of the network path is therefore what the
host's IP stack delivers: reassembled, checksum-verified datagrams to these ports; VLAN
tags, other ports, fragments it could not reassemble and non-UDP traffic never arrive.
"""

from __future__ import annotations

import os
import socket

import numpy as np
from numba import njit

from ..errors import CaptureError, ConfigError
from .frames import FrameBatch
from ..linktypes import IPV4_HDR_MIN, LINKTYPE_RAW, UDP_HDR_SZ
from .kernel import (MSG_DONTWAIT, MSG_TRUNC, SO_RCVBUF, SO_RCVBUFFORCE, SO_RXQ_OVFL, SO_TIMESTAMPNS, SOL_SOCKET,
                     sys_recvmmsg)

# --- <linux/in.h> ---------------------------------------------------------------------------------
IPPROTO_IP = 0
IP_PKTINFO = 8                    # control message: struct in_pktinfo {int ifindex; in_addr spec_dst, addr}

# --- layout of the receive buffers (x86-64 / LP64) --------------------------------------------
MMSG_SZ = 64                      # struct mmsghdr: struct msghdr (56) + unsigned msg_len, padded
M_NAME, M_NAMELEN, M_IOV, M_IOVLEN, M_CONTROL, M_CONTROLLEN, M_FLAGS, M_LEN = 0, 8, 16, 24, 32, 40, 48, 56
NAME_SZ = 16                      # struct sockaddr_in: family u16, port be16, addr 4, zero 8
CTRL_SZ = 128                     # control bytes per datagram: three messages of <= 32 bytes
CMSG_HDR_SZ = 16                  # struct cmsghdr: size_t len, int level, int type
HDR_SZ = IPV4_HDR_MIN + UDP_HDR_SZ  # bytes written in front of each payload
DEFAULT_TTL = 64
MAX_SOCKETS = 64                  # ports one source may bind

# --- ctl: counters of the source (int64[C_COLS]) ---------------------------------------------------
C_NEXT = 0                        # socket to try first next time (round robin)
C_DATAGRAMS = 1                   # datagrams received
C_TRUNCATED = 2                   # datagrams longer than a slot (caplen < wirelen)
C_CALLS = 3                       # recvmmsg calls that returned datagrams
C_EMPTY_CALLS = 4                 # recvmmsg calls that found none
C_NO_TS = 5                       # datagrams without a kernel timestamp (ts_ns = -1)
C_COLS = 6


@njit(cache=True, nogil=True, inline="always")
def _rd(b, i, n):
    v = np.int64(0)
    for j in range(n):
        v |= np.int64(b[i + j]) << (8 * j)
    return v


@njit(cache=True, nogil=True, inline="always")
def _wr(b, i, n, v):
    for j in range(n):
        b[i + j] = (v >> (8 * j)) & 0xFF


@njit(cache=True, nogil=True)
def recv_batch(fds, ports, ctl, drops, msgs, names, ctrl, slots, slot_sz, off, caplen, wirelen, ts_ns, lt, k0, max_n):
    """One ``recvmmsg`` on the next socket with datagrams; fills columns ``[k0, k0 + n)``.

    Returns ``n`` (0: no socket had a datagram). ``drops[j]`` gets socket j's kernel drop
    count (SO_RXQ_OVFL). Slot i of ``slots`` holds datagram i behind a written IPv4/UDP
    header; the columns describe those frames.
    """
    nf = fds.shape[0]
    vlen = min(max_n, msgs.shape[0] // MMSG_SZ)
    if vlen <= 0 or nf == 0:
        return 0
    cap = slot_sz - HDR_SZ
    for t in range(nf):
        j = (ctl[C_NEXT] + t) % nf
        for m in range(vlen):                       # the kernel overwrote these last time
            _wr(msgs, m * MMSG_SZ + M_NAMELEN, 4, NAME_SZ)
            _wr(msgs, m * MMSG_SZ + M_CONTROLLEN, 8, CTRL_SZ)
            _wr(msgs, m * MMSG_SZ + M_FLAGS, 4, 0)
        r = sys_recvmmsg(fds[j], msgs, vlen, MSG_DONTWAIT | MSG_TRUNC)
        if r <= 0:
            ctl[C_EMPTY_CALLS] += 1
            continue
        ctl[C_NEXT] = (j + 1) % nf
        ctl[C_CALLS] += 1
        for m in range(r):
            k = k0 + m
            mh = m * MMSG_SZ
            ln = _rd(msgs, mh + M_LEN, 4)
            cl = min(ln, cap)
            s = m * slot_sz
            # control messages: timestamp, destination address, drop counter
            ts = np.int64(-1)
            dst0 = dst1 = dst2 = dst3 = 0
            clen = min(_rd(msgs, mh + M_CONTROLLEN, 8), CTRL_SZ)
            c = m * CTRL_SZ
            p = 0
            while clen - p >= CMSG_HDR_SZ:
                ml = _rd(ctrl, c + p, 8)
                if ml < CMSG_HDR_SZ or ml > clen - p:
                    break
                lvl = _rd(ctrl, c + p + 8, 4)
                typ = _rd(ctrl, c + p + 12, 4)
                d = c + p + CMSG_HDR_SZ
                if lvl == SOL_SOCKET and typ == SO_TIMESTAMPNS and ml >= CMSG_HDR_SZ + 16:
                    ts = _rd(ctrl, d, 8) * 1_000_000_000 + _rd(ctrl, d + 8, 8)
                elif lvl == IPPROTO_IP and typ == IP_PKTINFO and ml >= CMSG_HDR_SZ + 12:
                    dst0, dst1, dst2, dst3 = ctrl[d + 8], ctrl[d + 9], ctrl[d + 10], ctrl[d + 11]
                elif lvl == SOL_SOCKET and typ == SO_RXQ_OVFL and ml >= CMSG_HDR_SZ + 4:
                    drops[j] = _rd(ctrl, d, 4)
                p += (ml + 7) & ~7
            # IPv4 header (RFC 791), no options, checksum 0
            total = min(HDR_SZ + ln, 0xFFFF)
            nm = m * NAME_SZ
            slots[s + 0] = 0x45
            slots[s + 1] = 0
            slots[s + 2] = (total >> 8) & 0xFF
            slots[s + 3] = total & 0xFF
            for q in range(4, 8):
                slots[s + q] = 0
            slots[s + 8] = DEFAULT_TTL
            slots[s + 9] = 17
            slots[s + 10] = 0
            slots[s + 11] = 0
            for q in range(4):
                slots[s + 12 + q] = names[nm + 4 + q]                 # source address (network order)
            slots[s + 16] = dst0
            slots[s + 17] = dst1
            slots[s + 18] = dst2
            slots[s + 19] = dst3
            # UDP header (RFC 768): ports, length, checksum 0 ("not computed")
            slots[s + 20] = names[nm + 2]
            slots[s + 21] = names[nm + 3]
            dport = ports[j]
            slots[s + 22] = (dport >> 8) & 0xFF
            slots[s + 23] = dport & 0xFF
            ulen = min(UDP_HDR_SZ + ln, 0xFFFF)
            slots[s + 24] = (ulen >> 8) & 0xFF
            slots[s + 25] = ulen & 0xFF
            slots[s + 26] = 0
            slots[s + 27] = 0
            off[k] = s
            caplen[k] = HDR_SZ + cl
            wirelen[k] = HDR_SZ + ln
            ts_ns[k] = ts
            lt[k] = LINKTYPE_RAW
            if cl < ln:
                ctl[C_TRUNCATED] += 1
            if ts < 0:
                ctl[C_NO_TS] += 1
        ctl[C_DATAGRAMS] += r
        return r
    return 0


class UdpSource:
    """UDP sockets on ``ports`` (module docstring), read ``batch`` datagrams per call.

    The Python face (``poll``) is for tests and notebooks; the live loop calls
    ``recv_batch`` from nopython code with this object's arrays.
    """

    def __init__(self, ports, *, bind_addr: str = "0.0.0.0", rcvbuf: int = 8 << 20, batch: int = 256,
                 slot_bytes: int = 2048):
        ports = sorted(set(int(p) for p in ports))
        if not ports:
            raise ConfigError("the UDP source needs ports to bind: --ports 8003 (or transaction_ports / shred_ports)")
        if len(ports) > MAX_SOCKETS:
            raise ConfigError(f"{len(ports)} ports: the UDP source binds at most {MAX_SOCKETS} (one socket each)")
        if slot_bytes < HDR_SZ + 64 or slot_bytes % 64:
            raise ConfigError(f"udp_slot_bytes={slot_bytes}: must be a multiple of 64, >= {HDR_SZ + 64}")
        if not 1 <= batch <= 1024:
            raise ConfigError(f"udp_batch={batch}: must be in [1, 1024]")
        self.ports = tuple(ports)
        self.linktype = LINKTYPE_RAW
        self.socks: list[socket.socket] = []
        try:
            for p in ports:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.socks.append(s)
                try:
                    s.setsockopt(SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
                except OSError:
                    s.setsockopt(SOL_SOCKET, SO_RCVBUF, rcvbuf)
                s.setsockopt(SOL_SOCKET, SO_TIMESTAMPNS, 1)
                s.setsockopt(SOL_SOCKET, SO_RXQ_OVFL, 1)
                s.setsockopt(IPPROTO_IP, IP_PKTINFO, 1)
                s.setblocking(False)
                s.bind((bind_addr, p))
        except OSError as e:
            self.close()
            raise CaptureError(f"udp:{bind_addr}", f"cannot bind UDP port {p}: {e.strerror or e}") from None
        self.rcvbuf = self.socks[0].getsockopt(SOL_SOCKET, SO_RCVBUF)
        self.batch, self.slot_bytes = int(batch), int(slot_bytes)
        n = self.batch
        self.slots = np.zeros(n * slot_bytes, np.uint8)
        self.names = np.zeros(n * NAME_SZ, np.uint8)
        self.ctrl = np.zeros(n * CTRL_SZ, np.uint8)
        self.iov = np.zeros(2 * n, np.uint64)                    # struct iovec {void *base; size_t len}
        self.iov[0::2] = self.slots.ctypes.data + np.arange(n, dtype=np.uint64) * np.uint64(slot_bytes) + HDR_SZ
        self.iov[1::2] = slot_bytes - HDR_SZ
        self.msgs = np.zeros(n * MMSG_SZ, np.uint8)
        words = self.msgs.view(np.uint64).reshape(n, MMSG_SZ // 8)
        words[:, M_NAME // 8] = self.names.ctypes.data + np.arange(n, dtype=np.uint64) * NAME_SZ
        words[:, M_IOV // 8] = self.iov.ctypes.data + np.arange(n, dtype=np.uint64) * 16
        words[:, M_IOVLEN // 8] = 1
        words[:, M_CONTROL // 8] = self.ctrl.ctypes.data + np.arange(n, dtype=np.uint64) * CTRL_SZ
        self.fds = np.array([s.fileno() for s in self.socks], np.int64)
        self.port_of_fd = np.array(self.ports, np.int64)
        self.ctl = np.zeros(C_COLS, np.int64)
        self.drops_by_socket = np.zeros(len(self.socks), np.int64)
        self.cols = (np.empty(n, np.int64), np.empty(n, np.int32), np.empty(n, np.int32),
                     np.empty(n, np.int64), np.empty(n, np.int32))
        self.frames_read = 0

    @property
    def max_batch_bytes(self) -> int:
        return self.batch * self.slot_bytes

    def poll(self, max_n: int | None = None) -> FrameBatch | None:
        """Datagrams ready now as a batch of frames (viewing ``slots`` until the next poll), or None."""
        off, caplen, wirelen, ts, lt = self.cols
        m = self.batch if max_n is None else min(int(max_n), self.batch)
        n = recv_batch(self.fds, self.port_of_fd, self.ctl, self.drops_by_socket, self.msgs, self.names, self.ctrl,
                       self.slots, self.slot_bytes, off, caplen, wirelen, ts, lt, 0, m)
        if n == 0:
            return None
        b = FrameBatch(self.slots, off[:n], caplen[:n], wirelen[:n], ts[:n], lt[:n], self.frames_read)
        self.frames_read += n
        return b

    def drops(self) -> int:
        """Datagrams the kernel dropped on these sockets (receive buffer full) so far.

        The larger of the last ``SO_RXQ_OVFL`` counts (which come with the next datagram
        after a drop) and the ``drops`` column of ``/proc/net/udp`` for these sockets.
        """
        return max(int(self.drops_by_socket.sum()), self._proc_drops())

    def _proc_drops(self) -> int:
        inodes = {str(os.fstat(s.fileno()).st_ino) for s in self.socks}
        total = 0
        try:
            with open("/proc/net/udp") as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 12 and parts[9] in inodes:
                        total += int(parts[12])
        except (OSError, StopIteration, ValueError):
            return 0
        return total

    def counters(self) -> dict[str, int]:
        c = self.ctl
        return {"datagrams": int(c[C_DATAGRAMS]), "truncated": int(c[C_TRUNCATED]), "recvmmsg_calls": int(c[C_CALLS]),
                "empty_calls": int(c[C_EMPTY_CALLS]), "no_timestamp": int(c[C_NO_TS])}

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.socks = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

