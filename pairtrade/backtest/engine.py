"""Single backtest run: the strategy kernel driven bar by bar over aligned arrays, in numba.

Loop, for every bar ``i >= start_index``:

1. orders decided on the close of bar ``i-1`` fill at the **open** of bar ``i`` (or its close with
   ``params.execution == "next_close"``, see :func:`fill_arrays`) under the shared fill
   model (:mod:`pairtrade.strategy.fill`: open +- ``slippage_per_share`` USD against the trader, a fee of
   ``fee_bps`` of the filled notional); the fills are reported to the kernel with
   :func:`~pairtrade.strategy.kernel.strategy_sync`;
2. the equity (USD) is marked at the close of bar ``i``: cash + qty_y * close_y + qty_x * close_x;
3. unless ``i`` is the last bar, :func:`~pairtrade.strategy.kernel.strategy_step` decides on the close of
   bar ``i``; a change of target becomes orders for bar ``i+1``.

A position still open after the last bar stays open: it is marked to market in the equity curve and
listed in the trades table with ``exit_reason == "open"`` and NaN exit fields.

Equity starts at ``capital_usd`` (default ``2 * max_notional_usd``, the largest gross exposure the
sizing rule allows), which is what returns, Sharpe ratio and drawdown are measured against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from pairtrade._numba import njit
from pairtrade.backtest.metrics import bars_per_year, equity_stats
from pairtrade.config import CostModel, StrategyParams
from pairtrade.data.bars import DataError
from pairtrade.strategy.fill import fill_fee, fill_price
from pairtrade.strategy.kernel import (REASON_NAMES, new_state, params_to_vector, strategy_step,
                                       strategy_sync)

# columns of the raw trade record matrix produced by the numba loop
T_ENTRY_DECISION, T_ENTRY_BAR, T_EXIT_DECISION, T_EXIT_BAR, T_SIDE, T_QTY_Y, T_QTY_X = range(7)
T_ENTRY_PX_Y, T_ENTRY_PX_X, T_EXIT_PX_Y, T_EXIT_PX_X, T_FEES, T_PNL, T_EXIT_REASON, T_ENTRY_REASON = range(7, 15)
T_COLS = 15
REASON_OPEN = -1

SIGNAL_KEYS = ("zscore", "hurst", "adf_pvalue", "beta", "spread_std")
PRICE_KEYS = ("open_y", "close_y", "open_x", "close_x")


@njit
def _sign(v: float) -> int:
    if v > 0.0:
        return 1
    if v < 0.0:
        return -1
    return 0


@njit
def backtest_loop(open_y: np.ndarray, close_y: np.ndarray, open_x: np.ndarray, close_x: np.ndarray,
                  zscore: np.ndarray, hurst: np.ndarray, adf_pvalue: np.ndarray, beta: np.ndarray,
                  spread_std: np.ndarray, pv: np.ndarray, cv: np.ndarray, accrual: np.ndarray,
                  start_index: int, capital_usd: float):
    """Run the kernel over the bars (see module docstring).

    Parameters
    ----------
    open_y, close_y, open_x, close_x : prices per bar, USD/share
    zscore, hurst, adf_pvalue, beta, spread_std : signals per bar (NaN allowed)
    pv : parameter vector (:func:`~pairtrade.strategy.kernel.params_to_vector`)
    cv : cost vector (:func:`cost_vector`): slippage of y and x (USD/share), slippage (bps of price), fee
        (bps of filled notional), borrow fee of y and x (annual fraction)
    accrual : float64[n], ACT/360 year fraction from bar i's close to bar i+1's (borrow fee accrual; the
        short notional at bar i's close pays ``notional * rate * accrual[i]`` at bar i+1)
    start_index : first bar on which fills and decisions happen (earlier bars only warm the signals)
    capital_usd : initial equity, USD

    Returns
    -------
    equity : float64[n] USD at each close (``capital_usd`` before ``start_index``)
    qty_y, qty_x : float64[n] held shares at each close
    reason : int64[n] decision reason code on each bar's close
    trades : float64[k, T_COLS] one row per round trip (see ``T_*`` columns)
    """
    n = close_y.shape[0]
    equity = np.full(n, capital_usd)
    hold_y = np.zeros(n)
    hold_x = np.zeros(n)
    reasons = np.zeros(n, dtype=np.int64)
    trades = np.full((n // 2 + 2, T_COLS), np.nan)
    ntr = 0
    state = new_state(start_index)
    cash = capital_usd
    qy = 0.0
    qx = 0.0
    pending = False
    tgt_y = 0.0
    tgt_x = 0.0
    dec_bar = -1
    dec_reason = 0
    open_fees = 0.0
    slip_y = cv[C_SLIP_Y]
    slip_x = cv[C_SLIP_X]
    slip_bps = cv[C_SLIP_BPS]
    fee_bps = cv[C_FEE_BPS]
    for i in range(start_index, n):
        if i > start_index and (qy < 0.0 or qx < 0.0):
            borrow = 0.0
            if qy < 0.0:
                borrow -= qy * close_y[i - 1] * cv[C_BORROW_Y] * accrual[i - 1]
            if qx < 0.0:
                borrow -= qx * close_x[i - 1] * cv[C_BORROW_X] * accrual[i - 1]
            cash -= borrow
            open_fees += borrow
        if pending:
            dy = tgt_y - qy
            dx = tgt_x - qx
            py = math.nan
            px = math.nan
            fees = 0.0
            if dy != 0.0:
                py = fill_price(open_y[i], _sign(dy), slip_y, slip_bps)
                f = fill_fee(py, dy, fee_bps)
                cash -= dy * py + f
                fees += f
            if dx != 0.0:
                px = fill_price(open_x[i], _sign(dx), slip_x, slip_bps)
                f = fill_fee(px, dx, fee_bps)
                cash -= dx * px + f
                fees += f
            if qy != 0.0 or qx != 0.0:
                # close the open round trip (the kernel never resizes; a flip would close then open)
                t = ntr - 1
                ey = open_y[i] if math.isnan(py) else py
                ex = open_x[i] if math.isnan(px) else px
                trades[t, T_EXIT_DECISION] = dec_bar
                trades[t, T_EXIT_BAR] = i
                trades[t, T_EXIT_PX_Y] = ey
                trades[t, T_EXIT_PX_X] = ex
                exit_fees = fees if (tgt_y == 0.0 and tgt_x == 0.0) else 0.0
                trades[t, T_FEES] = open_fees + exit_fees
                trades[t, T_PNL] = (qy * (ey - trades[t, T_ENTRY_PX_Y]) + qx * (ex - trades[t, T_ENTRY_PX_X])
                                    - open_fees - exit_fees)
                trades[t, T_EXIT_REASON] = dec_reason
            if tgt_y != 0.0 or tgt_x != 0.0:
                t = ntr
                ntr += 1
                trades[t, T_ENTRY_DECISION] = dec_bar
                trades[t, T_ENTRY_BAR] = i
                trades[t, T_SIDE] = _sign(tgt_y) if tgt_y != 0.0 else -_sign(tgt_x)
                trades[t, T_QTY_Y] = tgt_y
                trades[t, T_QTY_X] = tgt_x
                trades[t, T_ENTRY_PX_Y] = py
                trades[t, T_ENTRY_PX_X] = px
                trades[t, T_ENTRY_REASON] = dec_reason
                open_fees = fees
            qy = tgt_y
            qx = tgt_x
            strategy_sync(state, qy, qx, py, px)
            pending = False
        equity[i] = cash + qy * close_y[i] + qx * close_x[i]
        hold_y[i] = qy
        hold_x[i] = qx
        if i < n - 1:
            ty, tx, r = strategy_step(state, zscore[i], hurst[i], adf_pvalue[i], beta[i], spread_std[i],
                                      close_y[i], close_x[i], pv)
            reasons[i] = r
            if ty != qy or tx != qx:
                pending = True
                tgt_y = ty
                tgt_x = tx
                dec_bar = i
                dec_reason = r
    if ntr > 0 and math.isnan(trades[ntr - 1, T_EXIT_BAR]):
        t = ntr - 1
        trades[t, T_FEES] = open_fees
        trades[t, T_PNL] = (qy * (close_y[n - 1] - trades[t, T_ENTRY_PX_Y])
                            + qx * (close_x[n - 1] - trades[t, T_ENTRY_PX_X]) - open_fees)
        trades[t, T_EXIT_REASON] = REASON_OPEN
    return equity, hold_y, hold_x, reasons, trades[:ntr].copy()


@njit
def backtest_score(open_y, close_y, open_x, close_x, zscore, hurst, adf_pvalue, beta, spread_std, pv,
                   cv, accrual, start_index, capital_usd, bpy):
    """Run :func:`backtest_loop` and return ``(sharpe, total_return_pct, max_drawdown_pct, closed_trades)``.

    Used by the grid search, which needs only the statistics.
    """
    equity, _, _, _, trades = backtest_loop(open_y, close_y, open_x, close_x, zscore, hurst, adf_pvalue,
                                            beta, spread_std, pv, cv, accrual, start_index, capital_usd)
    sharpe, ret, mdd = equity_stats(equity, start_index, bpy)
    closed = 0
    for t in range(trades.shape[0]):
        if trades[t, T_EXIT_REASON] != REASON_OPEN:
            closed += 1
    return sharpe, ret, mdd, closed


# ---------------------------------------------------------------------------------------------
# Python API
# ---------------------------------------------------------------------------------------------
@dataclass
class BacktestResult:
    """Outcome of :func:`run_backtest`.

    Attributes
    ----------
    trades : DataFrame, one row per round trip: entry_time, exit_time (fill bars' start times), side
        (+1 long spread / -1 short spread), qty_y, qty_x (shares), entry_price_y/x, exit_price_y/x
        (USD/share, fill prices incl. slippage), fees_usd, pnl_usd (net of fees), entry_reason,
        exit_reason ('exit', 'z_stop', 'dollar_stop' or 'open'), and the bar indices.
    equity : Series, equity in USD at each bar's close from ``start_index``
    positions : DataFrame, held shares qty_y, qty_x at each close from ``start_index``
    metrics : dict with units in the keys (see :func:`compute_metrics`)
    """

    trades: pd.DataFrame
    equity: pd.Series
    positions: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)


def _as_arrays(data: pd.DataFrame | Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], pd.Index]:
    if isinstance(data, pd.DataFrame):
        missing = [k for k in PRICE_KEYS if k not in data.columns]
        if missing:
            raise DataError(f"aligned bars lack column(s) {missing}; expected {list(PRICE_KEYS)} "
                            "(pairtrade.data.bars.align)")
        arrs = {k: np.ascontiguousarray(data[k].to_numpy(dtype=np.float64)) for k in PRICE_KEYS}
        index = data.index
    else:
        missing = [k for k in PRICE_KEYS if k not in data]
        if missing:
            raise DataError(f"price arrays lack key(s) {missing}; expected {list(PRICE_KEYS)}")
        arrs = {k: np.ascontiguousarray(np.asarray(data[k], dtype=np.float64)) for k in PRICE_KEYS}
        index = pd.RangeIndex(len(arrs["close_y"]))
    n = len(arrs["close_y"])
    for k, v in arrs.items():
        if len(v) != n:
            raise DataError(f"price array {k} has {len(v)} bars, close_y has {n}")
        bad = ~np.isfinite(v) | (v <= 0)
        if bad.any():
            raise DataError(f"price array {k} has {int(bad.sum())} NaN or non-positive value(s), first at "
                            f"bar {int(np.argmax(bad))} ({index[int(np.argmax(bad))]})")
    return arrs, index


def signal_arrays(signals: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The five signals the kernel needs as contiguous float64 arrays of length ``n``."""
    out = {}
    for k in SIGNAL_KEYS:
        if k not in signals:
            raise ValueError(f"signals lack {k!r}; expected keys {list(SIGNAL_KEYS)} (compute_signals)")
        v = np.ascontiguousarray(np.asarray(signals[k], dtype=np.float64))
        if v.shape != (n,):
            raise ValueError(f"signal {k!r} has shape {v.shape}, expected ({n},)")
        out[k] = v
    return out


C_SLIP_Y, C_SLIP_X, C_SLIP_BPS, C_FEE_BPS, C_BORROW_Y, C_BORROW_X = range(6)


def cost_vector(costs: CostModel, symbols: tuple[str, str] | None = None) -> np.ndarray:
    """Pack ``costs`` for the loop: ``[slip_y, slip_x (USD/share), slip_bps, fee_bps, borrow_y, borrow_x (annual)]``."""
    y, x = symbols if symbols is not None else ("", "")
    return np.array([costs.slippage_for(y), costs.slippage_for(x), costs.slippage_bps, costs.fee_bps,
                     costs.borrow_rate_for(y), costs.borrow_rate_for(x)], dtype=np.float64)


def accrual_years(index: pd.Index) -> np.ndarray:
    """ACT/360 year fraction between consecutive bar times (0 after the last bar, or without timestamps)."""
    n = len(index)
    out = np.zeros(n)
    if isinstance(index, pd.DatetimeIndex) and n > 1:
        out[:-1] = np.diff(index.as_unit("ns").asi8) / 1e9 / (360.0 * 86400.0)
    return out


def fill_arrays(arrs: Mapping[str, np.ndarray], params: StrategyParams) -> tuple[np.ndarray, np.ndarray]:
    """Prices at which orders decided on bar t's close fill on bar t+1 (``params.execution``).

    ``"next_open"`` (default): the opens; ``"next_close"``: the closes (for close-only data, or to mirror
    a market-on-close order of the next session).  Returns ``(fill_y, fill_x)``, USD/share.
    """
    if params.execution == "next_close":
        return arrs["close_y"], arrs["close_x"]
    return arrs["open_y"], arrs["open_x"]


def default_capital(params: StrategyParams) -> float:
    """Initial equity of a backtest, USD: ``2 * max_notional_usd``."""
    return 2.0 * params.max_notional_usd


def run_backtest(data: pd.DataFrame | Mapping[str, np.ndarray], signals: Mapping[str, np.ndarray],
                 params: StrategyParams, costs: CostModel | None = None, start_index: int = 0,
                 bar_size: str = "5Min", capital_usd: float | None = None,
                 symbols: tuple[str, str] | None = None) -> BacktestResult:
    """Backtest one pair with fixed parameters.

    Parameters
    ----------
    data : aligned bars (DataFrame from :func:`pairtrade.data.bars.align`, columns open_y, close_y, open_x,
        close_x in USD, index = bar start times) or a mapping of those four arrays
    signals : mapping with at least zscore, hurst, adf_pvalue, beta, spread_std (one value per bar,
        e.g. from ``pairtrade.signals.pipeline.compute_signals``)
    params : StrategyParams (thresholds, warm-up and sizing are used here)
    costs : CostModel (default ``CostModel()``)
    start_index : first bar that may trade (bars before it only warm up the signals); it also counts as
        bars already seen for ``warmup_bars``
    bar_size : Alpaca timeframe string, used for the annualisation of the Sharpe ratio
    capital_usd : initial equity, USD (default :func:`default_capital`)
    symbols : ``(y, x)`` symbols, for per-symbol slippage and borrow fees of ``costs``

    Returns
    -------
    BacktestResult

    Raises
    ------
    DataError
        Missing price columns, NaN or non-positive prices.
    ValueError
        Signals missing or of the wrong length; ``start_index`` out of range.
    """
    costs = costs or CostModel()
    arrs, index = _as_arrays(data)
    n = len(arrs["close_y"])
    sig = signal_arrays(signals, n)
    if not 0 <= start_index < n:
        raise ValueError(f"start_index {start_index} outside [0, {n})")
    capital = default_capital(params) if capital_usd is None else float(capital_usd)
    fy, fx = fill_arrays(arrs, params)
    equity, hy, hx, _, raw = backtest_loop(
        fy, arrs["close_y"], fx, arrs["close_x"], sig["zscore"], sig["hurst"],
        sig["adf_pvalue"], sig["beta"], sig["spread_std"], params_to_vector(params),
        cost_vector(costs, symbols), accrual_years(index), int(start_index), capital)
    trades = trades_frame(raw, index)
    eq = pd.Series(equity[start_index:], index=index[start_index:], name="equity_usd")
    pos = pd.DataFrame({"qty_y": hy[start_index:], "qty_x": hx[start_index:]}, index=index[start_index:])
    metrics = compute_metrics(equity, start_index, trades, bar_size)
    return BacktestResult(trades, eq, pos, metrics)


def trades_frame(raw: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """Turn the raw trade matrix of :func:`backtest_loop` into a labelled table."""
    def times(col: int) -> list:
        out = []
        for v in raw[:, col]:
            out.append(pd.NaT if math.isnan(v) else index[int(v)])
        return out

    def reason(v: float) -> str:
        if math.isnan(v):
            return ""
        return "open" if int(v) == REASON_OPEN else REASON_NAMES[int(v)]

    df = pd.DataFrame({
        "entry_time": times(T_ENTRY_BAR),
        "exit_time": times(T_EXIT_BAR),
        "side": raw[:, T_SIDE].astype(np.int64),
        "qty_y": raw[:, T_QTY_Y],
        "qty_x": raw[:, T_QTY_X],
        "entry_price_y": raw[:, T_ENTRY_PX_Y],
        "entry_price_x": raw[:, T_ENTRY_PX_X],
        "exit_price_y": raw[:, T_EXIT_PX_Y],
        "exit_price_x": raw[:, T_EXIT_PX_X],
        "fees_usd": raw[:, T_FEES],
        "pnl_usd": raw[:, T_PNL],
        "entry_reason": [reason(v) for v in raw[:, T_ENTRY_REASON]],
        "exit_reason": [reason(v) for v in raw[:, T_EXIT_REASON]],
        "entry_decision_bar": raw[:, T_ENTRY_DECISION],
        "entry_bar": raw[:, T_ENTRY_BAR],
        "exit_decision_bar": raw[:, T_EXIT_DECISION],
        "exit_bar": raw[:, T_EXIT_BAR],
    })
    return df


def compute_metrics(equity: np.ndarray, start_index: int, trades: pd.DataFrame, bar_size: str) -> dict:
    """Statistics of a run, units in the keys.

    Keys: ``Sharpe (annualised)``, ``Return [%]``, ``Max. Drawdown [%]``, ``Trades`` (closed round trips),
    ``Win Rate [%]`` (closed trades with pnl_usd > 0), ``PnL [$]`` (final minus initial equity),
    ``Fees [$]``, ``Equity Final [$]``, ``Bars``, ``Bars per Year``.
    """
    bpy = bars_per_year(bar_size)
    sharpe, ret, mdd = equity_stats(np.asarray(equity, dtype=np.float64), int(start_index), float(bpy))
    closed = trades[trades["exit_reason"] != "open"]
    n_closed = len(closed)
    win = 100.0 * float((closed["pnl_usd"] > 0).mean()) if n_closed else math.nan
    return {
        "Sharpe (annualised)": float(sharpe),
        "Return [%]": float(ret),
        "Max. Drawdown [%]": float(mdd),
        "Trades": int(n_closed),
        "Win Rate [%]": win,
        "PnL [$]": float(equity[-1] - equity[start_index]),
        "Fees [$]": float(trades["fees_usd"].sum()) if len(trades) else 0.0,
        "Equity Final [$]": float(equity[-1]),
        "Bars": int(len(equity) - start_index),
        "Bars per Year": int(bpy),
    }
