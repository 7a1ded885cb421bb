"""A run of the engine whose every call's rows are kept (copies), in place of the sink thread."""

from __future__ import annotations

from workbench.capture import open_capture
from workbench.config import Settings
from workbench.runner.engine_run import EngineRun


class KeptRows:
    """Stands in for the SinkThread while the engine runs: keeps copies of every call's rows,
    ``(tx, prog_ids, status, first_index, ts_ns, swaps, opps)``, swaps and opps None when empty."""

    def __init__(self):
        self.calls = []

    def put(self, tx, prog_ids, status, first, ts, swaps=None, opps=None, release=None):
        self.calls.append((tx.copy(), prog_ids.copy(), status.copy(), first, ts.copy(),
                           None if swaps is None or not swaps.shape[0] else swaps.copy(),
                           None if opps is None or not opps.shape[0] else opps.copy()))
        if release is not None:
            release()

    def close(self):
        pass


def engine_calls(out, capture, batch_frames: int) -> tuple[EngineRun, list]:
    """``capture`` replayed with its market (``<capture>.market``) in batches of ``batch_frames``:
    the run and every call's rows (KeptRows)."""
    settings = Settings(progress=False, batch_frames=batch_frames, market=str(capture) + ".market").validate()
    run = EngineRun(out, settings, capture_path=str(capture))
    run.sinks.close()
    run.sinks = rows = KeptRows()
    reader = open_capture(capture, settings.batch_frames)
    run.warm_up(reader.buf)
    for batch in reader:
        run.feed(batch)
    run.drain(reader.buf)
    return run, rows.calls
