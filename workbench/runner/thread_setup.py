"""How the engine thread (live mode) and the split capture process set themselves up on the
host: pinned to a CPU, a short timer slack, SCHED_FIFO with RT pacing when asked. Each
step says what the host granted, as a note for the run's summary."""

from __future__ import annotations

from ..capture.poll import rt_sleep_us, set_rt_pace_ns
from ..host import pin_thread, request_fifo, set_timer_slack_ns
from ..host.cpu import rt_pace_ns, rt_share


def pin_and_slack(who: str, cpu: int | None) -> list[str]:
    """Pin the calling thread to ``cpu`` (if given) and shorten its timer slack."""
    notes = []
    if cpu is not None:
        notes.append(f"{who}: {pin_thread(cpu)}")
    notes.append(f"{who}: {set_timer_slack_ns(1)}")
    return notes


def go_realtime(who: str, priority: int, params) -> list[str]:
    """SCHED_FIFO at ``priority`` for the calling thread; if granted, the loop's RT pacing in ``params``."""
    g = request_fifo(priority)
    notes = [f"{who}: {g}"]
    if g.granted:
        notes.append(f"{who}: {rt_pacing(params)}")
    return notes


def rt_pacing(params) -> str:
    """Set the polling loop's RT pacing (capture/poll.py P_RT_PACE_NS) for this host; say what it is."""
    sleep_us = rt_sleep_us(params)
    pace = rt_pace_ns(sleep_us, rt_share())
    set_rt_pace_ns(params, pace)
    if pace == 0:
        return "RT pacing off (no RT throttling: the loop may spin without end)"
    return (f"RT pacing: an empty poll sleeps {sleep_us} us after {pace / 1000:.0f} us of running, so "
            "RT throttling never stops the loop (it would for 50 ms every second)")
