"""Arrow arrays over numpy buffers, without pyarrow's pandas hooks.

``pa.array`` and ``Array.to_numpy`` ask pyarrow's pandas shim whether their argument is a
pandas object, and the shim imports pandas to answer: the longest single import of a replay
process, for a library the engine and its sinks never use. The engine's columns are primitive
numpy arrays and short lists of names; these functions build them into Arrow (and read them
back) through the buffers, which is what ``pa.array`` does for such arrays: the same types and
bytes, with no copy of a contiguous array.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def column(a: np.ndarray) -> pa.Array:
    """``pa.array(a)`` for a 1-d numpy array of numbers or bools (a view when ``a`` is contiguous)."""
    a = np.ascontiguousarray(a)
    if a.ndim != 1:
        raise ValueError(f"column: a 1-d array is needed, not shape {a.shape}")
    if a.dtype == np.bool_:
        bits = np.packbits(a, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), a.shape[0], [None, pa.py_buffer(bits)])
    if a.dtype.kind not in "iuf" or not a.dtype.isnative:
        raise TypeError(f"column: numbers or bools in native byte order are needed, not {a.dtype}")
    return pa.Array.from_buffers(pa.from_numpy_dtype(a.dtype), a.shape[0], [None, pa.py_buffer(a)])


def strings(values) -> pa.StringArray:
    """``pa.array(values, pa.string())`` for an iterable of str (no None)."""
    encoded = [v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), out=offsets[1:])
    return pa.StringArray.from_buffers(len(encoded), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)))


def numbers(arr: pa.Array) -> np.ndarray:
    """``arr.to_numpy()`` for an Arrow array of numbers with no nulls: a read-only view of its buffer."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        raise ValueError(f"numbers: {arr.null_count} null(s) in an array of {arr.type}")
    dtype = np.dtype(arr.type.to_pandas_dtype()) if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) \
        else None
    if dtype is None:
        raise TypeError(f"numbers: an array of integers or floats is needed, not {arr.type}")
    return np.frombuffer(arr.buffers()[1], dtype, len(arr), arr.offset * dtype.itemsize)
