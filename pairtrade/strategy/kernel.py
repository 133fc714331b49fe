"""The one pair-trading state machine, shared by the backtest loop and the live trader.

A pair is either **flat**, **long the spread** (long ``y``, short ``beta * x``) or **short the spread**
(short ``y``, long ``beta * x``).  On the *close* of every bar the caller passes the bar's signals
(z-score, Hurst exponent, ADF p-value, hedge ratio, spread standard deviation) and the two closes to
:func:`strategy_step`, which updates a small ``float64`` state vector in place and returns the
**target** position (shares of each leg) plus a reason code.  The caller turns a change of target into
market orders that fill at the *next* bar's open under :mod:`pairtrade.strategy.fill`, and reports the
actual fills back with :func:`strategy_sync`, so the dollar stop measures open PnL against the real
entry prices.  The backtest (:mod:`pairtrade.backtest.engine`) and the live trader (through
:class:`PairStrategy`) call exactly these two compiled functions, so a replay through the local exchange
reproduces the backtest's trades.

Rules (z = spread z-score, thresholds from :class:`~pairtrade.config.StrategyParams`)
------------------------------------------------------------------------------------
Entry (only when flat, not locked out, at least ``warmup_bars`` bars seen):
    * ``z <= -entry_z`` -> long spread; ``z >= +entry_z`` -> short spread;
    * not when ``|z| >= stop_z`` (the trade would be stopped at once);
    * gates: ``hurst < hurst_max`` (skipped when ``hurst_max >= 1``) and ``adf_pvalue <= adf_pvalue_max``;
    * any NaN among z, hurst, adf_pvalue, beta, spread_std -> no entry.
Exit (in position; checked in this order):
    1. dollar stop: open PnL (USD) ``qty_y*(close_y-entry_y) + qty_x*(close_x-entry_x) <= -dollar_stop_usd``;
    2. z-stop: long with ``z <= -stop_z`` or short with ``z >= +stop_z``;
    3. exit: long with ``z >= -exit_z`` or short with ``z <= +exit_z`` (z crossed back inside the band).
    A NaN z-score holds the position (only the dollar stop can act).  Exits go flat; a reversal needs a
    new entry on a later bar.
Re-entry after a stop (z-stop or dollar stop): locked out until ``|z| < entry_z`` on some later bar.

Sizing (volatility-scaled, shares)
----------------------------------
``N = min(max_notional_usd / close_y, max_notional_usd / (|beta| * close_x), risk_per_trade_usd / spread_std)``
spread units, where one spread unit is 1 share of ``y`` against ``beta`` shares of ``x`` and
``spread_std`` (USD per unit) is the rolling standard deviation of the spread, so a one-sigma move of the
spread is worth about ``risk_per_trade_usd``; the two notional caps keep each leg's notional at or below
``max_notional_usd``.  Then ``qty_y = side * floor(N)`` and ``qty_x = -side * round_half_up(N * beta)``
(side = +1 long spread, -1 short spread).  No entry when ``floor(N) < 1`` or the x quantity rounds to 0.

State vector (``float64[STATE_SIZE]``, see the ``S_*`` indices)
---------------------------------------------------------------
``S_SIDE`` -1/0/+1, ``S_QTY_Y``/``S_QTY_X`` held (target) shares, ``S_ENTRY_PX_Y``/``S_ENTRY_PX_X`` average
entry prices (USD; the decision bar's closes until the fills are reported), ``S_LOCKOUT`` 1 after a stop,
``S_BARS`` bars seen (calls of :func:`strategy_step` plus the initial count), ``S_LAST_REASON``.

Reason codes
------------
``HOLD=0`` no change, ``ENTRY_LONG=1``, ``ENTRY_SHORT=2``, ``EXIT=3``, ``Z_STOP=4``, ``DOLLAR_STOP=5``;
:data:`REASON_NAMES` maps them to strings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pairtrade._numba import njit
from pairtrade.config import StrategyParams

# ---------------------------------------------------------------------------------------------
# reason codes
# ---------------------------------------------------------------------------------------------
HOLD = 0
ENTRY_LONG = 1
ENTRY_SHORT = 2
EXIT = 3
Z_STOP = 4
DOLLAR_STOP = 5

REASON_NAMES: dict[int, str] = {
    HOLD: "hold",
    ENTRY_LONG: "entry_long",
    ENTRY_SHORT: "entry_short",
    EXIT: "exit",
    Z_STOP: "z_stop",
    DOLLAR_STOP: "dollar_stop",
}

# ---------------------------------------------------------------------------------------------
# state vector layout
# ---------------------------------------------------------------------------------------------
S_SIDE = 0
S_QTY_Y = 1
S_QTY_X = 2
S_ENTRY_PX_Y = 3
S_ENTRY_PX_X = 4
S_LOCKOUT = 5
S_BARS = 6
S_LAST_REASON = 7
STATE_SIZE = 8

# ---------------------------------------------------------------------------------------------
# parameter vector layout
# ---------------------------------------------------------------------------------------------
P_ENTRY_Z = 0
P_EXIT_Z = 1
P_STOP_Z = 2
P_DOLLAR_STOP_USD = 3
P_HURST_MAX = 4
P_ADF_PVALUE_MAX = 5
P_WARMUP_BARS = 6
P_MAX_NOTIONAL_USD = 7
P_RISK_PER_TRADE_USD = 8
P_DOLLAR_NEUTRAL = 9
PARAMS_SIZE = 10


def params_to_vector(params: StrategyParams) -> np.ndarray:
    """Pack the thresholds and sizing of ``params`` into the ``float64`` vector the kernel reads.

    Layout (indices ``P_*``): entry_z, exit_z, stop_z (std devs of the spread), dollar_stop_usd (USD),
    hurst_max, adf_pvalue_max, warmup_bars (bars), max_notional_usd (USD), risk_per_trade_usd (USD),
    dollar_neutral (1.0 when ``params.sizing == "dollar_neutral"``, else 0.0).
    The windows and Kalman settings are not in the vector: they only affect the signals.

    Parameters
    ----------
    params : StrategyParams

    Returns
    -------
    numpy.ndarray of shape (PARAMS_SIZE,), float64
    """
    v = np.empty(PARAMS_SIZE, dtype=np.float64)
    v[P_ENTRY_Z] = params.entry_z
    v[P_EXIT_Z] = params.exit_z
    v[P_STOP_Z] = params.stop_z
    v[P_DOLLAR_STOP_USD] = params.dollar_stop_usd
    v[P_HURST_MAX] = params.hurst_max
    v[P_ADF_PVALUE_MAX] = params.adf_pvalue_max
    v[P_WARMUP_BARS] = params.warmup_bars
    v[P_MAX_NOTIONAL_USD] = params.max_notional_usd
    v[P_RISK_PER_TRADE_USD] = params.risk_per_trade_usd
    v[P_DOLLAR_NEUTRAL] = 1.0 if params.sizing == "dollar_neutral" else 0.0
    return v


@njit
def new_state(bars_seen: int = 0) -> np.ndarray:
    """A flat state vector; ``bars_seen`` counts bars of signal history already seen (for warmup).

    Returns
    -------
    numpy.ndarray of shape (STATE_SIZE,), float64
    """
    s = np.zeros(STATE_SIZE, dtype=np.float64)
    s[S_BARS] = float(bars_seen)
    return s


@njit
def position_size(beta: float, spread_std: float, close_y: float, close_x: float,
                  pv: np.ndarray) -> tuple[float, float]:
    """Unsigned share quantities ``(floor(N), round_half_up(N * beta))`` of a new spread position.

    With dollar-neutral sizing (``pv[P_DOLLAR_NEUTRAL] == 1``) the x leg gets the same USD notional as
    the y leg instead: ``round_half_up(N * close_y / close_x)`` shares, signed like beta.

    Parameters
    ----------
    beta : hedge ratio, shares of x per share of y
    spread_std : standard deviation of the spread, USD per spread unit
    close_y, close_x : closes of the decision bar, USD/share
    pv : parameter vector (:func:`params_to_vector`)

    Returns
    -------
    (qty_y, qty_x) : shares; ``qty_y >= 0``; ``qty_x`` has the sign of beta.  (0, 0) when no
    valid size exists (non-positive spread_std or prices).
    """
    if not (spread_std > 0.0) or not (close_y > 0.0) or not (close_x > 0.0):
        return 0.0, 0.0
    n = pv[P_MAX_NOTIONAL_USD] / close_y
    dollar_neutral = pv[P_DOLLAR_NEUTRAL] != 0.0
    ab = abs(beta)
    if ab > 0.0 and not dollar_neutral:
        nx = pv[P_MAX_NOTIONAL_USD] / (ab * close_x)
        if nx < n:
            n = nx
    nr = pv[P_RISK_PER_TRADE_USD] / spread_std
    if nr < n:
        n = nr
    qy = math.floor(n)
    if dollar_neutral:
        sgn = -1.0 if beta < 0.0 else 1.0
        qx = sgn * math.floor(qy * close_y / close_x + 0.5)
    else:
        qx = math.floor(n * beta + 0.5)
    return float(qy), float(qx)


@njit
def strategy_step(state: np.ndarray, z: float, hurst: float, adf_pvalue: float, beta: float,
                  spread_std: float, close_y: float, close_x: float,
                  pv: np.ndarray) -> tuple[float, float, int]:
    """Advance the state machine by one bar (decision on this bar's close).

    Parameters
    ----------
    state : float64[STATE_SIZE], updated in place (see module docstring for the layout)
    z : spread z-score of this bar (std devs)
    hurst : Hurst exponent of the spread window (dimensionless)
    adf_pvalue : ADF p-value of the spread window
    beta : hedge ratio beta_{t|t} (shares of x per share of y)
    spread_std : rolling standard deviation of the spread (USD per spread unit)
    close_y, close_x : closes of this bar (USD/share)
    pv : parameter vector from :func:`params_to_vector`

    Returns
    -------
    target_qty_y : float
        Target position of leg y after the orders fill (shares, signed).
    target_qty_x : float
        Target position of leg x (shares, signed).
    reason : int
        One of HOLD, ENTRY_LONG, ENTRY_SHORT, EXIT, Z_STOP, DOLLAR_STOP.
    """
    state[S_BARS] += 1.0
    side = state[S_SIDE]
    entry_z = pv[P_ENTRY_Z]
    stop_z = pv[P_STOP_Z]
    z_ok = not math.isnan(z)

    if side != 0.0:
        qy = state[S_QTY_Y]
        qx = state[S_QTY_X]
        pnl = qy * (close_y - state[S_ENTRY_PX_Y]) + qx * (close_x - state[S_ENTRY_PX_X])
        reason = HOLD
        if pnl <= -pv[P_DOLLAR_STOP_USD]:
            reason = DOLLAR_STOP
        elif z_ok:
            if side > 0.0:
                if z <= -stop_z:
                    reason = Z_STOP
                elif z >= -pv[P_EXIT_Z]:
                    reason = EXIT
            else:
                if z >= stop_z:
                    reason = Z_STOP
                elif z <= pv[P_EXIT_Z]:
                    reason = EXIT
        if reason == HOLD:
            state[S_LAST_REASON] = HOLD
            return qy, qx, HOLD
        state[S_SIDE] = 0.0
        state[S_QTY_Y] = 0.0
        state[S_QTY_X] = 0.0
        state[S_ENTRY_PX_Y] = 0.0
        state[S_ENTRY_PX_X] = 0.0
        if reason != EXIT:
            state[S_LOCKOUT] = 1.0
        state[S_LAST_REASON] = reason
        return 0.0, 0.0, reason

    # flat
    state[S_LAST_REASON] = HOLD
    if state[S_LOCKOUT] != 0.0:
        if z_ok and abs(z) < entry_z:
            state[S_LOCKOUT] = 0.0
        return 0.0, 0.0, HOLD
    if state[S_BARS] < pv[P_WARMUP_BARS]:
        return 0.0, 0.0, HOLD
    if (not z_ok) or math.isnan(hurst) or math.isnan(adf_pvalue) or math.isnan(beta) \
            or math.isnan(spread_std):
        return 0.0, 0.0, HOLD
    az = abs(z)
    if az < entry_z or az >= stop_z:
        return 0.0, 0.0, HOLD
    if pv[P_HURST_MAX] < 1.0 and not (hurst < pv[P_HURST_MAX]):
        return 0.0, 0.0, HOLD
    if not (adf_pvalue <= pv[P_ADF_PVALUE_MAX]):
        return 0.0, 0.0, HOLD
    qy, qx = position_size(beta, spread_std, close_y, close_x, pv)
    if qy < 1.0 or qx == 0.0:
        return 0.0, 0.0, HOLD
    if z < 0.0:
        new_side = 1.0
        reason = ENTRY_LONG
    else:
        new_side = -1.0
        reason = ENTRY_SHORT
    state[S_SIDE] = new_side
    state[S_QTY_Y] = new_side * qy
    state[S_QTY_X] = -new_side * qx
    state[S_ENTRY_PX_Y] = close_y
    state[S_ENTRY_PX_X] = close_x
    state[S_LAST_REASON] = reason
    return state[S_QTY_Y], state[S_QTY_X], reason


@njit
def strategy_sync(state: np.ndarray, qty_y: float, qty_x: float, avg_price_y: float,
                  avg_price_x: float) -> None:
    """Overwrite the held position with what was actually filled / what the broker reports.

    Called by the backtest after every fill and by the live trader after fills or at reconciliation.
    The side becomes the sign of ``qty_y`` (or minus the sign of ``qty_x`` when y is 0); a zero
    position makes the state flat (a pending lockout is kept).

    Parameters
    ----------
    state : float64[STATE_SIZE], updated in place
    qty_y, qty_x : held shares (signed)
    avg_price_y, avg_price_x : average entry prices of the held shares (USD/share)
    """
    state[S_QTY_Y] = qty_y
    state[S_QTY_X] = qty_x
    if qty_y > 0.0:
        state[S_SIDE] = 1.0
    elif qty_y < 0.0:
        state[S_SIDE] = -1.0
    elif qty_x < 0.0:
        state[S_SIDE] = 1.0
    elif qty_x > 0.0:
        state[S_SIDE] = -1.0
    else:
        state[S_SIDE] = 0.0
    if state[S_SIDE] == 0.0:
        state[S_ENTRY_PX_Y] = 0.0
        state[S_ENTRY_PX_X] = 0.0
    else:
        state[S_ENTRY_PX_Y] = avg_price_y
        state[S_ENTRY_PX_X] = avg_price_x


# ---------------------------------------------------------------------------------------------
# thin Python wrapper for the live trader
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """What the strategy wants after a bar's close.

    Attributes
    ----------
    target_qty_y, target_qty_x : target positions (shares, signed) once the orders fill
    reason : reason code (``HOLD`` means no change)
    """

    target_qty_y: float
    target_qty_x: float
    reason: int

    @property
    def reason_name(self) -> str:
        return REASON_NAMES.get(self.reason, f"unknown({self.reason})")

    @property
    def is_change(self) -> bool:
        """True when the decision asks for orders (any reason other than HOLD)."""
        return self.reason != HOLD


class PairStrategy:
    """Per-pair wrapper around :func:`strategy_step` / :func:`strategy_sync` for the live trader.

    Parameters
    ----------
    params : StrategyParams
    bars_seen : bars of signal history already consumed before the first :meth:`on_bar`, counted
        towards ``warmup_bars`` -- pass ``engine.bars_seen`` after ``SignalEngine.warm_up(history)`` so the
        live strategy counts bars exactly as a backtest over the same history does.
    state : optional saved state vector (from :attr:`state`) to resume from.

    Notes
    -----
    ``on_bar`` must be called once per bar, on the bar's close, after the signal engine has been
    updated with the same bar.  After the broker reports fills call :meth:`on_fill` with the
    resulting held position; :meth:`sync_position` does the same at reconciliation.
    """

    def __init__(self, params: StrategyParams, bars_seen: int = 0, state: Any = None) -> None:
        self.params = params
        self._pv = params_to_vector(params)
        if state is None:
            self._state = new_state(bars_seen)
        else:
            s = np.asarray(state, dtype=np.float64)
            if s.shape != (STATE_SIZE,):
                raise ValueError(f"state must have {STATE_SIZE} entries, got shape {s.shape}")
            self._state = s.copy()

    @property
    def state(self) -> np.ndarray:
        """A copy of the state vector (persist it with ``.tolist()``)."""
        return self._state.copy()

    @property
    def side(self) -> int:
        """-1 short spread, 0 flat, +1 long spread."""
        return int(self._state[S_SIDE])

    @property
    def qty(self) -> tuple[float, float]:
        """Held (target) shares ``(qty_y, qty_x)``."""
        return float(self._state[S_QTY_Y]), float(self._state[S_QTY_X])

    def on_bar(self, snapshot: Any, close_y: float, close_x: float) -> Decision:
        """Decide on a bar's close.

        Parameters
        ----------
        snapshot : object with attributes ``zscore, hurst, adf_pvalue, beta, spread_std``
            (a ``SignalSnapshot``), NaN allowed
        close_y, close_x : closes of the bar (USD/share)
        """
        ty, tx, r = strategy_step(self._state, float(snapshot.zscore), float(snapshot.hurst),
                                  float(snapshot.adf_pvalue), float(snapshot.beta),
                                  float(snapshot.spread_std), float(close_y), float(close_x), self._pv)
        return Decision(float(ty), float(tx), int(r))

    def on_fill(self, qty_y: float, qty_x: float, avg_price_y: float, avg_price_x: float) -> None:
        """Record the held position after fills (shares, signed) and its average entry prices (USD)."""
        strategy_sync(self._state, float(qty_y), float(qty_x), float(avg_price_y), float(avg_price_x))

    def sync_position(self, qty_y: float, qty_x: float, avg_price_y: float, avg_price_x: float) -> None:
        """Adopt the broker's position (reconciliation); same effect as :meth:`on_fill`."""
        self.on_fill(qty_y, qty_x, avg_price_y, avg_price_x)
