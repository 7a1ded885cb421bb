"""The live sources as the runner drives them: AF_PACKET, UDP, and either in a capture
process of its own (``--split``) feeding an SPSC ring.

Each adapter hands the engine's live loop (engine/live.py) its source's arrays, reports
the source's kernel counters, and closes it. ``open_live_source`` picks one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import asdict, replace

import numpy as np

from ..linktypes import LINKTYPE_ETHERNET, LINKTYPE_RAW
from ..capture.ring import (READY_OK, READY_WAITING, init_ring, new_local, producer_ready, request_stop, ring_bytes,
                            source_stats)
from ..config import Settings
from ..engine.live import drain_queued, live_afpacket, live_spsc, live_udp
from ..engine.precompile import is_cached
from ..errors import CaptureError
from ..host import SharedBuffer
from .from_settings import afpacket_source, udp_source
from .split_child import main as capture_process_main

SPLIT_READY_TIMEOUT_S = 300.0         # the capture process may compile its loop on a cold numba cache
SPLIT_CLOSE_TIMEOUT_S = 10.0          # after a stop request, wait this long for the capture process to close
STAND_IN_ADDR = "127.0.0.1"           # the UDP warm-up stand-in's socket: loopback only


class LiveSource:
    """One live source as the runner drives it: a nopython loop call, counters, close."""

    kind = ""
    buf: np.ndarray
    cols: tuple
    max_batch_bytes: int
    linktype: int

    def loop_call(self, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params) -> tuple:
        """(the jitted loop, its arguments) of this source."""
        raise NotImplementedError

    def loop(self, *args, resync=None) -> int:
        """The loop; ``resync`` (engine/market/resync.py) when pool states come from the chain (--accounts)."""
        fn, fn_args = self.loop_call(*args)
        return fn(*fn_args, resync)         # None passed, not omitted: one signature, which is_cached checks

    def loop_cached(self, *args, resync=None) -> bool:
        """True when numba's cache holds the loop for these arguments' types (no compile ahead)."""
        fn, fn_args = self.loop_call(*args)
        return is_cached(fn, (*fn_args, resync))

    def drain(self, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params) -> bool:
        return drain_queued(self.buf, *self.cols, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params)

    def stand_in(self) -> "LiveSource | None":
        """A source of the same array types that captures nothing, for the loop's warm-up when
        opening this source is what starts capture (it is then closed during the warm-up and
        ``reopen``ed after it); None when the source has no such stand-in (it captures while
        the loop warms up, and the packets it queues meanwhile are scored late)."""
        return None

    def reopen(self) -> "LiveSource":
        raise NotImplementedError

    def request_stop(self) -> None:
        """Before the engine's loop is asked to stop (a source in another process is asked first)."""

    def kernel(self) -> dict:
        return {}

    def counters(self) -> dict:
        return {}

    def close(self) -> None:
        pass


class AfPacketLive(LiveSource):
    kind = "afpacket"

    def __init__(self, iface: str, settings: Settings, ports):
        self.src = afpacket_source(iface, settings, ports)
        self.buf, self.cols = self.src.ring, self.src.cols
        self.max_batch_bytes, self.linktype = self.src.max_batch_bytes, self.src.linktype
        self._kernel = {"packets": 0, "drops": 0, "freezes": 0}

    def loop_call(self, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params):
        s = self.src
        return live_afpacket, (s.ring, s.cursor, s.block_size, s.block_nr, s.linktype, s.peek, *s.cols,
                               state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params)

    def kernel(self):
        st = self.src.stats()
        self._kernel = {"packets": st.packets, "drops": st.drops, "freezes": st.freezes}
        return self._kernel

    def counters(self):
        return {**self.src.counters(), "peek": bool(self.src.peek), "filter_ports": len(self.src.ports)}

    def close(self):
        self.src.close()


class UdpLive(LiveSource):
    kind = "udp"

    def __init__(self, settings: Settings, ports):
        self.settings, self.ports = settings, tuple(ports)
        self.src = udp_source(settings, ports)
        self.buf, self.cols = self.src.slots, self.src.cols
        self.max_batch_bytes, self.linktype = self.src.max_batch_bytes, self.src.linktype

    def loop_call(self, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params):
        s = self.src
        return live_udp, (s.fds, s.port_of_fd, s.ctl, s.drops_by_socket, s.msgs, s.names, s.ctrl, s.slots,
                          s.slot_bytes, *s.cols, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params)

    def stand_in(self):
        """One loopback socket on a port the kernel picks (no one sends there): binding the real
        ports is what starts capture, so they are bound only once the loop is warm."""
        return UdpLive(replace(self.settings, udp_bind_addr=STAND_IN_ADDR), (0,))

    def reopen(self):
        return UdpLive(self.settings, self.ports)

    def kernel(self):
        return {"drops": self.src.drops(), "rcvbuf_bytes": self.src.rcvbuf}

    def counters(self):
        return self.src.counters()

    def close(self):
        self.src.close()


class SplitLive(LiveSource):
    """``--split``: a capture process fills an SPSC ring in shared memory; this process reads it."""

    def __init__(self, kind: str, iface: str, settings: Settings, ports, capture_cpu: int | None, rt: bool,
                 hugepages: bool):
        self.kind = f"{kind}, split"
        slots, slot_sz = settings.split_ring_slots, settings.split_slot_bytes
        nbytes = ring_bytes(slots, slot_sz)
        self.shm = SharedBuffer.create(nbytes, hugepages=hugepages, prefix="workbench-ring")
        self.how = self.shm.how
        self.rctl, self.data = init_ring(self.shm.buf, slots, slot_sz)
        self.local = new_local()
        n = settings.live_batch_frames
        self.cols = (np.empty(n, np.int64), np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, np.int64),
                     np.empty(n, np.int32))
        self.index = np.empty(n, np.int64)
        self.buf = self.data
        self.max_batch_bytes = n * slot_sz
        self.linktype = LINKTYPE_RAW if kind == "udp" else LINKTYPE_ETHERNET
        ctx = mp.get_context("spawn")
        self.conn, child_conn = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=capture_process_main, name="workbench-capture", daemon=True,
                                args=(self.shm.path, nbytes, kind, iface, tuple(ports), asdict(settings), capture_cpu,
                                      rt, child_conn))
        self.proc.start()
        child_conn.close()
        self.child_notes: list[str] = []
        deadline = time.monotonic() + SPLIT_READY_TIMEOUT_S
        while producer_ready(self.rctl) == READY_WAITING:
            if not self.proc.is_alive() or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if self.conn.poll(0.5):
            msg = self.conn.recv()
            if isinstance(msg, dict) and "error" in msg:
                self.close()
                raise CaptureError(iface or "udp", msg["error"])
            self.child_notes = list(msg.get("host", [])) if isinstance(msg, dict) else []
        if producer_ready(self.rctl) != READY_OK:
            self.close()
            raise CaptureError(iface or "udp", "the capture process did not start (see its stderr)")

    def loop_call(self, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params):
        return live_spsc, (self.rctl, self.data, self.local, *self.cols, self.index, state, ds, out, mk, model, st0,
                           st1, lat_counts, lat_stats, ex, params)

    def request_stop(self):
        """The capture process closes the ring; the engine's loop drains it, then returns."""
        request_stop(self.rctl)

    def kernel(self):
        return source_stats(self.rctl)

    def counters(self):
        return {"ring": self.how}

    def close(self):
        if getattr(self, "proc", None) is not None:
            self.request_stop()
            self.proc.join(SPLIT_CLOSE_TIMEOUT_S)
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(2)
            self.proc = None
        self.shm.close()


def open_live_source(source: str, iface: str | None, settings: Settings, ports, *, split: bool, cpu: int | None,
                     capture_cpu: int | None, rt: bool, hugepages: bool) -> tuple[LiveSource, list[str]]:
    """The live source asked for, open (a wrong interface or a refused socket fails here,
    before any output is made), and the host notes of a capture process."""
    if split:
        if capture_cpu is None and cpu is not None and (os.cpu_count() or 1) > 1:
            capture_cpu = (cpu + 1) % (os.cpu_count() or 1)
        src = SplitLive(source, iface, settings, ports, capture_cpu, rt, hugepages)
        return src, [*src.child_notes, f"split ring: {src.how}"]
    if source == "afpacket":
        return AfPacketLive(iface, settings, ports), []
    return UdpLive(settings, ports), []

