"""Engine rows -> Arrow tables, once per batch (the Python edge of the engine).

Columns follow the feature table (features.py), plus ``signature`` (the first signature's 64
raw bytes, Arrow ``fixed_size_binary(64)``) and ``programs`` (the base58 program ids, a list
of dictionary-encoded strings whose dictionary holds only the names its rows use, sorted),
built from offsets with no Python object per row.

Why raw bytes and a dictionary (issue 16, the second deliberate change of the row files'
format): base58 of every signature and a string per program of every row cost the sink more
CPU than the engine spends on the packet. Humans and text consumers still get base58: the
store, the API and live views get ``readable_tx_table`` (signature base58, programs
list<string>), and a reader of ``tx_features.parquet`` calls ``read_tx_features`` (or
``readable_tx_table`` on what it read, ``base58_signatures`` on one column).
"""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..arrow_columns import column, numbers, strings
from ..wire.base58 import encode64_column, encode_column
from ..wire.keys import key_to_base58
from ..wire.txn import SIGNATURE_SZ
from ..wire.status import STATUS_NAMES
from .features import FEATURE_NAMES, TX_DTYPE
from .market.layout import PROGRAM_NAMES
from .opps import (MODEL_FEATURES, N_MODEL_FEATURES, OPP_DTYPE, OPP_SANDWICH, OPP_TYPE_NAMES, POOLS_PER_OPP,
                   SWAP_DTYPE, SWAP_STATUS_NAMES)

# Columns of tx_features.parquet, in order; `version` becomes a string ('legacy' or '0').
# The row files' Arrow types of the two columns below are the compact ones (module docstring).
SIGNATURE_TYPE = pa.binary(SIGNATURE_SZ)                                 # fixed_size_binary(64)
PROGRAMS_TYPE = pa.list_(pa.field("element", pa.dictionary(pa.int32(), pa.string()), nullable=False))


def required_table(cols: dict) -> pa.Table:
    """A table of ``cols`` whose fields are all non-nullable: the engine writes no missing value
    (missing is a documented sentinel), and Parquet then writes no definition levels."""
    arrays = list(cols.values())
    return pa.Table.from_arrays(arrays, schema=pa.schema([pa.field(k, a.type, nullable=False)
                                                          for k, a in zip(cols, arrays)]))
TX_COLUMNS = ("tx_index", "packet_index", "ts_ns", "slot", "signature", "version") + tuple(
    n for n in FEATURE_NAMES if n not in ("tx_index", "packet_index", "ts_ns", "slot", "version")) + ("programs",)


ROW_BLOCK = 4096     # rows per step when record rows are split into columns (a block stays in the CPU cache)


def record_columns(rows: np.ndarray, names) -> dict[str, np.ndarray]:
    """Contiguous copies of the scalar fields ``names`` of the record array ``rows``, a block of rows
    at a time: copying out one field of every row after another walks the whole array (larger
    than the cache) once per field; by blocks, each block is read from memory once."""
    n = rows.shape[0]
    out = {c: np.empty(n, rows.dtype[c]) for c in names}
    for lo in range(0, n, ROW_BLOCK):
        part = rows[lo:lo + ROW_BLOCK]
        for c in names:
            out[c][lo:lo + ROW_BLOCK] = part[c]
    return out


def encode_strings(src: np.ndarray, offs: np.ndarray, n: int) -> pa.StringArray:
    """A ``pyarrow.StringArray`` with the base58 of each ``n``-byte value at ``offs``."""
    offs = np.asarray(offs, np.int64)
    data = np.empty(max(1, offs.shape[0] * (2 * n)), np.uint8)
    offsets = np.empty(offs.shape[0] + 1, np.int32)
    # signatures (the only width the engine encodes) go straight to the 64-byte kernel: through
    # encode_column, LLVM would compile that kernel a second time, inlined into it
    used = (encode64_column(src, offs, data, offsets) if n == SIGNATURE_SZ else
            encode_column(src, offs, n, data, offsets))
    return pa.StringArray.from_buffers(offs.shape[0], pa.py_buffer(offsets), pa.py_buffer(data[:used]))


class KeyNames:
    """Base58 names of interned key ids, cached (ids never change within a run)."""

    def __init__(self, keys: np.ndarray):
        self.keys = keys
        self._names: list[str] = []
        self._array = strings([])

    def names(self, upto: int) -> list[str]:
        while len(self._names) < upto:
            self._names.append(key_to_base58(self.keys, len(self._names)))
        return self._names

    def array(self, upto: int) -> pa.StringArray:
        """The names of ids [0, upto) or more, as an Arrow array, rebuilt only when it must grow."""
        if len(self._array) < upto:
            self._array = strings(self.names(upto))
        return self._array


# the `version` column's text for each int8 code (index = code + 128): 'legacy' for -1, else the number
_VERSION_NAMES = strings(["legacy" if c < 0 else str(c) for c in range(-128, 128)])


_TX_PLAIN = tuple(c for c in TX_COLUMNS if c not in ("signature", "version", "programs"))   # copied as they are


def signature_array(sigs: np.ndarray) -> pa.FixedSizeBinaryArray:
    """``fixed_size_binary(64)`` over the rows of ``sigs`` (uint8 [n, 64], contiguous; not copied)."""
    sigs = np.ascontiguousarray(sigs, np.uint8)
    return pa.FixedSizeBinaryArray.from_buffers(SIGNATURE_TYPE, sigs.shape[0], [None, pa.py_buffer(sigs)])


def programs_array(offsets: np.ndarray, ids: np.ndarray, key_names: KeyNames) -> pa.ListArray:
    """The ``programs`` column: list ``i`` holds the names of key ids ``ids[offsets[i]:offsets[i + 1]]``,
    dictionary-encoded; the dictionary holds the names used, sorted (so that a table's bytes depend
    only on its rows, however its rows were grouped)."""
    ids = np.asarray(ids, np.int64)
    top = int(ids.max()) + 1 if ids.size else 0
    used = np.zeros(top, np.bool_)
    used[ids] = True
    kid = np.flatnonzero(used)
    names = key_names.array(top).take(column(kid))
    return _sorted_dictionary(np.asarray(offsets, np.int32), ids, kid, names)


def _sorted_dictionary(offsets: np.ndarray, codes: np.ndarray, used: np.ndarray, names: pa.Array) -> pa.ListArray:
    """List<dictionary> whose values are ``codes`` (each one of ``used``, ascending, named ``names``),
    with a dictionary of ``names`` sorted."""
    order = np.asarray(np.asarray(names.to_pylist(), dtype=str).argsort(kind="stable"), np.int64)
    remap = np.zeros(int(used[-1]) + 1 if used.size else 0, np.int32)
    remap[used[order]] = np.arange(order.shape[0], dtype=np.int32)
    values = pa.DictionaryArray.from_arrays(column(remap[codes] if codes.size else np.zeros(0, np.int32)),
                                            names.take(column(order)))
    return pa.ListArray.from_arrays(column(offsets), values, type=PROGRAMS_TYPE)


def canonical_programs(col) -> pa.ListArray:
    """A ``programs`` column (list<dictionary>, e.g. a slice or a join of several tables) with its
    dictionary cut to the names its rows use, sorted: as ``programs_array`` would build it."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    offsets = numbers(col.offsets)
    offsets = (offsets - offsets[0]).astype(np.int32)
    values = col.flatten()
    codes = numbers(values.indices).astype(np.int64)
    used = np.zeros(len(values.dictionary), np.bool_)
    used[codes] = True
    kept = np.flatnonzero(used)
    return _sorted_dictionary(offsets, codes, kept, values.dictionary.take(column(kept)))


def tx_table(tx: np.ndarray, prog_ids: np.ndarray, key_names: KeyNames) -> pa.Table:
    """One Arrow table from ``tx`` rows (TX_DTYPE) and their program-id rows."""
    n = tx.shape[0]
    cols = {}
    plain = record_columns(tx, _TX_PLAIN)
    for name in TX_COLUMNS:
        if name == "signature":
            cols[name] = signature_array(tx["_sig"].copy())    # the table never views ``tx`` (sinks.py reuses it)
        elif name == "version":
            cols[name] = _VERSION_NAMES.take(column(tx["version"].astype(np.int16) + 128))
        elif name == "programs":
            counts = tx["num_programs"].astype(np.int32)
            offsets = np.zeros(n + 1, np.int32)
            np.cumsum(counts, out=offsets[1:])
            first = tx["_prog_first"]
            # program rows are contiguous per tx and in tx order, so gather them in one go
            idx = (np.repeat(first - offsets[:-1], counts) + np.arange(offsets[-1], dtype=np.int32)) if n else \
                np.zeros(0, np.int32)
            ids = prog_ids[idx] if idx.size else np.zeros(0, np.int32)
            cols[name] = programs_array(offsets, ids, key_names)
        else:
            cols[name] = column(plain[name])
    return required_table(cols)


def base58_signatures(col) -> pa.StringArray:
    """Base58 text of a ``signature`` column (fixed_size_binary(64), as the row files hold it):
    the one conversion for readers that show or compare signatures as text."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_string(col.type):
        return col
    n = len(col)
    raw = np.frombuffer(col.buffers()[1], np.uint8)[col.offset * SIGNATURE_SZ:(col.offset + n) * SIGNATURE_SZ]
    return encode_strings(raw, np.arange(n, dtype=np.int64) * SIGNATURE_SZ, SIGNATURE_SZ)


def readable_tx_table(t: pa.Table) -> pa.Table:
    """tx_features rows for text consumers (the store, the API, views, people): ``signature`` as
    base58 text and ``programs`` as list<string>; a table already in that form is returned as is."""
    if "signature" in t.column_names and pa.types.is_fixed_size_binary(t.schema.field("signature").type):
        i = t.column_names.index("signature")
        t = t.set_column(i, "signature", base58_signatures(t.column(i)))
    if "programs" in t.column_names and pa.types.is_dictionary(t.schema.field("programs").type.value_type):
        i = t.column_names.index("programs")
        t = t.set_column(i, "programs", t.column(i).cast(pa.list_(pa.string())))
    return t


def read_tx_features(path, columns=None) -> pa.Table:
    """``tx_features.parquet`` (or its ``columns``) as text consumers want it (``readable_tx_table``)."""
    return readable_tx_table(pq.read_table(path, columns=columns))


def empty_tx_table(key_names: KeyNames) -> pa.Table:
    return tx_table(np.zeros(0, TX_DTYPE), np.zeros(0, np.int32), key_names)


_STATUS_CODES = sorted(STATUS_NAMES)
_STATUS_DICT = strings([STATUS_NAMES[c] for c in _STATUS_CODES])
_STATUS_INDEX = np.zeros(256, np.int8)          # code (low byte of the int16) -> dictionary index
for _i, _c in enumerate(_STATUS_CODES):
    _STATUS_INDEX[_c & 0xFF] = _i


def status_table(status: np.ndarray, first_index: int, ts_ns: np.ndarray) -> pa.Table:
    """One row per packet: index, event time and status (dictionary-encoded names)."""
    idx = _STATUS_INDEX[status.astype(np.int64) & 0xFF]
    return required_table({
        "packet_index": column(np.arange(first_index, first_index + status.shape[0], dtype=np.int64)),
        "ts_ns": column(np.array(ts_ns, np.int64)),          # a copy: the caller may reuse ``ts_ns``
        "status": pa.DictionaryArray.from_arrays(column(idx), _STATUS_DICT),
    })


# ============================================================================================
# swaps.parquet and opportunities.parquet (engine/opps.py rows)
# ============================================================================================

_SWAP_STATUS_DICT = strings(SWAP_STATUS_NAMES)
_PROGRAM_DICT = strings([PROGRAM_NAMES.get(k, "") for k in range(max(PROGRAM_NAMES) + 1)])
OPP_NAMESPACE = uuid.UUID("6f1c2d8e-5a4b-4c3d-9e2f-1a0b9c8d7e6f")   # uuid5 namespace of opportunity ids


class MarketNames:
    """Base58 names of a market's pools and tokens, and its position ids."""

    def __init__(self, key_names: KeyNames, market):
        self.market = market
        kids = np.concatenate([market.pool_kid, market.token_kid]).astype(np.int64)
        names = key_names.names(int(kids.max()) + 1) if kids.size else []
        self.pools = strings([names[k] for k in market.pool_kid])
        self.tokens = strings([names[k] for k in market.token_kid])


_SWAP_FIELDS = ("ts_ns", "packet_index", "tx_index", "slot", "instr_index", "pool_row", "program", "a_to_b",
                "exact_in", "amount_in", "amount_out", "limit", "reserve_a", "reserve_b", "status")


def swap_table(sw: np.ndarray, mn: MarketNames) -> pa.Table:
    """swaps.parquet rows (SWAP_DTYPE)."""
    v = record_columns(sw, _SWAP_FIELDS)
    cols = {c: column(v[c]) for c in ("ts_ns", "packet_index", "tx_index", "slot")}
    cols["instr_index"] = column(v["instr_index"])
    cols["pool"] = mn.pools.take(column(v["pool_row"].astype(np.int32)))
    cols["pool_row"] = column(v["pool_row"])
    cols["program"] = _PROGRAM_DICT.take(column(v["program"].astype(np.int32)))
    for c in ("a_to_b", "exact_in", "amount_in", "amount_out", "limit", "reserve_a", "reserve_b"):
        cols[c] = column(v[c])
    cols["status"] = _SWAP_STATUS_DICT.take(column(v["status"].astype(np.int32)))
    return required_table(cols)


_UUID_TEXT_HEX = np.r_[0:8, 9:13, 14:18, 19:23, 24:36]     # where a UUID's 32 hex digits go in its text


def opportunity_uuids(capture_id: str, opps: np.ndarray, trigger_signatures: list[str]) -> np.ndarray:
    """Deterministic UUIDs (uint8 [n, 16]): uuid5 of the capture id, packet, transaction row, kind,
    rank in the transaction and the trigger transaction's signature (so that two captures alike in
    what seeds ``capture_id`` still give their own transactions' opportunities their own ids).

    ``uuid.uuid5(OPP_NAMESPACE, name).bytes`` for each, made without a UUID object per row: the
    SHA-1 digests (hashlib, one call a row), then the version and variant bits for all rows at once
    (the sink thread holds the GIL for a sixth of the time)."""
    n = opps.shape[0]
    ns, sha1 = OPP_NAMESPACE.bytes, hashlib.sha1
    digests = b"".join([sha1(ns + f"{capture_id}:{p}:{t}:{k}:{s}:{sig}".encode()).digest()[:16]
                        for p, t, k, s, sig in zip(opps["packet_index"].tolist(), opps["tx_index"].tolist(),
                                                   opps["kind"].tolist(), opps["seq"].tolist(), trigger_signatures)])
    raw = np.frombuffer(digests, np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50           # version 5
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80           # the RFC 4122 variant
    return raw


def uuid_texts(raw: np.ndarray) -> np.ndarray:
    """The canonical text (uint8 [n, 36], lower-case hex with dashes) of UUIDs ``raw`` (uint8 [n, 16])."""
    n = raw.shape[0]
    text = np.full((n, 36), ord("-"), np.uint8)
    text[:, _UUID_TEXT_HEX] = np.frombuffer(raw.tobytes().hex().encode(), np.uint8).reshape(n, 32)
    return text


def opportunity_ids(capture_id: str, opps: np.ndarray, trigger_signatures: list[str]) -> pa.StringArray:
    """``str(uuid.uuid5(...))`` of each opportunity (``opportunity_uuids``), as an Arrow array."""
    n = opps.shape[0]
    text = uuid_texts(opportunity_uuids(capture_id, opps, trigger_signatures))
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def opp_table(opps: np.ndarray, mn: MarketNames, capture_id: str) -> pa.Table:
    """opportunities.parquet rows (OPP_DTYPE)."""
    n = opps.shape[0]
    sigs = encode_strings(np.ascontiguousarray(opps["_sig"]).reshape(-1), np.arange(n, dtype=np.int64) * SIGNATURE_SZ,
                          SIGNATURE_SZ) if n else strings([])
    sig_list = sigs.to_pylist()
    cols = {"ts_ns": column(opps["ts_ns"]),
            "opportunity_id": opportunity_ids(capture_id, opps, sig_list),
            "type": strings([OPP_TYPE_NAMES[k] for k in opps["kind"].tolist()])}
    for c in ("packet_index", "tx_index", "slot"):
        cols[c] = column(opps[c])
    counts = opps["n_pools"].astype(np.int32)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    rows = opps["pools"][np.arange(POOLS_PER_OPP)[None, :] < counts[:, None]] if n else np.zeros(0, np.int32)
    cols["pools"] = pa.ListArray.from_arrays(column(offsets), mn.pools.take(column(rows.astype(np.int32))))
    cols["victim_signature"] = strings(np.where(opps["kind"] == OPP_SANDWICH, np.asarray(sig_list, dtype=object), "")
                                       .tolist())
    cols["trigger_signature"] = sigs
    cols["profit_mint"] = mn.tokens.take(column(opps["profit_token"].astype(np.int32)))
    for c in ("amount_in", "amount_out", "profit_quote", "tip_lamports", "expected_profit_lamports",
              "expected_profit_sol"):
        cols[c] = column(opps[c])
    pos = opps["position_row"]
    cols["position_id"] = column(np.where(pos >= 0, mn.market.pos_id[np.maximum(pos, 0)] if mn.market.pos_id.size
                                            else -1, -1).astype(np.int64))
    cols["detect_ns"] = column(opps["detect_ns"])
    cols["score"] = column(opps["score"])
    feats = np.ascontiguousarray(opps["features"]).reshape(n, N_MODEL_FEATURES)
    for j, name in enumerate(MODEL_FEATURES):
        cols[name] = column(feats[:, j])
    return pa.table(cols)


def empty_swap_table(mn: MarketNames) -> pa.Table:
    return swap_table(np.zeros(0, SWAP_DTYPE), mn)


def empty_opp_table(mn: MarketNames) -> pa.Table:
    return opp_table(np.zeros(0, OPP_DTYPE), mn, "")
