"""pairtrade.signals: numeric kernels of the pair signals (numba, arrays in, arrays/tuples out; no I/O).

Batch functions (1-D float64 arrays) and streaming counterparts that equal them at every bar:

========================  ======================================  =============================
quantity                  batch                                   streaming
========================  ======================================  =============================
Kalman hedge ratio        :func:`kalman_hedge`                    :class:`KalmanHedge`
rolling mean/std/z        :func:`rolling_zscore`                  :class:`RollingZScore`
Hurst exponent (R/S)      :func:`hurst_rs`, :func:`hurst_alp`     :class:`RollingHurst`
ADF test                  :func:`adf`                             :class:`RollingADF`
Engle-Granger / Johansen  :func:`coint`, :func:`johansen`
half-life (AR(1)/OU)      :func:`half_life`
whole pipeline            :func:`pipeline.compute_signals`        :class:`pipeline.SignalEngine`
========================  ======================================  =============================

Set ``PAIRTRADE_DISABLE_NUMBA=1`` before import to run every kernel as plain Python.
"""

from pairtrade.signals.adf import ADFResult, RollingADF, adf
from pairtrade.signals.coint import CointResult, JohansenResult, coint, half_life, johansen
from pairtrade.signals.hurst import (
    RollingHurst,
    hurst_alp,
    hurst_null_distribution,
    hurst_null_quantile,
    hurst_rs,
)
from pairtrade.signals.kalman import KalmanHedge, kalman_hedge
from pairtrade.signals.mackinnon import mackinnoncrit, mackinnonp
from pairtrade.signals.rolling import RollingZScore, rolling_zscore

__all__ = [
    "ADFResult",
    "CointResult",
    "JohansenResult",
    "KalmanHedge",
    "RollingADF",
    "RollingHurst",
    "RollingZScore",
    "adf",
    "coint",
    "half_life",
    "hurst_alp",
    "hurst_null_distribution",
    "hurst_null_quantile",
    "hurst_rs",
    "johansen",
    "kalman_hedge",
    "mackinnoncrit",
    "mackinnonp",
    "rolling_zscore",
]
