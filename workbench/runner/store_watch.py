"""Polls a ClickHouse store for the newest run's rows: what a background run in 'store' mode
shows (runner/background.py). Queries only; no view code."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa


class StoreWatch:
    """Polls a ClickHouse store: the newest run's opportunities, transactions and histograms."""

    def __init__(self, dsn: str):
        from ..store import connect
        self.dsn = dsn
        self.store = connect(dsn, ensure_schema=False, read_only=True)   # a view reads: nothing it runs may write
        self.run_id: str | None = None
        self._lock = threading.Lock()

    def latest_run(self) -> str | None:
        with self._lock:
            rows = self.store.query_rows(f"SELECT run_id FROM {self.store.table('runs')} "
                                         f"ORDER BY started_at DESC LIMIT 1")
        return str(rows[0][0]) if rows else None

    def query_arrow(self, sql: str, params: dict | None = None) -> pa.Table:
        with self._lock:
            return self.store.query_arrow(sql, params)

    def opportunities(self, run_id: str, after_ns: int) -> pa.Table:
        t = self.store.table("mev_opportunities")
        return self.query_arrow(
            f"SELECT toUnixTimestamp64Nano(timestamp) AS ts_ns, toString(opportunity_id) AS opportunity_id, "
            f"toString(type) AS type, profit AS expected_profit_sol, score, pools, victim_signature, "
            f"slot, tip_lamports, expected_profit_lamports, detect_latency_ns AS detect_ns "
            f"FROM {t} WHERE run_id = {{run:String}} AND toUnixTimestamp64Nano(timestamp) > {{after:Int64}} "
            f"ORDER BY timestamp", {"run": run_id, "after": after_ns})

    def tx_features(self, run_id: str, after_index: int, limit: int = 200_000) -> pa.Table:
        t = self.store.table("tx_features")
        return self.query_arrow(
            f"SELECT * EXCEPT (run_id, ts), ts_ns FROM {t} WHERE run_id = {{run:String}} "
            f"AND tx_index > {{after:Int64}} ORDER BY tx_index LIMIT {int(limit)}",
            {"run": run_id, "after": after_index})

    def counts(self, run_id: str) -> dict:
        """packets and transactions of a run: its runs row's counts (final) or its rows so far."""
        rows = self.query_arrow(f"SELECT counts FROM {self.store.table('runs')} FINAL WHERE run_id = {{run:String}}",
                                {"run": run_id}).to_pylist()
        counts = dict(rows[0]["counts"]) if rows and rows[0]["counts"] else {}
        if "transactions" not in counts:
            counts["transactions"] = int(self.query_arrow(
                f"SELECT count() AS n FROM {self.store.table('tx_features')} WHERE run_id = {{run:String}}",
                {"run": run_id}).column("n")[0].as_py())
        return {"packets": int(counts.get("packets", 0)), "transactions": int(counts["transactions"]),
                "drops": int(counts.get("drops", 0))}

    def histograms(self, run_id: str) -> dict:
        """{hist_name: (lows, counts, p50, p99, p999)} of the run's newest snapshot per histogram."""
        t = self.store.table("latency_hist")
        tab = self.query_arrow(
            f"SELECT hist_name, argMax(bucket_lower, interval_end) AS lows, argMax(bucket_count, interval_end) "
            f"AS counts, argMax(p50, interval_end) AS p50, argMax(p99, interval_end) AS p99, "
            f"argMax(p999, interval_end) AS p999 FROM {t} WHERE run_id = {{run:String}} GROUP BY hist_name "
            f"ORDER BY hist_name", {"run": run_id})
        out = {}
        for r in tab.to_pylist():
            out[r["hist_name"]] = (np.asarray(r["lows"], np.int64), np.asarray(r["counts"], np.int64),
                                   int(r["p50"]), int(r["p99"]), int(r["p999"]))
        return out
