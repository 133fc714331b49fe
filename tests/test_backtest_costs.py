"""Cost model of the backtest: slippage in bps and per symbol, borrow fees on the short leg, next-close
execution -- each against a closed-form hand computation on a tiny synthetic market."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pairtrade.backtest.engine import accrual_years, run_backtest
from pairtrade.config import CostModel, StrategyParams

PARAMS = StrategyParams(entry_z=2.0, exit_z=0.5, stop_z=4.0, warmup_bars=0, max_notional_usd=1e9,
                        risk_per_trade_usd=100.0, dollar_stop_usd=1e9)


def _market(n=6, step="1D"):
    idx = pd.date_range("2025-03-03 21:00", periods=n, freq=step, tz="UTC")
    frame = pd.DataFrame({"open_y": 100.0 + np.arange(n), "close_y": 100.5 + np.arange(n),
                          "open_x": 50.0 + np.arange(n), "close_x": 50.25 + np.arange(n)}, index=idx)
    # short the spread on bar 1 (z = +3), exit on bar 4 (z = 0): 100 units, beta 2 -> y -100, x +200
    sig = {"zscore": np.array([np.nan, 3.0, 3.0, 3.0, 0.0, 0.0]), "hurst": np.full(n, 0.3),
           "adf_pvalue": np.full(n, 0.01), "beta": np.full(n, 2.0), "spread_std": np.full(n, 1.0)}
    return frame, sig


def test_slippage_bps_and_per_symbol():
    frame, sig = _market()
    costs = CostModel(slippage_per_share=0.01, slippage_bps=10.0, fee_bps=0.0,
                      slippage_per_share_by_symbol={"XX": 0.05})
    res = run_backtest(frame, sig, PARAMS, costs, bar_size="1Day", symbols=("YY", "XX"))
    t = res.trades.iloc[0]
    assert (t.qty_y, t.qty_x) == (-100, 200)
    # entry fills on bar 2's open: sell y at open*(1 - 10 bp) - 0.01, buy x at open*(1 + 10 bp) + 0.05
    assert t.entry_price_y == pytest.approx(102.0 * (1 - 1e-3) - 0.01, abs=1e-12)
    assert t.entry_price_x == pytest.approx(52.0 * (1 + 1e-3) + 0.05, abs=1e-12)
    assert t.exit_price_y == pytest.approx(105.0 * (1 + 1e-3) + 0.01, abs=1e-12)
    assert t.exit_price_x == pytest.approx(55.0 * (1 - 1e-3) - 0.05, abs=1e-12)


def test_borrow_fee_on_the_short_leg_act_360():
    frame, sig = _market()
    base = run_backtest(frame, sig, PARAMS, CostModel(slippage_per_share=0, fee_bps=0), bar_size="1Day")
    res = run_backtest(frame, sig, PARAMS, CostModel(slippage_per_share=0, fee_bps=0, borrow_fee_pct=3.65),
                       bar_size="1Day")
    # short 100 y from bar 2 to bar 5: fee accrues on the closes of bars 2, 3, 4 (one day each)
    expect = sum(100 * frame.close_y.iloc[i] * 0.0365 / 360 for i in (2, 3, 4))
    assert base.trades.pnl_usd.iloc[0] - res.trades.pnl_usd.iloc[0] == pytest.approx(expect, rel=1e-12)
    assert res.trades.fees_usd.iloc[0] == pytest.approx(expect, rel=1e-12)
    assert base.equity.iloc[-1] - res.equity.iloc[-1] == pytest.approx(expect, abs=1e-6)  # equity ~2e9 USD
    # per-symbol override: x is long, so an x rate changes nothing
    res2 = run_backtest(frame, sig, PARAMS, CostModel(slippage_per_share=0, fee_bps=0,
                                                      borrow_fee_pct_by_symbol={"XX": 50.0}),
                        bar_size="1Day", symbols=("YY", "XX"))
    assert res2.trades.pnl_usd.iloc[0] == base.trades.pnl_usd.iloc[0]


def test_accrual_counts_weekends():
    idx = pd.DatetimeIndex(["2025-03-07 21:00", "2025-03-10 21:00"], tz="UTC")  # Friday -> Monday
    assert accrual_years(idx)[0] == pytest.approx(3 / 360)


def test_next_close_execution_fills_at_the_next_close():
    frame, sig = _market()
    p = PARAMS.model_copy(update={"execution": "next_close"})
    res = run_backtest(frame, sig, p, CostModel(slippage_per_share=0, fee_bps=0), bar_size="1Day")
    t = res.trades.iloc[0]
    assert t.entry_price_y == frame.close_y.iloc[2] and t.exit_price_x == frame.close_x.iloc[5]


def test_cost_scaling():
    c = CostModel(slippage_per_share=0.02, slippage_bps=1, fee_bps=2, borrow_fee_pct=1,
                  slippage_per_share_by_symbol={"A": 0.1})
    d = c.scaled(2.0)
    assert (d.slippage_per_share, d.slippage_bps, d.fee_bps, d.borrow_fee_pct) == (0.04, 2, 4, 2)
    assert d.slippage_for("A") == pytest.approx(0.2) and d.slippage_for("B") == pytest.approx(0.04)
