"""Settings -> the engine's and the live sources' arguments: the one place where they meet.

The engine takes arrays and plain numbers (engine/ never imports config); the capture
sources take plain numbers too. A run's Settings become them here, so a field of the
settings has one reader on this side.
"""

from __future__ import annotations

from ..config import Settings
from ..capture.poll import new_params
from ..engine.deshred import DeshredState, new_deshred_state
from ..engine.state import EngineState, market_of, model_of, new_state


def engine_state(settings: Settings) -> EngineState:
    """A fresh engine state as ``settings`` ask (key table, ports, latency sampling, tip, detection)."""
    return new_state(settings.key_capacity, transaction_ports=settings.transaction_ports,
                     shred_ports=settings.shred_ports, ignore_ports=settings.ignore_ports,
                     sample_every=settings.latency_sample_every, tip_lamports=settings.tip_lamports,
                     detect=settings.detect)


def deshred_state(settings: Settings) -> DeshredState:
    """A fresh shred reassembly as ``settings`` ask."""
    return new_deshred_state(n_slots=settings.shred_slots, shreds_per_slot=settings.shreds_per_slot)


def market_for(settings: Settings, state: EngineState):
    """The settings' market snapshot (its addresses interned in ``state``), or None."""
    return market_of(settings.market, state)


def model_for(settings: Settings):
    """The settings' compiled model, or None."""
    return model_of(settings.model)


def live_loop_params(settings: Settings, record: bool, max_batch_bytes: int):
    """The engine's live loop parameters (capture/poll.py)."""
    return new_params(settings.live_slice_ms * 1_000_000, settings.live_batch_frames,
                      settings.live_idle_spin_us * 1000, settings.live_idle_sleep_us, bool(record), max_batch_bytes)


def capture_loop_params(settings: Settings):
    """The split capture process's copy-loop parameters (capture/poll.py; it neither records nor stages)."""
    return new_params(0, settings.live_batch_frames, settings.live_idle_spin_us * 1000, settings.live_idle_sleep_us,
                      False, 0)


def afpacket_source(iface: str, settings: Settings, ports):
    """An AF_PACKET (TPACKET_V3) source on ``iface`` as ``settings`` ask."""
    from ..capture.afpacket import AfPacketSource
    return AfPacketSource(iface, block_size=settings.afpacket_block_size,
                          block_nr=settings.afpacket_block_count, retire_ms=settings.afpacket_retire_ms,
                          ports=ports, fanout_group=settings.fanout_group,
                          fanout_mode=settings.fanout_mode, peek=settings.afpacket_peek,
                          promisc=settings.afpacket_promisc, batch_frames=settings.live_batch_frames)


def udp_source(settings: Settings, ports):
    """Plain UDP sockets on ``ports`` as ``settings`` ask."""
    from ..capture.udp import UdpSource
    return UdpSource(ports, bind_addr=settings.udp_bind_addr, rcvbuf=settings.udp_rcvbuf,
                     batch=min(settings.udp_batch, settings.live_batch_frames),
                     slot_bytes=settings.udp_slot_bytes)
