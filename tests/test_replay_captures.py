"""Replays of the bundled captures (captures/) against their ground truth and against solders."""

from __future__ import annotations

import json

import dpkt
import pyarrow.parquet as pq
import pytest

from conftest import CAPTURES
from txn_helpers import kernel_decode, solders_fields
from workbench.runner import replay
from workbench.engine.tables import read_tx_features

BUNDLED = sorted(p for p in CAPTURES.glob("*.pcap*") if p.is_file() and p.suffix in (".pcap", ".pcapng"))
TRUTH_COLS = ("signature", "version", "size", "num_signatures", "num_account_keys", "num_instructions",
              "num_lookup_tables", "compute_unit_limit", "compute_unit_price", "jito_tip_lamports", "programs")


def _truth(cap):
    return pq.read_table(cap.with_name(cap.name + ".truth.parquet")).to_pylist()


@pytest.fixture(scope="module", params=BUNDLED, ids=lambda p: p.name)
def replayed(request, tmp_path_factory):
    cap = request.param
    out = tmp_path_factory.mktemp(cap.stem)
    res = replay(cap, out)
    return cap, out, res


def test_bundled_captures_exist():
    assert len(BUNDLED) >= 2, "captures/ must hold the bundled captures (see captures/PROVENANCE.md)"


def test_every_packet_gets_its_expected_status(replayed):
    cap, out, res = replayed
    truth = _truth(cap)
    status = pq.read_table(out / "packet_status.parquet").to_pylist()
    assert len(status) == len(truth) == res.packets
    for t, s in zip(truth, status):
        assert s["packet_index"] == t["packet_index"] and s["ts_ns"] == t["ts_ns"]
        if t["expected_status"]:
            assert s["status"] == t["expected_status"], (t["packet_index"], t["kind"])
        else:
            assert s["status"] not in ("transaction", "duplicate", "shred"), (t["packet_index"], t["kind"])
    assert res.capture_error is None
    summary = json.loads((out / "summary.json").read_text())
    assert sum(summary["by_status"].values()) == res.packets


def test_features_equal_ground_truth(replayed):
    cap, out, res = replayed
    truth = {t["packet_index"]: t for t in _truth(cap) if t["expected_status"] == "transaction"}
    rows = read_tx_features(out / "tx_features.parquet").to_pylist()
    assert len(rows) == len(truth) == res.transactions
    for r in rows:
        t = truth[r["packet_index"]]
        for c in TRUTH_COLS:
            assert r[c] == t[c], (r["packet_index"], c, r[c], t[c])


def test_every_transaction_decodes_as_solders_reads_it(replayed):
    cap, out, res = replayed
    truth = _truth(cap)
    reader = dpkt.pcapng.Reader if cap.suffix == ".pcapng" else dpkt.pcap.Reader
    checked = 0
    with open(cap, "rb") as f:
        for t, (_ts, frame) in zip(truth, reader(f)):
            if t["expected_status"] not in ("transaction", "duplicate"):
                continue
            eth = dpkt.ethernet.Ethernet(frame)
            payload = eth.data.data.data
            status, fields = kernel_decode(bytes(payload))
            assert status == "transaction"
            assert fields == solders_fields(bytes(payload)), t["packet_index"]
            checked += 1
    assert checked == sum(t["expected_status"] in ("transaction", "duplicate") for t in truth)
