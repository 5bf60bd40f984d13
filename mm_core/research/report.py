"""The research report as one self-contained HTML file (inline CSS, plots as base64 PNG, no scripts).

Why self-contained: the report is attached to decisions and opened months later, offline, on any
machine; a CDN link or a side file is one more thing to lose.
"""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime, timezone
from typing import Any, Optional

import numpy as np

from mm_core.research.evaluation import MODEL_NAMES
from mm_core.research.study import StudyResult

PLOT_FEATURES = ("spread_ticks", "imbalance", "depth_imbalance", "rv_1s", "rv_5s", "rv_30s", "tfi_1s", "tfi_5s",
                 "time_since_update_s")
_COLORS = {"naive": "#888888", "weighted_mid": "#d62728", "microprice": "#1f77b4", "linear": "#2ca02c"}

_CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:13px} th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} .pass{color:#1a7f37;font-weight:600} .fail{color:#c62828;font-weight:600}
.verdict{padding:12px 16px;border-radius:6px;margin:12px 0;font-size:15px}
.go{background:#e6f4ea;border:1px solid #1a7f37} .nogo{background:#fdecea;border:1px solid #c62828}
.muted{color:#666;font-size:12px} img{max-width:100%}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    try:
        f = float(x)
    except (TypeError, ValueError):
        return _esc(x)
    if not math.isfinite(f):
        return "–"
    if f != 0 and (abs(f) < 1e-3 or abs(f) >= 1e6):
        return f"{f:.{max(digits - 1, 1)}e}"
    return f"{f:.{digits}g}"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return '<img alt="plot" src="data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode() + '">'


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def calibration_plot(res: StudyResult) -> str:
    """Binned predicted vs realised move, one panel per horizon."""
    ev = res.evaluation
    if ev is None:
        return ""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(ev.horizons), figsize=(5.2 * len(ev.horizons), 4.2), squeeze=False)
    for ax, h in zip(axes[0], ev.horizons):
        lim = 0.0
        for m in MODEL_NAMES:
            s = ev.score(m, h)
            if not s.calib_bins:
                continue
            x = [b[0] for b in s.calib_bins]
            y = [b[1] for b in s.calib_bins]
            lim = max(lim, max(abs(v) for v in x + y))
            ax.plot(x, y, "o-", color=_COLORS.get(m), label=f"{m} (slope {s.calib_slope:.2f})", ms=4)
        lim = lim or 1.0
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8, label="perfect")
        ax.axhline(0, color="#ccc", lw=0.6)
        ax.axvline(0, color="#ccc", lw=0.6)
        ax.set_title(f"horizon {h:g} s (out of sample)")
        ax.set_xlabel("predicted move (ticks), decile mean")
        ax.set_ylabel("realised move (ticks), mean")
        ax.legend(fontsize=8)
    return _png(fig)


def feature_plot(res: StudyResult) -> str:
    """Histograms of the grid features (1st-99th percentile range)."""
    plt = _pyplot()
    names = [n for n in PLOT_FEATURES if n in res.grid.columns]
    cols = 3
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(13, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        x = res.grid[name].to_numpy().astype(float)
        x = x[np.isfinite(x)]
        if x.size:
            lo, hi = np.percentile(x, [1, 99])
            if hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
            ax.hist(np.clip(x, lo, hi), bins=60, color="#4c78a8")
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def microprice_plot(res: StudyResult) -> str:
    """The fitted micro-price adjustment g*(I) per spread state (final model, first horizon)."""
    if not res.models:
        return ""
    first = next(iter(res.models.values()))
    micro = first.get("microprice")
    table = getattr(micro, "table", None)
    if table is None:
        return ""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    edges = np.concatenate(([0.0], table.imbalance_edges, [1.0]))
    centers = 0.5 * (edges[:-1] + edges[1:])
    for s in range(min(table.n_spread, 6)):
        ax.plot(centers, table.adjustment_ticks[s], "o-", ms=3, label=f"spread {s + 1}{'+' if s == table.n_spread - 1 else ''} ticks")
    ax.axhline(0, color="#ccc", lw=0.6)
    ax.set_xlabel("imbalance I = Qb / (Qb + Qa) (bucket centre)")
    ax.set_ylabel("micro-price − mid (ticks)")
    ax.set_title("Stoikov micro-price adjustment g*(I, S)")
    ax.legend(fontsize=8)
    return _png(fig)


def _qa_table(res: StudyResult) -> str:
    rows = ["<table><tr><th class=l>check</th><th>count</th><th>share</th><th class=l>limit</th><th>result</th>"
            "<th class=l>detail</th></tr>"]
    for c in res.qa.checks:
        cls = "pass" if c.passed else "fail"
        rows.append(f"<tr><td class=l>{_esc(c.name)}</td><td>{_num(c.count)}</td><td>{_num(c.share, 3)}</td>"
                    f"<td class=l>{_esc(c.threshold)}</td><td class={cls}>{'PASS' if c.passed else 'FAIL'}</td>"
                    f"<td class=l>{_esc(c.detail)}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


METRIC_COLUMNS = (("model", "model"), ("horizon_s", "horizon (s)"), ("n", "n"), ("mae", "MAE (ticks)"),
                  ("rmse", "RMSE (ticks)"), ("mse_gain_pct", "MSE gain vs naive (%)"), ("hit_rate", "hit rate"),
                  ("hit_n", "hit n"), ("hit_p", "hit p"), ("calib_slope", "calib. slope"),
                  ("calib_intercept", "calib. intercept"), ("dm_stat", "DM stat"), ("dm_p", "DM p (one-sided)"))


def _metrics_table(res: StudyResult) -> str:
    table = res.metrics_table()
    if not table:
        return "<p>Not evaluated (feature QA failed).</p>"
    head = "".join(f"<th{' class=l' if k == 'model' else ''}>{_esc(t)}</th>" for k, t in METRIC_COLUMNS)
    rows = [f"<table><tr>{head}</tr>"]
    best = res.verdict.best
    for r in table:
        cells = []
        for k, _ in METRIC_COLUMNS:
            v = r.get(k)
            if k == "model":
                mark = " ★" if best.get(r["horizon_s"]) == v else ""
                cells.append(f"<td class=l>{_esc(v)}{mark}</td>")
            elif k == "dm_p" and v is not None:
                cls = "pass" if v < res.config.alpha else ""
                cells.append(f"<td class={cls}>{_num(v, 3)}</td>")
            else:
                cells.append(f"<td>{_num(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    rows.append("</table>")
    fold = ["<table><tr><th class=l>model</th><th>horizon (s)</th>"
            + "".join(f"<th>fold {k} MSE</th>" for k in range(1, res.config.n_blocks)) + "</tr>"]
    for r in table:
        fold.append(f"<tr><td class=l>{_esc(r['model'])}</td><td>{_num(r['horizon_s'])}</td>"
                    + "".join(f"<td>{_num(v)}</td>" for v in r.get("fold_mse") or []) + "</tr>")
    fold.append("</table>")
    return "".join(rows) + "<p class=muted>Per-fold out-of-sample MSE (ticks²): an edge should hold in every fold, not just on average.</p>" + "".join(fold)


def _feature_table(res: StudyResult) -> str:
    rows = ["<table><tr><th class=l>feature</th><th>n</th><th>NaN</th><th>mean</th><th>std</th><th>p1</th><th>p50</th>"
            "<th>p99</th></tr>"]
    for r in res.feature_summary():
        rows.append(f"<tr><td class=l>{_esc(r['feature'])}</td><td>{_num(r['n'])}</td><td>{_num(r['nan'])}</td>"
                    + "".join(f"<td>{_num(r.get(k))}</td>" for k in ("mean", "std", "p1", "p50", "p99")) + "</tr>")
    rows.append("</table>")
    return "".join(rows)


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_html(res: StudyResult, title: Optional[str] = None) -> str:
    """The whole report as one HTML string."""
    cfg = res.config
    v = res.verdict
    title = title or f"Fair-mid research: {res.exchange} {res.symbol}"
    reasons = "".join(f"<li>{_esc(r)}</li>" for r in v.reasons)
    hours = (res.ts_to - res.ts_from) / 3.6e12
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f"<p class=muted>source {_esc(res.source)} · {_iso(res.ts_from)} → {_iso(res.ts_to)} ({hours:.2f} h) · "
        f"{res.n_book:,} book messages, {res.n_trades:,} trades · tick {res.tick_size:g} · clock {res.clock} · "
        f"grid {cfg.step_ms} ms ({res.grid.height:,} rows) · generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}</p>",
        f"<div class='verdict {'go' if v.go else 'nogo'}'><b>Verdict: {v.label}</b><ul>{reasons}</ul></div>",
        "<p class=muted>GO requires, at every horizon, at least one model to beat the naive mid out of sample on squared "
        f"error (Diebold–Mariano, Newey–West variance with lag {cfg.hac_factor:g}× the horizon in grid steps, one-sided p &lt; {cfg.alpha:g}), "
        f"to call the direction of non-zero moves better than a coin (HAC p &lt; {cfg.alpha:g}) and to be calibrated "
        f"(slope in [{cfg.calib_slope_range[0]:g}, {cfg.calib_slope_range[1]:g}]); and feature QA to pass.</p>",
        "<h2>Feature QA</h2>", _qa_table(res),
        "<h2>Out-of-sample metrics (walk-forward)</h2>",
        f"<p class=muted>{cfg.n_blocks} contiguous blocks; fold k fits on blocks 0..k−1 (targets purged at the block "
        "boundary) and scores block k. Moves in ticks; ★ = best model of the horizon (lowest MSE among those passing every GO condition).</p>",
        _metrics_table(res),
        "<h2>Calibration</h2>", calibration_plot(res) or "<p>Not evaluated.</p>",
        "<h2>Micro-price</h2>",
        "<p class=muted>Stoikov (2018), “The micro-price: a high-frequency estimator of future prices”, Quantitative "
        "Finance 18(12). Fitted from symmetrised event-time transitions of (imbalance bucket, spread) states on all data.</p>",
        microprice_plot(res) or "<p>Not fitted.</p>",
        "<h2>Feature distributions (clock grid)</h2>", _feature_table(res), feature_plot(res),
        f"<h2>Model files</h2><ul>{''.join(f'<li><code>{_esc(p)}</code></li>' for p in res.model_paths) or '<li>none</li>'}</ul>",
        "<p class=muted>Timings: " + ", ".join(f"{k} {t:.2f} s" for k, t in res.timings.items()) + "</p>",
        "</body></html>",
    ]
    return "\n".join(parts)
