"""Put a capture on the wire, like tcpreplay: ``workbench send CAPTURE --iface IF``.

Frames go out of an AF_PACKET socket bound to the interface (``PACKET_QDISC_BYPASS``:
straight to the driver), in batches of one ``sendmmsg`` call each: the ``struct
mmsghdr`` / ``struct iovec`` arrays are built once per capture batch with numpy and point
INTO the memory-mapped capture, so no frame is copied in user space.

Pacing: every frame gets a release time computed from ONE fixed start instant
(``Pacer``, pace.py), never by summing gaps (summed sleeps drift):

- ``speed=X``: the capture's own gaps divided by X;
- ``pps=N``: frame k of the whole send (loops included) at ``k / N`` seconds;
- ``topspeed``: no waiting at all.

With ``loop=N`` the capture is sent N times; in ``speed`` mode each pass starts one mean
gap after the previous pass's last frame. Each wake-up sends every frame that is due in
one call; its lateness (send instant - release time, per frame) is the pacing error.
Sleeps longer than ``SPIN_BELOW_NS`` go to the kernel (with the thread's timer slack set
to 1 ns); shorter waits spin.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import CaptureError, ConfigError
from .afpacket import ARPHRD_ETHER, ARPHRD_LOOPBACK, PACKET_QDISC_BYPASS, SOL_PACKET, if_hatype, if_index
from .frames import TS_MISSING
from ..linktypes import LINKTYPE_ETHERNET
from .kernel import SO_SNDBUFFORCE
from .open import open_capture
from .pace import Pacer, check_pps, check_speed

SENDMMSG_MAX = 1024               # UIO_MAXIOV: messages one sendmmsg call takes
MAX_SEND_FRAMES = 100_000_000     # frames one send paces: an int64 lateness each is kept for the summary
SPIN_BELOW_NS = 200_000           # waits shorter than this spin instead of sleeping
SLEEP_EARLY_NS = 60_000           # wake this much before the release time, then spin
SNDBUF_BYTES = 8 << 20            # socket send buffer (SO_SNDBUFFORCE as root)
RETRY_SLEEP_S = 20e-6             # pause after ENOBUFS / EAGAIN (the device queue is full)
MAX_RETRIES = 100_000             # ENOBUFS retries before giving up on a frame

# struct mmsghdr (x86-64 / LP64): struct msghdr (56 bytes) + unsigned int msg_len, padded to 64
MMSGHDR = np.dtype([("name", np.uint64), ("namelen", np.uint32), ("_pad0", np.uint32), ("iov", np.uint64),
                    ("iovlen", np.uint64), ("control", np.uint64), ("controllen", np.uint64),
                    ("flags", np.int32), ("_pad1", np.uint32), ("len", np.uint32), ("_pad2", np.uint32)])
IOVEC = np.dtype([("base", np.uint64), ("len", np.uint64)])
assert MMSGHDR.itemsize == 64 and IOVEC.itemsize == 16

_libc = ctypes.CDLL(None, use_errno=True)
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int


@dataclass
class SendResult:
    capture: str
    iface: str
    mode: str                     # "speed 1.0", "pps 50000", "topspeed"
    loops: int
    packets: int                  # frames the kernel accepted
    bytes: int
    send_errors: int              # frames the kernel refused (too long, too short for the device, ...)
    wall_s: float                 # first send to last send
    pps: float                    # achieved packets per second
    target_pps: float | None      # what the pacing asked for (None: topspeed)
    pace_error_ns: dict           # lateness of each frame vs its release time: p50, p99, p99.9, max
    syscalls: int                 # sendmmsg calls

    def to_dict(self) -> dict:
        return asdict(self)


def _spin_sleep(seconds: float) -> None:
    """Sleep for long waits, spin for short ones (Pacer's ``sleep``)."""
    ns = int(seconds * 1e9)
    if ns <= 0:
        return
    if ns > SPIN_BELOW_NS:
        time.sleep((ns - SLEEP_EARLY_NS) / 1e9)
        return
    end = time.monotonic_ns() + ns
    while time.monotonic_ns() < end:
        pass


class _Msgs:
    """sendmmsg arrays for one capture batch: iovec per frame, mmsghdr per frame."""

    def __init__(self, buf: np.ndarray, off: np.ndarray, caplen: np.ndarray):
        n = off.shape[0]
        self.iov = np.zeros(n, IOVEC)
        self.iov["base"] = np.uint64(buf.ctypes.data) + off.astype(np.uint64)
        self.iov["len"] = caplen.astype(np.uint64)
        self.msgs = np.zeros(n, MMSGHDR)
        self.msgs["iov"] = np.uint64(self.iov.ctypes.data) + np.arange(n, dtype=np.uint64) * np.uint64(IOVEC.itemsize)
        self.msgs["iovlen"] = 1
        self.base = self.msgs.ctypes.data
        self.buf = buf            # keep the frames' memory alive


class Sender:
    """An AF_PACKET socket that sends whole Ethernet frames out of ``iface``."""

    def __init__(self, iface: str, qdisc_bypass: bool = True):
        self.iface = iface
        if_index(iface)
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)    # protocol 0: receive nothing
        except PermissionError:
            raise CaptureError(iface, "sending raw frames needs root or CAP_NET_RAW") from None
        try:
            self.sock.bind((iface, 0))
            if qdisc_bypass:
                self.sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, SNDBUF_BYTES)
            except OSError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF_BYTES)
        except OSError as e:
            self.sock.close()
            raise CaptureError(iface, f"cannot send on {iface}: {e.strerror or e}") from None
        self.fd = self.sock.fileno()
        self.syscalls = 0
        self.errors = 0

    def send(self, msgs: _Msgs, lo: int, hi: int) -> int:
        """Send frames ``[lo, hi)``; returns how many the kernel accepted (refused ones are counted)."""
        sent = 0
        retries = 0
        while lo < hi:
            k = min(hi - lo, SENDMMSG_MAX)
            r = _sendmmsg(self.fd, msgs.base + lo * MMSGHDR.itemsize, k, 0)
            self.syscalls += 1
            if r > 0:
                lo += r
                sent += r
                retries = 0
                continue
            e = ctypes.get_errno()
            if e in (errno.ENOBUFS, errno.EAGAIN, errno.EINTR) and retries < MAX_RETRIES:
                retries += 1
                time.sleep(RETRY_SLEEP_S)
                continue
            if e in (errno.ENXIO, errno.ENETDOWN, errno.ENODEV):
                raise CaptureError(self.iface, f"interface went away: {os.strerror(e)}")
            self.errors += 1          # this frame is refused (EMSGSIZE, EINVAL): skip it
            lo += 1
            retries = 0
        return sent

    def close(self) -> None:
        self.sock.close()


def send_capture(capture, iface: str, *, speed: float | None = None, pps: float | None = None,
                 topspeed: bool = False, loop: int = 1, limit: int | None = None, batch_frames: int = 16384,
                 progress=None) -> SendResult:
    """Send ``capture`` out of ``iface`` (module docstring). Exactly one of speed / pps / topspeed;
    ``limit`` stops after that many frames (loops included)."""
    modes = sum(x is not None and x is not False for x in (speed, pps, topspeed or None))
    if modes > 1:
        raise ConfigError("choose one of --speed, --pps and --topspeed")
    if modes == 0:
        speed = 1.0
    if speed is not None:
        speed = check_speed(speed, "--topspeed sends without pacing")
    if pps is not None:
        pps = check_pps(pps)
    if loop < 1:
        raise ConfigError(f"loop={loop}: must be >= 1")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit={limit}: must be >= 1")
    path = Path(capture)
    reader = open_capture(path, batch_frames)
    sender = Sender(iface)
    try:
        if if_hatype(iface) not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
            raise CaptureError(iface, "workbench send writes Ethernet frames: the interface is not Ethernet")
        # one pass to learn the frame count and the span (the memmap makes this cheap)
        n_frames, ts_first, ts_last = 0, None, None
        for b in reader:
            if b.n and np.any(b.linktype != LINKTYPE_ETHERNET):
                bad = int(b.linktype[np.argmax(b.linktype != LINKTYPE_ETHERNET)])
                raise CaptureError(path, f"link type {bad}: workbench send replays Ethernet captures only")
            ts = b.ts_ns[b.ts_ns != TS_MISSING]
            if ts.size:
                ts_first = int(ts[0]) if ts_first is None else ts_first
                ts_last = int(ts[-1])
            n_frames += b.n
        total = n_frames * loop if limit is None else min(n_frames * loop, int(limit))
        if total > MAX_SEND_FRAMES:
            raise ConfigError(f"--loop {loop} x {n_frames:,} frames = {total:,} frames: more than the "
                              f"{MAX_SEND_FRAMES:,} one send times (each frame's lateness is kept); "
                              f"lower --loop or set --limit")
        lateness = np.zeros(total, np.int64)
        span = (ts_last - ts_first) if ts_first is not None else 0
        pass_ns = span + (span // max(1, n_frames - 1) if n_frames > 1 else 0)
        pacer = None if topspeed else Pacer(float(speed) if speed is not None else 1.0, sleep=_spin_sleep)
        sent = nbytes = 0
        k = 0                                        # frame index over the whole send
        t_first = t_last = None
        for lp in range(loop):
            if k >= total:
                break
            for b in iter(reader):
                if b.n == 0:
                    continue
                if k + b.n > total:                  # --limit: the last batch is cut short
                    if k >= total:
                        break
                    b = b._replace(off=b.off[:total - k], caplen=b.caplen[:total - k], wirelen=b.wirelen[:total - k],
                                   ts_ns=b.ts_ns[:total - k], linktype=b.linktype[:total - k])
                msgs = _Msgs(b.buf, b.off, b.caplen)
                if pps is not None:
                    due = ((k + np.arange(b.n, dtype=np.int64)) * (1e9 / pps)).astype(np.int64)
                elif speed is not None:
                    ts = np.where(b.ts_ns == TS_MISSING, ts_first if ts_first is not None else 0, b.ts_ns)
                    due = ts.astype(np.int64) + lp * pass_ns
                else:
                    due = None
                start = 0
                while start < b.n:
                    if pacer is None:
                        end = min(b.n, start + SENDMMSG_MAX)
                        now = time.monotonic_ns()
                    else:
                        end = min(pacer.wait_due(due, start), start + SENDMMSG_MAX)
                        now = time.monotonic_ns()
                        rel = pacer.wall0 + ((due[start:end] - pacer.ts0) / pacer.speed).astype(np.int64)
                        lateness[k + start:k + end] = now - rel
                    if t_first is None:
                        t_first = now
                    sent += sender.send(msgs, start, end)
                    nbytes += int(b.caplen[start:end].sum())
                    start = end
                t_last = time.monotonic_ns()
                k += b.n
                if progress is not None:
                    progress(k, total)
    finally:
        sender.close()
    wall = ((t_last or 0) - (t_first or 0)) / 1e9
    lat = lateness[:k] if pacer is not None else np.zeros(0, np.int64)
    pace = ({"p50": int(np.percentile(lat, 50)), "p99": int(np.percentile(lat, 99)),
             "p99.9": int(np.percentile(lat, 99.9)), "max": int(lat.max())} if lat.size else {})
    if pps is not None:
        mode, target = f"pps {pps:g}", float(pps)
    elif topspeed:
        mode, target = "topspeed", None
    else:
        mode = f"speed {speed:g}"
        target = (n_frames - 1) / (span / 1e9) * speed if span > 0 and n_frames > 1 else None
    return SendResult(capture=str(path), iface=iface, mode=mode, loops=loop, packets=sent, bytes=nbytes,
                      send_errors=sender.errors, wall_s=wall, pps=(sent - 1) / wall if wall > 0 and sent > 1 else 0.0,
                      target_pps=target, pace_error_ns=pace, syscalls=sender.syscalls)

