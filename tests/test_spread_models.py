"""Spread models of the signal pipeline against references we did not write.

* static OLS hedge: statsmodels OLS; rolling OLS hedge (known at t-1): statsmodels RollingOLS;
* log prices; fixed z-score from the training window; ewm z-score: pandas ``ewm(adjust=False)``;
* Chan's sqrt(Q) bands: the Kalman filter's own Q; dollar-neutral sizing: closed form;
* streaming engine == batch for every model (bit-identical).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.regression.rolling import RollingOLS

from pairtrade.config import StrategyParams
from pairtrade.signals.kalman import kalman_hedge
from pairtrade.signals.pipeline import SIGNAL_KEYS, SignalEngine, compute_signals, fit_ols, fixed_zscore_stats
from pairtrade.strategy.kernel import params_to_vector, position_size


def _pair(n=1500, seed=3):
    rng = np.random.default_rng(seed)
    x = 60 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    u = np.zeros(n)
    for i in range(1, n):
        u[i] = 0.95 * u[i - 1] + rng.normal(0, 0.003)
    y = np.exp(0.3 + 0.9 * np.log(x) + u)
    return y, x


WIN = dict(zscore_window_bars=40, hurst_window_bars=50, adf_window_bars=120, warmup_bars=120)


def test_static_ols_log_matches_statsmodels_and_level_spread():
    y, x = _pair()
    b, a = fit_ols(y[:500], x[:500], "log")
    ref = sm.OLS(np.log(y[:500]), sm.add_constant(np.log(x[:500]))).fit().params
    assert b == pytest.approx(ref[1], rel=1e-12) and a == pytest.approx(ref[0], rel=1e-10)
    p = StrategyParams(hedge="ols", prices="log", hedge_beta=b, hedge_alpha=a, **WIN)
    sig = compute_signals(y, x, p)
    lvl = np.log(y) - b * np.log(x) - a
    np.testing.assert_allclose(sig["level_spread"], lvl, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(sig["spread"], sig["level_spread"])
    # rolling z-score = pandas rolling (ddof=1)
    s = pd.Series(lvl)
    z = (s - s.rolling(40).mean()) / s.rolling(40).std()
    np.testing.assert_allclose(sig["zscore"], z.to_numpy(), rtol=1e-8, atol=1e-9, equal_nan=True)
    # sizing units: shares of x per share of y, USD per spread unit
    np.testing.assert_allclose(sig["beta"], b * y / x, rtol=1e-14)
    np.testing.assert_allclose(sig["spread_std"], s.rolling(40).std().to_numpy() * y, rtol=1e-8, equal_nan=True)


def test_rolling_ols_hedge_is_known_at_t_minus_1():
    y, x = _pair(800)
    w = 100
    p = StrategyParams(hedge="rolling_ols", ols_window_bars=w, **WIN)
    sig = compute_signals(y, x, p)
    fit = RollingOLS(y, sm.add_constant(x), window=w).fit().params  # row t: window ending at t
    beta_t, alpha_t = fit[:, 1], fit[:, 0]
    np.testing.assert_allclose(sig["beta"], beta_t, rtol=1e-9, equal_nan=True)
    expect = np.full(800, np.nan)
    expect[w:] = y[w:] - beta_t[w - 1:-1] * x[w:] - alpha_t[w - 1:-1]
    np.testing.assert_allclose(sig["level_spread"], expect, rtol=1e-9, atol=1e-9, equal_nan=True)
    assert np.isnan(sig["level_spread"][:w]).all()
    # a future price never changes a past spread
    y2 = y.copy()
    y2[600:] *= 1.5
    sig2 = compute_signals(y2, x, p)
    np.testing.assert_array_equal(sig2["level_spread"][:600], sig["level_spread"][:600])


def test_fixed_and_ewm_zscores():
    y, x = _pair()
    b, a = fit_ols(y[:500], x[:500], "level")
    m, sd = fixed_zscore_stats(y[:500] - b * x[:500] - a)
    p = StrategyParams(hedge="ols", hedge_beta=b, hedge_alpha=a, zscore="fixed", zscore_mean=m, zscore_std=sd, **WIN)
    sig = compute_signals(y, x, p)
    lvl = y - b * x - a
    np.testing.assert_allclose(sig["zscore"], (lvl - np.mean(lvl[:500])) / np.std(lvl[:500], ddof=1), rtol=1e-10)
    h = 30.0
    p = StrategyParams(hedge="ols", hedge_beta=b, hedge_alpha=a, zscore="ewm", zscore_halflife_bars=h, **WIN)
    sig = compute_signals(y, x, p)
    s = pd.Series(lvl)
    mean = s.ewm(halflife=h, adjust=False).mean()
    var = s.ewm(halflife=h, adjust=False).var(bias=True)
    z = ((s - mean) / np.sqrt(var)).to_numpy().copy()
    z[:39] = np.nan
    np.testing.assert_allclose(sig["zscore"], z, rtol=1e-8, atol=1e-9, equal_nan=True)


def test_forecast_error_and_chan_bands():
    y, x = _pair(600)
    p = StrategyParams(spread="forecast_error", zscore="forecast_std", **WIN)
    sig = compute_signals(y, x, p)
    beta, alpha, e, q = kalman_hedge(y, x, p.kalman_delta, p.kalman_ve)
    np.testing.assert_allclose(sig["spread"], e, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sig["zscore"], e / np.sqrt(q), rtol=1e-12)
    np.testing.assert_allclose(sig["spread_std"], np.sqrt(q), rtol=1e-12)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(spread="forecast_error", zscore="forecast_std"),
    dict(hedge="rolling_ols", prices="log", zscore="ewm"),
    dict(hedge="ols", hedge_beta=0.9, hedge_alpha=0.3, prices="log", zscore="fixed", zscore_mean=0.0, zscore_std=0.01),
])
def test_streaming_equals_batch_for_every_model(kw):
    y, x = _pair(700)
    p = StrategyParams(**WIN, **kw)
    sig = compute_signals(y, x, p)
    eng = SignalEngine(p)
    eng.warm_up(y[:300], x[:300])
    snaps = np.array([tuple(eng.update(a, b)) for a, b in zip(y[300:], x[300:])])
    for i, k in enumerate(SIGNAL_KEYS):
        np.testing.assert_array_equal(snaps[:, i], sig[k][300:], err_msg=k)


def test_model_validation_errors():
    with pytest.raises(ValueError, match="hedge_beta"):
        StrategyParams(hedge="ols")
    with pytest.raises(ValueError, match="forecast_error"):
        StrategyParams(hedge="ols", hedge_beta=1, hedge_alpha=0, spread="forecast_error")
    with pytest.raises(ValueError, match="zscore_mean"):
        StrategyParams(zscore="fixed")
    with pytest.raises(ValueError, match="> 0"):
        compute_signals([1.0, -2.0, 3.0], [1.0, 2.0, 3.0], StrategyParams(prices="log"))


def test_dollar_neutral_sizing():
    p = StrategyParams(sizing="dollar_neutral", max_notional_usd=10_000, risk_per_trade_usd=1e9)
    qy, qx = position_size(0.5, 1.0, 100.0, 40.0, params_to_vector(p))
    assert qy == 100 and qx == 250  # 10,000 USD each leg
    p = StrategyParams(max_notional_usd=10_000, risk_per_trade_usd=1e9)
    qy, qx = position_size(0.5, 1.0, 100.0, 40.0, params_to_vector(p))
    assert qy == 100 and qx == 50  # beta-weighted
