"""How a run is asked to stop, and what its ``runs`` status then says.

A signal must never cut a run in the middle of writing: a KeyboardInterrupt raised at an
arbitrary line (between two Parquet writes, inside a queue put) is what left rows out of
the store and files unreadable. So replay and live catch SIGINT, SIGTERM and SIGHUP
themselves (main thread only): the handler only sets an Event; the run's loop sees it at
the next batch (or pacing slice), stops taking input, and goes through the same ending as
at the end of its input: every row already processed is written to Parquet and handed to
the store (or the spool), and the run's status says how it ended. A second signal while
the run finishes its writes is noted and ignored (the finishing work is bounded by the
store's deadlines); SIGKILL cannot be caught: the store then tells by the missing
heartbeat (store/writer.py ``mark_lost_runs``).
"""

from __future__ import annotations

import signal
import threading

from ..engine.precompile import CompileStopped

# how a run ended: the ``status`` of its last ``runs`` row, summary.json and the result
DONE = "done"                        # its input ended (a capture read to its end, a live source closed, --duration)
CAPTURE_DAMAGED = "capture_damaged"  # the capture ended in damage; every packet before it was processed
INTERRUPTED = "interrupted"          # SIGINT (Ctrl-C), or a caller's stop request
TERMINATED = "terminated"            # SIGTERM or SIGHUP
FAILED = "failed"                    # an error stopped it; rows processed before it are written
# (the store's reader adds KILLED: the process died without writing an end, store/writer.py)

SIGNAL_STATUS = {signal.SIGINT: INTERRUPTED, signal.SIGTERM: TERMINATED, signal.SIGHUP: TERMINATED}


def exit_code(status: str, signal_name: str = "") -> int | None:
    """The exit code of a command whose run a stop cut short: 128 + the signal's number (the
    shell's convention: 130 SIGINT, 143 SIGTERM, 129 SIGHUP); None for a run that ended otherwise."""
    if status not in (INTERRUPTED, TERMINATED):
        return None
    sig = signal.Signals[signal_name] if signal_name in signal.Signals.__members__ else (
        signal.SIGINT if status == INTERRUPTED else signal.SIGTERM)
    return 128 + sig


class StopRun(BaseException):
    """Raised inside a run's loop (the pacer's sleep) or its warm-up when a stop was asked; caught
    by the run itself. A BaseException, as KeyboardInterrupt is, so that no ``except Exception``
    on the way (numba's compiler, a library) takes it for an error."""


class StopSignals:
    """While entered: SIGINT, SIGTERM and SIGHUP set ``event`` (when entered on the main thread;
    elsewhere signals are left alone and only ``event`` stops the run). ``status`` is how the run
    was asked to stop: INTERRUPTED, TERMINATED, or None when it was not."""

    def __init__(self, event: threading.Event | None = None):
        self.event = event if event is not None else threading.Event()
        self.signal: int | None = None
        self._old: dict = {}

    def _handle(self, signum, _frame) -> None:
        if self.signal is None:
            self.signal = signum
        self.event.set()

    def warm_up(self, fn):
        """``fn(stop)`` (a warm-up, which may compile for minutes on a cold cache), cut short by a
        signal: no row exists yet, so nothing is lost. ``stop`` is a callable the warm-up looks at
        between compile steps (engine/precompile.py): the handler never raises into numba's
        compiler, whose LLVM callbacks swallow an exception and leave the compiler broken.
        Returns fn's result, or None when a stop came first or cut it short (the run then ends
        with no rows)."""
        if self.event.is_set():
            return None
        try:
            return fn(self.event.is_set)
        except CompileStopped:
            return None

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNAL_STATUS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, h in self._old.items():
            signal.signal(sig, h)
        self._old = {}

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def status(self) -> str | None:
        if self.signal is not None:
            return SIGNAL_STATUS[self.signal]
        return INTERRUPTED if self.event.is_set() else None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""

    def sleep(self, seconds: float) -> None:
        """A pacer's sleep that ends the run's loop (StopRun) as soon as a stop is asked."""
        if self.event.wait(seconds):
            raise StopRun()
