"""Feature QA catches each defect -- NaN bursts, inverted timestamps, stale stretches, outliers,
crossed and unverified books -- and a research run refuses to fit on data that fails, saying why."""

from __future__ import annotations

import numpy as np

from mm_core.research.book_frames import columns_from_events, reconstruct
from mm_core.research.features import grid_features
from mm_core.research.qa import QAThresholds, feature_qa
from mm_core.research.study import StudyConfig, run_study
from mm_core.research.handmade import S, snap, trade

TH = QAThresholds(min_grid_rows=1000)
CHECKS = ("non_monotonic_timestamps", "nan_bursts", "stale_stretches", "outliers", "crossed_books",
          "unverified_book", "enough_data")


_CACHE: dict[tuple, list] = {}


def clean_events(seconds: float = 600.0, dt: float = 0.05, seed: int = 0) -> list:
    """A random-walk book on a 0.1 grid, a full snapshot every ``dt`` s, a trade every second (a copy)."""
    key = (seconds, dt, seed)
    if key not in _CACHE:
        _CACHE[key] = _make_clean(seconds, dt, seed)
    return list(_CACHE[key])


def _make_clean(seconds: float, dt: float, seed: int) -> list:
    rng = np.random.default_rng(seed)
    n = int(seconds / dt)
    bid = 1000.0 + 0.1 * np.cumsum(rng.choice([-1, 0, 0, 0, 0, 1], n))
    out = []
    for k in range(n):
        b = round(bid[k], 1)
        sizes = rng.uniform(0.1, 2.0, 6)
        out.append(snap(k * dt, [(round(b - 0.1 * i, 1), sizes[i]) for i in range(3)],
                        [(round(b + 0.1 * (i + 1), 1), sizes[3 + i]) for i in range(3)]))
        if k % 20 == 0:
            out.append(trade(k * dt + 0.001, b, 0.1, "buy" if rng.random() < 0.5 else "sell"))
    return out


def qa_of(events) -> dict:
    fr = reconstruct(columns_from_events(events), tick_size=0.1)
    rep = feature_qa(fr, grid_features(fr), TH)
    return {c.name: c for c in rep.checks}


def only_failure(checks: dict) -> list[str]:
    return [n for n in CHECKS if not checks[n].passed]


def test_clean_data_passes_every_check() -> None:
    assert only_failure(qa_of(clean_events())) == []


def test_a_nan_burst_is_caught() -> None:
    ev = clean_events()
    for k in range(2000, 2060):  # 3 s where the ask side is empty
        e = ev[k]
        if hasattr(e, "asks"):
            ev[k] = snap((e.ts_exchange - ev[0].ts_exchange) / S, e.bids, [])
    checks = qa_of(ev)
    assert only_failure(checks) == ["nan_bursts"]
    assert checks["nan_bursts"].count == 1


def test_timestamps_going_backwards_are_caught() -> None:
    ev = clean_events()
    for k in range(100, len(ev), 50):
        e = ev[k]
        if hasattr(e, "asks"):
            ev[k] = snap((e.ts_exchange - ev[0].ts_exchange) / S - 0.5, e.bids, e.asks)
    checks = qa_of(ev)
    assert "non_monotonic_timestamps" in only_failure(checks)
    assert checks["non_monotonic_timestamps"].count >= 200


def test_a_stale_stretch_is_caught() -> None:
    ev = clean_events()
    t0 = ev[0].ts_exchange
    ev = [e for e in ev if not (200 * S < e.ts_exchange - t0 < 260 * S)]
    checks = qa_of(ev)
    assert only_failure(checks) == ["stale_stretches"]
    assert checks["stale_stretches"].count == 1


def test_price_outliers_are_caught() -> None:
    ev = clean_events()
    for k in range(500, len(ev), 500):  # fat-finger books: everything 50 % higher for one message
        e = ev[k]
        if hasattr(e, "asks"):
            ev[k] = snap((e.ts_exchange - ev[0].ts_exchange) / S, [(p * 1.5, q) for p, q in e.bids],
                         [(p * 1.5, q) for p, q in e.asks])
    checks = qa_of(ev)
    assert only_failure(checks) == ["outliers"]
    assert checks["outliers"].count >= 20


def test_crossed_and_unverified_books_are_caught() -> None:
    ev = clean_events()
    for k in range(10, len(ev), 40):
        e = ev[k]
        if hasattr(e, "asks"):
            b = e.bids[0][0]
            ev[k] = snap((e.ts_exchange - ev[0].ts_exchange) / S, [(b + 0.3, 1.0)], e.asks, verified=False)
    failed = only_failure(qa_of(ev))
    assert "crossed_books" in failed and "unverified_book" in failed


def test_research_refuses_to_fit_on_failing_data_and_says_why() -> None:
    ev = clean_events()
    t0 = ev[0].ts_exchange
    ev = [e for e in ev if not (200 * S < e.ts_exchange - t0 < 260 * S)]
    res = run_study(columns_from_events(ev), StudyConfig(qa=TH), tick_size=0.1)
    assert not res.qa.passed and res.evaluation is None and res.models == {}
    assert not res.verdict.go
    assert any("feature QA failed" in r and "stale_stretches" in r for r in res.verdict.reasons)
