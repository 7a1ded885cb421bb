"""The pages' Bokeh plots: latency histograms with their CDF, the score histogram, profit and
rate lines. Data arrive as Bokeh source columns; nothing here reads files or runs.

Titles hold the histogram's name only and its percentiles go to a second line, so the
p99.9 is never cut at a plot's width; the percentile labels are horizontal and stacked one
above the other, so close marks never write over each other; the log axis asks for few
ticks, labelled in ns/us/ms/s.
"""

from __future__ import annotations

import numpy as np

PLOT_W, PLOT_H = 400, 260           # px of a histogram
CDF_W = 260                         # px of the CDF beside it
PROFIT_POINTS_PER_UPDATE = 20       # points per type a page update adds to the profit lines
PROFIT_POINTS_MAX = 5_000           # points per profit line kept in the browser (older ones roll off)
RATE_BINS_MAX = 200                 # bins of the rate lines (wider bins as a run grows longer)
RATE_BIN_MIN_NS = 100_000_000       # narrowest rate bin: 100 ms of event time
SCORE_BINS = 20                     # bins of the score histogram over [0, 1]
LOG_TICKS = 4                       # ticks asked of a log axis (more overlap at this width)
CDF_LOG_TICKS = 3                   # the same, on the narrower CDF
MARK_LABEL_STEP_PX = 14             # vertical distance between stacked percentile labels

# a log axis of ns labelled in the unit that fits (Bokeh runs this in the browser)
_NS_TICK_JS = """
const v = tick;
const short = (x) => String(Number(x.toPrecision(3)));   // 100 stays 100, 2.50 becomes 2.5
if (v >= 1e9) return short(v / 1e9) + ' s';
if (v >= 1e6) return short(v / 1e6) + ' ms';
if (v >= 1e3) return short(v / 1e3) + ' us';
return Math.round(v) + ' ns';
"""


def engine_hist_names() -> tuple[str, ...]:
    """The engine's histograms (workbench/engine/state.py HIST_NAMES)."""
    from workbench.engine.state import HIST_NAMES
    return tuple(HIST_NAMES)


def hist_columns(lows: np.ndarray, highs: np.ndarray, counts: np.ndarray) -> dict:
    """Bokeh source columns of histogram buckets (each bar from its low to one past its high)."""
    return {"left": lows.astype(float), "right": (highs + 1).astype(float), "top": counts.astype(float)}


def cdf_columns(data: dict) -> dict:
    """Step CDF of histogram columns: at each bucket's right edge, the fraction of values at or below."""
    top = np.asarray(data["top"], float)
    total = top.sum()
    if total <= 0:
        return {"x": [], "y": []}
    left, right = np.asarray(data["left"], float), np.asarray(data["right"], float)
    cum = np.cumsum(top) / total
    x = np.empty(2 * len(top))
    y = np.empty(2 * len(top))
    x[0::2], x[1::2] = left, right
    y[0::2] = np.concatenate([[0.0], cum[:-1]])
    y[1::2] = cum
    return {"x": x, "y": y}


def _log_fraction(v: float, data: dict) -> float:
    """Where ``v`` lies on a log axis spanning the histogram's buckets, 0 (left) to 1 (right)."""
    if len(data["left"]) == 0:
        return 0.0
    lo, hi = max(1.0, float(np.min(data["left"]))), max(2.0, float(np.max(data["right"])))
    if hi <= lo:
        return 0.0
    return float((np.log(max(v, lo)) - np.log(lo)) / (np.log(hi) - np.log(lo)))


def hist_views(run) -> dict:
    """{name: (bokeh columns, {'p50','p99','p99.9'} ns)} of a BackgroundRun's histograms."""
    return {name: (hist_columns(lows, highs, counts), marks)
            for name, (lows, highs, counts, marks) in run.histograms().items()}


def fmt_ns(v: float) -> str:
    if v < 0:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{int(v)} ns"


def _ns_axis(axis, ticks: int = LOG_TICKS) -> None:
    from bokeh.models import CustomJSTickFormatter, LogTicker
    axis.ticker = LogTicker(desired_num_ticks=ticks)
    axis.formatter = CustomJSTickFormatter(code=_NS_TICK_JS)
    axis.major_label_orientation = 0
    axis.major_label_text_font_size = "8pt"


class HistPlot:
    """A log-x histogram of ns values with p50 / p99 / p99.9 marked, and its CDF beside it."""

    MARKS = (("p50", "#2a9d8f"), ("p99", "#c9a227"), ("p99.9", "#e76f51"))

    def __init__(self, name: str, title: str | None = None, width: int = 0, height: int = 0, cdf: bool = True):
        width, height = width or PLOT_W, height or PLOT_H
        from bokeh.models import ColumnDataSource, Label, Span, Title
        from bokeh.plotting import figure
        self.name = name
        self.title = title or name
        self.source = ColumnDataSource({"left": [], "right": [], "top": []}, name=f"hist_{name}")
        fig = figure(title=self.title, x_axis_type="log", height=height, width=width,
                     tools="pan,wheel_zoom,box_zoom,reset,hover", tooltips=[("from", "@left{0,0} ns"),
                                                                             ("to", "@right{0,0} ns"),
                                                                             ("count", "@top{0,0}")],
                     toolbar_location="right", name=f"fig_{name}")
        fig.quad(left="left", right="right", top="top", bottom=0, source=self.source, fill_color="#457b9d",
                 line_color="#1d3557", alpha=0.8)
        self.marks_title = Title(text="", text_font_size="9pt", text_font_style="normal", text_color="#444444")
        fig.add_layout(self.marks_title, "above")
        _ns_axis(fig.xaxis[0])
        fig.yaxis.axis_label = "count"
        fig.yaxis.formatter.use_scientific = False
        self.spans, self.labels = {}, {}
        for k, (q, color) in enumerate(self.MARKS):
            s = Span(location=1, dimension="height", line_color=color, line_width=2, line_dash="dashed",
                     visible=False)
            # stacked from the top of the frame, one row per mark, written right of its line
            lab = Label(x=1, y=height - 110 - k * MARK_LABEL_STEP_PX, y_units="screen", text="", text_color=color,
                        text_font_size="9pt", x_offset=3, visible=False, background_fill_color="white",
                        background_fill_alpha=0.7)
            fig.add_layout(s)
            fig.add_layout(lab)
            self.spans[q], self.labels[q] = s, lab
        self.figure = fig
        self.cdf_source = self.cdf = None
        if cdf:
            self.cdf_source = ColumnDataSource({"x": [], "y": []}, name=f"cdf_{name}")
            c = figure(title="CDF", x_axis_type="log", height=height, width=CDF_W, y_range=(0, 1.02),
                       tools="pan,wheel_zoom,reset,hover", tooltips=[("at or below", "@x{0,0} ns"),
                                                                     ("fraction", "@y{0.0000}")],
                       toolbar_location=None, name=f"fig_cdf_{name}")
            c.line("x", "y", source=self.cdf_source, line_width=2, color="#1d3557")
            c.add_layout(Title(text=" ", text_font_size="9pt"), "above")     # the same height as the histogram's
            _ns_axis(c.xaxis[0], CDF_LOG_TICKS)
            for q, color in self.MARKS:
                c.add_layout(Span(location=float(q[1:]) / 100, dimension="width", line_color=color,
                                  line_dash="dotted", line_width=1))
            self.cdf = c

    def update(self, data: dict, marks: dict) -> None:
        """``data``: left/right/top columns; ``marks``: {'p50': ns, 'p99': ns, 'p99.9': ns}."""
        if len(data["top"]) != len(self.source.data["top"]) or list(data["top"]) != list(self.source.data["top"]):
            self.source.data = data
            if self.cdf_source is not None:
                self.cdf_source.data = cdf_columns(data)
        for q, _c in self.MARKS:
            v = marks.get(q, -1)
            ok = v is not None and v > 0
            self.spans[q].visible = ok
            self.labels[q].visible = ok
            if ok:
                self.spans[q].location = float(v)
                lab = self.labels[q]
                lab.x = float(v)
                lab.text = f"{q} {fmt_ns(v)}"
                # in the right part of the axis the text goes left of its line, so it is never cut
                right_half = _log_fraction(v, data) > 0.5
                lab.text_align, lab.x_offset = ("right", -3) if right_half else ("left", 3)
        shown = [f"{q} {fmt_ns(marks[q])}" for q, _c in self.MARKS if (marks.get(q) or -1) > 0]
        self.marks_title.text = " · ".join(shown)


def score_hist_data(scores: np.ndarray) -> dict:
    s = scores[np.isfinite(scores)]
    counts, edges = np.histogram(s, bins=SCORE_BINS, range=(0.0, 1.0))
    return {"left": edges[:-1], "right": edges[1:], "top": counts.astype(float)}


def profit_lines(df, t0_ns: int) -> dict:
    """{type: (seconds since the start, cumulative expected profit SOL)}."""
    out = {}
    if df.empty or "type" not in df:
        return out
    for typ, g in df.groupby("type", observed=True):
        g = g.sort_values("ts_ns")
        out[str(typ)] = ((g["ts_ns"].to_numpy() - t0_ns) / 1e9, g["expected_profit_sol"].cumsum().to_numpy())
    return out


def thin(n: int, most: int = 0) -> np.ndarray:
    """Indexes of at most ``most`` (PROFIT_POINTS_PER_UPDATE) of ``n`` points, evenly spread, the last kept."""
    most = most or PROFIT_POINTS_PER_UPDATE
    if n <= most:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, most).round().astype(np.int64))


class RatePlot:
    """Transactions and opportunities per second over event time (from the rows themselves, so a
    finished run, a store and a live source all draw it), in RATE_BINS_MAX bins at most."""

    LINES = (("transactions_per_s", "transactions/s", "#2a9d8f"), ("opportunities_per_s", "opportunities/s",
                                                                   "#e63946"))

    def __init__(self, width: int = 0, height: int = 0):
        from bokeh.models import ColumnDataSource, LinearAxis, Range1d
        from bokeh.plotting import figure
        self.source = ColumnDataSource(self._empty(), name="rates")
        f = figure(title="rates over event time", height=height or PLOT_H, width=width or PLOT_W,
                   tools="pan,wheel_zoom,reset,hover", tooltips=[("s", "@t{0.000}"), ("tx/s", "@transactions_per_s{0,0}"),
                                                                 ("opps/s", "@opportunities_per_s{0,0.0}")],
                   toolbar_location="right")
        f.line("t", "transactions_per_s", source=self.source, color=self.LINES[0][2], legend_label=self.LINES[0][1],
               line_width=2)
        # opportunities are far fewer than transactions: their own axis on the right
        f.extra_y_ranges = {"opps": Range1d(0, 1)}
        f.add_layout(LinearAxis(y_range_name="opps", axis_label="opportunities/s"), "right")
        f.line("t", "opportunities_per_s", source=self.source, color=self.LINES[1][2], legend_label=self.LINES[1][1],
               line_width=2, y_range_name="opps")
        f.xaxis.axis_label = "event time since the first packet (s)"
        f.yaxis[0].axis_label = "transactions/s"
        for ax in f.yaxis:
            ax.formatter.use_scientific = False
        # the legend below the frame: inside it, it hides the lines it names
        from bokeh.models import Legend
        legend = f.legend[0]
        f.center = [r for r in f.center if not isinstance(r, Legend)]
        legend.orientation = "horizontal"
        legend.label_text_font_size = "8pt"
        legend.padding = legend.margin = 2
        f.add_layout(legend, "below")
        self.figure = f

    def _empty(self) -> dict:
        return {"t": [], **{k: [] for k, _l, _c in self.LINES}}

    def update(self, tx_ts_ns, opp_ts_ns, t0_ns: int) -> None:
        tx = np.asarray(tx_ts_ns if tx_ts_ns is not None else [], np.int64)
        op = np.asarray(opp_ts_ns if opp_ts_ns is not None else [], np.int64)
        both = np.concatenate([tx, op])
        if not len(both):
            return self.clear()
        lo, hi = int(both.min()), int(both.max())
        width = max(RATE_BIN_MIN_NS, -(-(hi - lo + 1) // RATE_BINS_MAX))
        edges = np.arange(lo, hi + width + 1, width, dtype=np.int64)
        per_s = 1e9 / width
        tx_n = np.histogram(tx, edges)[0] * per_s
        op_n = np.histogram(op, edges)[0] * per_s
        self.source.data = {"t": (edges[:-1] - t0_ns) / 1e9, "transactions_per_s": tx_n, "opportunities_per_s": op_n}
        self.figure.extra_y_ranges["opps"].end = max(1.0, float(op_n.max()) * 1.1)

    def clear(self) -> None:
        self.source.data = self._empty()
