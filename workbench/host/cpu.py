"""CPU placement and scheduling of the live engine thread.

``pin_thread`` wraps ``os.sched_setaffinity`` (Linux: pid 0 is the CALLING THREAD, and
threads started later inherit its mask, so pin the engine thread, then give the helper
threads the other CPUs). ``request_fifo`` asks for ``SCHED_FIFO``: a busy-polling
SCHED_FIFO thread owns its CPU, except for the share the kernel's RT throttling
(``/proc/sys/kernel/sched_rt_runtime_us`` per ``sched_rt_period_us``; since Linux 6.12
the "fair server", which lends it to ordinary tasks that are runnable there) keeps for
others: up to 50 ms a second by default. Isolate the engine's CPU to keep them away.
``set_timer_slack_ns`` shortens the thread's timer slack (default 50 us), which every
sleep adds to its wake-up: a paced sender needs it near zero.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from pathlib import Path

PR_SET_TIMERSLACK = 29           # <linux/prctl.h>
FIFO_PRIORITY_DEFAULT = 50       # SCHED_FIFO priority, [1, 99]; above kernel threads' default 50 is 51+
RT_RUNTIME_PATH = "/proc/sys/kernel/sched_rt_runtime_us"
RT_PERIOD_PATH = "/proc/sys/kernel/sched_rt_period_us"


@dataclass
class Grant:
    """What the host granted for one request, in words for the summary."""

    asked: str
    granted: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.asked}: {'yes' if self.granted else 'REFUSED'} ({self.detail})"


def allowed_cpus() -> set[int]:
    return set(os.sched_getaffinity(0))


def pin_thread(cpu: int, tid: int = 0) -> Grant:
    """Pin thread ``tid`` (0: the calling thread) to ``cpu``."""
    allowed = allowed_cpus() if tid == 0 else set(os.sched_getaffinity(tid))
    ncpu = os.cpu_count() or 1
    if not 0 <= cpu < ncpu:
        return Grant(f"pin to CPU {cpu}", False, f"this host has CPUs 0-{ncpu - 1}")
    try:
        os.sched_setaffinity(tid, {cpu})
    except OSError as e:
        return Grant(f"pin to CPU {cpu}", False, f"sched_setaffinity: {e.strerror} (allowed: {sorted(allowed)})")
    return Grant(f"pin to CPU {cpu}", True, f"was {sorted(allowed)}")


def pin_other_cpus(cpu: int, tid: int) -> Grant:
    """Keep thread ``tid`` off ``cpu`` (sink threads beside a pinned engine thread)."""
    others = set(range(os.cpu_count() or 1)) - {cpu}
    if not others:
        return Grant(f"keep thread {tid} off CPU {cpu}", False, "only one CPU")
    try:
        os.sched_setaffinity(tid, others)
    except OSError as e:
        return Grant(f"keep thread {tid} off CPU {cpu}", False, e.strerror or str(e))
    return Grant(f"keep thread {tid} off CPU {cpu}", True, f"on {sorted(others)}")


def _rt_limits() -> tuple[int, int] | None:
    """(sched_rt_runtime_us, sched_rt_period_us), or None when unreadable."""
    try:
        return int(Path(RT_RUNTIME_PATH).read_text()), int(Path(RT_PERIOD_PATH).read_text())
    except (OSError, ValueError):
        return None


def rt_throttle() -> str:
    limits = _rt_limits()
    if limits is None:
        return "RT throttling unknown"
    runtime, period = limits
    if runtime < 0:
        return "RT throttling off"
    return (f"RT throttling leaves {100 * (period - runtime) / period:.0f}% of each CPU to other tasks "
            f"(sched_rt_runtime_us; on 6.12+ kernels the fair server gives it to runnable ordinary tasks)")


def rt_share() -> float | None:
    """Share of each period RT tasks may run before the kernel throttles them (0.95 by
    default); None when throttling is off or unknown."""
    limits = _rt_limits()
    if limits is None:
        return None
    runtime, period = limits
    return runtime / period if 0 <= runtime < period else None


def rt_pace_ns(sleep_us: int, share: float | None, margin: float = 0.7) -> int:
    """Longest run (ns) a SCHED_FIFO busy-poller may spin between sleeps of ``sleep_us`` so
    that it never uses up its RT share (``rt_share``): throttling would then stop it for the
    rest of the period (50 ms a second by default), every second. ``share``: ``rt_share()``;
    None (nothing throttles): 0, no pacing.
    ``margin`` < 1 leaves room for sleeps that end early and work done between polls."""
    if share is None or share >= 1.0:
        return 0
    if share <= 0.0:
        return 1                                  # no RT budget at all: sleep on every empty poll
    return max(1, round(margin * sleep_us * 1000 * share / (1.0 - share)))


def request_fifo(priority: int = FIFO_PRIORITY_DEFAULT, tid: int = 0, reset_on_fork: bool = False) -> Grant:
    """Ask for ``SCHED_FIFO`` at ``priority`` for thread ``tid`` (0: the calling thread).
    ``reset_on_fork``: threads it starts later get the normal policy (SCHED_RESET_ON_FORK), so
    helpers it spawns do not inherit a priority meant for it alone."""
    asked = f"SCHED_FIFO priority {priority}"
    if not hasattr(os, "SCHED_FIFO"):
        return Grant(asked, False, "this platform has no SCHED_FIFO")
    policy = os.SCHED_FIFO | (getattr(os, "SCHED_RESET_ON_FORK", 0) if reset_on_fork else 0)
    try:
        os.sched_setscheduler(tid, policy, os.sched_param(priority))
    except PermissionError:
        return Grant(asked, False, "the host refused (EPERM): run as root, grant CAP_SYS_NICE, or raise "
                                   "RLIMIT_RTPRIO (ulimit -r); in a container also allow RT scheduling")
    except OSError as e:
        why = "no RT bandwidth for this cgroup (cpu.rt_runtime_us)" if e.errno == errno.EINVAL else e.strerror
        return Grant(asked, False, f"the host refused: {why}")
    return Grant(asked, True, rt_throttle())


def set_timer_slack_ns(ns: int = 1) -> Grant:
    """``prctl(PR_SET_TIMERSLACK, ns)`` for the calling thread."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        r = libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(ns), 0, 0, 0)
    except (OSError, AttributeError) as e:
        return Grant(f"timer slack {ns} ns", False, str(e))
    if r != 0:
        return Grant(f"timer slack {ns} ns", False, os.strerror(ctypes.get_errno()))
    return Grant(f"timer slack {ns} ns", True, "prctl")
