"""Engle-Granger and Johansen tests against statsmodels coint / coint_johansen."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.tsa import adfvalues
from statsmodels.tsa.stattools import coint as sm_coint
from statsmodels.tsa.vector_ar.vecm import coint_johansen

from pairtrade.signals import coint, johansen
from pairtrade.signals.coint import CollinearityWarning


def ref_coint(y, x, trend="c", autolag="aic"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sm_coint(y, x, trend=trend, autolag=autolag)


def assert_coint_same(y, x, trend="c", autolag="aic"):
    ref = ref_coint(y, x, trend, autolag)
    got = coint(y, x, trend=trend, autolag=autolag)
    assert got.stat == pytest.approx(ref[0], rel=1e-9)
    k_vars = 1 + (1 if np.ndim(x) == 1 else np.shape(x)[1])
    assert abs(got.pvalue - adfvalues.mackinnonp(got.stat, regression=trend, N=k_vars)) <= 1e-12
    assert abs(got.pvalue - ref[1]) <= 1e-10
    np.testing.assert_allclose([got.critical_values[k] for k in ("1%", "5%", "10%")], ref[2], rtol=1e-14)
    return got


def test_chan_etf_pairs(chan_etf):
    df = pd.read_csv(chan_etf)
    assert_coint_same(df["EWC"].to_numpy(float), df["EWA"].to_numpy(float))
    assert_coint_same(df["EWA"].to_numpy(float), df["EWC"].to_numpy(float), trend="ct")
    assert_coint_same(df["IGE"].to_numpy(float), df[["EWA", "EWC"]].to_numpy(float))


def test_ko_pep(ko_pep):
    df = pd.read_csv(ko_pep).iloc[:2500]
    assert_coint_same(df["ko"].to_numpy(float), df["pep"].to_numpy(float))
    assert_coint_same(df["ko"].to_numpy(float), df["pep"].to_numpy(float), trend="n", autolag="bic")


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(40, 600),
    coint_strength=st.sampled_from([0.0, 0.2, 1.0]),
    trend=st.sampled_from(["c", "ct", "n"]),
)
def test_random_pairs(seed, n, coint_strength, trend):
    rng = np.random.default_rng(seed)
    x = 50 + np.cumsum(rng.standard_normal(n))
    u = np.zeros(n)
    for i in range(1, n):
        u[i] = (1 - coint_strength) * u[i - 1] + rng.standard_normal()
    y = 1.5 * x + 3 + u
    assert_coint_same(y, x, trend)


def test_collinear_legs_documented_value():
    x = 20 + np.cumsum(np.random.default_rng(0).standard_normal(300))
    with pytest.warns(CollinearityWarning):
        got = coint(2.0 * x + 1.0, x)
    ref = ref_coint(2.0 * x + 1.0, x)
    assert got.collinear and got.stat == -math.inf == ref[0] and got.pvalue == 0.0 == ref[1]


def test_coint_errors():
    x = np.arange(50.0)
    with pytest.raises(ValueError, match="non-constant"):
        coint(np.ones(50), x)
    with pytest.raises(ValueError, match="shape"):
        coint(np.arange(50.0), np.arange(40.0))
    with pytest.raises(ValueError, match="finite"):
        coint(np.r_[np.nan, np.arange(49.0)], x)


# ----------------------------------------------------------------------------------------------
# Johansen
# ----------------------------------------------------------------------------------------------
def assert_johansen_same(p, det_order, k_ar_diff):
    ref = coint_johansen(p, det_order, k_ar_diff)
    got = johansen(p, det_order, k_ar_diff)
    np.testing.assert_allclose(got.trace_stat, ref.lr1, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got.max_eig_stat, ref.lr2, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got.eigenvalues, ref.eig, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.eigenvectors, ref.evec, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(got.trace_crit, ref.cvt)
    np.testing.assert_array_equal(got.max_eig_crit, ref.cvm)
    assert got.nobs == ref.rkt.shape[0]


@pytest.mark.parametrize("det_order", [-1, 0, 1])
@pytest.mark.parametrize("k_ar_diff", [0, 1, 2])
def test_johansen_chan_etf(chan_etf, det_order, k_ar_diff):
    df = pd.read_csv(chan_etf)
    assert_johansen_same(df[["EWA", "EWC", "IGE"]].to_numpy(float), det_order, k_ar_diff)


def test_johansen_two_and_four_legs(chan_etf):
    df = pd.read_csv(chan_etf)
    assert_johansen_same(df[["EWA", "EWC"]].to_numpy(float), 0, 1)
    assert_johansen_same(df[["EWA", "EWC", "IGE", "SPY"]].to_numpy(float), 0, 1)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(60, 500), k=st.integers(2, 4))
def test_johansen_random(seed, n, k):
    rng = np.random.default_rng(seed)
    common = np.cumsum(rng.standard_normal(n))
    p = np.column_stack([common * (1 + j) + rng.standard_normal(n) * (1 + j) for j in range(k)])
    p[:, -1] = np.cumsum(rng.standard_normal(n)) + 30  # one independent random walk
    assert_johansen_same(p, 0, 1)


def test_johansen_errors():
    x = np.cumsum(np.random.default_rng(1).standard_normal(200))
    with pytest.raises(ValueError, match="collinear"):
        johansen(np.column_stack([x, 2 * x + 1]))
    with pytest.raises(ValueError, match="2 <= k <= 4"):
        johansen(x[:, None])
    with pytest.raises(ValueError, match="det_order"):
        johansen(np.column_stack([x, x[::-1]]), det_order=2)
    with pytest.raises(ValueError, match="too few"):
        johansen(np.column_stack([x, x[::-1]])[:6], k_ar_diff=2)
