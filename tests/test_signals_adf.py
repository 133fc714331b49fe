"""ADF test and MacKinnon p-values against statsmodels (adfuller, mackinnonp, mackinnoncrit)."""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from statsmodels.tsa import adfvalues
from statsmodels.tsa.stattools import adfuller

from pairtrade.signals import RollingADF, adf, kalman_hedge, mackinnoncrit, mackinnonp
from pairtrade.signals import _mackinnon_tables as T
from pairtrade.signals.adf import default_maxlag

REL = 1e-9


def sm_adf(x, regression="c", maxlag=None, autolag="AIC"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return adfuller(x, maxlag=maxlag, regression=regression, autolag=autolag, result_object=True)


def assert_same(x, regression="c", maxlag=None, autolag="AIC"):
    ref = sm_adf(x, regression, maxlag, autolag)
    got = adf(x, regression=regression, maxlag=maxlag, autolag=autolag)
    assert got.usedlag == ref.lags, (got.usedlag, ref.lags)
    assert got.nobs == ref.nobs
    assert got.stat == pytest.approx(ref.statistic, rel=REL, abs=1e-12)
    # the p-value is MacKinnon's function of the statistic (to 1e-12) and agrees with statsmodels'
    assert abs(got.pvalue - adfvalues.mackinnonp(got.stat, regression=regression, N=1)) <= 1e-12
    # statsmodels' p-value is the same function of its own statistic, which may differ by REL
    assert got.pvalue == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-10)
    for k in ("1%", "5%", "10%"):
        assert got.critical_values[k] == pytest.approx(ref.critical_values[k], rel=1e-14)
    if autolag is not None:
        assert got.icbest == pytest.approx(ref.icbest, rel=1e-9, abs=1e-9)
    return got, ref


# ----------------------------------------------------------------------------------------------
# tables and p-values
# ----------------------------------------------------------------------------------------------
def test_tables_equal_statsmodels():
    regs = ["n", "c", "ct", "ctt"]
    for i, r in enumerate(regs):
        np.testing.assert_array_equal(T.TAU_MAX[i], adfvalues._tau_maxs[r])
        np.testing.assert_array_equal(T.TAU_MIN[i], adfvalues._tau_mins[r])
        np.testing.assert_array_equal(T.TAU_STAR[i], adfvalues._tau_stars[r])
        np.testing.assert_array_equal(T.TAU_SMALLP[i], adfvalues._tau_smallps[r])
        np.testing.assert_array_equal(T.TAU_LARGEP[i], adfvalues._tau_largeps[r])
        v = np.asarray(adfvalues.tau_2010s[r])
        np.testing.assert_array_equal(T.TAU_2010[i, : v.shape[0]], v)


@pytest.mark.parametrize("regression", ["n", "c", "ct", "ctt"])
@pytest.mark.parametrize("N", [1, 2, 3, 6])
def test_mackinnonp_grid(regression, N):
    for stat in np.linspace(-25, 5, 601):
        assert abs(mackinnonp(stat, regression, N) - adfvalues.mackinnonp(stat, regression=regression, N=N)) <= 1e-12


@pytest.mark.parametrize("regression", ["c", "ct", "n"])
def test_mackinnoncrit(regression):
    Ns = [1] if regression == "n" else [1, 2, 5, 12]
    for N in Ns:
        for nobs in (20, 390, 1500, np.inf):
            np.testing.assert_allclose(
                mackinnoncrit(N, regression, nobs), adfvalues.mackinnoncrit(N=N, regression=regression, nobs=nobs), rtol=1e-14
            )


def test_default_maxlag_formula():
    for n in range(4, 3000):
        for reg, ntrend in ((0, 0), (1, 1), (2, 2)):
            ml = int(np.ceil(12.0 * np.power(n / 100.0, 1 / 4.0)))
            assert default_maxlag(n, reg) == min(n // 2 - ntrend - 1, ml)


# ----------------------------------------------------------------------------------------------
# real data
# ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _xom_cvx(path) -> tuple[np.ndarray, np.ndarray]:
    df = pd.read_csv(path)
    df = df[df["symbol"].isin(["XOM", "CVX"])]
    wide = df.pivot(index="datetime", columns="symbol", values="close").dropna()
    return wide["XOM"].to_numpy(float), wide["CVX"].to_numpy(float)


def test_real_spread_windows_all_options(equities_5min):
    y, x = _xom_cvx(equities_5min)
    _, _, e, _ = kalman_hedge(y[:3000], x[:3000])
    rng = np.random.default_rng(3)
    for end in rng.integers(400, 3000, size=6):
        w = e[end - 390 : end]
        for regression in ("c", "n", "ct"):
            for autolag in ("AIC", "BIC", "t-stat", None):
                assert_same(w, regression, None, autolag)
    # the price level itself (large offset, near random walk) and a 1,500-bar window
    assert_same(y[:1500], "c")
    assert_same(y[:1500], "ct", autolag="BIC")
    assert_same(e[1000:2500], "c")


def test_real_chan_etf(chan_etf):
    df = pd.read_csv(chan_etf)
    # 1,500 daily closes; statsmodels needs ~0.25 s per call here, so a few columns only
    assert_same(df["EWA"].to_numpy(float), "c")
    assert_same(df["EWC"].to_numpy(float), "ct")
    assert_same(df["GLD"].to_numpy(float), "c", maxlag=5, autolag=None)


# ----------------------------------------------------------------------------------------------
# random series (property-based)
# ----------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(30, 700),
    phi=st.sampled_from([1.0, 0.99, 0.9, 0.5, 0.0, -0.5]),
    ma=st.floats(-0.8, 0.8),
    scale=st.sampled_from([1e-3, 1.0, 50.0]),
    offset=st.sampled_from([0.0, 100.0, -3000.0]),
    regression=st.sampled_from(["c", "ct", "n"]),
    autolag=st.sampled_from(["AIC", "BIC", "t-stat", None]),
)
def test_random_series_property(seed, n, phi, ma, scale, offset, regression, autolag):
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal(n + 1)
    u = eps[1:] + ma * eps[:-1]
    x = np.empty(n)
    x[0] = u[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + u[i]
    if regression == "n":
        offset = 0.0  # a large offset without a constant is a misspecified, ill-conditioned regression
    # offset/scale > 1e5 leaves statsmodels' pinv with ~1e-9 relative error of its own: see
    # test_ill_conditioned_exact_oracle, where an exact rational oracle decides
    assume(abs(offset) / scale <= 1e5)
    x = offset + scale * x
    assert_same(x, regression, None, autolag)


def _exact_adf_t(x, lag):
    """ADF t statistic (regression "c", ``lag`` lags) in exact rational arithmetic (Fractions)."""
    from fractions import Fraction as F

    def solve(A, b):
        n = len(A)
        M = [row[:] + [b[i]] for i, row in enumerate(A)]
        for c in range(n):
            p = next(r for r in range(c, n) if M[r][c] != 0)
            M[c], M[p] = M[p], M[c]
            for r in range(n):
                if r != c and M[r][c] != 0:
                    f = M[r][c] / M[c][c]
                    M[r] = [a - f * bb for a, bb in zip(M[r], M[c])]
        return [M[i][n] / M[i][i] for i in range(n)]

    xf = [F(float(v)) for v in x]
    d = [xf[i + 1] - xf[i] for i in range(len(xf) - 1)]
    rows = range(lag, len(xf) - 1)
    X = [[F(1), xf[t]] + [d[t - j] for j in range(1, lag + 1)] for t in rows]
    yv = [d[t] for t in rows]
    k = len(X[0])
    XtX = [[sum(r[i] * r[j] for r in X) for j in range(k)] for i in range(k)]
    b = solve(XtX, [sum(r[i] * yy for r, yy in zip(X, yv)) for i in range(k)])
    ssr = sum((yy - sum(r[i] * b[i] for i in range(k))) ** 2 for r, yy in zip(X, yv))
    e1 = [F(0)] * k
    e1[1] = F(1)
    inv11 = solve(XtX, e1)[1]
    t2 = b[1] ** 2 / (ssr / (len(X) - k) * inv11)
    return float(np.copysign(np.sqrt(float(t2)), float(b[1])))


@pytest.mark.parametrize("seed,autolag", [(1, None), (0, "AIC"), (5, "BIC")])
def test_ill_conditioned_exact_oracle(seed, autolag):
    """Level -3000 with increments of 0.001: statsmodels is off by ~1e-9, the Gram/Cholesky path with
    centring is exact to ~1e-14 against rational arithmetic; lag choice and nobs still agree."""
    x = -3000.0 + 0.001 * np.cumsum(np.random.default_rng(seed).standard_normal(30))
    got = adf(x, autolag=autolag)
    ref = sm_adf(x, "c", None, autolag)
    assert (got.usedlag, got.nobs) == (ref.lags, ref.nobs)
    exact = _exact_adf_t(x, got.usedlag)
    assert got.stat == pytest.approx(exact, rel=1e-12)
    assert got.stat == pytest.approx(ref.statistic, rel=1e-7)


@pytest.mark.parametrize("maxlag", [0, 1, 4, 12])
def test_explicit_maxlag(maxlag):
    x = np.cumsum(np.random.default_rng(5).standard_normal(200))
    for autolag in ("AIC", None):
        assert_same(x, "c", maxlag, autolag)


# ----------------------------------------------------------------------------------------------
# streaming
# ----------------------------------------------------------------------------------------------
def test_rolling_adf_equals_batch():
    rng = np.random.default_rng(11)
    v = np.empty(300)
    v[0] = 0.0
    for i in range(1, 300):
        v[i] = 0.8 * v[i - 1] + rng.standard_normal()
    ra = RollingADF(60)
    for t, value in enumerate(v):
        r = ra.update(value)
        if t < 59:
            assert r is None
            continue
        ref = adf(v[t - 59 : t + 1])
        assert r == ref  # same kernel on the same window: identical
    np.testing.assert_array_equal(ra.window_values(), v[-60:])
    # and against statsmodels at the last bar
    assert_same(v[-60:])


def test_rolling_adf_flat_window_is_none():
    ra = RollingADF(20)
    for _ in range(25):
        assert ra.update(1.0) is None


# ----------------------------------------------------------------------------------------------
# edge cases: clear errors
# ----------------------------------------------------------------------------------------------
def test_errors():
    with pytest.raises(ValueError, match="non-constant"):
        adf(np.ones(50))
    with pytest.raises(ValueError, match="finite"):
        adf(np.array([1.0, 2.0, np.nan, 3.0] * 10))
    with pytest.raises(ValueError, match="too short"):
        adf(np.array([1.0, 2.0, 0.5]))
    with pytest.raises(ValueError, match="maxlag"):
        adf(np.arange(20.0) ** 1.5, maxlag=15)
    with pytest.raises(ValueError, match="regression"):
        adf(np.arange(20.0), regression="ctt")
    with pytest.raises(ValueError, match="autolag"):
        adf(np.arange(20.0), autolag="hqic")
    with pytest.raises(ValueError, match="1-D"):
        adf(np.ones((10, 2)))
    # no residual degrees of freedom: statsmodels returns a meaningless 0.0; we refuse
    x = np.random.default_rng(0).standard_normal(12)
    with pytest.raises(ValueError, match="rank deficient|degrees of freedom"):
        adf(x, regression="n", maxlag=5, autolag=None)
