"""Performance statistics of an equity curve (USD), with units in the keys.

Conventions
-----------
* bar returns ``r_t = equity_t / equity_{t-1} - 1`` over the evaluated bars;
* annualised Sharpe ratio ``mean(r) / std(r, ddof=1) * sqrt(bars_per_year)`` (risk-free rate 0);
  0 when the equity never changes;
* ``bars_per_year``: 252 for daily bars; for intraday bars 252 sessions x bars per regular session
  (6.5 h / bar length, e.g. 78 for 5-minute bars);
* total return [%] ``100 * (equity_end / equity_start - 1)``;
* max drawdown [%] the largest peak-to-trough fall, ``100 * max(1 - equity / running_peak)`` (>= 0).
"""

from __future__ import annotations

import math

import numpy as np

from pairtrade._numba import njit
from pairtrade.data.bars import bar_seconds

TRADING_DAYS_PER_YEAR = 252
SESSION_SECONDS = int(6.5 * 3600)


def bars_per_session(bar_size: str) -> int:
    """Bars in one regular 6.5-hour session (1 for daily bars), e.g. '5Min' -> 78."""
    secs = bar_seconds(bar_size)
    if secs >= 86400:
        return 1
    return max(1, SESSION_SECONDS // secs)


def bars_per_year(bar_size: str) -> int:
    """Annualisation factor: 252 sessions x :func:`bars_per_session` (252 for '1Day')."""
    return TRADING_DAYS_PER_YEAR * bars_per_session(bar_size)


@njit
def equity_stats(equity: np.ndarray, start: int, bpy: float) -> tuple[float, float, float]:
    """Sharpe (annualised), total return [%] and max drawdown [%] of ``equity[start:]``.

    Parameters
    ----------
    equity : equity curve, USD per bar
    start : first bar evaluated
    bpy : bars per year

    Returns
    -------
    (sharpe, total_return_pct, max_drawdown_pct); NaN when fewer than 2 bars.
    """
    n = equity.shape[0]
    m = n - start
    if m < 2:
        return math.nan, math.nan, math.nan
    s = 0.0
    for i in range(start + 1, n):
        s += equity[i] / equity[i - 1] - 1.0
    mean = s / (m - 1)
    ss = 0.0
    for i in range(start + 1, n):
        d = equity[i] / equity[i - 1] - 1.0 - mean
        ss += d * d
    sharpe = 0.0
    if m > 2 and ss > 0.0:
        sd = math.sqrt(ss / (m - 2))
        if sd > 1e-15:
            sharpe = mean / sd * math.sqrt(bpy)
    ret = 100.0 * (equity[n - 1] / equity[start] - 1.0)
    peak = equity[start]
    mdd = 0.0
    for i in range(start, n):
        if equity[i] > peak:
            peak = equity[i]
        dd = 1.0 - equity[i] / peak
        if dd > mdd:
            mdd = dd
    return sharpe, ret, 100.0 * mdd
