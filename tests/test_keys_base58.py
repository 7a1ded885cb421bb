"""wire/keys.py (interning) and wire/base58.py against dict and the base58 package."""

from __future__ import annotations

import base58
import numpy as np

from workbench.engine.tables import encode_strings
from workbench.wire.keys import (JITO_TIP_ACCOUNTS, KNOWN_PROGRAMS, TIP_ID_FIRST, intern, key_to_base58, lookup,
                                 new_key_table)


def test_known_ids_are_fixed():
    keys, slots, meta = new_key_table(64)
    for i, (_, addr) in enumerate(KNOWN_PROGRAMS):
        assert key_to_base58(keys, i) == addr
    for j, addr in enumerate(JITO_TIP_ACCOUNTS):
        raw = np.frombuffer(base58.b58decode(addr), np.uint8)
        assert lookup(keys, slots, raw, 0) == TIP_ID_FIRST + j


def test_interning_matches_a_dict_and_refuses_when_full():
    keys, slots, meta = new_key_table(1024)
    base = int(meta[0])
    rng = np.random.default_rng(11)
    pool = rng.integers(0, 256, (1500, 32), dtype=np.uint8)
    pool[5, :8] = 0                         # colliding prefixes still differ
    pool[6, :8] = 0
    twin: dict[bytes, int] = {}
    refused = 0
    for k in rng.integers(0, 1500, 6000):
        buf = pool[k]
        got = intern(keys, slots, meta, buf, 0)
        kb = buf.tobytes()
        if kb in twin:
            assert got == twin[kb]
        elif len(twin) + base < 1024:
            twin[kb] = len(twin) + base
            assert got == twin[kb]
        else:
            assert got == -1
            refused += 1
    assert meta[1] == refused
    for kb, kid in twin.items():
        assert lookup(keys, slots, np.frombuffer(kb, np.uint8), 0) == kid


def test_base58_matches_reference_on_edges_and_random():
    rng = np.random.default_rng(2)
    for n in (32, 64):
        vals = [bytes(n), b"\x00" * (n - 1) + b"\x01", b"\xff" * n, b"\x00\x00" + b"\xff" * (n - 2)]
        vals += [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for _ in range(500)]
        buf = np.frombuffer(b"".join(vals), np.uint8)
        got = encode_strings(buf, np.arange(len(vals)) * n, n).to_pylist()
        assert got == [base58.b58encode(v).decode() for v in vals]


def test_signature_blocks_match_one_at_a_time_at_every_block_edge():
    """encode64_column (a block of signatures side by side) against encode64_into (one at a time)
    and the base58 package, for column lengths around the block size and leading zero bytes."""
    from workbench.wire.base58 import SIG_BLOCK, SIG_INTER, encode64_column, encode64_into
    rng = np.random.default_rng(5)
    for m in (0, 1, SIG_BLOCK - 1, SIG_BLOCK, SIG_BLOCK + 1, 3 * SIG_BLOCK + 7):
        src = rng.integers(0, 256, m * 64 + 3, dtype=np.uint8)
        for r in range(0, m, 5):
            src[3 + r * 64: 3 + r * 64 + r % 70] = 0          # 0..64 leading zero bytes
        offs = 3 + np.arange(m, dtype=np.int64) * 64
        data, offsets = np.empty(max(1, m * 128), np.uint8), np.empty(m + 1, np.int32)
        used = encode64_column(src, offs, data, offsets)
        got = [data[offsets[i]:offsets[i + 1]].tobytes() for i in range(m)]
        assert used == offsets[m]
        one, inter, digits = np.empty(128, np.uint8), np.empty(SIG_INTER, np.uint64), np.empty(128, np.uint8)
        for i, o in enumerate(offs):
            k = encode64_into(src, o, one, 0, inter, digits)
            assert got[i] == one[:k].tobytes() == base58.b58encode(src[o:o + 64].tobytes())


def test_many_keys_decode_at_once_as_base58_decodes_each():
    """wire/base58.py decode32_texts: the snapshot's addresses, decoded side by side."""
    import os

    import base58

    from workbench.wire.base58 import decode32_texts
    rng = np.random.default_rng(5)
    keys = [base58.b58encode(rng.bytes(32)).decode() for _ in range(500)]
    keys += [base58.b58encode(b"\0" * k + b"\1" * (32 - k)).decode() for k in range(33)]   # leading zero bytes
    keys += [base58.b58encode(b"\xff" * 32).decode(), "1" * 32]
    others = [base58.b58encode(os.urandom(k)).decode() for k in (1, 31, 33, 40)]          # other lengths
    others += ["", "0OIl" * 8, "é" * 40, None, 5, "1" * 33, "z" * 44, "z" * 45, b"bytes"]
    raw, ok = decode32_texts(keys + others)
    assert ok[:len(keys)].all() and not ok[len(keys):].any()
    for i, k in enumerate(keys):
        assert raw[i].tobytes() == base58.b58decode(k)
