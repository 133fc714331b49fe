"""Hurst exponent against the ``hurst`` package; streaming; null distribution and its cache; half-life."""

from __future__ import annotations

import math

import hurst
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairtrade.signals import RollingHurst, half_life, hurst_alp, hurst_null_distribution, hurst_null_quantile, hurst_rs
from pairtrade.signals import hurst as H


def ref_hurst(x, simplified=False, **kw):
    return hurst.compute_Hc(x, kind="random_walk", simplified=simplified, **kw)[0]


def test_window_sizes_documented():
    np.testing.assert_array_equal(H.window_sizes(100), [10, 17, 31, 56, 100])
    np.testing.assert_array_equal(H.window_sizes(390), [10, 17, 31, 56, 100, 177, 316, 390])


@pytest.mark.parametrize("simplified", [False, True])
def test_real_data_equals_hurst_package(chan_etf, ko_pep, simplified):
    df = pd.read_csv(chan_etf)
    kp = pd.read_csv(ko_pep)
    series = [df["EWA"].to_numpy(float), df["EWC"].to_numpy(float)[:390], kp["ko"].to_numpy(float)[:2000]]
    for s in series:
        assert hurst_rs(s, simplified=simplified) == pytest.approx(ref_hurst(s, simplified), abs=1e-12)
    s = series[0]
    assert hurst_rs(s, min_window=20, max_window=500) == pytest.approx(
        ref_hurst(s, min_window=20, max_window=500), abs=1e-12
    )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(100, 900),
    kind=st.sampled_from(["rw", "ar", "trend", "steps"]),
    simplified=st.booleans(),
)
def test_random_series_equal_hurst_package(seed, n, kind, simplified):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n)
    if kind == "rw":
        x = np.cumsum(e)
    elif kind == "ar":
        x = np.zeros(n)
        for i in range(1, n):
            x[i] = 0.6 * x[i - 1] + e[i]
    elif kind == "trend":
        x = np.cumsum(np.cumsum(e) * 0.1 + e)
    else:  # piecewise-constant levels: many flat chunks are skipped
        x = np.repeat(np.cumsum(rng.standard_normal(n // 7 + 1)), 7)[:n]
    try:
        ref = ref_hurst(x, simplified)
    except (FloatingPointError, ValueError):
        with pytest.raises(ValueError):
            hurst_rs(x, simplified=simplified)
        return
    assert hurst_rs(x, simplified=simplified) == pytest.approx(ref, abs=1e-12)


def test_short_windows_supported_and_errors():
    x = np.cumsum(np.random.default_rng(0).standard_normal(40))
    assert 0.0 < hurst_rs(x) < 1.5  # hurst.compute_Hc refuses n < 100; we document n >= min_window + 2
    with pytest.raises(ValueError, match="at least"):
        hurst_rs(np.arange(11.0))
    with pytest.raises(ValueError, match="non-constant"):
        hurst_rs(np.ones(200))
    with pytest.raises(ValueError, match="finite"):
        hurst_rs(np.r_[np.arange(100.0), np.nan])


def test_rolling_hurst_equals_batch():
    x = np.cumsum(np.random.default_rng(9).standard_normal(400))
    for est, fn in (("rs", hurst_rs), ("alp", hurst_alp)):
        rh = RollingHurst(100, estimator=est)
        for t, v in enumerate(x):
            h = rh.update(v)
            if t < 99:
                assert math.isnan(h)
            elif t % 37 == 0 or t == len(x) - 1:
                assert h == fn(x[t - 99 : t + 1])
                if est == "rs":
                    assert h == pytest.approx(ref_hurst(x[t - 99 : t + 1]), abs=1e-12)


def test_expected_rs_matches_simulation():
    """The Anis-Lloyd-Peters expectation (ddof=1 S) is close to the simulated mean R/S."""
    rng = np.random.default_rng(1)
    for w in (10, 31, 100):
        sims = [H._chunk_rs(np.r_[0.0, np.cumsum(rng.standard_normal(w - 1))], 0, w, False) for _ in range(4000)]
        assert np.mean(sims) == pytest.approx(H.expected_rs(w), rel=0.02)


def test_null_distribution_cache_and_bias(tmp_path, monkeypatch):
    monkeypatch.setenv("PAIRTRADE_CACHE_DIR", str(tmp_path))
    H._NULL_MEMO.clear()
    a = hurst_null_distribution(100, n_sims=3000, seed=1)
    files = list(tmp_path.glob("hurst_null_rs_w100_n3000_s1_v2.npy"))
    assert len(files) == 1
    H._NULL_MEMO.clear()
    b = hurst_null_distribution(100, n_sims=3000, seed=1)  # from disk
    np.testing.assert_array_equal(a, b)
    assert hurst_null_distribution(100, n_sims=3000, seed=1) is b  # in-process memo
    assert np.all(np.diff(a) >= 0)
    # R/S is biased upwards at short windows; the ALP-corrected estimator much less
    med_rs = np.median(a)
    med_alp = np.median(hurst_null_distribution(100, "alp", n_sims=3000, seed=1))
    assert 0.58 < med_rs < 0.65
    assert abs(med_alp - 0.5) < abs(med_rs - 0.5) / 2
    # corrupt cache file -> recomputed, same numbers
    files[0].write_bytes(b"garbage")
    H._NULL_MEMO.clear()
    np.testing.assert_array_equal(hurst_null_distribution(100, n_sims=3000, seed=1), a)


def test_default_null_quantiles(tmp_path, monkeypatch):
    monkeypatch.setenv("PAIRTRADE_CACHE_DIR", str(tmp_path))
    H._NULL_MEMO.clear()
    q05, q50, q95 = (hurst_null_quantile(390, q) for q in (0.05, 0.5, 0.95))
    assert 0.55 < q50 < 0.60 and 0.66 < q95 < 0.70 and q05 < q50
    assert H.hurst_gate(390) == q05
    with pytest.raises(ValueError, match="q"):
        hurst_null_quantile(100, 1.5)


# ----------------------------------------------------------------------------------------------
# half-life
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("phi", [0.5, 0.9, 0.98])
def test_half_life_ar1(phi):
    rng = np.random.default_rng(int(phi * 100))
    n = 20000
    s = np.zeros(n)
    for i in range(1, n):
        s[i] = phi * s[i - 1] + rng.standard_normal()
    true = -math.log(2) / math.log(phi)
    assert half_life(s) == pytest.approx(true, rel=0.1)
    # Chan's formula is the first-order approximation -ln2/lambda with lambda from the same OLS
    lag = s[:-1] - s[:-1].mean()
    ds = np.diff(s) - np.diff(s).mean()
    lam = (lag @ ds) / (lag @ lag)
    assert half_life(s, method="chan") == pytest.approx(-math.log(2) / lam, rel=1e-12)


def test_half_life_edge_cases():
    assert half_life(np.arange(50.0) ** 2) == math.inf  # explosive / trending: no mean reversion
    with pytest.raises(ValueError, match="non-constant"):
        half_life(np.ones(10))
    with pytest.raises(ValueError, match="method"):
        half_life(np.arange(10.0), method="x")
