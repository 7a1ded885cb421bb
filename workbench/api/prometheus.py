"""Prometheus exposition of the engine's histograms and counters and of the server's own.

The engine's log-linear histograms (metrics/hist.py) are exposed as Prometheus histograms
whose bucket bounds are the engine's own: one ``le`` per non-empty engine bucket, at that
bucket's highest value, so counts are exact (no resampling) and a quantile computed from the
exposition lands in the same bucket the engine's own percentile does. Values stay in ns, as
the names say. The server's own histograms (a post's answer, fast_post.py; a WebSocket frame's
delivery, hub.py) are exposed the same way. ``bundle_submission_ms`` and ``success_rate`` are not
exposed until bundles exist (README, "Service: workbench serve").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from ..engine.state import C_PACKETS, C_TRANSACTIONS, HIST_NAMES
from ..metrics.hist import ST_COUNT, ST_SUM, bucket_high
from ..wire.status import counts_by_name

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def engine_histogram(name: str, counts: np.ndarray, stats: np.ndarray, h: int,
                     about: str = "engine histogram") -> HistogramMetricFamily:
    """Histogram ``h`` of an engine histogram set as a Prometheus histogram on the engine's buckets
    (``about``: whose it is, for the help text)."""
    row = counts[h]
    idx = np.nonzero(row)[0]
    cum = np.cumsum(row[idx])
    buckets = [(repr(float(bucket_high(int(i)))), float(c)) for i, c in zip(idx, cum)]
    total = int(stats[h, ST_COUNT])
    buckets.append(("+Inf", float(total)))
    fam = HistogramMetricFamily(name, f"{about} {name} (ns), on the engine's own log-linear buckets")
    fam.add_metric([], buckets, sum_value=float(stats[h, ST_SUM]))
    return fam


class ServerMetrics:
    """A prometheus_client collector reading a snapshot of the run and the server when scraped."""

    def __init__(self, snapshot: Callable[[], dict]):
        self.snapshot = snapshot
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self):
        s = self.snapshot()
        state = s.get("state")
        if state is not None:
            counts, stats = state.hist_counts.copy(), state.hist_stats.copy()
            for h, name in enumerate(HIST_NAMES):
                yield engine_histogram(name, counts, stats, h)
            c = CounterMetricFamily("workbench_packets", "packets the engine saw, by decode status", labels=["status"])
            for status, n in counts_by_name(state.status_counts.copy()).items():
                c.add_metric([status], n)
            yield c
            yield CounterMetricFamily("workbench_transactions", "transactions decoded",
                                      value=int(state.counters[C_TRANSACTIONS]))
            yield GaugeMetricFamily("workbench_engine_packets_seen", "packets seen by the engine so far",
                                    value=int(state.counters[C_PACKETS]))
        for name, counts, stats, h in s.get("server_histograms", ()):
            yield engine_histogram(name, counts, stats, h, "server histogram")
        opp = CounterMetricFamily("workbench_opportunities", "opportunities found by the engine or posted, by type",
                                  labels=["type"])
        for t, n in sorted(s.get("opportunities_by_type", {}).items()):
            opp.add_metric([t], n)
        yield opp
        yield GaugeMetricFamily("opportunities_per_sec", "opportunities per second over the last interval",
                                value=float(s.get("opportunities_per_sec", 0.0)))
        yield GaugeMetricFamily("workbench_kernel_drops", "packets the kernel dropped (live capture)",
                                value=int(s.get("drops", 0)))
        yield GaugeMetricFamily("workbench_ws_clients", "WebSocket clients connected", value=s.get("ws_clients", 0))
        yield CounterMetricFamily("workbench_ws_frames_sent", "WebSocket frames sent", value=s.get("ws_frames_sent", 0))
        yield CounterMetricFamily("workbench_ws_items_dropped", "channel items dropped for slow WebSocket clients",
                                  value=s.get("ws_items_dropped", 0))
        req = CounterMetricFamily("workbench_http_requests", "HTTP requests by route and status code",
                                  labels=["route", "code"])
        for (route, code), n in sorted(s.get("http_requests", {}).items()):
            req.add_metric([route, str(code)], n)
        yield req
