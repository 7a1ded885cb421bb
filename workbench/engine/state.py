"""EngineState: everything the engine remembers between batches, as numpy arrays.

A NamedTuple of arrays, so numba takes it as one argument and every field can be
snapshotted (``save``) and restored (``load``): a replay can stop and resume with the
same results, and two replays of one capture are identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..metrics.hist import new_histograms
from ..wire.keys import new_key_table
from ..wire.programs.events import EV_REJECT_SLOTS
from ..wire.status import STATUS_SLOTS
from .market.counters import N_DETECT_COUNTERS
from .market.layout import Market
from .market.snapshot import load_market
from .score.model_folder import load_tree_model
from .score.tree_model import TreeModel

# histograms kept by the engine (rows of hist_counts / hist_stats)
HIST_PACKET_NS = 0      # wall ns of one packet, walk + decode + features, for 1 packet in P_SAMPLE_EVERY
HIST_BATCH_NS = 1       # wall ns per process_batch call
HIST_DETECT_NS = 2      # wall ns from the start of a swap's detection to each opportunity it yields
HIST_SCORE_NS = 3       # wall ns of one model score (when a model is loaded)
HIST_NAMES = ("packet_processing_ns", "batch_processing_ns", "opportunity_detection_ns", "ml_inference_ns")
N_HIST = len(HIST_NAMES)

# counters (rows of ``counters``)
C_PACKETS = 0           # frames seen
C_BYTES = 1             # captured bytes seen
C_TRANSACTIONS = 2      # transactions decoded (first sight)
C_SHREDS = 3            # shreds seen
C_DEDUP_RESETS = 4      # times the duplicate filter was cleared
C_TS_FIRST = 5          # event time of the first packet (ns), -1 none
C_TS_LAST = 6           # event time of the last packet (ns), -1 none
C_SHRED_TX_REJECTED = 7  # transactions of reassembled entries that failed decode / sanitize
COUNTER_NAMES = ("packets", "bytes", "transactions", "shreds", "dedup_resets", "ts_first_ns", "ts_last_ns",
                 "shred_transactions_rejected")
N_COUNTERS = len(COUNTER_NAMES)

# engine parameters (rows of ``params``)
P_SAMPLE_MASK = 0       # time packets whose index & mask == 0: mask = sample_every - 1
P_TIP_LAMPORTS = 1      # Jito tip an opportunity must pay (its profit must exceed it), lamports
P_DETECT = 2            # 1: run the detectors on every swap; 0: track the pools only
N_PARAMS = 3
# Reading the clock serialises the CPU (rdtscp): on every packet it stops the next
# packet's memory loads from overlapping this one's, which costs far more than the read
# itself. Timing 1 packet in 16 gives the same distribution from an unbiased sample at a
# sixteenth of that cost.
DEFAULT_SAMPLE_EVERY = 16

# what a UDP destination port carries (port_kind)
PORT_AUTO = 0           # decode as a transaction; if that fails and it looks like a shred, a shred
PORT_TXN = 1
PORT_SHRED = 2
PORT_IGNORE = 3         # never Solana: status not_solana


class EngineState(NamedTuple):
    keys: np.ndarray            # uint8[K, 32] interned pubkeys (wire/keys.py)
    key_slots: np.ndarray       # int32[2K] hash slots -> key id, -1 empty
    key_meta: np.ndarray        # int64[2] ids given, inserts refused
    prog_tx_counts: np.ndarray  # int64[K] transactions invoking each key id as a program
    status_counts: np.ndarray   # int64[STATUS_SLOTS] packets by status (index code - STATUS_MIN)
    counters: np.ndarray        # int64[N_COUNTERS]
    hist_counts: np.ndarray     # int64[N_HIST, N_BUCKETS]
    hist_stats: np.ndarray      # int64[N_HIST, 4]
    dedup: np.ndarray           # uint64[D] first 8 bytes of seen first signatures, 0 empty
    dedup_meta: np.ndarray      # int64[1] entries in dedup
    port_kind: np.ndarray       # int8[65536] PORT_* per UDP destination port
    params: np.ndarray          # int64[N_PARAMS] engine parameters (P_*)
    dcount: np.ndarray          # int64[N_DETECT_COUNTERS] market and detection counters (detect.py)
    ev_rejects: np.ndarray      # int64[EV_REJECT_SLOTS] instructions rejected by the program decoders


def new_state(key_capacity: int = 1 << 16, dedup_slots: int = 1 << 20, transaction_ports=(), shred_ports=(),
              ignore_ports=(), sample_every: int = DEFAULT_SAMPLE_EVERY,
              *, tip_lamports: int, detect: bool = True) -> EngineState:
    """A fresh state. The market (``market_of``) and the model (``model_of``) are separate
    arguments of process_batch: absent, they are None and their code is not even compiled.
    ``tip_lamports`` (the tip an opportunity must beat) has no default here: it is a setting,
    and its default lives with the others in config.py."""
    if dedup_slots & (dedup_slots - 1):
        raise ValueError(f"dedup_slots={dedup_slots}: must be a power of two")
    if sample_every < 1 or sample_every & (sample_every - 1):
        raise ValueError(f"sample_every={sample_every}: must be a power of two >= 1")
    params = np.zeros(N_PARAMS, np.int64)
    params[P_SAMPLE_MASK] = sample_every - 1
    if tip_lamports < 0:
        raise ValueError(f"tip_lamports={tip_lamports}: must be >= 0")
    params[P_TIP_LAMPORTS] = tip_lamports
    params[P_DETECT] = int(bool(detect))
    keys, slots, meta = new_key_table(key_capacity)
    hc, hs = new_histograms(N_HIST)
    counters = np.zeros(N_COUNTERS, np.int64)
    counters[C_TS_FIRST] = counters[C_TS_LAST] = -1
    port_kind = np.full(65536, PORT_AUTO, np.int8)
    port_kind[list(ignore_ports)] = PORT_IGNORE
    port_kind[list(transaction_ports)] = PORT_TXN
    port_kind[list(shred_ports)] = PORT_SHRED
    return EngineState(keys, slots, meta, np.zeros(key_capacity, np.int64), np.zeros(STATUS_SLOTS, np.int64),
                       counters, hc, hs, np.zeros(dedup_slots, np.uint64), np.zeros(1, np.int64), port_kind, params,
                       np.zeros(N_DETECT_COUNTERS, np.int64), np.zeros(EV_REJECT_SLOTS, np.int64))


def market_of(folder, state: EngineState) -> Market | None:
    """The snapshot in ``folder`` (its addresses interned in ``state``'s key table), or None."""
    return load_market(folder, state.keys, state.key_slots, state.key_meta) if folder else None


def model_of(folder) -> TreeModel | None:
    """The compiled model in ``folder`` checked against the engine's features, or None."""
    return load_tree_model(folder) if folder else None


def save(state: EngineState, path, ds=None, market: Market | None = None) -> None:
    """Snapshot every array (engine state, the shred reassembly and the market's pool state
    if given) to one .npz. The model is configuration, not state: it is given again."""
    arrays = dict(state._asdict())
    if market is not None:
        arrays.update({f"market__{k}": v for k, v in market._asdict().items()})
    if ds is not None:
        arrays.update({f"deshred__{k}": v for k, v in ds._asdict().items()})
    np.savez(Path(path), **arrays)


def load(path):
    """(EngineState, DeshredState or None, Market or None) from a snapshot written by ``save``."""
    from .deshred import DeshredState
    with np.load(Path(path)) as z:
        market = (Market(**{k: z[f"market__{k}"].copy() for k in Market._fields})
                  if f"market__{Market._fields[0]}" in z.files else None)
        state = EngineState(**{k: z[k].copy() for k in EngineState._fields})
        ds = None
        if f"deshred__{DeshredState._fields[0]}" in z.files:
            ds = DeshredState(**{k: z[f"deshred__{k}"].copy() for k in DeshredState._fields})
    return state, ds, market
