"""The batched Geyser path (issue 18, live resync at stream rates): the h2 client
(chain/geyser_stream.py), the jitted gRPC/protobuf walk (chain/geyser_wire.py), the jitted
tracker (chain/pool_updates_batch.py) and the batch push into the engine's ring.

The twin is PoolTracker (chain/pool_updates.py) through ``AccountFeed.on_account``, the path
the WebSocket client keeps: the same updates through both must leave the same ring entries,
counters and notes. The transport is run against tests/geyser_h2_server.py on loopback, which
cuts messages across DATA frames, ends streams with a gRPC status, resets them and sends
garbage; tests/test_live_resync.py runs it against grpcio's server.
"""

from __future__ import annotations

import base64
import random
import struct
import time

import base58
import numpy as np
import pytest

from chain_rpc import CPMM, SLOT, TOKEN, V4
from geyser_h2_server import H2GeyserServer, account_update, flood_block, flood_round, ping
from test_live_resync import _data, _vault, phases, snap  # noqa: F401 - snap: the module's snapshot fixture
from workbench.chain import whirlpool as wp
from workbench.chain.geyser import geyser_pb2
from workbench.chain.geyser_stream import ChunkBuffer
from workbench.chain.geyser_wire import ERR_COMPRESSED, ERR_PROTOBUF, ERR_TOO_LONG, grpc_frame, new_updates, walk_updates
from workbench.chain.pool_updates_batch import sqrt_price_at_tick
from workbench.runner.geyser_feed import GeyserChunks
from workbench.engine.market.resync import resync_counters
from workbench.runner.live_resync import AccountFeed, tracked_pools

pytestmark = pytest.mark.timeout(300)
WP_PROGRAM = wp.PROGRAM


def _raw(a: str) -> bytes:
    return base58.b58decode(a)


def _msg(u) -> bytes:
    """One update dict (pubkey, owner, data bytes, slot; optional raw pubkey) as a gRPC message."""
    pk = u.get("pk_raw", _raw(u["pubkey"]) if "pubkey" in u else b"")
    return grpc_frame(account_update(pk, _raw(u["owner"]), u["data"], u["slot"]))


def _u(address, owner, data, slot, **kw):
    return {"pubkey": address, "owner": owner, "data": bytes(data), "slot": slot, **kw}


def _ring(feed):
    rs = feed.rs
    n = int(rs.ctl[0])
    return [(int(rs.q_pool[i]), int(rs.q_slot[i]), [int(x) for x in rs.q_res[i]], [int(x) for x in rs.q_wp[i]])
            for i in range(n)]


def _handed(feed) -> int:
    """States the feed handed on: queued, or coalesced away before the ring (engine/market/resync.py)."""
    return resync_counters(feed.rs)["states_handed"]


def _applied(feed, pools) -> dict:
    """pool row -> (slot, reserves, Whirlpool words, fee) that draining the feed's ring leaves: what
    every state queued leaves applied in order (a state older than the pool's is skipped, its fee too)."""
    rs, held = feed.rs, {}
    for i in range(int(rs.ctl[0])):
        p, slot = int(rs.q_pool[i]), int(rs.q_slot[i])
        if p in held and slot < held[p][0]:
            continue
        fee = [int(x) for x in rs.q_fee[i]]
        wp_words = [int(x) for x in rs.q_wp[i]] if pools[p].program == "orca_whirlpool" else []
        held[p] = (slot, [int(x) for x in rs.q_res[i]], wp_words, fee if fee[1] else held.get(p, (0, 0, 0, [0, 0]))[3])
    return held


def _fees(feed):
    """(pool row, fee numerator, denominator) of every queued state; (0, 0): none carried."""
    rs = feed.rs
    return [(int(rs.q_pool[i]), *map(int, rs.q_fee[i])) for i in range(int(rs.ctl[0]))]


def _wait(pred, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.02)
    return pred()


# --- the tick maths ---------------------------------------------------------------------------------------
def test_sqrt_price_at_tick_is_the_programs_bit_for_bit():
    rng = random.Random(18)
    ticks = [wp.TICK_MIN, wp.TICK_MAX, 0, 1, -1, 2, -2, 64, -64, 443_635, -443_635]
    ticks += [rng.randint(wp.TICK_MIN, wp.TICK_MAX) for _ in range(3000)]
    ticks += [1 << b for b in range(19)] + [-(1 << b) for b in range(19)]
    for t in ticks:
        hi, lo = sqrt_price_at_tick(t)
        assert int(hi) << 64 | int(lo) == wp.sqrt_price_at_tick(t), t


# --- the twin: PoolTracker vs the jitted tracker -------------------------------------------------------------
def _mixed_updates(table, cases, pools, seed):
    """Every kind of update: good ones in random order with random slots (so some are stale),
    pool accounts whose owed amounts or Whirlpool tick and price move, and bad ones."""
    rng = random.Random(seed)
    ups = []
    for ph in phases(table, cases)[0]:
        for u in ph["updates"]:
            ups.append(_u(u["pubkey"], u["owner"], base64.b64decode(u["data"]), u["slot"]))
    for _ in range(400):
        t = rng.choice(pools)
        slot = SLOT + rng.randint(0, 40)
        r = rng.random()
        if r < 0.45:
            side = rng.choice(("a", "b"))
            v = getattr(t, f"vault_{side}")
            ups.append(_u(v, TOKEN, _vault(table, v, rng.randint(-10**6, 10**9)), slot))
        elif r < 0.75:
            d = bytearray(_data(table, t.address))
            owner = table[t.address]["owner"]
            if owner == V4:
                struct.pack_into("<Q", d, 192, rng.choice((0, 0, 0, 5, 10**6, 10**30 % (1 << 64))))
                if rng.random() < 0.3:                         # swap fee numerator: the denominator is 10^4
                    struct.pack_into("<Q", d, 176, rng.choice((25, 30, 2500, 10**4, 10**6)))
            elif owner == CPMM:
                struct.pack_into("<Q", d, 341, rng.choice((0, 0, 0, 7, 10**9, (1 << 64) - 1)))
                struct.pack_into("<Q", d, 405, rng.choice((0, 0, 0, 0, 3, (1 << 64) - 1)))
            else:
                ts = struct.unpack_from("<H", d, 41)[0]
                tick = struct.unpack_from("<i", d, 81)[0]
                k = rng.random()
                if k < 0.3:                                    # price at the lower bound: inside
                    lo = (tick // ts) * ts
                    price = wp.sqrt_price_at_tick(lo) + rng.choice((0, -1))
                    struct.pack_into("<QQ", d, 65, price & ((1 << 64) - 1), price >> 64)
                elif k < 0.45:
                    struct.pack_into("<H", d, 41, 0)             # tick spacing 0: refused
                elif k < 0.6:
                    struct.pack_into("<H", d, 41, 32768)         # full-range only
                elif k < 0.75:
                    struct.pack_into("<i", d, 81, wp.TICK_MAX + 5)
                struct.pack_into("<Q", d, 85, rng.choice((0, 0, 0, 11, 10**25 % (1 << 64))))
                if rng.random() < 0.3:
                    struct.pack_into("<H", d, 45, rng.choice((100, 3000, 65535)))   # fee_rate per 10^6
            ups.append(_u(t.address, owner, d, slot))
        elif r < 0.8:
            ups.append(_u(t.vault_a, V4, _data(table, t.vault_a), slot))                 # owner
        elif r < 0.84:
            ups.append(_u(t.vault_b, TOKEN, _data(table, t.vault_b)[:100], slot))        # truncated
        elif r < 0.88:
            ups.append(_u(t.address, table[t.address]["owner"], _data(table, t.address)[:-1], slot))
        elif r < 0.9:
            d = bytearray(_data(table, t.address))
            d[0] ^= 0xFF
            ups.append(_u(t.address, table[t.address]["owner"], d, slot))               # discriminator
        elif r < 0.93:
            other = rng.choice([p for p in pools if p.mint_a != t.mint_a] or pools)
            ups.append(_u(t.vault_a, TOKEN, _data(table, other.vault_b), slot))          # another mint
        elif r < 0.96:
            ups.append(_u("11111111111111111111111111111111", TOKEN, _data(table, t.vault_a), slot))
        else:
            ups.append(_u(t.vault_a, TOKEN, _data(table, t.vault_a), slot, pk_raw=b"\x01\x02\x03"))
    return ups


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_jitted_tracker_equals_pool_tracker(snap, seed):  # noqa: F811
    folder, table, cases = snap
    pools = tracked_pools(folder)
    ups = _mixed_updates(table, cases, pools, seed)
    py = AccountFeed("grpc://127.0.0.1:9", folder, len(pools), queue=4096)
    for u in ups:
        address = u["pk_raw"].hex() if "pk_raw" in u else u["pubkey"]
        py.on_account(address, u["owner"], u["data"], u["slot"])
    jit = AccountFeed("grpc://127.0.0.1:9", folder, len(pools), queue=4096)
    chunks = GeyserChunks(jit)
    body = b"".join(grpc_frame(ping()) + _msg(u) for u in ups)
    rng = random.Random(seed)
    cb = ChunkBuffer(size=64)
    off = 0
    while off < len(body):                  # random cuts: messages split anywhere, carried over
        n = rng.choice((1, 5, 17, 300, 4096, 100_000))
        cb.append(body[off:off + n])
        off += n
        used, _, err = chunks.on_chunk(cb.buf, cb.end, cb.base)
        assert err is None
        cb.consume(used)
    assert cb.end == 0
    assert jit.tracker.counters() == py.tracker.counters()
    assert py.tracker.rejected > 20 and py.tracker.stale > 20 and py.tracker.waiting > 0
    assert jit.notes == py.notes and jit.notes_dropped == py.notes_dropped
    # the jitted feed queues a chunk's newest state of each pool, the Python one every state: the same end
    assert _handed(jit) == _handed(py) == len(_ring(py)) > 25
    assert _applied(jit, pools) == _applied(py, pools)
    assert resync_counters(jit.rs)["dropped_full"] == resync_counters(py.rs)["dropped_full"] == 0


def test_fees_travel_with_the_states_and_a_fee_outside_0_1_is_refused_alike(snap):  # noqa: F811
    """A v4 pool account with another swap fee, then one whose fee is 100 %: both paths queue the new
    fee with the pool's state and refuse the second with the same note; a Whirlpool's fee_rate alike."""
    folder, table, cases = snap
    pools = tracked_pools(folder)
    ups = [_u(u["pubkey"], u["owner"], base64.b64decode(u["data"]), u["slot"])
           for ph in phases(table, cases)[0] for u in ph["updates"]]
    v4p = next(t for t in pools if t.program == "raydium_amm_v4")
    wpp = next(t for t in pools if t.program == "orca_whirlpool")
    d = bytearray(_data(table, v4p.address))
    den = struct.unpack_from("<Q", d, 184)[0]
    struct.pack_into("<Q", d, 176, 7)
    ups.append(_u(v4p.address, V4, bytes(d), SLOT + 5))
    struct.pack_into("<Q", d, 176, den)
    ups.append(_u(v4p.address, V4, bytes(d), SLOT + 6))
    w = bytearray(_data(table, wpp.address))
    struct.pack_into("<H", w, 45, 4321)
    ups.append(_u(wpp.address, table[wpp.address]["owner"], bytes(w), SLOT + 5))
    py = AccountFeed("grpc://127.0.0.1:9", folder, len(pools), queue=4096)
    for u in ups:
        py.on_account(u["pubkey"], u["owner"], u["data"], u["slot"])
    jit = AccountFeed("grpc://127.0.0.1:9", folder, len(pools), queue=4096)
    cb = ChunkBuffer()
    cb.append(b"".join(_msg(u) for u in ups))
    GeyserChunks(jit).on_chunk(cb.buf, cb.end, cb.base)
    assert _applied(jit, pools) == _applied(py, pools) and _handed(jit) == _handed(py)
    last = {pools[p].address: [n, d] for p, n, d in _fees(py)}
    assert last[v4p.address] == [7, den] and last[wpp.address] == [4321, wp.FEE_RATE_DENOMINATOR]
    assert jit.notes == py.notes and any(f"fee {den}/{den} is not in [0, 1)" in n for n in py.notes), py.notes


def test_a_full_ring_drops_as_push_state_does(snap):  # noqa: F811
    folder, table, cases = snap
    pools = tracked_pools(folder)
    ups = [_u(u["pubkey"], u["owner"], base64.b64decode(u["data"]), u["slot"])
           for ph in phases(table, cases)[0] for u in ph["updates"]]
    feeds = [AccountFeed("grpc://127.0.0.1:9", folder, len(pools), queue=2) for _ in range(2)]
    for u in ups:
        feeds[0].on_account(u["pubkey"], u["owner"], u["data"], u["slot"])
    body = b"".join(_msg(u) for u in ups)
    cb = ChunkBuffer()
    cb.append(body)
    GeyserChunks(feeds[1]).on_chunk(cb.buf, cb.end, cb.base)
    one, newest = (resync_counters(f.rs) for f in feeds)
    assert one["states_queued"] == newest["states_queued"] == 2 and one["dropped_full"] == 3 * len(cases) - 2
    # the jitted feed hands on each pool's newest state of the chunk: the ring refuses those past its room
    assert newest["dropped_full"] == len(cases) - 2
    assert one["states_handed"] + one["dropped_full"] == newest["states_handed"] + newest["dropped_full"] == 3 * len(cases)


# --- the walker on bad bytes ----------------------------------------------------------------------------
def test_the_walker_never_reads_past_its_bytes(snap):  # noqa: F811
    """Every truncation and many one-byte changes of real messages: a count, a wait for more bytes
    or an error code, never an exception (the tests run with NUMBA_BOUNDSCHECK=1)."""
    folder, table, cases = snap
    addr = next(iter(cases))
    body = grpc_frame(ping()) + _msg(_u(addr, table[addr]["owner"], _data(table, addr), SLOT))
    out = new_updates(8)
    for n in range(len(body) + 1):
        buf = np.frombuffer(body[:n], np.uint8)
        k, used, msgs, err, _ = walk_updates(buf, n, out)
        assert err == 0 and used <= n and (k == 1) == (n == len(body))
    rng = random.Random(7)
    for _ in range(3000):
        b = bytearray(body)
        b[rng.randrange(5, len(b))] = rng.randrange(256)
        k, used, msgs, err, off = walk_updates(np.frombuffer(bytes(b), np.uint8), len(b), out)
        assert err in (0, ERR_COMPRESSED, ERR_TOO_LONG, ERR_PROTOBUF) and used <= len(b)
    k, used, msgs, err, off = walk_updates(np.frombuffer(b"\x01" + body[1:], np.uint8), len(body), out)
    assert (k, err, off) == (0, ERR_COMPRESSED, 0)


def test_the_flood_messages_parse_with_the_stubs():
    upd = [(bytes(range(32)), bytes(range(1, 33)), b"\x07" * 165)]
    blob, offs = flood_round(upd)
    block = flood_block(blob, offs, SLOT + 1, 3)
    off = 0
    slots = []
    while off < len(block):
        n = int.from_bytes(block[off + 1:off + 5], "big")
        m = geyser_pb2.SubscribeUpdate.FromString(block[off + 5:off + 5 + n])
        assert m.account.account.pubkey == upd[0][0] and m.account.account.data == upd[0][2]
        slots.append(m.account.slot)
        off += 5 + n
    assert slots == [SLOT + 1, SLOT + 2, SLOT + 3]


# --- the h2 client against a server that cuts, ends, resets and garbles -----------------------------------
def _body(ups):
    return grpc_frame(ping()) + b"".join(_msg(u) for u in ups)


def _phase_ups(table, cases, k):
    return [_u(u["pubkey"], u["owner"], base64.b64decode(u["data"]), u["slot"]) for u in phases(table, cases)[0][k]["updates"]]


def _run_feed(folder, n_pools, connections, until):
    with H2GeyserServer(connections) as srv:
        feed = AccountFeed(f"grpc://127.0.0.1:{srv.port}", folder, n_pools)
        feed.start()
        ok = _wait(lambda: until(feed))
        feed.stop()
    assert not feed._thread.is_alive() and feed.error is None
    return feed, srv, ok


@pytest.mark.parametrize("frame_sz", [1, 7, 1000, 1 << 20])
def test_messages_cut_across_data_frames_are_carried_over(snap, frame_sz):  # noqa: F811
    folder, table, cases = snap
    script, final = phases(table, cases)
    body = _body(_phase_ups(table, cases, 0)) + _body(_phase_ups(table, cases, 1))
    feed, srv, ok = _run_feed(folder, len(cases), [[("data", body, frame_sz)]],
                              lambda f: _handed(f) >= 3 * len(cases))
    assert ok and not feed.notes, feed.notes
    assert feed.tracker.counters() == {"account_updates": 5 * len(cases), "stale_account_updates": 0,
                                       "waiting_for_accounts": 2 * len(cases), "rejected_updates": 0}
    pools = tracked_pools(folder)
    last = {pools[p].address: r for p, _, r, _ in _ring(feed)}
    assert last == final
    assert list(srv.requests[0].accounts["workbench_resync"].account) == feed.tracker.addresses()


@pytest.mark.parametrize("ending, note", [
    (("trailers", 7, "x-token%20refused"), "PERMISSION_DENIED (x-token refused); reconnecting in 0.1 s"),
    (("trailers", 0, ""), "the Subscribe stream ended; reopening in 0.1 s"),
    (("reset", 2), "INTERNAL (the server reset the stream (RST_STREAM error 2)); reconnecting in 0.1 s"),
    (("goaway", 0), "UNAVAILABLE (the server sent GOAWAY (error 0)); reconnecting in 0.1 s"),
])
def test_an_ended_stream_is_told_and_reopened(snap, ending, note):  # noqa: F811
    folder, table, cases = snap
    first = [("data", _body(_phase_ups(table, cases, 0)), 1 << 20), ending]
    again = [("data", _body(_phase_ups(table, cases, 1)), 1 << 20)]
    feed, srv, ok = _run_feed(folder, len(cases), [first, again], lambda f: _handed(f) >= 3 * len(cases))
    assert ok, feed.notes
    url = feed.url
    assert feed.notes[0] == f"{url}: {note}", feed.notes
    assert len(srv.requests) >= 2 and feed.tracker.rejected == 0


@pytest.mark.parametrize("garbage, said", [
    (b"\x00\x00\x00\x00\x05\xff\xff\xff\xff\xff", "not valid protobuf at byte {n} of the stream"),
    (b"\x01\x00\x00\x00\x01\x00", "a compressed gRPC message (the client asks for identity only) at byte {n}"),
    (b"\x00\xff\xff\xff\xff", "longer than"),
])
def test_garbage_in_the_body_is_named_with_its_offset_and_the_stream_reopened(snap, garbage, said):  # noqa: F811
    folder, table, cases = snap
    good = _body(_phase_ups(table, cases, 0))
    first = [("data", good + garbage + b"\x00" * 64, 1 << 20)]
    again = [("data", _body(_phase_ups(table, cases, 1)), 1 << 20)]
    feed, srv, ok = _run_feed(folder, len(cases), [first, again], lambda f: _handed(f) >= 3 * len(cases))
    assert ok, feed.notes
    assert feed.notes[0].startswith(f"{feed.url}: INTERNAL (") and said.format(n=len(good)) in feed.notes[0], feed.notes
    assert "reconnecting in 0.1 s" in feed.notes[0] and len(srv.requests) >= 2


def test_bytes_that_are_not_http2_are_told_and_the_stream_reopened(snap):  # noqa: F811
    folder, table, cases = snap
    stream0_data = b"\x00\x00\x04\x00\x00\x00\x00\x00\x00junk"     # a DATA frame on stream 0: a protocol error
    good = _body(_phase_ups(table, cases, 0))
    first = [("data", good, 1 << 20), ("sleep", 0.3), ("raw", stream0_data)]
    again = [("data", _body(_phase_ups(table, cases, 1)), 1 << 20)]
    feed, srv, ok = _run_feed(folder, len(cases), [first, again], lambda f: _handed(f) >= 3 * len(cases))
    assert ok, feed.notes
    assert f"INTERNAL (not HTTP/2 after byte {len(good)} of the stream" in feed.notes[0], feed.notes
    assert feed.notes[0].startswith(feed.url) and len(srv.requests) >= 2


def test_a_flood_is_taken_whole(snap):  # noqa: F811
    folder, table, cases = snap
    ups = [(_raw(u["pubkey"]), _raw(u["owner"]), u["data"], u["slot"]) for u in
           _phase_ups(table, cases, 0)]
    feed, srv, ok = _run_feed(folder, len(cases), [[("flood", 0.5, ups)]],
                              lambda f: f.tracker.updates >= 20_000)
    assert ok and not feed.notes, feed.notes
    c = feed.tracker.counters()
    assert c["rejected_updates"] == 0 and c["stale_account_updates"] == 0
    assert _handed(feed) + int(feed.rs.ctl[4]) == c["account_updates"] - c["waiting_for_accounts"]
    assert c["waiting_for_accounts"] == 2 * len(cases)


def test_a_tracker_filled_before_the_stream_carries_on_in_the_arrays(snap):  # noqa: F811
    """What PoolTracker took before the stream (pool accounts, balances, slots: a seed at start)
    is where the jitted tracker starts: the states after it equal PoolTracker's own."""
    folder, table, cases = snap
    pools = tracked_pools(folder)
    ups = _mixed_updates(table, cases, pools, 4)
    head, tail = ups[:3 * len(cases)], ups[3 * len(cases):]
    py = AccountFeed("grpc://127.0.0.1:9", folder, len(pools), queue=4096)
    jit = AccountFeed("grpc://127.0.0.1:9", folder, len(pools), queue=4096)
    for feed in (py, jit):
        for u in head:
            feed.tracker.update(u["pubkey"], u["owner"], u["data"], u["slot"])
    for u in tail:
        py.on_account(u["pk_raw"].hex() if "pk_raw" in u else u["pubkey"], u["owner"], u["data"], u["slot"])
    cb = ChunkBuffer()
    cb.append(b"".join(_msg(u) for u in tail))
    used, _, err = GeyserChunks(jit).on_chunk(cb.buf, cb.end, cb.base)
    assert err is None and used == cb.end
    assert jit.tracker.counters() == py.tracker.counters() and jit.notes == py.notes
    assert _handed(jit) == _handed(py) == len(_ring(py)) > 0
    assert _applied(jit, pools) == _applied(py, pools)
