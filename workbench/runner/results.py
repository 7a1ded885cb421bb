"""What a run reports: the result types (summary.json, the CLI summary, the live view) and
the summaries they are made of."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from ..engine.deshred import counters_dict
from ..engine.state import EngineState
from ..metrics.hist import Histogram
from ..wire.keys import N_KNOWN_PROGRAMS, PROGRAM_NAMES, key_to_base58


@dataclass(kw_only=True)
class RunResult:
    """What every run reports, replay or live (summary.json, the CLI summary)."""

    run_id: str
    out_dir: str
    packets: int
    transactions: int
    by_status: dict[str, int]
    by_program: dict[str, int]
    wall_s: float
    warmup_s: float
    packets_per_s: float
    engine_packets_per_s: float
    packet_ns: dict                  # engine processing per packet (1 in latency_sample_every)
    first_ts_ns: int
    last_ts_ns: int
    shreds: dict = field(default_factory=dict)
    market: dict = field(default_factory=dict)          # swap and detection counters (engine/market/counters.py); {} without
    opportunities: dict = field(default_factory=dict)   # count, by_type, expected_profit_sol, top ten
    detect_ns: dict = field(default_factory=dict)       # detection cost per opportunity: p50, p99, p99.9, max
    ml_inference_ns: dict = field(default_factory=dict)  # model score per opportunity (with --model): p50, p99, ...
    outputs: dict[str, str] = field(default_factory=dict)
    store: dict | None = None
    status: str = "done"             # how the run ended (runner/stop.py): done, capture_damaged, interrupted, terminated

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


@dataclass(kw_only=True)
class ReplayResult(RunResult):
    capture: str
    engine_s: float
    engine_cpu_s: float = 0.0        # the engine thread's CPU time in engine_s: the rest it waited (GIL, a CPU)
    capture_error: str | None = None
    pace_max_lag_ns: int | None = None
    stop_signal: str = ""            # the signal that stopped the replay early (SIGINT, SIGTERM, SIGHUP); "" none


@dataclass
class LiveStatus:
    """What the live terminal view shows, every ``status_every_s``."""

    elapsed_s: float
    packets: int
    packets_per_s: float             # since the previous status
    transactions: int
    transactions_per_s: float
    drops: int                       # frames the kernel dropped (ring / socket buffer full), whole run
    freezes: int                     # AF_PACKET queue freezes, whole run
    latency_ns: dict                 # kernel timestamp -> scored since the previous status: p50, p99, p99.9
    opportunities_per_s: float | None   # None: no market snapshot given (no detection)
    by_status: dict


@dataclass(kw_only=True)
class LiveResult(RunResult):
    """engine_packets_per_s: packets / seconds the engine thread was busy with them (its capacity)."""

    source: str                      # "afpacket", "udp" (", split": capture in its own process)
    iface: str
    drops: int                       # frames the kernel dropped before the engine saw them
    kernel: dict                     # the source's kernel counters (afpacket: packets, drops, freezes)
    latency_ns: dict                 # kernel timestamp -> scored, every packet: p50, p99, p99.9, max, mean, count
    stop_reason: str
    host: list[str] = field(default_factory=list)
    # the host check at start as data (host/tune quick_check: iface, cpus, areas with verdict and the
    # settings found wanting, warnings, error); its lines are among ``host``. None: no interface (UDP)
    host_check: dict | None = None
    source_counters: dict = field(default_factory=dict)
    recorded: dict | None = None
    # True: the loop warmed up before the source opened, so capture (wall_s, --duration, the latency
    # histogram) starts after it; False (AF_PACKET, --split): the source captured during the warm-up
    warmup_before_capture: bool = False
    # --accounts: the live resync's counters and drift (runner/live_resync.py AccountFeed.summary); None without
    resync: dict | None = None


def program_counts(state: EngineState, top: int | None = None) -> dict[str, int]:
    """Transactions per program, by name for known programs, base58 otherwise."""
    counts = state.prog_tx_counts
    ids = np.nonzero(counts)[0]
    ids = ids[np.argsort(-counts[ids], kind="stable")]
    if top is not None:
        ids = ids[:top]
    return {(PROGRAM_NAMES[i] if i < N_KNOWN_PROGRAMS else key_to_base58(state.keys, int(i))): int(counts[i])
            for i in ids}


def shred_summary(ds) -> dict[str, int]:
    """Counters of the shred reassembly that are not zero."""
    return {k: v for k, v in counters_dict(ds).items() if v}


def hist_summary(h: Histogram) -> dict:
    """p50, p99, p99.9, max, mean and count of a histogram (mean -1 when empty)."""
    return {**h.percentiles((50, 99, 99.9)), "max": h.max, "mean": round(float(h.mean), 1) if h.count else -1,
            "count": h.count}
