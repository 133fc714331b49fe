"""MacKinnon approximate p-values and critical values of unit-root / cointegration t statistics.

Numba kernels mirroring ``statsmodels.tsa.adfvalues.mackinnonp`` and ``mackinnoncrit`` (statsmodels
0.15.0), with the coefficient tables of :mod:`pairtrade.signals._mackinnon_tables`.

References
----------
MacKinnon, J.G. (1994) "Approximate asymptotic distribution functions for unit-root and
cointegration tests", Journal of Business & Economic Statistics 12(2), 167-176.
MacKinnon, J.G. (2010) "Critical values for cointegration tests", Queen's University Economics
Working Paper 1227.
"""

from __future__ import annotations

import math

import numpy as np

from pairtrade._numba import njit
from pairtrade.signals._mackinnon_tables import (
    REG_CODES,
    TAU_2010,
    TAU_LARGEP,
    TAU_MAX,
    TAU_MIN,
    TAU_SMALLP,
    TAU_STAR,
)

_SQRT1_2 = 0.7071067811865476


@njit
def norm_cdf(z: float) -> float:
    """Standard normal CDF, the branch structure of cephes ``ndtr`` (used by scipy ``norm.cdf``)."""
    x = z * _SQRT1_2
    a = abs(x)
    if a < _SQRT1_2:
        return 0.5 + 0.5 * math.erf(x)
    y = 0.5 * math.erfc(a)
    if x > 0:
        return 1.0 - y
    return y


@njit
def mackinnonp_kernel(stat: float, reg: int, n_series: int) -> float:
    """MacKinnon (1994) approximate p-value of a (A)DF / Engle-Granger t statistic.

    Parameters
    ----------
    stat : float
        The t statistic.
    reg : int
        Regression code: 0 "n", 1 "c", 2 "ct", 3 "ctt".
    n_series : int
        Number of I(1) series (1 for ADF, 2 for a two-leg Engle-Granger test), 1..6.

    Returns
    -------
    float
        p-value in [0, 1]; NaN when ``stat`` is NaN. Mirrors ``statsmodels.tsa.adfvalues.mackinnonp``.
    """
    if math.isnan(stat):
        return math.nan
    i = n_series - 1
    if stat > TAU_MAX[reg, i]:
        return 1.0
    if stat < TAU_MIN[reg, i]:
        return 0.0
    y = 0.0
    if stat <= TAU_STAR[reg, i]:
        for k in range(TAU_SMALLP.shape[2] - 1, -1, -1):
            y = y * stat + TAU_SMALLP[reg, i, k]
    else:
        for k in range(TAU_LARGEP.shape[2] - 1, -1, -1):
            y = y * stat + TAU_LARGEP[reg, i, k]
    return norm_cdf(y)


@njit
def mackinnoncrit_kernel(reg: int, n_series: int, nobs: float, out: np.ndarray) -> None:
    """MacKinnon (2010) 1 %, 5 %, 10 % critical values for sample size ``nobs`` (``inf`` = asymptotic).

    Writes the three values into ``out`` (shape (3,)). Mirrors ``statsmodels.tsa.adfvalues.mackinnoncrit``.
    """
    i = n_series - 1
    for c in range(3):
        if math.isinf(nobs):
            out[c] = TAU_2010[reg, i, c, 0]
        else:
            inv = 1.0 / nobs
            y = 0.0
            for k in range(TAU_2010.shape[3] - 1, -1, -1):
                y = y * inv + TAU_2010[reg, i, c, k]
            out[c] = y


def _reg_code(regression: str, allowed=("n", "c", "ct", "ctt")) -> int:
    if regression not in allowed:
        raise ValueError(f"regression must be one of {', '.join(map(repr, allowed))}, got {regression!r}")
    return REG_CODES[regression]


def mackinnonp(stat: float, regression: str = "c", N: int = 1) -> float:
    """MacKinnon (1994) approximate p-value; same numbers as ``statsmodels.tsa.adfvalues.mackinnonp``.

    Parameters
    ----------
    stat : float
        (A)DF or Engle-Granger t statistic.
    regression : {"n", "c", "ct", "ctt"}
        Deterministic terms of the test regression.
    N : int
        Number of I(1) series, 1..6.

    Raises
    ------
    ValueError
        Unknown ``regression`` or ``N`` outside 1..6.
    """
    reg = _reg_code(regression)
    if not 1 <= int(N) <= 6:
        raise ValueError(f"N (number of I(1) series) must be in 1..6, got {N}")
    return float(mackinnonp_kernel(float(stat), reg, int(N)))


def mackinnoncrit(N: int = 1, regression: str = "c", nobs: float = math.inf) -> np.ndarray:
    """MacKinnon (2010) critical values (1 %, 5 %, 10 %), like ``statsmodels`` ``mackinnoncrit``.

    Raises
    ------
    ValueError
        Unknown ``regression``, ``N`` outside 1..12, or N > 1 with regression "n" (no table).
    """
    reg = _reg_code(regression)
    if not 1 <= int(N) <= 12:
        raise ValueError(f"N (number of I(1) series) must be in 1..12, got {N}")
    if reg == 0 and N != 1:
        raise ValueError("critical values for regression 'n' exist only for N = 1")
    out = np.empty(3)
    mackinnoncrit_kernel(reg, int(N), float(nobs), out)
    return out
