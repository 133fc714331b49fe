"""Cointegration tests (Engle-Granger :func:`coint`, Johansen :func:`johansen`) and :func:`half_life`.

These run offline (pair selection, optimizer), once per sample, so they are NumPy code around the
compiled ADF kernel rather than per-bar kernels.  They mirror statsmodels 0.15.0
``statsmodels.tsa.stattools.coint`` and ``statsmodels.tsa.vector_ar.vecm.coint_johansen`` step by step.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from pairtrade.signals.adf import REGRESSIONS, _parse, adf, as_float_array
from pairtrade.signals.mackinnon import mackinnoncrit, mackinnonp

_SQRTEPS = math.sqrt(np.finfo(float).eps)


class CollinearityWarning(UserWarning):
    """The legs are (almost) perfectly collinear; the Engle-Granger statistic is set to -inf."""


@dataclass(frozen=True)
class CointResult:
    """Result of :func:`coint` (statsmodels ``coint`` returns ``stat, pvalue, crit``).

    Attributes
    ----------
    stat : float
        t statistic of the ADF test (regression "n") on the first-stage residuals; ``-inf`` for
        (almost) perfectly collinear legs, as statsmodels.
    pvalue : float
        MacKinnon (1994) p-value with ``N = number of series``; 0.0 when ``stat`` is ``-inf``.
    critical_values : dict[str, float]
        "1%", "5%", "10%" (MacKinnon 2010, ``nobs - 1`` as statsmodels/Stata); NaN for trend "n".
    coefs : ndarray, shape (k + ndet,)
        First-stage coefficients: hedge ratios of the x columns, then constant (and trend).
    usedlag : int
        Lags of the ADF regression (-1 when collinear).
    collinear : bool
        True when the first-stage R**2 >= 1 - 100 sqrt(eps) (no ADF run).
    """

    stat: float
    pvalue: float
    critical_values: dict
    coefs: np.ndarray
    usedlag: int
    collinear: bool


def coint(y, x, trend: str = "c", maxlag: int | None = None, autolag: str | None = "aic") -> CointResult:
    """Augmented Engle-Granger two-step cointegration test of ``y`` on ``x``.

    Step 1: OLS of ``y`` on ``[x, deterministic terms]``; step 2: ADF (regression "n", lag search as
    ``autolag``) on the residuals.  Same numbers as ``statsmodels.tsa.stattools.coint``.

    Parameters
    ----------
    y : array_like, shape (n,)
        Dependent leg (e.g. closes, USD).
    x : array_like, shape (n,) or (n, k)
        Other leg(s).
    trend : {"c", "n", "ct"}
        Deterministic terms of the cointegrating regression.
    maxlag, autolag
        Passed to the ADF step (see :func:`pairtrade.signals.adf.adf`).

    Returns
    -------
    CointResult

    Raises
    ------
    ValueError
        Shapes differ, non-finite values, a constant leg, too few observations, or unknown options.

    Warns
    -----
    CollinearityWarning
        When the legs are (almost) perfectly collinear; the result then has ``stat = -inf``,
        ``pvalue = 0.0`` and ``collinear = True`` (statsmodels' documented behaviour).
    """
    _parse(trend, autolag)
    ya = as_float_array(y, "y", 4)
    xa = np.asarray(x, dtype=np.float64)
    if xa.ndim == 1:
        xa = xa[:, None]
    if xa.ndim != 2 or xa.shape[0] != ya.shape[0]:
        raise ValueError(f"x: expected shape ({ya.shape[0]},) or ({ya.shape[0]}, k), got {np.shape(x)}")
    if not np.isfinite(xa).all():
        raise ValueError("x: expected finite values, got NaN or inf")
    if ya.max() == ya.min() or np.any(xa.max(axis=0) == xa.min(axis=0)):
        raise ValueError("y, x: expected non-constant legs, got a constant one")
    nobs, k = xa.shape
    k_vars = k + 1
    if k_vars > 6:
        raise ValueError(f"x: expected at most 5 columns (MacKinnon p-values exist for N <= 6), got {k}")
    det = []
    if trend in ("c", "ct"):
        det.append(np.ones(nobs))
    if trend == "ct":
        det.append(np.arange(1, nobs + 1, dtype=float))
    X = np.column_stack([xa] + det) if det else xa
    coefs = np.linalg.lstsq(X, ya, rcond=None)[0]
    resid = ya - X @ coefs
    ssr = float(resid @ resid)
    tss = float(((ya - ya.mean()) ** 2).sum()) if trend != "n" else float(ya @ ya)
    rsquared = 1.0 - ssr / tss
    if trend == "n":
        crit = {"1%": math.nan, "5%": math.nan, "10%": math.nan}
    else:
        c = mackinnoncrit(N=k_vars, regression=trend, nobs=nobs - 1)
        crit = {"1%": float(c[0]), "5%": float(c[1]), "10%": float(c[2])}
    if rsquared < 1 - 100 * _SQRTEPS:
        r = adf(resid, regression="n", maxlag=maxlag, autolag=autolag)
        stat, usedlag, collinear = r.stat, r.usedlag, False
    else:
        warnings.warn(
            "y and x are (almost) perfectly collinear; the Engle-Granger statistic is set to -inf",
            CollinearityWarning,
            stacklevel=2,
        )
        stat, usedlag, collinear = -math.inf, -1, True
    pvalue = mackinnonp(stat, regression=trend, N=k_vars)
    return CointResult(float(stat), float(pvalue), crit, coefs, int(usedlag), collinear)


@dataclass(frozen=True)
class JohansenResult:
    """Result of :func:`johansen` (statsmodels ``JohansenTestResult`` names in brackets).

    Attributes
    ----------
    trace_stat : ndarray, shape (k,)
        Trace statistics for ``r = 0 .. k-1`` (``lr1``).
    max_eig_stat : ndarray, shape (k,)
        Maximum-eigenvalue statistics (``lr2``).
    eigenvalues : ndarray, shape (k,)
        Decreasing (``eig``).
    eigenvectors : ndarray, shape (k, k)
        Columns are cointegrating vectors, normalised so ``v' S_kk v = 1`` and the first non-zero
        element of the matrix is positive (``evec``).
    trace_crit, max_eig_crit : ndarray, shape (k, 3)
        90 %, 95 %, 99 % critical values (MacKinnon, Haug, Michelis 1999) (``cvt``, ``cvm``).
    nobs : int
        Rows of the auxiliary regressions.
    """

    trace_stat: np.ndarray
    max_eig_stat: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    trace_crit: np.ndarray
    max_eig_crit: np.ndarray
    nobs: int


def _detrend(y: np.ndarray, order: int) -> np.ndarray:
    if order == -1:
        return y
    X = np.vander(np.linspace(-1, 1, len(y)), order + 1)
    return y - X @ np.linalg.lstsq(X, y, rcond=None)[0]


def _resid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return y
    return y - x @ np.linalg.lstsq(x, y, rcond=None)[0]


def johansen(prices, det_order: int = 0, k_ar_diff: int = 1) -> JohansenResult:
    """Johansen cointegration-rank test of 2 to 4 price series (Lütkepohl 2005, sec. 8.2).

    Mirrors ``statsmodels.tsa.vector_ar.vecm.coint_johansen`` step by step: detrend the levels with
    a polynomial of order ``det_order``, regress differences and lagged levels on ``k_ar_diff``
    lagged differences (demeaned), form ``S00, S0k, Skk``, solve the eigenproblem of
    ``Skk^-1 Sk0 S00^-1 S0k``.

    Parameters
    ----------
    prices : array_like, shape (n, k), 2 <= k <= 4
        Levels, one column per leg.
    det_order : {-1, 0, 1}
        No deterministic term, constant, linear trend.
    k_ar_diff : int
        Number of lagged differences, >= 0.

    Returns
    -------
    JohansenResult

    Raises
    ------
    ValueError
        Wrong shape, non-finite values, too few rows for the regressions, unknown ``det_order``,
        or collinear legs (singular level or difference covariance).
    """
    from statsmodels.tsa.coint_tables import c_sja, c_sjt  # tables only (MacKinnon-Haug-Michelis)

    a = np.asarray(prices, dtype=np.float64)
    if a.ndim != 2 or not (2 <= a.shape[1] <= 4):
        raise ValueError(f"prices: expected shape (n, k) with 2 <= k <= 4 legs, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("prices: expected finite values, got NaN or inf")
    if det_order not in (-1, 0, 1):
        raise ValueError(f"det_order: expected -1, 0 or 1, got {det_order!r}")
    k_ar_diff = int(k_ar_diff)
    if k_ar_diff < 0:
        raise ValueError(f"k_ar_diff: expected >= 0, got {k_ar_diff}")
    nobs, neqs = a.shape
    if nobs - 1 - k_ar_diff <= neqs * (k_ar_diff + 1) + 2:
        raise ValueError(f"prices: {nobs} rows are too few for {neqs} legs and k_ar_diff = {k_ar_diff}")
    f = 0 if det_order > -1 else det_order
    endog = _detrend(a, det_order)
    dx = np.diff(endog, 1, axis=0)
    if k_ar_diff > 0:
        z = np.column_stack([dx[k_ar_diff - j : dx.shape[0] - j] for j in range(1, k_ar_diff + 1)])
        z = _detrend(z, f)
    else:
        z = np.empty((dx.shape[0], 0))
    dxk = _detrend(dx[k_ar_diff:], f)
    r0t = _resid(dxk, z)
    lx = endog[: endog.shape[0] - k_ar_diff][1:]
    rkt = _resid(_detrend(lx, f), z)
    t = rkt.shape[0]
    skk = rkt.T @ rkt / t
    sk0 = rkt.T @ r0t / t
    s00 = r0t.T @ r0t / t
    for name, m in (("level", skk), ("difference", s00)):
        if np.linalg.cond(m) > 1e12:
            raise ValueError(f"prices: the {name} covariance is singular; expected legs that are not collinear")
    sig = sk0 @ np.linalg.inv(s00) @ sk0.T
    au, du = np.linalg.eig(np.linalg.inv(skk) @ sig)
    if np.iscomplexobj(au):
        au, du = au.real, du.real
    temp = np.linalg.inv(np.linalg.cholesky(du.T @ skk @ du))
    dt = du @ temp
    aind = np.argsort(au)[::-1]
    eig = au[aind]
    evec = dt[:, aind]
    nz = evec.flat != 0
    if np.any(nz):
        evec = evec * np.sign(evec.flat[nz][0])
    lr1 = np.empty(neqs)
    lr2 = np.empty(neqs)
    cvt = np.empty((neqs, 3))
    cvm = np.empty((neqs, 3))
    logs = np.log(1.0 - eig)
    for i in range(neqs):
        lr1[i] = -t * np.sum(logs[i:])
        lr2[i] = -t * logs[i]
        cvm[i] = c_sja(neqs - i, det_order)
        cvt[i] = c_sjt(neqs - i, det_order)
    return JohansenResult(lr1, lr2, eig, evec, cvt, cvm, t)


def half_life(spread, method: str = "ar1") -> float:
    """Half-life of mean reversion of ``spread`` in bars, from an AR(1)/OU fit.

    OLS of ``diff(s)_t = mu + lambda * s_{t-1} + e_t``; with ``phi = 1 + lambda``:

    * ``method="ar1"`` (default): ``-ln 2 / ln(phi)`` -- exact for AR(1) / a discretely sampled OU
      process (``kappa = -ln phi`` per bar);
    * ``method="chan"``: ``-ln 2 / lambda`` (Chan 2013, Example 2.4; the first-order approximation).

    Returns ``inf`` when ``lambda >= 0`` (no mean reversion) and ``0.0`` when ``phi <= 0`` with
    ``method="ar1"`` (reverts within one bar, oscillating).

    Raises
    ------
    ValueError
        Fewer than 3 values, non-finite or constant series, unknown method.
    """
    if method not in ("ar1", "chan"):
        raise ValueError(f"method: expected 'ar1' or 'chan', got {method!r}")
    s = as_float_array(spread, "spread", 3)
    if s.max() == s.min():
        raise ValueError("spread: expected a non-constant series, got a constant one")
    lag = s[:-1] - s[:-1].mean()
    ds = np.diff(s)
    ds = ds - ds.mean()
    den = float(lag @ lag)
    if den == 0.0:
        raise ValueError("spread: lagged levels are constant; expected variation")
    lam = float(lag @ ds) / den
    if lam >= 0.0:
        return math.inf
    if method == "chan":
        return -math.log(2.0) / lam
    phi = 1.0 + lam
    if phi <= 0.0:
        return 0.0
    return -math.log(2.0) / math.log(phi)


__all__ = ["CointResult", "CollinearityWarning", "JohansenResult", "coint", "half_life", "johansen", "REGRESSIONS"]
