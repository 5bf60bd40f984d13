"""Regime machines: hysteresis and dwell stop flapping, transitions are deterministic and explained."""

from __future__ import annotations

import numpy as np
import pytest

from mm_core.strategy import regimes as R
from mm_core.strategy import transitions
from mm_core.strategy import view as V

T0 = 1_767_225_600_000_000_000  # 2026-01-01, epoch ns: the state must cope with real magnitudes
MS = 1_000_000


def _run(ages, sigmas=None, status=None, cfg: R.RegimeConfig | None = None, step_ms: int = 10):
    """Feed one age sample and one update every ``step_ms``; returns (log rows, state, per-step mults)."""
    rc = (cfg or R.RegimeConfig()).vector()
    rs = R.new_state(rc)
    log = R.new_log(4096)
    n = 0
    mults = []
    for i, age in enumerate(ages):
        t = T0 + i * step_ms * MS
        R.regimes_on_age(rs, rc, t, float(age))
        sig = 1.0 if sigmas is None else float(sigmas[i])
        st = 0 if status is None else int(status[i])
        n = R.regimes_update(rs, rc, t, sig, st, log, n)
        mults.append((rs[R.RS_WIDTH_MULT], rs[R.RS_SIZE_MULT]))
    assert n <= log.shape[0]
    return log[:n].copy(), rs, mults


def _reversals_within(log: np.ndarray, kind: int, dwell_ns: float) -> int:
    rows = log[log[:, V.L_KIND] == kind]
    flaps = 0
    for a, b in zip(rows[:-1], rows[1:]):
        if b[V.L_FROM] == a[V.L_TO] and b[V.L_TO] == a[V.L_FROM] and b[V.L_T] - a[V.L_T] < dwell_ns:
            flaps += 1
    return flaps


def test_age_oscillating_inside_the_hysteresis_band_switches_once_and_stays() -> None:
    # 18 / 22 ms alternating every 3 s (longer than window + dwell): above the 20 ms enter, never
    # below the 15 ms exit
    ages = [22.0 if (i // 300) % 2 == 0 else 18.0 for i in range(6000)]  # 60 s at 10 ms
    log, rs, _ = _run(ages)
    lat = log[log[:, V.L_KIND] == V.K_LATENCY]
    assert len(lat) == 1
    assert (lat[0, V.L_FROM], lat[0, V.L_TO], lat[0, V.L_CAUSE]) == (V.LAT_NORMAL, V.LAT_DEGRADED, R.C_LAT_ABOVE)
    assert rs[R.RS_LAT] == V.LAT_DEGRADED


def test_age_oscillating_across_both_thresholds_never_reverses_within_the_dwell() -> None:
    # 10 / 30 ms alternating every 1.2 s crosses enter and exit (the 1 s window clears in each
    # phase): without the 2 s dwell it would switch every 1.2 s
    ages = [30.0 if (i // 120) % 2 == 0 else 10.0 for i in range(12000)]  # 120 s
    cfg = R.RegimeConfig()
    log, _, _ = _run(ages, cfg=cfg)
    lat = log[log[:, V.L_KIND] == V.K_LATENCY]
    assert len(lat) >= 10  # it does move (the test would be empty otherwise) ...
    dwell = cfg.latency.dwell_ms * MS
    assert _reversals_within(log, V.K_LATENCY, dwell) == 0  # ... but never faster than the dwell
    assert np.all(np.diff(lat[:, V.L_T]) >= dwell)


def test_vol_oscillating_around_the_high_band_switches_once() -> None:
    cfg = R.RegimeConfig()
    hi = cfg.volatility.high_enter_bp
    sig = [hi * (1.05 if i % 2 else 0.95) for i in range(5000)]  # never below high_exit (1.6)
    log, rs, _ = _run([5.0] * 5000, sigmas=sig, cfg=cfg)
    vol = log[log[:, V.L_KIND] == V.K_VOLATILITY]
    assert len(vol) == 1 and vol[0, V.L_TO] == V.VOL_HIGH and vol[0, V.L_CAUSE] == R.C_VOL_ABOVE
    assert vol[0, V.L_VALUE_E6] == round(hi * 1.05 * 1e6)
    assert rs[R.RS_VOL] == V.VOL_HIGH


def test_dwell_is_respected_after_a_short_spike() -> None:
    cfg = R.RegimeConfig()
    # 200 ms of 100 ms ages, then 5 ms: unsafe at once, back only after the dwell
    ages = [100.0] * 20 + [5.0] * 1000
    log, _, _ = _run(ages, cfg=cfg)
    lat = log[log[:, V.L_KIND] == V.K_LATENCY]
    assert [tuple(r[[V.L_FROM, V.L_TO]]) for r in lat] == [(V.LAT_NORMAL, V.LAT_UNSAFE),
                                                          (V.LAT_UNSAFE, V.LAT_NORMAL)]
    gap = lat[1, V.L_T] - lat[0, V.L_T]
    dwell = cfg.latency.dwell_ms * MS
    assert dwell <= gap <= dwell + 10 * MS  # at the first update after the dwell, not later


def test_quantile_is_nearest_rank_over_the_window() -> None:
    # 20 samples in the window; p90 is the 18th smallest: 2 samples above 20 ms keep it at/below
    cfg = R.RegimeConfig()
    rc = cfg.vector()
    for above, expect in ((2, V.LAT_NORMAL), (3, V.LAT_DEGRADED)):
        rs = R.new_state(rc)
        log = R.new_log(8)
        for i in range(20):
            R.regimes_on_age(rs, rc, T0 + i * 40 * MS, 25.0 if i < above else 1.0)
        n = R.regimes_update(rs, rc, T0 + 19 * 40 * MS, 1.0, 0, log, 0)
        assert rs[R.RS_LAT] == expect
        if n:
            assert log[0, V.L_VALUE_E6] == round(above / 20 * 1e6)  # value = share above the threshold


def test_samples_leave_the_window() -> None:
    rc = R.RegimeConfig().vector()
    rs = R.new_state(rc)
    log = R.new_log(8)
    R.regimes_on_age(rs, rc, T0, 500.0)
    assert rs[R.RS_WIN_N] == 1
    n = R.regimes_update(rs, rc, T0 + 2000 * MS, 1.0, 0, log, 0)  # 2 s later: the 1 s window is empty
    assert rs[R.RS_WIN_N] == 0 and n == 0 and rs[R.RS_LAT] == V.LAT_NORMAL


def test_market_status_restricts_at_once_and_resumes_after_the_dwell() -> None:
    cfg = R.RegimeConfig()
    status = [0] * 100 + [V.MKT_CANCEL_ONLY] * 100 + [0] * 1000
    log, rs, mults = _run([5.0] * len(status), status=status, cfg=cfg)
    mk = log[log[:, V.L_KIND] == V.K_MARKET]
    assert [tuple(r[[V.L_FROM, V.L_TO, V.L_CAUSE]]) for r in mk] == [
        (V.MKT_ONLINE, V.MKT_CANCEL_ONLY, R.C_MARKET_STATUS), (V.MKT_CANCEL_ONLY, V.MKT_ONLINE, R.C_MARKET_ONLINE)]
    assert mk[0, V.L_T] == T0 + 100 * 10 * MS  # the very update the exchange said so
    assert mk[1, V.L_T] - (T0 + 200 * 10 * MS) >= cfg.market.dwell_ms * MS
    assert mults[150][1] == 0.0 and mults[-1][1] == 1.0
    assert rs[R.RS_MARKET] == V.MKT_ONLINE


def test_multipliers_are_the_product_of_the_machines() -> None:
    cfg = R.RegimeConfig()
    ages = [30.0] * 300  # degraded
    sig = [5.0] * 300  # high vol
    _, rs, _ = _run(ages, sigmas=sig, cfg=cfg)
    assert rs[R.RS_LAT] == V.LAT_DEGRADED and rs[R.RS_VOL] == V.VOL_HIGH
    assert rs[R.RS_WIDTH_MULT] == cfg.latency.width_mult[1] * cfg.volatility.width_mult[2]
    assert rs[R.RS_SIZE_MULT] == cfg.latency.size_mult[1] * cfg.volatility.size_mult[2]


def _noisy_stream(seed: int, n: int):
    rng = np.random.default_rng(seed)
    ages = np.exp(rng.normal(2.5, 0.9, n))  # lognormal ms: median ~12 ms, heavy tail
    ages[(np.arange(n) // 700) % 5 == 3] += 70.0  # latency spells
    sig = 1.0 + 1.2 * np.sin(np.arange(n) / 900.0) + rng.normal(0, 0.1, n)
    status = np.where((np.arange(n) // 3000) % 4 == 2, V.MKT_POST_ONLY, 0)
    return ages, sig, status


def test_same_input_twice_gives_a_bit_identical_transition_log() -> None:
    ages, sig, status = _noisy_stream(7, 20000)
    a, _, _ = _run(ages, sigmas=sig, status=status)
    b, _, _ = _run(ages, sigmas=sig, status=status)
    assert len(a) > 20  # real transitions, of every machine
    assert set(a[:, V.L_KIND]) == {V.K_LATENCY, V.K_VOLATILITY, V.K_MARKET}
    assert a.dtype == np.int64 and a.tobytes() == b.tobytes()
    assert transitions.digest(a, len(a)) == transitions.digest(b, len(b))
    c, _, _ = _run(ages[::-1].copy(), sigmas=sig, status=status)
    assert transitions.digest(c, len(c)) != transitions.digest(a, len(a))


def test_every_transition_carries_a_known_cause_and_its_value() -> None:
    ages, sig, status = _noisy_stream(3, 20000)
    log, _, _ = _run(ages, sigmas=sig, status=status)
    recs = transitions.records(log, len(log))
    assert len(recs) == len(log) and all(r["cause"] != str(int(c)) for r, c in zip(recs, log[:, V.L_CAUSE]))
    assert {r["kind"] for r in recs} == {"latency", "volatility", "market"}
    assert all(r["from"] in V.STATE_NAMES[k] for r, k in zip(recs, log[:, V.L_KIND]))
    cfg = R.RegimeConfig()
    for r in log:
        assert r[V.L_CAUSE] in R.CAUSE_NAMES and r[V.L_FROM] != r[V.L_TO]
        v = r[V.L_VALUE_E6] / 1e6
        if r[V.L_CAUSE] == R.C_LAT_ABOVE:
            assert v > 1 - cfg.latency.quantile  # the share above the enter threshold
        elif r[V.L_CAUSE] in (R.C_VOL_ABOVE, R.C_VOL_BELOW):
            assert v > 0
        elif r[V.L_CAUSE] == R.C_MARKET_STATUS:
            assert v == r[V.L_TO]
    for kind, dwell in ((V.K_LATENCY, cfg.latency.dwell_ms), (V.K_VOLATILITY, cfg.volatility.dwell_ms)):
        assert _reversals_within(log, kind, dwell * MS) == 0


def test_dwell_per_machine_for_the_flap_count() -> None:
    cfg = R.RegimeConfig.from_config({"latency": {"dwell_ms": 1.0}, "volatility": {"dwell_ms": 2.0},
                                      "market": {"dwell_ms": 3.0}})
    assert [cfg.dwell_ms_for(k) for k in (V.K_LATENCY, V.K_VOLATILITY, V.K_MARKET)] == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError):
        cfg.dwell_ms_for(V.K_TRADING)


def test_a_full_log_counts_rows_it_could_not_write() -> None:
    rc = R.RegimeConfig().vector()
    rs = R.new_state(rc)
    log = R.new_log(1)
    n = R.regimes_update(rs, rc, T0, 5.0, V.MKT_MAINTENANCE, log, 0)  # market + volatility rows
    assert n == 2 and log[0, V.L_KIND] == V.K_MARKET


@pytest.mark.parametrize("section, match", [
    ({"latency": {"degraded_enter_ms": 10.0, "degraded_exit_ms": 12.0}}, "degraded_exit_ms < degraded_enter_ms"),
    ({"latency": {"quantile": 1.5}}, "quantile"),
    ({"latency": {"window_ms": 0}}, "window_ms"),
    ({"volatility": {"low_exit_bp": 3.0}}, "low_exit_bp"),
    ({"market": {"size_mult": [1, 1, 0.5, 1, 0]}}, "cancel_only"),
    ({"latency": {"dwel_ms": 1}}, "unknown key `dwel_ms`"),
    ({"latency": {"width_mult": [1, 2]}}, "length 3"),
])
def test_bad_regime_config_is_a_clear_error(section, match) -> None:
    with pytest.raises(ValueError, match=match):
        R.RegimeConfig.from_config(section)
