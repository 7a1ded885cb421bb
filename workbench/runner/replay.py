"""Replay: the engine over a capture file, as fast as the machine allows or paced like the wire.

Batches from the memory-mapped reader go through ``process_batch``; rows become Arrow
tables once per batch and go to Parquet (and to the ClickHouse store, when one is given).
A damaged capture is processed up to the damage, and the error is kept in the result and
summary.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Callable

import pyarrow as pa

from ..capture import open_capture
from ..capture.pace import REPLAY_QUANTUM_NS, Pacer, check_speed
from ..config import Settings
from ..engine.state import C_PACKETS, C_TRANSACTIONS, C_TS_FIRST, C_TS_LAST, EngineState
from ..errors import CaptureError
from ..wire.status import counts_by_name
from .engine_run import EngineRun, file_sha256
from .results import ReplayResult, program_counts, shred_summary
from .stop import CAPTURE_DAMAGED, DONE, FAILED, StopRun, StopSignals


READ_AHEAD_BATCHES = 2      # batches the reader thread may scan ahead of the engine
_END = object()             # the reader thread's last item: the capture ended cleanly


class _ReadAhead:
    """A reader's batches, scanned on a thread of their own ahead of the engine.

    The reader's scan (a jitted walk that releases the GIL) and the page faults of the
    mapped file then run beside the engine instead of before each batch on its thread. The
    batches and their order are the reader's own. The first batch is read at construction
    on the caller's thread (that read loads the compiled scan from the cache, before the
    run's clock starts); a capture error is raised where the loop would have met it, after
    every batch before it. ``bytes_read`` is the reader's position after the batch last
    returned (not after those scanned ahead), for progress. ``close()`` stops the thread.
    """

    def __init__(self, reader, depth: int = READ_AHEAD_BATCHES):
        # pages of the batches the engine may still hold are not released under it (capture/pcap.py)
        reader.release_lag = depth + 1
        self._reader = reader
        self._it = iter(reader)
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._first: list = []
        self._thread: threading.Thread | None = None
        self.bytes_read = 0
        try:
            self._first.append((next(self._it), reader.bytes_read))
        except StopIteration:
            self._first.append((_END, reader.bytes_read))
            return
        except Exception as e:  # noqa: BLE001 - raised at the consumer's first next
            self._first.append((e, reader.bytes_read))
            return
        self._thread = threading.Thread(target=self._scan, name="capture-read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _scan(self) -> None:
        while True:
            try:
                item = next(self._it)
            except StopIteration:
                item = _END
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
                item = e
            if not self._put((item, self._reader.bytes_read)) or item is _END or isinstance(item, BaseException):
                return

    def __iter__(self):
        return self

    def __next__(self):
        item, self.bytes_read = self._first.pop() if self._first else self._q.get()
        if item is _END:
            self._first.append((_END, self.bytes_read))     # every later next ends too
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def replay(capture, out_dir, settings: Settings | None = None,
           progress: Callable[[int, int], None] | None = None,
           sink: Callable[[str, pa.Table], None] | None = None,
           state: EngineState | None = None, speed: float | None = None, ds=None,
           db: str | None = None, stop: threading.Event | None = None, opportunity_feed=None) -> ReplayResult:
    """Replay ``capture``; write Parquet under ``out_dir``.

    ``speed`` None runs as fast as the machine allows; 1.0 releases frames as they were
    captured (event-time pacing), 2.0 twice as fast. ``sink(table_name, arrow_table)``
    receives every table too, ``opportunity_feed`` each call's opportunity records (runner/
    engine_run.py EngineRun). ``db`` (a DSN) also writes the run to ClickHouse: its ``runs``
    row, every ``tx_features`` batch and the latency histograms; a store that cannot be
    reached gets the rows spooled to disk, never dropped.

    Stops early when ``stop`` is set, on SIGINT / SIGTERM / SIGHUP (called from the main
    thread), or when ``progress`` raises KeyboardInterrupt: every row processed until then is
    written as at the end of the capture, and ``result.status`` (and the store's ``runs`` row)
    says 'interrupted' or 'terminated' (runner/stop.py). An error ends the run as 'failed',
    with the rows processed before it written, and is raised.
    """
    settings = (settings or Settings()).validate()
    if speed is not None:      # 0 is refused like any other bad factor, not taken for "unpaced"
        speed = check_speed(speed, "leave --speed unset to run unpaced")
    capture = Path(capture)
    reader = open_capture(capture, settings.batch_frames)
    total = capture.stat().st_size
    with StopSignals(stop) as stopper:        # from here on a signal stops the run between batches
        # a backfilled-blocks file: its rows also say where each transaction landed (capture/block_file.py)
        landed = reader.landed_columns() if hasattr(reader, "landed_columns") else None
        run = EngineRun(out_dir, settings, state=state, ds=ds, sink=sink, db=db, source="replay",
                        capture_path=str(capture.resolve()), capture_sha256=file_sha256(capture) if db else "",
                        row_columns=landed, gather_store=speed is None, opportunity_feed=opportunity_feed)
        pacer = Pacer(speed, sleep=stopper.sleep, quantum_ns=REPLAY_QUANTUM_NS) if speed is not None else None
        capture_error = None
        try:
            warmup_s = stopper.warm_up(lambda stop: run.warm_up(reader.buf, stop=stop,
                                                                reader=getattr(reader, "format", "")))
            warm = warmup_s is not None                # None: a stop came during the warm-up; no packet is read
            warmup_s = warmup_s or 0.0
            # the first batch is read before the clock: that read loads the reader's compiled scan from
            # the cache, as the warm-up loads the engine's
            batches = _ReadAhead(reader) if warm else iter(reader)
            t0 = time.perf_counter()
            try:
                while not stopper.requested:
                    try:
                        batch = next(batches)
                    except StopIteration:
                        break
                    except CaptureError as e:          # damaged file: everything before it is kept
                        capture_error = str(e)
                        break
                    run.feed(batch, pacer)
                    if progress is not None:
                        progress(getattr(batches, "bytes_read", reader.bytes_read), total)
            except StopRun:                            # the pacer saw the stop while waiting
                pass
            except KeyboardInterrupt:                  # a caller's progress callback asks to stop
                stopper.event.set()
            finally:
                if warm:
                    batches.close()                    # the reader thread stops (a stop may come mid-capture)
            if warm:
                run.drain(reader.buf)                  # transactions of entries already complete
            run.close_sinks()
        except BaseException as e:
            run.abort(FAILED, e)
            if run.parquet is not None and isinstance(e, Exception):
                e.add_note(f"every row processed before the error is in the Parquet files under {run.out}")
            raise
        wall = time.perf_counter() - t0
        state = run.state
        packets = int(state.counters[C_PACKETS])
        engine_s = run.engine_s
        result = ReplayResult(
            run_id=run.run_id, capture=str(capture), out_dir=str(run.out), packets=packets,
            transactions=int(state.counters[C_TRANSACTIONS]),
            by_status=counts_by_name(state.status_counts), by_program=program_counts(state),
            wall_s=wall, engine_s=engine_s, engine_cpu_s=run.engine_cpu_s, warmup_s=warmup_s,
            packets_per_s=packets / wall if wall else 0.0,
            engine_packets_per_s=packets / engine_s if engine_s else 0.0,
            packet_ns=run.packet_ns(),
            first_ts_ns=int(state.counters[C_TS_FIRST]), last_ts_ns=int(state.counters[C_TS_LAST]),
            shreds=shred_summary(run.ds), capture_error=capture_error,
            pace_max_lag_ns=pacer.max_lag_ns if pacer else None, outputs=run.outputs(),
            stop_signal=stopper.signal_name,
        )
        result.market, result.opportunities, result.detect_ns, result.ml_inference_ns = run.market_summary()
        status = stopper.status or (DONE if capture_error is None else CAPTURE_DAMAGED)
        run.finish(result, {"packets": result.packets, "transactions": result.transactions,
                            **{f"status_{k}": v for k, v in result.by_status.items()},
                            **{f"shreds_{k}": v for k, v in result.shreds.items()}}, status=status)
    return result
