"""What the live loop (engine/live.py) and Python exchange, and the Python side of it.

The loop runs in one nopython call on the engine thread; Python talks to it through
``ex`` (int64[N_E]), reads the rows it staged in two Stages, and reads its latency
histograms. The words of those arrays are indexed here and in the loop only: the runner
calls the functions below (request a stop, take and free a Stage, read the counters).

Stage hand-over: the loop sets ``ex[E_FULL0 + k] = 1`` (store-release) when Stage k is
full or has held rows for a slice; Python hands its rows on (``staged_rows``), then
frees it (``free_stage``: its counts zeroed, then ``ex[E_FULL0 + k] = 0``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..metrics.hist import new_histograms
from .features import PROGRAMS_PER_TX_MAX, TX_DTYPE
from .market.transaction import OPPS_PER_TX_MAX, SWAPS_PER_TX_MAX
from .opps import OPP_DTYPE, SWAP_DTYPE

# Stage.ctl words (one Stage's rows)
K_NTX = 0           # staged transaction rows
K_NPROG = 1         # staged program-id rows
K_NPKT = 2          # staged packet-status rows
K_FIRST = 3         # packet index of staged status row 0
K_REC_N = 4         # staged recorded frames
K_REC_BYTES = 5     # bytes of them in rec_buf
K_NSW = 6           # staged swap rows (with a market)
K_NOPP = 7          # staged opportunity rows
N_K = 8

# ex words: the loop's own state and its mailbox with Python (int64[N_E])
E_STOP = 0          # Python -> loop: 1 finish what is ready and return, 2 return at once
E_ACTIVE = 1        # loop: the Stage it fills (0 / 1)
E_FULL0 = 2         # loop -> Python: Stage 0 holds rows to hand on (1); Python -> loop: free again (0)
E_FULL1 = 3         # the same for Stage 1
E_NEXT_INDEX = 4    # packet index the next polled frame gets (a running count of frames seen)
E_PEND_N = 5        # frames of the batch being processed (0: none pending)
E_PEND_START = 6    # its next frame to process
E_PEND_FIRST = 7    # its packet index of frame 0
E_QUEUED = 8        # shred transactions still queued in the reassembly
E_FLIP_NS = 9       # monotonic ns of the last hand-over
E_WINDOW_RESET = 10  # Python -> loop: zero the latency window, then the loop sets 0
E_POLLS = 11        # polls that returned frames
E_EMPTY_POLLS = 12  # polls that returned none
E_SLEEPS = 13       # idle sleeps
E_FLIPS = 14        # Stages handed over
E_WAITS = 15        # polls skipped because both Stages were full (Python behind)
E_RETURN = 16       # why the loop returned (R_*)
E_IDLE_SINCE = 17   # monotonic ns of the last frame seen (idle detection)
E_STOP_SEEN_NS = 18  # monotonic ns the loop first saw E_STOP 1 (0: not yet)
E_BUSY_NS = 19      # ns the loop spent on frames: from a poll that returned some to their release
E_BUSY_SINCE = 20   # monotonic ns the pending batch was polled
E_AWAKE_SINCE = 21  # monotonic ns the loop last woke from a sleep (RT pacing)
N_E = 22

# latency histograms (rows of lat_counts / lat_stats)
LAT_RUN = 0         # kernel timestamp -> scored, whole run
LAT_WINDOW = 1      # the same since the view last read it
N_LAT = 2

# loop return codes
R_STOPPED = 0       # E_STOP asked and honoured
R_CLOSED = 2        # the source closed (SPSC producer finished) and everything is processed


class Stage(NamedTuple):
    """Rows the live loop accumulates before Python hands them to the sinks."""

    tx: np.ndarray          # TX_DTYPE[S] transaction rows (``_prog_first`` indexes prog_ids below)
    prog_ids: np.ndarray    # int32[S * 64] program key ids
    status: np.ndarray      # int16[P] status of each packet, packet index ctl[K_FIRST] + i
    ts: np.ndarray          # int64[P] its kernel timestamp (ns since the epoch)
    rec_buf: np.ndarray     # uint8[R] copies of the frames to record (R = 1 when not recording)
    rec_off: np.ndarray     # int64[P] each recorded frame's offset in rec_buf
    rec_len: np.ndarray     # int32[P] its captured length
    rec_wirelen: np.ndarray  # int32[P] its length on the wire
    rec_ts: np.ndarray      # int64[P] its timestamp
    swaps: np.ndarray       # SWAP_DTYPE[W] swaps on snapshot pools (engine/opps.py)
    opps: np.ndarray        # OPP_DTYPE[O] opportunities
    ctl: np.ndarray         # int64[N_K] row counts (K_*)


PROG_IDS_PER_ROW = 8    # program-id rows a Stage holds per transaction row on average (a Stage that runs
                        # out of them is handed over early); plus one call's worst case on top


def _prog_rows(tx_rows: int, call_rows: int) -> int:
    return tx_rows * PROG_IDS_PER_ROW + call_rows * PROGRAMS_PER_TX_MAX


def _market_rows(tx_rows: int, call_rows: int) -> tuple[int, int]:
    """Swap and opportunity rows of a Stage: its share, plus one call's worst case (BatchOut)."""
    return tx_rows + call_rows + SWAPS_PER_TX_MAX, tx_rows // 8 + call_rows + OPPS_PER_TX_MAX


def new_stage(tx_rows: int, packets: int, record_bytes: int = 0, buf: np.ndarray | None = None,
              call_rows: int = 1024) -> Stage:
    """A Stage for ``tx_rows`` transactions and ``packets`` packets; ``record_bytes`` > 0 to record.
    ``call_rows``: transaction rows one process_batch call may make (BatchOut's size).

    ``buf`` (uint8, e.g. huge-page backed, host/memory.py) backs the arrays if given.
    """
    rec = max(1, int(record_bytes))
    sizes = [(TX_DTYPE, tx_rows), (np.int32, _prog_rows(tx_rows, call_rows)), (np.int16, packets),
             (np.int64, packets), (np.uint8, rec), (np.int64, packets), (np.int32, packets),
             (np.int32, packets), (np.int64, packets)]
    n_sw, n_opp = _market_rows(tx_rows, call_rows)
    sizes += [(SWAP_DTYPE, n_sw), (OPP_DTYPE, n_opp)]
    arrays = []
    pos = 0
    for dt, n in sizes:
        dt = np.dtype(dt)
        nbytes = dt.itemsize * n
        pos = (pos + 63) // 64 * 64
        if buf is not None and pos + nbytes <= buf.shape[0]:
            arrays.append(buf[pos:pos + nbytes].view(dt))
            pos += nbytes
        else:
            arrays.append(np.zeros(n, dt))
    return Stage(*arrays, np.zeros(N_K, np.int64))


def stage_bytes(tx_rows: int, packets: int, record_bytes: int = 0, call_rows: int = 1024) -> int:
    """Bytes ``new_stage`` uses from ``buf`` (alignment included)."""
    n_sw, n_opp = _market_rows(tx_rows, call_rows)
    return (TX_DTYPE.itemsize * tx_rows + 4 * _prog_rows(tx_rows, call_rows) + 2 * packets + 8 * packets
            + max(1, record_bytes) + 8 * packets + 4 * packets + 4 * packets + 8 * packets
            + SWAP_DTYPE.itemsize * n_sw + OPP_DTYPE.itemsize * n_opp + 12 * 64)


def new_ex() -> np.ndarray:
    return np.zeros(N_E, np.int64)


def new_latency():
    return new_histograms(N_LAT)


@njit(cache=True, nogil=True)
def reset_rows(stage):
    """Python, after handing a Stage's rows on: empty it (then it frees it in ``ex``)."""
    c = stage.ctl
    c[K_NTX] = 0
    c[K_NPROG] = 0
    c[K_NPKT] = 0
    c[K_FIRST] = 0
    c[K_REC_N] = 0
    c[K_REC_BYTES] = 0
    c[K_NSW] = 0
    c[K_NOPP] = 0



# --- the Python side -------------------------------------------------------------------------------
class StagedRows(NamedTuple):
    """Views of the rows a full Stage holds (valid until ``free_stage``)."""

    tx: np.ndarray
    prog_ids: np.ndarray
    status: np.ndarray
    first_index: int        # packet index of status row 0
    ts: np.ndarray
    swaps: np.ndarray
    opps: np.ndarray
    rec_buf: np.ndarray     # the recording: frame bytes, and per frame its offset, lengths and timestamp
    rec_off: np.ndarray
    rec_len: np.ndarray
    rec_ts: np.ndarray
    rec_wirelen: np.ndarray


def staged_rows(stage: Stage) -> StagedRows:
    c = stage.ctl
    ntx, nprog, npkt, nrec = int(c[K_NTX]), int(c[K_NPROG]), int(c[K_NPKT]), int(c[K_REC_N])
    nsw, nopp = int(c[K_NSW]), int(c[K_NOPP])
    return StagedRows(stage.tx[:ntx], stage.prog_ids[:nprog], stage.status[:npkt], int(c[K_FIRST]), stage.ts[:npkt],
                      stage.swaps[:nsw], stage.opps[:nopp], stage.rec_buf, stage.rec_off[:nrec], stage.rec_len[:nrec],
                      stage.rec_ts[:nrec], stage.rec_wirelen[:nrec])


def full_stages(ex) -> list[int]:
    """The Stages the loop handed over (at most one at a time, so the order of rows is kept)."""
    return [k for k in (0, 1) if ex[E_FULL0 + k]]


def active_stage(ex) -> int:
    """The Stage the loop fills (after it returned: the one with the last rows)."""
    return int(ex[E_ACTIVE])


def free_stage(stage: Stage, ex, k: int) -> None:
    """Stage ``k``'s rows were handed on: empty it, then give it back to the loop."""
    reset_rows(stage)
    ex[E_FULL0 + k] = 0


def request_stop(ex) -> None:
    """Ask the loop to finish what the source has ready, then return."""
    ex[E_STOP] = 1


def request_abort(ex) -> None:
    """Ask the loop to return at once (a warm-up call, or a source that never closed)."""
    ex[E_STOP] = 2


def clear_stop(ex) -> None:
    ex[E_STOP] = 0


def reset_mailbox(ex) -> None:
    """Every word back to zero: the loop starts as new (after the warm-up calls)."""
    ex[:] = 0


def set_returned(ex, code: int) -> None:
    """Python keeps why the loop returned (an R_* code) beside its counters."""
    ex[E_RETURN] = code


def source_closed(ex) -> bool:
    """The loop returned because its source closed (the SPSC producer finished), everything processed."""
    return ex[E_RETURN] == R_CLOSED


def reset_latency_window(ex) -> None:
    """Ask the loop to zero the latency window (it owns the histogram; it zeroes it between polls)."""
    ex[E_WINDOW_RESET] = 1


def busy_ns(ex) -> int:
    """ns the loop spent on frames, from a poll that returned some to their release."""
    return int(ex[E_BUSY_NS])


def loop_counters(ex) -> dict:
    return {"polls": int(ex[E_POLLS]), "empty_polls": int(ex[E_EMPTY_POLLS]), "idle_sleeps": int(ex[E_SLEEPS]),
            "stages_handed_over": int(ex[E_FLIPS]), "waits_for_sinks": int(ex[E_WAITS]),
            "busy_s": round(int(ex[E_BUSY_NS]) / 1e9, 6)}
