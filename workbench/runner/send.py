"""Send: a capture put on the wire (capture/sender.py), from a pinned thread with a short timer slack."""

from __future__ import annotations

from typing import Callable

from ..capture.sender import send_capture
from ..host import pin_thread, set_timer_slack_ns


def send(capture, iface: str, *, speed: float | None = None, pps: float | None = None, topspeed: bool = False,
         loop: int = 1, limit: int | None = None, cpu: int | None = None,
         progress: Callable[[int, int], None] | None = None):
    """Put ``capture`` on the wire out of ``iface`` (capture/sender.py); returns a SendResult."""
    if cpu is not None:
        pin_thread(cpu)
    set_timer_slack_ns(1)
    return send_capture(capture, iface, speed=speed, pps=pps, topspeed=topspeed, loop=loop, limit=limit,
                        progress=progress)
