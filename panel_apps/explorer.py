"""Explorer: choose a capture, a market and a model, replay, and look into any row.

    panel serve panel_apps/explorer.py --address 127.0.0.1
    panel serve panel_apps/explorer.py --address 127.0.0.1 --args --capture captures/market.pcapng --market captures/market.pcapng.market
    panel serve panel_apps/explorer.py --address 127.0.0.1 --args --run runs/x          # open a finished run
    .../explorer?run=DIR&opportunity=ID[&capture=F&market=D&model=M]   # the live page's links

Captures, markets and models are listed from the data folder (``--data-dir``, $WORKBENCH_DATA_DIR,
else the folder the server was started from) and from the repository; runs are written under
the data folder's runs/views/ (or ``--out``).

The replay runs on a background thread (``workbench.runner.BackgroundRun``) with a progress
bar; when it is done the run's Parquet files fill the tables. Selecting an opportunity (or a transaction)
shows its transaction decoded by the workbench (instructions, accounts, amounts), its
packet as scapy dissects it (``workbench.dissect``), the pool state before and after its
swaps (``swaps.parquet``), its features and, with a model, each feature's contribution to
the score (xgboost ``pred_contribs``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _access as A  # noqa: E402
import _common as C  # noqa: E402
import _display as D  # noqa: E402

pn.extension("tabulator", sizing_mode="stretch_width", notifications=False)

ARGS = C.parse_args(sys.argv[1:], "explorer.py")
NONE = "(none)"


def _listed(sub: str, keep) -> list[str]:
    """Entries of ``sub`` (and of the folder itself, for captures) in the data folder and the repository."""
    out = []
    for d in C.search_dirs(ARGS):
        for folder in (d / sub, d) if sub == "captures" else (d / sub,):
            if folder.is_dir():
                out += [C.shown_path(p, ARGS) for p in sorted(folder.iterdir()) if keep(p)]
    return list(dict.fromkeys(out))


def _captures() -> list[str]:
    return _listed("captures", lambda p: p.is_file() and p.suffix in C.CAPTURE_SUFFIXES)


def _markets() -> list[str]:
    return _listed("captures", lambda p: p.is_dir() and (p / "pools.parquet").exists())


def _models() -> list[str]:
    return _listed("models", lambda p: p.is_dir() or p.suffix == ".json")


def _abs(path: str | None) -> str | None:
    if not path or path == NONE:
        return None
    return C.resolve(path, ARGS)


def _alerts(messages, kind: str = "danger", css: str = "wb-message") -> list:
    return [pn.pane.Alert(D.message_md(m), alert_type=kind, css_classes=[css]) for m in messages]


class Explorer:
    def __init__(self, link: dict | None = None):
        link = link or {}
        self.link = link
        caps = _captures()
        cap0 = link.get("capture") or ARGS.capture or (caps[0] if caps else NONE)
        self.capture = pn.widgets.Select(name="capture", options=list(dict.fromkeys([cap0, *caps])), value=cap0)
        mk0 = link.get("market") or ARGS.market or self._market_for(cap0)
        self.market = pn.widgets.Select(name="market snapshot", options=list(dict.fromkeys([mk0, NONE, *_markets()])),
                                        value=mk0)
        md0 = link.get("model") or ARGS.model or NONE
        self.model = pn.widgets.Select(name="model", options=list(dict.fromkeys([md0, NONE, *_models()])), value=md0)
        self.capture.param.watch(self._capture_changed, "value")
        self.run_btn = pn.widgets.Button(name="Replay", button_type="primary", css_classes=["wb-run"])
        self.run_btn.on_click(self._start)
        self.progress = pn.indicators.Progress(value=0, max=1000, bar_color="info", css_classes=["wb-progress"])
        self.status = pn.pane.Markdown("Choose a capture (and a market for opportunities), then **Replay**.",
                                       css_classes=["wb-status"])
        self.alert = pn.Column()
        self.feed: C.BackgroundRun | None = None
        self.cb = None
        self.run_dir: Path | None = None
        self.swaps: pd.DataFrame | None = None
        self.names = D.SnapshotNames(None)
        self.opp_raw = pd.DataFrame()
        self.opp_df = C.opp_frame(_empty())
        self.tx_df = C.tx_frame(_empty())
        # tables
        self.type_sel = pn.widgets.Select(name="type", options=["all", *C.OPPORTUNITY_TYPES], value="all", width=160)
        self.min_profit = pn.widgets.FloatInput(name="min expected profit (SOL)", value=None, width=180,
                                                placeholder="any")
        self.prog_sel = pn.widgets.Select(name="program", options={"all": "all"}, value="all", width=220)
        self.opp_table = self._opp_table(self.opp_df)
        self.tx_table = self._tx_table(self.tx_df)
        self.opp_count = pn.pane.Markdown("", css_classes=["wb-opp-count"])
        self.tx_count = pn.pane.Markdown("", css_classes=["wb-tx-count"])
        for w in (self.type_sel, self.min_profit, self.prog_sel):
            w.param.watch(lambda *_: self._counts(), "value")
        self.hists: dict[str, C.HistPlot] = {}
        self.hist_row = pn.GridBox(ncols=4)
        for name in C.engine_hist_names():
            self.hists[name] = C.HistPlot(name, name.replace("_", " "), width=C.PLOT_W * 3 // 4, cdf=False)
            self.hist_row.append(pn.pane.Bokeh(self.hists[name].figure, sizing_mode="fixed",
                                               width=C.PLOT_W * 3 // 4, height=C.PLOT_H))
        self.detail = pn.Column(pn.pane.Markdown("Select a row of a table to see it here.", css_classes=["wb-detail"]))
        self.opp_col = pn.Column(pn.Row(self.type_sel, self.min_profit), self.opp_count, self.opp_table)
        self.tx_col = pn.Column(self.prog_sel, self.tx_count, self.tx_table)
        self.tabs = pn.Tabs(("Opportunities", self.opp_col), ("Transactions", self.tx_col),
                            ("Detail", self.detail), dynamic=False)
        self._check_inputs()

    # -- tables -------------------------------------------------------------------------
    def _opp_table(self, df: pd.DataFrame) -> pn.widgets.Tabulator:
        t = _table(df, "wb-opp-table")
        t.add_filter(pn.bind(C.filter_opps, type_=self.type_sel, score=(0.0, 1.0), min_profit=self.min_profit))
        t.param.watch(self._opp_selected, "selection")
        return t

    def _tx_table(self, df: pd.DataFrame) -> pn.widgets.Tabulator:
        t = _table(df, "wb-tx-table")
        t.add_filter(pn.bind(C.filter_txs, program=self.prog_sel, min_fee=0))
        t.param.watch(self._tx_selected, "selection")
        return t

    def _show_tables(self) -> None:
        """The loaded rows into the tables; a table whose columns change type (the first load) is made
        anew (``C.retyped_table``)."""
        for df, attr, col, make in ((self.tx_df, "tx_table", self.tx_col, self._tx_table),
                                    (self.opp_df, "opp_table", self.opp_col, self._opp_table)):
            setattr(self, attr, C.retyped_table(getattr(self, attr), C.browser_safe(df), col, make))

    # -- inputs -------------------------------------------------------------------------
    @staticmethod
    def _market_for(capture: str) -> str:
        m = capture + ".market"
        return m if Path(_abs(m) or m).is_dir() else NONE

    def _capture_changed(self, event):
        m = self._market_for(event.new)
        if m != NONE:
            if m not in self.market.options:
                self.market.options = [m, *self.market.options]
            self.market.value = m
        self._check_inputs()

    def _check_inputs(self) -> list[str]:
        msgs = []
        cap = self.capture.value
        if cap == NONE:
            msgs.append(f"No capture in `{C.data_dir(ARGS)}` or the repository's captures/: pass `--capture FILE` "
                        f"or `--data-dir DIR`.")
        else:
            m = C.missing_input("capture", _abs(cap))
            if m:
                msgs.append(m)
        for kind, w in (("market", self.market), ("model", self.model)):
            m = C.missing_input(kind, _abs(w.value))
            if m:
                msgs.append(m)
        run = self.link.get("run") or ARGS.run
        if run:
            m = C.missing_input("run", run)
            if m:
                msgs.append(m)
        if not msgs:
            m = C.engine_problem(_abs(self.market.value), _abs(self.model.value))
            if m:
                msgs.append(m)
        self.alert.objects = _alerts(msgs)
        self.run_btn.disabled = bool(msgs)
        return msgs

    # -- running ------------------------------------------------------------------------
    def _start(self, _event=None):
        if self._check_inputs() or (self.feed is not None and self.feed.running):
            return
        base = C.views_out_dir(ARGS)
        out = base / f"explorer-{time.strftime('%Y%m%d-%H%M%S')}-{id(self) % 10000}"
        self.feed = C.BackgroundRun("replay", capture=_abs(self.capture.value), out_dir=str(out),
                                    market=_abs(self.market.value), model=_abs(self.model.value)).start()
        self.run_dir = out
        self.run_btn.disabled = True
        self._watch()

    def open_run(self, run_dir: str):
        self.feed = C.BackgroundRun("run", run_dir=run_dir).start()
        self.run_dir = Path(run_dir)
        self._watch()

    def _watch(self):
        if self.cb is None:
            self.cb = pn.state.add_periodic_callback(self._tick, period=C.UPDATE_MS)

    def _tick(self):
        f = self.feed
        self.progress.value = int(1000 * f.progress)
        self.status.object = f"**{D.text_md(f.phase)}**"
        self._hists()
        if f.running:
            return
        self.cb.stop()
        self.cb = None
        self.run_btn.disabled = False
        if f.error:
            self.alert.objects = _alerts([f.error])
            return
        self._load()

    def _load(self):
        f = self.feed
        txs, _ = f.tables("tx_features")
        opps, _ = f.tables("opportunities")
        import pyarrow as pa
        self.tx_df = C.tx_frame(pa.concat_tables(txs, promote_options="permissive")) if txs else C.tx_frame(_empty())
        sw, _ = f.tables("swaps")
        self.swaps = pa.concat_tables(sw, promote_options="permissive").to_pandas() if sw else None
        mk = _abs(self.market.value)
        try:                       # the engine's validating loader: a snapshot it refuses is said so, not shown
            self.names = D.SnapshotNames(mk)
        except Exception as e:
            self.names = D.SnapshotNames(None)
            self.alert.objects = _alerts([f"The market snapshot `{mk}` cannot be used: {C.short_error(e)}"])
        opp_table = pa.concat_tables(opps, promote_options="permissive") if opps else _empty()
        self.opp_df = C.opp_frame(opp_table, self.names)
        self.opp_raw = opp_table.to_pandas()          # row for row with opp_df: exact integers for the detail
        self._show_tables()
        progs = {p for s in self.tx_df.get("programs", []) for p in s.split(", ") if p}
        self.prog_sel.options = {"all": "all", **dict(sorted({C.program_label(p): p for p in progs}.items()))}
        self._hists()
        n_opp, n_tx = len(self.opp_df), len(self.tx_df)
        s = f.summary or {}
        self.status.object = D.message_md(f"done: {int(s.get('packets', 0)):,} packets, {n_tx:,} transactions, "
                                          f"{n_opp:,} opportunities — run folder `{self.run_dir}`")
        if n_opp == 0:
            why = ("" if _abs(self.market.value) else " Detection needs a market snapshot: choose one and replay.")
            self.alert.objects = _alerts(["This run found no opportunities." + why], "info", "wb-note")
        self.tabs.active = 0 if n_opp else 1
        self._counts()
        if self.link.get("opportunity"):
            self._show_linked(self.link["opportunity"])

    def _show_linked(self, opportunity_id: str):
        """The detail of the opportunity a live page linked to (``?opportunity=ID``)."""
        hit = self.opp_df.index[self.opp_df["opportunity_id"].astype(str) == opportunity_id] \
            if "opportunity_id" in self.opp_df else []
        if len(hit) == 0:
            self.alert.objects = _alerts([f"Opportunity `{opportunity_id}` is not in run `{self.run_dir}`."], "warning")
            return
        self._explain(self.opp_df.loc[hit[0]])

    def _hists(self):
        """The engine's HDR histograms (packet, batch, detection, model inference), as they fill."""
        for name, (data, marks) in C.hist_views(self.feed).items():
            if name not in self.hists:
                self.hists[name] = C.HistPlot(name, name.replace("_", " "), cdf=False)
                self.hist_row.append(pn.pane.Bokeh(self.hists[name].figure, sizing_mode="fixed",
                                                   width=C.PLOT_W * 3 // 4, height=C.PLOT_H))
            self.hists[name].update(data, marks)

    def _counts(self):
        n = len(C.filter_opps(self.opp_df, self.type_sel.value, (0.0, 1.0), self.min_profit.value))
        self.opp_count.object = f"**{n:,}** of {len(self.opp_df):,} opportunities match"
        n = len(C.filter_txs(self.tx_df, self.prog_sel.value, 0))
        self.tx_count.object = f"**{n:,}** of {len(self.tx_df):,} transactions match"

    # -- detail -------------------------------------------------------------------------
    @staticmethod
    def _row(table, df) -> pd.Series | None:
        """The selected row: ``selection`` indexes the table's value, which is ``df`` less the columns
        a browser cannot hold, row for row."""
        sel = table.selection
        if not sel or sel[0] >= len(df):
            return None
        return df.iloc[sel[0]]

    def _tx_selected(self, _event):
        row = self._row(self.tx_table, self.tx_df)
        if row is not None:
            self.detail.objects = self._tx_detail(row)
            self.tabs.active = 2

    def _opp_selected(self, _event):
        row = self._row(self.opp_table, self.opp_df)
        if row is not None:
            self._explain(row)

    def _explain(self, row: pd.Series):
        """The detail of one opportunity. Every value is written as text (``_display``): a run
        folder or a snapshot can hold any string."""
        raw = self.opp_raw.loc[row.name] if row.name in self.opp_raw.index else row
        t = D.text_md
        mint = str(raw.get("profit_mint", "") or "")
        parts = [pn.pane.Markdown(
            f"## {t(row.get('type', '?'))} opportunity {D.code_md(row.get('opportunity_id', ''))}\n\n"
            f"at {t(row.get('ts', ''))} UTC · expected profit **{float(row.get('expected_profit_sol', float('nan'))):.9f} SOL** "
            f"(gross {t(D.int_text(raw.get('profit_quote')))} base units of "
            f"{t(self.names.symbol(mint)) if mint else '-'} {D.code_md(mint)}, tip "
            f"{t(D.int_text(raw.get('tip_lamports')))} lamports), score {_score_text(row.get('score'))}, "
            f"amount in {t(D.int_text(raw.get('amount_in')))}, out {t(D.int_text(raw.get('amount_out')))}\n\n"
            f"pools: {t(row.get('pools', ''))}\n\nvictim: {D.code_md(row.get('victim_signature', '') or '-')}",
            css_classes=["wb-detail"])]
        parts += self._pool_states(row)
        parts += self._features(row)
        tx = self.tx_df[self.tx_df["tx_index"] == row.get("tx_index")] if "tx_index" in self.tx_df else []
        if len(tx):
            parts += self._tx_detail(tx.iloc[0], heading="trigger transaction")
        self.detail.objects = parts
        self.tabs.active = 2

    def _tx_detail(self, row: pd.Series, heading: str = "transaction") -> list:
        from workbench.dissect import SolanaShred, SolanaTx, read_frame
        t = D.text_md
        out = [pn.pane.Markdown(f"### {t(heading)} {D.code_md(row.get('signature', ''))}\n\n"
                                f"at {t(row.get('ts', ''))} UTC · packet {int(row['packet_index'])}, "
                                f"row {int(row['tx_index'])}, slot {int(row.get('slot', -1))}, "
                                f"{t(row.get('size', '?'))} bytes, priority fee "
                                f"{t(D.int_text(row.get('priority_fee_lamports', 0)))} lamports, Jito tip "
                                f"{t(D.int_text(row.get('jito_tip_lamports', 0)))} lamports",
                                css_classes=["wb-detail"])]
        cap = self.feed.capture if self.feed is not None and self.feed.capture else None
        if cap is None and self.run_dir is not None and self.feed.summary:
            cap = self.feed.summary.get("capture")
        if cap is None and self.link.get("capture"):
            cap = _abs(self.capture.value)
        if not cap or not Path(cap).exists():
            out.append(pn.pane.Alert("The capture of this run is not at hand: no packet to dissect.",
                                     alert_type="warning"))
            return out
        try:
            pkt = read_frame(cap, int(row["packet_index"]))
        except Exception as e:                    # a damaged capture: say it, do not fail the page
            out += _alerts([C.short_error(e)])
            return out
        tx = pkt.getlayer(SolanaTx)
        if tx is not None:
            out.append(pn.widgets.Tabulator(_instr_frame(tx), show_index=False, disabled=True,
                                            layout="fit_data_table", css_classes=["wb-instr-table"],
                                            name="instructions"))
        elif pkt.getlayer(SolanaShred) is not None:
            out.append(pn.pane.Markdown("This transaction came from an entry reassembled from shreds; the packet "
                                        "below is the shred that completed it."))
        out.append(pn.pane.Markdown("#### the packet as scapy dissects it (`pkt.show()`)"))
        out.append(pn.pane.Str(pkt.show(dump=True), css_classes=["wb-scapy"], max_width=1300, max_height=700,
                               styles={"font-family": "monospace", "font-size": "11px", "white-space": "pre",
                                       "overflow": "auto"}))
        return out

    def _pool_states(self, row: pd.Series) -> list:
        if self.swaps is None or self.swaps.empty:
            return [pn.pane.Markdown("_No swaps.parquet in this run: pool states need a market snapshot._")]
        sw = self.swaps
        mine = sw[sw["tx_index"] == row.get("tx_index")]
        if mine.empty:
            return [pn.pane.Markdown("_The trigger transaction has no swap on a known pool._")]
        rows = []
        for idx, s in mine.iterrows():
            prev = sw.loc[:idx - 1] if idx > 0 else sw.iloc[0:0]
            prev = prev[(prev["pool"] == s["pool"]) & (prev["status"].isin(["applied", "crosses_tick"]))]
            if len(prev):
                ra, rb = int(prev.iloc[-1]["reserve_a"]), int(prev.iloc[-1]["reserve_b"])
            elif s["pool"] in self.names.reserves0:
                ra, rb = self.names.reserves0[s["pool"]]
            else:
                ra = rb = None
            # exact integers as text: reserves are uint64, a double would round them
            rows.append({"pool": self.names.pool_label(s["pool"]), "program": s["program"], "status": s["status"],
                         "a_to_b": int(s["a_to_b"]), "amount_in": D.int_text(s["amount_in"]),
                         "amount_out": D.int_text(s["amount_out"]), "reserve_a before": D.int_text(ra),
                         "reserve_b before": D.int_text(rb), "reserve_a after": D.int_text(s["reserve_a"]),
                         "reserve_b after": D.int_text(s["reserve_b"])})
        return [pn.pane.Markdown("#### pool state before and after the trigger's swaps"),
                pn.widgets.Tabulator(pd.DataFrame(rows), show_index=False, disabled=True, layout="fit_data_table",
                                     css_classes=["wb-pool-table"],
                                     text_align={c: "right" for c in rows[0] if c not in ("pool", "program", "status")})]

    def _features(self, row: pd.Series) -> list:
        try:
            from workbench.engine.opps import MODEL_FEATURES
        except ImportError:
            MODEL_FEATURES = tuple(c for c in row.index if str(c).startswith("f_"))
        feats = [f for f in MODEL_FEATURES if f in row.index]
        if not feats:
            return []
        x = np.array([[float(row[f]) for f in feats]])
        df = pd.DataFrame({"feature": feats, "value": x[0]})
        note = ""
        contrib = model_contributions(_abs(self.model.value), x, feats) if self.model.value != NONE else None
        if contrib is None:
            note = ("_Contributions need a model: choose one (`workbench train` + `workbench compile`)._"
                    if self.model.value == NONE else "_This model folder holds no xgboost booster to explain._")
        else:
            df["contribution"] = contrib[0, :-1]
            note = f"bias {contrib[0, -1]:+.4f}; margin {contrib[0].sum():+.4f} (log-odds)"
            df = df.reindex(df["contribution"].abs().sort_values(ascending=False).index)
        return [pn.pane.Markdown("#### features" + (" and their contributions to the score" if contrib is not None
                                                    else "")),
                pn.widgets.Tabulator(df, show_index=False, disabled=True, layout="fit_data_table",
                                     css_classes=["wb-feature-table"]), pn.pane.Markdown(note)]

    def layout(self):
        side = pn.Column(self.capture, self.market, self.model, self.run_btn, self.progress, width=340,
                         height=300, sizing_mode="fixed")
        return pn.Column(
            pn.pane.Markdown("# Solana MEV workbench: explorer"),
            pn.Row(side, pn.Column(self.status, self.alert)),
            self.hist_row,
            self.tabs)


def model_contributions(model_dir: str | None, x: np.ndarray, feats: list[str]) -> np.ndarray | None:
    """SHAP contributions (xgboost ``pred_contribs``) of each feature, bias last; None without a booster."""
    if not model_dir:
        return None
    d = Path(model_dir)
    files = [d] if d.is_file() else sorted([*d.glob("*.ubj"), *d.glob("*.json"), *d.glob("*.model")])
    import xgboost as xgb
    for f in files:
        try:
            b = xgb.Booster()
            b.load_model(str(f))
        except Exception:         # not a booster (a schema or parity file): try the next one
            continue
        names = b.feature_names or feats
        dm = xgb.DMatrix(x if list(names) == list(feats) else
                         np.array([[x[0, feats.index(n)] if n in feats else np.nan for n in names]]),
                         feature_names=list(names))
        c = b.predict(dm, pred_contribs=True)
        if list(names) != list(feats):
            c = np.array([[c[0, list(names).index(f)] if f in names else 0.0 for f in feats] + [c[0, -1]]])
        return c
    return None


def _score_text(v) -> str:
    """A model score, or why there is none."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "none"
    return f"{f:.4f}" if np.isfinite(f) else "none (the run had no model)"


def _instr_frame(tx) -> pd.DataFrame:
    import base58
    keys = [base58.b58encode(k).decode() for k in tx.account_keys]
    rows = []
    for i, ins in enumerate(tx.instructions):
        prog = keys[ins.program_id_index] if ins.program_id_index < len(keys) else f"lookup[{ins.program_id_index}]"
        rows.append({"#": i, "program": C.program_label(prog), "decoded": ins.decoded or "",
                     "accounts": ", ".join(keys[a] if a < len(keys) else f"lookup[{a}]" for a in ins.accounts),
                     "data bytes": len(ins.data)})
    return pd.DataFrame(rows)


def _table(df: pd.DataFrame, css_class: str) -> pn.widgets.Tabulator:
    return pn.widgets.Tabulator(C.browser_safe(df), pagination="remote", page_size=C.TABLE_PAGE_SIZE,
                                show_index=False, disabled=True, selectable=1, height=420,
                                layout="fit_data_table", css_classes=[css_class])


def _empty():
    import pyarrow as pa
    return pa.table({})


LINK_ARGS = ("run", "opportunity", "capture", "market", "model")   # what a live page's link may set


def session_link() -> dict:
    """The ``?run=...&opportunity=...`` a live page's link carries (text; checked like the arguments)."""
    out = {}
    for k in LINK_ARGS:
        v = pn.state.session_args.get(k)
        if v:
            try:
                out[k] = v[0].decode("utf-8")
            except UnicodeDecodeError:
                continue
    return out


def build():
    refused = A.refusal(ARGS.token_file, "explorer")
    if refused:                       # decided before anything is listed, read or run
        return pn.Column(pn.pane.Markdown("# Solana MEV workbench: explorer\n\nThis page is closed."),
                         *_alerts([refused]))
    link = session_link()
    ex = Explorer(link)
    run = link.get("run") or ARGS.run
    if run and not C.missing_input("run", run):
        pn.state.onload(lambda: ex.open_run(run))
    return ex.layout()


build().servable(title="workbench explorer")
