"""Live view of the engine: rates, latency histograms, scores, profit, and the opportunity table.

    panel serve panel_apps/live.py panel_apps/explorer.py --address 127.0.0.1 --args --capture captures/demo.pcapng
    ... --args --capture CAP --market MKT [--model MODEL] [--loop N]
    ... --args --udp-ports 8003            # live, plain UDP sockets
    ... --args --iface eth1                # live, AF_PACKET (root)
    ... --args --store chdb:///abs/data/clickhouse   # watch a store
    ... --args --run runs/x                # a finished run
    ... --args --api http://127.0.0.1:8000 [--api-token-file FILE]   # a running `workbench serve`

The engine runs on a background thread (``workbench.runner.BackgroundRun``); pages read it
from a periodic callback. The server's first run is shared by the pages that open while it
goes on; a page's Restart (or its Loop, at the end of each run) starts a run of its own with
the same source, so a page opened after the end is never left with a frozen one. Tables use
remote pagination: the browser gets one page, so the page stays responsive with many rows.
Every value from a file or the store reaches the page as text (``_display``); a server
reachable from other hosts needs a token (``_access``). With ``--api URL`` the page starts no
engine: it reads a running ``workbench serve`` (``_api_feed``: REST for the history, the WebSocket
for the stream, /v1/stats and /v1/latency for rates and histograms).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _access as A  # noqa: E402
import _api_feed as F  # noqa: E402
import _common as C  # noqa: E402
import _display as D  # noqa: E402

pn.extension("tabulator", sizing_mode="stretch_width", notifications=False)

API, _PAGE_ARGV = F.parse_api_args(sys.argv[1:])      # --api URL: a running server instead of an engine
ARGS = C.parse_args(_PAGE_ARGV, "live.py")
SOURCE = (f"server `{API.api}`" if API.api else f"replay of `{ARGS.capture}`" + (f" at {ARGS.speed}x" if ARGS.speed else " (as fast as possible)")
          if ARGS.capture else f"live on `{ARGS.iface}`" if ARGS.iface else
          f"live on UDP ports `{ARGS.udp_ports}`" if ARGS.udp_ports else f"store `{ARGS.store}`" if ARGS.store
          else f"run `{ARGS.run}`" if ARGS.run else "nothing")
RESTART_WAIT_S = 10.0           # a page's own run is given this long to stop before a restart
PAGINATION = None if ARGS.pagination == "local" else "remote"
USAGE = """Give the app a source:

```
panel serve panel_apps/live.py --address 127.0.0.1 --args --capture captures/demo.pcapng --speed 1.0 [--market DIR] [--model FILE]
panel serve panel_apps/live.py --address 127.0.0.1 --args --udp-ports 8003       # or --iface eth1 (root)
panel serve panel_apps/live.py --address 127.0.0.1 --args --store chdb:///abs/path/data/clickhouse
panel serve panel_apps/live.py --address 127.0.0.1 --args --run runs/x
panel serve panel_apps/live.py --address 127.0.0.1 --args --api http://127.0.0.1:8000 [--api-token-file FILE]
```"""


def message_page(title: str, messages: list[str], kind: str = "danger", usage: bool = True):
    return pn.Column(pn.pane.Markdown(f"# Solana MEV workbench: live\n\n{D.text_md(title)}"),
                     *[pn.pane.Alert(D.message_md(m), alert_type=kind, css_classes=["wb-message"]) for m in messages],
                     *([pn.pane.Markdown(USAGE)] if usage else []))


class LivePage:
    def __init__(self, feed: C.BackgroundRun, names: D.SnapshotNames, token: str = ""):
        self.feed = feed
        self.own = False                 # whether this page started ``feed`` (and so may stop it)
        self.restarts = 0
        self.names = names
        self.token = token
        self.status = pn.pane.Markdown("starting", css_classes=["wb-status"])
        self.progress = pn.indicators.Progress(value=0, max=1000, width=240, bar_color="info")
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["wb-message"])
        self.restart_btn = pn.widgets.Button(name="Restart", button_type="primary", width=110,
                                             css_classes=["wb-restart"], disabled=feed.mode not in C.RESTARTABLE)
        self.restart_btn.on_click(lambda _e: self.restart())
        self.loop_box = pn.widgets.Checkbox(name="loop (start again at the end)", value=False, width=230,
                                            css_classes=["wb-loop"], disabled=feed.mode not in C.RESTARTABLE)
        self.loop_box.param.watch(self._loop_turned_on, "value")
        num = dict(font_size="28pt", title_size="11pt", format="{value:,.0f}")
        self.n_pkt = pn.indicators.Number(name="packets/s", value=0, **num)
        self.n_tx = pn.indicators.Number(name="transactions/s", value=0, **num)
        self.n_opp = pn.indicators.Number(name="opportunities/s", value=0, **num)
        self.n_drop = pn.indicators.Number(name="drops", value=0, **num)
        self.totals = pn.pane.Markdown("", css_classes=["wb-totals"])
        self.hists: dict[str, C.HistPlot] = {}
        self.plots = pn.GridBox(ncols=2)
        self.rate_plot = C.RatePlot()
        self._make_score_plot()
        self._make_profit_plot()
        self._make_tables()
        self.cb = None
        # one plot (and its CDF) per engine histogram from the start: panes added while data stream
        # make the browser chase models it does not know yet
        self.hist_panes = {}
        for name in C.engine_hist_names():
            self._add_hist(name)
        self.plots.append(pn.Row(fixed(self.rate_plot.figure), fixed(self.score_fig, width=C.PLOT_W * 2 // 3)))
        self.plots.append(pn.Row(fixed(self.profit_fig), self.score_note))
        self._reset()

    def _add_hist(self, name: str) -> None:
        h = self.hists[name] = C.HistPlot(name, name.replace("_", " "))
        h.figure.visible = h.cdf.visible = False         # shown once it has data
        self.hist_panes[name] = pn.Row(fixed(h.figure), fixed(h.cdf, width=C.CDF_W))
        self.plots.append(self.hist_panes[name])

    def _reset(self) -> None:
        """Forget what the page showed: a restart starts from empty tables and plots."""
        self.pos = {"opportunities": 0, "tx_features": 0}
        self.opp_df = C.opp_frame(pa_empty())
        self.tx_df = C.tx_frame(pa_empty())
        self.profit_sum: dict[str, float] = {}
        self.t0_ns: int | None = None
        for src in self.profit_src.values():
            src.data = {"t": [], "sol": []}
        self.score_src.data = {"left": [], "right": [], "top": []}
        self.rate_plot.clear()
        for h in self.hists.values():
            h.source.data = {"left": [], "right": [], "top": []}
            h.cdf_source.data = {"x": [], "y": []}
        for table, df in ((self.opp_table, self.opp_df), (self.tx_table, self.tx_df)):
            table.value = C.browser_safe(df)
        self.alert.visible = False

    # -- widgets -----------------------------------------------------------------------
    def _make_score_plot(self):
        from bokeh.models import ColumnDataSource
        from bokeh.plotting import figure
        self.score_src = ColumnDataSource({"left": [], "right": [], "top": []}, name="hist_score")
        f = figure(title="model score", height=C.PLOT_H, width=C.PLOT_W * 2 // 3, x_range=(0, 1), tools="hover,reset",
                   tooltips=[("score", "@left{0.00}-@right{0.00}"), ("count", "@top")], toolbar_location="right")
        f.quad(left="left", right="right", top="top", bottom=0, source=self.score_src, fill_color="#6a4c93",
               alpha=0.8)
        f.xaxis.axis_label = "score"
        self.score_note = pn.pane.Markdown("", css_classes=["wb-score-note"], width=260)
        self.score_fig = f

    def _make_profit_plot(self):
        from bokeh.models import ColumnDataSource
        from bokeh.plotting import figure
        f = figure(title="cumulative expected profit by type (SOL)", height=C.PLOT_H, width=C.PLOT_W,
                   tools="pan,wheel_zoom,reset,hover", toolbar_location="right")
        self.profit_src = {}
        for typ, color in zip(C.OPPORTUNITY_TYPES, ("#1d3557", "#e63946", "#2a9d8f")):
            src = ColumnDataSource({"t": [], "sol": []}, name=f"profit_{typ}")
            f.line("t", "sol", source=src, color=color, legend_label=typ, line_width=2)
            self.profit_src[typ] = src
        f.xaxis.axis_label = "event time since the first packet (s)"
        f.legend.location = "top_left"
        self.profit_fig = f

    def _make_tables(self):
        self.type_sel = pn.widgets.Select(name="type", options=["all", *C.OPPORTUNITY_TYPES], value="all", width=150)
        self.score_rng = pn.widgets.RangeSlider(name="score (full range keeps unscored rows)", start=0.0, end=1.0,
                                                value=(0.0, 1.0), step=0.01, width=240)
        self.min_profit = pn.widgets.FloatInput(name="min expected profit (SOL)", value=None, step=0.001,
                                                width=180, placeholder="any")
        self.opp_table = self._opp_table(C.browser_safe(C.opp_frame(pa_empty())))
        self.opp_count = pn.pane.Markdown("", css_classes=["wb-opp-count"])
        self.prog_sel = pn.widgets.Select(name="program", options=["all"], value="all", width=220)
        self.min_fee = pn.widgets.IntInput(name="min priority fee (lamports)", value=0, start=0, width=180)
        self.tx_table = self._tx_table(C.browser_safe(C.tx_frame(pa_empty())))
        self.tx_count = pn.pane.Markdown("", css_classes=["wb-tx-count"])
        for w in (self.type_sel, self.score_rng, self.min_profit):
            w.param.watch(lambda *_: self._counts(), "value")
        for w in (self.prog_sel, self.min_fee):
            w.param.watch(lambda *_: self._counts(), "value")
        self.opp_note = pn.pane.Alert("", alert_type="info", visible=False, css_classes=["wb-opp-note"])
        self.opp_col = pn.Column(pn.Row(self.type_sel, self.score_rng, self.min_profit), self.opp_count,
                                 self.opp_note, self.opp_table)
        self.tx_col = pn.Column(pn.Row(self.prog_sel, self.min_fee), self.tx_count, self.tx_table)

    def _opp_table(self, value: pd.DataFrame) -> pn.widgets.Tabulator:
        """The opportunities' table showing ``value`` (browser-safe), with the page's filter."""
        t = pn.widgets.Tabulator(value, pagination=PAGINATION, page_size=C.TABLE_PAGE_SIZE,
                                 show_index=False, disabled=True, height=520, layout="fit_data_table",
                                 hidden_columns=self._hidden(value, C.OPP_SHOWN),
                                 formatters=C.OPP_FORMATTERS, text_align=C.INT_ALIGN,
                                 css_classes=["wb-opp-table"], sortable=True)
        t.add_filter(pn.bind(C.filter_opps, type_=self.type_sel, score=self.score_rng, min_profit=self.min_profit))
        return t

    def _tx_table(self, value: pd.DataFrame) -> pn.widgets.Tabulator:
        """The transactions' table showing ``value`` (browser-safe), with the page's filter."""
        t = pn.widgets.Tabulator(value, pagination=PAGINATION, page_size=C.TABLE_PAGE_SIZE,
                                 show_index=False, disabled=True, height=520, layout="fit_data_table",
                                 hidden_columns=self._hidden(value, C.TX_SHOWN), css_classes=["wb-tx-table"])
        t.add_filter(pn.bind(C.filter_txs, program=self.prog_sel, min_fee=self.min_fee))
        return t

    @staticmethod
    def _hidden(df: pd.DataFrame, shown) -> list[str]:
        return [c for c in df.columns if c not in shown]

    def layout(self):
        tables = pn.Tabs(("Opportunities", self.opp_col), ("Transactions", self.tx_col), dynamic=False)
        return pn.Column(
            pn.pane.Markdown(f"# Solana MEV workbench: live\n\nSource: {D.message_md(SOURCE)}"),
            pn.Row(self.status, self.progress, self.restart_btn, self.loop_box),
            self.alert,
            pn.Row(self.n_pkt, self.n_tx, self.n_opp, self.n_drop),
            self.totals,
            self.plots,
            tables,
        )

    # -- runs --------------------------------------------------------------------------
    def start(self):
        self.tick()
        self._poll()

    def _poll(self):
        if self.cb is None:
            self.cb = pn.state.add_periodic_callback(self.tick, period=C.UPDATE_MS)

    def restart(self):
        """A new run of the same source for this page (the shared one goes on for other pages)."""
        if self.feed.mode not in C.RESTARTABLE:
            return
        if self.feed.running:
            if not self.own and self.feed.mode == "live":
                self._show_error("The live source is in use by the server's run; restart when it has ended.")
                return
            if self.own:
                if not C.stop_and_wait(self.feed, RESTART_WAIT_S):
                    self._show_error(f"The page's run did not stop within {RESTART_WAIT_S:.0f} s; try again.")
                    return
        self.restarts += 1
        self.feed = C.run_again(self.feed, C.restart_out(self.feed, ARGS, self.restarts)).start()
        self.own = True
        self._reset()
        self.status.object = f"**restarting** · restart {self.restarts}"
        self._poll()

    def stop_own(self):
        if self.own:
            self.feed.stop()

    def _show_error(self, msg: str):
        self.alert.object, self.alert.visible = D.message_md(msg), True

    # -- updates -----------------------------------------------------------------------
    def tick(self):
        try:
            self._tick()
        except Exception as e:          # a page shows what went wrong; the server log has the traceback
            import traceback
            traceback.print_exc()
            self._show_error(f"The page could not update: {C.short_error(e)}")

    def _tick(self):
        f = self.feed
        # running is read BEFORE the phase: once the engine thread is gone its phase is final, so
        # the tick that stops polling (below) shows it (read the other way round, a run ending
        # between the two reads left the page on "replaying" for good)
        running = f.running
        done_note = "" if running else " (rates: the whole run's averages)" if f.result is not None else ""
        self.status.object = f"**{D.text_md(f.phase)}**{done_note}" + (
            f" · restart {self.restarts}" if self.restarts else "")
        self.progress.value = int(1000 * f.progress) if f.mode in ("replay", "api") else (-1 if running else 1000)
        if f.error:
            self._show_error(f.error)
        r = f.update_rates()
        self.n_pkt.value, self.n_tx.value, self.n_opp.value, self.n_drop.value = (
            r.packets_per_s, r.transactions_per_s, r.opportunities_per_s, r.drops)
        self.totals.object = (f"totals: **{r.packets:,}** packets, **{r.transactions:,}** transactions, "
                              f"**{r.opportunities:,}** opportunities")
        st = f.live_status
        if st is not None and st.latency_ns:          # live: kernel timestamp -> scored, since the last status
            lat = " · ".join(f"{D.text_md(k)} {C.fmt_ns(v)}" for k, v in st.latency_ns.items()
                             if v is not None and v >= 0)
            self.totals.object += f"; kernel → scored latency: {lat}" if lat else ""
        if f.mode == "api":                           # a server: what came over REST and what the stream missed
            self.totals.object += (f"; from the server: **{f.history_rows:,}** stored opportunities, then the "
                                   f"stream" + (f" (told it missed **{f.missed:,}** items)" if f.missed else ""))
        if self._stream_tables():
            self.rate_plot.update(self.tx_df.get("ts_ns"), self.opp_df.get("ts_ns"), self.t0_ns or 0)
        self._hists()
        self._counts()
        if not running and self.cb is not None and f.mode != "store":
            # the run is over and everything is in: one last look, then stop polling (or loop)
            tabs, _ = f.tables("opportunities", self.pos["opportunities"])
            txs, _ = f.tables("tx_features", self.pos["tx_features"])
            if not tabs and not txs:
                if self.loop_box.value and not f.error and f.mode in C.RESTARTABLE:
                    self.restart()
                    return
                self.cb.stop()
                self.cb = None

    def _loop_turned_on(self, event):
        """Loop ticked after the run ended: start again now (and at each end)."""
        if event.new and not self.feed.running and self.cb is None:
            self.restart()

    def _new_rows(self, name: str):
        tabs, self.pos[name] = self.feed.tables(name, self.pos[name])
        if not tabs:
            return None
        import pyarrow as pa
        return pa.concat_tables(tabs, promote_options="permissive") if len(tabs) > 1 else tabs[0]

    def _detail_links(self, df: pd.DataFrame) -> pd.DataFrame:
        """A link per opportunity to the explorer's detail of it (the run folder is read there), as the
        third column."""
        run_dir = self.feed.run_dir if self.feed.mode == "run" else self.feed.out_dir
        if not run_dir or "opportunity_id" not in df:
            return df
        df["detail"] = [C.explorer_link(run_dir, oid, self.feed, ARGS, self.token) for oid in df["opportunity_id"]]
        return df[[c for c in C.OPP_SHOWN if c in df.columns] + [c for c in df.columns if c not in C.OPP_SHOWN]]

    def _stream_tables(self) -> bool:
        """New rows into the tables and plots; whether there were any."""
        t = self._new_rows("tx_features")
        got = t is not None
        if t is not None:
            df = C.tx_frame(t)
            if self.t0_ns is None and len(df):
                self.t0_ns = int(df["ts_ns"].iloc[0])
            self.tx_df = df if self.tx_df.empty else pd.concat([self.tx_df, df], ignore_index=True)
            progs = {p for s in df["programs"] for p in s.split(", ") if p}
            known = set(self.prog_sel.options.values()) if isinstance(self.prog_sel.options, dict) else set()
            if progs - known:
                opts = {C.program_label(p): p for p in progs | (known - {"all"})}
                self.prog_sel.options = {"all": "all", **dict(sorted(opts.items()))}
            self.tx_table = self._stream(self.tx_table, df, self.tx_col, self._tx_table)
        t = self._new_rows("opportunities")
        got = got or t is not None
        if t is not None:
            df = self._detail_links(C.opp_frame(t, self.names))
            if self.t0_ns is None and len(df):
                self.t0_ns = int(df["ts_ns"].iloc[0])
            self.opp_df = df if self.opp_df.empty else pd.concat([self.opp_df, df], ignore_index=True)
            self.opp_table = self._stream(self.opp_table, df, self.opp_col, self._opp_table)
            for typ, (ts, cum) in C.profit_lines(df, self.t0_ns or 0).items():
                if typ in self.profit_src:
                    base = self.profit_sum.get(typ, 0.0)
                    keep = C.thin(len(ts))            # a line's shape needs few points; the browser thanks us
                    self.profit_src[typ].stream({"t": ts[keep], "sol": cum[keep] + base},
                                                rollover=C.PROFIT_POINTS_MAX)
                    self.profit_sum[typ] = base + float(cum[-1])
            scores = self.opp_df["score"].to_numpy(dtype=float)
            self.score_src.data = C.score_hist_data(scores)
            self.score_note.object = ("" if np.isfinite(scores).any() else
                                      "No scores: the run has no model (`--model FILE` from `workbench compile`).")
        if self.opp_df.empty:
            f = self.feed
            msg = ("No opportunities yet." if f.running else
                   "This run found no opportunities." + ("" if f.market or f.mode != "replay" else
                                                         " Detection needs a market snapshot: pass `--market DIR`."))
            self.opp_note.object, self.opp_note.visible = D.message_md(msg), True
        else:
            self.opp_note.visible = False
        return got

    def _stream(self, table, df, column, make):
        """New rows into a table; the table that shows them (the first rows replace the empty value,
        in a new table when they change the columns' types: ``C.retyped_table``; kept, its columns and
        so its hidden ones are the same)."""
        df = C.browser_safe(df)
        if table.value.empty:
            return C.retyped_table(table, df, column, make)
        table.stream(df, follow=False)
        return table

    def _hists(self):
        for name, (data, marks) in C.hist_views(self.feed).items():
            if name not in self.hists:
                self._add_hist(name)
            h = self.hists[name]
            h.update(data, marks)
            if not h.figure.visible:
                h.figure.visible = h.cdf.visible = True

    def _counts(self):
        n_opp = len(C.filter_opps(self.opp_df, self.type_sel.value, self.score_rng.value, self.min_profit.value))
        self.opp_count.object = f"**{n_opp:,}** of {len(self.opp_df):,} opportunities match"
        n_tx = len(C.filter_txs(self.tx_df, self.prog_sel.value, self.min_fee.value))
        self.tx_count.object = f"**{n_tx:,}** of {len(self.tx_df):,} transactions match"


def fixed(fig, width: int = 0, **kw):
    return pn.pane.Bokeh(fig, sizing_mode="fixed", width=width or C.PLOT_W, height=C.PLOT_H, **kw)


def pa_empty():
    import pyarrow as pa
    return pa.table({})


def build():
    refused = A.refusal(ARGS.token_file, "live")
    if refused:                       # decided before any run starts or any file is read
        return message_page("This page is closed.", [refused], usage=False)
    if API.api:
        feed, problems = F.feed_from_args(API, key=f"live-api:{API.api}")
    else:
        feed, problems = C.run_from_args(ARGS, key=f"live:{sys.argv[1:]}")
    if problems:
        return message_page("The app cannot start its source:", problems)
    if feed is None:
        return message_page("No source given.", ["Nothing to show: pass a capture, an interface, a store or a run."],
                            kind="warning")
    page = LivePage(feed, C.SnapshotNames(ARGS.market), A.session_token())
    pn.state.onload(page.start)
    pn.state.on_session_destroyed(lambda _ctx: page.stop_own())
    return page.layout()


build().servable(title="workbench live")
