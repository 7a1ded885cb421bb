"""Per-packet staging of transactions: copy a template, redraw its variable fields
(``_stage_txns``, numba), and optionally sign the result (``sign_staged``, solders).

Per packet, ``_stage_txns`` copies a template and rewrites only its variable fields
(signatures, recent blockhash, amounts, compute budget, Jito tip, vote root/hash/timestamp)
so every packet is a distinct, valid transaction without a Python object per packet. With
``sign=True`` each staged message is then signed by its template's keypairs (ed25519,
solders), so ``VersionedTransaction.verify_with_results`` holds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...wire.txn import SIGNATURE_SZ
from .fields import (GEN_AMOUNT, GEN_BLOCK_ID, GEN_BLOCKHASH, GEN_CU_LIMIT, GEN_CU_PRICE, GEN_SCALED, GEN_TIP,
                     GEN_VOTE_HASH, GEN_VOTE_ROOT, GEN_VOTE_TS, HASH_BANK, HASH_BLOCK_ID, HASH_BLOCKHASH, SLOT0,
                     SLOT_HISTORY, SLOT_NS)
from .templates import TemplateSet


@njit(cache=True, nogil=True, inline="always")
def _put_le(b, i, v, width):
    for k in range(width):
        b[i + k] = (v >> (8 * k)) & 0xFF


@njit(cache=True, nogil=True, inline="always")
def _log_uniform(lo, hi, u):
    return np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))


@njit(cache=True, nogil=True, inline="always")
def _clamp_u63(x):
    if x < 1.0:
        return np.int64(1)
    if x > 9.0e18:
        return np.int64(9_000_000_000_000_000_000)
    return np.int64(x)


@njit(cache=True, nogil=True)
def _stage_txns(tmpl_buf, tmpl_off, tmpl_sz, tmpl_nsig, fld_start, fld_cnt, fld_off, fld_gen, fld_p0,
                fld_p1, tmpl_idx, ts_ns, start_ns, sig_rand, u, slot_hash, stage, stage_off, stage_sz,
                cu_limit, cu_price, tip):
    """Copy template ``tmpl_idx[i]`` to ``stage`` for every packet with one (>= 0), fill its
    signatures from ``sig_rand[i]`` and redraw its variable fields from ``u[i]``.

    ``slot_hash[row, slot - SLOT0 + SLOT_HISTORY, 32]`` are the per-slot hashes. Writes
    ``stage_off/stage_sz`` (-1/0 when no template) and the ground-truth compute-unit limit,
    price and tip (left as they are when the template has no such field). Returns bytes used.
    """
    pos = 0
    base = SLOT0 - SLOT_HISTORY
    for i in range(tmpl_idx.shape[0]):
        t = tmpl_idx[i]
        if t < 0:
            stage_off[i] = -1
            stage_sz[i] = 0
            continue
        sz = tmpl_sz[t]
        src = tmpl_off[t]
        for k in range(sz):
            stage[pos + k] = tmpl_buf[src + k]
        nsig_b = tmpl_nsig[t] * SIGNATURE_SZ
        for k in range(nsig_b):
            stage[pos + 1 + k] = sig_rand[i, k]
        slot = SLOT0 + (ts_ns[i] - start_ns) // SLOT_NS
        last = np.int64(0)
        for j in range(fld_cnt[t]):
            f = fld_start[t] + j
            g = fld_gen[f]
            o = pos + fld_off[f]
            p0 = fld_p0[f]
            p1 = fld_p1[f]
            uu = u[i, j]
            if g == GEN_BLOCKHASH:
                lag = np.int64(p0) + np.int64(uu * (p1 - p0 + 1.0))
                row = slot - lag - base
                for k in range(32):
                    stage[o + k] = slot_hash[HASH_BLOCKHASH, row, k]
            elif g == GEN_AMOUNT:
                last = _clamp_u63(_log_uniform(p0, p1, uu))
                _put_le(stage, o, last, 8)
            elif g == GEN_SCALED:
                last = _clamp_u63(last * p0 * (1.0 + p1 * uu))
                _put_le(stage, o, last, 8)
            elif g == GEN_CU_LIMIT:
                v = np.int64(p0 + uu * (p1 - p0 + 1.0))
                v = max(np.int64(100), v - v % 100) if p1 > p0 else np.int64(p0)
                _put_le(stage, o, v, 4)
                cu_limit[i] = v
                last = v
            elif g == GEN_CU_PRICE:
                last = _clamp_u63(_log_uniform(p0, p1, uu))
                _put_le(stage, o, last, 8)
                cu_price[i] = last
            elif g == GEN_TIP:
                last = _clamp_u63(_log_uniform(p0, p1, uu))
                _put_le(stage, o, last, 8)
                tip[i] = last
            elif g == GEN_VOTE_ROOT:
                last = slot - np.int64(p0) - np.int64(uu * p1)
                _put_le(stage, o, last, 8)
            elif g == GEN_VOTE_HASH or g == GEN_BLOCK_ID:
                row = last + np.int64(p0) - base
                hr = HASH_BANK if g == GEN_VOTE_HASH else HASH_BLOCK_ID
                for k in range(32):
                    stage[o + k] = slot_hash[hr, row, k]
            elif g == GEN_VOTE_TS:
                _put_le(stage, o, ts_ns[i] // 1_000_000_000, 8)
        stage_off[i] = pos
        stage_sz[i] = sz
        pos += sz
    return pos


def sign_staged(ts: TemplateSet, stage: np.ndarray, stage_off: np.ndarray, tmpl_idx: np.ndarray) -> None:
    """Sign every staged transaction in place with its template's keypairs (ed25519)."""
    for i in np.flatnonzero(tmpl_idx >= 0):
        t = int(tmpl_idx[i])
        o = int(stage_off[i])
        n = int(ts.nsig[t])
        msg = stage[o + 1 + n * SIGNATURE_SZ:o + int(ts.sz[t])].tobytes()
        for j, kp in enumerate(ts.signers[t]):
            a = o + 1 + j * SIGNATURE_SZ
            stage[a:a + SIGNATURE_SZ] = np.frombuffer(bytes(kp.sign_message(msg)), np.uint8)
