"""End to end on the real fixtures: a pcap of real transactions (written by scapy) replays to
tx_features rows that agree with solders; the Firedancer shred capture is counted as shreds."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from conftest import fixture_txn_files
from workbench.runner import replay
from workbench.engine.tables import read_tx_features


def _ether(payload: bytes, dport=8003):
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.1.0.1", dst="10.0.0.1") / \
        UDP(sport=50000, dport=dport) / Raw(payload)


def test_real_transactions_replay_like_solders(fixtures, tmp_path):
    from solders.transaction import VersionedTransaction
    payloads = [f.read_bytes() for f in fixture_txn_files(fixtures)]
    pkts = [_ether(p) for p in payloads] + [_ether(payloads[1])]          # one duplicate at the end
    for k, p in enumerate(pkts):
        p.time = 1_700_000_000 + k
    cap = tmp_path / "real.pcap"
    wrpcap(str(cap), pkts)
    res = replay(cap, tmp_path / "out")
    raw_sigs = pq.read_table(tmp_path / "out/tx_features.parquet").column("signature").to_pylist()
    t = read_tx_features(tmp_path / "out/tx_features.parquet").to_pylist()
    status = pq.read_table(tmp_path / "out/packet_status.parquet").column("status").to_pylist()
    names = [f.name for f in fixture_txn_files(fixtures)]
    bad = names.index("transaction5.bin")
    assert status[bad] == "empty_lookup_table" and status[-1] == "duplicate"
    assert res.by_status["transaction"] == len(payloads) - 1 and res.transactions == len(payloads) - 1
    good = [p for i, p in enumerate(payloads) if i != bad]
    assert len(t) == len(good)
    progs_seen = []
    for row, raw in zip(t, good):
        tx = VersionedTransaction.from_bytes(raw)
        m = tx.message
        assert row["signature"] == str(tx.signatures[0])
        assert raw_sigs[len(progs_seen)] == bytes(tx.signatures[0])          # the file holds the raw bytes
        progs_seen.append(row)
        assert row["num_signatures"] == len(tx.signatures) and row["size"] == len(raw)
        assert row["num_account_keys"] == len(m.account_keys)
        assert row["num_instructions"] == len(m.instructions)
        progs = []
        for ci in m.instructions:
            pk = str(m.account_keys[ci.program_id_index])
            if pk not in progs:
                progs.append(pk)
        assert row["programs"] == progs
        assert row["version"] == ("legacy" if not hasattr(m, "address_table_lookups") else "0")
        assert row["slot"] == -1 and row["ts_ns"] % 1_000_000_000 == 0


def test_firedancer_shred_capture_replays_to_its_transactions(fixtures, tmp_path):
    """512 shreds on a random UDP port -> one entry batch -> the 1280 transactions of demo-shreds.bin."""
    from solders.transaction import VersionedTransaction
    from workbench.wire.entries import parse_batch
    cap = fixtures / "firedancer/src/disco/shred/fixtures/demo-shreds.pcap"
    res = replay(cap, tmp_path / "out")
    assert res.packets == 512 and res.by_status == {"shred": 512}
    assert res.shreds["data_shreds"] == 256 and res.shreds["entries"] == 64 and res.transactions == 1280
    rows = read_tx_features(tmp_path / "out/tx_features.parquet").to_pylist()
    raw = (fixtures / "firedancer/src/disco/shred/fixtures/demo-shreds.bin").read_bytes()
    status, _stop, entries, txs = parse_batch(raw)
    want = [VersionedTransaction.from_bytes(raw[t["off"]:t["end"]]) for t in txs]
    assert [r["signature"] for r in rows] == [str(t.signatures[0]) for t in want]
    assert [r["entry_index"] for r in rows] == [int(t["entry"]) for t in txs]
    assert {r["slot"] for r in rows} == {0} and {r["origin"] for r in rows} == {1}
    assert all(r["origin_ts_ns"] <= r["ts_ns"] for r in rows)


def test_replay_is_deterministic(fixtures, tmp_path):
    payloads = [f.read_bytes() for f in fixture_txn_files(fixtures)]
    cap = tmp_path / "d.pcap"
    wrpcap(str(cap), [_ether(p) for p in payloads])
    replay(cap, tmp_path / "a")
    replay(cap, tmp_path / "b")
    for f in ("tx_features.parquet", "packet_status.parquet"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_paced_replay_follows_capture_time(fixtures, tmp_path):
    """At speed 10, 2 s of capture take about 0.2 s, and the rows are those of a full-speed replay."""
    import time
    payloads = [f.read_bytes() for f in fixture_txn_files(fixtures)][:5]
    pkts = [_ether(p) for p in payloads]
    for k, p in enumerate(pkts):
        p.time = 1_700_000_000 + k * 0.5
    cap = tmp_path / "paced.pcap"
    wrpcap(str(cap), pkts)
    t = time.perf_counter()
    res = replay(cap, tmp_path / "p", speed=10.0)
    took = time.perf_counter() - t
    assert took >= 0.2 - 0.01 and res.pace_max_lag_ns is not None
    replay(cap, tmp_path / "f")
    assert (tmp_path / "p/tx_features.parquet").read_bytes() == (tmp_path / "f/tx_features.parquet").read_bytes()


def test_pacer_schedules_from_one_start_instant():
    from workbench.capture.pace import Pacer
    now = [0]
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        now[0] += int(s * 1e9) + 1000          # oversleep by 1 us every time: must not accumulate

    p = Pacer(2.0, clock=lambda: now[0], sleep=sleep)
    ts = np.arange(0, 10_000_000_000, 1_000_000_000, dtype=np.int64)   # 1 frame per second, 10 s
    i = 0
    while i < ts.size:
        j = p.wait_due(ts, i)
        assert now[0] >= p.release_time_ns(int(ts[i]))
        i = j
    assert abs(now[0] - 4_500_000_000) < 10_000_000 and p.max_lag_ns < 2_000_000


def test_a_pacer_with_a_quantum_releases_at_most_once_a_quantum_and_no_frame_later_than_that():
    from workbench.capture.pace import Pacer
    now = [0]

    def sleep(s):
        now[0] += int(s * 1e9) + 1000          # oversleep by 1 us every time: must not accumulate

    quantum = 1_000_000
    p = Pacer(1.0, clock=lambda: now[0], sleep=sleep, quantum_ns=quantum)
    # 0.1 ms apart for 50 ms, a gap of 20 ms, then 0.1 ms apart again
    ts = np.concatenate([np.arange(0, 50_000_000, 100_000), 70_000_000 + np.arange(0, 50_000_000, 100_000)])
    releases, i = [], 0
    while i < ts.size:
        j = p.wait_due(ts, i)
        releases.append((now[0], i, j))
        assert all(now[0] >= p.release_time_ns(int(t)) for t in ts[i:j])       # none early
        assert now[0] - p.release_time_ns(int(ts[i])) <= quantum + 2_000         # none later than a quantum
        i = j
    gaps = np.diff([r[0] for r in releases])
    assert gaps.min() >= quantum and len(releases) <= 102           # not one call a frame: one a quantum
    after_gap = [at for at, first, _ in releases if first == 500]
    assert after_gap and after_gap[0] - 70_000_000 < 2_000          # the first frame after the gap on time
    assert p.max_lag_ns <= quantum + 2_000
    plain = Pacer(1.0, clock=lambda: now[0], sleep=sleep)
    now[0], i, n = 0, 0, 0
    while i < ts.size:
        i = plain.wait_due(ts, i)
        n += 1
    assert n == ts.size                                             # without one: a release a frame
