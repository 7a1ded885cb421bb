"""One settings object for the whole workbench.

Precedence, lowest first: the defaults below < a TOML file (``--config FILE`` or
``WORKBENCH_CONFIG``) < ``WORKBENCH_<FIELD>`` environment variables < command-line flags.
Tunables are fields; limits of the Solana protocol are not settings and live with the code
that decodes them (``wire/txn.py``, ``wire/keys.py``, ``engine/features.py``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

# UDP ports that never carry Solana traffic in practice: DNS, DHCP, NTP, NetBIOS, SNMP,
# HTTPS/QUIC, syslog, SSDP, mDNS. Packets to them count as `not_solana`.
DEFAULT_TIP_LAMPORTS = 10_000     # the Jito tip an opportunity must beat unless told otherwise (generate, replay, live)
DEFAULT_IGNORE_PORTS = (53, 67, 68, 123, 137, 138, 161, 162, 443, 514, 1900, 5353)


def parse_ports(value) -> tuple[int, ...]:
    """Ports from a list of ints or a string like "8001,8003-8009"."""
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = [s for s in str(value).replace(" ", "").split(",") if s]
    ports: list[int] = []
    for item in items:
        lo, _, hi = item.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise ConfigError(f"port list: {item!r} is not a port or a range like 8003-8009") from None
        if not (0 <= a <= b <= 65535):
            raise ConfigError(f"port list: {item!r} is outside 0-65535")
        ports.extend(range(a, b + 1))
    return tuple(ports)


@dataclass
class Settings:
    """Every tunable of the workbench. Field comments give meaning, unit and range."""

    data_dir: str = "data"                 # folder for the embedded store, runs and spool
    db: str = ""                           # ClickHouse DSN; "" means chdb:///<data_dir>/clickhouse
    batch_frames: int = 16384              # frames per FrameBatch, [1, 2**22)
    key_capacity: int = 1 << 16            # pubkey interning table slots (power of two)
    transaction_ports: tuple[int, ...] = ()  # UDP ports decoded as transactions only
    shred_ports: tuple[int, ...] = ()      # UDP ports decoded as shreds only
    ignore_ports: tuple[int, ...] = DEFAULT_IGNORE_PORTS  # UDP ports that are never Solana
    shred_slots: int = 4                   # slots reassembled from shreds at once, [1, 127]
    shreds_per_slot: int = 8192            # data shred indexes kept per slot, [1, 32768]
    latency_sample_every: int = 16         # time 1 packet in N (power of two; 1 = every packet)
    progress: bool = True                  # rich progress bar on the terminal
    # --- market and opportunities (engine/market/) ---
    market: str = ""                       # market snapshot folder ("" = none: swaps and opportunities are off)
    tip_lamports: int = DEFAULT_TIP_LAMPORTS            # Jito tip an opportunity must pay; its profit must exceed it, [0, 2**62)
    detect: bool = True                    # run the detectors (False: track pools and write swaps only)
    model: str = ""                        # model folder (workbench compile) scoring every opportunity ("" = none)
    # --- live mode (workbench live / send; capture/afpacket.py, capture/udp.py, engine/live.py) ---
    afpacket_block_size: int = 1 << 18     # bytes per TPACKET_V3 ring block, a power of two >= page size
    afpacket_block_count: int = 128        # blocks in the ring, [2, 65536): ring = size * count bytes
    afpacket_retire_ms: int = 10           # ms before the kernel hands over a block that is not full, [1, 60000];
                                           # with afpacket_peek it bounds only when a block is given back, not
                                           # latency; without, it is the worst wait of a packet. A retired block
                                           # holds what arrived in it, so count * retire_ms is the least buffering
                                           # the ring gives at any rate.
    afpacket_peek: bool = True             # read frames of the block the kernel is still filling (x86-64 only)
    afpacket_promisc: bool = False         # put the interface in promiscuous mode
    fanout_group: int = 0                  # PACKET_FANOUT group id, [1, 65535]; 0 = no fanout
    fanout_mode: str = "hash"              # fanout by flow hash ("hash"), round robin ("lb") or CPU ("cpu")
    udp_bind_addr: str = "0.0.0.0"         # IPv4 address the UDP source binds its ports on
    udp_rcvbuf: int = 32 << 20             # bytes of SO_RCVBUF per UDP socket (SO_RCVBUFFORCE as root)
    udp_batch: int = 256                   # datagrams per recvmmsg call, [1, 1024]
    udp_slot_bytes: int = 2048             # bytes per datagram slot (28 of them for the IPv4/UDP header)
    live_batch_frames: int = 1024          # frames per poll of a live source, [1, 65536)
    live_stage_rows: int = 1 << 16         # packets (and transaction rows) per Stage; two Stages alternate between
                                           # the engine thread and the sinks; >= 4 * live_batch_frames
    live_slice_ms: int = 50                # the nopython loop returns to Python at least this often (ms)
    live_idle_spin_us: int = 2000          # us without packets before the loop starts sleeping
    live_idle_sleep_us: int = 50           # us slept per empty poll once idle; 0 = spin (lowest latency, burns the CPU)
    live_fifo_priority: int = 50           # SCHED_FIFO priority with --rt, [1, 99]
    split_ring_slots: int = 1 << 16        # --split: slots of the capture -> engine ring (power of two)
    split_slot_bytes: int = 2048           # --split: bytes per slot (32 of them for the slot header)

    _PORT_FIELDS = ("transaction_ports", "shred_ports", "ignore_ports")

    def validate(self) -> "Settings":
        if not (0 <= self.tip_lamports < 2**62):
            raise ConfigError(f"tip_lamports={self.tip_lamports}: must be in [0, 2**62)")
        if not (1 <= self.batch_frames < 2**22):
            raise ConfigError(f"batch_frames={self.batch_frames}: must be in [1, 4194304)")
        if self.key_capacity < 64 or self.key_capacity & (self.key_capacity - 1):
            raise ConfigError(f"key_capacity={self.key_capacity}: must be a power of two >= 64")
        n = self.latency_sample_every
        if n < 1 or n & (n - 1):
            raise ConfigError(f"latency_sample_every={n}: must be a power of two >= 1")
        if not 1 <= self.live_batch_frames < 65536:
            raise ConfigError(f"live_batch_frames={self.live_batch_frames}: must be in [1, 65536)")
        if self.live_stage_rows < 4 * self.live_batch_frames:
            raise ConfigError(f"live_stage_rows={self.live_stage_rows}: must be >= 4 * live_batch_frames "
                              f"({4 * self.live_batch_frames})")
        if self.live_slice_ms < 1:
            raise ConfigError(f"live_slice_ms={self.live_slice_ms}: must be >= 1")
        if not 0 <= self.fanout_group <= 65535:
            raise ConfigError(f"fanout_group={self.fanout_group}: must be in [0, 65535] (0 = no fanout)")
        if not 1 <= self.live_fifo_priority <= 99:
            raise ConfigError(f"live_fifo_priority={self.live_fifo_priority}: must be in [1, 99]")
        if self.split_ring_slots < 2 or self.split_ring_slots & (self.split_ring_slots - 1):
            raise ConfigError(f"split_ring_slots={self.split_ring_slots}: must be a power of two >= 2")
        clash = set(self.transaction_ports) & set(self.shred_ports)
        if clash:
            raise ConfigError(f"ports {sorted(clash)[:5]} are in both transaction_ports and shred_ports")
        return self

    @property
    def db_dsn(self) -> str:
        if self.db:
            return self.db
        return f"chdb://{Path(self.data_dir).resolve() / 'clickhouse'}"

    def updated(self, **changes) -> "Settings":
        """A copy with the given fields changed (None values are ignored: unset flags)."""
        known = {f.name: f for f in dataclasses.fields(self)}
        clean = {}
        for k, v in changes.items():
            if v is None:
                continue
            if k not in known:
                raise ConfigError(f"unknown setting {k!r}; known: {', '.join(sorted(known))}")
            clean[k] = _coerce(k, known[k], v)
        return dataclasses.replace(self, **clean).validate()


def _coerce(name: str, f: dataclasses.Field, value):
    if name in Settings._PORT_FIELDS:
        return parse_ports(value)
    default = f.default
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            return int(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name}={value!r}: expected {type(default).__name__}") from None


def load_settings(config_file: str | os.PathLike | None = None, **flags) -> Settings:
    """Defaults < TOML file < WORKBENCH_* environment < flags (None flags are unset)."""
    s = Settings()
    path = config_file or os.environ.get("WORKBENCH_CONFIG")
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p}: {e}") from None
        s = s.updated(**data.get("workbench", data))
    env = {}
    for f in dataclasses.fields(Settings):
        v = os.environ.get(f"WORKBENCH_{f.name.upper()}")
        if v is not None:
            env[f.name] = v
    s = s.updated(**env)
    return s.updated(**flags)
