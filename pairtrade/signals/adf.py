"""Augmented Dickey-Fuller test: batch :func:`adf` and streaming :class:`RollingADF`.

Same lag choice and same numbers as ``statsmodels.tsa.stattools.adfuller`` (statsmodels 0.15.0):
default ``maxlag = min(nobs // 2 - ntrend - 1, ceil(12 * (nobs / 100) ** 0.25))`` (Schwert 1989),
lag search over ``0..maxlag`` on the *common* sample of ``nobs - maxlag - 1`` rows, and a final
re-fit of the chosen lag on its own (longer) sample.  P-values follow MacKinnon (1994) with the
2010 tables; critical values MacKinnon (2010).

How it is fast
--------------
statsmodels fits ``maxlag + 2`` OLS regressions by pseudo-inverse.  Here one pass over the window
builds the cross-product (Gram) matrix of ``[trend, level, lag_1..lag_p, diff]`` (the lag-by-lag
block is Toeplitz-like, so only its first row needs a pass over the data, the rest follows by
shifting), centred analytically for the constant.  A single Cholesky factorisation of that matrix
gives the residual sum of squares of *every* nested lag model (squares of the last row of the
factor), hence AIC/BIC/t-stat for the whole lag search; the re-fit needs one more Gram and
Cholesky with the level column ordered last, whose t statistic is ``L[y, level] / s``.  The cost is
``O(nobs * maxlag + maxlag**3)`` per test, about 10 microseconds for a 390-bar window.

Numerics: data are shifted by their window means before forming products (exact for regressions
with a constant), which keeps the normal equations well conditioned; agreement with statsmodels is
~1e-12 relative on real and random series (tests assert 1e-9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pairtrade._numba import njit
from pairtrade.signals.mackinnon import mackinnoncrit_kernel, mackinnonp_kernel

#: codes of ``regression`` understood by the kernels
REGRESSIONS = {"n": 0, "c": 1, "ct": 2}
#: codes of ``autolag`` understood by the kernels (None -> 0)
AUTOLAGS = {None: 0, "aic": 1, "bic": 2, "t-stat": 3}

_LOG_2PI = math.log(2.0 * math.pi)
_T_STOP = 1.6448536269514722  # statsmodels _autolag: stats.norm.ppf(.95)
_PIVOT_TOL = 1e-12  # relative pivot below which a regressor counts as collinear

# layout of the kernel's output vector
OUT_STAT, OUT_PVALUE, OUT_USEDLAG, OUT_NOBS, OUT_ICBEST, OUT_CRIT1, OUT_CRIT5, OUT_CRIT10, OUT_MAXLAG = range(9)
OUT_SIZE = 9


@njit
def default_maxlag(n: int, reg: int) -> int:
    """statsmodels' default ``maxlag`` for a series of ``n`` levels; negative when too short."""
    ntrend = 0 if reg == 0 else reg  # "c" -> 1, "ct" -> 2
    ml = int(math.ceil(12.0 * math.pow(n / 100.0, 1.0 / 4.0)))
    lim = n // 2 - ntrend - 1
    if lim < ml:
        ml = lim
    return ml


@njit(fastmath={"reassoc", "contract"})
def _lag_products(d, xs, lo, hi, p, sdd, sxd):
    """``sdd[h] = sum_{t=lo}^{hi-1} d[t] d[t-h]`` and ``sxd[h] = sum xs[t] d[t-h]`` for h = 0..p.

    The hot loop of the ADF (``O(nobs * p)``).  Reassociation is allowed here so LLVM can
    vectorise the reductions (SIMD partial sums); results differ from sequential summation by a few
    ulps only.  No NaN/inf assumptions are made (finite input is checked by the callers).
    """
    a1 = d[lo:hi]
    a3 = xs[lo:hi]
    cnt = hi - lo
    for h in range(p + 1):
        a2 = d[lo - h : hi - h]  # slices + a 0-based index let LLVM drop wrap-around checks and vectorise
        a = 0.0
        b = 0.0
        for i in range(cnt):
            dh = a2[i]
            a += a1[i] * dh
            b += a3[i] * dh
        sdd[h] = a
        sxd[h] = b


@njit
def _adf_gram(x, reg, m, p, A):
    """Centred cross-products of the ADF regression over rows ``t = m .. n-2``.

    Natural column order of ``A`` (size ``K + 1``): ``[trend (ct only), level x_t, d_{t-1} .. d_{t-p},
    d_t]`` with ``d = diff(x)``.  For ``reg >= 1`` the constant is partialled out (centring).
    Returns ``nobs``.
    """
    n = x.shape[0]
    nobs = n - 1 - m
    off = 1 if reg == 2 else 0
    K = off + 1 + p
    cx = 0.0
    cd = 0.0
    if reg >= 1:
        s = 0.0
        for i in range(n):
            s += x[i]
        cx = s / n
        cd = (x[n - 1] - x[0]) / (n - 1)
    d = np.empty(n - 1)
    for i in range(n - 1):
        d[i] = (x[i + 1] - x[i]) - cd
    sdd = np.zeros(p + 1)  # sum_t d_t d_{t-h}
    sxd = np.zeros(p + 1)  # sum_t x_t d_{t-h}
    std_ = np.zeros(p + 1)  # sum_t tau_t d_{t-h}
    sx = 0.0
    sxx = 0.0
    stx = 0.0
    stt = 0.0
    sd0 = 0.0
    tc = 0.5 * (m + n - 2)
    xs = np.empty(n - 1)
    for t in range(n - 1):
        xs[t] = x[t] - cx
    _lag_products(d, xs, m, n - 1, p, sdd, sxd)
    for t in range(m, n - 1):
        dt = d[t]
        xt = xs[t]
        sx += xt
        sxx += xt * xt
        sd0 += dt
        if off == 1:
            tau = t - tc
            stx += tau * xt
            stt += tau * tau
            for h in range(p + 1):
                std_[h] += tau * d[t - h]
    # lag block by shifting the first row: S[i, j] = S[i-1, j-1] - d[n-1-i] d[n-1-j] + d[m-i] d[m-j]
    S = np.empty((p + 1, p + 1))
    for h in range(p + 1):
        S[0, h] = sdd[h]
        S[h, 0] = sdd[h]
    for i in range(1, p + 1):
        for j in range(i, p + 1):
            v = S[i - 1, j - 1] - d[n - 1 - i] * d[n - 1 - j] + d[m - i] * d[m - j]
            S[i, j] = v
            S[j, i] = v
    sd = np.empty(p + 1)
    sd[0] = sd0
    for j in range(1, p + 1):
        sd[j] = sd[j - 1] - d[n - 1 - j] + d[m - j]
    if reg == 0:
        sx = 0.0
        for j in range(p + 1):
            sd[j] = 0.0
    inv_n = 1.0 / nobs
    lev = off
    # level
    A[lev, lev] = sxx - sx * sx * inv_n
    for h in range(p + 1):
        c = K if h == 0 else off + h
        v = sxd[h] - sx * sd[h] * inv_n
        A[lev, c] = v
        A[c, lev] = v
    for i in range(p + 1):
        ci = K if i == 0 else off + i
        for j in range(i, p + 1):
            cj = K if j == 0 else off + j
            v = S[i, j] - sd[i] * sd[j] * inv_n
            A[ci, cj] = v
            A[cj, ci] = v
    if off == 1:
        A[0, 0] = stt
        A[0, lev] = stx
        A[lev, 0] = stx
        for h in range(p + 1):
            c = K if h == 0 else off + h
            A[0, c] = std_[h]
            A[c, 0] = std_[h]
    return nobs


@njit
def _cholesky_lower(A, size):
    """In-place lower Cholesky of ``A[:size, :size]``; the last row/column is the response.

    Returns False when a regressor pivot is not positive relative to its diagonal (collinear
    regressors); the response pivot is clamped at 0 (perfect fit).
    """
    for j in range(size):
        orig = A[j, j]
        s = orig
        for k in range(j):
            s -= A[j, k] * A[j, k]
        if j < size - 1:
            if not (s > _PIVOT_TOL * orig) or not (orig > 0.0):
                return False
            ljj = math.sqrt(s)
        else:
            ljj = math.sqrt(s) if s > 0.0 else 0.0
        A[j, j] = ljj
        if ljj == 0.0:
            continue
        for i in range(j + 1, size):
            s2 = A[i, j]
            for k in range(j):
                s2 -= A[i, k] * A[j, k]
            A[i, j] = s2 / ljj
    return True


@njit
def adf_kernel(x, reg, maxlag, autolag, out):
    """ADF test of the levels ``x`` (1-D float64, finite, non-constant: the caller checks).

    Parameters
    ----------
    x : ndarray, shape (n,)
        Levels.
    reg : int
        0 "n", 1 "c", 2 "ct".
    maxlag : int
        Highest lag; negative means statsmodels' default.
    autolag : int
        0 none (use ``maxlag``), 1 AIC, 2 BIC, 3 t-stat.
    out : ndarray, shape (9,)
        Receives stat, pvalue, usedlag, nobs, icbest, crit 1 %, 5 %, 10 %, maxlag.  ``stat`` is NaN
        when a regression is rank deficient or has no residual degrees of freedom.
    """
    n = x.shape[0]
    if maxlag < 0:
        maxlag = default_maxlag(n, reg)
    out[OUT_MAXLAG] = maxlag
    off = 1 if reg == 2 else 0
    nconst = 1 if reg >= 1 else 0
    for k in range(OUT_SIZE - 1):
        out[k] = math.nan
    if maxlag < 0:
        return
    bestlag = maxlag
    icbest = math.nan
    if autolag != 0:
        K = off + 1 + maxlag
        A = np.empty((K + 1, K + 1))
        nobs = _adf_gram(x, reg, maxlag, maxlag, A)
        if not _cholesky_lower(A, K + 1):
            return
        # suffix sums of squares of the response row give the SSR of every nested model
        ssr = np.empty(maxlag + 1)
        acc = A[K, K] * A[K, K]
        for k in range(maxlag, -1, -1):
            kk = off + 1 + k
            ssr[k] = acc
            acc += A[K, kk - 1] * A[K, kk - 1]
        nobs2 = nobs / 2.0
        if autolag == 1 or autolag == 2:
            icbest = math.inf
            bestlag = 0
            for k in range(maxlag + 1):
                kparams = off + 1 + k + nconst
                if ssr[k] > 0.0:
                    llf = -nobs2 * _LOG_2PI - nobs2 * math.log(ssr[k] / nobs) - nobs2
                else:
                    llf = math.inf  # perfect fit
                if autolag == 1:
                    ic = -2.0 * llf + 2.0 * kparams
                else:
                    ic = -2.0 * llf + math.log(nobs) * kparams
                if ic < icbest:
                    icbest = ic
                    bestlag = k
        else:
            bestlag = maxlag
            icbest = 0.0
            for k in range(maxlag, -1, -1):
                kk = off + 1 + k
                df = nobs - kk - nconst
                bestlag = k
                if df <= 0 or ssr[k] <= 0.0:
                    icbest = math.nan  # statsmodels: t = nan, never significant
                    continue
                se = math.sqrt(ssr[k] / df)
                icbest = abs(A[K, kk - 1] / se)
                if icbest >= _T_STOP:
                    break
    # final fit with the chosen lag on its own sample, level ordered last
    p = bestlag
    K = off + 1 + p
    A = np.empty((K + 1, K + 1))
    nobs = _adf_gram(x, reg, p, p, A)
    B = np.empty((K + 1, K + 1))
    perm = np.empty(K + 1, dtype=np.int64)
    for i in range(off):
        perm[i] = i
    for j in range(p):
        perm[off + j] = off + 1 + j
    perm[K - 1] = off
    perm[K] = K
    for i in range(K + 1):
        for j in range(K + 1):
            B[i, j] = A[perm[i], perm[j]]
    df = nobs - K - nconst
    out[OUT_USEDLAG] = p
    out[OUT_NOBS] = nobs
    out[OUT_ICBEST] = icbest
    crit = np.empty(3)
    mackinnoncrit_kernel(reg, 1, float(nobs), crit)
    out[OUT_CRIT1] = crit[0]
    out[OUT_CRIT5] = crit[1]
    out[OUT_CRIT10] = crit[2]
    if df <= 0 or not _cholesky_lower(B, K + 1):
        return
    ssr_f = B[K, K] * B[K, K]
    if ssr_f > 0.0:
        stat = B[K, K - 1] / math.sqrt(ssr_f / df)
    else:
        stat = -math.inf if B[K, K - 1] < 0 else math.inf
    out[OUT_STAT] = stat
    out[OUT_PVALUE] = mackinnonp_kernel(stat, reg, 1)


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ADFResult:
    """Result of :func:`adf` (names of statsmodels ``adfuller`` in brackets).

    Attributes
    ----------
    stat : float
        ADF t statistic of the lagged level (``adfstat``).
    pvalue : float
        MacKinnon (1994/2010) approximate p-value.
    usedlag : int
        Number of lagged differences in the final regression.
    nobs : int
        Rows of the final regression (``len(x) - usedlag - 1``).
    critical_values : dict[str, float]
        Keys ``"1%"``, ``"5%"``, ``"10%"`` (MacKinnon 2010, finite-sample for ``nobs``).
    icbest : float or None
        Best information criterion (AIC/BIC), |t| of the last lag for "t-stat", None without autolag.
    maxlag : int
        Highest lag considered.
    regression : str
    autolag : str or None
    """

    stat: float
    pvalue: float
    usedlag: int
    nobs: int
    critical_values: dict = field(default_factory=dict)
    icbest: float | None = None
    maxlag: int = 0
    regression: str = "c"
    autolag: str | None = "AIC"


def as_float_array(x, name: str, min_len: int = 1) -> np.ndarray:
    """Validate a 1-D finite float64 array; ValueError naming ``name`` and what was expected."""
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {a.shape}")
    if a.shape[0] < min_len:
        raise ValueError(f"{name}: expected at least {min_len} values, got {a.shape[0]}")
    if not np.isfinite(a).all():
        i = int(np.flatnonzero(~np.isfinite(a))[0])
        raise ValueError(f"{name}: expected finite values, got {a[i]} at index {i}")
    return a


def _parse(regression, autolag) -> tuple[int, int]:
    if regression not in REGRESSIONS:
        raise ValueError(f"regression: expected one of 'n', 'c', 'ct', got {regression!r}")
    key = autolag.lower() if isinstance(autolag, str) else autolag
    if key not in AUTOLAGS:
        raise ValueError(f"autolag: expected 'AIC', 'BIC', 't-stat' or None, got {autolag!r}")
    return REGRESSIONS[regression], AUTOLAGS[key]


def _result(out: np.ndarray, regression: str, autolag) -> ADFResult:
    return ADFResult(
        stat=float(out[OUT_STAT]),
        pvalue=float(out[OUT_PVALUE]),
        usedlag=int(out[OUT_USEDLAG]),
        nobs=int(out[OUT_NOBS]),
        critical_values={"1%": float(out[OUT_CRIT1]), "5%": float(out[OUT_CRIT5]), "10%": float(out[OUT_CRIT10])},
        icbest=None if autolag is None else float(out[OUT_ICBEST]),
        maxlag=int(out[OUT_MAXLAG]),
        regression=regression,
        autolag=autolag,
    )


def adf(x, regression: str = "c", maxlag: int | None = None, autolag: str | None = "AIC") -> ADFResult:
    """Augmented Dickey-Fuller unit-root test, numerically equal to statsmodels ``adfuller``.

    Regression ``diff(x)_t = [const, trend] + gamma * x_{t-1} + sum_j phi_j diff(x)_{t-j} + e_t``;
    the statistic is the t value of ``gamma``.

    Parameters
    ----------
    x : array_like, shape (n,)
        Levels (e.g. spread in USD), finite.
    regression : {"c", "n", "ct"}
        Deterministic terms: constant, none, constant and linear trend.
    maxlag : int, optional
        Highest lag; default ``min(n // 2 - ntrend - 1, ceil(12 * (n / 100) ** 0.25))``.
    autolag : {"AIC", "BIC", "t-stat", None}
        Lag selection on the common sample (as statsmodels); None uses ``maxlag`` lags.

    Returns
    -------
    ADFResult

    Raises
    ------
    ValueError
        Non-1-D or non-finite input, constant series ("expected a non-constant series"), a sample too
        short for the regression, ``maxlag`` larger than ``n // 2 - ntrend - 1``, unknown
        ``regression``/``autolag``, or collinear regressors (rank-deficient regression).

    References
    ----------
    statsmodels.tsa.stattools.adfuller (0.15.0); MacKinnon (1994, 2010); Schwert (1989).
    """
    reg, al = _parse(regression, autolag)
    a = as_float_array(x, "x", 1)
    if a.max() == a.min():
        raise ValueError("x: expected a non-constant series, got a constant one")
    n = a.shape[0]
    ntrend = 0 if reg == 0 else reg
    if maxlag is None:
        ml = int(default_maxlag(n, reg))
        if ml < 0:
            raise ValueError(
                f"x: sample of {n} values is too short for regression {regression!r} "
                f"(need at least {2 * (ntrend + 1)} values)"
            )
    else:
        ml = int(maxlag)
        if ml < 0:
            raise ValueError(f"maxlag: expected a non-negative integer, got {maxlag}")
        if ml > n // 2 - ntrend - 1:
            raise ValueError(
                f"maxlag: expected at most n // 2 - ntrend - 1 = {n // 2 - ntrend - 1} for n = {n}, got {ml}"
            )
    out = np.empty(OUT_SIZE)
    adf_kernel(a, reg, ml, al, out)
    if math.isnan(out[OUT_STAT]):
        raise ValueError(
            "x: the ADF regression is rank deficient (collinear regressors or no residual degrees of "
            "freedom); expected a series with enough variation"
        )
    return _result(out, regression, "AIC" if al == 1 else "BIC" if al == 2 else "t-stat" if al == 3 else None)


@njit
def _push(buf, pos, cap, v):
    """Double-write ring buffer: ``buf`` has length ``2 * cap``; returns the new write position."""
    buf[pos] = v
    buf[pos + cap] = v
    pos += 1
    if pos == cap:
        pos = 0
    return pos


class RingWindow:
    """The last ``window`` finite values, pushed one at a time in O(1) (double-written ring buffer,
    so the current window is always a contiguous view).  Base of the streaming statistics."""

    def __init__(self, window: int):
        self.window = int(window)
        self._buf = np.zeros(2 * self.window)
        self._pos = 0
        self.count = 0

    def _push_value(self, value: float) -> np.ndarray | None:
        """Append ``value``; the window (oldest first, a view) once full, else None.

        Raises
        ------
        ValueError
            ``value`` is NaN or infinite.
        """
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"value: expected a finite float, got {value!r}")
        self._pos = _push(self._buf, self._pos, self.window, v)
        self.count += 1
        if self.count < self.window:
            return None
        return self._buf[self._pos : self._pos + self.window]

    def window_values(self) -> np.ndarray:
        """Copy of the current window (oldest first); shorter than ``window`` while filling."""
        k = min(self.count, self.window)
        return self._buf[self._pos + self.window - k : self._pos + self.window].copy()


class RollingADF(RingWindow):
    """ADF over the last ``window`` values, updated one value at a time.

    Each :meth:`update` is ``O(window * maxlag)`` (about 10 microseconds at 390 values) and equals
    :func:`adf` applied to the same window exactly (the same kernel runs on a contiguous view).
    Before ``window`` values were seen, or when the window is constant or rank deficient, it
    returns None (documented value, no exception in the streaming path).

    Parameters
    ----------
    window : int
        Number of levels per test (>= 8 for "c").
    regression, maxlag, autolag
        As :func:`adf`.
    """

    def __init__(self, window: int, regression: str = "c", maxlag: int | None = None, autolag: str | None = "AIC"):
        self.reg, self.autolag = _parse(regression, autolag)
        self.regression = regression
        self.autolag_name = autolag
        ntrend = 0 if self.reg == 0 else self.reg
        ml = int(default_maxlag(window, self.reg)) if maxlag is None else int(maxlag)
        if ml < 0 or ml > window // 2 - ntrend - 1:
            raise ValueError(f"window: {window} values are too short for regression {regression!r} with maxlag {ml}")
        super().__init__(window)
        self.maxlag = ml
        self._out = np.full(OUT_SIZE, np.nan)

    def update(self, value: float) -> ADFResult | None:
        """Append one level; return the test on the last ``window`` values.

        Returns None while fewer than ``window`` values were seen, and when the window is constant
        or the regression is rank deficient (where :func:`adf` raises ValueError).
        """
        w = self._push_value(value)
        if w is None or w.max() == w.min():
            return None
        out = self._out
        adf_kernel(w, self.reg, self.maxlag, self.autolag, out)
        if math.isnan(out[OUT_STAT]):
            return None
        return _result(out, self.regression, self.autolag_name)
