"""``mm research`` over many days: one study per day, run where the day's files are read.

Input: several run directories (``--data runs/d1 runs/d2 ...``) or ``--store ROOT [--from DAY]
[--to DAY]``: the (exchange, symbol, date) partitions below them (:mod:`mm_core.store.partitions`),
one instrument (``--symbol`` picks one). Each day is a task: the worker reads that day's Parquet
parts, rebuilds the book (seeded with the book at the day's first message when the capture runs
across midnight, see :mod:`mm_core.backtest.days`), builds the features, runs feature QA and the
walk-forward evaluation of :func:`mm_core.research.study.run_study`, fits the day's final models and
renders the day's report. Only small results come back: the metrics table, verdict, model files
(JSON) and the report page.

Verdict over the days, fixed before looking at any: **GO** only when every day is GO by the
single-run rule (a fair-mid model that beats the mid on some days and not on others is not one to
quote with); the per-day verdicts and, per model and horizon, on how many days it passed all three
GO conditions are shown either way.

Files: ``--out`` is an index page linking one report per day (``<out>-days/<date>.html``); models go
to ``<models>/<date>/fair_mid_*.json``, each with its training window (that day), so ``mm sweep``
and ``mm backtest`` accept them on later days only.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import sys
import time
from pathlib import Path
from typing import Any


def study_task(task: dict[str, Any]) -> dict[str, Any]:
    """Task: one day's study (runs on a worker; returns only small results)."""
    from mm_core.backtest.event_arrays import BookSeed
    from mm_core.research.book_frames import columns_from_files
    from mm_core.research.report import render_html
    from mm_core.research.study import StudyConfig, model_failures, run_study
    from mm_core.research.training_window import run_dir_source
    from mm_core.store.partitions import Day, run_dir_of

    day = Day.from_json(task["day"]["day"])
    files = day.files()
    if not files["book"]:
        raise FileNotFoundError(f"{', '.join(day.dirs)}: no book parts for {day.symbol} on {day.date}")
    order = lambda f: (Path(f).name, f)  # hour, then part, then folder: capture order across restarts
    seed = BookSeed.from_json(task["day"]["seed"]) if task["day"].get("seed") else None
    cols = columns_from_files(sorted(map(Path, files["book"]), key=order),
                              sorted(map(Path, files["trade"]), key=order), exchange=day.exchange,
                              symbol_dir=day.symbol_dir, clock=task["clock"], source=f"{day.symbol} {day.date}",
                              seed=seed)
    c = task["config"]
    cfg = StudyConfig(step_ms=c["step_ms"], horizons=tuple(c["horizons"]), n_blocks=c["n_blocks"], alpha=c["alpha"])
    res = run_study(cols, cfg, tick_size=task.get("tick_size"))
    source = run_dir_source(run_dir_of(day.dirs[0]), res.exchange, res.symbol)
    models: dict[str, dict[str, Any]] = {}
    for h, by_kind in res.models.items():
        for kind, model in by_kind.items():
            model.trained = {**model.trained, "source": dict(source)}
            models[f"fair_mid_{kind}_{h:g}s.json"] = model.to_dict()
        best = res.verdict.best.get(h) if res.verdict.go else None
        if best is not None:
            models[f"fair_mid_best_{h:g}s.json"] = by_kind[best].to_dict()
        elif res.verdict.candidate.get(h) is not None:  # NO-GO: never under the "best" name
            models[f"fair_mid_candidate_{h:g}s.json"] = by_kind[res.verdict.candidate[h]].to_dict()
    passing = {}
    if res.evaluation is not None:
        passing = {f"{s.model}@{s.horizon_s:g}": not model_failures(s, cfg) for s in res.evaluation.scores
                   if s.model != "naive"}
    summary = res.to_dict()
    summary.pop("models", None)
    return {"date": day.date, "seeded": seed is not None, "summary": summary, "passing": passing,
            "models": models, "training_source": source, "html": render_html(res, title=f"Fair-mid research: "
                                                                                   f"{res.exchange} {res.symbol} {day.date}")}


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Verdict over the days and, per (model, horizon), days scored / passing and MSE gains."""
    per_day = [{"date": r["date"], "verdict": r["summary"]["verdict"], "go": r["summary"]["go"],
                "qa": r["summary"]["qa"].get("passed"), "best_model": r["summary"].get("best_model", {}),
                "reasons": r["summary"]["reasons"], "hours": r["summary"]["hours"],
                "book_events": r["summary"]["book_events"], "seeded": r["seeded"]} for r in results]
    table: dict[tuple[str, float], dict[str, Any]] = {}
    for r in results:
        for m in r["summary"]["metrics"]:
            if m["model"] == "naive":
                continue
            row = table.setdefault((m["model"], m["horizon_s"]), {"model": m["model"], "horizon_s": m["horizon_s"],
                                                                  "days": 0, "days_passing": 0, "mse_gain_pct": []})
            row["days"] += 1
            row["days_passing"] += int(r["passing"].get(f"{m['model']}@{m['horizon_s']:g}", False))
            row["mse_gain_pct"].append(m["mse_gain_pct"])
    models = []
    for row in table.values():
        gains = [g for g in row.pop("mse_gain_pct") if g is not None and math.isfinite(g)]
        models.append({**row, "mse_gain_pct_mean": sum(gains) / len(gains) if gains else None,
                       "mse_gain_pct_min": min(gains) if gains else None})
    go = bool(results) and all(d["go"] for d in per_day)
    nogo = [d["date"] for d in per_day if not d["go"]]
    reasons = ([f"GO on all {len(per_day)} days"] if go else
               [f"NO-GO on {len(nogo)} of {len(per_day)} days ({', '.join(nogo)}): every day must be GO"])
    return {"verdict": "GO" if go else "NO-GO", "go": go, "reasons": reasons, "per_day": per_day, "models_by_day": models}


def write_outputs(results: list[dict[str, Any]], doc: dict[str, Any], out: Path, models_dir: Path) -> list[str]:
    """Per-day reports, the index page, the model files; returns the model paths."""
    pages = out.with_name(out.stem + "-days")
    pages.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in results:
        (pages / f"{r['date']}.html").write_text(r["html"], encoding="utf-8")
        for name, model in r["models"].items():
            p = models_dir / r["date"] / name
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_text(json.dumps(model, indent=1, allow_nan=False) + "\n", encoding="utf-8")
            tmp.replace(p)
            paths.append(str(p))
    rows = "".join(f"<tr><td><a href='{html.escape(pages.name)}/{d['date']}.html'>{d['date']}</a></td>"
                   f"<td>{d['verdict']}</td><td>{'PASS' if d['qa'] else 'FAIL'}</td><td>{d['hours']:.2f}</td>"
                   f"<td>{d['book_events']:,}</td><td>{html.escape(json.dumps(d['best_model']))}</td></tr>"
                   for d in doc["per_day"])
    mrows = "".join(f"<tr><td>{m['model']}</td><td>{m['horizon_s']:g}</td><td>{m['days_passing']}/{m['days']}</td>"
                    f"<td>{'' if m['mse_gain_pct_mean'] is None else format(m['mse_gain_pct_mean'], '.2f')}</td></tr>"
                    for m in doc["models_by_day"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        f"<!doctype html><meta charset='utf-8'><title>Fair-mid research over {len(results)} days</title>"
        f"<h1>Fair-mid research: {html.escape(doc['exchange'])} {html.escape(doc['symbol'])}, {len(results)} days</h1>"
        f"<p><b>{doc['verdict']}</b>: {html.escape('; '.join(doc['reasons']))}</p>"
        "<table border=1 cellpadding=3><tr><th>day</th><th>verdict</th><th>feature QA</th><th>hours</th>"
        f"<th>book events</th><th>best model</th></tr>{rows}</table>"
        "<h2>Models over the days</h2><table border=1 cellpadding=3><tr><th>model</th><th>horizon s</th>"
        f"<th>days passing all GO conditions</th><th>mean MSE gain %</th></tr>{mrows}</table>",
        encoding="utf-8")
    return paths


def render_text(doc: dict[str, Any]) -> str:
    lines = [f"{doc['exchange']} {doc['symbol']}: {len(doc['per_day'])} day(s)"]
    for d in doc["per_day"]:
        best = ", ".join(f"{h} {m}" for h, m in d["best_model"].items())
        lines.append(f"  {d['date']}  {d['verdict']:5s}  QA {'PASS' if d['qa'] else 'FAIL'}  {d['hours']:.2f} h"
                     f"{'  (book seeded from the day before)' if d['seeded'] else ''}  best: {best or '-'}")
    for m in doc["models_by_day"]:
        gain = "-" if m["mse_gain_pct_mean"] is None else f"{m['mse_gain_pct_mean']:.2f} %"
        lines.append(f"  {m['model']:13s} {m['horizon_s']:4g} s: passed on {m['days_passing']}/{m['days']} days, "
                     f"mean MSE gain {gain}")
    lines += [f"NOTE: {n}" for n in doc["notes"]]
    lines.append(f"verdict: {doc['verdict']}")
    lines += [f"  - {r}" for r in doc["reasons"]]
    return "\n".join(lines) + "\n"


def research_days(args: argparse.Namespace, runner: Any, days: list) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run every day's study on ``runner``; returns the ``--json`` document and the raw task results."""
    from mm_core.backtest.days import seeded_specs

    specs, notes = seeded_specs(runner, days, tick_size=args.tick_size, lot_size=1e-8, depth=None)
    cfg = {"step_ms": args.step_ms, "horizons": list(args.horizons_parsed), "n_blocks": args.blocks,
           "alpha": args.alpha}
    tasks = [{"day": s, "clock": args.clock, "tick_size": args.tick_size, "config": cfg} for s in specs]
    results = runner.map(study_task, tasks, label="research days")
    doc = {"exchange": days[0].exchange, "symbol": days[0].symbol, **summarize(results), "notes": notes,
           "days": [r["summary"] for r in results]}
    return _clean(doc), results


def run_days(args: argparse.Namespace, horizons: tuple[float, ...]) -> int:
    """``mm research`` over many days: 0 = GO on every day, 1 = NO-GO, 2 = unusable input."""
    from mm_core.scaleout import SchedulerError, TaskFailed, open_runner
    from mm_core.store.partitions import StoreError, find_days, one_instrument

    t0 = time.perf_counter()
    roots = [Path(p) for p in (args.data or [])] + ([args.store] if args.store is not None else [])
    args.horizons_parsed = horizons
    try:
        days = one_instrument(find_days(roots, date_from=args.date_from, date_to=args.date_to,
                                        symbol=args.symbol), ", ".join(map(str, roots)))
        with open_runner(args.scheduler, args.workers, progress=not args.json) as runner:
            doc, results = research_days(args, runner, days)
            doc["scheduler"] = runner.describe()
    except (StoreError, ValueError, OSError, SchedulerError, TaskFailed) as exc:
        print(f"mm research: {exc}", file=sys.stderr)
        return 2
    models_dir = args.models or args.out.with_name(args.out.stem + "-models")
    doc["models"] = write_outputs(results, doc, args.out, models_dir)
    doc["report"] = str(args.out)
    doc["seconds"] = time.perf_counter() - t0
    if args.json:
        sys.stdout.write(json.dumps(doc) + "\n")
    else:
        sys.stdout.write(render_text(doc))
        sys.stdout.write(f"report: {args.out}\n")
    return 0 if doc["go"] else 1
