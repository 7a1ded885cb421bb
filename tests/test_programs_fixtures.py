"""wire/programs/ decoders on the REAL fixtures (tests/fixtures), against the Python twin
(tests/reference/programs_ref.py): Firedancer's txn5 Raydium swaps and demo-shreds.bin System
transfers (amounts are the instruction data), every single-transaction fixture, and a solders
block checked against its own "json" encoding."""

from __future__ import annotations

import base64
import json

from conftest import fixture_txn_files
from program_cases import check_twin
from workbench.wire.keys import KNOWN_PROGRAMS
from workbench.wire.programs.events import IX_NAMES, IX_RAY_SWAP_BASE_IN, IX_SYSTEM_TRANSFER

ADDR = dict(KNOWN_PROGRAMS)


def test_txn5_raydium_swaps_decode_to_their_instruction_data(fixtures):
    """Firedancer's pack txn5: 12 SwapBaseIn with 18 accounts; amounts are the instruction data."""
    from solders.transaction import VersionedTransaction
    b = (fixtures / "firedancer/src/disco/pack/fixtures/txn5.bin").read_bytes()
    evs = check_twin(b)
    m = VersionedTransaction.from_bytes(b).message
    keys = [bytes(k) for k in m.account_keys]
    swaps = [(k, ci) for k, ci in enumerate(m.instructions)
             if str(m.account_keys[ci.program_id_index]) == ADDR["raydium_amm_v4"]]
    assert len(swaps) == 12 and len(evs) == 12
    for ev, (k, ci) in zip(evs, swaps):
        data, accts = bytes(ci.data), list(bytes(ci.accounts))
        assert data[0] == 9 and len(accts) == 18
        assert ev["ix"] == IX_RAY_SWAP_BASE_IN and ev["exact_in"] == 1 and ev["instr_index"] == k
        assert ev["amount_in"] == int.from_bytes(data[1:9], "little")
        assert ev["amount_out"] == int.from_bytes(data[9:17], "little")
        assert ev["pool"] == keys[accts[1]] and ev["pool_idx"] == accts[1]
        assert (ev["vault_a"], ev["vault_b"]) == (keys[accts[5]], keys[accts[6]])
        assert (ev["src"], ev["dst"], ev["authority"]) == tuple(keys[a] for a in accts[-3:])
        assert ev["flags"] == 0
    assert sum(e["amount_in"] for e in evs) == sum(int.from_bytes(bytes(ci.data)[1:9], "little") for _, ci in swaps)


def _fixture_payloads(root):
    out = [(f.name, f.read_bytes()) for f in fixture_txn_files(root)]
    block = json.loads((root / "solders/tests/data/get_block_base64_encoding.json").read_text())
    for i, t in enumerate(block["result"]["transactions"]):
        out.append((f"block[{i}]", base64.b64decode(t["transaction"][0])))
    one = json.loads((root / "solders/tests/data/get_transaction_base64_encoding.json").read_text())
    out.append(("get_transaction", base64.b64decode(one["result"]["transaction"][0])))
    return out


def test_every_real_fixture_agrees_with_the_twin(fixtures):
    kinds = {}
    for name, b in _fixture_payloads(fixtures):
        if name == "transaction5.bin":                       # invalid on purpose (wire/txn.py rejects it)
            continue
        for ev in check_twin(b):
            kinds[IX_NAMES[ev["ix"]]] = kinds.get(IX_NAMES[ev["ix"]], 0) + 1
    assert kinds.get("raydium_amm_v4.swap_base_in") == 12
    assert kinds.get("system.transfer", 0) + kinds.get("token.transfer", 0) >= 2, kinds


def test_block_fixture_events_match_its_json_encoding(fixtures):
    """The block's "json" encoding lists every instruction's program, accounts and base58
    data independently: a decoded transfer/swap must be there with the same bytes, and
    every transfer/swap there must be decoded."""
    import base58
    js = json.loads((fixtures / "solders/tests/data/get_block_json_encoding.json").read_text())["result"]
    b64 = json.loads((fixtures / "solders/tests/data/get_block_base64_encoding.json").read_text())["result"]
    n_known = 0
    for tj, tb in zip(js["transactions"], b64["transactions"]):
        payload = base64.b64decode(tb["transaction"][0])
        evs = check_twin(payload)
        msg = tj["transaction"]["message"]
        keys = msg["accountKeys"]
        want = []
        for k, ix in enumerate(msg["instructions"]):
            prog = keys[ix["programIdIndex"]]
            data = base58.b58decode(ix["data"])
            if prog == ADDR["system"] and data[:4] == (2).to_bytes(4, "little"):
                want.append((k, int.from_bytes(data[4:12], "little"), keys[ix["accounts"][1]]))
            elif prog in (ADDR["spl_token"], ADDR["token_2022"]) and data[:1] in (b"\x03", b"\x0c"):
                want.append((k, int.from_bytes(data[1:9], "little"), keys[ix["accounts"][1 if data[0] == 3 else 2]]))
            elif prog in (ADDR["raydium_amm_v4"], ADDR["raydium_cpmm"], ADDR["orca_whirlpool"]):
                n_known += 1
        got = [(e["instr_index"], e["amount_in"], base58.b58encode(e["dst"]).decode()) for e in evs]
        assert got == want
        n_known += len(want)
    # this block (147078735) holds votes, memos and other programs: the decoders must stay quiet
    assert n_known == 0


def _legacy_txn_end(b: bytes, p: int) -> int:
    """End of the legacy transaction starting at b[p] (plain Python walk of the wire layout)."""
    from reference.txn_ref import short_vec
    n, p = short_vec(b, p)
    p += 64 * n
    assert b[p] & 0x80 == 0                                  # legacy
    p += 3
    n, p = short_vec(b, p)
    p += 32 * n + 32
    n_ix, p = short_vec(b, p)
    for _ in range(n_ix):
        p += 1
        n, p = short_vec(b, p)
        p += n
        n, p = short_vec(b, p)
        p += n
    return p


def test_firedancer_shreds_transfers_decode_to_their_lamports(fixtures):
    """demo-shreds.bin (bincode Vec<Entry>): 1280 legacy System transfers, read by solders and the kernel."""
    from solders.transaction import VersionedTransaction
    raw = (fixtures / "firedancer/src/disco/shred/fixtures/demo-shreds.bin").read_bytes()
    n_entries, p = int.from_bytes(raw[:8], "little"), 8
    total = n_tx = 0
    for _ in range(n_entries):
        p += 8 + 32                                          # num_hashes, hash
        cnt, p = int.from_bytes(raw[p:p + 8], "little"), p + 8
        for _ in range(cnt):
            end = _legacy_txn_end(raw, p)
            b = raw[p:end]
            p = end
            evs = check_twin(b)
            m = VersionedTransaction.from_bytes(b).message
            ci = m.instructions[0]
            assert len(evs) == 1 and evs[0]["ix"] == IX_SYSTEM_TRANSFER
            assert evs[0]["amount_in"] == int.from_bytes(bytes(ci.data)[4:12], "little")
            assert evs[0]["dst"] == bytes(m.account_keys[bytes(ci.accounts)[1]])
            total += evs[0]["amount_in"]
            n_tx += 1
    assert n_tx == 1280 and total > 0
