"""The ``mm tca --html`` report: one self-contained file (PNG figures inlined, no CDN, no script).

What a reviewer looks at first: the markout curves with their intervals (per volatility bucket:
is adverse selection worse when the market is volatile, and by how much, with what certainty?),
the PnL decomposition over time (where the money went), then the worst fills to click through.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from mm_core.backtest.report import _png
from mm_core.trading.tca import CURVE_GRID_S, HORIZONS_S, TcaResult, format_tca, hkey
from mm_core.trading.tca_stats import cluster_mean_ci


def _curve(r: TcaResult, name: str, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean markout and interval per horizon of the grid (bp) for the fills in ``mask``."""
    f = r.fills
    mean, lo, hi = [], [], []
    for h in CURVE_GRID_S:
        block = int(max(r.settings.cluster_s, h) * 1e9)
        cl = f["run"] * (1 << 40) + f["ts"] // block
        d = cluster_mean_ci(f[f"curve_{name}_{h:g}"][mask], f["qty"][mask], cl[mask],
                            confidence=r.settings.confidence, min_clusters=r.settings.min_clusters)
        m = d["mean"] if d["mean"] is not None else np.nan
        ci = d["ci"] or [np.nan, np.nan]
        mean.append(m)
        lo.append(ci[0])
        hi.append(ci[1])
    return np.array(mean, float), np.array(lo, float), np.array(hi, float)


def _figures(r: TcaResult) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[tuple[str, str]] = []
    f = r.fills
    n = f["ts"].size if f else 0
    if n:
        x = np.maximum(np.array(CURVE_GRID_S), 0.2)
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
        for ax, name in zip(axes, ("fair", "mid")):
            m, lo, hi = _curve(r, name, np.ones(n, bool))
            ax.plot(x, m, marker="o", color="black", label="all fills")
            ax.fill_between(x, lo, hi, color="grey", alpha=0.25)
            for b in r.vol_bucket_names:
                mask = f["vol_bucket"] == b
                if mask.sum() >= 2:
                    mb, lb, hb = _curve(r, name, mask)
                    line, = ax.plot(x, mb, marker=".", lw=1, label=f"vol {b} ({int(mask.sum())})")
                    ax.fill_between(x, lb, hb, color=line.get_color(), alpha=0.12)
            ax.set_xscale("log")
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_xlabel("horizon after the fill (s; 0 drawn at 0.2)")
            ax.set_title("markout vs the fair mid" if name == "fair" else "markout vs the plain mid")
        axes[0].set_ylabel("bp (qty-weighted, 95 % CI clustered)")
        axes[0].legend(fontsize=7)
        out.append(("Markout curves (by volatility bucket)", _png(fig)))
        plt.close(fig)

    frames = [fr for fr in r.frames if fr.pnl is not None]
    if frames:
        fig, ax = plt.subplots(figsize=(11, 3.6))
        for i, fr in enumerate(frames):
            c = fr.pnl.curve
            t = c["ts"].astype("datetime64[ns]")
            lab = (lambda s: s) if i == 0 else (lambda s: None)
            ax.plot(t, c["equity"], color="black", lw=1.3, label=lab("total (equity)"))
            ax.plot(t, c["spread"], color="tab:green", lw=1, label=lab("spread capture (cum.)"))
            ax.plot(t, c["inventory_and_adverse"], color="tab:red", lw=1, label=lab("adverse + inventory (cum.)"))
            ax.plot(t, -c["fees"], color="tab:orange", lw=1, label=lab("fees (cum.)"))
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylabel("quote currency")
        ax.legend(fontsize=8)
        ax.set_title("PnL decomposition over time (each session from its own start)")
        fig.autofmt_xdate()
        out.append(("PnL decomposition over time", _png(fig)))
        plt.close(fig)

    vb = r.groups.get("vol_bucket", {})
    if n and vb:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        names = [b for b in r.vol_bucket_names if b in vb and vb[b]["fills"]]
        width = 0.8 / max(len(names), 1)
        for j, b in enumerate(names):
            g = vb[b]["adverse_selection"]
            means = [g[hkey(h)]["fair"]["mean"] for h in HORIZONS_S]
            cis = [g[hkey(h)]["fair"]["ci"] for h in HORIZONS_S]
            xs = np.arange(len(HORIZONS_S)) + j * width
            mv = np.array([np.nan if v is None else v for v in means])
            err = np.array([[mv[k] - c[0], c[1] - mv[k]] if c else [0, 0] for k, c in enumerate(cis)]).T
            ax.bar(xs, mv, width, yerr=err, capsize=3, label=f"vol {b}")
        ax.set_xticks(np.arange(len(HORIZONS_S)) + 0.4 - width / 2)
        ax.set_xticklabels([hkey(h) for h in HORIZONS_S])
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylabel("bp (negative = against us)")
        ax.set_title("Adverse selection (fair move after the fill) by volatility bucket")
        ax.legend(fontsize=8)
        out.append(("Adverse selection by volatility bucket", _png(fig)))
        plt.close(fig)
    return out


def _ci_cell(d: Any) -> str:
    if not d or d.get("mean") is None:
        return "-"
    ci = d.get("ci")
    return f"{d['mean']:+.3f}" + (f"<br><small>[{ci[0]:+.3f}, {ci[1]:+.3f}]</small>" if ci else "<br><small>few clusters</small>")


def _group_table(title: str, groups: dict[str, Any]) -> str:
    head = "".join(f"<th>markout {hkey(h)}</th>" for h in HORIZONS_S)
    rows = []
    for k, g in groups.items():
        fr = g.get("fill_rate") or {}
        rate = f"{fr['rate']:.3f}" if fr.get("rate") is not None else "-"
        sc = (g.get("spread_capture") or {}).get("fair")
        fee = f"{g['fee_bps']:.3f}" if g.get("fee_bps") is not None else "-"
        rows.append(f"<tr><th>{html.escape(str(k))}</th><td>{g['fills']}</td><td>{_ci_cell(sc)}</td>"
                    + "".join(f"<td>{_ci_cell(g['markouts'][hkey(h)])}</td>" for h in HORIZONS_S)
                    + f"<td>{_ci_cell(g.get('slippage_bps'))}</td><td>{fee}</td><td>{rate}</td></tr>")
    return (f"<h3>{html.escape(title)}</h3><table><tr><th></th><th>fills</th><th>spread capture</th>{head}"
            f"<th>slippage</th><th>fee bp</th><th>fill rate</th></tr>{''.join(rows)}</table>")


def write_html(r: TcaResult, path: Path) -> Path:
    """The report as one HTML file with every image inlined."""
    imgs = "".join(f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
                   for t, b in _figures(r))
    tables = "".join(_group_table(f"by {k}", v) for k, v in r.groups.items() if v)
    cols = ("run", "time", "side", "price", "qty", "fee", "maker", "vol_bucket", "pnl_30s",
            *(f"markout_{hkey(h)}_bps" for h in HORIZONS_S), "order_id")
    worst = "".join("<tr>" + "".join(f"<td>{html.escape(f'{w[c]:.6g}' if isinstance(w[c], float) else str(w[c]))}</td>"
                                     for c in cols) + "</tr>" for w in r.worst)
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>mm tca report</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto}}table{{border-collapse:collapse;margin-bottom:1em}}
th,td{{border:1px solid #ccc;padding:2px 6px;text-align:right;font-size:12px}}pre{{background:#f6f6f6;padding:1em;
overflow-x:auto}}</style></head><body><h1>Transaction-cost analysis</h1><pre>{html.escape(format_tca(r))}</pre>
<p>Markout = side x (mid(t+h) - price) / price in bp; spread capture at t, adverse selection = the mid's move
after it. Means are weighted by quantity; intervals are 95 % cluster-robust t intervals (clusters = clock blocks of
max({r.settings.cluster_s:g} s, horizon)). Volatility buckets: trailing {r.settings.vol_window_s:g} s realised vol
of 1 s mid returns, edges {", ".join(f"{e:.4f}" for e in r.vol_edges_bp) or "-"} bp/sqrt(s).</p>
{imgs}<h2>Groups</h2>{tables}
<h2>Worst fills (PnL 30 s after the fill, fees included)</h2><table><tr>{"".join(f"<th>{c}</th>" for c in cols)}</tr>{worst}</table>
</body></html>"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
