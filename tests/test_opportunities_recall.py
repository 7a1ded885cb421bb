"""The engine finds the opportunities the generator injected (captures/market*.pcapng).

The generator (synth/market/) computes its ground truth with its own Python-integer
model of the same rules; here every truth row must have an engine row of the same type,
trigger packet and pools (in trade order), with the profit within 0.1 %.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from workbench.config import Settings
from workbench.runner import replay

CAPTURES = Path(__file__).resolve().parent.parent / "captures"


def _replay(name, tmp_path):
    cap = CAPTURES / name
    r = replay(cap, tmp_path / "run", Settings(progress=False, market=str(cap) + ".market"))
    op = pq.read_table(tmp_path / "run" / "opportunities.parquet").to_pandas()
    truth = pq.read_table(str(cap) + ".opportunities.truth.parquet").to_pandas()
    return r, op, truth


def test_recall_of_injected_opportunities(tmp_path):
    r, op, truth = _replay("market.pcapng", tmp_path)
    assert len(truth) >= 50
    found = {}
    for row in op.itertuples():
        found.setdefault((row.type, int(row.packet_index), tuple(row.pools)), []).append(row)
    hits, misses, off = 0, [], []
    for t in truth.itertuples():
        rows = found.get((t.type, int(t.packet_index), tuple(t.pools)), [])
        if t.type == "liquidation":
            rows = [x for x in rows if int(x.position_id) == int(t.position_id)]
        if not rows:
            misses.append((t.type, int(t.packet_index)))
            continue
        hits += 1
        got = int(rows[0].profit_quote)
        if abs(got - int(t.profit_quote)) > 0.001 * abs(int(t.profit_quote)):
            off.append((t.type, int(t.packet_index), got, int(t.profit_quote)))
    recall = hits / len(truth)
    assert recall >= 0.99, f"recall {recall:.3f}; missed {misses[:10]}"
    assert not off, f"profit beyond 0.1 % of the truth: {off[:10]}"
    assert r.opportunities["count"] == len(op)
    assert op["opportunity_id"].is_unique


def test_no_opportunity_without_injection(tmp_path):
    r, op, truth = _replay("market-quiet.pcapng", tmp_path)
    assert len(truth) == 0
    assert len(op) == 0, op[["type", "packet_index", "expected_profit_sol"]].head().to_string()
    assert r.market["swaps_applied"] > 100
