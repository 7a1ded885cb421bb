"""Slow, obvious twin of wire/txn.py: the same sanitize rules in plain Python.

Returns (status_name, fields) where fields is a dict of the decoded layout. Used to
predict the kernel's answer on mutated and random inputs.
"""

from __future__ import annotations

PACKET_DATA_SIZE = 1232


class Reject(Exception):
    def __init__(self, name):
        self.name = name


def short_vec(b: bytes, p: int) -> tuple[int, int]:
    value = 0
    for i in range(3):
        if p + i >= len(b):
            raise Reject("truncated")
        byte = b[p + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte & 0x80 == 0:
            if i > 0 and byte == 0:
                raise Reject("bad_short_vec")
            if i == 2 and byte > 3:
                raise Reject("bad_short_vec")
            return value, p + i + 1
    raise Reject("bad_short_vec")


def take(b: bytes, p: int, n: int) -> tuple[bytes, int]:
    if n > len(b) - p:
        raise Reject("truncated")
    return b[p:p + n], p + n


def decode(b: bytes):
    try:
        return "transaction", _decode(b)
    except Reject as r:
        return r.name, None


def _decode(b: bytes) -> dict:
    if len(b) == 0:
        raise Reject("empty_payload")
    if len(b) > PACKET_DATA_SIZE:
        raise Reject("too_long")
    p = 0
    nsig, p = short_vec(b, p)
    sigs = []
    if nsig * 64 > len(b) - p:
        raise Reject("truncated")
    for _ in range(nsig):
        s, p = take(b, p, 64)
        sigs.append(s)
    if p >= len(b):
        raise Reject("truncated")
    version = "legacy"
    if b[p] & 0x80:
        if b[p] & 0x7F != 0:
            raise Reject("unsupported_version")
        version = 0
        p += 1
    hdr, p = take(b, p, 3)
    nkeys, p = short_vec(b, p)
    if nkeys * 32 > len(b) - p:
        raise Reject("truncated")
    keys = []
    for _ in range(nkeys):
        k, p = take(b, p, 32)
        keys.append(k)
    blockhash, p = take(b, p, 32)
    ninstr, p = short_vec(b, p)
    if ninstr > len(b) - p:
        raise Reject("truncated")
    instrs = []
    for _ in range(ninstr):
        prog, p = take(b, p, 1)
        na, p = short_vec(b, p)
        accts, p = take(b, p, na)
        nd, p = short_vec(b, p)
        data, p = take(b, p, nd)
        instrs.append((prog[0], list(accts), data))
    luts = []
    if version == 0:
        nl, p = short_vec(b, p)
        if nl * 34 > len(b) - p:
            raise Reject("truncated")
        for _ in range(nl):
            key, p = take(b, p, 32)
            nw, p = short_vec(b, p)
            w, p = take(b, p, nw)
            nr, p = short_vec(b, p)
            r, p = take(b, p, nr)
            if nw == 0 and nr == 0:
                raise Reject("empty_lookup_table")
            luts.append((key, list(w), list(r)))
    if p != len(b):
        raise Reject("trailing_bytes")
    req, ro_s, ro_u = hdr
    if nsig != req:
        raise Reject("signature_count_mismatch")
    if ro_s >= req or req + ro_u > nkeys:
        raise Reject("bad_header")
    total = nkeys + sum(len(w) + len(r) for _, w, r in luts)
    if total > 256:
        raise Reject("too_many_accounts")
    for prog, accts, _ in instrs:
        if prog == 0 or prog >= nkeys or any(a >= total for a in accts):
            raise Reject("index_out_of_range")
    return dict(signatures=sigs, version=version, header=tuple(hdr), keys=keys, blockhash=blockhash,
                instructions=instrs, luts=luts)
