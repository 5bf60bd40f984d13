"""Human summary and a self-contained HTML report (matplotlib PNGs inlined as base64, no CDN).

The summary leads with the verdict a user needs first -- does the strategy make or lose money after
fees, and why -- then the parts, the frictions (rejections, throttling) and the engine's speed. It
says when there is nothing to judge (no fills), when the numbers must not be read as a forecast
(IN-SAMPLE: the fair model was trained on this data), when the PnL identity does not hold, and when
the rate guard throttled most of what the strategy wanted to send.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mm_core.backtest.pnl import IdentityCheck, identity_check

RATE_GUARD_MOST = 0.5
""""Most requotes deferred": the rate guard held back more requests than the strategy sent (share of
deferred among deferred + sent above one half) -- fixed before looking at any run."""


@dataclass(frozen=True)
class RunContext:
    """What the command knows about a run beyond the engine's result."""

    in_sample: bool = False
    in_sample_detail: str = ""  # why (model file, its training window, the data's window)


def pnl_identity(result) -> IdentityCheck:
    """The identity check of ``result``: its fill log recomputed against its decomposition."""
    return identity_check(result.pnl, result.fills, result.config.fees, result.position)


def notes(result, ctx: RunContext = RunContext()) -> list[str]:
    """Warnings a reader must see beside the PnL (empty when there is nothing to say)."""
    out = []
    c = result.counters
    if ctx.in_sample:
        out.append("IN-SAMPLE: the fair model was trained on data that overlaps this run's data "
                   f"({ctx.in_sample_detail}); the PnL is not an out-of-sample result")
    if int(result.fills["qty"].shape[0]) == 0:
        out.append("no fills: nothing to judge (no order of the strategy traded; the PnL is 0 by construction)")
    chk = pnl_identity(result)
    if not chk.ok:
        out.append(f"PnL identity FAILED: fills give {chk.total_direct:+,.6f}, the parts add up to "
                   f"{chk.total_parts:+,.6f} (gap {chk.gap:+.3e}, tolerance {chk.tolerance:.1e}); position from "
                   f"fills {chk.position_fills:+.8g} vs engine {chk.position_engine:+.8g}: do not trust these numbers")
    deferred = int(c.get("rate_guard_skips", 0))
    sent = int(c.get("orders_sent", 0)) + int(c.get("cancels_sent", 0)) + int(c.get("amends_sent", 0))
    if deferred > 0 and deferred / (deferred + sent) > RATE_GUARD_MOST:
        out.append(f"rate guard: {deferred:,} requests deferred against {sent:,} sent "
                   f"({c.get('orders_sent', 0):,} orders, {c.get('amends_sent', 0):,} amends, "
                   f"{c.get('cancels_sent', 0):,} cancels) over "
                   f"{c.get('requotes', 0):,} requotes: most requotes were throttled by Kraken's rate counter "
                   f"({result.config.rate_tier}, guard {result.config.rate_guard:g}); this is the PnL of a "
                   "throttled strategy")
    return out


def trust_summary(result, ctx: RunContext = RunContext()) -> dict[str, object]:
    """The ``--json`` keys that say how far the numbers can be trusted."""
    chk = pnl_identity(result)
    return {"total_pnl_direct": chk.total_direct, "pnl_identity_gap": chk.gap, "pnl_identity_ok": chk.ok,
            "in_sample": bool(ctx.in_sample), "notes": notes(result, ctx)}


def verdict_line(result) -> str:
    """What the total PnL means: earns, loses, or nothing to judge."""
    p = result.pnl
    if int(result.fills["qty"].shape[0]) == 0:
        return "no fills: nothing to judge"
    return f"the strategy {'EARNS' if p.total > 0 else 'LOSES'} money after fees"


def human_summary(result, ctx: RunContext = RunContext()) -> str:
    """A few lines for the terminal."""
    s = result.summary()
    p = result.pnl
    c = s["counters"]
    chk = pnl_identity(result)
    gross = p.total + p.fees
    lines = [f"IN-SAMPLE RESULT ({ctx.in_sample_detail})"] if ctx.in_sample else []
    lines += [
        f"backtest: {s['market']['span_s']:.0f} s of {s['market']['symbol']}, {s['rows']:,} rows, "
        f"{s['fills']:,} fills, volume {p.volume_base:.6g} ({p.volume_quote:,.2f} quote)",
        f"  total PnL       {p.total:+,.4f}   -> {verdict_line(result)} (gross before fees {gross:+,.4f})",
        f"  spread capture  {p.spread_capture:+,.4f}   (fill price vs fair mid at the fill)",
        f"  adverse sel.    {p.adverse_selection:+,.4f}   (fair move within {p.horizon_s:g} s after fills; "
        + ", ".join(f"{k}: {v:+,.4f}" for k, v in p.adverse_by_horizon.items()) + ")",
        f"  inventory PnL   {p.inventory_pnl:+,.4f}   (holding the position after the horizon)",
        f"  fees            {-p.fees:+,.4f}   ({s['config']['fees']})",
        f"  direct total    {chk.total_direct:+,.4f}   (from the fills alone: cash + position x final mark "
        f"{p.mark_end:,.2f} - fees); identity gap {chk.gap:+.2e} -> {'OK' if chk.ok else 'FAILED'}",
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
    if "strategy" in s:
        lines += strategy_lines(s)
    lines += [f"  NOTE: {n}" for n in notes(result, ctx)]
    return "\n".join(lines)


def strategy_lines(s: dict) -> list[str]:
    """The go/no-go figures and telemetry of the strategy, for the terminal."""
    t = s["telemetry"]
    lat = s["decision_latency_us"]
    lat_txt = f"p50 {lat['p50']:.2f} / p99 {lat['p99']:.2f} us" if lat["samples"] else "n/a"
    trans = ", ".join(f"{k} {v}" for k, v in s["regime_transitions"].items())
    tir = "; ".join(f"{k}: " + ", ".join(f"{n} {v:,.0f} s" for n, v in d.items() if v > 0)
                    for k, d in t["time_in_regime_s"].items())
    trig = ", ".join(f"{k} {v}" for k, v in t["risk_triggers"].items()) or "none"
    return [
        f"  strategy {s['strategy']}: risk breaches {s['risk_breaches']} "
        f"({', '.join(f'{k} {v}' for k, v in t['risk_breaches_by_kind'].items())}), regime flaps "
        f"{s['regime_flaps']}, kill switches {s['kill_switch_events']}, quotes resting on stale data "
        f"{s['quotes_while_stale_ms']:,.1f} ms",
        f"  regimes: transitions {trans}; time in {tir}",
        f"  risk triggers: {trig}; decisions {t['decisions']:,} (feed status {t['decisions_by_trigger']['feed_status']:,}, "
        f"staleness deadline {t['decisions_by_trigger']['staleness_deadline']:,}), in-loop decision {lat_txt}",
        f"  order actions: new {t['orders_new']:,}, amend {t['orders_amend']:,}, cancel {t['orders_cancel']:,} "
        f"({t['risk_pulls']:,} risk pulls); quote changes {t['quote_changes_per_s']:.2f}/s; transitions digest "
        f"{s['transitions_sha256'][:16]}",
    ]


def _regime_figure(result, plt):
    """Equity, inventory and the regime / trading states on one time axis."""
    from mm_core.strategy.view import K_LATENCY, K_MARKET, K_TRADING, K_VOLATILITY, L_KIND, L_T, L_TO, STATE_NAMES

    c = result.pnl.curve
    t0 = c["ts"][0]
    end = (result.span[1] - t0) / 3.6e12 if result.span[1] else (c["ts"][-1] - t0) / 3.6e12
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.4), sharex=True, gridspec_kw={"height_ratios": [2, 1.4, 1.6]})
    hours = (c["ts"] - t0) / 3.6e12
    axes[0].plot(hours, c["equity"], color="black", lw=1.2)
    axes[0].set_ylabel("equity")
    axes[1].step(hours, c["position"], where="post", lw=1)
    axes[1].axhline(0, color="grey", lw=0.5)
    axes[1].set_ylabel("position")
    log = result.log
    initial = {K_LATENCY: 0, K_VOLATILITY: 1, K_MARKET: 0, K_TRADING: 0}
    for lane, kind in enumerate((K_LATENCY, K_VOLATILITY, K_MARKET, K_TRADING)):
        rows = log[log[:, L_KIND] == kind]
        xs = [0.0] + [(int(r[L_T]) - t0) / 3.6e12 for r in rows] + [end]
        ys = [initial[kind]] + [int(r[L_TO]) for r in rows]
        ys = ys + [ys[-1]]
        top = len(STATE_NAMES[kind]) - 1
        axes[2].step(xs, [lane * 1.2 + y / max(top, 1) for y in ys], where="post", lw=1,
                     label=f"{('latency', 'volatility', 'market', 'trading')[lane]} (0={STATE_NAMES[kind][0]}, "
                           f"top={STATE_NAMES[kind][top]})")
    axes[2].set_yticks([0.5, 1.7, 2.9, 4.1], ["latency", "volatility", "market", "trading"])
    axes[2].legend(fontsize=7, loc="upper right")
    axes[2].set_xlabel("hours")
    axes[0].set_title("Regimes and trading state beside equity and inventory")
    return fig


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

    if getattr(result, "log", None) is not None and result.log.ndim == 2:
        fig = _regime_figure(result, plt)
        out.append(("Regimes, equity and inventory", _png(fig)))
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


def write_html(result, path: Path, ctx: RunContext = RunContext()) -> Path:
    """The report as one HTML file with every image inlined."""
    s = {**result.summary(), **trust_summary(result, ctx)}
    s.pop("notes")
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(f'{v:,.6g}' if isinstance(v, float) else str(v))}</td></tr>"
        for k, v in s.items() if k not in ("config", "market", "counters", "markouts", "adverse_by_horizon",
                                           "telemetry"))
    tele = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in s.get("telemetry", {}).items())
    cfg = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                  for k, v in {**s["config"], **s["market"], **s["counters"]}.items())
    chk = pnl_identity(result)
    banner = "".join(f"<p style='background:#fdd;padding:.5em;font-weight:bold'>{html.escape(n)}</p>"
                     for n in notes(result, ctx))
    imgs = "".join(f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
                   for t, b in _figures(result))
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>mm backtest report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:13px}}pre{{background:#f6f6f6;padding:1em}}</style>
</head><body><h1>Backtest report{" &mdash; IN-SAMPLE" if ctx.in_sample else ""}</h1>{banner}
<pre>{html.escape(human_summary(result, ctx))}</pre>
<p>Identity: spread capture + adverse selection ({result.pnl.horizon_s:g} s) + inventory PnL - fees
= {result.pnl.total:+,.6f}; computed from the fills alone (cash + position &times; final mark - fees)
= {chk.total_direct:+,.6f}; gap {chk.gap:+.3e}: <b>{"OK" if chk.ok else "FAILED"}</b>.</p>
{imgs}<h2>Numbers</h2><table>{rows}</table><h2>Strategy telemetry</h2><table>{tele}</table>
<h2>Configuration, data and counters</h2><table>{cfg}</table>
</body></html>"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
