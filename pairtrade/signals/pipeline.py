"""The one signal pipeline of backtest and live trading (docs/CONTRACTS.md, "Signal definitions").

Per bar ``t`` with closes ``y_t`` (dependent leg) and ``x_t`` (hedge leg), in USD, and ``p(.)`` the price
scale (``params.prices``: identity for ``"level"``, natural log for ``"log"``):

Hedge ratio (``params.hedge``), always *known at t-1* when the spread of bar t is formed (no look-ahead):

* ``"kalman"``: Chan (2013) eqs. 3.7-3.12 on ``p(y), p(x)`` (:mod:`pairtrade.signals.kalman`, ``delta``,
  ``V_e``, zero initial state); ``beta_{t|t-1} = beta_{t-1|t-1}``;
* ``"ols"``: static ``beta, alpha = params.hedge_beta, params.hedge_alpha`` fitted on the training window
  (:func:`fit_ols`);
* ``"rolling_ols"``: OLS of ``p(y)`` on ``[p(x), 1]`` over the ``ols_window_bars`` bars ending at t-1.

Spreads:

* **level spread** (what cointegration, half-life, Hurst and the per-bar gates are about):
  ``s_t = p(y_t) - beta_{t-1} p(x_t) - alpha_{t-1}`` for OLS hedges; for the Kalman hedge
  ``s_t = p(y_t) - beta_{t|t-1} p(x_t)`` -- the filter's intercept is itself a random walk that absorbs the
  spread's own deviations (with it the spread *is* the forecast error), so the intercept is left to the
  z-score's mean;
* **signal spread** (``params.spread``): the level spread, or the Kalman one-step forecast error
  ``e_t = p(y_t) - beta_{t|t-1} p(x_t) - alpha_{t|t-1}`` (white noise by construction: a signal choice, never
  a test subject).

z-score of the signal spread (``params.zscore``): ``"rolling"`` mean and sample std (ddof=1) over the last
``zscore_window_bars`` spreads including t; ``"fixed"`` ``(zscore_mean, zscore_std)`` of the training window;
``"ewm"`` exponentially weighted mean and (biased) variance with half-life ``zscore_halflife_bars``
(= pandas ``ewm(halflife=h, adjust=False).mean()`` / ``.var(bias=True)``), defined after
``zscore_window_bars`` spreads; ``"forecast_std"`` ``e_t / sqrt(Q_t)`` (Chan's +-sqrt(Q) bands).

Gates on the **level spread**: ``hurst`` the classical R/S Hurst exponent
(:func:`pairtrade.signals.hurst.hurst_rs`) over the last ``hurst_window_bars`` level spreads, ``adf_pvalue``
the MacKinnon p-value of the ADF test (regression "c", autolag AIC, default maxlag) over the last
``adf_window_bars`` level spreads.

Sizing outputs: ``beta`` is the hedge ratio in **shares of x per share of y** after bar t (level prices: the
model's beta; log prices: ``beta * y_t / x_t``), ``alpha`` the model intercept, and ``spread_std`` the USD
value of one standard deviation of the signal spread per spread unit (one share of y against ``beta``
shares of x; log prices: ``std * y_t``).

Every statistic is NaN until its window is full (and NaN for a flat window).  :class:`SignalEngine`
(streaming, ~10 microseconds per bar with the default windows) and :func:`compute_signals` (arrays,
a compiled loop over the same step function) give bit-identical numbers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from pairtrade._numba import njit
from pairtrade.config import StrategyParams
from pairtrade.signals.adf import OUT_PVALUE, OUT_SIZE, adf_kernel, as_float_array, default_maxlag
from pairtrade.signals.hurst import hurst_kernel, window_sizes
from pairtrade.signals.kalman import K_BETA, STATE_SIZE, _check_delta_ve, kalman_step
from pairtrade.signals.rolling import window_mean_std

#: keys of :func:`compute_signals` and fields of :class:`SignalSnapshot`, in order
SIGNAL_KEYS = ("beta", "alpha", "spread", "zscore", "spread_std", "hurst", "adf_pvalue", "level_spread")
_NOUT = len(SIGNAL_KEYS)


class SignalSnapshot(NamedTuple):
    """Signals after bar t (floats; NaN while a window is not yet full).

    Attributes
    ----------
    beta : float
        Hedge ratio after bar t in shares of x per share of y (sizing).
    alpha : float
        Model intercept after bar t (USD for level prices, log units for log prices).
    spread : float
        Signal spread of bar t (level spread or Kalman forecast error; price-scale units).
    zscore : float
        z-score of the signal spread (standard deviations).
    spread_std : float
        USD value of one standard deviation of the signal spread per spread unit.
    hurst : float
        R/S Hurst exponent of the level spread over ``hurst_window_bars``.
    adf_pvalue : float
        ADF p-value of the level spread over ``adf_window_bars``.
    level_spread : float
        Level spread of bar t, hedge known at t-1 (price-scale units).
    """

    beta: float
    alpha: float
    spread: float
    zscore: float
    spread_std: float
    hurst: float
    adf_pvalue: float
    level_spread: float


# model codes
HEDGE_CODES = {"kalman": 0, "ols": 1, "rolling_ols": 2}
ZSCORE_CODES = {"rolling": 0, "fixed": 1, "ewm": 2, "forecast_std": 3}
# integer configuration
_C_HEDGE, _C_LOG, _C_FE, _C_Z, _C_ZW, _C_HW, _C_AW, _C_MAXLAG, _C_OLSW = range(9)
# float configuration
_F_VW, _F_VE, _F_HB, _F_HA, _F_ZMEAN, _F_ZSTD, _F_EWMA = range(7)
# integer state: ring positions and counts of the level, signal and price buffers
_I_LPOS, _I_LCOUNT, _I_SPOS, _I_SCOUNT, _I_PPOS, _I_PCOUNT, _I_BARS = range(7)
# float state: ewm mean / variance / count, rolling OLS beta / alpha / valid
_S_EM, _S_EV, _S_EN, _S_RB, _S_RA, _S_RVALID = range(6)


@njit
def _push(buf, istate, ipos, icount, v):
    """Append ``v`` to a double-write ring buffer; the last W values are ``buf[end - W:end]``."""
    cap = buf.shape[0] // 2
    pos = istate[ipos]
    buf[pos] = v
    buf[pos + cap] = v
    pos += 1
    if pos == cap:
        pos = 0
    istate[ipos] = pos
    istate[icount] += 1
    return pos + cap


@njit
def _ols_window(ybuf, xbuf, end, w, fstate):
    """OLS of y on [x, 1] over ``buf[end - w:end]`` (two-pass, exact); sets beta/alpha/valid in ``fstate``."""
    my = 0.0
    mx = 0.0
    for i in range(end - w, end):
        my += ybuf[i]
        mx += xbuf[i]
    my /= w
    mx /= w
    sxx = 0.0
    sxy = 0.0
    for i in range(end - w, end):
        dx = xbuf[i] - mx
        sxx += dx * dx
        sxy += dx * (ybuf[i] - my)
    if sxx > 0.0:
        b = sxy / sxx
        fstate[_S_RB] = b
        fstate[_S_RA] = my - b * mx
        fstate[_S_RVALID] = 1.0
    else:
        fstate[_S_RVALID] = 0.0


@njit
def engine_step(icfg, fcfg, kstate, lbuf, sbuf, pybuf, pxbuf, istate, fstate, y, x, sizes, log_ers, kout, aout,
                res):
    """One bar of the pipeline in place; writes the signals (order of ``SIGNAL_KEYS``) to ``res``."""
    nan = math.nan
    istate[_I_BARS] += 1
    if icfg[_C_LOG] != 0:
        yv = math.log(y)
        xv = math.log(x)
    else:
        yv = y
        xv = x
    hedge = icfg[_C_HEDGE]
    fe = nan
    q = nan
    if hedge == 0:
        bprev = kstate[K_BETA]
        kalman_step(kstate, yv, xv, fcfg[_F_VW], fcfg[_F_VE], kout)
        level = yv - bprev * xv
        beta_now = kout[0]
        alpha_now = kout[1]
        fe = kout[2]
        q = kout[3]
    elif hedge == 1:
        beta_now = fcfg[_F_HB]
        alpha_now = fcfg[_F_HA]
        level = yv - beta_now * xv - alpha_now
    else:
        level = nan
        if fstate[_S_RVALID] != 0.0:
            level = yv - fstate[_S_RB] * xv - fstate[_S_RA]
        w = icfg[_C_OLSW]
        cap = pxbuf.shape[0] // 2
        pos = istate[_I_PPOS]
        pybuf[pos] = yv
        pybuf[pos + cap] = yv
        pend = _push(pxbuf, istate, _I_PPOS, _I_PCOUNT, xv)  # advances the shared position and count
        if istate[_I_PCOUNT] >= w:
            _ols_window(pybuf, pxbuf, pend, w, fstate)
        beta_now = fstate[_S_RB] if fstate[_S_RVALID] != 0.0 else nan
        alpha_now = fstate[_S_RA] if fstate[_S_RVALID] != 0.0 else nan
    sig = fe if icfg[_C_FE] != 0 else level

    # z-score of the signal spread
    zmode = icfg[_C_Z]
    zw = icfg[_C_ZW]
    z = nan
    sd = nan
    if zmode == 0:
        if not math.isnan(sig):
            send = _push(sbuf, istate, _I_SPOS, _I_SCOUNT, sig)
            if istate[_I_SCOUNT] >= zw:
                window_mean_std(sbuf, send - zw, zw, aout)
                sd = aout[1]
                if sd > 0.0:
                    z = (sig - aout[0]) / sd
    elif zmode == 1:
        sd = fcfg[_F_ZSTD]
        if not math.isnan(sig):
            z = (sig - fcfg[_F_ZMEAN]) / sd
    elif zmode == 2:
        if not math.isnan(sig):
            a = fcfg[_F_EWMA]
            if fstate[_S_EN] == 0.0:
                fstate[_S_EM] = sig
                fstate[_S_EV] = 0.0
            else:
                d = sig - fstate[_S_EM]
                fstate[_S_EM] += a * d
                fstate[_S_EV] = (1.0 - a) * (fstate[_S_EV] + a * d * d)
            fstate[_S_EN] += 1.0
            if fstate[_S_EN] >= zw and fstate[_S_EV] > 0.0:
                sd = math.sqrt(fstate[_S_EV])
                z = (sig - fstate[_S_EM]) / sd
    else:
        if q > 0.0:
            sd = math.sqrt(q)
            z = fe / sd

    # gates on the level spread
    hurst = nan
    adfp = nan
    if not math.isnan(level):
        lend = _push(lbuf, istate, _I_LPOS, _I_LCOUNT, level)
        lcount = istate[_I_LCOUNT]
        hw = icfg[_C_HW]
        if lcount >= hw:
            hwin = np.empty(hw)
            hwin[:] = lbuf[lend - hw : lend]
            hurst = hurst_kernel(hwin, sizes, False, log_ers, False)
        aw = icfg[_C_AW]
        if lcount >= aw:
            wv = np.empty(aw)  # contiguous copy: kernels compiled for C-contiguous arrays vectorise
            wv[:] = lbuf[lend - aw : lend]
            lo = wv[0]
            hi = wv[0]
            for i in range(1, aw):
                if wv[i] < lo:
                    lo = wv[i]
                if wv[i] > hi:
                    hi = wv[i]
            if hi > lo:
                adf_kernel(wv, 1, icfg[_C_MAXLAG], 1, aout)
                adfp = aout[OUT_PVALUE]

    # sizing units: shares of x per share of y, USD per spread unit
    if icfg[_C_LOG] != 0:
        res[0] = beta_now * y / x
        res[4] = sd * y
    else:
        res[0] = beta_now
        res[4] = sd
    res[1] = alpha_now
    res[2] = sig
    res[3] = z
    res[5] = hurst
    res[6] = adfp
    res[7] = level


@njit
def _engine_run(icfg, fcfg, kstate, lbuf, sbuf, pybuf, pxbuf, istate, fstate, ys, xs, sizes, log_ers, outs):
    kout = np.empty(4)
    aout = np.empty(OUT_SIZE)
    res = np.empty(outs.shape[0])
    for t in range(ys.shape[0]):
        engine_step(icfg, fcfg, kstate, lbuf, sbuf, pybuf, pxbuf, istate, fstate, ys[t], xs[t], sizes, log_ers,
                    kout, aout, res)
        for k in range(outs.shape[0]):
            outs[k, t] = res[k]


def ewm_alpha(halflife_bars: float) -> float:
    """Smoothing factor of an exponentially weighted mean with half-life ``h`` bars: ``1 - 2**(-1/h)`` (pandas)."""
    return 1.0 - math.exp(-math.log(2.0) / float(halflife_bars))


class SignalEngine:
    """Streaming signals of one pair; one :meth:`update` per bar (~10 microseconds, default windows).

    Parameters
    ----------
    params : pairtrade.config.StrategyParams
        The spread model (``hedge``, ``prices``, ``spread``, ``zscore`` and their settings), the Kalman
        ``kalman_delta``/``kalman_ve`` and the windows ``zscore_window_bars``, ``hurst_window_bars``,
        ``adf_window_bars``, ``ols_window_bars``.

    Raises
    ------
    ValueError
        Windows too short for their statistic.

    Notes
    -----
    Memory is ``O(max window)``; nothing grows with the number of bars.  ``bars_seen`` counts updates.
    With ``prices="log"`` every close must be > 0.
    """

    def __init__(self, params: StrategyParams):
        self.params = params
        vw = _check_delta_ve(float(params.kalman_delta), float(params.kalman_ve))
        zw = int(params.zscore_window_bars)
        hw = int(params.hurst_window_bars)
        aw = int(params.adf_window_bars)
        olsw = int(params.ols_window_bars)
        if zw < 2:
            raise ValueError(f"zscore_window_bars: expected >= 2, got {zw}")
        self._sizes = window_sizes(hw)
        self._log_ers = np.zeros(self._sizes.shape[0])
        maxlag = int(default_maxlag(aw, 1))
        if maxlag < 0 or aw < 8:
            raise ValueError(f"adf_window_bars: expected >= 8 bars for an ADF test, got {aw}")
        self._icfg = np.array([HEDGE_CODES[params.hedge], int(params.prices == "log"),
                               int(params.spread == "forecast_error"), ZSCORE_CODES[params.zscore], zw, hw, aw,
                               maxlag, olsw], dtype=np.int64)
        nanf = math.nan
        self._fcfg = np.array([vw, float(params.kalman_ve),
                               nanf if params.hedge_beta is None else float(params.hedge_beta),
                               nanf if params.hedge_alpha is None else float(params.hedge_alpha),
                               nanf if params.zscore_mean is None else float(params.zscore_mean),
                               nanf if params.zscore_std is None else float(params.zscore_std),
                               ewm_alpha(params.zscore_halflife_bars)], dtype=np.float64)
        capl = max(hw, aw)
        self._lbuf = np.zeros(2 * capl)
        self._sbuf = np.zeros(2 * zw)
        pcap = olsw if params.hedge == "rolling_ols" else 1
        self._pybuf = np.zeros(2 * pcap)
        self._pxbuf = np.zeros(2 * pcap)
        self._istate = np.zeros(7, dtype=np.int64)
        self._fstate = np.zeros(6)
        self._kstate = np.zeros(STATE_SIZE)
        self._kout = np.empty(4)
        self._aout = np.empty(OUT_SIZE)
        self._res = np.empty(_NOUT)
        self._log = params.prices == "log"

    @property
    def bars_seen(self) -> int:
        return int(self._istate[_I_BARS])

    def _args(self):
        return (self._icfg, self._fcfg, self._kstate, self._lbuf, self._sbuf, self._pybuf, self._pxbuf,
                self._istate, self._fstate)

    def update(self, close_y: float, close_x: float) -> SignalSnapshot:
        """Feed the closes of bar t (USD); return the signals after bar t.

        Raises
        ------
        ValueError
            A close is not a finite float, or not > 0 with log prices (the engine state is left unchanged).
        """
        y = float(close_y)
        x = float(close_x)
        if not (math.isfinite(y) and math.isfinite(x)):
            raise ValueError(f"close_y, close_x: expected finite prices, got {close_y!r}, {close_x!r}")
        if self._log and not (y > 0.0 and x > 0.0):
            raise ValueError(f"close_y, close_x: log prices need prices > 0, got {close_y!r}, {close_x!r}")
        res = self._res
        engine_step(*self._args(), y, x, self._sizes, self._log_ers, self._kout, self._aout, res)
        return SignalSnapshot(*res.tolist())

    def _run(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        if self._log and ys.shape[0] and (ys.min() <= 0.0 or xs.min() <= 0.0):
            raise ValueError("close_y, close_x: log prices need every price > 0")
        outs = np.empty((_NOUT, ys.shape[0]))
        _engine_run(*self._args(), ys, xs, self._sizes, self._log_ers, outs)
        return outs

    def warm_up(self, close_y_array, close_x_array) -> SignalSnapshot | None:
        """Feed a history of closes (oldest first) as if by :meth:`update`; return the last snapshot.

        Returns None for empty arrays.

        Raises
        ------
        ValueError
            Arrays of different length, not 1-D, or with a non-finite value (index named); the
            engine state is left unchanged.
        """
        ys, xs = _check_pair(close_y_array, close_x_array)
        if ys.shape[0] == 0:
            return None
        outs = self._run(ys, xs)
        return SignalSnapshot(*outs[:, -1].tolist())


def _check_pair(close_y, close_x) -> tuple[np.ndarray, np.ndarray]:
    ys = as_float_array(close_y, "close_y", 0)
    xs = as_float_array(close_x, "close_x", 0)
    if ys.shape != xs.shape:
        raise ValueError(f"close_y and close_x: expected equal lengths, got {ys.shape[0]} and {xs.shape[0]}")
    return ys, xs


def compute_signals(close_y, close_x, params: StrategyParams) -> dict[str, np.ndarray]:
    """Signals of every bar; equal to feeding :class:`SignalEngine` bar by bar (bit-identical).

    Parameters
    ----------
    close_y, close_x : array_like, shape (n,)
        Closes of the dependent and the hedge leg (USD), finite, aligned bar by bar.
    params : StrategyParams

    Returns
    -------
    dict[str, ndarray]
        Keys ``SIGNAL_KEYS`` (beta, alpha, spread, zscore, spread_std, hurst, adf_pvalue, level_spread),
        each of shape (n,), NaN where a window is not yet full.  About 7-10 microseconds per bar with the
        default windows (about 0.1 s for 12,500 bars once compiled).

    Raises
    ------
    ValueError
        As :meth:`SignalEngine.warm_up`.
    """
    ys, xs = _check_pair(close_y, close_x)
    outs = SignalEngine(params)._run(ys, xs)
    return {k: outs[i] for i, k in enumerate(SIGNAL_KEYS)}


def fit_ols(close_y, close_x, prices: str = "level") -> tuple[float, float]:
    """Static hedge: OLS of ``p(y)`` on ``[p(x), 1]`` over a training window (``p`` = identity or log).

    Mirrors ``statsmodels.api.OLS(p(y), add_constant(p(x))).fit().params`` (two-pass, centred sums).

    Parameters
    ----------
    close_y, close_x : array_like, shape (n,), n >= 3
        Training-window closes (USD).
    prices : "level" or "log"

    Returns
    -------
    (beta, alpha) : slope (price-scale units of y per unit of x) and intercept.

    Raises
    ------
    ValueError
        Fewer than 3 bars, non-finite or (log) non-positive prices, constant ``x``.
    """
    ys, xs = _check_pair(close_y, close_x)
    if ys.shape[0] < 3:
        raise ValueError(f"fit_ols: expected at least 3 bars, got {ys.shape[0]}")
    if prices == "log":
        if ys.min() <= 0 or xs.min() <= 0:
            raise ValueError("fit_ols: log prices need every price > 0")
        ys, xs = np.log(ys), np.log(xs)
    elif prices != "level":
        raise ValueError(f"prices: expected 'level' or 'log', got {prices!r}")
    mx, my = xs.mean(), ys.mean()
    dx = xs - mx
    sxx = float(dx @ dx)
    if not sxx > 0:
        raise ValueError("fit_ols: the hedge leg is constant over the training window")
    b = float(dx @ (ys - my)) / sxx
    return b, float(my - b * mx)


def fixed_zscore_stats(spread) -> tuple[float, float]:
    """``(mean, sample std ddof=1)`` of a training window's finite spreads, for ``zscore="fixed"``.

    Raises
    ------
    ValueError
        Fewer than 2 finite values or zero dispersion.
    """
    s = np.asarray(spread, dtype=float)
    s = s[np.isfinite(s)]
    if s.shape[0] < 2:
        raise ValueError(f"fixed z-score: expected at least 2 finite spreads, got {s.shape[0]}")
    sd = float(s.std(ddof=1))
    if not sd > 0:
        raise ValueError("fixed z-score: the training spread is constant")
    return float(s.mean()), sd
