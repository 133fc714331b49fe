"""Kalman-filter hedge ratio (Chan 2013, Example 3.3, eqs. 3.7-3.12): batch and streaming.

Model: observation ``y_t = beta_t x_t + alpha_t + eps_t`` with ``eps_t ~ N(0, V_e)``; state
``theta_t = [beta_t, alpha_t]`` follows a random walk ``theta_t = theta_{t-1} + w_t`` with
``w_t ~ N(0, V_w)``, ``V_w = delta / (1 - delta) I``.  Zero initial state and zero initial covariance,
as in Chan's ``KF_beta_EWA_EWC.m``: at the first bar ``R = 0`` (no transition noise added yet), so the
first forecast error is ``y_0`` and the state stays zero.

Per bar (Chan's equation numbers)::

    theta_{t|t-1} = theta_{t-1|t-1}                       (3.7)
    R_t = P_{t-1} + V_w   (R_0 = P_0 = 0)                  (3.8)
    yhat_t = x_t beta_{t|t-1} + alpha_{t|t-1}              (3.9)
    Q_t = H_t R_t H_t' + V_e,  H_t = [x_t, 1]              (3.10)
    e_t = y_t - yhat_t,  K_t = R_t H_t' / Q_t
    theta_{t|t} = theta_{t|t-1} + K_t e_t                  (3.11)
    P_t = R_t - K_t H_t R_t                                (3.12)

This equals ``pykalman.KalmanFilter(transition_matrices=I, observation_matrices=H_t (n, 1, 2),
transition_covariance=V_w, observation_covariance=V_e, initial_state_mean=0,
initial_state_covariance=0).filter(y)`` (pykalman applies no transition before the first update).
"""

from __future__ import annotations

import math

import numpy as np

from pairtrade._numba import njit

# layout of the state vector
K_BETA, K_ALPHA, K_P00, K_P01, K_P10, K_P11, K_STARTED = range(7)
STATE_SIZE = 7


@njit
def kalman_step(state, y, x, vw, ve, out):
    """One filter step in place.

    Parameters
    ----------
    state : ndarray, shape (7,)
        ``[beta, alpha, P00, P01, P10, P11, started]`` (posterior after the previous bar); a zero
        vector is Chan's initial state.
    y, x : float
        Closes of the dependent and the hedge leg (USD).
    vw : float
        Diagonal of the state noise covariance, ``delta / (1 - delta)``.
    ve : float
        Observation noise variance ``V_e``.
    out : ndarray, shape (4,)
        Receives ``beta_{t|t}, alpha_{t|t}, e_t, Q_t``.
    """
    b = state[K_BETA]
    a = state[K_ALPHA]
    if state[K_STARTED] != 0.0:
        r00 = state[K_P00] + vw
        r01 = state[K_P01]
        r10 = state[K_P10]
        r11 = state[K_P11] + vw
    else:
        r00 = state[K_P00]
        r01 = state[K_P01]
        r10 = state[K_P10]
        r11 = state[K_P11]
    # R H'
    rh0 = r00 * x + r01
    rh1 = r10 * x + r11
    q = (x * rh0 + rh1) + ve
    e = y - (b * x + a)
    k0 = rh0 / q
    k1 = rh1 / q
    # H R
    hr0 = x * r00 + r10
    hr1 = x * r01 + r11
    state[K_BETA] = b + k0 * e
    state[K_ALPHA] = a + k1 * e
    state[K_P00] = r00 - k0 * hr0
    state[K_P01] = r01 - k0 * hr1
    state[K_P10] = r10 - k1 * hr0
    state[K_P11] = r11 - k1 * hr1
    state[K_STARTED] = 1.0
    out[0] = state[K_BETA]
    out[1] = state[K_ALPHA]
    out[2] = e
    out[3] = q


@njit
def kalman_filter_kernel(y, x, vw, ve, beta, alpha, e, q):
    """Run :func:`kalman_step` over arrays ``y, x`` (shape (n,)), writing the four outputs."""
    state = np.zeros(STATE_SIZE)
    out = np.empty(4)
    for t in range(y.shape[0]):
        kalman_step(state, y[t], x[t], vw, ve, out)
        beta[t] = out[0]
        alpha[t] = out[1]
        e[t] = out[2]
        q[t] = out[3]


def _check_delta_ve(delta: float, ve: float) -> float:
    if not (0.0 < delta < 1.0):
        raise ValueError(f"delta: expected 0 < delta < 1, got {delta}")
    if not (ve > 0.0 and math.isfinite(ve)):
        raise ValueError(f"ve: expected a positive finite observation variance, got {ve}")
    return delta / (1.0 - delta)


def kalman_hedge(y, x, delta: float = 1e-4, ve: float = 1e-3):
    """Kalman-filter hedge ratio of ``y`` on ``x`` (Chan 2013, eqs. 3.7-3.12).

    Parameters
    ----------
    y, x : array_like, shape (n,)
        Closes of the dependent leg and the hedge leg (USD), finite.
    delta : float
        Chan's delta in (0, 1); state noise ``V_w = delta / (1 - delta) I``.
    ve : float
        Observation noise variance ``V_e`` (USD**2), > 0.

    Returns
    -------
    beta, alpha : ndarray, shape (n,)
        Posterior slope (shares of x per share of y) and intercept (USD) after bar t.
    e : ndarray, shape (n,)
        Forecast error ``y_t - (beta_{t|t-1} x_t + alpha_{t|t-1})`` (USD): the spread, no look-ahead.
    q : ndarray, shape (n,)
        Forecast-error variance ``Q_t`` (USD**2).

    Raises
    ------
    ValueError
        Shapes differ, not 1-D, non-finite values, or ``delta``/``ve`` out of range.
    """
    from pairtrade.signals.adf import as_float_array

    vw = _check_delta_ve(float(delta), float(ve))
    ya = as_float_array(y, "y")
    xa = as_float_array(x, "x")
    if ya.shape != xa.shape:
        raise ValueError(f"y and x: expected equal lengths, got {ya.shape[0]} and {xa.shape[0]}")
    n = ya.shape[0]
    beta, alpha, e, q = (np.empty(n) for _ in range(4))
    kalman_filter_kernel(ya, xa, vw, float(ve), beta, alpha, e, q)
    return beta, alpha, e, q


class KalmanHedge:
    """Streaming counterpart of :func:`kalman_hedge`: O(1) work per bar, identical numbers.

    Parameters
    ----------
    delta, ve : float
        As :func:`kalman_hedge`.
    """

    def __init__(self, delta: float = 1e-4, ve: float = 1e-3):
        self.vw = _check_delta_ve(float(delta), float(ve))
        self.ve = float(ve)
        self.state = np.zeros(STATE_SIZE)
        self._out = np.empty(4)

    def update(self, y: float, x: float) -> tuple[float, float, float, float]:
        """Feed one bar; return ``(beta_{t|t}, alpha_{t|t}, e_t, Q_t)``.

        Raises
        ------
        ValueError
            ``y`` or ``x`` is not finite.
        """
        y = float(y)
        x = float(x)
        if not (math.isfinite(y) and math.isfinite(x)):
            raise ValueError(f"y, x: expected finite closes, got {y!r}, {x!r}")
        kalman_step(self.state, y, x, self.vw, self.ve, self._out)
        o = self._out
        return float(o[0]), float(o[1]), float(o[2]), float(o[3])
