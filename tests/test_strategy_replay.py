"""A live-style bar-by-bar loop (SignalEngine + PairStrategy + the shared fill model) reproduces the backtest."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pairtrade.backtest.engine import run_backtest
from pairtrade.config import CostModel
from pairtrade.data.bars import align, load_bars, regular_hours
from pairtrade.strategy.fill import fill_fee, fill_price
from pairtrade.strategy.kernel import PairStrategy

pipeline = pytest.importorskip("pairtrade.signals.pipeline")


def test_streaming_trader_loop_reproduces_backtest_trades(equities_5min):
    from pairtrade.backtest.optimize import default_params

    bs = load_bars(equities_5min, symbols=["GS", "MS"])
    frame = align(regular_hours(bs.bars["GS"], "5Min"), regular_hours(bs.bars["MS"], "5Min")).iloc[:5000]
    params = default_params("5Min", kalman_delta=1e-6, entry_z=2.0, exit_z=0.5, stop_z=3.5,
                            dollar_stop_usd=150.0, adf_pvalue_max=0.05, hurst_max=0.6)
    costs = CostModel(slippage_per_share=0.01, fee_bps=0.5)
    sig = pipeline.compute_signals(frame.close_y.to_numpy(), frame.close_x.to_numpy(), params)
    bt = run_backtest(frame, sig, params, costs, bar_size="5Min")
    assert len(bt.trades) >= 10

    # the trader: one SignalEngine update and one on_bar per bar close, orders fill at the next open
    engine = pipeline.SignalEngine(params)
    strat = PairStrategy(params)
    oy, cy, ox, cx = (frame[c].to_numpy() for c in ("open_y", "close_y", "open_x", "close_x"))
    held = (0.0, 0.0)
    pending = None
    fills = []
    cash = 2 * params.max_notional_usd
    for i in range(len(frame)):
        if pending is not None:
            dy, dx = pending.target_qty_y - held[0], pending.target_qty_x - held[1]
            py = fill_price(oy[i], int(np.sign(dy)), costs.slippage_per_share)
            px = fill_price(ox[i], int(np.sign(dx)), costs.slippage_per_share)
            cash -= dy * py + dx * px + fill_fee(py, dy, costs.fee_bps) + fill_fee(px, dx, costs.fee_bps)
            held = (pending.target_qty_y, pending.target_qty_x)
            strat.on_fill(held[0], held[1], py, px)
            fills.append((i, pending.reason_name, held, round(py, 6), round(px, 6)))
            pending = None
        snap = engine.update(cy[i], cx[i])
        if i < len(frame) - 1:
            d = strat.on_bar(snap, cy[i], cx[i])
            if d.is_change:
                pending = d
    expected = []
    for t in bt.trades.to_dict("records"):
        expected.append((int(t["entry_bar"]), t["entry_reason"], (t["qty_y"], t["qty_x"]),
                         round(t["entry_price_y"], 6), round(t["entry_price_x"], 6)))
        if not math.isnan(t["exit_bar"]):
            expected.append((int(t["exit_bar"]), t["exit_reason"], (0.0, 0.0),
                             round(t["exit_price_y"], 6), round(t["exit_price_x"], 6)))
    assert fills == expected
    final = cash + held[0] * cy[-1] + held[1] * cx[-1]
    assert final == pytest.approx(bt.equity.iloc[-1], rel=1e-12)
