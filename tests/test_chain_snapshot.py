"""``workbench snapshot`` against a JSON-RPC server on loopback serving the real pool accounts
(tests/chain_rpc.py; vaults, other mints and AmmConfigs composed there): the snapshot holds the
reserves, fees and Whirlpool words the layouts give, loads with the engine's loader and replays;
RPC faults and bad accounts fail with the account or URL named, a non-zero exit and no folder."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time

import base58

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from chain_rpc import POOL_FILES, TOKEN, RpcServer, fixture_market, token_account, value
from conftest import CAPTURES, fixtures_dir
from workbench.chain import whirlpool as wp
from workbench.cli import app
from workbench.engine.market.snapshot import load_market
from workbench.errors import ChainError
from workbench.runner.chain_snapshot import snapshot_from_rpc
from workbench.wire.keys import new_key_table

pytestmark = pytest.mark.timeout(120)
ACCOUNTS = fixtures_dir() / "chain" / "accounts"
runner = CliRunner()
WSOL = "So11111111111111111111111111111111111111112"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


@pytest.fixture
def market():
    return fixture_market(ACCOUNTS)


def pools_file(tmp_path, addresses):
    p = tmp_path / "pools.txt"
    p.write_text("# pools of the fixtures\n" + "\n".join(addresses) + "\n\n")
    return p


def snapshot_cli(url, out, *args):
    return runner.invoke(app, ["snapshot", "--rpc", url, "--out", str(out), *args])


def leftovers(folder):
    """Anything the snapshot left beside its --out (a half-written temporary folder)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_snapshot_holds_the_layouts_reserves_fees_and_whirlpool_words(tmp_path, market):
    table, cases = market
    out = tmp_path / "snap"
    with RpcServer(table) as srv:
        r = snapshot_cli(srv.url, out, "--pools", str(pools_file(tmp_path, list(cases))))
    assert r.exit_code == 0, r.output
    assert srv.requests == ["getMultipleAccounts", "getMultipleAccounts"]   # pools, then what they point at
    rows = {row["address"]: row for row in pq.read_table(out / "pools.parquet").to_pylist()}
    assert set(rows) == set(cases)
    for addr, case in cases.items():
        got, want = rows[addr], case.row
        for c in ("program", "mint_a", "mint_b", "vault_a", "vault_b", "reserve_a", "reserve_b", "fee_num", "fee_den"):
            assert got[c] == want[c], (addr, c)
        if case.program == "orca_whirlpool":
            assert (got["sqrt_price_x64"], got["liquidity"], got["tick_spacing"]) == (
                want["sqrt_price_x64"], want["liquidity"], want["tick_spacing"])
            lo, hi = int(got["sqrt_price_lower_x64"]), int(got["sqrt_price_upper_x64"])
            assert lo <= int(got["sqrt_price_x64"]) <= hi
            ts, tick = want["tick_spacing"], want["tick_current_index"]
            if ts < wp.FULL_RANGE_ONLY_TICK_SPACING:
                assert lo == wp.sqrt_price_at_tick(tick // ts * ts) and hi == wp.sqrt_price_at_tick(tick // ts * ts + ts)
        else:
            assert got["sqrt_price_x64"] == got["liquidity"] == "" and got["tick_spacing"] == 0
    tokens = {t["mint"]: t for t in pq.read_table(out / "tokens.parquet").to_pylist()}
    assert tokens[USDC]["decimals"] == 6 and tokens[USDC]["symbol"] == "USDC" and tokens[WSOL]["symbol"] == "WSOL"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["rpc_url"] == srv.url and meta["context_slot"] == srv.slot and meta["pools"] == len(cases)
    assert meta["fetched_at_utc"].endswith("+00:00")
    keys, slots, kmeta = new_key_table(1 << 12)
    m = load_market(out, keys, slots, kmeta)                # the engine's own validating loader
    first = cases[next(iter(cases))].row
    assert m.pool_kind.tolist().count(3) == 2 and m.pool_res[0].tolist() == [first["reserve_a"], first["reserve_b"]]
    assert leftovers(tmp_path) == []
    assert "context slot" in r.output and f"{srv.slot:,}" in r.output


def test_snapshot_replays_with_the_engine(tmp_path, market):
    table, cases = market
    with RpcServer(table) as srv:
        snapshot_from_rpc(srv.url, tmp_path / "snap", list(cases))
    r = runner.invoke(app, ["replay", str(CAPTURES / "demo.pcapng"), "--market", str(tmp_path / "snap"),
                            "--out", str(tmp_path / "run"), "--quiet", "--no-db"])
    assert r.exit_code == 0, r.output
    assert "swaps on pools not in the snapshot" in r.output


def test_mints_discover_pools_with_program_account_filters(tmp_path, market):
    table, cases = market
    fora = cases["5y2QYKY8gQCcmG6jy4fc7wFg8L5SW7bkyvMH3jUTqBdy"].row["mint_a"]
    dz9m = cases["Q2sPHPdUWFMg7M7wwrQKLrn619cAucfRsmhVJffodSp"].row["mint_b"]
    with RpcServer(table) as srv:
        r = snapshot_cli(srv.url, tmp_path / "snap", "--mints", f"{fora},{USDC},{WSOL},{dz9m}")
    assert r.exit_code == 0, r.output
    got = sorted(pq.read_table(tmp_path / "snap" / "pools.parquet").column("address").to_pylist())
    assert got == sorted(["5y2QYKY8gQCcmG6jy4fc7wFg8L5SW7bkyvMH3jUTqBdy", "Q2sPHPdUWFMg7M7wwrQKLrn619cAucfRsmhVJffodSp"])
    assert srv.requests.count("getProgramAccounts") == 12 * 3       # ordered pairs of 4 mints x 3 programs


def test_keys_go_100_per_request_concurrently(tmp_path, market):
    table, cases = market
    # 250 copies of the real pools at made-up addresses (the snapshot does not check a pool's PDA)
    copies = []
    for i in range(250):
        src = list(cases)[i % len(cases)]
        addr = base58.b58encode(hashlib.sha256(f"copy {i}".encode()).digest()).decode()
        table[addr] = table[src]
        copies.append(addr)
    with RpcServer(table) as srv:
        res = snapshot_from_rpc(srv.url, tmp_path / "snap", copies, concurrency=4)
    assert res.pools == 250 and res.requests == 3 + 1 == len(srv.requests)
    assert pq.read_table(tmp_path / "snap" / "pools.parquet").num_rows == 250


def test_429_retry_after_is_honoured(tmp_path, market):
    table, cases = market
    with RpcServer(table) as srv:
        srv.faults = [("429", 1), ("500",)]
        t0 = time.perf_counter()
        res = snapshot_from_rpc(srv.url, tmp_path / "snap", list(cases), backoff_s=0.01)
        took = time.perf_counter() - t0
    assert took >= 1.0 and res.rate_limited == 1 and res.retries == 2 and res.requests == 4
    assert (tmp_path / "snap" / "pools.parquet").is_file()


@pytest.mark.parametrize("faults, args, message", [
    ([("rpc_error", -32602, "Invalid param: WrongSize")], [],
     r"getMultipleAccounts: JSON-RPC error -32602: Invalid param: WrongSize"),
    ([("truncate",)] * 3, ["--retries", "2"], r"getMultipleAccounts: the response is not complete JSON .*gave up after 3"),
    ([("sleep", 1.5)] * 2, ["--retries", "1", "--timeout", "0.3"], r"timed out after 0.3 s; gave up after 2 attempts"),
    ([("429", 0)] * 3, ["--retries", "2"], r"HTTP 429 Too Many Requests \(Retry-After 0\); gave up after 3"),
])
def test_rpc_faults_exit_non_zero_and_leave_nothing(tmp_path, market, faults, args, message):
    table, cases = market
    with RpcServer(table) as srv:
        srv.faults = list(faults)
        r = snapshot_cli(srv.url, tmp_path / "snap", "--pools", str(pools_file(tmp_path, list(cases))), *args)
    assert r.exit_code != 0
    assert srv.url in r.output
    assert re.search(message, " ".join(r.output.split())), r.output
    assert not (tmp_path / "snap").exists() and leftovers(tmp_path) == []


def _bad(table, cases, how):
    v4, cp = "5y2QYKY8gQCcmG6jy4fc7wFg8L5SW7bkyvMH3jUTqBdy", "BtGUffMEnxrzdjyC3kKAHjGMpG1UdZiVWXZUaSpUv13C"
    if how == "owner":
        table[v4] = table[v4] | {"owner": TOKEN}
        return v4, "owner TokenkegQ.* is none of the pool programs"
    if how == "size":
        data = base64.b64decode(table[cp]["data"][0]) + b"\0"
        table[cp] = value(table[cp]["owner"], data)
        return cp, "638 bytes, a Raydium CPMM PoolState is 637 bytes"
    if how == "truncated":
        data = base64.b64decode(table[cp]["data"][0])[:500]
        table[cp] = value(table[cp]["owner"], data)
        return cp, "truncated: 500 bytes"
    vault = cases[v4].row["vault_b"]
    if how == "vault mint":
        table[vault] = value(TOKEN, token_account(WSOL, WSOL, 5))
        return vault, f"holds mint {WSOL}, but pool {v4} names it the vault of mint {USDC}"
    if how == "vault missing":
        del table[vault]
        return vault, f"does not exist .*a vault of pool {v4}"
    if how == "owes more":
        table[vault] = value(TOKEN, token_account(USDC, WSOL, 5))
        return v4, "quote vault holds 5, less than the 3520673 quote_need_take_pnl"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["owner", "size", "truncated", "vault mint", "vault missing", "owes more"])
def test_bad_accounts_are_named_and_nothing_is_written(tmp_path, market, how):
    table, cases = market
    account, message = _bad(table, cases, how)
    with RpcServer(table) as srv:
        r = snapshot_cli(srv.url, tmp_path / "snap", "--pools", str(pools_file(tmp_path, list(cases))))
    assert r.exit_code != 0
    text = " ".join(r.output.split())
    assert f"account {account}" in text and re.search(message, text), r.output
    assert not (tmp_path / "snap").exists() and leftovers(tmp_path) == []


def test_an_existing_snapshot_is_kept_until_a_new_one_loads(tmp_path, market):
    table, cases = market
    out = tmp_path / "snap"
    with RpcServer(table) as srv:
        snapshot_from_rpc(srv.url, out, list(cases))
        before = (out / "pools.parquet").read_bytes()
        r = snapshot_cli(srv.url, out, "--pools", str(pools_file(tmp_path, list(cases))))
        assert r.exit_code != 0 and "already exists; pass --replace" in " ".join(r.output.split())
        srv.faults = [("rpc_error", -32000, "boom")]
        with pytest.raises(ChainError, match="boom"):
            snapshot_from_rpc(srv.url, out, list(cases), replace=True)
        assert (out / "pools.parquet").read_bytes() == before and leftovers(tmp_path) == []
        srv.slot += 5
        snapshot_from_rpc(srv.url, out, list(cases), replace=True)
    assert json.loads((out / "meta.json").read_text())["context_slot"] == srv.slot
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("args, message", [
    (["--pools", "MISSING"], "--pools .*MISSING: cannot read"),
    (["--mints", "notbase58!"], "--mints 'notbase58!': is not a base58 32-byte address"),
    (["--mints", f"{USDC},{WSOL}", "--lookup-tables", "Lut1"], "--lookup-tables 'Lut1': is not a base58 32-byte"),
    (["--mints", USDC], "name at least two mints"),
    ([], "give --pools FILE or --mints A,B"),
])
def test_bad_flags_are_named(tmp_path, args, message):
    r = runner.invoke(app, ["snapshot", "--rpc", "http://127.0.0.1:9", "--out", str(tmp_path / "s"), *args])
    assert r.exit_code != 0 and re.search(message, " ".join(r.output.split())), r.output


def test_bad_pools_file_line_is_named(tmp_path):
    p = tmp_path / "pools.txt"
    p.write_text("5y2QYKY8gQCcmG6jy4fc7wFg8L5SW7bkyvMH3jUTqBdy\nnot-an-address\n")
    r = runner.invoke(app, ["snapshot", "--rpc", "http://127.0.0.1:9", "--out", str(tmp_path / "s"), "--pools", str(p)])
    assert r.exit_code != 0 and "line 2: 'not-an-address' is not a base58" in " ".join(r.output.split())


def test_fixture_pools_are_the_real_files():
    for name in POOL_FILES:
        assert (ACCOUNTS / name).is_file(), name


def test_meta_and_messages_keep_no_credentials_of_the_url(tmp_path, market):
    from workbench.chain.rpc import public_url
    assert public_url("https://user:secret@rpc.example.com:8899/v1/?api-key=KEY") == "https://rpc.example.com:8899/v1/"
    table, cases = market
    with RpcServer(table) as srv:
        srv.faults = [("rpc_error", -32602, "bad")]
        r = snapshot_cli(srv.url + "/?api-key=SECRET", tmp_path / "s", "--pools", str(pools_file(tmp_path, list(cases))))
        assert r.exit_code != 0 and f"{srv.url}/ getMultipleAccounts" in r.output and "SECRET" not in r.output
        snapshot_from_rpc(srv.url + "/?api-key=SECRET", tmp_path / "ok", list(cases))
    assert "SECRET" not in (tmp_path / "ok" / "meta.json").read_text()


def _lookup_table(keys: list[str]) -> bytes:
    """A COMPOSED lookup table account: tag 1, active, last extended at slot 1 from index 0, no authority."""
    import struct
    return struct.pack("<IQQBB", 1, (1 << 64) - 1, 1, 0, 0) + bytes(32) + bytes(2) + b"".join(
        base58.b58decode(k) for k in keys)


def test_lookup_tables_and_token_accounts_given_are_in_the_snapshot(tmp_path, market):
    table, cases = market
    lut_keys = [cases[a].row["vault_a"] for a in cases] + [USDC, WSOL]
    lut = base58.b58encode(hashlib.sha256(b"composed lookup table").digest()).decode()
    table[lut] = value("AddressLookupTab1e1111111111111111111111111", _lookup_table(lut_keys))
    user = base58.b58encode(hashlib.sha256(b"composed user token account").digest()).decode()
    table[user] = value(TOKEN, token_account(USDC, WSOL, 10**6))
    with RpcServer(table) as srv:
        r = snapshot_cli(srv.url, tmp_path / "snap", "--pools", str(pools_file(tmp_path, list(cases))),
                         "--lookup-tables", lut, "--token-accounts", user)
    assert r.exit_code == 0, r.output
    luts = pq.read_table(tmp_path / "snap" / "lookup_tables.parquet").to_pylist()
    assert luts == [{"address": lut, "keys": lut_keys}]
    accts = pq.read_table(tmp_path / "snap" / "token_accounts.parquet").to_pylist()
    assert accts == [{"address": user, "mint": USDC, "owner": WSOL}]


def test_a_lookup_table_that_does_not_decode_is_named(tmp_path, market):
    table, cases = market
    lut = base58.b58encode(hashlib.sha256(b"composed lookup table").digest()).decode()
    table[lut] = value("AddressLookupTab1e1111111111111111111111111", _lookup_table([USDC])[:-5])
    with RpcServer(table) as srv:
        r = snapshot_cli(srv.url, tmp_path / "snap", "--pools", str(pools_file(tmp_path, list(cases))),
                         "--lookup-tables", lut)
    text = " ".join(r.output.split())
    assert r.exit_code != 0 and f"account {lut}: truncated: 27 bytes of addresses" in text, r.output
    assert not (tmp_path / "snap").exists() and leftovers(tmp_path) == []


def test_progress_counts_every_key_fetched(tmp_path, market):
    table, cases = market
    seen = {"done": 0, "total": 0}

    def progress(done, more):
        seen["done"] += done
        seen["total"] += more

    with RpcServer(table) as srv:
        res = snapshot_from_rpc(srv.url, tmp_path / "snap", list(cases), progress=progress)
    assert seen["done"] == seen["total"] == res.accounts == len(table)


def test_node_behind_errors_are_retried_and_other_rpc_errors_are_not(tmp_path, market):
    table, cases = market
    with RpcServer(table) as srv:
        srv.faults = [("rpc_error", -32016, "Minimum context slot has not been reached")]
        res = snapshot_from_rpc(srv.url, tmp_path / "a", list(cases), backoff_s=0.01)
        assert res.retries == 1
        srv.faults = [("rpc_error", -32601, "Method not found")]
        with pytest.raises(ChainError, match=r"getMultipleAccounts: JSON-RPC error -32601: Method not found$"):
            snapshot_from_rpc(srv.url, tmp_path / "b", list(cases), backoff_s=0.01)
    assert srv.requests.count("getMultipleAccounts") == 2 + 1 + 1


def test_retry_after_as_seconds_or_http_date_is_capped():
    import email.utils
    from workbench.chain.rpc import RpcClient

    async def waits():
        async with RpcClient("http://127.0.0.1:9", backoff_s=0.1, backoff_max_s=5) as c:
            later = email.utils.formatdate(time.time() + 3, usegmt=True)
            return c._wait_s(0, "2"), c._wait_s(0, later), c._wait_s(0, "600"), c._wait_s(3, None)
    import asyncio
    secs, date, capped, backoff = asyncio.run(waits())
    assert secs == 2 and 1.5 < date <= 3 and capped == 5 and backoff == pytest.approx(0.8)


def test_token_2022_vaults_and_mints_are_read_and_transfer_fees_noted(tmp_path, market):
    import struct
    table, cases = market
    t22 = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
    pool = cases["Q2sPHPdUWFMg7M7wwrQKLrn619cAucfRsmhVJffodSp"].row
    vault, mint = pool["vault_b"], pool["mint_b"]
    # the same balance as a Token-2022 account with ImmutableOwner (7), and its mint with a TransferFeeConfig (1)
    data = base64.b64decode(table[vault]["data"][0]) + bytes([2]) + struct.pack("<HH", 7, 0)
    table[vault] = value(t22, data)
    mdata = base64.b64decode(table[mint]["data"][0]) + bytes(165 - 82) + bytes([1]) + struct.pack("<HH", 1, 108) \
        + bytes(108)
    table[mint] = value(t22, mdata)
    with RpcServer(table) as srv:
        snapshot_from_rpc(srv.url, tmp_path / "snap", list(cases))
    rows = {r["address"]: r for r in pq.read_table(tmp_path / "snap" / "pools.parquet").to_pylist()}
    assert rows[pool["address"]]["reserve_b"] == pool["reserve_b"]
    assert json.loads((tmp_path / "snap" / "meta.json").read_text())["transfer_fee_mints"] == [mint]
