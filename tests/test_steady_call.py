"""SteadyCall (runner/steady_call.py) calls a jitted kernel's compiled entry point while the
arguments keep their types, and numba's dispatcher for anything else: the results must be the
dispatcher's for every argument, and the engine's run must go through the dispatcher only once."""

from __future__ import annotations

from collections import namedtuple

import numba
import numpy as np
import pytest

from conftest import CAPTURES
from engine_helpers import engine_calls
from workbench.runner import engine_run
from workbench.runner.steady_call import SteadyCall

MARKET = CAPTURES / "market.pcapng"

Pair = namedtuple("Pair", "a b")
Twin = namedtuple("Twin", "a b")        # the same fields, another class: another numba type


@numba.njit(cache=False, nogil=True)
def weighted(p, k):
    return p.a.sum() + p.b.sum() * k


def pair(dtype=np.int64, n=5, **kw):
    return Pair(np.arange(n, dtype=dtype), np.arange(n, 2 * n, dtype=dtype), **kw)


def test_new_objects_of_the_same_types_skip_the_dispatcher_and_give_its_results():
    call = SteadyCall(weighted)
    for i in range(50):
        p = pair(n=3 + i)
        assert call(p, i) == weighted(p, i)
    assert call.dispatched == 1


@pytest.mark.parametrize("other", [
    lambda: pair(np.float64),                                   # another dtype
    lambda: Twin(*pair()),                                      # another named tuple class
    lambda: Pair(np.arange(10)[::2], np.arange(5)),             # not contiguous: another layout
    lambda: Pair(np.arange(5).reshape(1, 5), np.arange(5)),     # another rank
    lambda: Pair(np.arange(5, dtype=np.int32), np.arange(5)),   # one field's dtype
], ids=["dtype", "class", "layout", "rank", "field"])
def test_any_other_type_goes_through_the_dispatcher_and_is_learnt(other):
    call = SteadyCall(weighted)
    assert call(pair(), 2) == weighted(pair(), 2)
    p = other()
    assert call(p, 2.5) == weighted(p, 2.5)         # (2.5: the scalar's type changes too)
    assert call.dispatched == 2
    q = other()
    assert call(q, 0.5) == weighted(q, 0.5)         # the new types are the learnt ones now
    assert call.dispatched == 2
    assert call(pair(), 3) == weighted(pair(), 3)   # and the first ones are dispatched again
    assert call.dispatched == 3


def test_a_known_object_passes_by_identity_and_a_read_only_twin_does_not():
    call = SteadyCall(weighted)
    p = pair()
    call(p, 1)
    assert call(p, 1) == weighted(p, 1) and call.dispatched == 1
    a = np.arange(5)
    a.flags.writeable = False            # a read-only array is another numba type
    r = Pair(a, np.arange(5))
    assert call(r, 1) == weighted(r, 1)
    assert call.dispatched == 2


def test_errors_are_the_dispatchers():
    call = SteadyCall(weighted)
    call(pair(), 1)
    with pytest.raises(numba.core.errors.TypingError):
        call(pair(), "one")


def test_a_run_calls_the_engine_through_the_dispatcher_once_and_gets_the_same_rows(tmp_path, monkeypatch):
    run, steady = engine_calls(tmp_path / "steady", MARKET, 700)
    with monkeypatch.context() as m:
        m.setattr(engine_run, "SteadyCall", lambda dispatcher: dispatcher)
        _, dispatched = engine_calls(tmp_path / "dispatched", MARKET, 700)
    assert len(steady) == len(dispatched) > 12           # (700-frame batches: many calls)
    assert sum(c[0].shape[0] for c in steady) > 1000     # transactions
    assert sum(c[6].shape[0] for c in steady if c[6] is not None) > 0    # opportunities
    for a, b in zip(steady, dispatched):
        for x, y in zip(a, b):
            if isinstance(x, np.ndarray) and x.dtype.names:
                for f in set(x.dtype.names) - {"detect_ns"}:     # (a measured time)
                    assert x[f].tobytes() == y[f].tobytes(), f
            elif isinstance(x, np.ndarray):
                assert x.tobytes() == y.tobytes()
            else:
                assert x == y
    assert run._process.dispatched == 1                  # the warm-up's call


def test_types_that_keep_changing_stop_being_learnt():
    """Learning types every argument in Python; a caller alternating types pays it LEARN_MAX times at
    most, and still gets the dispatcher's results."""
    from workbench.runner.steady_call import LEARN_MAX
    call = SteadyCall(weighted)
    for i in range(2 * LEARN_MAX + 4):
        p = pair(np.float64 if i % 2 else np.int64)
        assert call(p, i) == weighted(p, i)
    version = call._version
    for i in range(4):
        p = pair(np.float64 if i % 2 else np.int64)
        assert call(p, i) == weighted(p, i)
        assert call._version is version             # no longer learnt
