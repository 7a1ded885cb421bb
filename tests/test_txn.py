"""wire/txn.py against solders and the Python twin, on real transactions and mutations of them."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from reference.txn_ref import decode as ref_decode
from txn_helpers import kernel_decode, solders_fields
from conftest import fixture_txn_files
from workbench.wire.status import ERR_BAD_SHORT_VEC, ERR_TRUNCATED
from workbench.wire.txn import short_vec_len


def _all_fixture_txns(root):
    out = [(f.name, f.read_bytes()) for f in fixture_txn_files(root)]
    block = json.loads((root / "solders/tests/data/get_block_base64_encoding.json").read_text())
    for i, t in enumerate(block["result"]["transactions"]):
        out.append((f"block147078735[{i}]", base64.b64decode(t["transaction"][0])))
    one = json.loads((root / "solders/tests/data/get_transaction_base64_encoding.json").read_text())
    out.append(("get_transaction", base64.b64decode(one["result"]["transaction"][0])))
    return out


def test_fixture_set_is_what_sources_md_says(fixtures):
    txns = _all_fixture_txns(fixtures)
    names = {n for n, _ in txns}
    assert {"transaction1.bin", "transaction5.bin", "txn5.bin", "sample_vote.bin"} <= names
    assert sum(n.startswith("block") for n in names) == 25


def test_every_valid_fixture_decodes_as_solders_reads_it(fixtures):
    checked = 0
    for name, b in _all_fixture_txns(fixtures):
        if name == "transaction5.bin":
            continue
        status, got = kernel_decode(b)
        assert status == "transaction", (name, status)
        assert got == solders_fields(b), name
        checked += 1
    assert checked >= 40


def test_transaction5_is_rejected_like_the_validator(fixtures):
    from solders.transaction import VersionedTransaction
    b = (fixtures / "firedancer/src/ballet/txn/fixtures/transaction5.bin").read_bytes()
    status, _ = kernel_decode(b)
    assert status == "empty_lookup_table"
    tx = VersionedTransaction.from_bytes(b)   # solders deserializes it ...
    with pytest.raises(Exception):
        tx.sanitize()                          # ... and its sanitize rejects it too


def test_block_json_ground_truth(fixtures):
    """The block's "json" encoding is an independent account/instruction listing."""
    import base58
    b64 = json.loads((fixtures / "solders/tests/data/get_block_base64_encoding.json").read_text())["result"]
    js = json.loads((fixtures / "solders/tests/data/get_block_json_encoding.json").read_text())["result"]
    for t64, tj in zip(b64["transactions"], js["transactions"]):
        status, got = kernel_decode(base64.b64decode(t64["transaction"][0]))
        assert status == "transaction"
        msg = tj["transaction"]["message"]
        assert [base58.b58encode(k).decode() for k in got["keys"]] == msg["accountKeys"]
        assert base58.b58encode(got["signatures"][0]).decode() == tj["transaction"]["signatures"][0]
        assert [(p, a, base58.b58encode(d).decode()) for p, a, d in got["instructions"]] == \
            [(i["programIdIndex"], i["accounts"], i["data"]) for i in msg["instructions"]]


def test_features_of_known_fixtures(fixtures):
    """ComputeBudget with trailing data (pack txn4), twelve Raydium swaps (txn5), vote, Jito crank."""
    from workbench.engine.features import TX_DTYPE, fill_features
    from workbench.wire.keys import known_id, new_key_table
    from workbench.wire.txn import INSTR_DTYPE, TXN_DTYPE, decode_txn

    def feats(path):
        b = np.frombuffer((fixtures / path).read_bytes(), np.uint8)
        txns, instrs, luts = np.zeros(1, TXN_DTYPE), np.zeros(1232, INSTR_DTYPE), np.zeros(64, LUT)
        assert decode_txn(b, 0, b.shape[0], txns, 0, instrs, 0, luts, 0) == b.shape[0]
        keys, slots, meta = new_key_table(1 << 10)
        rows, progs = np.zeros(1, TX_DTYPE), np.zeros(64, np.int32)
        ins_pid = np.zeros(1232, np.int32)
        n = fill_features(b, txns[0], instrs, keys, slots, meta, rows[0], progs, 0, np.zeros(1 << 10, np.int64),
                          ins_pid)
        k = int(txns[0]["instr_cnt"])
        assert set(ins_pid[:k].tolist()) == set(progs[:n].tolist())     # each instruction's program, interned
        return rows[0], list(progs[:n])

    from workbench.wire.txn import LUT_DTYPE as LUT
    r, progs = feats("firedancer/src/disco/pack/fixtures/txn4.bin")
    # SetComputeUnitLimit with 9 data bytes (4 trailing) still counts: 75,000 CUs at 20,001 micro-lamports
    assert (r["compute_unit_limit"], r["compute_unit_price"], r["priority_fee_lamports"]) == (75_000, 20_001, 1_501)
    assert known_id("pump_fun") in progs and known_id("associated_token") in progs
    r, progs = feats("firedancer/src/disco/pack/fixtures/txn5.bin")
    # 6M CUs requested; the fee uses the 1.4M cap: 20,000 * 1.4M / 1e6
    assert (r["compute_unit_limit"], r["priority_fee_lamports"]) == (6_000_000, 28_000)
    assert progs == [known_id("compute_budget"), known_id("raydium_amm_v4")] and r["num_instructions"] == 14
    r, progs = feats("firedancer/src/disco/pack/sample_vote.bin")
    assert progs == [known_id("vote")] and r["program_mask"] == 1 << known_id("vote")


@pytest.mark.parametrize("raw,expect", [
    (b"\x00", (0, 1)), (b"\x7f", (0x7F, 1)), (b"\x80\x01", (0x80, 2)), (b"\xff\x7f", (0x3FFF, 2)),
    (b"\x80\x80\x01", (0x4000, 3)), (b"\xff\xff\x03", (0xFFFF, 3)),
    (b"\x80\x00", (ERR_BAD_SHORT_VEC, 0)), (b"\x80\x80\x00", (ERR_BAD_SHORT_VEC, 0)),
    (b"\xff\xff\x04", (ERR_BAD_SHORT_VEC, 0)), (b"\x80", (ERR_TRUNCATED, 0)), (b"", (ERR_TRUNCATED, 0)),
])
def test_short_vec(raw, expect):
    b = np.frombuffer(raw + b"\xee", np.uint8)   # a byte past `end` that must never be read
    assert short_vec_len(b, 0, len(raw)) == expect


def test_every_truncation_is_rejected(fixtures):
    for name, b in _all_fixture_txns(fixtures):
        for cut in range(len(b)):
            status, _ = kernel_decode(b[:cut])
            assert status != "transaction", (name, cut)
            assert status == ref_decode(b[:cut])[0], (name, cut)


def test_one_byte_mutations_match_the_twin(fixtures):
    """Each byte set to a few values: the kernel answers exactly as the field rules (the twin) predict."""
    rng = np.random.default_rng(20261127)
    for name, b in _all_fixture_txns(fixtures)[:17]:
        for pos in range(len(b)):
            for v in {0x00, 0x7F, 0x80, 0xFF, int(rng.integers(256))}:
                m = b[:pos] + bytes([v]) + b[pos + 1:]
                k, kf = kernel_decode(m)
                r, rf = ref_decode(m)
                assert k == r, (name, pos, v)
                assert kf == rf, (name, pos, v)


def test_appended_bytes_are_trailing(fixtures):
    for name, b in _all_fixture_txns(fixtures):
        if name == "transaction5.bin":
            continue
        status, _ = kernel_decode(b + b"\x00")
        assert status == ("too_long" if len(b) + 1 > 1232 else "trailing_bytes"), name
