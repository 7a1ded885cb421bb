"""Composes a source, the engine and the sinks. The CLI, panel apps, notebooks and the API call it.

    results.py        what a run reports (RunResult, ReplayResult, LiveResult, LiveStatus)
    from_settings.py  Settings -> the engine's and the live sources' plain arguments (the one place)
    engine_run.py     one run of the engine and its sinks (EngineRun), warm-up, the store's rows
    replay.py         replay(): a capture file through the engine
    live.py           live(): a NIC or UDP sockets through the engine, in named steps
    live_sources.py   the live sources as the runner drives them (AF_PACKET, UDP, --split)
    split_child.py    the capture process of --split
    thread_setup.py   pinning, timer slack, SCHED_FIFO and RT pacing of the engine thread / capture process
    send.py           send(): a capture put on the wire
    background.py     a run on a background thread that views share (Panel, notebooks, a server)
    store_watch.py    polls a store for its newest run (a background run's 'store' mode)
"""

from .background import BackgroundRun, Rates, replay_options, short_error
from .engine_run import EngineRun, latency_table, warm_up
from .from_settings import deshred_state, engine_state
from .live import live
from .replay import replay
from .results import LiveResult, LiveStatus, ReplayResult, RunResult
from .send import send
from .store_watch import StoreWatch

__all__ = ["replay", "live", "send", "EngineRun", "warm_up", "latency_table", "engine_state", "deshred_state",
           "RunResult", "ReplayResult", "LiveResult", "LiveStatus", "BackgroundRun", "Rates", "StoreWatch",
           "replay_options", "short_error"]
