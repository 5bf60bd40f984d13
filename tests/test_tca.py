"""``mm tca``: every per-fill number on a market whose answer is known, clustered intervals that
cover, and the whole command on a simulated backtest run directory."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mm_core.cli import main
from mm_core.trading.session_dir import load_session
from mm_core.trading.tca import TcaSettings, analyse
from mm_core.trading.tca_stats import cluster_mean_ci, t_quantile
from tests.trading_runs import S, T0, as_paper, backtest_run, known_market, known_session


@pytest.fixture(scope="module")
def bt_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tca")
    return backtest_run(root / "run", root / "cache"), root / "cache"


def test_t_quantile_matches_tables():
    for df, want in ((1, 12.7062), (4, 2.7764), (10, 2.2281), (30, 2.0423), (1000, 1.9623)):
        assert t_quantile(0.975, df) == pytest.approx(want, abs=2e-4)
    assert t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-9)
    assert t_quantile(0.025, 4) == pytest.approx(-2.7764, abs=2e-4)


def test_clustered_interval_covers_where_the_naive_one_does_not():
    """Fills in bursts share one shock: the cluster-robust interval covers the true mean ~95 % of the
    time; treating the fills as independent (one cluster per fill) covers far less."""
    rng = np.random.default_rng(7)
    hit_c = hit_n = 0
    reps = 400
    for _ in range(reps):
        n_bursts, size = 30, 10
        burst_t = np.arange(n_bursts) * 120 * S + 10 * S  # one burst per 2-minute block
        ts = (burst_t[:, None] + rng.integers(0, S, (n_bursts, size))).ravel()
        x = (rng.normal(0, 1, n_bursts)[:, None] + rng.normal(0, 0.3, (n_bursts, size))).ravel()
        w = rng.uniform(0.5, 1.5, x.size)
        c = cluster_mean_ci(x, w, ts // (60 * S))
        naive = cluster_mean_ci(x, w, np.arange(x.size))
        hit_c += c["ci"][0] <= 0 <= c["ci"][1]
        hit_n += naive["ci"][0] <= 0 <= naive["ci"][1]
    assert 0.91 <= hit_c / reps <= 0.99
    assert hit_n / reps < 0.6


def test_too_few_clusters_give_no_interval():
    d = cluster_mean_ci(np.array([1.0, 2.0, 3.0]), None, np.array([0, 0, 1]))
    assert d["mean"] == pytest.approx(2.0) and d["ci"] is None and d["clusters"] == 2


def _known(tmp_path, extra=None):
    npz = known_market(tmp_path / "m.npz", [(0, 100.0), (2, 101.0), (10, 99.0), (40, 99.0)])
    fills = [
        {"ts": T0 + S // 2, "local_ts": T0 + 6 * S // 10, "order_id": "a", "side": 1, "price": 99.9, "qty": 1.0,
         "fee": 0.01},
        {"ts": T0 + 3 * S, "local_ts": T0 + 3 * S, "order_id": "b", "side": -1, "price": 101.1, "qty": 2.0,
         "fee": 0.0, "maker": False},
    ]
    orders = [
        {"order_id": "a", "side": 1, "price": 99.9, "qty": 1.0, "filled": 1.0, "result": "filled",
         "created_ts": T0 + 2 * S // 10},
        {"order_id": "b", "side": -1, "price": 101.1, "qty": 2.0, "filled": 2.0, "result": "filled",
         "created_ts": T0 + 25 * S // 10},
        {"order_id": "c", "side": 1, "price": 99.8, "qty": 1.0, "filled": 0.0, "result": "canceled",
         "created_ts": T0 + 4 * S},
        {"order_id": "d", "side": -1, "price": 100.0, "qty": 1.0, "filled": 0.0, "result": "rejected_post_only",
         "created_ts": T0 + 5 * S},
    ]
    return known_session(tmp_path / "run", npz, fills, orders, extra_fill_columns=extra)


def test_every_per_fill_number_on_a_known_market(tmp_path):
    rd = _known(tmp_path, extra={"lat_regime": [0, 2], "vol_regime": ["high", "low"]})
    r = analyse([load_session(rd)])
    f = r.fills
    bp = 1e4
    assert f["spread_fair"] == pytest.approx([(100 - 99.9) / 99.9 * bp, -(101 - 101.1) / 101.1 * bp])
    assert f["markout_fair_1s"] == pytest.approx([(100 - 99.9) / 99.9 * bp, -(101 - 101.1) / 101.1 * bp])
    assert f["markout_fair_5s"] == pytest.approx([(101 - 99.9) / 99.9 * bp, -(101 - 101.1) / 101.1 * bp])
    assert f["markout_fair_30s"] == pytest.approx([(99 - 99.9) / 99.9 * bp, -(99 - 101.1) / 101.1 * bp])
    assert np.isnan(f["markout_fair_300s"]).all()  # past the end of the data: left out, not clipped
    assert f["adverse_fair_5s"] == pytest.approx([(101 - 100) / 99.9 * bp, 0.0])
    assert f["slippage_bps"] == pytest.approx([(99.9 - 100) / 100 * bp, -(101.1 - 101) / 101 * bp])
    assert f["queue_s"] == pytest.approx([0.4, 0.5])
    assert f["fee_bps"] == pytest.approx([0.01 / 99.9 * bp, 0.0])
    s = r.summary
    want = (1 * (100 - 99.9) / 99.9 + 2 * (101.1 - 101) / 101.1) / 3 * bp
    assert s["markouts"]["1s"]["mean"] == pytest.approx(want)
    assert s["markouts"]["1s"]["n"] == 2 and s["markouts"]["1s"]["ci"] is None  # 1 cluster: no interval
    assert s["markouts"]["300s"]["n"] == 0 and s["markouts"]["300s"]["mean"] is None
    assert s["maker_share"] == pytest.approx(1 / 3)
    assert s["fill_rate"] == {"orders": 3, "filled_orders": 2, "rate": pytest.approx(2 / 3),
                              "qty_rate": pytest.approx(3 / 4), "rejected": 1}
    # PnL split with the recorded fees: cash + position * final mid - fees
    direct = -(99.9 * 1) + 2 * 101.1 + (1 - 2) * 99.0 - 0.01
    assert s["pnl"]["total"] == pytest.approx(direct)
    g = r.groups
    assert set(g["lat_regime"]) == {"normal", "unsafe"} and set(g["vol_regime"]) == {"high", "low"}
    assert g["side"]["buy"]["fills"] == 1 and g["side"]["sell"]["fills"] == 1
    assert g["side"]["buy"]["fill_rate"]["orders"] == 2 and g["side"]["sell"]["fill_rate"]["orders"] == 1
    assert r.worst[0]["order_id"] == "a"  # -0.9 EUR at 30 s minus its fee: the worst fill


def test_fee_charged_in_base_asset_is_valued_at_the_fill_price(tmp_path):
    npz = known_market(tmp_path / "m.npz", [(0, 100.0), (40, 100.0)])
    fills = [{"ts": T0 + S, "order_id": "a", "side": 1, "price": 99.9, "qty": 1.0, "fee": 0.001, "fee_asset": "BTC"}]
    orders = [{"order_id": "a", "side": 1, "price": 99.9, "qty": 1.0, "filled": 1.0, "result": "filled",
               "created_ts": T0}]
    rd = known_session(tmp_path / "run", npz, fills, orders)
    r = analyse([load_session(rd)])
    assert r.summary["fees"] == pytest.approx(0.001 * 99.9)


def test_mm_tca_on_a_backtest_run_directory(bt_run, tmp_path, capsys, monkeypatch):
    rd, cache = bt_run
    monkeypatch.setenv("MM_CACHE_DIR", str(cache))
    html, daily = tmp_path / "tca.html", tmp_path / "daily.csv"
    assert main(["tca", str(rd), "--json", "--html", str(html), "--csv", str(daily)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["markouts"]) == {"1s", "5s", "30s", "300s"}
    for h, m in out["markouts"].items():
        assert {"mean", "ci", "n"} <= set(m) and m["n"] > 100 and m["ci"][0] < m["mean"] < m["ci"][1], h
        assert {"mean", "ci", "n"} <= set(m["mid"])
    assert list(out["groups"]["vol_bucket"])[:3] == ["low", "mid", "high"]
    for b in ("low", "mid", "high"):
        assert out["groups"]["vol_bucket"][b]["fills"] > 0
        assert out["groups"]["vol_bucket"][b]["markouts"]["30s"]["ci"] is not None
    # the edges are the 50/80 % quantiles of time: "high" holds 20 % of it, plus the time whose trailing
    # volatility equals the edge (the simulator's quiet market repeats values: ~21 % here)
    assert 0.19 <= out["vol_buckets"]["time_share"]["high"] <= 0.25
    # the same PnL as the backtest itself: the fees the run directory carries are the engine's
    bt = json.loads((rd / "backtest.json").read_text())
    assert out["pnl"]["total"] == pytest.approx(bt["total_pnl"], abs=1e-9)
    assert out["pnl"]["fees"] == pytest.approx(bt["fees"], abs=1e-12) and bt["fees"] > 0
    assert out["fills"] == bt["fills"]
    assert out["fill_rate"]["orders"] > out["fill_rate"]["filled_orders"] > 0
    text = html.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == 3 and "<script" not in text and "src='http" not in text
    assert "Worst fills" in text
    rows = list(csv.DictReader(daily.open()))
    assert len(rows) == 1 and rows[0]["date"] == "2026-01-01" and int(rows[0]["fills"]) == bt["fills"]
    assert main(["tca", str(rd)]) == 0
    assert "markouts, bp" in capsys.readouterr().out


def test_mm_tca_refuses_other_market_data_and_bad_dirs(bt_run, tmp_path, capsys, monkeypatch):
    rd, cache = bt_run
    monkeypatch.setenv("MM_CACHE_DIR", str(cache))
    assert main(["tca", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    import shutil

    other = tmp_path / "other"
    shutil.copytree(rd, other)
    info = json.loads((other / "session.json").read_text())
    info["market"]["seconds"] = 60.0  # a different day than the one traded
    (other / "session.json").write_text(json.dumps(info))
    assert main(["tca", str(other)]) == 2
    assert "fingerprint differs" in capsys.readouterr().err


def test_paper_and_backtest_sessions_pool_in_one_tca(bt_run, tmp_path, monkeypatch):
    import shutil

    rd, cache = bt_run
    monkeypatch.setenv("MM_CACHE_DIR", str(cache))
    paper = as_paper(shutil.copytree(rd, tmp_path / "paper"))
    r = analyse([load_session(rd), load_session(paper)], TcaSettings())
    n = r.summary["fills"]
    assert n == 2 * analyse([load_session(rd)]).summary["fills"]
    assert set(r.groups["run"]) == {"run", "paper"}
