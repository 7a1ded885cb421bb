"""Live resync, seeded and with fees (issue 18, session 8): the tracker starts from the accounts the
snapshot's RPC serves now, and a pool account carrying another fee changes the swap maths.

The RPC is tests/chain_rpc.py's loopback server (the REAL pool accounts of tests/fixtures/chain,
their vaults and CPMM AmmConfigs composed there); the stream is tests/account_stream_server.py's
Geyser server on loopback (no namespace: these tests run the feed alone, not a live run).
"""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from chain_rpc import CPMM, CPMM_CREATOR_FEE_RATE, CPMM_TRADE_FEE_RATE, SLOT, TOKEN, RpcServer, amm_config, value
from workbench.chain.pool_updates import PoolTracker
from workbench.cli import app
from workbench.engine.market.pools import _swap_result
from workbench.engine.market.resync import Q_FEE_CHANGES, drain_resync, new_resync, resync_counters
from workbench.engine.market.snapshot import load_market
from workbench.runner.live_resync import AccountFeed, tracked_pools
from workbench.runner.resync_seed import seed_url
from workbench.wire.keys import new_key_table
from test_live_resync import _data, _vault as _moved_vault, snap  # noqa: F401 - snap: the module's snapshot fixture

pytestmark = pytest.mark.timeout(120)
SERVER = Path(__file__).parent / "account_stream_server.py"
V4_FEE_NUM_OFF, V4_FEE_DEN_OFF = 176, 184        # AmmInfo swap_fee_numerator / denominator (u64, raydium_amm_v4)
WP_FEE_RATE_OFF = 45                             # Whirlpool fee_rate (u16)
CPMM_CREATOR_ON_OFF = 390                        # PoolState enable_creator_fee (u8)


def _upd(address, owner, data, slot):
    return {"pubkey": address, "owner": owner, "data": base64.b64encode(data).decode(), "slot": slot}


def _wait(pred, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.02)
    return pred()


class Geyser:
    """tests/account_stream_server.py (grpc) on 127.0.0.1 with a script."""

    def __init__(self, tmp: Path, phases: list):
        (tmp / "script.json").write_text(json.dumps({"phases": phases}))
        port_file = tmp / "port"
        self.proc = subprocess.Popen([sys.executable, str(SERVER), "grpc", str(tmp / "script.json"), str(port_file)])
        assert _wait(lambda: port_file.exists() and port_file.read_text(), 30), "the Geyser server did not start"
        self.url = f"grpc://127.0.0.1:{port_file.read_text()}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait(10)


def _queued(feed) -> dict[int, list]:
    """pool row -> [slot, reserve a, reserve b, fee num, fee den] of the last state queued for it."""
    last = {}
    for i in range(int(feed.rs.ctl[0])):
        last[int(feed.rs.q_pool[i])] = [int(feed.rs.q_slot[i]), *map(int, feed.rs.q_res[i]),
                                        *map(int, feed.rs.q_fee[i])]
    return last



def _chunk(table, accounts, slot) -> np.ndarray:
    """A Subscribe body of one account update per address in ``accounts`` (the fixture's bytes), at ``slot``."""
    import base58
    from workbench.chain.geyser_stream import account_message
    from workbench.chain.geyser_wire import grpc_frame
    return np.frombuffer(bytearray(b"".join(grpc_frame(account_message(
        base58.b58decode(a), base58.b58decode(table[a]["owner"]), _data(table, a), slot)) for a in accounts)), np.uint8)

# --- seeding ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seeded", [True, False])
def test_one_vault_update_alone_yields_a_pool_state_once_seeded(snap, tmp_path, seeded):
    """The stream sends one vault of one pool (and an update older than the seed, stale). Seeded, every
    pool has a state from the RPC's accounts at its context slot, and that vault moves its pool;
    unseeded, the pool keeps waiting for its other two accounts."""
    folder, table, cases = snap
    pools = tracked_pools(folder)
    p = next(i for i, t in enumerate(pools) if t.program == "raydium_amm_v4")
    va = pools[p].vault_a
    phases = [{"delay_s": 1.0, "updates": [_upd(va, TOKEN, _moved_vault(table, va, 12_345), SLOT + 1),
                                           _upd(pools[p].vault_b, TOKEN, _data(table, pools[p].vault_b), SLOT - 1)]}]
    with RpcServer(table) as rpc, Geyser(tmp_path, phases) as geyser:
        feed = AccountFeed(geyser.url, folder, len(pools), seed_rpc=rpc.url if seeded else None)
        feed.start()
        _wait(lambda: feed.tracker.updates >= (3 * len(pools) + 2 if seeded else 2))
        time.sleep(0.2)
        feed.stop()
    last = _queued(feed)
    if not seeded:
        assert last == {} and feed.tracker.waiting == 2 and feed.tracker.stale == 0 and feed.seed == {}
        return
    assert not feed.notes, feed.notes
    assert feed.seed["accounts"] == 3 * len(pools) and feed.seed["failed"] == 0 and feed.seed["slot"] == SLOT
    assert feed.seed["configs"] == len({_data(table, t.address)[8:40] for t in pools if t.program == "raydium_cpmm"})
    assert set(last) == set(range(len(pools)))                  # every pool has a state from the seed alone
    for q, t in enumerate(pools):
        row = cases[t.address].row
        ra = row["reserve_a"] + (12_345 if q == p else 0)
        assert last[q] == [SLOT + 1 if q == p else SLOT, ra, row["reserve_b"], row["fee_num"], row["fee_den"]], t
    assert feed.tracker.stale == 1                              # SLOT - 1 is older than the seeded vault
    assert feed.counts()["resync_seeded_accounts"] == 3 * len(pools)
    assert resync_counters(feed.rs)["states_handed"] == len(pools) + 1


def test_a_failing_seed_is_a_note_naming_the_url_and_account_and_the_stream_still_works(snap, tmp_path):
    """One vault missing from the RPC: a note names the URL and that account, the other pools are
    seeded. A refused request: a note names the URL and the request's first account; the pool whose
    three accounts the stream sends still gets its state."""
    folder, table, cases = snap
    pools = tracked_pools(folder)
    gone = pools[1].vault_b
    partial = {k: v for k, v in table.items() if k != gone}
    with RpcServer(partial) as rpc:
        feed = AccountFeed("grpc://127.0.0.1:9", folder, len(pools), seed_rpc=rpc.url)
        feed._seed()
    notes = " | ".join(feed.notes)
    assert rpc.url in notes and gone in notes and "does not exist" in notes, notes
    assert set(_queued(feed)) == set(range(len(pools))) - {1} and feed.seed["failed"] == 1

    t = pools[0]
    phases = [{"delay_s": 0.5, "updates": [_upd(a, table[a]["owner"], _data(table, a), SLOT + 1)
                                           for a in (t.address, t.vault_a, t.vault_b)]}]
    with RpcServer(table) as rpc, Geyser(tmp_path, phases) as geyser:
        rpc.faults.append(("rpc_error", -32602, "Invalid params: too many keys"))     # not retried
        feed = AccountFeed(geyser.url, folder, len(pools), seed_rpc=rpc.url)
        feed.start()
        _wait(lambda: resync_counters(feed.rs)["states_handed"] >= 1 and feed.seed.get("error"))
        feed.stop()
    notes = " | ".join(feed.notes)
    assert rpc.url in notes and "-32602" in notes and pools[0].address in notes, notes
    assert list(_queued(feed)) == [0] and feed.seed["accounts"] == 0


def test_a_seed_that_lands_after_the_geyser_stream_opened_goes_through_its_jitted_tracker(snap):
    """The seed thread finishing after the stream opened: its accounts are walked by the stream's jitted
    tracker (one producer on the ring, under the feed's lock) and queue the very states, fees included,
    that a seed taken before the stream queues; a later vault update then moves its pool from there."""
    from workbench.runner.geyser_feed import GeyserChunks
    folder, table, cases = snap
    pools = tracked_pools(folder)
    with RpcServer(table) as rpc:
        before = AccountFeed("grpc://127.0.0.1:9", folder, len(pools), seed_rpc=rpc.url)
        before._seed()
        after = AccountFeed("grpc://127.0.0.1:9", folder, len(pools), seed_rpc=rpc.url)
        after.chunks = GeyserChunks(after)
        after._seed()
    assert not after.notes, after.notes
    assert after.seed["accounts"] == before.seed["accounts"] == 3 * len(pools)
    assert after.seed["configs"] == before.seed["configs"] > 0
    assert _queued(after) == _queued(before) and set(_queued(after)) == set(range(len(pools)))
    assert after.tracker.counters() == before.tracker.counters()
    p = next(i for i, t in enumerate(pools) if t.program == "raydium_cpmm")
    va = pools[p].vault_a
    from workbench.chain.geyser_stream import ChunkBuffer, account_message
    from workbench.chain.geyser_wire import grpc_frame
    import base58
    cb = ChunkBuffer()
    cb.append(grpc_frame(account_message(base58.b58decode(va), base58.b58decode(TOKEN),
                                         _moved_vault(table, va, 777), SLOT + 1)))
    after.chunks.on_chunk(cb.buf, cb.end, cb.base)
    row = cases[pools[p].address].row
    assert _queued(after)[p] == [SLOT + 1, row["reserve_a"] + 777, row["reserve_b"], row["fee_num"], row["fee_den"]]


def test_the_seed_url_comes_from_the_snapshot_meta_unless_given_or_off(snap, tmp_path):
    folder = snap[0]
    meta = json.loads((folder / "meta.json").read_text())
    assert seed_url(folder, None, True) == (meta["rpc_url"], None)
    assert seed_url(folder, "https://rpc.example/?api-key=k", True) == ("https://rpc.example/?api-key=k", None)
    assert seed_url(folder, None, False) == (None, None)
    url, note = seed_url(tmp_path, None, True)
    assert url is None and "rpc_url" in note and "--rpc" in note
    r = CliRunner().invoke(app, ["live", "--source", "udp", "--ports", "9", "--no-db", "--quiet", "--duration", "1",
                                 "--out", str(tmp_path / "o"), "--rpc", "http://127.0.0.1:9"])
    assert r.exit_code != 0 and "--accounts" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["live", "--source", "udp", "--ports", "9", "--no-db", "--quiet", "--duration", "1",
                                 "--out", str(tmp_path / "o"), "--market", str(folder), "--accounts",
                                 "grpc://127.0.0.1:9", "--rpc", "ftp://x"])
    assert r.exit_code != 0 and "--rpc" in r.output and "Traceback" not in r.output


# --- fees ------------------------------------------------------------------------------------------------
def _out(mk, p, amount, a_to_b=1):
    st, a_in, a_out, _, _ = _swap_result(mk, p, a_to_b, 1, np.uint64(amount), np.uint64(0), np.uint64(0),
                                         np.uint64(0))
    assert st == 0, st                  # applied whole (a Whirlpool swap that stays within its tick range)
    return int(a_out)


def _v4_out(amount, r_in, r_out, num, den):
    """Raydium v4 SwapBaseIn, written out: fee = CheckedCeilDiv(amount * num, den), then x * y = k."""
    a, b = amount * num, den
    fee = (1 if 2 * a >= b else 0) if a < b else -(-a // b)
    net = amount - fee
    return net * r_out // (r_in + net)


def _setup(snap):
    folder, table, cases = snap
    keys, slots, meta = new_key_table(1 << 12)
    mk = load_market(folder, keys, slots, meta)
    pools = tracked_pools(folder)
    tr = PoolTracker(pools)
    rs = new_resync(len(pools))
    return folder, table, cases, mk, pools, tr, rs


def _take(tr, rs, mk, address, owner, data, slot):
    from workbench.runner.live_resync import wp_words
    s = tr.update(address, owner, data, slot)
    if s is not None:
        from workbench.engine.market.resync import push_state
        push_state(rs, s.pool, s.slot, s.reserve_a, s.reserve_b,
                   wp_words(*s.whirlpool) if s.whirlpool is not None else None, s.fee)
    drain_resync(mk, rs)
    return s


def test_a_pool_account_with_another_fee_changes_the_next_swap_output(snap):
    """Raydium v4 (numerator and denominator) and Whirlpool (fee_rate): the same fee as the snapshot
    changes nothing; another fee reaches the table the swap maths reads, counted ``fee_changes``."""
    folder, table, cases, mk, pools, tr, rs = _setup(snap)
    p = next(i for i, t in enumerate(pools) if t.program == "raydium_amm_v4")
    t = pools[p]
    for a in (t.vault_a, t.vault_b, t.address):
        _take(tr, rs, mk, a, table[a]["owner"], _data(table, a), SLOT + 1)
    assert resync_counters(rs)["fee_changes"] == 0 and rs.ctl[Q_FEE_CHANGES] == 0
    num, den = (int(x) for x in mk.pool_fee[p])
    r_in, r_out = (int(x) for x in mk.pool_res[p])
    amount = r_in // 1000
    before = _out(mk, p, amount)
    assert before == _v4_out(amount, r_in, r_out, num, den)
    d = bytearray(_data(table, t.address))
    struct.pack_into("<QQ", d, V4_FEE_NUM_OFF, 100, 10_000)           # 0.25 % -> 1 %
    s = _take(tr, rs, mk, t.address, table[t.address]["owner"], bytes(d), SLOT + 2)
    assert s.fee == (100, 10_000) and list(mk.pool_fee[p]) == [100, 10_000]
    assert mk.pool_gamma[p] == pytest.approx(0.99) and resync_counters(rs)["fee_changes"] == 1
    after = _out(mk, p, amount)
    assert after == _v4_out(amount, r_in, r_out, 100, 10_000) and after < before

    w = min((i for i, t in enumerate(pools) if t.program == "orca_whirlpool"), key=lambda i: mk.pool_fee[i, 0])
    t = pools[w]
    for a in (t.vault_a, t.vault_b, t.address):
        _take(tr, rs, mk, a, table[a]["owner"], _data(table, a), SLOT + 1)
    rate = int(mk.pool_fee[w, 0])
    amount = 10**6
    before = _out(mk, w, amount, 0)
    d = bytearray(_data(table, t.address))
    struct.pack_into("<H", d, WP_FEE_RATE_OFF, rate * 4)
    _take(tr, rs, mk, t.address, table[t.address]["owner"], bytes(d), SLOT + 2)
    assert list(mk.pool_fee[w]) == [rate * 4, 1_000_000] and resync_counters(rs)["fee_changes"] == 2
    after = _out(mk, w, amount, 0)
    assert 0 < after < before
    # the fee is taken from the input first: 4x the rate costs (about) 3x the rate more of the output
    assert before - after == pytest.approx(before * 3 * rate / 1e6, rel=0.02)


def test_a_cpmm_pool_takes_its_fee_from_the_seeded_amm_config_and_its_creator_fee_switch(snap):
    folder, table, cases, mk, pools, tr, rs = _setup(snap)
    p = next(i for i, t in enumerate(pools) if t.program == "raydium_cpmm")
    t = pools[p]
    pool = bytearray(_data(table, t.address))
    config = base58_of(pool[8:40])
    assert tr.config_update(config, CPMM, amm_config(CPMM_TRADE_FEE_RATE, CPMM_CREATOR_FEE_RATE), SLOT) == []
    for a in (t.vault_a, t.vault_b, t.address):
        s = _take(tr, rs, mk, a, table[a]["owner"], _data(table, a), SLOT + 1)
    on = pool[CPMM_CREATOR_ON_OFF]
    assert s.fee == (CPMM_TRADE_FEE_RATE + (CPMM_CREATOR_FEE_RATE if on else 0), 1_000_000)
    assert resync_counters(rs)["fee_changes"] == 0                  # the snapshot's own fee
    amount = int(mk.pool_res[p, 0]) // 1000
    before = _out(mk, p, amount)
    pool[CPMM_CREATOR_ON_OFF] = 0 if on else 1                      # the creator fee switched
    s = _take(tr, rs, mk, t.address, CPMM, bytes(pool), SLOT + 2)
    assert s.fee == (CPMM_TRADE_FEE_RATE + (0 if on else CPMM_CREATOR_FEE_RATE), 1_000_000)
    assert resync_counters(rs)["fee_changes"] == 1 and int(mk.pool_fee[p, 0]) == s.fee[0]
    assert (_out(mk, p, amount) > before) == bool(on)
    # a new AmmConfig rate: the pool's next state carries it; an older config update is stale
    states = tr.config_update(config, CPMM, amm_config(5000, CPMM_CREATOR_FEE_RATE), SLOT + 3)
    assert [x.fee[0] for x in states] == [5000 + (0 if on else CPMM_CREATOR_FEE_RATE)]
    assert tr.config_update(config, CPMM, amm_config(7, 0), SLOT) == [] and tr.stale == 1
    with pytest.raises(Exception) as e:
        tr.config_update(config, CPMM, amm_config(5000, 0)[:100], SLOT + 4)
    assert config in str(e.value)
    bad = value(CPMM, amm_config(1_000_000, 0))                     # a fee of 100 %: refused, naming the pool
    with pytest.raises(Exception) as e:
        tr.config_update(config, CPMM, base64.b64decode(bad["data"][0]), SLOT + 5)
    assert t.address in str(e.value) and "not in [0, 1)" in str(e.value)


def base58_of(raw) -> str:
    import base58
    return base58.b58encode(bytes(raw)).decode()


def test_a_run_that_stops_never_waits_on_a_seed_still_retrying(snap):
    """An RPC that takes the connection and never answers (the seed retries with backoff for
    minutes): the feed's stop abandons the seed's requests, so its thread has ended when ``stop``
    returns (which waits up to JOIN_S for it, and the run's end with it), and the seed says stopped."""
    import socket
    import threading

    folder, _table, _cases = snap
    pools = tracked_pools(folder)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    held = []
    taking = threading.Thread(target=lambda: [held.append(silent.accept()) for _ in range(4)], daemon=True)
    taking.start()
    try:
        feed = AccountFeed("grpc://127.0.0.1:9", folder, len(pools),
                           seed_rpc=f"http://127.0.0.1:{silent.getsockname()[1]}")
        feed.start()
        _wait(lambda: held)                     # the seed's request is out
        feed.stop()
    finally:
        silent.close()
        for conn, _ in held:
            conn.close()
    assert not feed._seed_thread.is_alive()     # stop() joins it for up to JOIN_S
    assert feed.seed["stopped"] is True and feed.seed["accounts"] == 0 and "error" not in feed.seed
    assert list(_queued(feed)) == []


def test_the_seed_and_the_stream_walking_chunks_at_once_never_mix_their_updates(snap):
    """The seed thread (take_seed) and the stream thread walk chunks through the same scratch
    arrays, whose update offsets index the chunk they were walked from; the walks run without the
    GIL. Two threads feeding chunks of different layouts at once: every update is taken, none is
    read through the other's offsets (bounds-checked in the tests: an IndexError otherwise, and
    garbage without bounds checks)."""
    import threading

    from workbench.runner.geyser_feed import GeyserChunks
    folder, table, _cases = snap
    pools = tracked_pools(folder)
    feed = AccountFeed("grpc://127.0.0.1:9", folder, len(pools))
    chunks = GeyserChunks(feed)
    accounts = [a for t in pools for a in (t.address, t.vault_a, t.vault_b)]
    bodies = [_chunk(table, accounts, SLOT), _chunk(table, accounts[::-1] * 3, SLOT)]     # other lengths, other offsets
    rounds = 400
    errors = []

    def feed_chunks(buf):
        try:
            for _ in range(rounds):
                used, got, err = chunks.on_chunk(buf, len(buf), 0)
                assert err is None and used == len(buf)
        except BaseException as e:      # noqa: BLE001 - carried to the test's thread
            errors.append(e)

    threads = [threading.Thread(target=feed_chunks, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert feed.tracker.updates == rounds * 4 * len(accounts) and feed.tracker.rejected == 0


def test_a_live_run_loads_the_stream_kernels_before_capture_with_the_types_a_chunk_gives_them(snap):
    """``AccountFeed.warm_up`` (called by a live run before capture starts) takes nothing and leaves
    every kernel a chunk goes through compiled for the types a real chunk gives it: the stream's
    thread then compiles nothing mid-run (where a compile holds the GIL for seconds)."""
    from workbench.chain.geyser_wire import walk_updates
    from workbench.chain.pool_updates_batch import track_updates
    from workbench.engine.market.resync import push_newest_states
    from workbench.runner.geyser_feed import GeyserChunks
    folder, table, _cases = snap
    pools = tracked_pools(folder)
    feed = AccountFeed("grpc://127.0.0.1:9", folder, len(pools))
    feed.warm_up()
    kernels = (walk_updates, track_updates, push_newest_states)
    compiled = [len(k.signatures) for k in kernels]
    assert all(compiled) and feed.tracker.updates == 0 and resync_counters(feed.rs)["states_handed"] == 0
    accounts = [a for t in pools for a in (t.address, t.vault_a, t.vault_b)]
    body = _chunk(table, accounts, SLOT + 1)
    used, got, err = GeyserChunks(feed).on_chunk(body, len(body), 0)
    assert err is None and got == len(accounts) and resync_counters(feed.rs)["states_handed"] == len(pools)
    assert [len(k.signatures) for k in kernels] == compiled      # nothing compiled for the real chunk
