"""Simulated pairs with a known truth, on a real exchange session grid (for null tests of the optimizer).

Two generators, both reproducible from a seed:

* :func:`random_walk_pair` -- two independent geometric random walks: the null hypothesis of no
  cointegration.  A selection procedure run on such pairs should call (almost) none of them tradable.
* :func:`cointegrated_pair` -- ``log y = alpha + beta log x + u`` with ``x`` a geometric random walk and
  ``u`` a stationary AR(1) (a discretely sampled Ornstein-Uhlenbeck process) of known half-life and
  standard deviation: the alternative a selection procedure should find.

Bars are canonical (:mod:`pairtrade.data.bars`): index = bar start, tz-aware UTC; float64 columns
``open, high, low, close, volume`` (USD, shares).  Times follow the XNYS calendar
(:func:`pairtrade.data.bars.trading_calendar`): intraday bars cover each regular session from its open
to its close (5-minute bars 09:30-15:55 New York = 78 per session, 42 on a 13:00 half day); daily bars
are stamped at the session date's midnight in New York, as Alpaca (and :func:`pairtrade.data.bars._embedded`)
stamp them.

Default scales (stated choices, overridable):

* volatility of the log close per bar: 0.1 % for 5-minute bars, scaled by the square root of the bar
  length for other intraday sizes (1-minute: 0.045 %; about 0.9 % per 6.5-hour session), 1.2 % per daily bar;
* open = previous close x exp(j), j ~ N(0, (0.2 sigma)^2): a small independent jump, so that a decision
  on a close fills at a slightly different, unbiased price at the next open;
* high/low enclose open and close by |N(0, (0.5 sigma)^2)| in log terms;
* stationary standard deviation of the cointegrating spread ``u`` (log terms): 0.5 % intraday,
  2.5 % daily -- wide enough that a round trip from |z| = 2 to 0.5 (about 0.75 % intraday) pays the default
  costs (1 cent per share plus 0.5 bp per fill, about 3 bp per leg and round trip at 100 USD);
* start prices uniform in [50, 150] USD; volume lognormal around 50,000 shares per 5-minute bar (scaled
  by bar length).

The AR(1) spread ``u_t = phi u_{t-1} + sqrt(1 - phi^2) s eps_t`` with ``phi = 2 ** (-1 / half_life_bars)``
has half-life ``half_life_bars`` (``phi ** h = 1/2``) and stationary standard deviation ``s``; it starts
from its stationary distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from pairtrade.data.bars import EXCHANGE_TZ, bar_seconds, trading_calendar

if TYPE_CHECKING:
    from pairtrade.backtest.optimize import Selection
    from pairtrade.config import CostModel, StrategyParams

#: per-bar log volatility of a 5-minute bar (scaled by sqrt(bar length) for other intraday sizes)
VOL_5MIN = 0.001
#: per-bar log volatility of a daily bar
VOL_DAILY = 0.012
#: stationary standard deviation (log terms) of the cointegrating spread
SPREAD_STD_INTRADAY = 0.005
SPREAD_STD_DAILY = 0.025
#: the simulated data set ends on this date (New York) unless ``end`` is given
DEFAULT_END = "2025-12-31"
#: open jump and high/low excursion as fractions of the per-bar volatility
OPEN_JUMP = 0.2
WICK = 0.5

Seed = int | Sequence[int] | np.random.SeedSequence


@dataclass(frozen=True)
class SimulatedPair:
    """A simulated pair and the truth it was generated from.

    Attributes
    ----------
    bars : dict[str, DataFrame]
        Canonical bars of the two legs ``{y: ..., x: ...}`` (same index).
    y, x : str
        Symbols of the dependent and the hedge leg.
    bar_size : str
        Alpaca timeframe string ('5Min', '1Day').
    cointegrated : bool
        True for :func:`cointegrated_pair`.
    beta, alpha : float
        True hedge ratio and intercept of ``log y = alpha + beta log x + u`` (NaN for random walks).
    half_life_bars : float
        True half-life of ``u`` in bars (NaN for random walks).
    spread : ndarray, shape (n,)
        The true spread ``u`` at each close (log terms; empty for random walks).
    """

    bars: dict[str, pd.DataFrame]
    y: str
    x: str
    bar_size: str
    cointegrated: bool
    beta: float = math.nan
    alpha: float = math.nan
    half_life_bars: float = math.nan
    spread: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _check_sessions(n_sessions: int) -> int:
    if isinstance(n_sessions, bool) or not isinstance(n_sessions, (int, np.integer)) or n_sessions < 2:
        raise ValueError(f"n_sessions: expected an integer >= 2, got {n_sessions!r}")
    return int(n_sessions)


def session_grid(n_sessions: int, bar_size: str, end: str = DEFAULT_END, calendar: str = "XNYS") -> pd.DatetimeIndex:
    """Bar start times (UTC) of the last ``n_sessions`` sessions of ``calendar`` up to ``end`` (New York date).

    Parameters
    ----------
    n_sessions : int >= 2
    bar_size : Alpaca timeframe string; intraday sizes up to one session, or '1Day'
    end : last calendar date considered (inclusive)
    calendar : exchange_calendars name

    Returns
    -------
    DatetimeIndex, tz UTC, strictly increasing.  Intraday: every bar starting in ``[open, close)`` of each
    session (78 five-minute bars on a full day, 42 on a 13:00 half day).  Daily: one bar per session at its
    date's midnight New York time.

    Raises
    ------
    ValueError
        ``n_sessions`` < 2, an unknown or unsupported bar size (weekly, or longer than a session but not
        '1Day'), an unparseable ``end``.
    """
    n = _check_sessions(n_sessions)
    secs = bar_seconds(bar_size)  # DataError (a ValueError) on an unknown size
    if secs > 86400 or (6.5 * 3600 < secs < 86400):
        raise ValueError(f"bar_size: expected an intraday size up to one session or '1Day', got {bar_size!r}")
    try:
        end_ts = pd.Timestamp(end)
    except (ValueError, TypeError):
        raise ValueError(f"end: expected a date such as '2025-12-31', got {end!r}") from None
    y1 = end_ts.year
    y0 = y1 - int(math.ceil(n / 240)) - 1
    cal = trading_calendar(calendar, y0, y1)
    sched = cal.schedule.loc[: end_ts.normalize()]
    if len(sched) < n:
        raise ValueError(f"n_sessions: the {calendar} calendar has only {len(sched)} sessions from {y0} to {end}")
    sched = sched.iloc[-n:]
    if secs >= 86400:
        return pd.DatetimeIndex(sched.index).tz_localize(EXCHANGE_TZ).tz_convert("UTC").rename("timestamp")
    opens = sched["open"].to_numpy(dtype="datetime64[ns]")
    closes = sched["close"].to_numpy(dtype="datetime64[ns]")
    step = np.timedelta64(secs, "s").astype("timedelta64[ns]")
    counts = ((closes - opens) // step).astype(np.int64)
    first = np.repeat(opens, counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return pd.DatetimeIndex(first + k * step).tz_localize("UTC").rename("timestamp")


def default_vol(bar_size: str) -> float:
    """Default per-bar volatility of the log price: 0.1 % x sqrt(bar length / 5 min) intraday, 1.2 % daily."""
    secs = bar_seconds(bar_size)
    return VOL_DAILY if secs >= 86400 else VOL_5MIN * math.sqrt(secs / 300.0)


def default_spread_std(bar_size: str) -> float:
    """Default stationary std of the cointegrating spread (log terms): 0.5 % intraday, 2.5 % daily."""
    return SPREAD_STD_DAILY if bar_seconds(bar_size) >= 86400 else SPREAD_STD_INTRADAY


def _ohlcv(log_close: np.ndarray, index: pd.DatetimeIndex, sigma: float, bar_size: str,
           rng: np.random.Generator) -> pd.DataFrame:
    """OHLCV frame around a log-close path: open = previous close x small jump, wicks enclosing open/close."""
    n = log_close.shape[0]
    jump = rng.standard_normal(n) * OPEN_JUMP * sigma
    log_open = np.empty(n)
    log_open[0] = log_close[0] - rng.standard_normal() * sigma  # a first bar with some range
    log_open[1:] = log_close[:-1] + jump[1:]
    o, c = np.exp(log_open), np.exp(log_close)
    up = np.exp(np.abs(rng.standard_normal(n)) * WICK * sigma)
    dn = np.exp(-np.abs(rng.standard_normal(n)) * WICK * sigma)
    h = np.maximum(o, c) * up
    lo = np.minimum(o, c) * dn
    scale = bar_seconds(bar_size) / 300.0 if bar_seconds(bar_size) < 86400 else 78.0
    vol = np.round(50_000.0 * scale * np.exp(0.5 * rng.standard_normal(n)))
    df = pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": vol.astype(float)}, index=index)
    df.index.name = "timestamp"
    return df


def _checked_positive(v: float | None, default: float, name: str) -> float:
    if v is None:
        return default
    v = float(v)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name}: expected a positive finite number, got {v!r}")
    return v


def _symbols(symbols: tuple[str, str]) -> tuple[str, str]:
    if len(symbols) != 2 or symbols[0] == symbols[1] or not all(isinstance(s, str) and s for s in symbols):
        raise ValueError(f"symbols: expected two distinct non-empty names (y, x), got {symbols!r}")
    return symbols[0], symbols[1]


def random_walk_pair(n_sessions: int, bar_size: str, seed: Seed, *, vol: float | None = None,
                     symbols: tuple[str, str] = ("Y", "X"), end: str = DEFAULT_END) -> SimulatedPair:
    """Two independent geometric random walks (no drift) on the XNYS session grid.

    ``log p_t = log p_0 + sum_{k<=t} sigma eps_k`` per leg, ``p_0`` uniform in [50, 150] USD, ``eps`` iid
    standard normal; OHLCV built as described in the module docstring.

    Parameters
    ----------
    n_sessions : int >= 2
        Sessions (the last ``n_sessions`` XNYS sessions up to ``end``).
    bar_size : '5Min' (or another intraday size) or '1Day'
    seed : int, sequence of ints or SeedSequence (numpy ``default_rng``)
    vol : per-bar log volatility (default :func:`default_vol`)
    symbols : names of the (y, x) legs
    end : last date (New York)

    Returns
    -------
    SimulatedPair with ``cointegrated=False``.

    Raises
    ------
    ValueError
        Bad ``n_sessions``, ``bar_size``, ``vol`` or ``symbols``.
    """
    ys, xs = _symbols(symbols)
    idx = session_grid(n_sessions, bar_size, end)
    sigma = _checked_positive(vol, default_vol(bar_size), "vol")
    rng = np.random.default_rng(seed)
    n = len(idx)
    bars = {}
    for sym in (ys, xs):
        lp = math.log(rng.uniform(50.0, 150.0)) + np.cumsum(rng.standard_normal(n) * sigma)
        bars[sym] = _ohlcv(lp, idx, sigma, bar_size, rng)
    return SimulatedPair(bars, ys, xs, bar_size, False)


def ar1_phi(half_life_bars: float) -> float:
    """AR(1) coefficient with the given half-life: ``phi = 2 ** (-1 / half_life_bars)`` (so ``phi ** h = 1/2``)."""
    h = float(half_life_bars)
    if not (math.isfinite(h) and h > 0):
        raise ValueError(f"half_life_bars: expected a positive finite number of bars, got {half_life_bars!r}")
    return 2.0 ** (-1.0 / h)


def cointegrated_pair(n_sessions: int, bar_size: str, half_life_bars: float, seed: Seed, *, beta: float = 0.8,
                      spread_std: float | None = None, vol: float | None = None,
                      symbols: tuple[str, str] = ("Y", "X"), end: str = DEFAULT_END) -> SimulatedPair:
    """A cointegrated pair: ``log y = alpha + beta log x + u``, ``x`` a geometric random walk, ``u`` AR(1).

    ``u_t = phi u_{t-1} + sqrt(1 - phi^2) s eps_t`` with ``phi = 2 ** (-1 / half_life_bars)``, ``u_0 ~ N(0, s^2)``
    (stationary std ``s``); ``x`` as in :func:`random_walk_pair`; ``alpha`` is set so that ``y_0`` (before the
    spread) is uniform in [50, 150] USD.  The spread is a discretely sampled Ornstein-Uhlenbeck process
    with mean-reversion speed ``kappa = ln 2 / half_life_bars`` per bar.

    Parameters
    ----------
    n_sessions : int >= 2
    bar_size : '5Min' (or another intraday size) or '1Day'
    half_life_bars : float > 0
        Half-life of ``u`` in bars (of ``bar_size``).
    seed : int, sequence of ints or SeedSequence
    beta : float, nonzero
        Hedge ratio of log prices.
    spread_std : stationary std of ``u`` (log terms; default :func:`default_spread_std`)
    vol : per-bar log volatility of ``x`` (default :func:`default_vol`)
    symbols : names of the (y, x) legs
    end : last date (New York)

    Returns
    -------
    SimulatedPair with ``cointegrated=True`` and the true ``beta``, ``alpha``, ``half_life_bars``, ``spread``.

    Raises
    ------
    ValueError
        Bad ``n_sessions``, ``bar_size``, ``half_life_bars``, ``beta``, ``spread_std``, ``vol`` or ``symbols``.
    """
    ys, xs = _symbols(symbols)
    idx = session_grid(n_sessions, bar_size, end)
    phi = ar1_phi(half_life_bars)
    beta = float(beta)
    if not (math.isfinite(beta) and beta != 0.0):
        raise ValueError(f"beta: expected a finite nonzero hedge ratio, got {beta!r}")
    sigma = _checked_positive(vol, default_vol(bar_size), "vol")
    s = _checked_positive(spread_std, default_spread_std(bar_size), "spread_std")
    rng = np.random.default_rng(seed)
    n = len(idx)
    lx = math.log(rng.uniform(50.0, 150.0)) + np.cumsum(rng.standard_normal(n) * sigma)
    alpha = math.log(rng.uniform(50.0, 150.0)) - beta * lx[0]
    eps = rng.standard_normal(n) * s * math.sqrt(1.0 - phi * phi)
    eps[0] = rng.standard_normal() * s
    from scipy.signal import lfilter

    u = lfilter([1.0], [1.0, -phi], eps)  # u_t = phi u_{t-1} + eps_t, u_0 = eps_0
    ly = alpha + beta * lx + u
    # the y leg's own bar noise (open jump, wicks) uses its per-bar volatility
    sig_y = math.sqrt((beta * sigma) ** 2 + 2.0 * (1.0 - phi) * s * s)  # std of diff(log y)
    bars = {ys: _ohlcv(ly, idx, sig_y, bar_size, rng), xs: _ohlcv(lx, idx, sigma, bar_size, rng)}
    return SimulatedPair(bars, ys, xs, bar_size, True, beta, float(alpha), float(half_life_bars), u)


# ---------------------------------------------------------------------------------------------
# running the optimizer on simulated pairs (null and power of the selection)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptimizerSetup:
    """What :func:`pairtrade.backtest.optimize.run` would pass to ``optimize_pair`` for one bar size."""

    bar_size: str
    variants: tuple[StrategyParams, ...]
    costs: CostModel
    grid: tuple[tuple[float, float, float], ...]
    sel: Selection


def optimizer_defaults(bar_size: str, argv: Sequence[str] = (), is_sessions: int | None = None,
                       oos_sessions: int | None = None) -> OptimizerSetup:
    """Spread models, costs, threshold grid and selection of the optimizer CLI for ``bar_size``.

    Mirrors :func:`pairtrade.backtest.optimize.run`: the command line ``argv`` (default: none, i.e.
    ``--hedge ols --prices log --zscore rolling``, per-bar gates off, default threshold grid and costs) is
    parsed by the optimizer's own ``build_parser``, the base :class:`~pairtrade.config.StrategyParams` come
    from ``default_params(bar_size, ...)`` with the same overrides, the spread models from ``_variants``, and
    the walk-forward lengths default to 60/15 sessions intraday and 756/252 daily (``is_sessions`` /
    ``oos_sessions`` override them, as ``--wf-is-sessions`` / ``--wf-oos-sessions`` do).  The data are taken
    to have true opens (``--execution`` defaults to ``next_open``).

    Raises
    ------
    ConfigError
        Invalid option values (as the CLI would report them); the ``--hurst-quantile`` gate is supported.
    SystemExit
        Unparseable ``argv`` (argparse).
    """
    from pairtrade.backtest.grid import threshold_grid
    from pairtrade.backtest.optimize import _cost_model, _variants, base_params, build_parser, selection_from_args

    args = build_parser().parse_args(["--bar-size", bar_size, *argv])
    base = base_params(args, bar_size, args.execution or "next_open")
    costs = _cost_model(args, {}, lambda _msg: None)  # no bars: '--slippage half-spread' falls back to the default
    variants = _variants(args, base)
    grid = threshold_grid(args.entry_z, args.exit_z, args.stop_z)
    sel = selection_from_args(args, bar_seconds(bar_size) >= 86400, is_sessions, oos_sessions)
    return OptimizerSetup(bar_size, tuple(variants), costs, tuple(grid), sel)


#: short labels of the optimizer's reasons (matched on the reason text, first match wins)
REASON_LABELS = (
    ("not cointegrated", "not cointegrated (Engle-Granger)"),
    ("deflated Sharpe ratio", "OOS Sharpe > 0 but DSR < min"),
    ("is not positive", "OOS Sharpe <= 0"),
    ("no out-of-sample trade", "no OOS trade"),
    ("minimum trade count", "no eligible thresholds on final IS window"),
    ("too short for a walk-forward", "too short for the walk-forward"),
    ("aligned in-sample bars", "too few bars"),
    ("level statistics undefined", "level statistics undefined"),
)


def reason_label(reason: str | None) -> str:
    """Short label of an optimizer ``reason`` ("tradable" for None); unknown reasons are returned as they are."""
    if reason is None:
        return "tradable"
    for key, label in REASON_LABELS:
        if key in reason:
            return label
    return reason


def simulate_pair(kind: str, n_sessions: int, bar_size: str, seed: Seed,
                  half_life_bars: float | None = None) -> SimulatedPair:
    """:func:`random_walk_pair` (``kind="rw"``) or :func:`cointegrated_pair` (``kind="coint"``) with defaults.

    Raises
    ------
    ValueError
        Unknown ``kind``, or ``kind="coint"`` without ``half_life_bars``; and whatever the generator raises.
    """
    if kind == "rw":
        return random_walk_pair(n_sessions, bar_size, seed)
    if kind == "coint":
        if half_life_bars is None:
            raise ValueError("half_life_bars: required for kind='coint'")
        return cointegrated_pair(n_sessions, bar_size, half_life_bars, seed)
    raise ValueError(f"kind: expected 'rw' or 'coint', got {kind!r}")


def run_optimizer_on(pair: SimulatedPair, setup: OptimizerSetup) -> dict:
    """Run ``optimize_pair`` on a simulated pair (whole sample in-sample) and summarise the verdict.

    Returns
    -------
    dict with ``tradable`` (bool), ``reason`` (str or None), ``label`` (:func:`reason_label`), ``bars``,
    ``coint_pvalue``, ``half_life_est`` (bars), ``oos_sharpe`` (annualised), ``oos_dsr``, ``oos_trades``,
    ``trials_sharpe_std`` (annualised), ``pbo``, ``seconds`` (wall time of ``optimize_pair``).
    """
    import time

    from pairtrade.backtest.optimize import optimize_pair
    from pairtrade.config import PairSpec

    t0 = time.perf_counter()
    pp, _ = optimize_pair(PairSpec(y=pair.y, x=pair.x), pair.bars, "simulated", setup.bar_size,
                          list(setup.variants), setup.costs, list(setup.grid), None, None, True, setup.sel)
    dt = time.perf_counter() - t0
    m = pp.metrics
    get = (lambda k: getattr(m, k)) if m is not None else (lambda k: None)
    return {"tradable": bool(pp.tradable), "reason": pp.reason, "label": reason_label(pp.reason),
            "bars": len(pair.bars[pair.y]), "coint_pvalue": get("coint_pvalue"), "half_life_est": get("half_life_bars"),
            "oos_sharpe": get("oos_sharpe"), "oos_dsr": get("oos_dsr"), "oos_trades": get("oos_trades") or 0,
            "trials_sharpe_std": get("trials_sharpe_std"), "pbo": get("pbo"), "seconds": dt}


@lru_cache(maxsize=8)
def _cached_setup(bar_size: str, argv: tuple[str, ...], is_sessions: int | None,
                  oos_sessions: int | None) -> OptimizerSetup:
    return optimizer_defaults(bar_size, argv, is_sessions, oos_sessions)


def null_trial(kind: str, n_sessions: int, bar_size: str, seed: Seed, half_life_bars: float | None = None,
               argv: tuple[str, ...] = (), is_sessions: int | None = None,
               oos_sessions: int | None = None) -> dict:
    """Simulate one pair (:func:`simulate_pair`) and run the optimizer on it with the CLI defaults.

    Top-level and picklable, for process pools; the optimizer setup (:func:`optimizer_defaults`) is cached per
    process.  Returns the dict of :func:`run_optimizer_on` plus ``kind``, ``half_life`` (true, bars; None for
    random walks), ``bar_size`` and ``n_sessions``.
    """
    setup = _cached_setup(bar_size, tuple(argv), is_sessions, oos_sessions)
    pair = simulate_pair(kind, n_sessions, bar_size, seed, half_life_bars)
    out = run_optimizer_on(pair, setup)
    out.update(kind=kind, half_life=half_life_bars, bar_size=bar_size, n_sessions=n_sessions)
    return out


__all__ = ["OptimizerSetup", "REASON_LABELS", "SimulatedPair", "ar1_phi", "cointegrated_pair", "default_spread_std",
           "default_vol", "null_trial", "optimizer_defaults", "random_walk_pair", "reason_label", "run_optimizer_on",
           "session_grid", "simulate_pair"]
