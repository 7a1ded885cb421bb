"""Engine rows -> Arrow tables, once per batch (the Python edge of the engine).

Columns follow the feature table (features.py), plus ``signature`` (base58, encoded by
a jitted loop) and ``programs`` (list<string> of base58 program ids, built from offsets
with no Python object per row).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..wire.base58 import encode_column
from ..wire.keys import key_to_base58
from ..wire.txn import SIGNATURE_SZ
from ..wire.status import STATUS_NAMES
from .features import FEATURE_NAMES, TX_DTYPE

# Columns of tx_features.parquet, in order; `version` becomes a string ('legacy' or '0').
TX_COLUMNS = ("tx_index", "packet_index", "ts_ns", "slot", "signature", "version") + tuple(
    n for n in FEATURE_NAMES if n not in ("tx_index", "packet_index", "ts_ns", "slot", "version")) + ("programs",)


def encode_strings(src: np.ndarray, offs: np.ndarray, n: int) -> pa.StringArray:
    """A ``pyarrow.StringArray`` with the base58 of each ``n``-byte value at ``offs``."""
    offs = np.asarray(offs, np.int64)
    data = np.empty(max(1, offs.shape[0] * (2 * n)), np.uint8)
    offsets = np.empty(offs.shape[0] + 1, np.int32)
    used = encode_column(src, offs, n, data, offsets)
    return pa.StringArray.from_buffers(offs.shape[0], pa.py_buffer(offsets), pa.py_buffer(data[:used]))


class KeyNames:
    """Base58 names of interned key ids, cached (ids never change within a run)."""

    def __init__(self, keys: np.ndarray):
        self.keys = keys
        self._names: list[str] = []

    def names(self, upto: int) -> list[str]:
        while len(self._names) < upto:
            self._names.append(key_to_base58(self.keys, len(self._names)))
        return self._names


def tx_table(tx: np.ndarray, prog_ids: np.ndarray, key_names: KeyNames) -> pa.Table:
    """One Arrow table from ``tx`` rows (TX_DTYPE) and their program-id rows."""
    n = tx.shape[0]
    cols = {}
    for name in TX_COLUMNS:
        if name == "signature":
            sigs = np.ascontiguousarray(tx["_sig"]).reshape(-1)
            cols[name] = encode_strings(sigs, np.arange(n, dtype=np.int64) * SIGNATURE_SZ, SIGNATURE_SZ)
        elif name == "version":
            v = tx["version"]
            cols[name] = pa.array(np.where(v < 0, "legacy", v.astype(str)), pa.string())
        elif name == "programs":
            counts = tx["num_programs"].astype(np.int32)
            offsets = np.zeros(n + 1, np.int32)
            np.cumsum(counts, out=offsets[1:])
            first = tx["_prog_first"]
            # program rows are contiguous per tx and in tx order, so gather them in one go
            idx = (np.repeat(first - offsets[:-1], counts) + np.arange(offsets[-1], dtype=np.int32)) if n else \
                np.zeros(0, np.int32)
            ids = prog_ids[idx] if idx.size else np.zeros(0, np.int32)
            top = int(ids.max()) + 1 if ids.size else 0
            names = pa.array(key_names.names(top), pa.string()) if top else pa.array([], pa.string())
            cols[name] = pa.ListArray.from_arrays(pa.array(offsets), names.take(pa.array(ids)))
        else:
            cols[name] = pa.array(np.ascontiguousarray(tx[name]))
    return pa.table(cols)


def empty_tx_table(key_names: KeyNames) -> pa.Table:
    return tx_table(np.zeros(0, TX_DTYPE), np.zeros(0, np.int32), key_names)


_STATUS_CODES = sorted(STATUS_NAMES)
_STATUS_DICT = pa.array([STATUS_NAMES[c] for c in _STATUS_CODES], pa.string())
_STATUS_INDEX = np.zeros(256, np.int8)          # code (low byte of the int16) -> dictionary index
for _i, _c in enumerate(_STATUS_CODES):
    _STATUS_INDEX[_c & 0xFF] = _i


def status_table(status: np.ndarray, first_index: int, ts_ns: np.ndarray) -> pa.Table:
    """One row per packet: index, event time and status (dictionary-encoded names)."""
    idx = _STATUS_INDEX[status.astype(np.int64) & 0xFF]
    return pa.table({
        "packet_index": pa.array(np.arange(first_index, first_index + status.shape[0], dtype=np.int64)),
        "ts_ns": pa.array(np.asarray(ts_ns, np.int64)),
        "status": pa.DictionaryArray.from_arrays(pa.array(idx), _STATUS_DICT),
    })
