"""arrow_columns.py: the same Arrow arrays as pyarrow's own constructors, without pandas."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from workbench.arrow_columns import column, numbers, strings

DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64")


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_number_column_equals_pa_array_and_views_the_numpy_buffer(dtype):
    a = (np.arange(-3, 9) * 37).astype(dtype)
    col = column(a)
    assert col.equals(pa.array(a)) and col.type == pa.array(a).type and col.null_count == 0
    assert col.buffers()[1].address == a.ctypes.data            # contiguous: no copy
    back = numbers(col.slice(2, 5))
    assert back.dtype == a.dtype and np.array_equal(back, a[2:7])


def test_strided_columns_bools_and_edge_values():
    rec = np.zeros(5, [("x", np.int64), ("flag", np.bool_), ("f", np.float64)])
    rec["x"] = [np.iinfo(np.int64).min, -1, 0, 1, np.iinfo(np.int64).max]
    rec["flag"] = [True, False, True, True, False]
    rec["f"] = [np.nan, -0.0, np.inf, 1e-300, 5.0]
    for name in ("x", "f"):                                       # bit for bit (NaN, -0.0)
        ours, theirs = column(rec[name]), pa.array(rec[name])
        assert ours.type == theirs.type and ours.null_count == theirs.null_count == 0
        assert numbers(ours).tobytes() == numbers(theirs).tobytes() == rec[name].tobytes()
    assert column(rec["flag"]).equals(pa.array(rec["flag"]))
    for n in (0, 1, 7, 8, 9, 65):                                 # bit-packing across byte boundaries
        b = np.arange(n) % 3 == 0
        assert column(b).equals(pa.array(b))


def test_strings_equal_pa_array_for_empty_unicode_and_empty_lists():
    for values in ([], [""], ["a", "", "héllo ✓", "x" * 1000], ["legacy", "0"]):
        assert strings(values).equals(pa.array(values, pa.string()))
    assert strings(iter(["a", "b"])).to_pylist() == ["a", "b"]


def test_what_they_do_not_take_is_refused_by_name():
    with pytest.raises(ValueError, match="1-d"):
        column(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="numbers or bools"):
        column(np.array(["a"], object))
    with pytest.raises(TypeError, match="numbers or bools"):
        column(np.arange(3, dtype=">i8"))
    with pytest.raises(ValueError, match="null"):
        numbers(pa.array([1, None], pa.int64()))
    with pytest.raises(TypeError, match="integers or floats"):
        numbers(pa.array(["a"]))
    assert np.array_equal(numbers(pa.chunked_array([pa.array([1, 2]), pa.array([3])])), [1, 2, 3])
