"""Parameter grid over the entry / exit / stop thresholds of one pair.

The signals do not depend on the thresholds, so they are computed once per pair and every grid point
only re-runs the compiled backtest loop (:func:`pairtrade.backtest.engine.backtest_score`).  Grid points
are scored by the annualised Sharpe ratio, subject to a minimum number of closed trades.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from pairtrade.backtest.engine import (_as_arrays, accrual_years, backtest_loop, backtest_score, cost_vector,
                                       default_capital, fill_arrays, signal_arrays)
from pairtrade.backtest.engine import REASON_OPEN, T_EXIT_REASON
from pairtrade.backtest.metrics import bars_per_year, equity_stats
from pairtrade.config import CostModel, StrategyParams
from pairtrade.strategy.kernel import params_to_vector

DEFAULT_ENTRY_Z = (1.5, 2.0, 2.5, 3.0, 3.5)
DEFAULT_EXIT_Z = (0.0, 0.5, 1.0)
DEFAULT_STOP_Z = (3.5, 4.5, 6.0)


def threshold_grid(entry_z: Sequence[float] = DEFAULT_ENTRY_Z, exit_z: Sequence[float] = DEFAULT_EXIT_Z,
                   stop_z: Sequence[float] = DEFAULT_STOP_Z) -> list[tuple[float, float, float]]:
    """All ``(entry_z, exit_z, stop_z)`` combinations with ``exit_z < entry_z < stop_z`` (std devs)."""
    return [(float(e), float(x), float(s)) for e, x, s in itertools.product(entry_z, exit_z, stop_z)
            if x < e < s]


@dataclass
class GridResult:
    """Outcome of :func:`grid_search`.

    Attributes
    ----------
    table : DataFrame, one row per grid point: entry_z, exit_z, stop_z, sharpe (annualised),
        total_return_pct, max_drawdown_pct, trades (closed), eligible (trades >= min_trades)
    best : index into ``table`` of the highest Sharpe among eligible points, or None
    best_params : StrategyParams of ``best`` (None when no point is eligible)
    """

    table: pd.DataFrame
    best: int | None
    best_params: StrategyParams | None
    returns: np.ndarray | None = None

    @property
    def best_row(self) -> pd.Series | None:
        return None if self.best is None else self.table.loc[self.best]

    def top_any(self) -> pd.Series | None:
        """Highest-Sharpe row regardless of the trade count (for reporting why a pair failed)."""
        t = self.table[np.isfinite(self.table["sharpe"])]
        if t.empty:
            return None
        return t.loc[t["sharpe"].idxmax()]


def grid_search(data: pd.DataFrame | Mapping[str, np.ndarray], signals: Mapping[str, np.ndarray],
                base_params: StrategyParams, costs: CostModel | None = None,
                grid: Sequence[tuple[float, float, float]] | None = None, start_index: int = 0,
                bar_size: str = "5Min", min_trades: int = 10, capital_usd: float | None = None,
                progress: Callable[[int], None] | None = None, symbols: tuple[str, str] | None = None,
                return_matrix: bool = False) -> GridResult:
    """Backtest every threshold combination of ``grid`` on the same signals.

    Parameters
    ----------
    data : aligned bars (see :func:`pairtrade.backtest.engine.run_backtest`)
    signals : precomputed signals of the pair (do not depend on the thresholds)
    base_params : StrategyParams supplying windows, gates, sizing and the dollar stop
    costs : CostModel
    grid : ``(entry_z, exit_z, stop_z)`` tuples (default :func:`threshold_grid`)
    start_index : first tradable bar
    bar_size : for the annualisation of the Sharpe ratio
    min_trades : minimum closed trades for a point to be eligible
    capital_usd : initial equity, USD (default ``2 * max_notional_usd``)
    progress : called with 1 after each grid point (e.g. ``tqdm.update``)
    symbols : ``(y, x)`` for per-symbol costs
    return_matrix : also return the per-bar returns of every grid point from ``start_index``
        (``GridResult.returns``, shape (bars - start_index - 1, points)), for CSCV

    Returns
    -------
    GridResult
    """
    costs = costs or CostModel()
    grid = list(threshold_grid() if grid is None else grid)
    arrs, index = _as_arrays(data)
    cv = cost_vector(costs, symbols)
    accrual = accrual_years(index)
    n = len(arrs["close_y"])
    sig = signal_arrays(signals, n)
    capital = default_capital(base_params) if capital_usd is None else float(capital_usd)
    bpy = float(bars_per_year(bar_size))
    pv = params_to_vector(base_params)
    fy, fx = fill_arrays(arrs, base_params)
    rows = []
    mats = []
    for entry, exit_, stop in grid:
        p = pv.copy()
        p[0], p[1], p[2] = entry, exit_, stop
        if return_matrix:
            equity, _, _, _, raw = backtest_loop(
                fy, arrs["close_y"], fx, arrs["close_x"], sig["zscore"], sig["hurst"], sig["adf_pvalue"],
                sig["beta"], sig["spread_std"], p, cv, accrual, int(start_index), capital)
            sharpe, ret, mdd = equity_stats(equity, int(start_index), bpy)
            trades = int(np.sum(raw[:, T_EXIT_REASON] != REASON_OPEN)) if raw.shape[0] else 0
            e = equity[int(start_index):]
            mats.append(e[1:] / e[:-1] - 1.0)
        else:
            sharpe, ret, mdd, trades = backtest_score(
                fy, arrs["close_y"], fx, arrs["close_x"], sig["zscore"], sig["hurst"],
                sig["adf_pvalue"], sig["beta"], sig["spread_std"], p, cv, accrual, int(start_index), capital,
                bpy)
        rows.append((entry, exit_, stop, float(sharpe), float(ret), float(mdd), int(trades)))
        if progress is not None:
            progress(1)
    table = pd.DataFrame(rows, columns=["entry_z", "exit_z", "stop_z", "sharpe", "total_return_pct",
                                        "max_drawdown_pct", "trades"])
    table["eligible"] = (table["trades"] >= min_trades) & np.isfinite(table["sharpe"])
    best = None
    best_params = None
    elig = table[table["eligible"]]
    if not elig.empty:
        # highest Sharpe; ties broken by more trades, then by the earlier grid point
        order = elig.sort_values(["sharpe", "trades"], ascending=[False, False], kind="stable")
        best = int(order.index[0])
        r = table.loc[best]
        best_params = base_params.model_copy(update={"entry_z": float(r.entry_z), "exit_z": float(r.exit_z),
                                                     "stop_z": float(r.stop_z)})
        best_params = StrategyParams.model_validate(best_params.model_dump())
    returns = np.column_stack(mats) if mats else None
    return GridResult(table, best, best_params, returns)


def is_finite(v: float | None) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))
