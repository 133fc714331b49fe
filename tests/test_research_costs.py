"""Transaction-cost estimators (pairtrade.research.costs) against truths we did not write:
simulated Roll (1984) and Corwin-Schultz (2012) markets with a known spread, statsmodels'
autocovariance, raw quotes of the shared LEAN/AlgoSeek 1-minute file, and closed-form ACT/360
borrow fees."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from statsmodels.tsa.stattools import acovf

from pairtrade.research.costs import (
    HalfSpread,
    borrow_fee_per_bar,
    borrow_fee_usd,
    corwin_schultz_spread,
    half_spread_estimate,
    quoted_half_spread,
    roll_spread,
)
from tests.conftest import shared_file

TRADE_QUOTE_1MIN = "us_equities_1min_trade_quote_lean_SPY_IBM_AIG_BAC_2013-10-04_to_2013-10-11.csv.gz"


# ------------------------------------------------------------------------------------------
# simulated markets


def roll_market(spread: float, sigma: float, n: int, seed: int, start: float = 100.0) -> np.ndarray:
    """Roll (1984): efficient price random walk, each trade at mid +- spread/2 with prob 1/2."""
    rng = np.random.default_rng(seed)
    mid = start + np.cumsum(rng.normal(0.0, sigma, n))
    side = rng.choice([-1.0, 1.0], n)
    return mid + side * spread / 2.0


def corwin_schultz_market(
    rel_spread: float,
    sigma_day: float,
    n_days: int,
    ticks_per_day: int,
    seed: int,
    sigma_overnight: float = 0.0,
):
    """Corwin-Schultz (2012) setting: a geometric random-walk efficient price with many ticks per
    day; every tick is a trade at ask = m (1 + S/2) or bid = m (1 - S/2) with prob 1/2; daily
    bars are the high, low and last of those trades. Optional overnight jump at each open."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, sigma_day / np.sqrt(ticks_per_day), (n_days, ticks_per_day))
    if sigma_overnight > 0:
        steps[:, 0] += rng.normal(0.0, sigma_overnight, n_days)
    mid = 50.0 * np.exp(np.cumsum(steps.ravel()).reshape(n_days, ticks_per_day))
    trades = mid * (1.0 + rng.choice([-1.0, 1.0], mid.shape) * rel_spread / 2.0)
    return trades.max(axis=1), trades.min(axis=1), trades[:, -1]


# ------------------------------------------------------------------------------------------
# Roll


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_roll_recovers_simulated_spread(seed):
    true_spread = 0.10  # USD
    prices = roll_market(true_spread, sigma=0.05, n=200_000, seed=seed)
    est = roll_spread(prices)
    assert est == pytest.approx(true_spread, rel=0.03)


def test_roll_relative_recovers_simulated_relative_spread():
    rng = np.random.default_rng(7)
    n, rel = 200_000, 0.002  # 20 bps full spread
    mid = 40.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n)))
    prices = mid * (1.0 + rng.choice([-1.0, 1.0], n) * rel / 2.0)
    assert roll_spread(prices, relative=True) == pytest.approx(rel, rel=0.03)


def test_roll_matches_statsmodels_autocovariance():
    prices = roll_market(0.04, sigma=0.02, n=50_000, seed=11)
    gamma1 = acovf(np.diff(prices), nlag=1, fft=False)[1]  # denominator n, full-sample mean
    assert roll_spread(prices) == pytest.approx(2.0 * np.sqrt(-gamma1), rel=1e-3)


def test_roll_nan_when_autocovariance_positive():
    rng = np.random.default_rng(5)
    # AR(1) changes with positive autocorrelation: momentum, no bid-ask bounce
    dp = np.empty(5_000)
    dp[0] = 0.0
    eps = rng.normal(0.0, 0.01, dp.size)
    for t in range(1, dp.size):
        dp[t] = 0.5 * dp[t - 1] + eps[t]
    assert np.isnan(roll_spread(100.0 + np.cumsum(dp)))
    assert np.isnan(roll_spread([10.0, 10.1]))  # too short


def test_roll_ignores_missing_prices():
    prices = roll_market(0.10, sigma=0.05, n=50_000, seed=4)
    with_gaps = np.insert(prices, np.arange(0, prices.size, 10), np.nan)
    assert roll_spread(with_gaps) == roll_spread(prices)


# ------------------------------------------------------------------------------------------
# Corwin-Schultz


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_corwin_schultz_recovers_simulated_spread(seed):
    # Spread-dominated regime (S = 2 %, daily sigma = 1 %, 1000 trades/day), where the
    # estimator works: the paper reports an upward bias when volatility is large relative to
    # the spread (many negative two-day estimates set to zero), and discrete trading biases the
    # range down, so we pick a setting clear of both.
    high, low, close = corwin_schultz_market(0.02, 0.01, n_days=1_000, ticks_per_day=1_000, seed=seed)
    assert corwin_schultz_spread(high, low) == pytest.approx(0.02, rel=0.05)
    assert corwin_schultz_spread(high, low, close) == pytest.approx(0.02, rel=0.05)


def test_corwin_schultz_overnight_adjustment_reduces_gap_bias():
    truth = 0.02
    high, low, close = corwin_schultz_market(
        truth, 0.01, n_days=1_000, ticks_per_day=1_000, seed=3, sigma_overnight=0.005
    )
    raw = corwin_schultz_spread(high, low)
    adjusted = corwin_schultz_spread(high, low, close)
    assert abs(adjusted - truth) < abs(raw - truth)
    assert adjusted == pytest.approx(truth, rel=0.10)


def test_corwin_schultz_single_pair_closed_form():
    # Two bars with no volatility, trading exactly at bid = 99 and ask = 101: beta = 2 ln(101/99)^2,
    # gamma = ln(101/99)^2, the estimator returns exactly the spread relative to the mid, 2/100.
    s = corwin_schultz_spread([101.0, 101.0], [99.0, 99.0])
    assert s == pytest.approx(0.02, rel=1e-12)


def test_corwin_schultz_negative_two_day_estimate_is_set_to_zero():
    # a pure trend, no bounce: the two-day range (gamma) exceeds what two one-day ranges allow,
    # alpha < 0, and the paper sets the negative estimate to 0
    assert corwin_schultz_spread([101.0, 103.0], [100.0, 102.0]) == 0.0


@pytest.mark.parametrize("gap", [0.5, 5.0, 40.0])
def test_corwin_schultz_overnight_adjustment_removes_a_pure_gap(gap):
    # Paper, Section II: when bar t+1 trades entirely above (below) bar t's close, both its high
    # and low are shifted down (up) by the gap. A pure gap therefore leaves the estimate as if
    # bar t+1 had opened at bar t's close.
    up0 = corwin_schultz_spread([101.0, 101.5], [99.0, 99.5], [99.5, 100.0])  # L1 == C0: no gap
    up = corwin_schultz_spread([101.0, 101.5 + gap], [99.0, 99.5 + gap], [99.5, 100.0 + gap])
    assert up == pytest.approx(up0, rel=1e-9)
    down0 = corwin_schultz_spread([101.0, 100.5], [99.0, 98.5], [100.5, 99.0])  # H1 == C0: no gap
    down = corwin_schultz_spread([101.0, 100.5 - gap], [99.0, 98.5 - gap], [100.5, 99.0 - gap])
    assert down == pytest.approx(down0, rel=1e-9)
    assert up0 > 0 and down0 > 0
    # without the closes the gap is read as range and the estimate collapses to 0
    assert corwin_schultz_spread([101.0, 101.5 + gap], [99.0, 99.5 + gap]) < up0


def test_corwin_schultz_skips_nan_bars_and_empty_input():
    high, low, close = corwin_schultz_market(0.02, 0.01, n_days=200, ticks_per_day=500, seed=9)
    h = high.copy()
    h[50] = np.nan
    est = corwin_schultz_spread(h, low, close)
    assert np.isfinite(est)
    assert np.isnan(corwin_schultz_spread([10.0], [9.0]))
    assert np.isnan(corwin_schultz_spread([np.nan, np.nan], [np.nan, np.nan]))


# ------------------------------------------------------------------------------------------
# quotes (real data)


@pytest.fixture(scope="module")
def trade_quote_rth() -> pd.DataFrame:
    df = pd.read_csv(shared_file(TRADE_QUOTE_1MIN), parse_dates=["datetime"])
    t = df["datetime"].dt.time
    return df[(t >= dt.time(9, 30)) & (t < dt.time(16, 0))]


def _pandas_quoted(g: pd.DataFrame) -> tuple[float, float]:
    q = g[["bid_close", "ask_close"]].dropna()
    q = q[(q["ask_close"] > q["bid_close"]) & (q["bid_close"] > 0)]
    half = (q["ask_close"] - q["bid_close"]) / 2
    mid = (q["ask_close"] + q["bid_close"]) / 2
    return float(half.median()), float((half / mid).median() * 1e4)


def test_quoted_half_spread_spy_is_half_a_cent(trade_quote_rth):
    spy = trade_quote_rth[trade_quote_rth["symbol"] == "SPY"]
    usd, bps = _pandas_quoted(spy)
    got = quoted_half_spread(spy["bid_close"], spy["ask_close"])
    assert got.method == "quotes"
    assert got.usd_per_share == pytest.approx(usd, abs=1e-9)
    assert got.bps == pytest.approx(bps, rel=1e-9)
    # PROVENANCE.md: median RTH quoted spread of SPY is $0.01 -> half a cent
    assert got.usd_per_share == pytest.approx(0.005, abs=5e-4)


def test_half_spread_estimate_prefers_quotes_and_ranks_liquidity(trade_quote_rth):
    est = {s: half_spread_estimate(g) for s, g in trade_quote_rth.groupby("symbol")}
    for sym, g in trade_quote_rth.groupby("symbol"):
        usd, bps = _pandas_quoted(g)
        assert est[sym].method == "quotes"
        assert est[sym].usd_per_share == pytest.approx(usd, abs=1e-9)
        assert est[sym].bps == pytest.approx(bps, rel=1e-9)
    # SPY is the most liquid name: smallest relative spread; IBM's quoted spread is wider in USD
    assert est["SPY"].bps < min(est[s].bps for s in ("IBM", "AIG", "BAC"))
    assert est["IBM"].usd_per_share > est["SPY"].usd_per_share


def test_quoted_half_spread_ignores_crossed_zero_and_nan_quotes():
    bid = [10.00, 10.00, np.nan, 10.02, 0.0, 10.00]
    ask = [10.02, 9.99, 10.02, 10.02, 10.02, 10.04]  # rows 1 (crossed), 2 (NaN), 3 (locked), 4 (zero)
    got = quoted_half_spread(bid, ask)
    assert got.usd_per_share == pytest.approx(np.median([0.01, 0.02]), abs=1e-12)
    assert got.bps == pytest.approx(1e4 * np.median([0.01 / 10.01, 0.02 / 10.02]), rel=1e-12)
    none = quoted_half_spread([10.0], [9.0])
    assert none.method == "none" and np.isnan(none.usd_per_share)


# ------------------------------------------------------------------------------------------
# half_spread_estimate fallbacks (simulated)


def test_half_spread_estimate_uses_corwin_schultz_on_ohlc_bars():
    high, low, close = corwin_schultz_market(0.02, 0.01, n_days=500, ticks_per_day=1_000, seed=21)
    got = half_spread_estimate(pd.DataFrame({"high": high, "low": low, "close": close}))
    assert got.method == "corwin_schultz"
    assert got.bps == pytest.approx(0.02 / 2 * 1e4, rel=0.06)
    assert got.usd_per_share == pytest.approx(got.bps * 1e-4 * np.median(close), rel=1e-12)


def test_half_spread_estimate_falls_back_to_roll_on_close_only():
    prices = roll_market(0.10, sigma=0.05, n=200_000, seed=8)
    close_only = pd.DataFrame({"open": prices, "high": prices, "low": prices, "close": prices})
    got = half_spread_estimate(close_only)
    assert got.method == "roll"
    # relative Roll spread at ~100 USD: half of 0.10 USD ~ 5 bps
    assert got.usd_per_share == pytest.approx(0.05, rel=0.05)
    assert half_spread_estimate(pd.DataFrame({"close": prices})).method == "roll"


def test_half_spread_estimate_none_when_nothing_estimable():
    got = half_spread_estimate(pd.DataFrame({"close": np.linspace(10.0, 11.0, 50)}))
    assert got.method == "none" and np.isnan(got.bps) and np.isnan(got.usd_per_share)


# ------------------------------------------------------------------------------------------
# borrow fee


def test_borrow_fee_closed_form_one_day():
    assert borrow_fee_usd(10_000.0, 3.0, 86_400) == pytest.approx(10_000 * 0.03 / 360, rel=1e-12)
    assert borrow_fee_usd(-10_000.0, 3.0, 86_400) == pytest.approx(10_000 * 0.03 / 360, rel=1e-12)
    # a year of 365 calendar days costs 365/360 of the annual rate
    assert borrow_fee_usd(10_000.0, 3.0, 365 * 86_400) == pytest.approx(300.0 * 365 / 360, rel=1e-12)
    arr = borrow_fee_usd(np.array([1_000.0, 2_000.0]), 3.6, 3_600.0)
    np.testing.assert_allclose(arr, np.array([1_000.0, 2_000.0]) * 0.036 / 360 / 24, rtol=1e-12)


def test_borrow_fee_per_bar_over_a_weekend():
    # short 10,000 USD from Friday 15:00 to Monday 15:00 UTC in hourly bars, flat afterwards
    times = pd.date_range("2024-03-01 15:00", "2024-03-04 15:00", freq="1h", tz="UTC")
    notional = np.full(times.size, 10_000.0)
    fees = borrow_fee_per_bar(notional, times, 3.0)
    assert fees.shape == (times.size,)
    assert fees[-1] == 0.0
    assert fees.sum() == pytest.approx(3 * 10_000 * 0.03 / 360, rel=1e-12)  # Fri, Sat, Sun
    # irregular bars (overnight gap) still add up to the calendar time held
    session = times[[0, 1, 2, 30, times.size - 1]]
    fees2 = borrow_fee_per_bar(np.full(5, 10_000.0), session, 3.0)
    assert fees2.sum() == pytest.approx(3 * 10_000 * 0.03 / 360, rel=1e-12)


# ------------------------------------------------------------------------------------------
# bad input


def test_bad_input_raises_naming_the_argument():
    with pytest.raises(ValueError, match="high.*low|length mismatch"):
        corwin_schultz_spread([10.0, 11.0, 12.0], [9.0, 10.0])
    with pytest.raises(ValueError, match="close"):
        corwin_schultz_spread([10.0, 11.0], [9.0, 10.0], [9.5])
    with pytest.raises(ValueError, match="low"):
        corwin_schultz_spread([10.0, 11.0], [9.0, -1.0])
    with pytest.raises(ValueError, match="high/low"):
        corwin_schultz_spread([10.0, 9.0], [9.0, 10.0])
    with pytest.raises(ValueError, match="close"):
        roll_spread([10.0, 0.0, 10.1, 10.0])
    with pytest.raises(ValueError, match="close"):
        roll_spread(np.ones((3, 2)))
    with pytest.raises(ValueError, match="bid.*ask|length mismatch"):
        quoted_half_spread([10.0, 10.0], [10.01])
    with pytest.raises(ValueError, match="bars"):
        half_spread_estimate(pd.DataFrame({"symbol": ["A", "B"], "close": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="bars"):
        half_spread_estimate(pd.DataFrame({"open": [1.0, 2.0]}))
    with pytest.raises(ValueError, match=r"bars\['close'\]"):
        half_spread_estimate(pd.DataFrame({"close": [1.0, -2.0, 1.5]}))
    with pytest.raises(ValueError, match="seconds_held"):
        borrow_fee_usd(10_000.0, 3.0, -1.0)
    with pytest.raises(ValueError, match="annual_rate_pct"):
        borrow_fee_usd(10_000.0, -3.0, 1.0)
    with pytest.raises(ValueError, match="short_notional_usd"):
        borrow_fee_usd(np.nan, 3.0, 1.0)
    with pytest.raises(ValueError, match="timestamps"):
        borrow_fee_per_bar([1.0, 1.0], pd.to_datetime(["2024-01-02", "2024-01-01"]), 3.0)
    with pytest.raises(ValueError, match="length mismatch"):
        borrow_fee_per_bar([1.0], pd.to_datetime(["2024-01-01", "2024-01-02"]), 3.0)


def test_halfspread_is_a_frozen_record():
    hs = HalfSpread(0.005, 0.3, "quotes")
    with pytest.raises(AttributeError):
        hs.bps = 1.0  # type: ignore[misc]
