"""Kalman hedge ratio against pykalman and Chan's published Example 3.3 figures; rolling z-score vs pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pykalman import KalmanFilter

from pairtrade.signals import KalmanHedge, RollingZScore, kalman_hedge, rolling_zscore


def pykalman_reference(y, x, delta, ve):
    """beta, alpha, e, Q from pykalman with Chan's set-up (zero initial state and covariance)."""
    n = len(y)
    vw = delta / (1 - delta) * np.eye(2)
    H = np.stack([x, np.ones(n)], axis=1)
    kf = KalmanFilter(
        transition_matrices=np.eye(2),
        observation_matrices=H[:, None, :],
        transition_covariance=vw,
        observation_covariance=np.array([[ve]]),
        initial_state_mean=np.zeros(2),
        initial_state_covariance=np.zeros((2, 2)),
    )
    m, P = kf.filter(y)
    m_pred = np.vstack([np.zeros(2), m[:-1]])
    P_pred = np.concatenate([np.zeros((1, 2, 2)), P[:-1] + vw])
    e = y - (H * m_pred).sum(axis=1)
    q = np.einsum("ti,tij,tj->t", H, P_pred, H) + ve
    return m[:, 0], m[:, 1], e, q


def assert_close_to_pykalman(y, x, delta, ve):
    got = kalman_hedge(y, x, delta, ve)
    ref = pykalman_reference(y, x, delta, ve)
    for name, g, r in zip(("beta", "alpha", "e", "q"), got, ref):
        scale = max(1.0, float(np.abs(r).max()))
        assert np.abs(g - r).max() <= 1e-10 * scale, name


def test_chan_ewa_ewc_equals_pykalman(chan_etf):
    df = pd.read_csv(chan_etf)
    assert_close_to_pykalman(df["EWC"].to_numpy(float), df["EWA"].to_numpy(float), 1e-4, 1e-3)


def test_chan_example_3_3_published_apr_and_sharpe(chan_etf):
    """Chan (2013) KF_beta_EWA_EWC.m ends with ``APR=0.262252 Sharpe=2.361162`` (PROVENANCE.md)."""
    df = pd.read_csv(chan_etf)
    y, x = df["EWC"].to_numpy(float), df["EWA"].to_numpy(float)
    beta, _, e, q = kalman_hedge(y, x, 1e-4, 1e-3)
    sq = np.sqrt(q)
    units = np.where(e < -sq, 1.0, 0.0) + np.where(e > sq, -1.0, 0.0)
    prices = np.stack([x, y], axis=1)
    pos = units[:, None] * np.stack([-beta, np.ones_like(beta)], axis=1) * prices
    pnl = (pos[:-1] * (prices[1:] - prices[:-1]) / prices[:-1]).sum(axis=1)
    gross = np.abs(pos[:-1]).sum(axis=1)
    ret = np.concatenate([[0.0], np.divide(pnl, gross, out=np.zeros_like(pnl), where=gross > 0)])
    apr = np.prod(1 + ret) ** (252 / len(ret)) - 1
    sharpe = np.sqrt(252) * ret.mean() / ret.std(ddof=1)
    assert round(apr, 6) == 0.262252
    assert round(sharpe, 6) == 2.361162


def test_first_bar_is_chan_initialisation():
    beta, alpha, e, q = kalman_hedge(np.array([50.0, 51.0]), np.array([20.0, 20.5]))
    assert (beta[0], alpha[0], e[0], q[0]) == (0.0, 0.0, 50.0, 1e-3)  # R_0 = 0: no update at bar 0
    assert e[1] == 51.0 and beta[1] > 0


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 400),
    delta=st.sampled_from([1e-5, 1e-4, 1e-2]),
    ve=st.sampled_from([1e-4, 1e-3, 1.0]),
    level=st.sampled_from([1.0, 30.0, 400.0]),
)
def test_random_pairs_equal_pykalman(seed, n, delta, ve, level):
    rng = np.random.default_rng(seed)
    x = level * np.exp(np.cumsum(rng.standard_normal(n) * 0.01))
    y = 0.7 * x + 3.0 + rng.standard_normal(n) * 0.05 * level
    assert_close_to_pykalman(y, x, delta, ve)


def test_streaming_equals_batch():
    rng = np.random.default_rng(2)
    x = 40 + np.cumsum(rng.standard_normal(500))
    y = 1.3 * x + rng.standard_normal(500)
    batch = kalman_hedge(y, x, 1e-4, 1e-3)
    kf = KalmanHedge(1e-4, 1e-3)
    got = np.array([kf.update(a, b) for a, b in zip(y, x)])
    for i in range(4):
        np.testing.assert_array_equal(got[:, i], batch[i])


def test_kalman_errors():
    with pytest.raises(ValueError, match="delta"):
        kalman_hedge([1.0, 2.0], [1.0, 2.0], delta=1.0)
    with pytest.raises(ValueError, match="ve"):
        kalman_hedge([1.0, 2.0], [1.0, 2.0], ve=0.0)
    with pytest.raises(ValueError, match="equal lengths"):
        kalman_hedge([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        kalman_hedge([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        KalmanHedge().update(float("inf"), 1.0)


def test_collinear_legs_are_fine():
    """y exactly proportional to x: the filter converges to beta ~ 2, no error and no NaN."""
    x = 50 + np.cumsum(np.random.default_rng(4).standard_normal(2000))
    beta, alpha, e, q = kalman_hedge(2.0 * x, x)
    assert np.isfinite(beta).all() and abs(beta[-1] - 2.0) < 0.05


# ----------------------------------------------------------------------------------------------
# rolling z-score
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("window", [2, 5, 78])
def test_rolling_zscore_equals_pandas(window):
    v = np.random.default_rng(window).standard_normal(600).cumsum() + 1000.0
    mean, std, z = rolling_zscore(v, window)
    s = pd.Series(v)
    pm, ps = s.rolling(window).mean().to_numpy(), s.rolling(window).std().to_numpy()
    # pandas uses an online add/remove algorithm: agreement to ~1e-10 absolute at a level of 1,000
    np.testing.assert_allclose(mean, pm, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(std, ps, rtol=1e-9, atol=1e-9, equal_nan=True)
    # exact oracle: numpy two-pass on each window
    win = np.lib.stride_tricks.sliding_window_view(v, window)
    np.testing.assert_allclose(std[window - 1 :], win.std(axis=1, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(
        z[window - 1 :], (v[window - 1 :] - win.mean(axis=1)) / win.std(axis=1, ddof=1), rtol=1e-9, atol=1e-12
    )
    rz = RollingZScore(window)
    got = np.array([rz.update(a) for a in v])
    np.testing.assert_array_equal(got[:, 2], z)
    np.testing.assert_array_equal(got[:, 1], std)


def test_rolling_zscore_flat_window_and_errors():
    mean, std, z = rolling_zscore(np.ones(10), 5)
    assert np.isnan(z).all() and (std[4:] == 0).all()
    with pytest.raises(ValueError, match="at least 2"):
        rolling_zscore(np.ones(10), 1)
    with pytest.raises(ValueError, match="finite"):
        RollingZScore(5).update(float("nan"))
