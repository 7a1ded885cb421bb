"""One settings object for the whole workbench.

Precedence, lowest first: the defaults below < a TOML file (``--config FILE`` or
``WORKBENCH_CONFIG``) < ``WORKBENCH_<FIELD>`` environment variables < command-line flags.
Tunables are fields; limits of the Solana protocol are not settings and live with the code
that decodes them (``wire/txn.py``, ``wire/keys.py``, ``engine/features.py``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import mmap
import numbers
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

# UDP ports that never carry Solana traffic in practice: DNS, DHCP, NTP, NetBIOS, SNMP,
# HTTPS/QUIC, syslog, SSDP, mDNS. Packets to them count as `not_solana`.
DEFAULT_TIP_LAMPORTS = 10_000     # the Jito tip an opportunity must beat unless told otherwise (generate, replay, live)
DEFAULT_IGNORE_PORTS = (53, 67, 68, 123, 137, 138, 161, 162, 443, 514, 1900, 5353)


def _show(value) -> str:
    """A value as a message quotes it: repr, cut short (a hostile value can be megabytes)."""
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


def parse_ports(value, where: str = "port list", *, allow_zero: bool = False) -> tuple[int, ...]:
    """Ports from a list of ints or a string like "8001,8003-8009"; ``where`` names the source in
    errors (the flag, or the config key). Port 0 is refused unless ``allow_zero``: bound, it is a
    port the OS picks, and no traffic is addressed to it."""
    lowest = 0 if allow_zero else 1
    if isinstance(value, (list, tuple)):
        items = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise ConfigError(f"{where}: {_show(v)} is not a port; allowed: integers in [{lowest}, 65535] "
                                  f"or strings like '8003-8009'")
            items.append(str(v).strip())
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        items = [s for s in str(value).replace(" ", "").split(",") if s]
    else:
        raise ConfigError(f"{where}: {_show(value)} is not a port list; allowed: a list of ports in "
                          f"[{lowest}, 65535] or a string like '8001,8003-8009'")
    ports: list[int] = []
    for item in items:
        lo, _, hi = item.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise ConfigError(f"{where}: {_show(item)} is not a port or a range like 8003-8009") from None
        if not (0 <= a <= 65535 and 0 <= b <= 65535):
            raise ConfigError(f"{where}: {_show(item)} is outside {lowest}-65535")
        if a == 0 and not allow_zero:
            raise ConfigError(f"{where}: {_show(item)} includes port 0, which is not a port traffic is sent to "
                              f"(bound, it is one the OS picks); allowed: {lowest}-65535")
        if a > b:
            raise ConfigError(f"{where}: {_show(item)} is a reversed range (first port {a} > last port {b}); "
                              f"write {b}-{a}")
        ports.extend(range(a, b + 1))
    return tuple(ports)


@dataclass
class Settings:
    """Every tunable of the workbench. Field comments give meaning, unit and range (checked by
    ``validate()`` from ``INT_RANGES`` and ``_coerce`` below)."""

    data_dir: str = "data"                 # folder for the embedded store, runs and spool
    db: str = ""                           # ClickHouse DSN; "" means chdb:///<data_dir>/clickhouse
    store_connect_timeout_s: int = 3       # s a store server may take to accept a connection, [1, 600]
    store_read_timeout_s: int = 30         # s a store server may stay silent while answering, [1, 3600]; past
                                           # either deadline (or on an answer that is not ClickHouse's) the
                                           # store counts as unreachable: rows are spooled and the run goes on
    batch_frames: int = 16384              # frames per FrameBatch, [1, 2**22)
    key_capacity: int = 1 << 16            # pubkey interning table slots, a power of two in [64, 2**24]
    transaction_ports: tuple[int, ...] = ()  # UDP ports decoded as transactions only
    shred_ports: tuple[int, ...] = ()      # UDP ports decoded as shreds only
    ignore_ports: tuple[int, ...] = DEFAULT_IGNORE_PORTS  # UDP ports that are never Solana
    shred_slots: int = 4                   # slots reassembled from shreds at once, [1, 127]
    shreds_per_slot: int = 8192            # data shred indexes kept per slot, [1, 32768]
    latency_sample_every: int = 16         # time 1 packet in N, a power of two in [1, 2**30] (1 = every packet)
    progress: bool = True                  # rich progress bar on the terminal
    # --- market and opportunities (engine/market/) ---
    market: str = ""                       # market snapshot folder ("" = none: swaps and opportunities are off)
    tip_lamports: int = DEFAULT_TIP_LAMPORTS            # Jito tip an opportunity must pay; its profit must exceed it, [0, 2**62)
    detect: bool = True                    # run the detectors (False: track pools and write swaps only)
    model: str = ""                        # model folder (workbench compile) scoring every opportunity ("" = none)
    # --- live mode (workbench live / send; capture/afpacket.py, capture/udp.py, engine/live.py) ---
    afpacket_block_size: int = 1 << 18     # bytes per TPACKET_V3 ring block, a power of two in [page size, 2**31]
    afpacket_block_count: int = 128        # blocks in the ring, [2, 65536): ring = size * count bytes <= 4 GiB
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
    udp_rcvbuf: int = 32 << 20             # bytes of SO_RCVBUF per UDP socket (SO_RCVBUFFORCE as root), [1, 2**31)
    udp_batch: int = 256                   # datagrams per recvmmsg call, [1, 1024]
    udp_slot_bytes: int = 2048             # bytes per datagram slot (28 of them for the IPv4/UDP header),
                                           # a multiple of 64 in [128, 2**17]
    live_batch_frames: int = 1024          # frames per poll of a live source, [1, 65536)
    live_stage_rows: int = 1 << 16         # packets (and transaction rows) per Stage; two Stages alternate between
                                           # the engine thread and the sinks; [4 * live_batch_frames, 2**26]
    live_slice_ms: int = 50                # the nopython loop returns to Python at least this often (ms), [1, 60000]
    live_idle_spin_us: int = 2000          # us without packets before the loop starts sleeping, [0, 6e7]
    live_idle_sleep_us: int = 50           # us slept per empty poll once idle, [0, 1e6]; 0 = spin (lowest latency, burns the CPU)
    live_fifo_priority: int = 50           # SCHED_FIFO priority with --rt, [1, 99]
    split_ring_slots: int = 1 << 16        # --split: slots of the capture -> engine ring, a power of two in [2, 2**24]
    split_slot_bytes: int = 2048           # --split: bytes per slot (32 of them for the slot header), a multiple
                                           # of 64 in [128, 2**17]; slots * bytes <= 4 GiB

    _PORT_FIELDS = ("transaction_ports", "shred_ports", "ignore_ports")

    def validate(self) -> "Settings":
        """Check every field's type and range (normalising paths to str and port lists to tuples),
        then the rules that tie fields together; a ConfigError names the field, the value, where
        it came from and what is allowed."""
        origin = self.__dict__.get("_origin", {})
        for f in dataclasses.fields(self):
            where = origin.get(f.name, f"setting {f.name}")
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), where))

        def named(*names):
            return "; ".join(f"{n}={_show(getattr(self, n))} from {origin.get(n, 'the default or code')}" for n in names)

        if self.live_stage_rows < 4 * self.live_batch_frames:
            raise ConfigError(f"live_stage_rows must be >= 4 * live_batch_frames ({4 * self.live_batch_frames}): "
                              f"{named('live_stage_rows', 'live_batch_frames')}")
        for size, count in (("afpacket_block_size", "afpacket_block_count"), ("split_ring_slots", "split_slot_bytes")):
            if getattr(self, size) * getattr(self, count) > MAX_RING_BYTES:
                raise ConfigError(f"{size} * {count} must be <= {MAX_RING_BYTES} bytes (4 GiB): {named(size, count)}")
        clash = set(self.transaction_ports) & set(self.shred_ports)
        if clash:
            raise ConfigError(f"ports {sorted(clash)[:5]} are in both transaction_ports and shred_ports: "
                              f"{named('transaction_ports', 'shred_ports')}")
        return self

    @property
    def db_dsn(self) -> str:
        if self.db:
            return self.db
        return f"chdb://{Path(self.data_dir).resolve() / 'clickhouse'}"

    def updated(self, **changes) -> "Settings":
        """A copy with the given fields changed (None values are ignored: unset flags)."""
        return self._apply({k: v for k, v in changes.items() if v is not None}, lambda k: f"setting {k}")

    def _apply(self, changes: dict, where) -> "Settings":
        """A validated copy with ``changes``; ``where(name)`` says where each value came from."""
        known = {f.name for f in dataclasses.fields(self)}
        origin = dict(self.__dict__.get("_origin", {}))
        clean = {}
        for k, v in changes.items():
            if k not in known:
                raise ConfigError(f"{where(k)}: unknown setting {_show(k)}; known: {', '.join(sorted(known))}")
            clean[k] = _coerce(k, v, where(k))
            origin[k] = where(k)
        s = dataclasses.replace(self, **clean)
        s.__dict__["_origin"] = origin    # not a field: asdict() and the capture child never see it
        return s.validate()


# A key table slot costs 32 bytes of key, 8 of hash slots, 8 of the engine's per-key counter
# and 8 of the market's key -> pool and key -> mint maps: at 2**24 slots that is under 1 GiB,
# which any machine that runs the engine can allocate, and more distinct accounts than a
# capture or a market snapshot carries. 2**40 would ask for tens of TiB.
MAX_KEY_CAPACITY = 1 << 24
# The AF_PACKET ring is pinned kernel memory and the --split ring shared memory (maybe
# hugepages): both are allocated whole at start, so their size is bounded like the key table.
MAX_RING_BYTES = 1 << 32
MAX_SHRED_SLOTS = 127             # engine/deshred.py: slot rows are indexed by a signed byte
MAX_SHREDS_PER_SLOT = 32768       # wire/shred.py MAX_SHREDS_PER_SLOT: shred indexes are below it
# Smallest slot of a frame ring (udp_slot_bytes, split_slot_bytes): its header (28 bytes of
# IPv4/UDP in capture/udp.py, 32 bytes of slot header in capture/ring.py) plus a 64-byte
# minimal frame, rounded up to the 64-byte multiple both rings require.
MIN_SLOT_BYTES = 128
MAX_SLOT_BYTES = 1 << 17          # a slot holds any IPv4 datagram (total length is 16 bits) and its link header
FANOUT_MODES = ("hash", "lb", "cpu")   # capture/afpacket.py FANOUT_MODES
POW2, MUL64 = "a power of two", "a multiple of 64"

# Integer fields: (lowest, highest, extra rule), both bounds allowed. The engine and the
# capture code check again where they allocate; these bounds make the error a ConfigError
# that names the source, before anything is allocated.
INT_RANGES = {
    "batch_frames": (1, 2**22 - 1, None),
    "key_capacity": (64, MAX_KEY_CAPACITY, POW2),
    "shred_slots": (1, MAX_SHRED_SLOTS, None),
    "shreds_per_slot": (1, MAX_SHREDS_PER_SLOT, None),
    "latency_sample_every": (1, 1 << 30, POW2),
    "tip_lamports": (0, 2**62 - 1, None),
    "store_connect_timeout_s": (1, 600, None),             # whole seconds: the HTTP driver takes ints
    "store_read_timeout_s": (1, 3600, None),
    "afpacket_block_size": (mmap.PAGESIZE, 1 << 31, POW2),   # the kernel wants whole pages; a u32 field
    "afpacket_block_count": (2, 65535, None),
    "afpacket_retire_ms": (1, 60_000, None),
    "fanout_group": (0, 65535, None),
    "udp_rcvbuf": (1, 2**31 - 1, None),                      # SO_RCVBUF is a C int
    "udp_batch": (1, 1024, None),
    "udp_slot_bytes": (MIN_SLOT_BYTES, MAX_SLOT_BYTES, MUL64),
    "live_batch_frames": (1, 65535, None),
    "live_stage_rows": (4, 1 << 26, None),                  # two Stages are allocated whole
    "live_slice_ms": (1, 60_000, None),                     # the loop must come back to see Ctrl-C
    "live_idle_spin_us": (0, 60_000_000, None),
    "live_idle_sleep_us": (0, 1_000_000, None),
    "live_fifo_priority": (1, 99, None),
    "split_ring_slots": (2, MAX_KEY_CAPACITY, POW2),
    "split_slot_bytes": (MIN_SLOT_BYTES, MAX_SLOT_BYTES, MUL64),
}
PATH_FIELDS = ("data_dir", "market", "model")

_TYPE_NAMES = {dict: "a table", list: "an array", tuple: "an array", bool: "a boolean", float: "a float",
               str: "a string", int: "an integer"}


def _kind(value) -> str:
    return _TYPE_NAMES.get(type(value), f"a {type(value).__name__}")


def _as_int(value):
    """An int from an int, a whole finite float or a decimal / 0x string; None if it is none of them."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):    # numpy integers from code or a widget too
        return int(value)
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        s = value.strip()
        for parse in (lambda t: int(t, 0), int, float):
            try:
                v = parse(s)
            except (ValueError, OverflowError):
                continue
            return _as_int(v) if isinstance(v, float) else v
    return None


def _coerce(name: str, value, where: str):
    """``value`` as field ``name`` wants it, or a ConfigError naming name, value, where and the allowed range."""
    def bad(allowed: str):
        return ConfigError(f"{where}: {name}={_show(value)} ({_kind(value)}): allowed {allowed}")

    if name in Settings._PORT_FIELDS:
        # a packet to port 0 may be ignored; decoding or binding port 0 means nothing
        return parse_ports(value, where if where.endswith(f" key {name}") or where.endswith(f".{name}")
                           else f"{where}: {name}", allow_zero=name == "ignore_ports")
    if name in INT_RANGES:
        lo, hi, rule = INT_RANGES[name]
        allowed = f"an integer in [{lo}, {hi}]" + (f", {rule}" if rule else "")
        v = _as_int(value)
        if v is None or not lo <= v <= hi or (rule == POW2 and v & (v - 1)) or (rule == MUL64 and v % 64):
            raise bad(allowed)
        return v
    default = next(f.default for f in dataclasses.fields(Settings) if f.name == name)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            if value.strip().lower() in ("1", "true", "yes", "on"):
                return True
            if value.strip().lower() in ("0", "false", "no", "off"):
                return False
        raise bad("true or false (1/0, yes/no, on/off)")
    if name in PATH_FIELDS and isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or "\x00" in value:
        raise bad("a string without NUL characters")
    if name == "data_dir" and not value:
        raise bad("a folder name (not empty)")
    if name == "fanout_mode" and value not in FANOUT_MODES:
        raise bad("one of " + ", ".join(FANOUT_MODES))
    if name == "udp_bind_addr":
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise bad("an IPv4 address like 0.0.0.0 or 127.0.0.1") from None
    return value


def _read_toml(p: Path, how: str) -> dict:
    if not p.is_file():
        raise ConfigError(f"config file {p} ({how}) " + ("is not a file" if p.exists() else "does not exist"))
    try:
        raw = p.read_bytes()
        text = raw.decode("utf-8")
        return tomllib.loads(text)
    except OSError as e:
        raise ConfigError(f"config file {p} ({how}): cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {p} ({how}): not UTF-8 at byte {e.start} (TOML files are UTF-8)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {p} ({how}): {e}") from None
    except RecursionError:
        raise ConfigError(f"config file {p} ({how}): arrays or tables nested too deeply") from None


# Longest live capture --duration: a year. Past it the number is a mistake (inf, a unit slip).
MAX_DURATION_S = 366 * 86400.0


def check_duration(value, flag: str = "--duration") -> float | None:
    """A capture duration in seconds: None (until stopped) or a finite number in (0, MAX_DURATION_S];
    a ConfigError naming ``flag`` for inf, nan, 0, negatives and text."""
    if value is None:
        return None
    allowed = f"allowed: seconds > 0 and <= {MAX_DURATION_S:.0f} (a year); leave it out to run until Ctrl-C / SIGTERM"
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{flag} {_show(value)}: not a number; {allowed}") from None
    if isinstance(value, bool) or not (math.isfinite(v) and 0 < v <= MAX_DURATION_S):
        raise ConfigError(f"{flag} {_show(value)}: {allowed}")
    return v


def load_settings(config_file: str | os.PathLike | None = None, *, environ=None, **flags) -> Settings:
    """Defaults < TOML file < WORKBENCH_* environment < flags (None flags are unset).

    ``environ`` is the environment to read (default ``os.environ``). Every value is checked
    for type and range; a ConfigError names the field, the value, its source (file and key,
    variable or flag) and what is allowed.
    """
    env = os.environ if environ is None else environ
    s = Settings()
    s.__dict__["_origin"] = {}
    path = config_file or env.get("WORKBENCH_CONFIG")
    if path:
        p = Path(path)
        how = "--config" if config_file else "WORKBENCH_CONFIG"
        data = _read_toml(p, how)
        table, prefix = data, ""
        if "workbench" in data:
            table, prefix = data["workbench"], "workbench."
            if not isinstance(table, dict):
                raise ConfigError(f"config file {p} key workbench: {_show(table)} ({_kind(table)}): "
                                  f"allowed a table [workbench] of settings")
        s = s._apply(table, lambda k: f"config file {p} key {prefix}{k}")
    found = {}
    for f in dataclasses.fields(Settings):
        v = env.get(f"WORKBENCH_{f.name.upper()}")
        if v is not None:
            found[f.name] = v
    s = s._apply(found, lambda k: f"environment variable WORKBENCH_{k.upper()}")
    return s._apply({k: v for k, v in flags.items() if v is not None}, lambda k: f"flag --{k.replace('_', '-')}")
