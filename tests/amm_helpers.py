"""Helpers for the exact AMM maths tests (test_amm.py, test_amm_whirlpool.py): u64 arguments,
status names, 128-bit splits, random and edge-case u64 values, and the kernel-against-twin check."""

from __future__ import annotations

import numpy as np

from reference import amm_ref as R
from workbench.engine.market import amm_status as S
from workbench import wide as W

U = np.uint64
M64 = (1 << 64) - 1
SEED = 20240611


def _u(*xs):
    return [U(x) if not isinstance(x, bool) else x for x in xs]


def _name(code):
    return S.AMM_STATUS_NAMES[int(code)]


def _ref(fn, *args):
    try:
        return "ok", fn(*args)
    except R.AmmFail as e:
        return e.name, None


def _split(x):
    return W.split128(x)


def _edge_u64(rng):
    return rng.choice([0, 1, 2, 3, 199, 200, 399, 400, 10_000, M64 - 1, M64, 1 << 63, (1 << 32) - 1, 1 << 32])


def _rand_u64(rng):
    r = rng.random()
    if r < 0.15:
        return _edge_u64(rng)
    return rng.getrandbits(rng.randint(1, 64))


def _check(kernel_out, ref_out, ctx):
    st_k = _name(kernel_out[0])
    st_r, val = ref_out
    assert st_k == st_r, (ctx, st_k, st_r)
    if st_r == "ok":
        assert tuple(int(x) for x in kernel_out[1:]) == tuple(val), (ctx, kernel_out, val)
