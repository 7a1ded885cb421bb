"""The slot clock (issue 17 rough edge 11): UDP transactions carry no slot, the ShredStream beside
them does; the engine places a UDP trigger in the latest slot the shreds showed, so
``f_ms_since_slot_start`` has values on the bundled market capture, and the model uses it."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import CAPTURES
from workbench.synth.shreds import HASHES_PER_TICK, SHREDS_PER_SLOT, TICKS_PER_SLOT, data_shred, shred_times
from workbench.synth.traffic.fields import HASH_BLOCKHASH, HASH_ROWS, SLOT0, SLOT_HISTORY, SLOT_NS
from workbench.wire.entries import parse_batch
from workbench.wire.shred import FLAG_DATA_COMPLETE, FLAG_SLOT_COMPLETE, decode_shred_one
from workbench.wire.status import SHRED, TXN

START_NS = 1_750_000_000_000_000_000   # the bundled captures' start (captures/PROVENANCE.md)


def test_synthetic_shreds_decode_as_tick_batches():
    hashes = np.random.default_rng(3).integers(0, 256, (HASH_ROWS, SLOT_HISTORY + 4, 32), dtype=np.uint8)
    for j in range(SHREDS_PER_SLOT):
        raw = data_shred(SLOT0 + 1, j, hashes)
        st, h = decode_shred_one(raw)
        assert st == SHRED and h["slot"] == SLOT0 + 1 and h["index"] == j and h["parent_offset"] == 1
        assert h["flags"] & FLAG_DATA_COMPLETE
        assert bool(h["flags"] & FLAG_SLOT_COMPLETE) == (j == SHREDS_PER_SLOT - 1)
        b_st, stop, entries, txs = parse_batch(raw[h["data_off"]:h["data_off"] + h["data_sz"]])
        assert b_st == TXN and stop == h["data_sz"] and len(txs) == 0          # ticks only, whole batch
        assert len(entries) == TICKS_PER_SLOT // SHREDS_PER_SLOT and (entries["tx_cnt"] == 0).all()
        assert (entries["num_hashes"] == HASHES_PER_TICK).all()
    # the slot's last tick hash is its blockhash, the one its transactions' recent blockhash draws from
    assert hashes[HASH_BLOCKHASH, 1 + SLOT_HISTORY].tobytes() in data_shred(SLOT0 + 1, SHREDS_PER_SLOT - 1, hashes)


def test_shred_times_start_each_slot():
    ts, slot, j = shred_times(START_NS, 3 * SLOT_NS - 1)
    assert len(ts) == 3 * SHREDS_PER_SLOT and (np.diff(ts) > 0).all()
    assert (ts[j == 0] == START_NS + (slot[j == 0] - SLOT0) * SLOT_NS).all()


@pytest.fixture(scope="module")
def market_run(tmp_path_factory):
    from workbench.config import Settings
    from workbench.runner import replay
    cap = CAPTURES / "market.pcapng"
    out = tmp_path_factory.mktemp("slot_clock") / "run"
    replay(cap, out, Settings(progress=False, market=str(cap) + ".market"))
    return out


def test_bundled_market_capture_has_shreds_in_every_slot():
    truth = pq.read_table(CAPTURES / "market.pcapng.truth.parquet", columns=["kind", "ts_ns"]).to_pandas()
    sh = truth[truth.kind == "shred"]
    slots = (sh.ts_ns - START_NS) // SLOT_NS
    assert len(sh) > 0 and (np.bincount(slots) == SHREDS_PER_SLOT).all()


def test_ms_since_slot_start_is_present_and_plausible(market_run):
    op = pq.read_table(market_run / "opportunities.parquet").to_pandas().sort_values("ts_ns")
    assert len(op) > 100
    ms = op.f_ms_since_slot_start.to_numpy()
    assert not np.isnan(ms).any()
    assert (ms >= 0).all() and (ms < SLOT_NS / 1e6).all()
    # the slot clock's own arithmetic: the slot the trigger's time falls in started at a shred
    slot_start = START_NS + (op.ts_ns.to_numpy() - START_NS) // SLOT_NS * SLOT_NS
    assert np.allclose(ms, (op.ts_ns.to_numpy() - slot_start) / 1e6)
    # monotone within a slot, and UDP triggers keep the slot -1 they carry on the wire
    slot = (op.ts_ns.to_numpy() - START_NS) // SLOT_NS
    for s in np.unique(slot):
        assert (np.diff(ms[slot == s]) >= 0).all()
    assert (op.slot == -1).all()


def test_ms_since_slot_start_is_missing_without_shreds(tmp_path):
    from workbench.config import Settings
    from workbench.runner import replay
    from workbench.synth.generate import generate_capture
    cap = tmp_path / "noshreds.pcapng"
    generate_capture(cap, seconds=2, tps=700, seed=11, market=True, opportunities=8, shreds=False)
    replay(cap, tmp_path / "run", Settings(progress=False, market=str(cap) + ".market"))
    op = pq.read_table(tmp_path / "run" / "opportunities.parquet").to_pandas()
    assert len(op) > 0 and op.f_ms_since_slot_start.isna().all()


def test_training_frame_carries_ms_since_slot_start(market_run):
    """The labelled rows `workbench train` fits on have the feature (its importance is checked
    on the prize capture, tests/test_model_train.py: the bundled capture's rivals are flat and
    nearly every opportunity is won, so no feature gets a split there)."""
    from workbench.model.labels import LabelConfig, label_run
    df = label_run(market_run, LabelConfig(), str(CAPTURES / "market.pcapng.market"))
    assert len(df) > 100 and df.f_ms_since_slot_start.notna().all()
