"""Transaction decode: ours (one jitted call over a batch) vs solders ``from_bytes`` per transaction.

Payloads are the UDP payloads of the benchmark capture's valid transactions (legacy and
v0, 1-3 lookup tables, swaps, votes), plus the real fixtures when present. Goal: >= 5x solders.
"""

from __future__ import annotations

import argparse

import numpy as np
from numba import njit

from common import bench_capture, median_time, table
from workbench.wire.txn import decode_txn


@njit(cache=True, nogil=True)
def _decode_all(buf, offs, ends, txns, instrs, luts):
    ok = 0
    for i in range(offs.shape[0]):
        if decode_txn(buf, offs[i], ends[i], txns, 0, instrs, 0, luts, 0) >= 0:
            ok += 1
    return ok


def payloads_of(path, limit):
    from workbench.capture import open_capture
    from workbench.wire.net import udp_payload
    out = []
    for b in open_capture(path):
        for i in range(b.n):
            st, po, ps, _, _ = udp_payload(b.buf, b.off[i], b.caplen[i], b.linktype[i])
            if st == 0:
                out.append(bytes(b.buf[po:po + ps]))
        if len(out) >= limit:
            break
    return out[:limit]


def main():
    from solders.transaction import VersionedTransaction
    from workbench.wire.txn import INSTR_DTYPE, LUT_DTYPE, TXN_DTYPE
    ap = argparse.ArgumentParser()
    ap.add_argument("--transactions", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    raw = payloads_of(bench_capture(200_000), a.transactions * 2)
    good = []
    for p in raw:                      # keep what solders accepts, so both decode the same set
        try:
            VersionedTransaction.from_bytes(p)
            good.append(p)
        except Exception:
            pass
    good = good[: a.transactions]
    lens = np.array([len(p) for p in good], np.int64)
    offs = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    buf = np.frombuffer(b"".join(good), np.uint8)
    txns, instrs, luts = np.zeros(1, TXN_DTYPE), np.zeros(1232, INSTR_DTYPE), np.zeros(64, LUT_DTYPE)
    ok = _decode_all(buf, offs, offs + lens, txns, instrs, luts)
    t_ours = median_time(lambda: _decode_all(buf, offs, offs + lens, txns, instrs, luts), a.repeat)
    t_sol = median_time(lambda: [VersionedTransaction.from_bytes(p) for p in good], a.repeat)
    n = len(good)
    o, s = t_ours / n * 1e9, t_sol / n * 1e9
    table(f"transaction decode, {n:,} transactions ({ok:,} pass sanitize), median of {a.repeat}",
          [("workbench decode_txn (batch, incl. sanitize)", f"{o:.1f}", f"{1e9 / o:,.0f}", "1.0x"),
           ("solders VersionedTransaction.from_bytes", f"{s:.1f}", f"{1e9 / s:,.0f}", f"{s / o:.1f}x slower")],
          ("decoder", "ns/tx", "tx/s", "vs ours"))
    print(f"\nratio ours/solders: {s / o:.1f}x (goal >= 5x)")


if __name__ == "__main__":
    main()
