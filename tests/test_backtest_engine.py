"""Backtest loop: fill model, PnL and equity re-computed independently with pandas, metrics, numba switch."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pairtrade.backtest.engine import run_backtest
from pairtrade.backtest.grid import grid_search, threshold_grid
from pairtrade.backtest.metrics import bars_per_session, bars_per_year
from pairtrade.config import CostModel, StrategyParams
from pairtrade.data.bars import DataError, align, load_bars, regular_hours

ROOT = Path(__file__).resolve().parents[1]


def simple_signals(frame: pd.DataFrame, window: int = 78) -> dict[str, np.ndarray]:
    """Test-only signals: rolling z-score of y - b x with a rolling OLS hedge ratio (no look-ahead)."""
    y, x = frame["close_y"], frame["close_x"]
    b = (y.rolling(window * 5).cov(x) / x.rolling(window * 5).var())
    spread = y - b * x
    sd = spread.rolling(window).std()
    z = (spread - spread.rolling(window).mean()) / sd
    n = len(frame)
    return {"zscore": z.to_numpy(), "beta": b.to_numpy(), "spread_std": sd.to_numpy(),
            "hurst": np.full(n, 0.4), "adf_pvalue": np.full(n, 0.01)}


@pytest.fixture(scope="module")
def xom_cvx(request):
    from tests.conftest import EQUITIES_5MIN, shared_file

    path = shared_file(EQUITIES_5MIN)
    bs = load_bars(path, symbols=["XOM", "CVX"])
    frame = align(regular_hours(bs.bars["XOM"], bs.bar_size), regular_hours(bs.bars["CVX"], bs.bar_size))
    return frame.iloc[:6000]


PARAMS = StrategyParams(entry_z=2.0, exit_z=0.5, stop_z=4.0, dollar_stop_usd=150.0, warmup_bars=390,
                        max_notional_usd=10_000, risk_per_trade_usd=200)
COSTS = CostModel(slippage_per_share=0.02, fee_bps=1.0)


def test_fills_pnl_and_equity_match_pandas_recomputation_on_real_data(xom_cvx):
    frame = xom_cvx
    res = run_backtest(frame, simple_signals(frame), PARAMS, COSTS, bar_size="5Min")
    tr = res.trades
    assert len(tr) >= 10
    assert set(tr["exit_reason"]) <= {"exit", "z_stop", "dollar_stop", "open"}
    idx = {t: i for i, t in enumerate(frame.index)}
    cash = pd.Series(0.0, index=frame.index)
    pos_y = pd.Series(0.0, index=frame.index)
    pos_x = pd.Series(0.0, index=frame.index)
    slip, bps = COSTS.slippage_per_share, COSTS.fee_bps
    for t in (pd.Series(r) for r in tr.to_dict("records")):
        i_in = idx[t.entry_time]
        assert i_in == t.entry_decision_bar + 1  # decision on a close, fill at the next bar
        legs = [("y", t.qty_y, t.entry_price_y), ("x", t.qty_x, t.entry_price_x)]
        fees = 0.0
        for leg, q, p in legs:
            o = frame[f"open_{leg}"].iloc[i_in]
            assert p == pytest.approx(o + np.sign(q) * slip)  # buy above the open, sell below
            fees += abs(p * q) * bps / 1e4
            cash.iloc[i_in] -= q * p + abs(p * q) * bps / 1e4
        if t.exit_reason == "open":
            pos_y.iloc[i_in:] += t.qty_y
            pos_x.iloc[i_in:] += t.qty_x
            mtm = t.qty_y * (frame["close_y"].iloc[-1] - t.entry_price_y) + \
                t.qty_x * (frame["close_x"].iloc[-1] - t.entry_price_x)
            assert t.pnl_usd == pytest.approx(mtm - fees)
            continue
        i_out = idx[t.exit_time]
        assert i_out == t.exit_decision_bar + 1 and i_out > i_in
        pnl = -fees
        for leg, q, p_in, p_out in (("y", t.qty_y, t.entry_price_y, t.exit_price_y),
                                    ("x", t.qty_x, t.entry_price_x, t.exit_price_x)):
            o = frame[f"open_{leg}"].iloc[i_out]
            assert p_out == pytest.approx(o - np.sign(q) * slip)
            f = abs(p_out * q) * bps / 1e4
            fees += f
            pnl += q * (p_out - p_in) - f
            cash.iloc[i_out] += q * p_out - f
        assert t.fees_usd == pytest.approx(fees)
        assert t.pnl_usd == pytest.approx(pnl)
        pos_y.iloc[i_in:i_out] += t.qty_y
        pos_x.iloc[i_in:i_out] += t.qty_x
    capital = 2 * PARAMS.max_notional_usd
    equity = capital + cash.cumsum() + pos_y * frame["close_y"] + pos_x * frame["close_x"]
    pd.testing.assert_series_equal(res.equity, equity, check_names=False, rtol=1e-10, atol=1e-6)
    assert (res.positions["qty_y"] == pos_y).all() and (res.positions["qty_x"] == pos_x).all()
    closed = tr[tr.exit_reason != "open"]
    assert res.metrics["Trades"] == len(closed)
    assert res.metrics["Win Rate [%]"] == pytest.approx(100 * (closed.pnl_usd > 0).mean())
    assert res.metrics["Fees [$]"] == pytest.approx(tr.fees_usd.sum())
    assert res.metrics["PnL [$]"] == pytest.approx(equity.iloc[-1] - capital)
    # the dollar stop acts on USD open PnL measured from the actual fill prices
    ds = tr[tr.exit_reason == "dollar_stop"]
    for t in (pd.Series(r) for r in ds.to_dict("records")):
        d = int(t.exit_decision_bar)
        loss = t.qty_y * (frame.close_y.iloc[d] - t.entry_price_y) + t.qty_x * (frame.close_x.iloc[d] - t.entry_price_x)
        assert loss <= -PARAMS.dollar_stop_usd


def test_metrics_match_pandas(xom_cvx):
    frame = xom_cvx
    res = run_backtest(frame, simple_signals(frame), PARAMS, COSTS, bar_size="5Min", start_index=500)
    eq = res.equity
    assert eq.index[0] == frame.index[500]
    r = eq.pct_change().dropna()
    sharpe = r.mean() / r.std(ddof=1) * math.sqrt(252 * 78)
    dd = (1 - eq / eq.cummax()).max() * 100
    assert res.metrics["Sharpe (annualised)"] == pytest.approx(sharpe, rel=1e-9)
    assert res.metrics["Max. Drawdown [%]"] == pytest.approx(dd, rel=1e-9)
    assert res.metrics["Return [%]"] == pytest.approx((eq.iloc[-1] / eq.iloc[0] - 1) * 100, rel=1e-9)
    assert res.metrics["Bars per Year"] == 252 * 78
    # nothing traded before start_index
    assert res.trades["entry_decision_bar"].min() >= 500


def test_bars_per_year():
    assert bars_per_year("1Day") == 252 and bars_per_session("1Day") == 1
    assert bars_per_year("5Min") == 252 * 78 and bars_per_year("1Min") == 252 * 390
    assert bars_per_year("1Hour") == 252 * 6


def test_synthetic_round_trip_fill_at_next_open():
    n = 8
    o_y = np.array([100, 101, 102, 103, 104, 105, 106, 107], float)
    o_x = np.array([50, 51, 52, 53, 54, 55, 56, 57], float)
    data = {"open_y": o_y, "close_y": o_y + 0.5, "open_x": o_x, "close_x": o_x + 0.25}
    z = np.array([0, -2.5, -2.0, -1.0, -0.2, 0.0, 0.0, 0.0])
    sig = {"zscore": z, "hurst": np.zeros(n), "adf_pvalue": np.zeros(n), "beta": np.full(n, 2.0),
           "spread_std": np.full(n, 10.0)}
    p = StrategyParams(entry_z=2, exit_z=0.5, stop_z=4, warmup_bars=0, max_notional_usd=1e6,
                       risk_per_trade_usd=100)
    res = run_backtest(data, sig, p, CostModel(slippage_per_share=0.05, fee_bps=10), bar_size="1Day",
                       capital_usd=10_000)
    (t,) = list(res.trades.itertuples())
    assert (t.side, t.qty_y, t.qty_x) == (1, 10, -20)  # N = 100 / 10 = 10 units, beta 2
    assert t.entry_price_y == pytest.approx(102.05) and t.entry_price_x == pytest.approx(51.95)
    assert t.exit_price_y == pytest.approx(104.95) and t.exit_price_x == pytest.approx(55.05)
    fees = 1e-3 * (10 * 102.05 + 20 * 51.95 + 10 * 104.95 + 20 * 55.05)
    assert t.fees_usd == pytest.approx(fees)
    assert t.pnl_usd == pytest.approx(10 * (104.95 - 102.05) - 20 * (55.05 - 51.95) - fees)
    assert t.entry_reason == "entry_long" and t.exit_reason == "exit"
    assert res.equity.iloc[-1] == pytest.approx(10_000 + t.pnl_usd)


def test_bad_inputs_raise_clear_errors():
    n = 10
    data = {"open_y": np.ones(n), "close_y": np.ones(n), "open_x": np.ones(n), "close_x": np.ones(n)}
    data["open_x"][3] = np.nan
    sig = {k: np.zeros(n) for k in ("zscore", "hurst", "adf_pvalue", "beta", "spread_std")}
    with pytest.raises(DataError, match="open_x.*NaN"):
        run_backtest(data, sig, PARAMS)
    data["open_x"][3] = 1.0
    with pytest.raises(ValueError, match="zscore"):
        run_backtest(data, {**sig, "zscore": np.zeros(n - 1)}, PARAMS)
    with pytest.raises(DataError, match="close_x"):
        run_backtest({k: v for k, v in data.items() if k != "close_x"}, sig, PARAMS)


def test_grid_best_equals_single_run(xom_cvx):
    frame = xom_cvx
    sig = simple_signals(frame)
    grid = threshold_grid([1.5, 2.0, 2.5], [0.0, 0.5], [3.0, 4.0])
    assert all(x < e < s for e, x, s in grid) and len(grid) == 12
    g = grid_search(frame, sig, PARAMS, COSTS, grid, bar_size="5Min", min_trades=5)
    assert g.best is not None
    elig = g.table[g.table.trades >= 5]
    assert g.table.loc[g.best, "sharpe"] == elig.sharpe.max()
    single = run_backtest(frame, sig, g.best_params, COSTS, bar_size="5Min")
    assert single.metrics["Sharpe (annualised)"] == pytest.approx(g.table.loc[g.best, "sharpe"], rel=1e-12)
    assert single.metrics["Trades"] == g.table.loc[g.best, "trades"]
    none = grid_search(frame, sig, PARAMS, COSTS, grid, bar_size="5Min", min_trades=10_000)
    assert none.best is None and none.best_params is None and none.top_any() is not None


_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, {root!r})
from pairtrade import _numba
from pairtrade.backtest.engine import run_backtest
from pairtrade.config import CostModel, StrategyParams
rng = np.random.default_rng(7)
n = 3000
x = 50 + np.cumsum(rng.normal(0, 0.2, n))
e = np.zeros(n)
for i in range(1, n):
    e[i] = 0.9 * e[i - 1] + rng.normal(0, 0.3)
y = 1.5 * x + 10 + e
op = lambda v: v + rng.normal(0, 0.05, n)
data = {{"open_y": op(y), "close_y": y, "open_x": op(x), "close_x": x}}
z = np.convolve(e, np.ones(3) / 3, mode="same") / 0.3
z[:20] = np.nan
sig = {{"zscore": z, "hurst": np.full(n, 0.3), "adf_pvalue": np.full(n, 0.01), "beta": np.full(n, 1.5),
       "spread_std": np.full(n, 0.7)}}
p = StrategyParams(entry_z=1.5, exit_z=0.2, stop_z=3.0, dollar_stop_usd=60, warmup_bars=50)
r = run_backtest(data, sig, p, CostModel(), bar_size="5Min", start_index=10)
print(json.dumps({{"disabled": _numba.NUMBA_DISABLED, "equity": r.equity.tolist(),
                  "trades": r.trades.drop(columns=["entry_time", "exit_time"]).fillna(-999).values.tolist(),
                  "reasons": sorted(set(r.trades.exit_reason))}}))
"""


def test_numba_and_plain_python_paths_agree():
    script = _SCRIPT.format(root=str(ROOT))
    outs = {}
    for flag in ("0", "1"):
        env = {**os.environ, "PAIRTRADE_DISABLE_NUMBA": flag}
        cp = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
        assert cp.returncode == 0, cp.stderr
        outs[flag] = json.loads(cp.stdout)
    assert outs["0"]["disabled"] is False and outs["1"]["disabled"] is True
    assert len(outs["0"]["trades"]) > 20
    assert {"exit", "z_stop", "dollar_stop"} <= set(outs["0"]["reasons"])
    assert outs["0"]["trades"] == outs["1"]["trades"]
    np.testing.assert_allclose(outs["0"]["equity"], outs["1"]["equity"], rtol=1e-12)
