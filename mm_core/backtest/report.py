"""Human summary and a self-contained HTML report (matplotlib PNGs inlined as base64, no CDN).

The summary leads with the verdict a user needs first -- does the strategy make or lose money after
fees, and why -- then the parts, the frictions (rejections, throttling) and the engine's speed.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np


def human_summary(result) -> str:
    """A few lines for the terminal."""
    s = result.summary()
    p = result.pnl
    c = s["counters"]
    gross = p.total + p.fees
    verdict = "EARNS" if p.total > 0 else "LOSES"
    lines = [
        f"backtest: {s['market']['span_s']:.0f} s of {s['market']['symbol']}, {s['rows']:,} rows, "
        f"{s['fills']:,} fills, volume {p.volume_base:.6g} ({p.volume_quote:,.2f} quote)",
        f"  total PnL       {p.total:+,.4f}   -> the strategy {verdict} money after fees "
        f"(gross before fees {gross:+,.4f})",
        f"  spread capture  {p.spread_capture:+,.4f}   (fill price vs fair mid at the fill)",
        f"  adverse sel.    {p.adverse_selection:+,.4f}   (fair move within {p.horizon_s:g} s after fills; "
        + ", ".join(f"{k}: {v:+,.4f}" for k, v in p.adverse_by_horizon.items()) + ")",
        f"  inventory PnL   {p.inventory_pnl:+,.4f}   (holding the position after the horizon)",
        f"  fees            {-p.fees:+,.4f}   ({s['config']['fees']})",
        f"  identity: total - (spread + adverse + inventory - fees) = {p.identity_error:.2e}",
        f"  max drawdown {p.max_drawdown:,.4f}, worst hour {p.worst_hour:+,.4f}, worst day {p.worst_day:+,.4f}, "
        f"ES5% hourly {p.expected_shortfall_hourly:+,.4f}; final position {result.position:+.8g}",
        f"  orders {c['orders_sent']:,} (accepted {c['accepted']:,}, post-only rejected {c['rejected_post_only']:,}, "
        f"rate-limited {c['rejected_rate_limit_new']:,}), cancels {c['cancels_sent']:,} "
        f"(rate-limited {c['rejected_rate_limit_cancel']:,}, too late {c['cancel_too_late']:,}), "
        f"requotes deferred by the rate guard {c['rate_guard_skips']:,}; peak rate counter "
        f"{result.max_rate_counter:.1f} ({s['config']['rate_tier']})",
        f"  speed: {result.events_per_second:,.0f} rows/s over the whole run ({result.run_seconds:.2f} s, of it "
        f"loop {result.loop_seconds:.3f} s; numba compile {result.compile_seconds:.2f} s apart)",
    ]
    return "\n".join(lines)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(result) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = result.pnl
    c = p.curve
    hours = (c["ts"] - c["ts"][0]) / 3.6e12
    out: list[tuple[str, str]] = []

    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.plot(hours, c["equity"], label="total (equity)", color="black", lw=1.4)
    ax.plot(hours, c["spread"], label="spread capture (cum.)", lw=1)
    ax.plot(hours, -c["fees"], label="fees (cum.)", lw=1)
    ax.plot(hours, c["inventory_and_adverse"], label="adverse + inventory (cum.)", lw=1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("hours")
    ax.set_ylabel("PnL (quote currency)")
    ax.legend(fontsize=8)
    ax.set_title("Equity curve and its parts")
    out.append(("Equity curve", _png(fig)))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 2.8))
    ax.step(hours, c["position"], where="post", lw=1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("hours")
    ax.set_ylabel("position (base)")
    ax.set_title("Inventory")
    out.append(("Inventory", _png(fig)))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = ["spread", "adverse", "inventory", "fees", "total"]
    vals = [p.spread_capture, p.adverse_selection, p.inventory_pnl, -p.fees, p.total]
    ax.bar(names, vals, color=["tab:green" if v >= 0 else "tab:red" for v in vals])
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title("PnL decomposition (parts add up to total)")
    out.append(("PnL decomposition", _png(fig)))
    plt.close(fig)

    mk = p.markout_curve
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = np.maximum(mk["horizon_s"], 0.05)
    ax.plot(x, mk["bps"], marker="o")
    ax.set_xscale("log")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("horizon after fill (s; 0 drawn at 0.05)")
    ax.set_ylabel("markout (bps, qty-weighted)")
    ax.set_title("Markout curve: side x (fair(t+h) - price)")
    out.append(("Markout curve", _png(fig)))
    plt.close(fig)
    return out


def write_html(result, path: Path) -> Path:
    """The report as one HTML file with every image inlined."""
    s = result.summary()
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(f'{v:,.6g}' if isinstance(v, float) else str(v))}</td></tr>"
        for k, v in s.items() if k not in ("config", "market", "counters", "markouts", "adverse_by_horizon"))
    cfg = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                  for k, v in {**s["config"], **s["market"], **s["counters"]}.items())
    imgs = "".join(f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
                   for t, b in _figures(result))
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>mm backtest report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:13px}}pre{{background:#f6f6f6;padding:1em}}</style>
</head><body><h1>Backtest report</h1><pre>{html.escape(human_summary(result))}</pre>
<p>Identity: total = spread capture + adverse selection ({result.pnl.horizon_s:g} s) + inventory PnL - fees.</p>
{imgs}<h2>Numbers</h2><table>{rows}</table><h2>Configuration, data and counters</h2><table>{cfg}</table>
</body></html>"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
