"""Helpers for the wire/programs/ tests: the kernel's event rows in the shape of the Python twin
(tests/reference/programs_ref.py) and the check against it, and solders builders of a
transaction for every registered instruction kind (``_cases``)."""

from __future__ import annotations

import random

from reference.programs_ref import ACCOUNT_FIELDS, disc, expected_events
from workbench.wire.keys import JITO_TIP_ACCOUNTS, KNOWN_PROGRAMS
from workbench.wire.programs.events import ACCT_IN_LUT, ACCT_NONE, KIND_SWAP, KIND_TRANSFER
from workbench.wire.programs.one_transaction import events_of


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
