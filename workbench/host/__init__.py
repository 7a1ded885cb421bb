"""Host tuning for live mode: CPU pinning, real-time scheduling, huge pages.

Plain Python over the standard library (``os.sched_*``, ``mmap``) and a few libc calls
through ctypes. Every helper says what the host granted: a refused request is reported,
never silently ignored, and never fatal (a live run on an untuned host still runs).
"""

from .cpu import Grant, allowed_cpus, pin_thread, request_fifo, set_timer_slack_ns
from .memory import SharedBuffer, alloc_buffer, hugetlbfs_mount, huge_backed_bytes

__all__ = ["Grant", "allowed_cpus", "pin_thread", "request_fifo", "set_timer_slack_ns", "SharedBuffer",
           "alloc_buffer", "hugetlbfs_mount", "huge_backed_bytes"]
