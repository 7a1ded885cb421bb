"""workbench/chain account decoders on the real mainnet accounts (tests/fixtures/chain/accounts),
against EXPECTED.json, with the PDA derivations that tie each account to its address, and every
truncation, wrong owner, wrong size and wrong discriminator refused with the account named."""

from __future__ import annotations

import base64
import json
from decimal import Decimal, localcontext
import re
import struct

import pytest
from solders.address_lookup_table_account import AddressLookupTable, LookupTableMeta
from solders.pubkey import Pubkey

from chain_rpc import amm_config, mint_account, token_account
from conftest import REPO, fixtures_dir
from workbench.chain import lookup_table, raydium_amm_v4 as v4, raydium_cpmm as cpmm, spl_token, token_2022
from workbench.chain import whirlpool as wp
from workbench.chain.account import Account, decode, record_dict
from workbench.chain.pda import associated_token_address, find_program_address, is_on_curve
from workbench.engine.market.whirlpool import WP_MAX_SQRT_PRICE_X64, WP_MIN_SQRT_PRICE_X64
from workbench.errors import ChainError

ACCOUNTS = fixtures_dir() / "chain" / "accounts"
SHARED = REPO.parent / "shared" / "fixtures" / "chain" / "accounts"     # the Orca-licensed ones stay there
EXPECTED = json.loads((ACCOUNTS / "EXPECTED.json").read_text())
LAYOUTS = {"raydium_amm_v4_AmmInfo": v4.LAYOUT, "raydium_cpmm_PoolState": cpmm.POOL_LAYOUT,
           "orca_whirlpool_Whirlpool": wp.LAYOUT, "spl_token_Mint": spl_token.MINT_LAYOUT}


def account_file(name: str):
    for d in (ACCOUNTS, SHARED):
        if (d / name).is_file():
            return d / name
    pytest.skip(f"{name}: not in this repository (its licence keeps it in ../shared), and ../shared is absent")


def load(name: str) -> Account:
    j = json.loads(account_file(name).read_text())
    return Account(j["pubkey"], j["account"]["owner"], base64.b64decode(j["account"]["data"][0]))


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_field_equals_expected(name):
    acct, want = load(name), EXPECTED[name]
    assert acct.address == want["pubkey"]
    got = record_dict(decode(LAYOUTS[want["layout"]], [acct])[0])
    for k, v in want["decoded"].items():
        g = got[snake(k)]
        if isinstance(g, list):                     # byte arrays (the tick spacing seed) are hex there
            g = bytes(g).hex()
        elif isinstance(v, str) and isinstance(g, int):
            v = int(v)                              # u128 as decimal text
        assert g == v, f"{name} {k}: decoded {g!r}, expected {v!r}"


def test_many_accounts_decode_in_one_call():
    names = [n for n, e in EXPECTED.items() if e["layout"] == "orca_whirlpool_Whirlpool" and (ACCOUNTS / n).is_file()]
    recs = decode(wp.LAYOUT, [load(n) for n in names])
    assert len(recs) == len(names) >= 2
    assert [int(r["tick_spacing"]) for r in recs] == [EXPECTED[n]["decoded"]["tickSpacing"] for n in names]


def test_raydium_v4_pdas_reproduce_the_pool_and_its_accounts():
    name = "raydium_amm_v4_5y2QYKY8gQCcmG6jy4fc7wFg8L5SW7bkyvMH3jUTqBdy.json"
    acct = load(name)
    rec = record_dict(decode(v4.LAYOUT, [acct])[0])
    assert v4.associated_address(rec["market_id"], "address") == acct.address
    for field in ("base_vault", "quote_vault", "lp_mint", "open_orders", "target_orders"):
        assert v4.associated_address(rec["market_id"], field) == rec[field], field
    assert all(EXPECTED[name]["pda_checks"].values())
    assert not is_on_curve(acct.address)


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if e["layout"] == "raydium_cpmm_PoolState"])
def test_cpmm_pdas_reproduce_the_pool_vaults_lp_mint_and_observation(name):
    acct = load(name)
    r = record_dict(decode(cpmm.POOL_LAYOUT, [acct])[0])
    assert cpmm.pool_address(r["amm_config"], r["token0_mint"], r["token1_mint"]) == acct.address
    assert cpmm.vault_address(acct.address, r["token0_mint"]) == r["token0_vault"]
    assert cpmm.vault_address(acct.address, r["token1_mint"]) == r["token1_vault"]
    assert cpmm.lp_mint_address(acct.address) == r["lp_mint"]
    assert cpmm.observation_address(acct.address) == r["observation_key"]


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if e["layout"] == "orca_whirlpool_Whirlpool"])
def test_whirlpool_pda_and_bump_match_the_stored_ones(name):
    acct = load(name)
    r = record_dict(decode(wp.LAYOUT, [acct])[0])
    seed = int.from_bytes(bytes(r["tick_spacing_seed"]), "little")
    address, bump = wp.pool_address(r["whirlpools_config"], r["token_mint_a"], r["token_mint_b"], seed)
    assert (address, bump) == (acct.address, r["whirlpool_bump"])


def test_associated_token_address_by_hand():
    wallet, mint = "HggGrUeg4ReGvpPMLJMFKV69NTXL1r4wQ9Pk9Ljutwyv", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
    token = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
    ata = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"
    want = Pubkey.find_program_address([bytes(Pubkey.from_string(x)) for x in (wallet, token, mint)],
                                       Pubkey.from_string(ata))[0]
    assert associated_token_address(wallet, mint) == str(want)
    assert not is_on_curve(str(want)) and is_on_curve(wallet)
    # the Raydium v4 pool's PDA by the raw seeds, bump included
    program = "675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8"
    market = "2HqK6oenRGVi5kY92Q2tQUk1kBkrKHQ7ZZZ2dw9GScqP"
    assert find_program_address([program, market, b"amm_associated_seed"], program) == (
        "5y2QYKY8gQCcmG6jy4fc7wFg8L5SW7bkyvMH3jUTqBdy", 255)
    with pytest.raises(ChainError, match="seed 'nope'"):
        find_program_address(["nope"], program)


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if (ACCOUNTS / n).is_file()))
def test_every_truncation_is_refused_naming_the_account(name):
    acct, layout = load(name), LAYOUTS[EXPECTED[name]["layout"]]
    for cut in range(len(acct.data)):
        short = Account(acct.address, acct.owner, acct.data[:cut])
        with pytest.raises(ChainError, match=rf"account {acct.address}: truncated: {cut} bytes"):
            decode(layout, [short])


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if (ACCOUNTS / n).is_file()))
def test_wrong_owner_and_size_are_refused_naming_the_account(name):
    acct, layout = load(name), LAYOUTS[EXPECTED[name]["layout"]]
    with pytest.raises(ChainError, match=rf"account {acct.address}: owner 1111.* is not the program of a"):
        decode(layout, [Account(acct.address, "11111111111111111111111111111111", acct.data)])
    with pytest.raises(ChainError, match=rf"account {acct.address}: {len(acct.data) + 1} bytes, a .* is "
                                         rf"{len(acct.data)} bytes"):
        decode(layout, [Account(acct.address, acct.owner, acct.data + b"\0")])
    # one bad account among good ones: the bad one is named
    bad = Account("BadAccount1111111111111111111111111111111111", acct.owner, acct.data[:-1])
    with pytest.raises(ChainError, match="account BadAccount1111"):
        decode(layout, [acct, bad, acct])


def test_anchor_discriminators_are_checked():
    cp = load("raydium_cpmm_Q2sPHPdUWFMg7M7wwrQKLrn619cAucfRsmhVJffodSp.json")
    with pytest.raises(ChainError, match=rf"account {cp.address}: discriminator 00.* is not a Raydium CPMM PoolState"):
        decode(cpmm.POOL_LAYOUT, [Account(cp.address, cp.owner, bytes(8) + cp.data[8:])])
    # an AmmConfig is the same program's account but not a pool (and the size says so first)
    cfg = Account("Cfg1111111111111111111111111111111111111111", cpmm.PROGRAM, amm_config(2500, 0))
    with pytest.raises(ChainError, match="236 bytes"):
        decode(cpmm.POOL_LAYOUT, [cfg])
    r = record_dict(decode(cpmm.CONFIG_LAYOUT, [cfg])[0])
    assert r["trade_fee_rate"] == 2500 and r["protocol_fee_rate"] == 120_000


def test_raydium_v4_reserves_subtract_what_the_pool_owes():
    acct = load("raydium_amm_v4_5y2QYKY8gQCcmG6jy4fc7wFg8L5SW7bkyvMH3jUTqBdy.json")
    rec = decode(v4.LAYOUT, [acct])[0]
    assert v4.reserves(acct.address, rec, 4566028610387 + 5, 3520673 + 7) == (5, 7)
    with pytest.raises(ChainError, match=rf"account {acct.address}: quote vault holds 3520672, less than the 3520673"):
        v4.reserves(acct.address, rec, 4566028610387, 3520672)


def test_cpmm_reserves_subtract_protocol_fund_and_creator_fees():
    acct = load("raydium_cpmm_BtGUffMEnxrzdjyC3kKAHjGMpG1UdZiVWXZUaSpUv13C.json")
    rec = decode(cpmm.POOL_LAYOUT, [acct])[0]
    assert int(rec["enable_creator_fee"]) == 1 and int(rec["creator_fees_token0"]) == 59466681730
    owed0 = 49023014 + 4037703 + 59466681730
    owed1 = 3414305342 + 231412299
    assert cpmm.reserves(acct.address, rec, owed0 + 11, owed1 + 13) == (11, 13)
    with pytest.raises(ChainError, match="token0 vault holds"):
        cpmm.reserves(acct.address, rec, owed0 - 1, owed1)
    cfg = decode(cpmm.CONFIG_LAYOUT, [Account("C", cpmm.PROGRAM, amm_config(2500, 1000))])[0]
    assert cpmm.swap_fee(rec, cfg) == (3500, 1_000_000)


def test_sqrt_price_at_tick_is_the_programs():
    assert wp.sqrt_price_at_tick(wp.TICK_MIN) == WP_MIN_SQRT_PRICE_X64        # the engine's bounds
    assert wp.sqrt_price_at_tick(wp.TICK_MAX) == WP_MAX_SQRT_PRICE_X64
    assert wp.sqrt_price_at_tick(0) == 1 << 64
    assert wp.sqrt_price_at_tick(1) == 18447666387855959850
    assert wp.sqrt_price_at_tick(-1) == 18445821805675392311
    prev = 0
    with localcontext() as ctx:
        ctx.prec = 60
        exact_of = [(t, Decimal("1.0001") ** (Decimal(t) / 2) * 2**64) for t in range(-443636, 443637, 997)]
    for t, exact in exact_of:
        p = wp.sqrt_price_at_tick(t)
        assert p > prev
        prev = p
        assert abs(Decimal(p) - exact) <= max(exact * Decimal("1e-15"), Decimal(32)), t   # truncating steps
    with pytest.raises(ValueError):
        wp.sqrt_price_at_tick(wp.TICK_MAX + 1)


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if e["layout"] == "orca_whirlpool_Whirlpool"])
def test_whirlpool_current_range_holds_its_price(name):
    acct = load(name)
    rec = decode(wp.LAYOUT, [acct])[0]
    e = EXPECTED[name]["decoded"]
    lo, hi = wp.current_range(acct.address, rec)
    assert lo <= int(e["sqrtPrice"]) <= hi
    ts, tick = e["tickSpacing"], e["tickCurrentIndex"]
    if ts < wp.FULL_RANGE_ONLY_TICK_SPACING:
        assert (lo, hi) == (wp.sqrt_price_at_tick(tick // ts * ts), wp.sqrt_price_at_tick(tick // ts * ts + ts))
    else:   # splash pool: positions only over the full range, so liquidity is the same everywhere
        assert lo == wp.sqrt_price_at_tick(-(443636 // ts) * ts) and hi == wp.sqrt_price_at_tick(443636 // ts * ts)


def test_token_account_and_mint_base_layouts():
    mint = load("spl_mint_EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v.json")
    owner = "HggGrUeg4ReGvpPMLJMFKV69NTXL1r4wQ9Pk9Ljutwyv"
    ta = Account("Vau1t11111111111111111111111111111111111111", spl_token.TOKEN_PROGRAM,
                 token_account(mint.address, owner, 123456789))
    r = record_dict(decode(spl_token.ACCOUNT_LAYOUT, [ta])[0])
    assert (r["mint"], r["owner"], r["amount"], r["state"]) == (mint.address, owner, 123456789, 1)
    assert r["delegate_option"] == 0 and r["is_native_option"] == 0
    m = record_dict(decode(token_2022.MINT_LAYOUT, [mint])[0])
    assert m["decimals"] == 6 and m["supply"] == 10117047761548608
    with pytest.raises(ChainError, match=r"account Vau1t1.*: truncated: 164 bytes"):
        decode(spl_token.ACCOUNT_LAYOUT, [Account(ta.address, ta.owner, ta.data[:164])])


def test_token_2022_extensions_are_walked_and_checked():
    t22 = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
    mint_addr = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
    # an account with the ImmutableOwner (7, empty) and TransferFeeAmount (2, 8 bytes) extensions
    tail = bytes([token_2022.ACCOUNT_TYPE_ACCOUNT]) + struct.pack("<HH", 7, 0) + struct.pack("<HHQ", 2, 8, 55)
    acct = Account("T22acct1111111111111111111111111111111111111", t22,
                   token_account(mint_addr, mint_addr, 42) + tail)
    rec = decode(token_2022.ACCOUNT_LAYOUT, [acct])[0]
    token_2022.check_extended(acct, token_2022.ACCOUNT_TYPE_ACCOUNT)
    assert int(rec["amount"]) == 42
    assert token_2022.extensions(acct) == [(7, 170, 0), (2, 174, 8)]
    # an extended mint: base, zero padding to 165, AccountType 1, a TransferFeeConfig entry
    m = Account("T22mint1111111111111111111111111111111111111", t22,
                mint_account(6) + bytes(165 - 82) + b"\x01" + struct.pack("<HH", 1, 108) + bytes(108))
    token_2022.check_extended(m, token_2022.ACCOUNT_TYPE_MINT)
    assert token_2022.extensions(m) == [(token_2022.EXT_TRANSFER_FEE_CONFIG, 170, 108)]
    # refused: an entry longer than the data, the wrong account type, a tail on an SPL Token account
    with pytest.raises(ChainError, match=r"account T22acct.*: extension type 2 at byte 170 claims 8 bytes"):
        token_2022.check_extended(Account(acct.address, t22, acct.data[:-4]), token_2022.ACCOUNT_TYPE_ACCOUNT)
    with pytest.raises(ChainError, match="AccountType 2 at byte 165, expected 1"):
        token_2022.check_extended(Account(m.address, t22, mint_account(6) + bytes(83) + b"\x02"),
                                  token_2022.ACCOUNT_TYPE_MINT)
    with pytest.raises(ChainError, match="an SPL Token account is 165"):
        token_2022.check_extended(Account(acct.address, "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA", acct.data),
                                  token_2022.ACCOUNT_TYPE_ACCOUNT)


def _lut_bytes(keys, authority):
    meta = LookupTableMeta(deactivation_slot=2**64 - 1, last_extended_slot=376_000_000,
                           last_extended_slot_start_index=2, authority=authority, padding=0)
    body = bytes(AddressLookupTable(meta, keys))[:52]       # solders' meta bytes (bincode)
    return struct.pack("<I", 1) + body + b"".join(bytes(k) for k in keys)


def test_lookup_table_decodes_as_solders_reads_it():
    keys = [Pubkey.from_string(a) for a in ("675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8",
                                              "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
                                              "So11111111111111111111111111111111111111112")]
    auth = Pubkey.from_string("HggGrUeg4ReGvpPMLJMFKV69NTXL1r4wQ9Pk9Ljutwyv")
    data = _lut_bytes(keys, auth)
    ref = AddressLookupTable.deserialize(data)             # solders: the runtime's own reader
    meta, got = lookup_table.decode_table(Account("Lut1111111111111111111111111111111111111111",
                                                  lookup_table.PROGRAM, data))
    assert got == [str(k) for k in ref.addresses] == [str(k) for k in keys]
    r = record_dict(meta)
    assert r["authority"] == str(ref.meta.authority) and r["last_extended_slot"] == ref.meta.last_extended_slot
    assert r["deactivation_slot"] == lookup_table.ACTIVE
    with pytest.raises(ChainError, match=r"account Lut1.*: truncated: 31 bytes of addresses"):
        lookup_table.decode_table(Account("Lut1111111111111111111111111111111111111111", lookup_table.PROGRAM,
                                          data[:56 + 31]))
    with pytest.raises(ChainError, match=r"account Lut1.*: lookup table tag 0"):
        lookup_table.decode_table(Account("Lut1111111111111111111111111111111111111111", lookup_table.PROGRAM,
                                          bytes(4) + data[4:]))
    with pytest.raises(ChainError, match=r"account Lut1.*: truncated: 40 bytes"):
        lookup_table.decode_table(Account("Lut1111111111111111111111111111111111111111", lookup_table.PROGRAM,
                                          data[:40]))


def test_rpc_values_are_checked():
    with pytest.raises(ChainError, match="account Abc: does not exist"):
        Account.from_rpc("Abc", None)
    with pytest.raises(ChainError, match="account Abc: data encoding 'base58'"):
        Account.from_rpc("Abc", {"data": ["xx", "base58"], "owner": "o"})
    with pytest.raises(ChainError, match="account Abc: not an account object with base64 data"):
        Account.from_rpc("Abc", {"data": ["!!!", "base64"], "owner": "o"})
