"""Benchmark: tick-to-order latency of the live runner on loopback, beside the decision step alone.

Starts ``mm simexchange --private`` (public + private side on loopback), runs ``mm live`` against it
with ``--decide-on-book`` (a decision right after each book message) for ``--seconds``, and prints
from the session's summary:

- ``tick_to_order_us``: arrival of the book message a decision acted on -> the order frame it caused
  written to the private socket (the whole live path: parse, book, regimes, risk, strategy, requote,
  order manager, request builder, signing-free WS send), p50/p99;
- ``decision_latency_us``: the runner's whole ``decide()`` call (event in -> actions out);
- ``step_latency_us``: the compiled pipeline step alone (regimes -> risk -> strategy -> requote).

    python bench/bench_live_tick_to_order.py [--seconds 60] [--strategy baseline] [--profile busy] [--calibration params.json]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "kraken-btc-eur.toml"
CAPS = {"max_order_qty": 0.002, "max_notional": 200.0, "max_inventory": 0.004, "max_daily_loss": 50.0,
        "max_order_rate": 5.0}


def _wait_lines(proc: subprocess.Popen, want: tuple[str, ...], timeout_s: float = 60.0) -> dict[str, str]:
    got: dict[str, str] = {}

    def reader() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            for w in want:
                if line.startswith(w) and w not in got:
                    got[w] = line.strip()
            if len(got) == len(want):
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout_s)
    if len(got) != len(want):
        raise SystemExit(f"simulator never printed {want}")
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--strategy", default="baseline")
    ap.add_argument("--calibration", help="params.json from mm calibrate (avellaneda-stoikov, glft)")
    ap.add_argument("--profile", default="busy",
                    help="simulator market profile (default busy: ~70 updates/s, so quotes move often enough "
                         "for a p99; the default market's 1-tick book rarely moves a quote)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        key = tmp / "key.toml"
        sim = subprocess.Popen([sys.executable, "-m", "mm_core.cli", "simexchange", "--private", "--api-key-file",
                                str(key), "--no-latency-spells", "--latency-median-ms", "0.2", "--profile", args.profile,
                                "--max-seconds", str(args.seconds + 120)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            lines = _wait_lines(sim, ("listening on ", "private on "))
            feed = lines["listening on "].split()[-1]
            rest_url, ws_url = lines["private on "].split()[-2:]
            cfg = tmp / "live.toml"
            cfg.write_text("\n".join([f'extends = "{SHIPPED.as_posix()}"', "", "[live]",
                                      *(f"{k} = {v}" for k, v in CAPS.items()), f'private_url = "{ws_url}"',
                                      f'rest_url = "{rest_url}"', "warmup_s = 0.0", f'key_file = "{key.as_posix()}"'])
                           + "\n", encoding="utf-8")
            r = subprocess.run([sys.executable, "-m", "mm_core.cli", "live", "--config", str(cfg), "--feed-url", feed,
                                "--out", str(tmp / "run"), "--json", "--decide-on-book", "--strategy", args.strategy,
                                "--max-seconds", str(args.seconds),
                                *(["--half-spread-bps", "0.01"] if args.strategy == "baseline" else []),
                                *(["--calibration", args.calibration] if args.calibration else [])],
                               cwd=ROOT, capture_output=True, text=True)
        finally:
            if sim.poll() is None:
                sim.send_signal(signal.SIGINT)
            sim.communicate(timeout=60)
        if r.returncode != 0:
            print(r.stderr[-2000:], file=sys.stderr)
            return 1
        s = json.loads(r.stdout)
    t = s.get("telemetry", {})
    tto = s.get("tick_to_order_us")
    out = {"seconds": args.seconds, "strategy": args.strategy, "profile": args.profile, "orders": s["orders"], "amends": s["amends"],
           "cancels": s["cancels"], "tick_to_order_us": tto, "decision_latency_us": t.get("decision_latency_us"),
           "step_latency_us": t.get("step_latency_us"), "decisions": t.get("decisions")}
    print(json.dumps(out, indent=2))
    return 0 if tto else 1


if __name__ == "__main__":
    raise SystemExit(main())
