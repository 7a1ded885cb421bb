"""Where the server's engine thread runs: pinned to a CPU of its own, SCHED_FIFO when asked.

``workbench serve`` runs the engine, the sinks, the store writer and the event loop (the pump
and every socket) in one process, and its WebSocket clients usually on the same host: all of
them compete for the engine's CPU. ``serve --cpu N`` pins the engine thread (found by its
native thread id) to CPU N and keeps every other thread of the process off it, re-checked
whenever the process has a thread it has not placed yet (the run starts its sink and store
threads from the engine thread, and they would inherit its CPU); ``--rt`` asks for SCHED_FIFO
at the live mode's priority (``live_fifo_priority``), with SCHED_RESET_ON_FORK so that those
threads do not inherit it. These are the flags and host calls of ``workbench live``
(host/cpu.py); what the host refuses is said, and the server runs on without it.
"""

from __future__ import annotations

import os

from ..errors import ConfigError
from ..host.cpu import pin_other_cpus, pin_thread, request_fifo

TASKS_DIR = "/proc/self/task"


def check_cpu(cpu: int | None, flag: str = "--cpu") -> None:
    """Refuse a CPU this process may not run on, before anything starts."""
    if cpu is None:
        return
    allowed = sorted(os.sched_getaffinity(0))
    if cpu not in allowed:
        raise ConfigError(f"{flag} {cpu}: this process may run on CPUs {allowed} only")
    if len(allowed) < 2:
        raise ConfigError(f"{flag} {cpu}: the process has one CPU only, so nothing could be kept off the engine's")


class EnginePlacement:
    """The engine thread's CPU and policy, and the other threads kept off that CPU."""

    def __init__(self, cpu: int | None, rt: bool, priority: int):
        self.cpu, self.rt, self.priority = cpu, rt, priority
        self.engine_tid: int | None = None
        self.notes: list[str] = []
        self._placed: set[int] = set()
        self._refused_others = False

    @property
    def asked(self) -> bool:
        return self.cpu is not None or self.rt

    def place(self, engine_tid: int) -> list[str]:
        """Pin and/or raise the engine thread; returns what the host granted, in words."""
        self.engine_tid = engine_tid
        if self.cpu is not None:
            self.notes.append(f"engine thread: {pin_thread(self.cpu, engine_tid)}")
        if self.rt:
            self.notes.append(f"engine thread: {request_fifo(self.priority, engine_tid, reset_on_fork=True)}")
        self.keep_others_off()
        return self.notes

    def keep_others_off(self) -> None:
        """Move every thread of the process but the engine's off its CPU (new threads only: a
        directory listing when nothing changed)."""
        if self.cpu is None or self.engine_tid is None:
            return
        try:
            tids = {int(t) for t in os.listdir(TASKS_DIR)}
        except OSError:
            return
        for tid in tids - self._placed - {self.engine_tid}:
            g = pin_other_cpus(self.cpu, tid)
            if not g.granted and not self._refused_others and os.path.exists(f"{TASKS_DIR}/{tid}"):
                self._refused_others = True
                self.notes.append(f"other threads: {g}")
        self._placed = tids
