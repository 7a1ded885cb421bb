"""wire/programs/: instruction decoders against real fixtures, solders-built transactions
for every registered decoder, and the Python twin (tests/reference/programs_ref.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import fixture_txn_files
from reference.programs_ref import ACCOUNT_FIELDS, disc, expected_events
from workbench.wire.keys import JITO_TIP_ACCOUNTS, KNOWN_PROGRAMS, PROGRAM_NAMES, known_id
from workbench.wire.programs import orca_whirlpool, raydium_cpmm
from workbench.wire.programs.account_resolution import resolve_events
from workbench.wire.programs.anchor import anchor_discriminator
from workbench.wire.programs.dispatch import DECODERS, decode_events, program_ids_of
from workbench.wire.programs.events import (ACCT_IN_LUT, ACCT_NONE, EV_OUTPUT_FULL, EV_REJECT_SLOTS, EVENT_DTYPE,
                                            F_ACCT_IN_LUT, F_POOL_IN_LUT, F_POOL_RESOLVED, F_POOL_UNRESOLVED,
                                            F_RAY_NO_TARGET_ORDERS, F_TIP_DEST_UNRESOLVED, F_TRAILING_DATA,
                                            IX_CPMM_SWAP_BASE_INPUT, IX_NAMES, IX_RAY_SWAP_BASE_IN, IX_SYSTEM_TRANSFER,
                                            IX_TOKEN_TRANSFER_CHECKED, IX_WP_SWAP, KIND_SWAP, KIND_TIP, KIND_TRANSFER)
from workbench.wire.programs.one_transaction import events_of
from workbench.wire.programs.orca_whirlpool import ID_ORCA_WHIRLPOOL
from workbench.wire.programs.raydium_amm_v4 import ID_RAYDIUM_AMM_V4
from workbench.wire.txn import INSTR_DTYPE, LUT_DTYPE, TXN_DTYPE, decode_txn

ADDR = dict(KNOWN_PROGRAMS)


# --- kernel rows -> the twin's shape ------------------------------------------------------------

def kernel_events(payload: bytes):
    status, evs, rejects = events_of(payload)
    assert status == 0
    out = []
    for e in evs:
        d = dict(kind=int(e["kind"]), ix=int(e["ix"]), instr_index=int(e["instr_index"]),
                 amount_in=int(e["amount_in"]), amount_out=int(e["amount_out"]), exact_in=int(e["exact_in"]),
                 a_to_b=int(e["a_to_b"]), decimals=int(e["decimals"]),
                 sqrt_price_limit=int(e["sqrt_price_limit_lo"]) | (int(e["sqrt_price_limit_hi"]) << 64),
                 flags=int(e["flags"]), pool_idx=int(e["pool_idx"]), pool_lut=None)
        for f in ACCOUNT_FIELDS:
            off = int(e[f + "_off"])
            d[f] = None if off == ACCT_NONE else "lut" if off == ACCT_IN_LUT else payload[off:off + 32]
        if e["pool_lut_key_off"] >= 0:
            k = int(e["pool_lut_key_off"])
            d["pool_lut"] = (payload[k:k + 32], int(e["pool_lut_index"]))
        assert int(e["tx_index"]) == -1 and int(e["pool_lut_row"]) == -1
        assert int(e["program_id"]) >= 0
        out.append(d)
    return out, rejects


def check_twin(payload: bytes):
    got, rej = kernel_events(payload)
    want, want_rej = expected_events(payload)
    assert got == want
    assert rej == want_rej
    return got


# --- solders builders -----------------------------------------------------------------------------

class World:
    def __init__(self, seed=7):
        from solders.keypair import Keypair
        from solders.pubkey import Pubkey
        self.rng = random.Random(seed)
        self.payer = Keypair.from_seed(bytes(self.rng.getrandbits(8) for _ in range(32)))
        self.P = Pubkey
        self.prog = {n: Pubkey.from_string(a) for n, a in KNOWN_PROGRAMS}

    def key(self):
        return self.P(bytes(self.rng.getrandbits(8) for _ in range(32)))

    def ix(self, program, data, metas):
        from solders.instruction import AccountMeta, Instruction
        return Instruction(self.prog[program] if isinstance(program, str) else program, bytes(data),
                           [AccountMeta(k, s, w) for k, s, w in metas])

    def tx(self, ixs, tables=None):
        """Legacy when tables is None, else v0 compiled against those lookup tables."""
        from solders.hash import Hash
        from solders.message import Message, MessageV0
        from solders.transaction import VersionedTransaction
        bh = Hash(bytes(range(32)))
        if tables is None:
            msg = Message.new_with_blockhash(ixs, self.payer.pubkey(), bh)
        else:
            msg = MessageV0.try_compile(self.payer.pubkey(), ixs, tables, bh)
        return bytes(VersionedTransaction(msg, [self.payer]))

    def table(self, keys):
        from solders.address_lookup_table_account import AddressLookupTableAccount
        return AddressLookupTableAccount(self.key(), list(keys))


def u64(x):
    return int(x).to_bytes(8, "little")


def raydium_swap(w, tag, a, b, n_accts=18, extra=b""):
    """Raydium AMM v4 swap with the program's account order (instruction.rs); returns (ix, named keys)."""
    k = {n: w.key() for n in ("pool", "authority", "open_orders", "target", "coin_vault", "pc_vault", "market",
                               "bids", "asks", "eq", "mcv", "mpv", "signer", "src", "dst")}
    me = w.payer.pubkey()
    if tag in (16, 17):
        metas = [(w.prog["spl_token"], False, False), (k["pool"], False, True), (k["authority"], False, False),
                 (k["coin_vault"], False, True), (k["pc_vault"], False, True), (k["src"], False, True),
                 (k["dst"], False, True), (me, True, False)]
    else:
        metas = [(w.prog["spl_token"], False, False), (k["pool"], False, True), (k["authority"], False, False),
                 (k["open_orders"], False, True)]
        if n_accts == 18:
            metas.append((k["target"], False, True))
        metas += [(k["coin_vault"], False, True), (k["pc_vault"], False, True), (w.key(), False, False),
                  (k["market"], False, True), (k["bids"], False, True), (k["asks"], False, True),
                  (k["eq"], False, True), (k["mcv"], False, True), (k["mpv"], False, True),
                  (k["signer"], False, False), (k["src"], False, True), (k["dst"], False, True), (me, True, False)]
    ix = w.ix("raydium_amm_v4", bytes([tag]) + u64(a) + u64(b) + extra, metas)
    expect = dict(pool=k["pool"], vault_a=k["coin_vault"], vault_b=k["pc_vault"], src=k["src"], dst=k["dst"],
                  authority=me, amount_in=a, amount_out=b, exact_in=int(tag in (9, 16)), a_to_b=-1,
                  ix={9: 1, 11: 2, 16: 3, 17: 4}[tag], kind=KIND_SWAP)
    return ix, expect, k


def cpmm_swap(w, exact_in, a, b):
    k = {n: w.key() for n in ("authority", "config", "pool", "src", "dst", "vin", "vout", "min", "mout", "obs")}
    me = w.payer.pubkey()
    metas = [(me, True, False), (k["authority"], False, False), (k["config"], False, False), (k["pool"], False, True),
             (k["src"], False, True), (k["dst"], False, True), (k["vin"], False, True), (k["vout"], False, True),
             (w.prog["spl_token"], False, False), (w.prog["token_2022"], False, False), (k["min"], False, False),
             (k["mout"], False, False), (k["obs"], False, True)]
    data = disc("swap_base_input" if exact_in else "swap_base_output") + u64(a) + u64(b)
    expect = dict(pool=k["pool"], vault_in=k["vin"], vault_out=k["vout"], mint_in=k["min"], mint_out=k["mout"],
                  src=k["src"], dst=k["dst"], authority=me, amount_in=a, amount_out=b, exact_in=int(exact_in),
                  ix=5 if exact_in else 6, kind=KIND_SWAP)
    return w.ix("raydium_cpmm", data, metas), expect, k


def whirlpool_swap(w, v2, is_input, a_to_b, amount, threshold, limit):
    k = {n: w.key() for n in ("pool", "oa", "va", "ob", "vb", "t0", "t1", "t2", "oracle", "ma", "mb")}
    me = w.payer.pubkey()
    data = disc("swap_v2" if v2 else "swap") + u64(amount) + u64(threshold) + limit.to_bytes(16, "little")
    data += bytes([int(is_input), int(a_to_b)])
    if v2:
        data += b"\x00"                                       # remaining_accounts_info: None
        metas = [(w.prog["spl_token"], False, False), (w.prog["token_2022"], False, False),
                 (w.prog["memo"], False, False), (me, True, False), (k["pool"], False, True),
                 (k["ma"], False, False), (k["mb"], False, False), (k["oa"], False, True), (k["va"], False, True),
                 (k["ob"], False, True), (k["vb"], False, True), (k["t0"], False, True), (k["t1"], False, True),
                 (k["t2"], False, True), (k["oracle"], False, True)]
    else:
        metas = [(w.prog["spl_token"], False, False), (me, True, False), (k["pool"], False, True),
                 (k["oa"], False, True), (k["va"], False, True), (k["ob"], False, True), (k["vb"], False, True),
                 (k["t0"], False, True), (k["t1"], False, True), (k["t2"], False, True), (k["oracle"], False, True)]
    i, o = ("a", "b") if a_to_b else ("b", "a")
    expect = dict(pool=k["pool"], vault_a=k["va"], vault_b=k["vb"], vault_in=k["v" + i], vault_out=k["v" + o],
                  src=k["o" + i], dst=k["o" + o], authority=me, exact_in=int(is_input), a_to_b=int(a_to_b),
                  amount_in=amount if is_input else threshold, amount_out=threshold if is_input else amount,
                  sqrt_price_limit=limit, ix=8 if v2 else 7, kind=KIND_SWAP)
    if v2:
        expect.update(mint_in=k["m" + i], mint_out=k["m" + o])
    return w.ix("orca_whirlpool", data, metas), expect, k


def system_transfer(w, to, lamports):
    from solders.system_program import TransferParams, transfer
    me = w.payer.pubkey()
    ix = transfer(TransferParams(from_pubkey=me, to_pubkey=to, lamports=lamports))
    return ix, dict(src=me, dst=to, authority=me, amount_in=lamports, amount_out=lamports, ix=9), {}


def token_transfer(w, program, checked, amount, decimals=6):
    k = {n: w.key() for n in ("src", "dst", "mint")}
    me = w.payer.pubkey()
    if checked:
        data = bytes([12]) + u64(amount) + bytes([decimals])
        metas = [(k["src"], False, True), (k["mint"], False, False), (k["dst"], False, True), (me, True, False)]
        expect = dict(mint_in=k["mint"], decimals=decimals, ix=11)
    else:
        data = bytes([3]) + u64(amount)
        metas = [(k["src"], False, True), (k["dst"], False, True), (me, True, False)]
        expect = dict(ix=10)
    expect.update(src=k["src"], dst=k["dst"], authority=me, amount_in=amount, amount_out=amount,
                  kind=KIND_TRANSFER)
    return w.ix(program, data, metas), expect, k


TIP0 = JITO_TIP_ACCOUNTS[0]


def _cases(w):
    """(name, ix, expect, lut-able keys) for every registered instruction kind."""
    from solders.pubkey import Pubkey
    big = (1 << 64) - 1
    out = [
        ("ray_base_in_18",) + raydium_swap(w, 9, 918_031, 5),
        ("ray_base_out_18",) + raydium_swap(w, 11, big, 123_456),
        ("ray_base_in_17",) + raydium_swap(w, 9, 1, 0, n_accts=17),
        ("ray_base_out_17",) + raydium_swap(w, 11, 77, big, n_accts=17),
        ("ray_base_in_v2",) + raydium_swap(w, 16, 10**9, 10**6),
        ("ray_base_out_v2",) + raydium_swap(w, 17, 10**9, 10**6),
        ("ray_trailing",) + raydium_swap(w, 9, 5, 6, extra=b"\x01\x02"),
        ("cpmm_in",) + cpmm_swap(w, True, 10**6, 999),
        ("cpmm_out",) + cpmm_swap(w, False, big, 1),
        ("wp_in_a2b",) + whirlpool_swap(w, False, True, True, 10**9, 10**5, 4295048016),
        ("wp_out_b2a",) + whirlpool_swap(w, False, False, False, 500, big, (1 << 127) + 12345),
        ("wp_v2_in_b2a",) + whirlpool_swap(w, True, True, False, 7, 0, 0),
        ("wp_v2_out_a2b",) + whirlpool_swap(w, True, False, True, 10**12, 10**13, 79226673515401279992447579055),
        ("system_transfer",) + system_transfer(w, w.key(), 5_000),
        ("jito_tip",) + system_transfer(w, Pubkey.from_string(TIP0), 100_000),
        ("spl_transfer",) + token_transfer(w, "spl_token", False, 42),
        ("spl_transfer_checked",) + token_transfer(w, "spl_token", True, big, 9),
        ("t22_transfer",) + token_transfer(w, "token_2022", False, 1),
        ("t22_transfer_checked",) + token_transfer(w, "token_2022", True, 10**15, 0),
    ]
    return out


def _semantic(ev, expect, tag):
    for f, v in expect.items():
        got = ev[f]
        if hasattr(v, "__bytes__"):
            v = bytes(v)
        assert got == v, (tag, f, got, v)


# --- tests ------------------------------------------------------------------------------------

def test_anchor_discriminators_are_sha256_of_their_names():
    compared = {raydium_cpmm: {raydium_cpmm.DISC_CPMM_SWAP_BASE_INPUT, raydium_cpmm.DISC_CPMM_SWAP_BASE_OUTPUT},
                orca_whirlpool: {orca_whirlpool.DISC_WP_SWAP, orca_whirlpool.DISC_WP_SWAP_V2}}
    for mod, consts in compared.items():          # the constants the kernels compare, each with its name
        assert set(mod.ANCHOR_DISCRIMINATORS.values()) == consts, mod.__name__
        for name, got in mod.ANCHOR_DISCRIMINATORS.items():
            want = int.from_bytes(hashlib.sha256(f"global:{name}".encode()).digest()[:8], "little")
            assert int(got) == want == int(anchor_discriminator(name)), name


def test_registry_lists_known_programs_and_every_kind_has_a_solders_case():
    for d in DECODERS:
        assert d.program in PROGRAM_NAMES
    assert ID_RAYDIUM_AMM_V4 == known_id("raydium_amm_v4") and ID_ORCA_WHIRLPOOL == known_id("orca_whirlpool")
    w = World()
    covered = {e["ix"] for _, _, e, _ in _cases(w)}
    registered = {ix for d in DECODERS for ix in d.ix}
    assert registered == set(IX_NAMES) and registered <= covered
    assert EVENT_DTYPE.isalignedstruct


@pytest.mark.parametrize("version", ["legacy", "v0"])
def test_every_decoder_on_solders_built_transactions(version):
    w = World(11)
    for name, ix, expect, _keys in _cases(w):
        pad = w.ix("memo", b"hi", [(w.payer.pubkey(), True, False)])
        b = w.tx([pad, ix], None if version == "legacy" else [])
        evs = check_twin(b)
        assert len(evs) == 1, name
        ev = evs[0]
        assert ev["instr_index"] == 1 and ev["flags"] & F_POOL_IN_LUT == 0
        _semantic(ev, expect, name)
        if name == "jito_tip":
            assert ev["kind"] == KIND_TIP
        if name == "system_transfer":
            assert ev["kind"] == KIND_TRANSFER
        if name.endswith("_17"):
            assert ev["flags"] & F_RAY_NO_TARGET_ORDERS
        if name == "ray_trailing":
            assert ev["flags"] & F_TRAILING_DATA


def test_accounts_in_lookup_tables_are_flagged_and_the_pool_resolved_through_the_snapshot():
    """v0: each swap's pool (and vaults) sit in a lookup table: flagged, the table and index
    recorded, never guessed; resolve_events finds them in a snapshot's tables, and counts
    what the snapshot lacks."""
    w = World(12)
    filler = [w.key() for _ in range(5)]
    ixs, expects, tables = [], [], []
    for name, ix, expect, keys in _cases(w):
        if "pool" not in expect:
            continue
        lut_keys = filler + [keys[n] for n in sorted(keys)]   # every non-signer account of the swap
        tables.append(w.table(lut_keys))
        ixs.append(ix)
        expects.append((name, expect, tables[-1]))
    per = 4                                                   # swaps per transaction (1232-byte limit)
    for lo in range(0, len(ixs), per):
        b = w.tx(ixs[lo:lo + per], tables[lo:lo + per])
        assert len(b) <= 1232
        evs = check_twin(b)
        assert len(evs) == len(ixs[lo:lo + per])
        status, rows, _ = events_of(b)
        for ev, row, (name, expect, table) in zip(evs, rows, expects[lo:lo + per]):
            assert ev["pool"] == "lut" and ev["flags"] & F_POOL_IN_LUT, name
            tkey, idx = ev["pool_lut"]
            assert tkey == bytes(table.key) and bytes(table.addresses[idx]) == bytes(expect["pool"]), name
            assert ev["pool_idx"] >= 0
            assert ev["src"] == "lut" and ev["flags"] & F_ACCT_IN_LUT
            assert row["pool_off"] == ACCT_IN_LUT
        # snapshot: every table but the first of this transaction, one of them cut short
        snap = tables[lo + 1:lo + per]
        tbl_keys = np.array([np.frombuffer(bytes(t.key), np.uint8) for t in snap], np.uint8).reshape(-1, 32)
        cnt = np.array([len(t.addresses) for t in snap], np.int32)
        if len(snap) > 1:
            cnt[-1] = 5                                      # the last table is missing its tail
        first = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
        addrs = np.array([np.frombuffer(bytes(a), np.uint8) for t, c in zip(snap, cnt) for a in t.addresses[:c]],
                         np.uint8).reshape(-1, 32)
        buf = np.frombuffer(b, np.uint8)
        rows = rows.copy()
        missed = resolve_events(buf, rows, 0, rows.shape[0], tbl_keys, first, cnt)
        expect_missed = 1 + (1 if len(snap) > 1 else 0)
        assert missed == expect_missed
        for j, row in enumerate(rows):
            if row["flags"] & F_POOL_RESOLVED:
                assert addrs[row["pool_lut_row"]].tobytes() == bytes(expects[lo + j][1]["pool"])
            else:
                assert row["flags"] & F_POOL_UNRESOLVED and row["pool_lut_row"] == -1
        assert int(np.count_nonzero(rows["flags"] & F_POOL_UNRESOLVED)) == expect_missed


def test_tip_to_a_lookup_table_destination_is_flagged_not_guessed():
    from solders.pubkey import Pubkey
    w = World(13)
    tip = Pubkey.from_string(TIP0)
    other = w.key()
    b = w.tx([system_transfer(w, tip, 10)[0], system_transfer(w, other, 20)[0]], [w.table([w.key(), tip, other])])
    evs = check_twin(b)
    assert [e["kind"] for e in evs] == [KIND_TRANSFER, KIND_TRANSFER]
    assert all(e["dst"] == "lut" and e["flags"] & F_TIP_DEST_UNRESOLVED for e in evs)


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


def test_rejects_are_counted_by_reason():
    w = World(14)
    me = w.payer.pubkey()
    ray, _, rk = raydium_swap(w, 9, 1, 2)
    short_ray = w.ix("raydium_amm_v4", bytes([9]) + u64(1), [(me, True, False)])
    metas16 = [(k, False, True) for k in list(rk.values())[:15]] + [(me, True, False)]      # 16 accounts
    bad_count = w.ix("raydium_amm_v4", bytes([11]) + u64(1) + u64(2), metas16)
    not_a_swap = w.ix("raydium_amm_v4", bytes([3]) + u64(1) * 3, metas16)           # Deposit: ignored
    wp, _, wk = whirlpool_swap(w, False, True, True, 1, 2, 0)
    bad_bool = w.ix("orca_whirlpool", disc("swap") + u64(1) + u64(2) + bytes(16) + b"\x02\x00",
                    [(k, False, True) for k in list(wk.values())[:10]] + [(me, True, False)])
    short_cpmm = w.ix("raydium_cpmm", disc("swap_base_input") + u64(1), [(me, True, False)])
    few_cpmm = w.ix("raydium_cpmm", disc("swap_base_output") + u64(1) + u64(2), [(me, True, False)] * 1)
    short_sys = w.ix("system", (2).to_bytes(4, "little") + b"\x01", [(me, True, True), (w.key(), False, True)])
    one_acct_sys = w.ix("system", (2).to_bytes(4, "little") + u64(9), [(me, True, True)])
    sys_assign = w.ix("system", (1).to_bytes(4, "little") + bytes(32), [(me, True, True)])          # Assign
    short_tok = w.ix("spl_token", bytes([12]) + u64(5), [(w.key(), False, True)] * 3 + [(me, True, False)])
    b1 = w.tx([ray, short_ray, bad_count, not_a_swap, short_cpmm, few_cpmm])
    b2 = w.tx([bad_bool, short_sys, one_acct_sys, sys_assign, short_tok, wp])
    assert [e["ix"] for e in check_twin(b1)] == [IX_RAY_SWAP_BASE_IN]
    assert [e["ix"] for e in check_twin(b2)] == [IX_WP_SWAP]
    rej1, rej2 = events_of(b1)[2], events_of(b2)[2]
    assert rej1 == {"short_data": 2, "bad_account_count": 2}
    assert rej2 == {"short_data": 2, "bad_account_count": 1, "bad_data": 1}


def _decode_rows(payloads):
    """Decode several transactions into shared tables (as the engine does), rows at offsets."""
    total = sum(len(p) for p in payloads)
    buf = np.frombuffer(b"".join(payloads), np.uint8)
    txns = np.zeros(len(payloads), TXN_DTYPE)
    instrs = np.zeros(total, INSTR_DTYPE)
    luts = np.zeros(total // 34 + len(payloads), LUT_DTYPE)
    off = i0 = l0 = 0
    for t, p in enumerate(payloads):
        assert decode_txn(buf, off, off + len(p), txns, t, instrs, i0, luts, l0) == off + len(p)
        off += len(p)
        i0 += int(txns[t]["instr_cnt"])
        l0 += int(txns[t]["lut_cnt"])
    return buf, txns, instrs, luts


def test_decode_events_over_shared_tables_and_a_full_output():
    w = World(15)
    a = w.tx([raydium_swap(w, 9, 3, 4)[0], system_transfer(w, w.key(), 7)[0]])
    ix, _, keys = cpmm_swap(w, True, 8, 9)
    b = w.tx([token_transfer(w, "spl_token", True, 5)[0], ix], [w.table([keys["pool"], keys["vin"]])])
    buf, txns, instrs, luts = _decode_rows([a, b])
    from workbench.wire.keys import new_key_table
    keys_t, slots, _ = new_key_table(1 << 10)
    pids = np.full(instrs.shape[0], -7, np.int32)
    events = np.zeros(8, EVENT_DTYPE)
    rejects = np.zeros(EV_REJECT_SLOTS, np.int64)
    e = 0
    for t in range(2):
        program_ids_of(buf, txns[t], instrs, keys_t, slots, pids)
        e += decode_events(buf, txns[t], instrs, luts, pids, events, e, rejects)
    assert e == 4 and not rejects.any()
    assert list(events["ix"][:4]) == [IX_RAY_SWAP_BASE_IN, IX_SYSTEM_TRANSFER, IX_TOKEN_TRANSFER_CHECKED,
                                      IX_CPMM_SWAP_BASE_INPUT]
    assert list(events["amount_in"][:4]) == [3, 7, 5, 8]
    assert events[3]["flags"] & F_POOL_IN_LUT
    k = int(events[3]["pool_lut_key_off"])
    assert len(a) <= k < len(a) + len(b)                       # offsets index the shared buffer
    # no room: EV_OUTPUT_FULL, counted
    small = np.zeros(1, EVENT_DTYPE)
    assert decode_events(buf, txns[0], instrs, luts, pids, small, 0, rejects) == EV_OUTPUT_FULL
    assert rejects[-EV_OUTPUT_FULL] == 1


_PROGS = ["raydium_amm_v4", "raydium_cpmm", "orca_whirlpool", "system", "spl_token", "token_2022"]
_PREFIX = {"raydium_amm_v4": [b"\x09", b"\x0b", b"\x10", b"\x11"], "raydium_cpmm": [disc("swap_base_input"),
           disc("swap_base_output")], "orca_whirlpool": [disc("swap"), disc("swap_v2")],
           "system": [(2).to_bytes(4, "little")], "spl_token": [b"\x03", b"\x0c"], "token_2022": [b"\x03", b"\x0c"]}

_NEED = {b"\x09": 17, b"\x0b": 17, b"\x10": 17, b"\x11": 17, disc("swap_base_input"): 24, disc("swap_base_output"): 24,
         disc("swap"): 42, disc("swap_v2"): 43, (2).to_bytes(4, "little"): 12, b"\x03": 9, b"\x0c": 10}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prog=st.sampled_from(_PROGS), prefix=st.integers(0, 3), delta=st.integers(-4, 12),
       n_accts=st.integers(0, 20), seed=st.integers(0, 2**16), v0=st.booleans())
def test_random_instructions_never_crash_and_agree_with_the_twin(prog, prefix, delta, n_accts, seed, v0):
    """Listed tags with arbitrary data and account counts (in and out of lookup tables):
    the kernel never reads outside the transaction (NUMBA_BOUNDSCHECK=1 in CI) and says
    what the twin says."""
    w = World(seed)
    me = w.payer.pubkey()
    opts = _PREFIX[prog]
    head = opts[prefix % len(opts)]
    size = max(len(head), _NEED[head] + delta)              # around the layout's length
    data = bytearray(head + bytes(w.rng.getrandbits(8) for _ in range(size - len(head))))
    if prog == "orca_whirlpool" and len(data) >= 43 and w.rng.random() < 0.7:
        data[40], data[41], data[42] = w.rng.randint(0, 1), w.rng.randint(0, 1), 0      # valid bools
    if n_accts >= 17 and w.rng.random() < 0.3:
        n_accts = w.rng.choice([17, 18])
    metas = [(w.key(), False, w.rng.random() < 0.7) for _ in range(n_accts)]
    if n_accts and w.rng.random() < 0.5:
        metas[-1] = (me, True, False)
    ix = w.ix(prog, bytes(data), metas)
    tables = [w.table([k for k, s, _ in metas if not s][:30])] if v0 else None
    try:
        b = w.tx([ix], tables)
    except Exception:                                        # solders refuses: nothing to test
        return
    if len(b) > 1232:
        return
    check_twin(b)
