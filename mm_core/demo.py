"""``mm demo``: the whole Phase 0 loop, offline, in about a minute.

Starts the local exchange simulator (a separate process, so its timing is not disturbed by the
collector sharing its event loop), captures from it over a real loopback WebSocket, then runs the
same QA, latency analysis and decision gate a user runs after a 24-hour capture. The gate's duration
and sample thresholds are scaled to the demo length -- said on screen -- and nothing else is.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mm_core.arg_types import positive_float

def simulator_args(seed: int, latency_median_ms: float | None, faults: str | None,
                   log: Path | None) -> list[str]:
    """Command-line arguments for ``mm simexchange`` (run as a child process)."""
    args = ["--host", "127.0.0.1", "--seed", str(seed)]
    if latency_median_ms is not None:
        args += ["--latency-median-ms", str(latency_median_ms)]
    if faults:
        args += ["--faults", faults]
    if log is not None:
        args += ["--log", str(log)]
    return args


def _banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 74 - len(text)), flush=True)


def run(args: argparse.Namespace) -> int:
    import msgspec

    from mm_core.capture.collector import Collector
    from mm_core.cli import main as mm
    from mm_core.config import load_config
    from mm_core.simexchange.server import spawn_process

    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mm-demo-"))
    run_dir = out_root / time.strftime("run-%Y%m%dT%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    csv = run_dir / "demo.csv"
    seconds = float(args.seconds)
    _banner(f"1/4 capture: local Kraken-v2 simulator -> collector, {seconds:.0f} s")
    cfg = load_config(args.config)
    # the gate's clock check wants >= [gate] clock_min_estimates ping/pong estimates; a run of
    # seconds gets them only with pings every 2 s (capture setting, not a gate threshold)
    cfg = msgspec.structs.replace(cfg, feed=msgspec.structs.replace(
        cfg.feed, ping_interval_s=min(cfg.feed.ping_interval_s, 2.0)))
    sim_log = run_dir.parent / f"{run_dir.name}-simulator.jsonl"
    sim = spawn_process(simulator_args(args.seed, args.latency_median_ms, args.faults, sim_log))
    try:
        print(f"simulator at {sim.url} (its own log: {sim_log})", flush=True)
        code = Collector(cfg, csv, url=sim.url, run_dir=run_dir, max_seconds=seconds,
                         status_every_s=5.0).run()
    finally:
        sim.stop()
    if code != 0:
        print(f"collector failed (exit {code})", file=sys.stderr)
        return code

    _banner("2/4 data quality (strict)")
    qa_code = mm(["qa", str(csv), "--strict"])
    _banner("3/4 latency analysis")
    plot = run_dir / "latency.png"
    mm(["analyze", str(csv), "--normal-max-ms", str(cfg.latency.normal_max_ms),
        "--degraded-max-ms", str(cfg.latency.degraded_max_ms), "--plot", str(plot)])
    _banner("4/4 decision gate")
    print(f"NOTE: this demo ran {seconds:.0f} s, not 24 h: the gate's duration and sample-count "
          "thresholds are scaled to that length; latency thresholds are NOT scaled.", flush=True)
    gate_code = mm(["gate", str(run_dir), "--scale-to-seconds", str(seconds)])
    _banner("files")
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and "parquet" not in p.parts:
            print(f"  {p}")
    n_parquet = len(list(run_dir.rglob("*.parquet")))
    print(f"  {run_dir / 'parquet'}  ({n_parquet} Parquet files)")
    print(f"\nrun directory: {run_dir}")
    print("\nre-run any step yourself (one command per line):")
    for line in rerun_commands(csv, run_dir):
        print(f"  {line}")
    print(f"\n{how_to_run_mm()}")
    failed = [name for name, c in (("QA", qa_code), ("gate", gate_code)) if c != 0]
    verdict = f"FAILED ({' and '.join(failed)} did not pass)" if failed else "passed"
    print(f"demo {verdict}: QA exit {qa_code}, gate exit {gate_code} (0 = PASS/PROCEED)")
    return 1 if failed else 0


def _quote(path: Path) -> str:
    """A path as a shell word: quoted only when it needs it (spaces on Windows, too)."""
    text = str(path)
    if os.name == "nt":
        return f'"{text}"' if any(c in text for c in " &()^") else text
    return shlex.quote(text)


def rerun_commands(csv: Path, run_dir: Path) -> list[str]:
    """The demo's steps as commands a user can paste, one per line."""
    lines = [f"mm qa {_quote(csv)} --strict", f"mm analyze {_quote(csv)}", f"mm gate {_quote(run_dir)}"]
    raw = next(iter(sorted((run_dir / "raw").glob("*.gz"))), None)
    if raw is not None:
        lines.append(f"mm replay {_quote(raw)}")
    return lines


def how_to_run_mm() -> str:
    """Where the ``mm`` command lives when it is not on PATH (``make demo`` installs it in .venv)."""
    if shutil.which("mm"):
        return "the mm command is on your PATH: run the lines above as they are"
    here = Path(sys.executable).parent
    if os.name == "nt":
        return (f"mm is not on your PATH: activate the environment first with {_quote(here / 'activate')} "
                f"(or call {_quote(here / 'mm.exe')} instead of mm)")
    return (f"mm is not on your PATH: activate the environment first with: source {_quote(here / 'activate')}  "
            f"(or call {_quote(here / 'mm')} instead of mm)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="offline end-to-end demo on the local exchange simulator",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=positive_float, default=45.0, help="capture length (default 45)")
    p.add_argument("--out", help="folder for the run directory (default: a new temp folder)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    p.add_argument("--latency-median-ms", type=positive_float, default=None,
                   help="simulator median latency (default: the simulator's, 8)")
    p.add_argument("--faults", default=None, help="simulator fault spec (see mm simexchange --help)")
    p.add_argument("--config", type=Path, default=None, help="runtime config TOML")
    p.set_defaults(func=run)
