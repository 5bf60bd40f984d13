"""`avellaneda-stoikov` and `glft`: known answers computed by hand, and the properties the models promise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mm_core.strategy import avellaneda_stoikov as AS
from mm_core.strategy import glft as GL
from mm_core.strategy import view as V

S = 80_000.0


def quote(mod, params, position=0.0, *, width=1.0, size=1.0, trading=V.TRADING_ACTIVE, market=V.MKT_ONLINE,
          sigma=math.nan, fair=S, max_position=0.0) -> np.ndarray:
    p = params if isinstance(params, np.ndarray) else params.vector()
    view = np.zeros(V.N_V)
    view[V.V_FAIR] = fair
    view[V.V_BID] = fair - 0.05
    view[V.V_ASK] = fair + 0.05
    view[V.V_POSITION] = position
    view[V.V_SIGMA] = sigma
    view[V.V_WIDTH_MULT] = width
    view[V.V_SIZE_MULT] = size
    view[V.V_TRADING] = trading
    view[V.V_MARKET] = market
    view[V.V_MAX_POSITION] = max_position
    view[V.V_TICK] = 0.1
    view[V.V_LOT] = 1e-8
    out = np.zeros(V.N_Q)
    mod.decide(np.int64(0), p, np.zeros(mod.STATE_SIZE), view, np.zeros((0, V.N_O)), np.int64(0), out)
    return out


# ----------------------------------------------------------------------------- known answers
# Expected values computed independently with decimal arithmetic at 40 digits (the formulas in the
# module docstrings, term by term); the code computes in float64.


def test_glft_known_answer() -> None:
    # gamma = xi = 0.5/EUR, Delta = 0.002 BTC, A = 1.5/s, kappa = 8/EUR, sigma = 2 EUR/sqrt(s), q = 0.004 BTC
    # x = xi*Delta/kappa = 1.25e-4; c1 = ln(1+x)/(xi*Delta) = 0.12499218815098...
    # c2 = sqrt(0.5/(2*1.5*0.002*8) * (1+x)^(1/x+1)) = 5.3213913039179...
    p = GL.Params(gamma=0.5, order_qty=0.002, max_position=0.01, A=1.5, kappa=8.0, sigma=2.0)
    c1, c2 = p.constants()
    assert c1 == pytest.approx(0.1249921881509806376, rel=1e-13)
    assert c2 == pytest.approx(5.3213913039179657604, rel=1e-13)
    out = quote(GL, p, 0.004)
    assert out[V.Q_BID_PX] == pytest.approx(79_999.82179389880984, abs=1e-9)
    assert out[V.Q_ASK_PX] == pytest.approx(80_000.09306384032747, abs=1e-9)
    assert out[V.Q_BID_QTY] == 0.002 and out[V.Q_ASK_QTY] == 0.002 and out[V.Q_REASON] == V.R_QUOTE


def test_glft_xi_zero_takes_the_limits() -> None:
    # xi = 0: c1 = 1/kappa = 0.125, c2 = sqrt(0.5/0.048 * e) = 5.32122501996627...
    p = GL.Params(gamma=0.5, xi=0.0, order_qty=0.002, max_position=0.01, A=1.5, kappa=8.0, sigma=2.0)
    c1, c2 = p.constants()
    assert c1 == 0.125 and c2 == pytest.approx(5.3212250199662722528, rel=1e-13)
    assert quote(GL, p, 0.004)[V.Q_BID_PX] == pytest.approx(79_999.82178774980034, abs=1e-9)


def test_avellaneda_stoikov_known_answer() -> None:
    # gamma = 2/EUR, order_qty = 0.001 (g = 0.002), omega = 0.5/s, kappa = 10/EUR, sigma = 3, q = 0.003 (n = 3)
    # from the value function v ~ -1/(2w - g^2 m^2 s^2) at inventory m (indifference prices):
    # r_a = s - ln(D(n-1)/D(n)) / g = 79999.909978934827636..., r_b = s + ln(D(n+1)/D(n)) / g = 79999.873943273805820...
    # c = ln(1 + g/kappa) / g = 0.0999900013331333653; bid = r_b - c, ask = r_a + c
    p = AS.Params(gamma=2.0, order_qty=0.001, max_position=0.01, omega=0.5, kappa=10.0, sigma=3.0)
    out = quote(AS, p, 0.003)
    assert out[V.Q_BID_PX] == pytest.approx(79_999.77395327247269, abs=1e-9)
    assert out[V.Q_ASK_PX] == pytest.approx(80_000.00996893616077, abs=1e-9)
    wide = quote(AS, p, 0.003, width=2.0)  # the half-spread around r doubles, the skew does not
    assert wide[V.Q_BID_PX] == pytest.approx(79_999.65594544062865, abs=1e-9)
    assert wide[V.Q_ASK_PX] == pytest.approx(80_000.12797676800481, abs=1e-9)


# ----------------------------------------------------------------------------- properties

_gl = st.builds(GL.Params, gamma=st.floats(0.05, 50), order_qty=st.floats(1e-4, 0.01), max_position=st.just(0.05),
                A=st.floats(0.05, 20), kappa=st.floats(0.5, 50), sigma=st.floats(0.05, 20))
_as = st.builds(AS.Params, gamma=st.floats(0.05, 10), order_qty=st.floats(1e-4, 0.01), max_position=st.just(0.05),
                omega=st.floats(0.5, 20), kappa=st.floats(0.5, 50), sigma=st.floats(0.05, 10))


def _bid_ask(mod, p, q, **kw) -> tuple[float, float]:
    """Both quotes around a fair of 100 (the models are translation-invariant; a small price keeps
    float64 resolution for tiny spread changes); the example is discarded where the model itself has
    no quote (A-S beyond ``2 omega > g^2 sigma^2 (n +/- 1)^2``)."""
    out = quote(mod, p, q, fair=100.0, **kw)
    assume(out[V.Q_BID_QTY] > 0 or q >= p.max_position)
    assume(out[V.Q_ASK_QTY] > 0 or q <= -p.max_position)
    return out[V.Q_BID_PX], out[V.Q_ASK_PX]


@settings(max_examples=150, deadline=None)
@given(p=st.one_of(_gl.map(lambda x: (GL, x)), _as.map(lambda x: (AS, x))))
def test_symmetric_at_zero_inventory(p) -> None:
    mod, params = p
    bid, ask = _bid_ask(mod, params, 0.0)
    assert 100.0 - bid == pytest.approx(ask - 100.0, rel=1e-9, abs=1e-12)
    assert bid < 100.0 < ask


@settings(max_examples=150, deadline=None)
@given(p=st.one_of(_gl.map(lambda x: (GL, x)), _as.map(lambda x: (AS, x))),
       qs=st.lists(st.floats(-0.0499, 0.0499), min_size=2, max_size=6))
def test_quotes_fall_as_inventory_rises(p, qs) -> None:
    mod, params = p
    qs = sorted(qs)
    prev = None
    for q in qs:
        bid, ask = _bid_ask(mod, params, q)
        if prev is not None:
            assert bid <= prev[0] + 1e-9 and ask <= prev[1] + 1e-9  # longer -> lower quotes (sell more easily)
        prev = (bid, ask)


@settings(max_examples=150, deadline=None)
@given(p=st.one_of(_gl.map(lambda x: (GL, x)), _as.map(lambda x: (AS, x))), f=st.floats(1.05, 4.0))
def test_wider_with_sigma(p, f) -> None:
    mod, params = p
    b0, a0 = _bid_ask(mod, params, 0.0)
    b1, a1 = _bid_ask(mod, params.__class__(**{**params.__dict__, "sigma": params.sigma * f}), 0.0)
    assert a1 - b1 > a0 - b0


@settings(max_examples=150, deadline=None)
@given(p=_gl, f=st.floats(1.05, 4.0))
def test_glft_wider_with_gamma(p, f) -> None:
    # gamma drives the inventory term sqrt(gamma ...); with the default xi = gamma the c1 term also
    # shrinks a little (by up to Delta / (2 kappa^2) per unit of xi), so hold xi to compare gamma alone
    p = GL.Params(**{**p.__dict__, "xi": p.xi_value})
    b0, a0 = _bid_ask(GL, p, 0.0)
    b1, a1 = _bid_ask(GL, GL.Params(**{**p.__dict__, "gamma": p.gamma * f}), 0.0)
    assert a1 - b1 > a0 - b0


@settings(max_examples=150, deadline=None)
@given(p=_as, f=st.floats(1.05, 4.0))
def test_avellaneda_stoikov_wider_with_gamma_when_inventory_risk_dominates(p, f) -> None:
    # spread(gamma) ~ g sigma^2/omega + (2/g) ln(1 + g/kappa): rising in gamma iff sigma^2/omega > ~1/kappa^2
    # (the model's own condition; with a negligible sigma the spread tends to 2/kappa from above)
    if p.sigma ** 2 / p.omega <= 2.0 / p.kappa ** 2:
        return
    b0, a0 = _bid_ask(AS, p, 0.0)
    b1, a1 = _bid_ask(AS, AS.Params(**{**p.__dict__, "gamma": p.gamma * f}), 0.0)
    assert a1 - b1 > a0 - b0


# ----------------------------------------------------------------------------- what the view tells them

MODELS = [
    (GL, GL.Params(A=1.0, kappa=5.0, sigma=1.0)),
    (AS, AS.Params(kappa=5.0, sigma=1.0)),
]


@pytest.mark.parametrize("mod, p", MODELS)
def test_width_and_size_multipliers_are_honoured(mod, p) -> None:
    base = quote(mod, p, 0.002)
    wide = quote(mod, p, 0.002, width=3.0, size=0.5)
    mid_b = 0.5 * (base[V.Q_BID_PX] + base[V.Q_ASK_PX])
    mid_w = 0.5 * (wide[V.Q_BID_PX] + wide[V.Q_ASK_PX])
    assert mid_w == pytest.approx(mid_b, abs=1e-9)  # the inventory skew is not widened
    assert wide[V.Q_ASK_PX] - wide[V.Q_BID_PX] == pytest.approx(3 * (base[V.Q_ASK_PX] - base[V.Q_BID_PX]), abs=1e-9)
    assert wide[V.Q_BID_QTY] == pytest.approx(0.5 * p.order_qty)
    none = quote(mod, p, 0.0, size=0.0)  # e.g. latency unsafe
    assert none[V.Q_BID_QTY] == 0 and none[V.Q_ASK_QTY] == 0


@pytest.mark.parametrize("mod, p", MODELS)
def test_told_states_remove_sides(mod, p) -> None:
    out = quote(mod, p, 0.003, trading=V.TRADING_HALTED)
    assert (out[V.Q_BID_QTY], out[V.Q_ASK_QTY], out[V.Q_REASON]) == (0, 0, V.R_HALTED)
    out = quote(mod, p, 0.003, trading=V.TRADING_REDUCING)
    assert out[V.Q_BID_QTY] == 0 and out[V.Q_ASK_QTY] > 0 and out[V.Q_REASON] == V.R_REDUCING
    out = quote(mod, p, -0.003, trading=V.TRADING_REDUCING)
    assert out[V.Q_BID_QTY] > 0 and out[V.Q_ASK_QTY] == 0
    for mkt in (V.MKT_CANCEL_ONLY, V.MKT_MAINTENANCE):
        out = quote(mod, p, 0.0, market=mkt)
        assert (out[V.Q_BID_QTY], out[V.Q_ASK_QTY], out[V.Q_REASON]) == (0, 0, V.R_MARKET)
    out = quote(mod, p, p.max_position)  # at the strategy's max position: no more buying
    assert out[V.Q_BID_QTY] == 0 and out[V.Q_ASK_QTY] > 0 and out[V.Q_REASON] == V.R_INVENTORY
    out = quote(mod, p, 0.004, max_position=0.004)  # the risk limit in the view, tighter than the strategy's
    assert out[V.Q_BID_QTY] == 0 and out[V.Q_ASK_QTY] > 0
    out = quote(mod, p, 0.0, fair=math.nan)
    assert out[V.Q_BID_QTY] == 0 and out[V.Q_ASK_QTY] == 0 and out[V.Q_REASON] == V.R_NO_BOOK


@pytest.mark.parametrize("mod, p", MODELS)
def test_live_sigma_only_when_asked_and_known(mod, p) -> None:
    calibrated = quote(mod, p, 0.0, sigma=5.0)
    assert calibrated[V.Q_ASK_PX] == quote(mod, p, 0.0)[V.Q_ASK_PX]  # calibrated: the view's sigma is ignored
    live = p.__class__(**{**p.__dict__, "sigma_source": "live"})
    assert quote(mod, live, 0.0, sigma=5.0)[V.Q_ASK_PX] > calibrated[V.Q_ASK_PX]
    assert quote(mod, live, 0.0, sigma=math.nan)[V.Q_ASK_PX] == calibrated[V.Q_ASK_PX]  # unknown: fall back


def test_params_read_the_calibration_and_the_config_overrides_it() -> None:
    cal = {"format": "mm_core.calibration/1", "A": 2.0, "kappa": 7.0, "sigma": 1.5, "source": "sim",
           "window": {"from": "a", "to": "b"}}
    g = GL.Params.from_config({"gamma": 0.2, "kappa": 9.0}, calibration=cal)
    assert (g.A, g.kappa, g.sigma, g.gamma) == (2.0, 9.0, 1.5, 0.2)
    assert "sim" in g.calibration
    a = AS.Params.from_config({}, calibration=cal)
    assert (a.kappa, a.sigma) == (7.0, 1.5)


@pytest.mark.parametrize("mod", [GL, AS])
def test_params_errors_are_clear(mod) -> None:
    with pytest.raises(ValueError, match=r"needs .*kappa.*mm calibrate"):
        mod.Params.from_config({}).vector()
    with pytest.raises(ValueError, match=r"unknown key\(s\) gama"):
        mod.Params.from_config({"gama": 1.0})
    with pytest.raises(ValueError, match="gamma must be > 0"):
        mod.Params.from_config({"gamma": -1.0})
    with pytest.raises(ValueError, match="max_position must be >= order_qty"):
        mod.Params.from_config({"order_qty": 0.1, "max_position": 0.01})
    with pytest.raises(ValueError, match="'kappa' missing"):
        mod.Params.from_config({}, calibration={"A": 1.0, "sigma": 1.0})


def test_avellaneda_stoikov_state_cache_changes_nothing() -> None:
    """The kept reservation offsets give bit-identical quotes to a fresh computation every time."""
    p = AS.Params(kappa=5.0, sigma=1.0, sigma_source="live").vector()
    rng = np.random.default_rng(4)
    state = np.zeros(AS.STATE_SIZE)
    view = np.zeros(V.N_V)
    view[[V.V_FAIR, V.V_WIDTH_MULT, V.V_SIZE_MULT]] = (S, 1.0, 1.0)
    orders = np.zeros((0, V.N_O))
    for _ in range(300):
        if rng.random() < 0.3:
            view[V.V_POSITION] = rng.choice([-0.02, -0.004, 0.0, 0.001, 0.009, 0.05])
        if rng.random() < 0.2:
            view[V.V_SIGMA] = rng.choice([math.nan, 0.5, 2.0, 40.0])
        view[V.V_FAIR] = S + rng.normal()
        kept, fresh = np.zeros(V.N_Q), np.zeros(V.N_Q)
        AS.decide(np.int64(0), p, state, view, orders, np.int64(0), kept)
        AS.decide(np.int64(0), p, np.zeros(AS.STATE_SIZE), view, orders, np.int64(0), fresh)
        assert kept.tobytes() == fresh.tobytes()
