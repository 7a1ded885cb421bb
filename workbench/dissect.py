"""Scapy layers for Solana: transactions and shreds, bound to the configured UDP ports.

    >>> from workbench.dissect import bind_ports, dissect_frame
    >>> bind_ports()                       # Settings().transaction_ports / shred_ports, or 8003
    >>> pkt = Ether(frame_bytes); pkt.show()

``SolanaTx`` is the wire transaction (agave ``sdk/transaction/src/versioned``, Firedancer
``fd_txn.h``): signatures (compact-u16 count, 64 bytes each), the message: an optional
version prefix (0x80 | version; legacy messages have none), the header (required
signatures, readonly signed, readonly unsigned), account keys (compact-u16 count, 32 bytes
each), recent blockhash (32), instructions (program index u8, account indexes, data), and
for v0 the address table lookups. Keys, signatures and the blockhash print in base58;
each instruction names its program when the workbench knows it (``wire/keys.py``), and
what the engine's DEX/transfer decoders make of it (``wire/programs/``).

The scapy fields parse the bytes; then the ENGINE's decoder (``wire/txn.py decode_one``,
the validator's sanitize rules) judges the transaction, and its verdict is the ``status``
field: 'ok' or the engine's reject reason ('truncated', 'bad_short_vec', ...). So a
packet ``show()``s exactly what the engine accepted or why it refused it.

``SolanaShred`` is the shred common header (83 bytes) and its data (5) or code (6)
header (agave ``ledger/src/shred.rs``; constants from ``wire/shred.py``), judged by the
engine's ``decode_shred_one``.

``dissect_frame(buf, linktype)`` picks the layer by the engine's own port rules
(``transaction_ports`` / ``shred_ports`` / any other port: a transaction, else a
shred-shaped payload as a shred), whatever the binding.
"""

from __future__ import annotations

import struct

import base58
from scapy.fields import (ByteField, ConditionalField, Field, FieldListField, LEIntField, LELongField, LEShortField, PacketListField,
                          StrFixedLenField, StrLenField, XByteField)
from scapy.layers.inet import UDP
from scapy.packet import Packet, Raw, bind_layers

from .config import Settings
from .wire.keys import KNOWN_PROGRAMS, PUBKEY_SZ
from .wire.shred import (COMMON_HDR_SZ, DATA_HDR_SZ, FLAG_DATA_COMPLETE, FLAG_REF_TICK_MASK, FLAG_SLOT_COMPLETE,
                         KIND_CODE, KIND_DATA, KIND_NONE, decode_shred_one, shred_kind)
from .wire.status import status_name
from .wire.txn import BLOCKHASH_SZ, SIGNATURE_SZ, VERSION_PREFIX, decode_one

# Port a validator's TPU listens on when started with agave's default dynamic port range
# (8000-10000); the bundled captures send to it. Used only when no port is configured.
DEFAULT_TRANSACTION_PORTS = (8003,)
PROGRAM_NAME = {addr: name for name, addr in KNOWN_PROGRAMS}


# --- fields ---------------------------------------------------------------------------------
def encode_short_vec(n: int) -> bytes:
    """compact-u16: 7 bits per byte, low first, high bit = more bytes follow (1 to 3 bytes)."""
    if not 0 <= n <= 0xFFFF:
        raise ValueError(f"compact-u16 value {n} is outside [0, 65535]")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode_short_vec(s: bytes) -> tuple[int, int]:
    """(value, bytes used) of a compact-u16 at the start of ``s``; (0, len(s)) when truncated
    (the engine's verdict in ``status`` says why; scapy keeps going with what is there)."""
    v = 0
    for i in range(min(3, len(s))):
        b = s[i]
        v |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return v, i + 1
    return v, min(3, len(s))


class ShortVecField(Field):
    """A compact-u16 length (Solana ``short_vec``), computed from ``count_of`` / ``length_of``
    when left as None while building."""

    __slots__ = ["count_of", "length_of"]

    def __init__(self, name, default, count_of=None, length_of=None):
        super().__init__(name, default, fmt="H")
        self.count_of, self.length_of = count_of, length_of

    def i2m(self, pkt, x):
        if x is None and pkt is not None:
            if self.count_of:
                x = len(getattr(pkt, self.count_of) or [])
            elif self.length_of:
                x = len(getattr(pkt, self.length_of) or b"")
        return x or 0

    def addfield(self, pkt, s, val):
        return s + encode_short_vec(self.i2m(pkt, val))

    def getfield(self, pkt, s):
        v, n = decode_short_vec(s)
        return s[n:], v


class Base58Field(StrFixedLenField):
    """Fixed-size bytes shown in base58 (signatures, keys, hashes); base58 text accepted when building."""

    def any2i(self, pkt, x):
        if isinstance(x, str):
            x = base58.b58decode(x)
        return super().any2i(pkt, x)

    def i2repr(self, pkt, x):
        return base58.b58encode(x).decode() if x is not None else "None"


class MessagePrefixField(Field):
    """The message's version: -1 legacy (no prefix byte), else the prefix byte's low 7 bits."""

    def __init__(self, name, default=-1):
        super().__init__(name, default, fmt="b")

    def addfield(self, pkt, s, val):
        return s if val is None or val < 0 else s + bytes([VERSION_PREFIX | (val & 0x7F)])

    def getfield(self, pkt, s):
        if s and s[0] & VERSION_PREFIX:
            return s[1:], s[0] & 0x7F
        return s, -1

    def i2repr(self, pkt, x):
        return "legacy" if x is None or x < 0 else f"v{x}"


class VerdictField(Field):
    """Not on the wire: what the engine's decoder says of the packet (set after dissection)."""

    def __init__(self, name, default=""):
        super().__init__(name, default, fmt="0s")

    def addfield(self, pkt, s, val):
        return s

    def getfield(self, pkt, s):
        return s, ""

    def i2len(self, pkt, x):
        return 0

    def i2repr(self, pkt, x):
        return str(x)


class InstrAccountsField(FieldListField):
    """Account indexes of an instruction, shown with the addresses they point at."""

    def i2repr(self, pkt, x):
        keys = _keys_of(pkt)
        return "[" + ", ".join(f"{i}:{_short(keys[i])}" if i < len(keys) else f"{i}:lookup" for i in (x or [])) + "]"


class ProgramIndexField(ByteField):
    def i2repr(self, pkt, x):
        keys = _keys_of(pkt)
        if x is not None and x < len(keys):
            addr = base58.b58encode(keys[x]).decode()
            return f"{x} ({PROGRAM_NAME.get(addr, addr)})"
        return str(x)


def _keys_of(instr) -> list[bytes]:
    parent = getattr(instr, "parent", None)
    return list(getattr(parent, "account_keys", None) or []) if parent is not None else []


def _short(key: bytes) -> str:
    s = base58.b58encode(key).decode()
    return PROGRAM_NAME.get(s, s[:6] + ".." + s[-4:])


# --- layers ---------------------------------------------------------------------------------
class SolanaInstruction(Packet):
    name = "Solana instruction"
    fields_desc = [
        ProgramIndexField("program_id_index", 0),
        ShortVecField("num_accounts", None, count_of="accounts"),
        InstrAccountsField("accounts", [], ByteField("", 0), count_from=lambda p: p.num_accounts),
        ShortVecField("data_len", None, length_of="data"),
        StrLenField("data", b"", length_from=lambda p: p.data_len),
        VerdictField("decoded"),
    ]

    def extract_padding(self, s):
        return b"", s

    def mysummary(self):
        return self.sprintf("instruction program=%program_id_index% accounts=%num_accounts% data=%data_len%B")


class SolanaLookup(Packet):
    name = "Solana address table lookup"
    fields_desc = [
        Base58Field("account_key", b"\0" * PUBKEY_SZ, PUBKEY_SZ),
        ShortVecField("num_writable", None, count_of="writable_indexes"),
        FieldListField("writable_indexes", [], ByteField("", 0), count_from=lambda p: p.num_writable),
        ShortVecField("num_readonly", None, count_of="readonly_indexes"),
        FieldListField("readonly_indexes", [], ByteField("", 0), count_from=lambda p: p.num_readonly),
    ]

    def extract_padding(self, s):
        return b"", s


class SolanaTx(Packet):
    name = "Solana transaction"
    fields_desc = [
        ShortVecField("num_signatures", None, count_of="signatures"),
        FieldListField("signatures", [], Base58Field("", b"\0" * SIGNATURE_SZ, SIGNATURE_SZ),
                       count_from=lambda p: p.num_signatures),
        MessagePrefixField("version", -1),
        ByteField("num_required_signatures", 1),
        ByteField("num_readonly_signed", 0),
        ByteField("num_readonly_unsigned", 0),
        ShortVecField("num_account_keys", None, count_of="account_keys"),
        FieldListField("account_keys", [], Base58Field("", b"\0" * PUBKEY_SZ, PUBKEY_SZ),
                       count_from=lambda p: p.num_account_keys),
        Base58Field("recent_blockhash", b"\0" * BLOCKHASH_SZ, BLOCKHASH_SZ),
        ShortVecField("num_instructions", None, count_of="instructions"),
        PacketListField("instructions", [], SolanaInstruction, count_from=lambda p: p.num_instructions),
        # v0 only: address table lookups
        ConditionalField(ShortVecField("num_lookups", None, count_of="lookups"), lambda p: _is_v0(p)),
        ConditionalField(PacketListField("lookups", [], SolanaLookup, count_from=lambda p: p.num_lookups),
                         lambda p: _is_v0(p)),
        VerdictField("status"),
    ]

    def do_dissect(self, s):
        raw = bytes(s)
        try:
            rest = super().do_dissect(s)
        except (struct.error, IndexError, ValueError):   # cut short: the fields read so far stay
            rest = b""
        self._judge(raw[:len(raw) - len(rest)] if rest else raw)
        return rest

    def _judge(self, payload: bytes) -> None:
        """The engine's verdict on the transaction, and its decoders' reading of each instruction."""
        code, _t, _instrs, _luts = decode_one(payload)
        self.status = "ok" if code == 0 else status_name(code)
        if code != 0:
            return
        from .wire.programs.events import IX_NAMES
        from .wire.programs.one_transaction import events_of
        for ins in self.instructions:
            keys = _keys_of(ins)
            if ins.program_id_index < len(keys) and _short(keys[ins.program_id_index]) == "compute_budget":
                ins.decoded = _compute_budget_text(bytes(ins.data))
        _st, events, _rej = events_of(payload)
        for ev in events:
            i = int(ev["instr_index"])
            if 0 <= i < len(self.instructions):
                self.instructions[i].decoded = _event_text(ev, IX_NAMES)

    def mysummary(self):
        sig = base58.b58encode(self.signatures[0]).decode()[:12] + ".." if self.signatures else "-"
        return (f"Solana tx {sig} {MessagePrefixField('v').i2repr(self, self.version)} "
                f"{len(self.instructions)} instr [{self.status}]")

    def extract_padding(self, s):
        return b"", s

    def signature(self) -> str:
        """base58 of the first signature (the transaction id)."""
        return base58.b58encode(self.signatures[0]).decode() if self.signatures else ""


# ComputeBudgetInstruction tags (agave sdk/compute-budget-interface): u8 tag, then the value
CB_REQUEST_HEAP_FRAME, CB_SET_CU_LIMIT, CB_SET_CU_PRICE, CB_SET_LOADED_DATA_SIZE = 1, 2, 3, 4


def _compute_budget_text(data: bytes) -> str:
    if len(data) == 5 and data[0] == CB_SET_CU_LIMIT:
        return f"compute_budget.set_compute_unit_limit: {int.from_bytes(data[1:5], 'little'):,} CU"
    if len(data) == 9 and data[0] == CB_SET_CU_PRICE:
        return f"compute_budget.set_compute_unit_price: {int.from_bytes(data[1:9], 'little'):,} micro-lamports/CU"
    if len(data) == 5 and data[0] == CB_REQUEST_HEAP_FRAME:
        return f"compute_budget.request_heap_frame: {int.from_bytes(data[1:5], 'little'):,} bytes"
    if len(data) == 5 and data[0] == CB_SET_LOADED_DATA_SIZE:
        return f"compute_budget.set_loaded_accounts_data_size_limit: {int.from_bytes(data[1:5], 'little'):,} bytes"
    return ""


def _is_v0(p) -> bool:
    return p.version is not None and p.version >= 0


def _event_text(ev, ix_names) -> str:
    name = ix_names.get(int(ev["ix"]), str(int(ev["ix"])))
    if int(ev["kind"]) == 1:      # swap
        a_to_b = {1: "a->b", 0: "b->a"}.get(int(ev["a_to_b"]), "direction from accounts")
        what = "amount_in" if int(ev["exact_in"]) == 1 else "max_in"
        out = "min_out" if int(ev["exact_in"]) == 1 else "amount_out"
        return f"{name}: {what}={int(ev['amount_in']):,} {out}={int(ev['amount_out']):,} {a_to_b}"
    return f"{name}: {int(ev['amount_in']):,}"


def _b58(b: bytes) -> str:
    return base58.b58encode(bytes(b)).decode()


def describe_transaction(payload: bytes, lookup_tables: dict[str, list[str]] | None = None) -> dict:
    """What the explorer shows of a transaction, as plain data (``workbench inspect``): the
    engine's verdict, signatures, the message header, every account key with its role and
    program name, the instructions (program by name, accounts, data, the decoders' reading)
    and the events the engine's program decoders find (swaps with pool, direction and exact
    amounts; transfers; Jito tips). Amounts are ints.

    Accounts loaded from a lookup table are on chain, not in the packet: they are named
    ``lookup <table>[<index>]``, or resolved to their address when ``lookup_tables`` (table
    address -> its addresses, base58, e.g. from a market snapshot) holds the table."""
    tables = lookup_tables or {}

    def via(table: str, j: int) -> str:
        known = tables.get(table)
        return known[j] if known is not None and 0 <= j < len(known) else f"lookup {table}[{j}]"

    from .wire.programs.events import ACCT_IN_LUT, IX_NAMES, KIND_NAMES, KIND_SWAP
    from .wire.programs.one_transaction import events_of
    tx = SolanaTx(payload)
    keys = [bytes(k) for k in tx.account_keys]
    n, req = len(keys), int(tx.num_required_signatures or 0)
    ro_signed, ro_unsigned = int(tx.num_readonly_signed or 0), int(tx.num_readonly_unsigned or 0)
    loaded = ([(_b58(lu.account_key), int(i), True) for lu in (tx.lookups or []) for i in lu.writable_indexes]
              + [(_b58(lu.account_key), int(i), False) for lu in (tx.lookups or []) for i in lu.readonly_indexes])

    def account(i: int) -> str:
        if i < n:
            return _b58(keys[i])
        if i - n < len(loaded):
            table, j, _w = loaded[i - n]
            return via(table, j)
        return f"account #{i} (none such)"

    accounts = []
    for i, k in enumerate(keys):
        addr = _b58(k)
        signer = i < req
        writable = i < req - ro_signed if signer else i < n - ro_unsigned
        accounts.append({"index": i, "address": addr, "signer": signer, "writable": writable,
                         "program": PROGRAM_NAME.get(addr, "")})
    for j, (table, idx, w) in enumerate(loaded):
        addr = via(table, idx)
        accounts.append({"index": n + j, "address": addr, "signer": False, "writable": w,
                         "program": PROGRAM_NAME.get(addr, ""), "lookup": f"{table}[{idx}]"})
    instructions, programs = [], []
    for j, ins in enumerate(tx.instructions):
        pidx = int(ins.program_id_index)
        paddr = account(pidx)
        name = PROGRAM_NAME.get(paddr, "")
        if (name or paddr) not in programs:
            programs.append(name or paddr)
        data = bytes(ins.data)
        instructions.append({"index": j, "program": name or paddr, "program_address": paddr,
                             "accounts": [account(int(a)) for a in ins.accounts],
                             "account_indexes": [int(a) for a in ins.accounts], "data_sz": len(data),
                             "data_hex": data.hex(), "decoded": str(ins.decoded or "")})
    events = []
    code, evs, rejects = events_of(payload) if tx.status == "ok" else (None, [], {})

    def at(off: int) -> str:
        off = int(off)
        return _b58(payload[off:off + PUBKEY_SZ]) if off >= 0 else ("lookup" if off == ACCT_IN_LUT else "")

    for ev in evs:
        kind = KIND_NAMES.get(int(ev["kind"]), str(int(ev["kind"])))
        e = {"instruction": int(ev["instr_index"]), "kind": kind, "what": IX_NAMES.get(int(ev["ix"]), str(int(ev["ix"]))),
             "amount_in": int(ev["amount_in"]), "amount_out": int(ev["amount_out"]),
             "source": at(ev["src_off"]), "destination": at(ev["dst_off"]), "authority": at(ev["authority_off"])}
        if int(ev["kind"]) == KIND_SWAP:
            pool = at(ev["pool_off"])
            if int(ev["pool_off"]) == ACCT_IN_LUT:
                pool = via(at(ev["pool_lut_key_off"]), int(ev["pool_lut_index"]))
            e.update(pool=pool, exact_in=bool(int(ev["exact_in"]) == 1),
                     direction={1: "a->b", 0: "b->a"}.get(int(ev["a_to_b"]), "from the accounts"),
                     mint_in=at(ev["mint_in_off"]), mint_out=at(ev["mint_out_off"]))
        events.append(e)
    return {"status": str(tx.status), "signature": tx.signature(), "signatures": [_b58(x) for x in tx.signatures],
            "version": MessagePrefixField("v").i2repr(tx, tx.version),
            "header": {"required_signatures": req, "readonly_signed": ro_signed, "readonly_unsigned": ro_unsigned},
            "recent_blockhash": _b58(tx.recent_blockhash), "account_keys": accounts, "programs": programs,
            "instructions": instructions, "lookups": [{"table": _b58(lu.account_key),
                                                      "writable": [int(i) for i in lu.writable_indexes],
                                                      "readonly": [int(i) for i in lu.readonly_indexes]}
                                                     for lu in (tx.lookups or [])],
            "events": events, "event_rejects": dict(rejects)}


class SolanaShred(Packet):
    name = "Solana shred"
    fields_desc = [
        Base58Field("signature", b"\0" * SIGNATURE_SZ, SIGNATURE_SZ),
        XByteField("variant", 0xA5),
        LELongField("slot", 0),
        LEIntField("index", 0),
        LEShortField("shred_version", 0),
        LEIntField("fec_set_index", 0),
        # data header (data shreds) or code header (code shreds): the same 5-6 bytes, read by kind
        LEShortField("parent_offset_or_num_data", 0),
        ByteField("flags_or_num_code_lo", 0),
        LEShortField("size_or_num_code_hi_position", 0),
        VerdictField("kind"),
        VerdictField("status"),
    ]

    def do_dissect(self, s):
        raw = bytes(s)
        try:
            rest = super().do_dissect(s)
        except (struct.error, IndexError, ValueError):
            rest = b""
        code, row = decode_shred_one(raw)
        k = shred_kind(_np_view(raw), 0, len(raw))
        self.kind = {KIND_DATA: "data", KIND_CODE: "code", KIND_NONE: "unknown"}.get(int(k), str(k))
        self.status = "ok" if row is not None else status_name(code)
        if row is not None and k == KIND_DATA:
            fl = int(raw[COMMON_HDR_SZ + 2])
            self.kind = (f"data parent_offset={int(row['parent_offset'])} size={int(row['size'])} "
                         f"data={int(row['data_sz'])}B flags=0x{fl:02x}"
                         f"{' DATA_COMPLETE' if fl & FLAG_DATA_COMPLETE else ''}"
                         f"{' SLOT_COMPLETE' if fl & FLAG_SLOT_COMPLETE == FLAG_SLOT_COMPLETE else ''}"
                         f" ref_tick={fl & FLAG_REF_TICK_MASK}")
        elif row is not None and k == KIND_CODE:
            self.kind = (f"code num_data={int(row['num_data'])} num_code={int(row['num_code'])} "
                         f"position={int.from_bytes(raw[COMMON_HDR_SZ + 4:COMMON_HDR_SZ + 6], 'little')}")
        return rest

    def extract_padding(self, s):
        return b"", s      # the shred's payload (entry data / erasure shard) stays in Raw

    def mysummary(self):
        return f"Solana shred slot={self.slot} index={self.index} [{self.status}]"


assert COMMON_HDR_SZ + DATA_HDR_SZ == 88


def _np_view(b: bytes):
    import numpy as np
    return np.frombuffer(b, np.uint8)


# --- binding and the engine's port rules -------------------------------------------------
_BOUND: set[tuple[str, int]] = set()


def bind_ports(transaction_ports=None, shred_ports=None, settings: Settings | None = None) -> dict:
    """Bind SolanaTx / SolanaShred to UDP destination ports; returns what was bound.

    Ports default to ``settings`` (``Settings()``: defaults < TOML < WORKBENCH_* env);
    with none configured, transactions are bound to DEFAULT_TRANSACTION_PORTS.
    """
    settings = settings or Settings()
    tx = tuple(transaction_ports if transaction_ports is not None else settings.transaction_ports)
    sh = tuple(shred_ports if shred_ports is not None else settings.shred_ports)
    if not tx and not sh:
        tx = DEFAULT_TRANSACTION_PORTS
    for layer, ports in ((SolanaTx, tx), (SolanaShred, sh)):
        for p in ports:
            if (layer.__name__, p) not in _BOUND:
                bind_layers(UDP, layer, dport=int(p))
                _BOUND.add((layer.__name__, p))
    return {"transaction_ports": tx, "shred_ports": sh}


def payload_layer(payload: bytes, dport: int, settings: Settings | None = None):
    """The layer the engine would decode this UDP payload as (its port rules), or None."""
    settings = settings or Settings()
    if dport in settings.shred_ports:
        return SolanaShred
    if dport in settings.transaction_ports:
        return SolanaTx
    if dport in settings.ignore_ports:
        return None
    code, *_ = decode_one(payload)
    if code == 0:
        return SolanaTx
    if shred_kind(_np_view(payload), 0, len(payload)) != KIND_NONE:
        return SolanaShred
    return SolanaTx       # shows where the transaction decode failed (status)


def dissect_frame(frame: bytes, linktype: int = 1, settings: Settings | None = None) -> Packet:
    """A frame as scapy dissects it, its UDP payload read by the layer the engine would use."""
    from scapy.layers.l2 import CookedLinux, Ether
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    bind_ports(settings=settings)
    cls = {1: Ether, 113: CookedLinux, 101: IP, 12: IP, 228: IP, 229: IPv6}.get(int(linktype))
    if cls is None:
        from scapy.config import conf
        cls = conf.l2types.get(int(linktype), Raw)
    if cls is IP and frame[:1] and frame[0] >> 4 == 6:
        cls = IPv6
    pkt = cls(frame)
    udp = pkt.getlayer(UDP)
    if udp is not None and not (udp.payload.haslayer(SolanaTx) or udp.payload.haslayer(SolanaShred)):
        payload = bytes(udp.payload)
        layer = payload_layer(payload, int(udp.dport), settings)
        if layer is not None and payload:
            udp.remove_payload()
            udp.add_payload(layer(payload))
    return pkt


def show_frame(capture, index: int, settings: Settings | None = None) -> str:
    """``pkt.show()`` text of frame ``index`` of a capture (the explorer and notebooks use it)."""
    from .frame_report import find_frame
    batch, i = find_frame(capture, index)
    off, cl = int(batch.off[i]), int(batch.caplen[i])
    pkt = dissect_frame(bytes(batch.buf[off:off + cl]), int(batch.linktype[i]), settings)
    return pkt.show(dump=True)


def read_frame(capture, index: int, settings: Settings | None = None) -> Packet:
    """Frame ``index`` of a capture as a dissected scapy packet."""
    from .frame_report import find_frame
    batch, i = find_frame(capture, index)
    off, cl = int(batch.off[i]), int(batch.caplen[i])
    return dissect_frame(bytes(batch.buf[off:off + cl]), int(batch.linktype[i]), settings)
