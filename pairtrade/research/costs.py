"""Transaction-cost estimators: bid-ask half-spread (per-side slippage) and short-borrow fee.

Pure functions on numpy arrays / pandas frames, no I/O. They feed the fill model
(:mod:`pairtrade.strategy.fill`, :class:`pairtrade.config.CostModel`), whose
``slippage_per_share`` is a *per-fill* cost in USD/share: the natural estimate of it is the
**half** bid-ask spread, the distance from the mid-quote to the side a market order trades on.

==============================  ===============================================================
function                        what it estimates
==============================  ===============================================================
:func:`quoted_half_spread`      median quoted half-spread from bid/ask quotes (USD and bps)
:func:`corwin_schultz_spread`   full relative spread from bar highs and lows (Corwin-Schultz 2012)
:func:`roll_spread`             full spread from the serial covariance of price changes (Roll 1984)
:func:`half_spread_estimate`    picks the best of the three for one symbol's bars -> HalfSpread
:func:`borrow_fee_usd`          borrow fee accrued on a short leg, ACT/360
:func:`borrow_fee_per_bar`      the same per bar of an equity curve (vectorised)
==============================  ===============================================================

Conventions: prices in USD; "relative" spreads are fractions of price (0.001 = 10 bps);
``bps`` fields are basis points of price (1e-4). Spread estimators return the **full** spread;
:class:`HalfSpread` holds the **half** spread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "QUOTE_COLUMN_PAIRS",
    "HalfSpread",
    "borrow_fee_per_bar",
    "borrow_fee_usd",
    "corwin_schultz_spread",
    "half_spread_estimate",
    "quoted_half_spread",
    "roll_spread",
]

SECONDS_PER_DAY = 86_400.0
DAY_COUNT_BASIS = 360.0  # ACT/360: brokers (Alpaca, most US prime brokers) divide the annual rate by 360

#: Bid/ask column pairs recognised by :func:`half_spread_estimate`, in order of preference.
#: ``bid_close``/``ask_close`` is the naming of the shared LEAN/AlgoSeek 1-minute quote bars
#: (last quote of the minute); ``bid``/``ask`` and ``bid_price``/``ask_price`` (Alpaca quotes)
#: are tick-level names.
QUOTE_COLUMN_PAIRS: tuple[tuple[str, str], ...] = (
    ("bid_close", "ask_close"),
    ("bid", "ask"),
    ("bid_price", "ask_price"),
)

Method = Literal["quotes", "corwin_schultz", "roll", "none"]


@dataclass(frozen=True)
class HalfSpread:
    """A half bid-ask spread: the per-fill cost of crossing from the mid-quote to bid or ask.

    Attributes
    ----------
    usd_per_share : float
        Half-spread in USD per share (``CostModel.slippage_per_share`` units). For bar-based
        methods it is ``bps * 1e-4 * median close``. NaN when ``method == 'none'``.
    bps : float
        Half-spread in basis points of price. NaN when ``method == 'none'``.
    method : {'quotes', 'corwin_schultz', 'roll', 'none'}
        Which estimator produced the figures; ``'none'`` when no estimate was possible (the
        caller must then fall back to a configured default).
    """

    usd_per_share: float
    bps: float
    method: Method


# --------------------------------------------------------------------------------------------
# input checks


def _as_1d(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a 1-D array of numbers, got {type(x).__name__}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    return arr


def _prices(x, name: str) -> np.ndarray:
    """1-D float array of prices; NaN allowed (missing), non-positive or infinite values are not."""
    arr = _as_1d(x, name)
    finite = np.isfinite(arr)
    if np.isinf(arr).any():
        raise ValueError(f"{name}: expected finite prices (USD), found inf")
    if (arr[finite] <= 0).any():
        bad = arr[finite][arr[finite] <= 0][0]
        raise ValueError(f"{name}: expected prices > 0 (USD), found {bad!r}")
    return arr


def _same_length(**arrays: np.ndarray) -> None:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise ValueError(f"length mismatch: {desc} elements; expected equal lengths")


# --------------------------------------------------------------------------------------------
# spread estimators


def roll_spread(close, *, relative: bool = False) -> float:
    """Roll (1984) implicit effective bid-ask spread from the serial covariance of price changes.

    With trades bouncing between bid and ask around a random-walk efficient price, successive
    price changes are negatively autocorrelated: ``cov(dp_t, dp_{t-1}) = -s**2 / 4``, hence

        ``s = 2 * sqrt(-cov(dp_t, dp_{t-1}))``.

    Parameters
    ----------
    close : array_like, shape (n,)
        Trade (close) prices in USD, in time order. NaN entries (bars without trades) are
        dropped first, so changes are taken between consecutive *observed* prices.
    relative : bool, default False
        False: ``dp`` are price changes in USD and the result is the spread in USD.
        True: ``dp`` are log-price changes and the result is the spread as a fraction of price.

    Returns
    -------
    float
        The full spread (USD, or fraction of price when ``relative``). **NaN** when the first-order
        autocovariance is >= 0 (Roll's model does not hold; the square root is undefined - this
        happens in a sizeable share of real samples) or when fewer than 3 price changes remain.

    Raises
    ------
    ValueError
        ``close`` is not 1-D, or holds a price <= 0 or inf.

    Notes
    -----
    The autocovariance is the sample covariance (ddof=1) of the pairs ``(dp_t, dp_{t-1})``.

    References
    ----------
    Roll, R. (1984). A simple implicit measure of the effective bid-ask spread in an efficient
    market. *Journal of Finance* 39(4), 1127-1139.
    """
    p = _prices(close, "close")
    p = p[np.isfinite(p)]
    if relative:
        p = np.log(p)
    dp = np.diff(p)
    if dp.size < 3:
        return float("nan")
    cov = np.cov(dp[1:], dp[:-1])[0, 1]
    if not np.isfinite(cov) or cov >= 0:
        return float("nan")
    return float(2.0 * np.sqrt(-cov))


def corwin_schultz_spread(high, low, close=None) -> float:
    """Corwin-Schultz (2012) high-low estimator of the relative bid-ask spread.

    For each pair of consecutive bars (t, t+1):

    * ``beta  = ln(H_t/L_t)**2 + ln(H_{t+1}/L_{t+1})**2``
    * ``gamma = ln(max(H_t, H_{t+1}) / min(L_t, L_{t+1}))**2``
    * ``alpha = (sqrt(2 beta) - sqrt(beta)) / (3 - 2 sqrt 2) - sqrt(gamma / (3 - 2 sqrt 2))``
    * ``S = 2 (e**alpha - 1) / (1 + e**alpha)``

    negative two-bar estimates are set to 0, and the result is the mean over all pairs (the
    paper's primary estimator). The high is taken to be a buy at the ask and the low a sell at
    the bid; the variance part of the range grows with the interval length, the spread part
    does not, which separates the two.

    Parameters
    ----------
    high, low : array_like, shape (n,)
        Bar highs and lows in USD, in time order. A pair with a NaN in either bar is skipped.
    close : array_like, shape (n,), optional
        Bar closes in USD. When given, the paper's overnight-return adjustment is applied to each
        pair: if bar t+1's low is above bar t's close, bar t+1's high and low are both lowered by
        ``L_{t+1} - C_t`` (the gap); if bar t+1's high is below bar t's close, both are raised by
        ``C_t - H_{t+1}``. Without it, gaps between bars inflate ``gamma`` and bias the estimate
        down.

    Returns
    -------
    float
        Mean relative spread (fraction of the mid price; full spread, not half). NaN when no
        pair of bars has valid highs and lows (including n < 2).

    Raises
    ------
    ValueError
        Inputs not 1-D or of different lengths; a price <= 0 or inf; ``high < low`` in a bar.

    Notes
    -----
    Designed for **daily** bars. It works on any bar size (the derivation only needs the
    variance to scale with the interval), but it is reliable only where the spread is not small
    against the per-bar volatility: when volatility dominates, many two-bar estimates are
    negative and zeroing them biases the mean **upward**; a coarse price grid (ticks, bars with
    ``high == low``) and gaps without ``close`` bias it too. The paper's simulations show the
    same high-volatility bias. Prefer quotes when available.

    References
    ----------
    Corwin, S. A. and Schultz, P. (2012). A simple way to estimate bid-ask spreads from daily
    high and low prices. *Journal of Finance* 67(2), 719-760. (Overnight adjustment: Section II.)
    """
    h = _prices(high, "high")
    lo = _prices(low, "low")
    arrays = {"high": h, "low": lo}
    c = None
    if close is not None:
        c = _prices(close, "close")
        arrays["close"] = c
    _same_length(**arrays)
    both = np.isfinite(h) & np.isfinite(lo)
    if (h[both] < lo[both]).any():
        i = int(np.flatnonzero(both & (h < lo))[0])
        raise ValueError(f"high/low: expected high >= low in every bar, bar {i} has {h[i]} < {lo[i]}")
    if h.size < 2:
        return float("nan")

    h0, l0 = h[:-1], lo[:-1]
    h1, l1 = h[1:].copy(), lo[1:].copy()
    if c is not None:
        c0 = c[:-1]
        with np.errstate(invalid="ignore"):
            up = l1 > c0  # gap up: the whole bar t+1 trades above the previous close
            down = h1 < c0  # gap down
        gap_up = l1[up] - c0[up]
        h1[up] -= gap_up
        l1[up] -= gap_up
        gap_down = c0[down] - h1[down]
        h1[down] += gap_down
        l1[down] += gap_down

    k = 3.0 - 2.0 * np.sqrt(2.0)
    with np.errstate(invalid="ignore"):
        beta = np.log(h0 / l0) ** 2 + np.log(h1 / l1) ** 2
        gamma = np.log(np.fmax(h0, h1) / np.fmin(l0, l1)) ** 2
        # fmax/fmin would hide a NaN bar: require both bars of the pair to be valid
        valid = np.isfinite(beta) & np.isfinite(gamma)
        alpha = (np.sqrt(2.0 * beta[valid]) - np.sqrt(beta[valid])) / k - np.sqrt(gamma[valid] / k)
    if alpha.size == 0:
        return float("nan")
    ea = np.exp(alpha)
    s = 2.0 * (ea - 1.0) / (1.0 + ea)
    return float(np.mean(np.maximum(s, 0.0)))


def quoted_half_spread(bid, ask) -> HalfSpread:
    """Median quoted half-spread from bid and ask quotes.

    Parameters
    ----------
    bid, ask : array_like, shape (n,)
        Bid and ask prices in USD, aligned (same quote time per row). Rows with a NaN, a
        non-positive price, or a crossed or locked quote (``ask <= bid``) are ignored.

    Returns
    -------
    HalfSpread
        ``usd_per_share = median((ask - bid) / 2)`` (USD),
        ``bps = 1e4 * median((ask - bid) / mid / 2)`` with ``mid = (ask + bid) / 2``,
        ``method = 'quotes'``; or NaNs with ``method = 'none'`` when no row is usable.

    Raises
    ------
    ValueError
        ``bid`` or ``ask`` not 1-D, or of different lengths.

    Notes
    -----
    The *quoted* spread is time-weighted by quote sample, not the effective spread of actual
    trades (which is usually smaller for liquid names thanks to price improvement). Median, so
    a few stale pre-/post-market quotes do not move it; filter the session before calling if
    only regular trading hours matter.
    """
    b = _as_1d(bid, "bid")
    a = _as_1d(ask, "ask")
    _same_length(bid=b, ask=a)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(b) & np.isfinite(a) & (b > 0) & (a > b)
    if not ok.any():
        return HalfSpread(float("nan"), float("nan"), "none")
    b, a = b[ok], a[ok]
    half = (a - b) / 2.0
    rel_half = half / ((a + b) / 2.0)
    return HalfSpread(float(np.median(half)), float(np.median(rel_half) * 1e4), "quotes")


def half_spread_estimate(bars: pd.DataFrame) -> HalfSpread:
    """Half bid-ask spread of **one** symbol's bars, from the best source the frame holds.

    Order of preference:

    1. ``'quotes'`` - the frame has a bid/ask column pair (see :data:`QUOTE_COLUMN_PAIRS`,
       e.g. ``bid_close``/``ask_close`` of the shared 1-minute trade+quote file) with at least
       one valid quote: :func:`quoted_half_spread`.
    2. ``'corwin_schultz'`` - the frame has ``high``/``low``/``close`` and the highs/lows differ
       from the closes (real OHLC, not close-only data filled into all fields):
       half of :func:`corwin_schultz_spread` (with the overnight/gap adjustment on ``close``).
    3. ``'roll'`` - half of :func:`roll_spread` on ``close`` with ``relative=True``; also the
       fallback when Corwin-Schultz has no valid pair.
    4. ``'none'`` - Roll is undefined (autocovariance >= 0) or there are too few prices;
       ``usd_per_share`` and ``bps`` are NaN.

    Parameters
    ----------
    bars : pandas.DataFrame, shape (n_bars, n_columns)
        Bars of one symbol in time order; prices in USD. A ``symbol`` column, if present, must
        hold a single value.

    Returns
    -------
    HalfSpread
        For the bar-based methods ``bps = 1e4 * relative_spread / 2`` and
        ``usd_per_share = bps * 1e-4 * median(close)``.

    Raises
    ------
    ValueError
        ``bars`` is not a DataFrame, holds several symbols, has neither quotes nor a ``close``
        column, or holds non-positive prices.
    """
    if not isinstance(bars, pd.DataFrame):
        raise ValueError(f"bars: expected a pandas DataFrame, got {type(bars).__name__}")
    if "symbol" in bars.columns and bars["symbol"].nunique(dropna=True) > 1:
        raise ValueError(
            f"bars: expected one symbol, got {bars['symbol'].nunique()} "
            f"({', '.join(map(str, bars['symbol'].unique()[:5]))}...); split by symbol first"
        )
    for bid_col, ask_col in QUOTE_COLUMN_PAIRS:
        if bid_col in bars.columns and ask_col in bars.columns:
            quoted = quoted_half_spread(bars[bid_col].to_numpy(float), bars[ask_col].to_numpy(float))
            if quoted.method == "quotes":
                return quoted
            break
    if "close" not in bars.columns:
        raise ValueError(
            f"bars: expected a bid/ask column pair {list(QUOTE_COLUMN_PAIRS)} or a 'close' "
            f"column, got columns {list(bars.columns)}"
        )
    close = _prices(bars["close"].to_numpy(float), "bars['close']")
    if not np.isfinite(close).any():
        return HalfSpread(float("nan"), float("nan"), "none")
    median_close = float(np.nanmedian(close))

    def _half(relative_spread: float, method: Method) -> HalfSpread:
        bps = relative_spread / 2.0 * 1e4
        return HalfSpread(bps * 1e-4 * median_close, bps, method)

    if "high" in bars.columns and "low" in bars.columns:
        high = _prices(bars["high"].to_numpy(float), "bars['high']")
        low = _prices(bars["low"].to_numpy(float), "bars['low']")
        rows = np.isfinite(high) & np.isfinite(low) & np.isfinite(close)
        has_range = bool((high[rows] != close[rows]).any() or (low[rows] != close[rows]).any())
        if has_range:
            s = corwin_schultz_spread(high, low, close)
            if np.isfinite(s):
                return _half(s, "corwin_schultz")
    s = roll_spread(close, relative=True)
    if np.isfinite(s):
        return _half(s, "roll")
    return HalfSpread(float("nan"), float("nan"), "none")


# --------------------------------------------------------------------------------------------
# short borrow


def borrow_fee_usd(short_notional_usd, annual_rate_pct, seconds_held):
    """Borrow fee (USD) accrued on a short leg, ACT/360.

    ``fee = |short_notional_usd| * annual_rate_pct / 100 * seconds_held / (360 * 86400)``

    i.e. simple interest on the short market value with the annual rate divided by 360, the
    day count brokers use (Alpaca: "daily stock borrow fee = short $ market value * rate / 360",
    charged for calendar days, so a short held over a weekend pays Fri, Sat and Sun).

    Parameters
    ----------
    short_notional_usd : float or array_like
        Market value of the short leg in USD; the sign is ignored (a short position's value is
        often carried negative).
    annual_rate_pct : float or array_like
        Annual borrow rate in percent (3.0 = 3 %/yr), >= 0.
    seconds_held : float or array_like
        Holding time in seconds (calendar time, nights and weekends included), >= 0.

    Returns
    -------
    float or numpy.ndarray
        Fee in USD (>= 0); arrays broadcast with numpy rules, a float when all inputs are scalars.

    Raises
    ------
    ValueError
        Any input is NaN/inf, or ``annual_rate_pct`` / ``seconds_held`` is negative.

    Notes
    -----
    Continuous accrual approximates the broker's daily charge on the end-of-day (settlement
    date) position: identical for positions held across session closes, slightly conservative
    for intraday-only shorts, which Alpaca does not charge for easy-to-borrow names. Round-lot
    rounding of the borrowed quantity is not modelled.
    """
    notional = np.asarray(short_notional_usd, dtype=np.float64)
    rate = np.asarray(annual_rate_pct, dtype=np.float64)
    seconds = np.asarray(seconds_held, dtype=np.float64)
    for name, arr in (
        ("short_notional_usd", notional),
        ("annual_rate_pct", rate),
        ("seconds_held", seconds),
    ):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: expected finite numbers, found NaN or inf")
    if (rate < 0).any():
        raise ValueError(f"annual_rate_pct: expected a rate >= 0 (percent per year), got {rate.min()}")
    if (seconds < 0).any():
        raise ValueError(f"seconds_held: expected a duration >= 0 (seconds), got {seconds.min()}")
    fee = np.abs(notional) * rate / 100.0 * seconds / (DAY_COUNT_BASIS * SECONDS_PER_DAY)
    return float(fee) if fee.ndim == 0 else fee


def borrow_fee_per_bar(short_notional_usd, timestamps, annual_rate_pct: float) -> np.ndarray:
    """Borrow fee (USD) accrued in each bar of an equity curve, ACT/360.

    Bar i holds ``short_notional_usd[i]`` from ``timestamps[i]`` until ``timestamps[i+1]``, so
    its accrual is :func:`borrow_fee_usd` over that gap (overnight and weekend gaps fall on the
    last bar of a session and carry the nights' fee). The last bar accrues 0 (no next stamp).

    Parameters
    ----------
    short_notional_usd : array_like, shape (n,)
        Short-leg market value in USD per bar (sign ignored; 0 when flat).
    timestamps : array_like of datetime64 / pandas.DatetimeIndex, shape (n,)
        Bar times, strictly increasing (naive or tz-aware; UTC recommended).
    annual_rate_pct : float
        Annual borrow rate in percent.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Fee per bar in USD; ``cumsum`` gives the accrued borrow cost along the curve.

    Raises
    ------
    ValueError
        Length mismatch, non-increasing ``timestamps``, or an invalid notional / rate.
    """
    notional = _as_1d(short_notional_usd, "short_notional_usd")
    times = pd.DatetimeIndex(timestamps)
    _same_length(short_notional_usd=notional, timestamps=times)
    if times.hasnans:
        raise ValueError("timestamps: expected no missing (NaT) values")
    gaps = np.asarray((times[1:] - times[:-1]).total_seconds(), dtype=np.float64)
    if (gaps <= 0).any():
        i = int(np.flatnonzero(gaps <= 0)[0])
        raise ValueError(f"timestamps: expected strictly increasing times, {times[i + 1]} follows {times[i]}")
    seconds = np.append(gaps, 0.0)
    return np.asarray(borrow_fee_usd(notional, annual_rate_pct, seconds), dtype=np.float64).reshape(-1)
