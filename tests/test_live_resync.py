"""Live resync (issue 18 item 3): account updates of a snapshot's pools and vaults, decoded by
workbench/chain and applied by the live loop between batches.

The snapshot is the one ``workbench snapshot`` makes from the loopback JSON-RPC server of
tests/chain_rpc.py (the REAL pool accounts of tests/fixtures/chain, their vaults composed
there). Updates are those same real pool account bytes with composed vault token accounts
whose balances move. The live tests run `workbench live --accounts` in a network namespace
on a veth pair (as tests/test_live.py) while `workbench send` puts 50k packets/s on the
wire, with a Geyser Subscribe server (grpcio, the committed stubs) or an accountSubscribe
WebSocket server on the namespace's loopback (tests/account_stream_server.py).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from chain_rpc import CPMM, SLOT, TOKEN, V4, RpcServer, fixture_market
from conftest import CAPTURES, fixtures_dir
from workbench.chain.pool_updates import PoolTracker
from workbench.cli import app
from workbench.engine.market.layout import N_WP
from workbench.engine.market.resync import (DRAIN_MAX, Q_APPLIED, Q_DROPPED_FULL, Q_STALE, drain_resync, idle_resync,
                                            new_feed_scratch, new_resync, push_newest_states, push_state,
                                            resync_counters)
from workbench.engine.market.snapshot import load_market
from workbench.errors import ChainError
from workbench.runner.live_resync import AccountFeed, tracked_pools
from workbench.wire.keys import new_key_table

pytestmark = pytest.mark.timeout(900)
ACCOUNTS = fixtures_dir() / "chain" / "accounts"
SERVER = Path(__file__).parent / "account_stream_server.py"
CAPTURE = CAPTURES / "demo.pcapng"
STEP = 100                      # parts per 10,000 that the second phase moves each vault (1 %)


@pytest.fixture(scope="module")
def snap(tmp_path_factory):
    """(snapshot folder, account table, {pool: PoolCase}) from the loopback RPC server."""
    table, cases = fixture_market(ACCOUNTS)
    out = tmp_path_factory.mktemp("resync") / "snap"
    pools = out.parent / "pools.txt"
    pools.write_text("\n".join(cases) + "\n")
    with RpcServer(table) as srv:
        r = CliRunner().invoke(app, ["snapshot", "--rpc", srv.url, "--out", str(out), "--pools", str(pools)])
    assert r.exit_code == 0, r.output
    return out, table, cases


def _data(table, address) -> bytes:
    return base64.b64decode(table[address]["data"][0])


def _vault(table, address, delta: int) -> bytes:
    """The composed vault token account with its balance moved by ``delta``."""
    d = bytearray(_data(table, address))
    amount = struct.unpack_from("<Q", d, 64)[0]
    struct.pack_into("<Q", d, 64, amount + delta)
    return bytes(d)


def _upd(address, owner, data, slot):
    return {"pubkey": address, "owner": owner, "data": base64.b64encode(data).decode(), "slot": slot}


def phases(table, cases):
    """Phase 0: every pool account and vault as the snapshot saw it (slot + 1). Phase 1: each vault
    moved by STEP / 10^4 of its reserve (slot + 2), one at a time (so two states per pool). Returns
    the script and the reserves each pool must end with."""
    p0, p1, final = [], [], {}
    for addr, case in cases.items():
        row = case.row
        p0.append(_upd(addr, table[addr]["owner"], _data(table, addr), SLOT + 1))
        moved = []
        for side in ("a", "b"):
            v = row[f"vault_{side}"]
            p0.append(_upd(v, TOKEN, _data(table, v), SLOT + 1))
            delta = row[f"reserve_{side}"] * STEP // 10_000
            p1.append(_upd(v, TOKEN, _vault(table, v, delta), SLOT + 2))
            moved.append(row[f"reserve_{side}"] + delta)
        final[addr] = moved
    return [{"delay_s": 0.3, "updates": p0}, {"delay_s": 0.5, "updates": p1}], final


# --- the decoder and the engine's queue, without a network ---------------------------------------------
def test_tracker_makes_states_by_the_snapshot_rule_and_counts_stale_and_waiting(snap):
    folder, table, cases = snap
    pools = tracked_pools(folder)
    tr = PoolTracker(pools)
    assert set(tr.addresses()) == {a for p in pools for a in (p.address, p.vault_a, p.vault_b)}
    states = {}
    for ph in phases(table, cases)[0][:1]:
        for u in ph["updates"]:
            s = tr.update(u["pubkey"], u["owner"], base64.b64decode(u["data"]), u["slot"])
            if s is not None:
                states[pools[s.pool].address] = s
    assert set(states) == set(cases) and tr.waiting == 2 * len(cases)
    for addr, s in states.items():
        row = cases[addr].row
        assert (s.reserve_a, s.reserve_b, s.slot) == (row["reserve_a"], row["reserve_b"], SLOT + 1)
        if cases[addr].program == "orca_whirlpool":
            assert str(s.whirlpool[0]) == row["sqrt_price_x64"] and str(s.whirlpool[1]) == row["liquidity"]
            assert s.whirlpool[2] <= s.whirlpool[0] <= s.whirlpool[3]
        else:
            assert s.whirlpool is None
    v = pools[0].vault_a
    assert tr.update(v, TOKEN, _vault(table, v, 5), SLOT) is None and tr.stale == 1     # older: ignored
    s = tr.update(v, TOKEN, _vault(table, v, 5), SLOT + 3)
    assert s.reserve_a == cases[pools[0].address].row["reserve_a"] + 5 and s.slot == SLOT + 3


def test_tracker_names_the_account_of_a_bad_update(snap):
    folder, table, cases = snap
    pools = tracked_pools(folder)
    tr = PoolTracker(pools)
    v4 = next(p for p in pools if p.program == "raydium_amm_v4")
    cp = next(p for p in pools if p.program == "raydium_cpmm")
    bad = [(v4.vault_a, V4, _data(table, v4.vault_a), "owner"),                      # owner does not fit
           (v4.vault_b, TOKEN, _data(table, v4.vault_b)[:100], "truncated"),          # size does not fit
           (cp.address, CPMM, _data(table, cp.address)[:600], "truncated"),
           (v4.address, V4, _data(table, v4.address) + b"\0", "752 bytes"),
           (cp.vault_a, TOKEN, _data(table, v4.vault_a), "holds mint"),               # a vault of another mint
           ("11111111111111111111111111111111", TOKEN, _data(table, v4.vault_a), "neither a pool")]
    for address, owner, data, what in bad:
        with pytest.raises(ChainError) as e:
            tr.update(address, owner, data, SLOT + 1)
        assert address in str(e.value) and what in str(e.value), str(e.value)
    assert tr.rejected == len(bad) and tr.updates == len(bad)


def test_engine_applies_states_counts_stale_drift_and_a_full_queue(snap):
    folder, table, cases = snap
    keys, slots, meta = new_key_table(1 << 12)
    mk = load_market(folder, keys, slots, meta)
    pools = tracked_pools(folder)
    P = len(pools)
    rs = new_resync(P, queue=4)
    r0 = mk.pool_res.copy()
    assert push_state(rs, 0, SLOT + 1, int(r0[0, 0]), int(r0[0, 1]))                    # drift 0
    chain_a = int(r0[0, 0]) * 101 // 100
    assert push_state(rs, 0, SLOT + 2, chain_a, int(r0[0, 1]))                          # 1 % on side a
    assert push_state(rs, 0, SLOT + 1, 1, 1)                                            # older than SLOT + 2
    assert push_state(rs, 1, SLOT + 1, 7, 9)
    assert not push_state(rs, 1, SLOT + 5, 1, 1)                                        # the ring holds 4
    assert drain_resync(mk, rs) == 4
    c = resync_counters(rs)
    # pool 0: SLOT + 1 superseded by SLOT + 2 within the drain, the second SLOT + 1 stale; pool 1 written
    assert (c["states_applied"], c["superseded_states"], c["stale_states"], c["dropped_full"],
            c["still_queued"]) == (2, 1, 1, 1, 0)
    assert list(mk.pool_res[0]) == [chain_a, int(r0[0, 1])] and list(mk.pool_res[1]) == [7, 9]
    assert rs.pool_slot[0] == SLOT + 2 and rs.pool_updates[0] == 1
    want = int(abs(float(r0[0, 0]) - float(chain_a)) * 1_000_000 / float(chain_a))
    assert rs.drift_stats[0, 0] == 1 and rs.drift_stats[0, 2] == want                 # count, max (metrics/hist.py)
    assert 9_000 < want < 10_000
    assert rs.ctl[Q_APPLIED] == 2 and rs.ctl[Q_STALE] == 1 and rs.ctl[Q_DROPPED_FULL] == 1
    assert push_state(rs, 1, SLOT + 6, 8, 9) and drain_resync(mk, rs) == 1 and mk.pool_res[1, 0] == 8  # room again


def test_a_run_without_resync_passes_an_idle_ring_of_the_same_type_that_changes_nothing(snap):
    """A live run with a market and no --accounts gives the loop ``idle_resync()``: numba types it as
    the --accounts ring (one compiled loop for both), and its drains take nothing and write nothing."""
    import numba
    folder, _, _ = snap
    keys, slots, meta = new_key_table(1 << 12)
    mk = load_market(folder, keys, slots, meta)
    idle = idle_resync()
    assert numba.typeof(idle) == numba.typeof(new_resync(len(tracked_pools(folder))))
    before = mk.pool_res.copy()
    assert drain_resync(mk, idle) == 0 and drain_resync(mk, idle) == 0
    assert np.array_equal(mk.pool_res, before) and not idle.ctl.any()


def test_a_drain_writes_each_pools_newest_state_with_the_newest_fee_and_takes_a_bounded_share(snap):
    """Coalescing: what applying the states one by one would leave, written once per pool. A fee
    carried by a superseded state stays (the newest state carries none: 'keep'); a stale state's fee
    does not; the drift is the newest state's against the snapshot; a drain takes DRAIN_MAX entries."""
    folder, table, cases = snap
    keys, slots, meta = new_key_table(1 << 12)
    mk = load_market(folder, keys, slots, meta)
    rs = new_resync(len(tracked_pools(folder)), queue=4 * DRAIN_MAX)
    r0 = mk.pool_res.copy()
    fee0 = [int(x) for x in mk.pool_fee[0]]
    assert push_state(rs, 0, SLOT + 3, 5, 6, fee=(17, 1_000))              # a new fee
    assert push_state(rs, 0, SLOT + 1, 1, 1, fee=(99, 1_000))              # stale: its fee is not taken
    last = int(r0[0, 0]) * 102 // 100
    assert push_state(rs, 0, SLOT + 4, last, int(r0[0, 1]))                 # the newest: keeps the fee above
    assert drain_resync(mk, rs) == 3
    c = resync_counters(rs)
    assert (c["states_applied"], c["superseded_states"], c["stale_states"], c["fee_changes"]) == (1, 1, 1, 1)
    assert list(mk.pool_res[0]) == [last, int(r0[0, 1])] and rs.pool_slot[0] == SLOT + 4
    assert [int(x) for x in mk.pool_fee[0]] == [17, 1_000] != fee0
    assert mk.pool_gamma[0] == pytest.approx(1 - 17 / 1_000)
    want = int(abs(float(r0[0, 0]) - float(last)) * 1_000_000 / float(last))
    assert rs.drift_stats[0, 0] == 1 and rs.drift_stats[0, 2] == want        # one drift, against the snapshot
    n = DRAIN_MAX + 5
    for k in range(n):
        assert push_state(rs, 1, SLOT + 10 + k, 100 + k, 200 + k)
    assert drain_resync(mk, rs) == DRAIN_MAX and resync_counters(rs)["still_queued"] == 5
    assert list(mk.pool_res[1]) == [100 + DRAIN_MAX - 1, 200 + DRAIN_MAX - 1]
    assert drain_resync(mk, rs) == 5 and list(mk.pool_res[1]) == [100 + n - 1, 200 + n - 1]
    assert drain_resync(mk, rs) == 0
    c = resync_counters(rs)
    assert c["states_applied"] == 3 and c["superseded_states"] == 1 + n - 2 and c["still_queued"] == 0


def test_a_feeds_batch_queues_each_pools_newest_state_and_leaves_what_states_one_by_one_leave(snap):
    """push_newest_states (the Geyser feed's push): one ring entry per pool, the newest state with
    the newest fee carried; superseded and stale counted as a drain counts them; after a drain the
    pool table, slots and fees are those of pushing every state one by one and draining."""
    folder, table, cases = snap
    keys, slots, meta = new_key_table(1 << 12)
    P = len(tracked_pools(folder))
    rows = [  # pool, slot offset, reserves, fee (0, 0: none)
        (0, 3, (5, 6), (17, 1_000)), (1, 1, (7, 9), (0, 0)), (0, 1, (1, 1), (99, 1_000)),   # pool 0: stale
        (0, 4, (8, 8), (0, 0)), (1, 2, (10, 11), (0, 0)), (0, 4, (12, 13), (0, 0)),         # equal slot: newer
    ]
    n = len(rows)
    pool = np.array([r[0] for r in rows], np.int32)
    slot = np.array([SLOT + r[1] for r in rows], np.int64)
    res = np.array([r[2] for r in rows], np.uint64)
    fee = np.array([r[3] for r in rows], np.uint64)
    wp = np.zeros((n, N_WP), np.uint64)
    is_wp = np.zeros(n, np.bool_)
    ends = []
    for how in ("one by one", "newest"):
        mk = load_market(folder, keys.copy(), slots.copy(), meta.copy())
        rs = new_resync(P, queue=64)
        if how == "newest":
            assert push_newest_states(rs, pool, slot, res, wp, is_wp, fee, n, new_feed_scratch(P)) == 2
            assert list(rs.q_pool[:2]) == [0, 1] and list(rs.q_slot[:2]) == [SLOT + 4, SLOT + 2]
            assert [list(x) for x in rs.q_fee[:2]] == [[17, 1_000], [0, 0]]
        else:
            for j in range(n):
                assert push_state(rs, int(pool[j]), int(slot[j]), int(res[j, 0]), int(res[j, 1]),
                                  fee=tuple(int(x) for x in fee[j]) if fee[j, 1] else None)
        drain_resync(mk, rs)
        c = resync_counters(rs)
        ends.append((mk.pool_res.tolist(), mk.pool_fee.tolist(), rs.pool_slot.tolist(), c["states_applied"],
                     c["superseded_states"], c["stale_states"], c["still_queued"]))
    assert ends[0] == ends[1]
    assert ends[1][3:] == (2, 3, 1, 0)
    assert ends[1][0][0] == [12, 13] and ends[1][1][0] == [17, 1_000]


def test_a_feeds_batch_past_a_full_ring_is_refused_and_counted(snap):
    folder, _, _ = snap
    P = len(tracked_pools(folder))
    rs = new_resync(P, queue=1)
    k = min(P, 3)
    pool = np.arange(k, dtype=np.int32)
    args = (np.full(k, SLOT, np.int64), np.ones((k, 2), np.uint64), np.zeros((k, N_WP), np.uint64),
            np.zeros(k, np.bool_), np.zeros((k, 2), np.uint64))
    slot, res, wp, is_wp, fee = args
    assert push_newest_states(rs, pool, slot, res, wp, is_wp, fee, k, new_feed_scratch(P)) == 1
    assert resync_counters(rs)["dropped_full"] == k - 1 and resync_counters(rs)["still_queued"] == 1


def test_the_store_gets_the_counters_and_the_drift_histogram(snap):
    """What runner/live.py hands the store: runs.counts ``resync_*`` and a latency_hist row of the drift."""
    from workbench.runner import engine_state
    from workbench.config import Settings
    from workbench.runner.engine_run import latency_table
    folder, table, cases = snap
    keys, slots, meta = new_key_table(1 << 12)
    mk = load_market(folder, keys, slots, meta)
    feed = AccountFeed("grpc://127.0.0.1:9", folder, len(cases))
    for ph in phases(table, cases)[0]:
        for u in ph["updates"]:
            feed.on_account(u["pubkey"], u["owner"], base64.b64decode(u["data"]), u["slot"])
            drain_resync(mk, feed.rs)           # a batch between two updates: no state supersedes another
    counts = feed.counts()
    assert counts["resync_states_applied"] == 3 * len(cases) and counts["resync_account_updates"] == 5 * len(cases)
    t = latency_table("r1", engine_state(Settings()), [(feed.drift().name, feed.drift())]).to_pylist()
    row = next(r for r in t if r["hist_name"] == "resync_drift_ppm")
    assert row["count"] == 3 * len(cases) and 9_000 < row["max"] < 10_000
    summary = feed.summary(mk)
    assert summary["drift_ppm"]["count"] == 3 * len(cases)
    tracked = tracked_pools(folder)
    assert {a: v["reserves"] for a, v in summary["drift_ppm_by_pool"].items()} == phases(table, cases)[1]
    assert all(v["slot"] == SLOT + 2 for v in summary["drift_ppm_by_pool"].values()) and len(tracked) == len(cases)


def test_an_unreachable_endpoint_is_told_and_retried_without_stopping(snap):
    folder, _, cases = snap
    feed = AccountFeed("grpc://127.0.0.1:9", folder, len(cases))
    feed.start()
    time.sleep(1.0)
    feed.stop()
    assert feed.notes and all("grpc://127.0.0.1:9" in n for n in feed.notes), feed.notes
    assert "UNAVAILABLE" in feed.notes[0] and "reconnecting" in feed.notes[0]
    assert not feed._thread.is_alive()


def test_a_bad_accounts_url_is_refused_naming_the_flag(snap, tmp_path):
    r = CliRunner().invoke(app, ["live", "--source", "udp", "--ports", "9", "--no-db", "--quiet", "--duration", "1",
                                 "--out", str(tmp_path / "o"), "--market", str(snap[0]), "--accounts", "http://x:1"])
    assert r.exit_code != 0 and "--accounts" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["live", "--source", "udp", "--ports", "9", "--no-db", "--quiet", "--duration", "1",
                                 "--out", str(tmp_path / "o"), "--accounts", "grpc://127.0.0.1:9"])
    assert r.exit_code != 0 and "--market" in r.output and "Traceback" not in r.output


def _states_in(rs) -> int:
    """States the feed handed on: queued, or coalesced away before the ring."""
    return resync_counters(rs)["states_handed"]


@pytest.mark.parametrize("kind", ["grpc", "ws"])
def test_feed_decodes_a_stream_on_loopback_into_queued_states(snap, tmp_path, kind):
    """The clients alone (no live run, no namespace): every update taken, one state per pool once its
    three accounts are in, then one per vault move, all queued for the loop with the expected reserves."""
    folder, table, cases = snap
    script, final = phases(table, cases)
    (tmp_path / "script.json").write_text(json.dumps({"phases": script}))
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, str(SERVER), kind, str(tmp_path / "script.json"), str(port_file)])
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        feed = AccountFeed(f"{kind}://127.0.0.1:{port_file.read_text()}", folder, len(cases))
        feed.start()
        deadline = time.monotonic() + 20
        while _states_in(feed.rs) < 3 * len(cases) and time.monotonic() < deadline:
            time.sleep(0.05)
        feed.stop()
    finally:
        proc.kill()
        proc.wait(10)
    assert feed.tracker.counters() == {"account_updates": 5 * len(cases), "stale_account_updates": 0,
                                       "waiting_for_accounts": 2 * len(cases), "rejected_updates": 0}
    # a chunk's states of one pool are coalesced by the gRPC feed before the ring (the ws client queues each)
    assert _states_in(feed.rs) == 3 * len(cases) and not feed.notes
    n = int(feed.rs.ctl[0])
    last = {}
    for i in range(n):
        last[int(feed.rs.q_pool[i])] = [int(x) for x in feed.rs.q_res[i]]
    pools = tracked_pools(folder)
    assert {pools[p].address: r for p, r in last.items()} == final


# --- live, on a veth pair ----------------------------------------------------------------------------------
needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="live tests need root and iproute2 (CI runs them as root)")


@pytest.fixture
def veth():
    from test_live import Veth
    try:
        v = Veth()
    except subprocess.CalledProcessError as e:
        pytest.skip(f"cannot make a network namespace here: {e.stderr}")
    yield v
    v.close()


class StreamServer:
    """tests/account_stream_server.py in the namespace, on its loopback."""

    def __init__(self, veth, kind: str, script: list, tmp: Path):
        (tmp / "script.json").write_text(json.dumps({"phases": script}))
        self.port_file = tmp / f"{kind}.port"
        self.proc = subprocess.Popen(["ip", "netns", "exec", veth.ns, sys.executable, str(SERVER), kind,
                                      str(tmp / "script.json"), str(self.port_file)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not self.port_file.exists() or not self.port_file.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail(f"{kind} server did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.05)
        self.port = int(self.port_file.read_text())

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def _live_resync(veth, tmp_path, snap, kind, script, loops=8):
    from test_live import Live, send
    srv = StreamServer(veth, kind, script, tmp_path)
    url = f"grpc://127.0.0.1:{srv.port}" if kind == "grpc" else f"ws://127.0.0.1:{srv.port}"
    live = None
    try:
        live = Live(veth, tmp_path / "live", "--iface", veth.rx, "--market", str(snap[0]), "--accounts", url)
        t0 = time.monotonic()
        sent = {}
        sender = threading.Thread(target=lambda: sent.update(send(veth.tx, CAPTURE, 50_000, loops)))
        sender.start()
        sender.join(120)
        time.sleep(max(0.0, 2.5 - (time.monotonic() - t0)))        # the script's phases are over by then
        summary = live.stop(signal.SIGINT)
        return summary, sent, live.output
    finally:
        if live is not None:
            live.kill()
        srv.close()


def _check_followed(summary, sent, final, n_pools):
    assert summary["packets"] == sent["packets"] == 8 * 3996 and summary["drops"] == 0
    assert sum(summary["by_status"].values()) == summary["packets"]            # every row kept
    rs = summary["resync"]
    # a pool's states that reach the loop within one drain are coalesced: only the newest is written
    assert rs["states_applied"] + rs["superseded_states"] == 3 * n_pools
    assert rs["dropped_full"] == 0 and rs["still_queued"] == 0
    for addr, want in final.items():
        got = rs["drift_ppm_by_pool"][addr]
        assert got["reserves"] == want and 1 <= got["states"] <= 3 and got["slot"] == SLOT + 2, addr
    assert rs["drift_ppm"]["count"] == rs["states_applied"]
    assert 9_000 < rs["drift_ppm"]["max"] < 10_000                            # the 1 % moves, in ppm
    return rs


@needs_root
def test_geyser_updates_during_a_live_run_move_the_pool_table(veth, tmp_path, snap):
    _, table, cases = snap
    script, final = phases(table, cases)
    v4 = next(a for a, c in cases.items() if c.program == "raydium_amm_v4")
    cp = next(a for a, c in cases.items() if c.program == "raydium_cpmm")
    va = cases[v4].row["vault_a"]
    script[1]["updates"] += [
        _upd(va, TOKEN, _vault(table, va, 10**9), SLOT),                        # stale: older than slot + 1
        _upd(cases[v4].row["vault_b"], V4, _data(table, va), SLOT + 3),         # owner does not fit
        _upd(cp, CPMM, _data(table, cp)[:300], SLOT + 3),                       # size does not fit
        dict(_upd(va, TOKEN, _data(table, va), SLOT + 3), bad_pubkey=True),    # a malformed update
    ]
    summary, sent, output = _live_resync(veth, tmp_path, snap, "grpc", script)
    rs = _check_followed(summary, sent, final, len(cases))
    assert rs["stale_account_updates"] == 1 and rs["rejected_updates"] == 3
    notes = " | ".join(rs["notes"])
    assert cases[v4].row["vault_b"] in notes and "owner" in notes
    assert cp in notes and "truncated" in notes and "neither a pool nor a vault" in notes
    assert "resync states applied" in output and "resync drift" in output


@needs_root
def test_accountsubscribe_updates_during_a_live_run_move_the_pool_table(veth, tmp_path, snap):
    _, table, cases = snap
    script, final = phases(table, cases)
    script[1]["updates"] += [{"raw": "not json"},
                             {"raw": json.dumps({"jsonrpc": "2.0", "method": "accountNotification",
                                                 "params": {"subscription": 1000, "result": {"context": {}}}})}]
    summary, sent, _ = _live_resync(veth, tmp_path, snap, "ws", script)
    rs = _check_followed(summary, sent, final, len(cases))
    notes = " | ".join(rs["notes"])
    assert "not JSON" in notes and "malformed accountNotification" in notes
    assert f"account {tracked_pools(snap[0])[0].address}" in notes      # subscription 1000: the first address
