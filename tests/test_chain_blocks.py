"""``workbench blocks`` then ``workbench replay`` (issue #18 item 4), against a loopback JSON-RPC server.

The blocks are COMPOSED (tests/chain_rpc.py): the REAL getTransaction fixtures (their signed
wire bytes and meta) and the transactions of the bundled market capture, so that the
capture's snapshot finds swaps and opportunities in them; one slot is skipped and, in one
range, a transaction that swaps on a snapshot pool landed failed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from solders.transaction import VersionedTransaction

from chain_rpc import (FAILED_ERR, RpcServer, block, capture_transactions, fixture_transactions, ok_meta, skipped)
from conftest import CAPTURES, REPO
from workbench.capture import capture_format, open_capture
from workbench.capture.block_file import BlockFileReader
from workbench.config import Settings
from workbench.errors import CaptureError, ChainError
from workbench.runner.chain_blocks import backfill_blocks
from workbench.runner.replay import replay

CAP = CAPTURES / "market.pcapng"
MARKET = str(CAP) + ".market"
S0 = 376_500_000


@pytest.fixture(scope="module")
def txs():
    return fixture_transactions(), capture_transactions(CAP)


def compose(txs, failed: int | None = None, drop: int | None = None) -> dict:
    """Slot S0: the real fixture transactions and the first half of the capture's; S0+1 skipped;
    S0+2: the rest. ``failed`` / ``drop``: index (in the capture's list) landed failed / left out."""
    real, cap = txs
    ours = [(t, {**ok_meta(), "err": FAILED_ERR} if k == failed else ok_meta()) for k, t in enumerate(cap) if k != drop]
    half = len(ours) // 2
    return {S0: block(real + ours[:half], S0), S0 + 1: skipped(S0 + 1), S0 + 2: block(ours[half:], S0 + 2)}


def fetch(blocks, out, **kw):
    with RpcServer({}, blocks=blocks) as srv:
        return backfill_blocks(srv.url, S0, S0 + 2, out, **kw), srv


def run(path, out):
    replay(path, out, Settings(progress=False, market=MARKET))
    return {n: pq.read_table(out / f"{n}.parquet").to_pandas() for n in ("tx_features", "swaps", "opportunities")}


def test_fixture_transactions_are_the_signed_bytes(txs):
    for raw, _ in txs[0]:
        t = VersionedTransaction.from_bytes(raw)
        assert t.verify_with_results() == [True] * len(t.signatures)


def test_backfill_replays_in_landed_order_with_a_failed_transaction(txs, tmp_path):
    real, cap = txs
    ok_file = tmp_path / "ok.arrow"
    res, srv = fetch(compose(txs), ok_file)
    assert capture_format(ok_file) == "blocks"
    assert res.blocks == 2 and res.transactions == len(real) + len(cap) and res.failed == 0
    assert res.skipped == [{"slot": S0 + 1, "code": -32007,
                            "message": f"Slot {S0 + 1} was skipped, or missing due to ledger jump to recent snapshot"}]
    assert srv.requests.count("getBlock") == 3
    reader = BlockFileReader(ok_file)
    assert reader.skipped == res.skipped and reader.meta["rpc"] == srv.url
    t = ipc.open_file(ok_file).read_all()
    assert t.column("slot").to_pylist() == [S0] * (len(real) + len(cap) // 2) + [S0 + 2] * (len(cap) - len(cap) // 2)
    frames = [bytes(f) for b in open_capture(ok_file) for f in (b.frame(i) for i in range(b.n))]
    assert [f[16:] for f in frames[:len(real)]] == [r for r, _ in real]      # zero-copy frames = the transactions
    assert t.column("fee_lamports").to_pylist()[:len(real)] == [m["fee"] for _, m in real]
    assert t.column("compute_units_consumed").to_pylist()[:len(real)] == [m["computeUnitsConsumed"] for _, m in real]

    ok = run(ok_file, tmp_path / "ok")
    tx = ok["tx_features"]
    # the same transactions from the UDP capture: the same ones decode (the capture's malformed ones
    # are refused the same way); the capture's shred-borne transactions are not in the blocks
    udp = tmp_path / "udp"
    replay(CAP, udp, Settings(progress=False, market=MARKET))
    udp_tx = pq.read_table(udp / "tx_features.parquet").to_pandas()
    udp_tx = udp_tx[udp_tx["origin"] == 0]
    assert tx["signature"].tolist()[len(real):] == udp_tx["signature"].tolist()
    assert tx["packet_index"].tolist()[:len(real)] == list(range(len(real)))
    p = tx["packet_index"].to_numpy()
    assert (tx["slot"].to_numpy() == t.column("slot").to_numpy()[p]).all()
    assert (tx["index_in_block"].to_numpy() == t.column("index_in_block").to_numpy()[p]).all()
    assert set(tx["landed"]) == {"success"} and set(tx["origin"]) == {2}
    applied = ok["swaps"][ok["swaps"]["status"] == "applied"]
    assert len(applied) > 0 and len(ok["opportunities"]) > 0

    # one capture transaction with an applied swap lands failed
    k = int(applied["packet_index"].iloc[len(applied) // 2]) - len(real)
    failed, _ = fetch(compose(txs, failed=k), tmp_path / "failed.arrow")
    assert failed.failed == 1
    got = run(tmp_path / "failed.arrow", tmp_path / "f")
    sw = got["swaps"]
    mine = sw[sw["packet_index"] == k + len(real)]
    assert len(mine) > 0 and set(mine["status"]) == {"reverted"} and set(mine["landed"]) == {"failed"}
    assert set(got["tx_features"]["landed"][got["tx_features"]["packet_index"] == k + len(real)]) == {"failed"}
    assert not (got["opportunities"]["packet_index"] == k + len(real)).any()
    # ... and the pools evolve as if it had never been there
    fetch(compose(txs, drop=k), tmp_path / "drop.arrow")
    gone = run(tmp_path / "drop.arrow", tmp_path / "d")["swaps"]
    rest = sw[sw["packet_index"] != k + len(real)]
    cols = ["amount_in", "amount_out", "reserve_a", "reserve_b", "pool", "status"]
    assert rest[cols].reset_index(drop=True).equals(gone[cols].reset_index(drop=True))


def test_udp_rows_carry_no_landed_columns(tmp_path):
    replay(CAPTURES / "small.pcap", tmp_path / "r", Settings(progress=False))
    names = pq.read_schema(tmp_path / "r" / "tx_features.parquet").names
    assert "landed" not in names and "index_in_block" not in names


# -- bad input ---------------------------------------------------------------------------------

def _fail(blocks, tmp_path, faults=(), **kw):
    out = tmp_path / "b.arrow"
    with RpcServer({}, blocks=blocks) as srv:
        srv.faults.extend(faults)
        with pytest.raises(ChainError) as e:
            backfill_blocks(srv.url + "/?api-key=SECRET", S0, S0 + 2, out, concurrency=1, **kw)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".b.arrow")]
    assert "SECRET" not in str(e.value)
    return str(e.value)


def test_rpc_error_names_the_method_and_leaves_no_file(txs, tmp_path):
    msg = _fail(compose(txs), tmp_path, [("rpc_error", -32602, "Invalid params")])
    assert "getBlock" in msg and "-32602" in msg


def test_rate_limit_is_waited_then_the_file_is_whole(txs, tmp_path):
    res, _ = fetch(compose(txs), tmp_path / "b.arrow")
    with RpcServer({}, blocks=compose(txs)) as srv:
        srv.faults.extend([("429", 0.05), ("truncate",)])
        again = backfill_blocks(srv.url, S0, S0 + 2, tmp_path / "c.arrow", concurrency=1, retries=3,
                                timeout_s=5)
    assert again.rate_limited == 1 and again.retries == 2 and again.transactions == res.transactions


def test_timeout_and_truncated_json_give_up_with_a_message(txs, tmp_path):
    msg = _fail(compose(txs), tmp_path, [("sleep", 1.0)] * 2, retries=1, timeout_s=0.2)
    assert "timed out" in msg
    msg = _fail(compose(txs), tmp_path, [("truncate",)] * 2, retries=1, timeout_s=5)
    assert "not complete JSON" in msg


def test_a_transaction_that_does_not_decode_names_its_slot(txs, tmp_path):
    blocks = compose(txs)
    bad = json.loads(json.dumps(blocks[S0 + 2]))
    raw = bytes(VersionedTransaction.from_bytes(txs[1][0]))[:40]
    bad["transactions"][1]["transaction"][0] = base64.b64encode(raw).decode()
    blocks[S0 + 2] = bad
    msg = _fail(blocks, tmp_path)
    assert f"slot {S0 + 2} transaction 1: does not decode" in msg


def test_truncated_blocks_file_is_refused_by_replay_with_its_offset(txs, tmp_path):
    fetch(compose(txs), tmp_path / "b.arrow")
    data = (tmp_path / "b.arrow").read_bytes()
    cut = tmp_path / "cut.arrow"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CaptureError) as e:
        replay(cut, tmp_path / "r", Settings(progress=False))
    assert str(len(data) * 2 // 3) in str(e.value) and "not a complete blocks file" in str(e.value)
    p = subprocess.run([sys.executable, "-m", "workbench.cli", "replay", str(cut), "--out", str(tmp_path / "r2"),
                        "--no-db"], cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "Traceback" not in p.stderr and "not a complete blocks file" in p.stderr


def test_blocks_command_writes_the_file_and_refuses_bad_flags(txs, tmp_path):
    env = os.environ.copy()
    with RpcServer({}, blocks=compose(txs)) as srv:
        p = subprocess.run([sys.executable, "-m", "workbench.cli", "blocks", "--rpc", srv.url, "--from", str(S0),
                            "--to", str(S0 + 2), "--out", str(tmp_path / "b.arrow")], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "1 skipped" in p.stdout and BlockFileReader(tmp_path / "b.arrow").skipped[0]["slot"] == S0 + 1
        p = subprocess.run([sys.executable, "-m", "workbench.cli", "blocks", "--rpc", srv.url, "--from", str(S0 + 2),
                            "--to", str(S0), "--out", str(tmp_path / "x.arrow")], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode != 0 and "--from" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "x.arrow").exists()


def test_market_keeps_only_its_vaults_token_balances(txs, tmp_path):
    real, _ = txs
    raw, meta = real[-1]                                      # the Raydium CLMM swap: 3 token balances
    keys = [str(k) for k in VersionedTransaction.from_bytes(raw).message.account_keys]
    keys += meta["loadedAddresses"]["writable"] + meta["loadedAddresses"]["readonly"]
    vault = keys[meta["postTokenBalances"][0]["accountIndex"]]
    market = tmp_path / "m"
    market.mkdir()
    pq.write_table(pa.table({"vault_a": [vault], "vault_b": ["11111111111111111111111111111111"]}),
                   market / "pools.parquet")
    blocks = {S0: block([(raw, meta)], S0), S0 + 1: skipped(S0 + 1), S0 + 2: skipped(S0 + 2)}
    with RpcServer({}, blocks=blocks) as srv:
        backfill_blocks(srv.url, S0, S0 + 2, tmp_path / "all.arrow")
        backfill_blocks(srv.url, S0, S0 + 2, tmp_path / "vaults.arrow", market=market)
    every = json.loads(ipc.open_file(tmp_path / "all.arrow").read_all().column("post_token_balances")[0].as_py())
    mine = json.loads(ipc.open_file(tmp_path / "vaults.arrow").read_all().column("post_token_balances")[0].as_py())
    assert every == meta["postTokenBalances"] and len(every) > 1
    assert mine == [meta["postTokenBalances"][0]]
    assert BlockFileReader(tmp_path / "vaults.arrow").meta["vaults_only"] is True


def test_block_not_available_is_retried_then_recorded(txs, tmp_path):
    blocks = compose(txs)
    blocks[S0 + 1] = ("rpc_error", -32004, f"Block not available for slot {S0 + 1}")
    with RpcServer({}, blocks=blocks) as srv:
        res = backfill_blocks(srv.url, S0, S0 + 2, tmp_path / "b.arrow", concurrency=1, retries=1)
    assert srv.requests.count("getBlock") == 4 and res.retries == 1
    assert res.skipped == [{"slot": S0 + 1, "code": -32004, "message": f"Block not available for slot {S0 + 1}"}]
