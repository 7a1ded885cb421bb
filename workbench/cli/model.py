"""``workbench train`` and ``workbench compile`` (issue #4): thin faces over model/train.py and model/compile.py.

``register(app)`` adds both commands to the main ``workbench`` Typer app (cli.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from rich.text import Text

from ..errors import WorkbenchError
from .output import console, fail as _fail, out_folder, plain


def train(
    runs: List[Path] = typer.Argument(..., help="run folders written by `workbench replay --market` "
                                                "(opportunities.parquet + swaps.parquet)"),
    out: Path = typer.Option(..., "--out", "-o", help="model folder to write, e.g. models/NAME"),
    latency: Optional[str] = typer.Option(None, help="latency model, e.g. 'feed=0,decision=50us,"
                                                     "submission=lognormal:2ms:0.5,seed=7' (default: constant "
                                                     "feed 0, decision 50us, submission 2ms)"),
    fee_lamports: int = typer.Option(5000, help="base + priority fee per transaction of ours, lamports"),
    rule: str = typer.Option("race", help="label rule: race (first later pool transaction beats us) or state "
                                          "(profit recomputed on the pools at landing; needs --market)"),
    market: Optional[Path] = typer.Option(None, help="market snapshot folder of the replay (recomputes the "
                                                     "profit of late arbitrages)"),
    trees: int = typer.Option(200, help="boosting rounds"),
    depth: int = typer.Option(6, help="max tree depth"),
    eta: float = typer.Option(0.1, help="learning rate"),
    train_fraction: float = typer.Option(0.7, help="earliest share of rows (by ts_ns) that trains"),
    seed: int = typer.Option(0, help="xgboost seed"),
    early_stopping: int = typer.Option(0, "--early-stopping", help="stop after N rounds without a better log loss "
                                                                   "on the latest 20% (by time) of the training "
                                                                   "period, keep the best round (0 = off, all "
                                                                   "--trees); the validation period stays unseen"),
):
    """Label the runs' opportunities under a latency model and train an XGBoost classifier (split by time)."""
    from ..model.labels import LabelConfig, LatencyModel
    from ..model.train import TrainConfig, train_runs
    try:
        out_folder(out, "--out")                # before labelling and training: a bad path costs nothing
        lc = LabelConfig(LatencyModel.parse(latency), fee_lamports, rule)
        tc = TrainConfig(n_estimators=trees, max_depth=depth, learning_rate=eta, train_fraction=train_fraction,
                         seed=seed, early_stopping_rounds=early_stopping)
        tc.check()                              # a bad flag is a message before any labelling
        res = train_runs(runs, out, lc, tc, market)
    except (WorkbenchError, ValueError) as e:
        _fail(e)
    print_train(res)


def print_train(res) -> None:
    t = Table(show_header=False, title=plain(f"model {res.model_dir}"), title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    r = res.rows
    t.add_row("rows train / validation", f"{r['train']:,} / {r['validation']:,}")
    t.add_row("won train / validation", f"{r['train_won']:,} / {r['validation_won']:,}")
    t.add_row("validation AUC", f"{res.auc:.4f}")
    t.add_row("profit-only baseline AUC", f"{res.baseline_auc:.4f} (a booster on profit alone; "
                                          f"profit as the score: {res.profit_score_auc:.4f})")
    t.add_row("validation log loss", f"{res.log_loss:.4f} (base rate {res.base_log_loss:.4f})")
    t.add_row("validation Brier score", f"{res.brier:.4f} (base rate {res.base_brier:.4f})")
    t.add_row("base rate (training win share)", f"{res.base_rate:.4f}")
    t.add_row("beats the baselines", "yes (AUC, log loss and Brier)" if res.beats_baseline else
              Text("no", style="bold red"))
    es = res.early_stopping
    if es:
        t.add_row("early stopping", f"{es['trees_kept']:,} of {es['rounds_run']:,} trees kept (watched "
                                    f"{es['watched_rows']:,} latest training rows, log loss "
                                    f"{es['best_watched_log_loss']:.4f})")
    t.add_row("training time", f"{res.train_s:.1f} s")
    console.print(t)
    for why in res.not_beaten_because:
        console.print(Text(f"  not beaten: {why}", style="yellow"))
    if not res.beats_baseline and not es and any("log loss" in w or "Brier" in w for w in res.not_beaten_because):
        console.print(Text("  the probabilities are worse than a constant (overconfident trees): try "
                           "--early-stopping 20, fewer --trees or a lower --eta", style="yellow"))
    c = Table(title=f"calibration (validation deciles): mean |predicted - observed| "
                    f"{res.calibration_error:.3f}", title_justify="left")
    for h in ("bin", "rows", "predicted", "observed"):
        c.add_column(h, justify="right")
    for row in res.calibration:
        c.add_row(str(row["bin"]), f"{row['rows']:,}", f"{row['mean_predicted']:.3f}", f"{row['observed_rate']:.3f}")
    console.print(c)
    g = Table(title="feature importance (total gain)", title_justify="left")
    g.add_column("feature")
    g.add_column("gain", justify="right")
    total = sum(res.importance_gain.values()) or 1.0
    for name, v in res.importance_gain.items():
        g.add_row(plain(name), f"{100 * v / total:.1f}%")
    console.print(g)
    console.print(plain(f"wrote {res.model_dir}: model.json schema.json metrics.json validation.npz labels.parquet"))


def compile(  # noqa: A001 - the command's name
    model_dir: Path = typer.Argument(..., help="model folder written by `workbench train`"),
    nthread: Optional[int] = typer.Option(None, help="compiler processes (default: all cores)"),
    parallel_comp: Optional[int] = typer.Option(None, help="translation units the trees are split into "
                                                           "(default 4 per core)"),
    quantize: bool = typer.Option(False, help="TL2cgen quantize=1 (thresholds as integer bins); off by "
                                              "default: TL2cgen 1.0.0 rounds that table to 8 digits"),
    native: bool = typer.Option(True, help="gcc -march=native"),
):
    """Treelite import, TL2cgen native library, the engine's tree arrays, and the 4-way parity check."""
    from ..model.compile import compile_model
    from ..errors import ParityError
    try:
        res = compile_model(model_dir, nthread=nthread, parallel_comp=parallel_comp, quantize=quantize,
                            options=("-march=native",) if native else ())
    except ParityError as e:
        _print_parity_file(model_dir)
        _fail(e, 4)
    except (WorkbenchError, ValueError) as e:
        _fail(e)
    print_compile(res)


def _print_parity_file(model_dir: Path) -> None:
    import json
    try:
        doc = json.loads((model_dir / "compile.json").read_text())
    except (OSError, ValueError):
        return
    par = doc["parity"]
    _parity_table(par["max_abs_diff"], par["probe_max_abs_diff"], par["tol"], par["rows"], par["probe_rows"])


def _parity_table(diffs: dict, probe_diffs: dict, tol: float, rows: int, probe_rows: int) -> None:
    p = Table(title=f"parity: max abs probability difference (must be < {tol:g})", title_justify="left")
    p.add_column("scorers")
    p.add_column(f"{rows:,} validation rows", justify="right")
    p.add_column(f"{probe_rows:,} threshold probes", justify="right")
    p.add_column("ok", justify="center")
    for k, v in diffs.items():
        pv = probe_diffs.get(k, 0.0)
        p.add_row(plain(k), f"{v:.3g}", f"{pv:.3g}", "yes" if max(v, pv) < tol else "[bold red]NO[/]")
    console.print(p)


def print_compile(res) -> None:
    t = Table(show_header=False, title=plain(f"compiled {res.model_dir}"), title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    t.add_row("trees / nodes / depth", f"{res.n_trees} / {res.n_nodes:,} / {res.max_depth}")
    t.add_row("library", plain(res.lib))
    t.add_row("tree arrays (engine)", plain(res.trees))
    t.add_row("tl2cgen params", ", ".join(f"{k}={v}" for k, v in res.params.items()))
    t.add_row("gcc options", "-O3 " + " ".join(res.options))
    t.add_row("compile time", f"{res.compile_s:.1f} s")
    t.add_row(".so called directly", plain(res.parity.native_direct))
    console.print(t)
    p = res.parity
    _parity_table(p.max_abs_diff, p.probe_max_abs_diff, p.tol, p.rows, p.probe_rows)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``compile`` to the ``workbench`` command."""
    app.command("train")(train)
    app.command("compile")(compile)
