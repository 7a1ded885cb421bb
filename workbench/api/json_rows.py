"""Each row of an Arrow table as a JSON object, encoded column by column without Python per row.

The bytes are the same as ``orjson.dumps`` of the row's dict (keys in the table's column order):
numbers (ints, uint64, bools, floats with NaN and infinities as null) are orjson's own
text, from one ``orjson.dumps`` of the column's numpy array split at its commas; strings and
lists of strings are escaped here as orjson escapes them (RFC 8259: ``"``, ``\\`` and control
characters below 0x20, short forms for \\b \\t \\n \\f \\r, ``\\u00XX`` for the rest; everything
else, non-ASCII UTF-8 included, as it is). A jitted pass then lays the rows out, one after
the other, each followed by a newline (a byte orjson never writes), so ``buf[offs[i]:offs[i + 1] - 1]``
is row ``i`` and ``buf.split(b"\\n")`` cuts them all in one C loop.

A table this module cannot encode exactly (nulls, another column type) gives None: the caller
encodes it row by row with orjson instead.
"""

from __future__ import annotations

import functools

import numpy as np
import orjson
import pyarrow as pa
from numba import njit, uint64

ROW_END = 10                    # b"\n": ends each row in the buffer (never inside orjson's output)
_COMMA = 44
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
# the control characters JSON writes as a backslash and a letter (orjson's choice too); the others as \u00XX
_SHORT_ESCAPES = np.zeros(32, np.uint8)
for _c, _letter in ((8, "b"), (9, "t"), (10, "n"), (12, "f"), (13, "r")):
    _SHORT_ESCAPES[_c] = ord(_letter)


# The kernels index with unsigned integers: a signed index costs a negative-index wraparound (a
# compare and a select) per byte, and these loops do little else per byte.

@njit(cache=True, nogil=True)
def _escaped_size(data, lo, hi):
    """Bytes of data[lo:hi] as a JSON string body (without the quotes)."""
    n = 0
    i, hi = uint64(lo), uint64(hi)
    while i < hi:
        c = data[i]
        if c == 34 or c == 92 or (c < 32 and _SHORT_ESCAPES[c] != 0):
            n += 2
        elif c < 32:
            n += 6
        else:
            n += 1
        i += uint64(1)
    return n


@njit(cache=True, nogil=True)
def _write_escaped(data, lo, hi, out, o, hexd):
    """Write data[lo:hi] as a quoted JSON string at out[o:] (``o`` unsigned); the offset after it."""
    out[o] = 34
    o += uint64(1)
    i, hi = uint64(lo), uint64(hi)
    while i < hi:
        c = data[i]
        i += uint64(1)
        if c == 34 or c == 92:
            out[o] = 92
            out[o + uint64(1)] = c
            o += uint64(2)
        elif c < 32:
            out[o] = 92
            e = _SHORT_ESCAPES[c]
            if e != 0:                          # \b \t \n \f \r
                out[o + uint64(1)] = e
                o += uint64(2)
            else:
                out[o + uint64(1)] = 117        # u00XX
                out[o + uint64(2)] = 48
                out[o + uint64(3)] = 48
                out[o + uint64(4)] = hexd[c >> 4]
                out[o + uint64(5)] = hexd[c & 15]
                o += uint64(6)
        else:
            out[o] = c
            o += uint64(1)
    out[o] = 34
    return o + uint64(1)


@njit(cache=True, nogil=True, inline="always")
def _new_pieces(size, n):
    """The text of ``n`` pieces (``size`` bytes) and each piece's start and end in it."""
    return np.empty(size, np.uint8), np.empty(n, np.int64), np.empty(n, np.int64)


@njit(cache=True, nogil=True)
def _string_pieces(offs, data, hexd):
    """Each string of an Arrow string array (``offs``: n + 1 value offsets) as quoted JSON text:
    the text, and each piece's [start, end) in it."""
    n = len(offs) - 1
    size = 0
    for i in range(n):
        size += 2 + _escaped_size(data, offs[i], offs[i + 1])
    out, starts, ends = _new_pieces(size, n)
    o = uint64(0)
    for i in range(n):
        starts[i] = o
        o = _write_escaped(data, offs[i], offs[i + 1], out, o, hexd)
        ends[i] = o
    return out, starts, ends


@njit(cache=True, nogil=True)
def _string_list_pieces(list_offs, offs, data, hexd):
    """Each list of an Arrow list<string> array as a JSON array of strings (``list_offs``: n + 1
    offsets into the child strings, ``offs``: the child's value offsets)."""
    n = len(list_offs) - 1
    size = 0
    for i in range(n):
        a, b = list_offs[i], list_offs[i + 1]
        size += 2 + max(b - a - 1, 0)
        for j in range(a, b):
            size += 2 + _escaped_size(data, offs[j], offs[j + 1])
    out, starts, ends = _new_pieces(size, n)
    o = uint64(0)
    for i in range(n):
        starts[i] = o
        out[o] = 91             # [
        o += uint64(1)
        for j in range(list_offs[i], list_offs[i + 1]):
            if j > list_offs[i]:
                out[o] = _COMMA
                o += uint64(1)
            o = _write_escaped(data, offs[j], offs[j + 1], out, o, hexd)
        out[o] = 93             # ]
        o += uint64(1)
        ends[i] = o
    return out, starts, ends


@njit(cache=True, nogil=True)
def _lay_out(pieces, starts, ends, keys, key_offs):
    """Rows of ``starts.shape[1]`` columns (``starts``/``ends``: a row of piece bounds per table
    row): ``{`` key 0, piece, ``,`` key 1, piece, ... ``}`` and a newline each.
    ``keys[key_offs[c]:key_offs[c + 1]]`` is column c's ``"name":``."""
    n, ncol = starts.shape
    size = n * (ncol + 2 + key_offs[ncol])      # braces, newline, commas (one spare) and keys
    for i in range(n):
        for c in range(ncol):
            size += ends[i, c] - starts[i, c]
    out = np.empty(size, np.uint8)
    row_offs = np.empty(n + 1, np.int64)
    o = uint64(0)
    for i in range(n):
        row_offs[i] = o
        out[o] = 123            # {
        o += uint64(1)
        for c in range(ncol):
            if c:
                out[o] = _COMMA
                o += uint64(1)
            a, b = uint64(key_offs[c]), uint64(key_offs[c + 1])
            while a < b:
                out[o] = keys[a]
                o += uint64(1)
                a += uint64(1)
            a, b = uint64(starts[i, c]), uint64(ends[i, c])
            while a < b:
                out[o] = pieces[a]
                o += uint64(1)
                a += uint64(1)
        out[o] = 125            # }
        out[o + uint64(1)] = ROW_END
        o += uint64(2)
    row_offs[n] = o
    return out[:o], row_offs


def _offsets(arr: pa.Array, n: int) -> np.ndarray:
    """The n + 1 value offsets of a (sliced) string or list array, as int64."""
    width = np.int64 if pa.types.is_large_string(arr.type) or pa.types.is_large_list(arr.type) else np.int32
    return np.frombuffer(arr.buffers()[1], width)[arr.offset:arr.offset + n + 1].astype(np.int64)


def _data(buf) -> np.ndarray:
    return np.frombuffer(buf, np.uint8) if buf is not None else np.empty(0, np.uint8)


def _numeric_pieces(values: np.ndarray):
    """orjson's text of each value of a 2-D numeric or boolean array (a row per column), in one
    orjson call over all of them: the text and each value's [start, end) in it, shaped as ``values``."""
    text = np.frombuffer(orjson.dumps(values.ravel(), option=orjson.OPT_SERIALIZE_NUMPY), np.uint8)
    commas = np.flatnonzero(text == _COMMA)
    if len(commas) != values.size - 1:
        return None
    starts = np.empty(values.size, np.int64)
    ends = np.empty(values.size, np.int64)
    starts[0], starts[1:] = 1, commas + 1
    ends[:-1], ends[-1] = commas, len(text) - 1
    return text, starts.reshape(values.shape), ends.reshape(values.shape)


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _numbers(arr: pa.Array) -> np.ndarray | None:
    """The column's values as the numpy array orjson writes as the row dicts' values; None when it
    is not a number or boolean column."""
    t = arr.type
    if pa.types.is_floating(t) and t != pa.float64():
        # a row dict holds a float32 as the double it is (orjson writes its shortest double text),
        # where orjson writes a float32 array's values by their shortest float32 text
        arr = arr.cast(pa.float64())
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return arr.to_numpy(zero_copy_only=False)
    return None


def _text_pieces(arr: pa.Array, n: int):
    t = arr.type
    if _is_string(t):
        return _string_pieces(_offsets(arr, n), _data(arr.buffers()[2]), _HEX)
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_string(t.value_type):
        child = arr.values          # the whole child (list offsets index it as they are)
        if child.null_count:
            return None
        return _string_list_pieces(_offsets(arr, n), _offsets(child, len(child)), _data(child.buffers()[2]), _HEX)
    return None


def rows_json(table: pa.Table) -> tuple[np.ndarray, np.ndarray] | None:
    """(buf, offs): row ``i`` of ``table`` as JSON is ``buf[offs[i]:offs[i + 1] - 1]`` (each row is
    followed by a newline). None when a column cannot be encoded here (see the module's note).
    Number columns of one dtype are written by one orjson call, so a batch costs a call per
    dtype and per text column, whatever its width."""
    n = table.num_rows
    names = table.schema.names
    if not n or not names:
        return None
    ncol = len(names)
    starts = np.empty((n, ncol), np.int64)        # a row of piece bounds per table row: the layout reads it in order
    ends = np.empty((n, ncol), np.int64)
    pieces, base = [], 0
    by_dtype: dict = {}                 # numpy dtype -> ([column index], [values])
    for c, col in enumerate(table.columns):
        arr = col.combine_chunks()
        if arr.null_count:
            return None
        values = _numbers(arr)
        if values is not None:
            group = by_dtype.setdefault(values.dtype, ([], []))
            group[0].append(c)
            group[1].append(values)
            continue
        got = _text_pieces(arr, n)
        if got is None:
            return None
        text, s, e = got
        starts[:, c] = s + base
        ends[:, c] = e + base
        pieces.append(text)
        base += len(text)
    for cols, values in by_dtype.values():
        got = _numeric_pieces(np.stack(values))
        if got is None:
            return None
        text, s, e = got
        starts[:, cols] = (s + base).T
        ends[:, cols] = (e + base).T
        pieces.append(text)
        base += len(text)
    keys, key_offs = keys_text(tuple(names))
    return _lay_out(np.concatenate(pieces), starts, ends, keys, key_offs)


@functools.lru_cache(maxsize=64)
def keys_text(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each column's ``"name":`` one after another, and where each starts and ends (``key_offs[c]``
    to ``key_offs[c + 1]``): a table's columns seldom change, so batches share them."""
    keys = [orjson.dumps(name) + b":" for name in names]
    key_offs = np.zeros(len(names) + 1, np.int64)
    key_offs[1:] = np.cumsum([len(k) for k in keys])
    return np.frombuffer(b"".join(keys), np.uint8), key_offs


def text_pieces(arr: pa.Array):
    """The JSON text of each value of a string or list<string> array: (text, starts, ends), value
    ``i`` being ``text[starts[i]:ends[i]]``; None for another type, or nulls in a list's strings."""
    return _text_pieces(arr, len(arr))


def row_bytes(table: pa.Table) -> list[bytes] | None:
    """Each row of ``table`` as JSON bytes (``rows_json``, cut into one bytes object a row); None as
    ``rows_json``."""
    got = rows_json(table)
    if got is None:
        return None
    return got[0][:-1].tobytes().split(b"\n")


def warm_up() -> None:
    """Load the kernels from numba's cache (compile them, on a first run) before a server's first rows
    arrive: otherwise the pump's first step waits for them, and every row handed on meanwhile with it."""
    rows_json(pa.table({"n": pa.array([1], pa.int64()), "s": pa.array(["a\n"]), "l": pa.array([["a"]])}))
