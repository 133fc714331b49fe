"""pairtrade.backtest: the strategy kernel driven over arrays -- single run, threshold grid, optimizer CLI.

* :func:`pairtrade.backtest.engine.run_backtest` -> :class:`~pairtrade.backtest.engine.BacktestResult`
* :func:`pairtrade.backtest.grid.grid_search` over :func:`~pairtrade.backtest.grid.threshold_grid`
* :mod:`pairtrade.backtest.metrics`: annualised Sharpe ratio, return [%], max drawdown [%]
* :func:`pairtrade.backtest.optimize.main`: ``python optimizer.py``
"""

from pairtrade.backtest.engine import BacktestResult, run_backtest
from pairtrade.backtest.grid import GridResult, grid_search, threshold_grid
from pairtrade.backtest.metrics import bars_per_year

__all__ = ["BacktestResult", "GridResult", "bars_per_year", "grid_search", "run_backtest", "threshold_grid"]
