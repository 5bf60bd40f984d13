"""``mm live --config TOML``: real orders on the configured venue, inside hard caps.

Refuses to start -- exit 2 with the reason, before any network access -- when the config has no
``[live]`` section or any of its caps is missing (``max_order_qty``, ``max_notional``,
``max_inventory``, ``max_daily_loss``, ``max_order_rate``; the shipped config has none on purpose),
or when the API key cannot be read safely: from ``--key-file`` / ``[live] key_file`` (a TOML file
with ``api_key`` and ``api_secret`` only its owner can read: ``chmod 600``; on Windows the ACL is
checked), else the venue's environment variables (``mm live --help`` names them). Keys are never
printed or logged.

Then the same trader as ``mm paper`` (strategy, regimes, risk, order manager, reconciliation), with:
the risk limits tightened to the caps and every order checked against them before it is sent; the
first ``[live] warmup_s`` seconds of orders sent as ``validate: true`` (checked by the exchange, never
placed); the dead man's switch armed at start and refreshed; Ctrl+C / SIGTERM (Ctrl+Break on
Windows) cancels every order and waits for the confirmations; ``mm kill RUN_DIR`` pulls every quote
within one decision cycle. Point ``[live] private_url`` / ``rest_url`` and ``[exchange] endpoint`` at
``mm simexchange --private`` to rehearse against the simulator. Exit codes: 0 done, 1 the session
failed, 2 refused (bad config, no caps, unsafe key).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

from mm_core.trading import session_args as sa


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("live", help="live trading on the configured venue with hard caps (refuses to start without them)",
                       description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       epilog="Caps live in the config's [live] section; see docs/live-rollout.md for the ladder.")
    p.add_argument("--config", type=Path, required=True, help="runtime config TOML with a [live] section (caps)")
    p.add_argument("--out", type=Path, help="run directory (default: runs/live-<SYMBOL>); restarting into the same "
                   "directory continues the session (orders found open are cancelled)")
    p.add_argument("--key-file", type=Path, help="API key file (TOML api_key/api_secret, mode 0600); default: "
                   "[live] key_file, else the venue's environment (" + _credentials_help() + ")")
    p.add_argument("--feed-url", help="market-data WebSocket (default: the config's [exchange] endpoint)")
    sa.add_strategy_args(p)
    sa.add_session_args(p)
    p.set_defaults(func=run)


def refusal(cfg: Any, key_file: Optional[Path]) -> tuple[Optional[str], Any]:
    """(why mm live must not start, or None; the credentials). No network, no key in any message."""
    from mm_core.adapters import trading_rules
    from mm_core.trading.runner import Caps

    live = cfg.live
    if live is None:
        return (f"{cfg.source}: no [live] section: mm live needs explicit caps ({', '.join(_caps_names())}); "
                "add them (see docs/live-rollout.md) -- nothing was sent"), None
    missing = live.missing_caps()
    if missing:
        return f"{cfg.source}: [live] is missing the cap(s) {', '.join(missing)}; every cap must be set", None
    if key_file is None and live.key_file:
        key_file = Path(live.key_file)
        if not key_file.is_absolute() and cfg.source:
            key_file = Path(cfg.source).parent / key_file
    try:
        creds = trading_rules(cfg.exchange.name).load_credentials(key_file)
    except ValueError as exc:
        return str(exc), None
    Caps(**{c: float(getattr(live, c)) for c in live.CAPS})
    return None, creds


def _credentials_help() -> str:
    from mm_core.adapters import default_venue

    return str(getattr(default_venue(), "credentials_help", "see the venue's adapter"))


def _caps_names() -> list[str]:
    from mm_core.config import LiveConfig

    return list(LiveConfig.CAPS)


def run(args: argparse.Namespace) -> int:
    from mm_core.config import ConfigError, load_config
    from mm_core.trading.runner import Caps, RunnerConfig, capped_risk
    from mm_core.trading.session import SessionSpec, run_session

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"mm live: {exc}", file=sys.stderr)
        return 2
    why, creds = refusal(cfg, args.key_file)
    if why is not None:
        print(f"mm live: refused: {why}", file=sys.stderr)
        return 2
    try:
        bt_cfg, ns = sa.build_backtest_config(args)
        from mm_core.trading.market_view import fair_function

        fair_function(args.fair)
    except ValueError as exc:
        print(f"mm live: {exc}", file=sys.stderr)
        return 2
    from mm_core.backtest.command import resolved

    live = cfg.live
    caps = Caps(**{c: float(getattr(live, c)) for c in live.CAPS})
    run_dir = args.out or Path("runs") / f"live-{cfg.symbol.replace('/', '-')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    r = resolved(ns)
    rc = RunnerConfig(symbol=cfg.symbol, tick=cfg.instrument.tick_size, lot=cfg.instrument.lot_size,
                      requote_ms=float(r["requote_ms"]), fair=args.fair, caps=caps, warmup_s=live.warmup_s,
                      decide_on_book=args.decide_on_book, source="live")

    def venue_factory(session: Any) -> Any:
        from mm_core.adapters import trading_rules

        return trading_rules(cfg.exchange.name).connect_trading(
            creds, symbol=cfg.symbol, instrument=cfg.make_instrument(), nonce_file=run_dir / "nonce",
            ws_url=live.private_url, rest_url=live.rest_url)

    spec = SessionSpec(run_dir=run_dir, source="live", config=cfg, feed_url=args.feed_url or cfg.exchange.endpoint,
                       venue_factory=venue_factory,
                       pipeline_factory=sa.pipeline_factory(bt_cfg, cfg.instrument.tick_size,
                                                            capped_risk(bt_cfg.risk, caps)),
                       runner_config=rc, max_seconds=args.max_seconds, metrics_port=args.metrics_port,
                       reconcile_every_s=live.reconcile_every_s, quiet=args.quiet or args.json,
                       progress=not (args.quiet or args.json) and sys.stderr.isatty(),
                       backtest_args=sa.replay_args(ns, run_dir),
                       params={**bt_cfg.describe(), "requote_ms": float(r["requote_ms"])},
                       id_prefix=live.id_prefix, sent_hook=True)
    if not args.json:
        print(f"mm live: {cfg.symbol} on {live.private_url} with caps {caps.describe()}; run directory {run_dir}; "
              f"validate-only warm-up {live.warmup_s:g} s; Ctrl+C cancels everything and stops",
              file=sys.stderr, flush=True)
    summary = run_session(spec)
    sa.print_summary(summary, args.json)
    return 1 if summary.get("fatal_error") else 0
