"""The capture process of ``workbench live --split`` (spawned by live_sources.SplitLive).

It opens the live source, copies what it hands up into the SPSC ring in shared memory
(capture/split.py, one nopython call per time slice) until the engine process asks it to
stop, publishing the source's kernel counters in the ring between slices. It ignores
SIGINT and SIGTERM: the engine process decides when to stop, so no frame is lost.
"""

from __future__ import annotations

import signal
import time

from ..capture.ring import (READY_FAILED, READY_OK, close_producer, new_local, publish_source_stats, ring_views,
                            set_producer_ready, stop_requested)
from ..capture.split import split_afpacket, split_udp
from ..config import Settings
from ..host import SharedBuffer
from .from_settings import afpacket_source, capture_loop_params, udp_source
from .thread_setup import go_realtime, pin_and_slack

WHO = "capture process"


def main(path, nbytes, kind, iface, ports, settings_dict, cpu, rt, conn):
    """Source -> SPSC ring until asked to stop. ``conn`` gets {"host": notes} once the
    source is open and the copy loop loaded, or {"error": message}."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    shm = SharedBuffer.attach(path, nbytes)
    rctl, data = ring_views(shm.buf)
    settings = Settings(**settings_dict)
    notes = []
    try:
        notes += pin_and_slack(WHO, cpu)
        src = afpacket_source(iface, settings, ports) if kind == "afpacket" else udp_source(settings, ports)
    except Exception as e:  # noqa: BLE001 - reported to the engine process
        conn.send({"error": str(e)})
        set_producer_ready(rctl, READY_FAILED)
        return
    local = new_local()
    params = capture_loop_params(settings)
    try:
        def step(deadline):
            if kind == "afpacket":
                split_afpacket(src.ring, src.cursor, src.block_size, src.block_nr, src.linktype, src.peek, *src.cols,
                               rctl, data, local, params, deadline)
            else:
                split_udp(src.fds, src.port_of_fd, src.ctl, src.drops_by_socket, src.msgs, src.names, src.ctrl,
                          src.slots, src.slot_bytes, *src.cols, rctl, data, local, params, deadline)

        def publish():
            if kind == "afpacket":
                st = src.stats()
                publish_source_stats(rctl, st.packets, st.drops, st.freezes)
            else:
                publish_source_stats(rctl, drops=src.drops())

        step(0)                                            # compile / load before saying ready
        if rt:
            notes += go_realtime(WHO, settings.live_fifo_priority, params)
        conn.send({"host": notes})
        set_producer_ready(rctl, READY_OK)
        while not stop_requested(rctl):
            step(time.monotonic_ns() + settings.live_slice_ms * 1_000_000)
            publish()
    finally:
        if kind == "afpacket":
            publish()
        close_producer(rctl)
        src.close()
        conn.close()
