"""Issue 15 item 12 (the class): every value that comes from a file, a capture, a model or the store,
and every path, reaches the console as plain text: rich markup in it is printed as it is, never read
(no MarkupError traceback for ``[/x]``, no ``[red]x[/red]`` shown as a red ``x``). The `db` commands
are covered in test_cli_db.py."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest

from workbench.cli import model as cli_model
from workbench.cli.output import console, err_console

cli_app = importlib.import_module("workbench.cli.app")     # the package re-exports the Typer app by that name

MARKUP = ["[/x]", "[red]RED[/red]", "[bold]b[/bold]"]


@pytest.fixture
def printed(monkeypatch):
    monkeypatch.setattr(console, "width", 400)
    monkeypatch.setattr(err_console, "width", 400)

    def run(fn, *a):
        with console.capture() as out, err_console.capture() as err:
            fn(*a)
        return out.get() + err.get()
    return run


def _replay_result(m):
    return SimpleNamespace(
        capture=f"/caps/{m}.pcap", packets=3, transactions=2, first_ts_ns=0, last_ts_ns=10**9, wall_s=1.0,
        warmup_s=0.1, packets_per_s=3, engine_packets_per_s=3, packet_ns={"p50": 1, "p99": 2, "p99.9": 3},
        by_status={"ok": 3}, by_program={f"prog {m}": 2}, shreds={}, run_id="r1", out_dir=f"/out/{m}",
        store={"dsn": f"chdb:///s/{m}", "rows_inserted": 2, "rows_spooled": 1}, capture_error=f"damaged {m}",
        market={"swaps": 1}, detect_ns={}, ml_inference_ns={},
        opportunities={"count": 1, "by_type": {}, "expected_profit_sol": 0.0,
                       "top": [{"type": f"t{m}", "packet_index": 1, "pools": [f"pool{m}"], "amount_in": 5,
                                "expected_profit_sol": 0.1}]})


@pytest.mark.parametrize("m", MARKUP)
def test_replay_and_live_summaries_print_values_as_they_are(printed, m):
    text = printed(cli_app.print_summary, _replay_result(m))
    for want in (f"/caps/{m}.pcap", f"prog {m}", f"/out/{m}", f"chdb:///s/{m}", f"damaged {m}", f"t{m}"):
        assert want in text, (want, text)
    live = SimpleNamespace(
        iface=f"eth{m}", source="udp", stop_reason=f"stop {m}", packets=1, transactions=0, drops=0, wall_s=1.0,
        warmup_s=0.1, packets_per_s=1, latency_ns={}, packet_ns={}, by_status={"ok": 1}, market=None,
        host=[f"note {m}"], recorded={"frames": 1, "path": f"/rec/{m}.pcapng"}, out_dir=f"/out/{m}", outputs={})
    text = printed(cli_app.print_live_summary, live)
    for want in (f"eth{m}", f"stop {m}", f"note {m}", f"/rec/{m}.pcapng", f"/out/{m}"):
        assert want in text, (want, text)


@pytest.mark.parametrize("m", MARKUP)
def test_model_summaries_print_values_as_they_are(printed, m):
    res = SimpleNamespace(model_dir=f"/models/{m}", rows={"train": 1, "validation": 1, "train_won": 0,
                                                         "validation_won": 0},
                          auc=0.5, baseline_auc=0.5, profit_score_auc=0.5, beats_baseline=True, log_loss=0.7,
                          brier=0.2, base_log_loss=0.69, base_brier=0.25, base_rate=0.5, not_beaten_because=[],
                          early_stopping={}, calibration_error=0.1,
                          train_s=1.0, calibration=[], importance_gain={f"feat {m}": 1.0})
    text = printed(cli_model.print_train, res)
    for want in (f"/models/{m}", f"feat {m}"):
        assert want in text, (want, text)
    par = SimpleNamespace(max_abs_diff={f"a {m}": 0.0}, probe_max_abs_diff={}, tol=1e-6, rows=1, probe_rows=1,
                          native_direct=f"yes {m}")
    res = SimpleNamespace(model_dir=f"/models/{m}", n_trees=1, n_nodes=1, max_depth=1, lib=f"/lib/{m}.so",
                          trees=f"/trees/{m}", params={}, options=(), compile_s=1.0, parity=par)
    text = printed(cli_model.print_compile, res)
    for want in (f"/models/{m}", f"/lib/{m}.so", f"/trees/{m}", f"yes {m}", f"a {m}"):
        assert want in text, (want, text)
