"""wire/programs/: instruction decoders on solders-built transactions for every registered
decoder (legacy and v0, accounts in lookup tables and their resolution through a snapshot),
reject reasons, decode_events over shared tables, and random instructions, each against the
Python twin (tests/reference/programs_ref.py). The real fixtures are in test_programs_fixtures.py."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from program_cases import (TIP0, World, _cases, _semantic, check_twin, cpmm_swap, raydium_swap, system_transfer,
                           token_transfer, u64, whirlpool_swap)
from reference.programs_ref import disc
from workbench.wire.keys import PROGRAM_NAMES, known_id
from workbench.wire.programs import orca_whirlpool, raydium_cpmm
from workbench.wire.programs.account_resolution import resolve_events
from workbench.wire.programs.anchor import anchor_discriminator
from workbench.wire.programs.dispatch import DECODERS, decode_events, program_ids_of
from workbench.wire.programs.events import (ACCT_IN_LUT, EV_OUTPUT_FULL, EV_REJECT_SLOTS, EVENT_DTYPE, F_ACCT_IN_LUT,
                                            F_POOL_IN_LUT, F_POOL_RESOLVED, F_POOL_UNRESOLVED, F_RAY_NO_TARGET_ORDERS,
                                            F_TIP_DEST_UNRESOLVED, F_TRAILING_DATA, IX_CPMM_SWAP_BASE_INPUT, IX_NAMES,
                                            IX_RAY_SWAP_BASE_IN, IX_SYSTEM_TRANSFER, IX_TOKEN_TRANSFER_CHECKED,
                                            IX_WP_SWAP, KIND_TIP, KIND_TRANSFER)
from workbench.wire.programs.one_transaction import events_of
from workbench.wire.programs.orca_whirlpool import ID_ORCA_WHIRLPOOL
from workbench.wire.programs.raydium_amm_v4 import ID_RAYDIUM_AMM_V4
from workbench.wire.txn import INSTR_DTYPE, LUT_DTYPE, TXN_DTYPE, decode_txn


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
