"""Pair selection on price levels and walk-forward evaluation of the strategy kernel.

Two questions decide whether a pair is tradable (:func:`evaluate_pair`):

1. **Is it cointegrated in-sample?**  Engle-Granger (MacKinnon critical values, :func:`pairtrade.signals.coint`)
   on the log (or level) prices, in both orderings, with the Johansen trace test, the half-life and the
   Hurst exponent of the static-OLS level spread reported beside it (:func:`level_statistics`).  The Kalman
   forecast error is never tested: it is white noise by construction.
2. **Does the trading rule earn out of sample, after the number of trials?**  Walk-forward
   (:func:`walk_forward_windows`): on each in-sample window every spread model x threshold combination
   is backtested with the one strategy kernel (:mod:`pairtrade.backtest`), the best by annualised Sharpe
   ratio (subject to a minimum trade count) is run on the next out-of-sample window, and the out-of-sample
   returns are stitched.  Their probabilistic and deflated Sharpe ratios (Bailey & Lopez de Prado 2012,
   2014) and the probability of backtest overfitting of the whole search by CSCV (Bailey, Borwein,
   Lopez de Prado & Zhu 2017) are reported (:mod:`pairtrade.research.overfitting`).

No window ever sees a later bar: signals are causal (hedge known at t-1), fitted hedges and fixed
z-score statistics come from the window's in-sample bars only, and the parameters run out of sample were
chosen before it.  The final in-sample window's choice is what the trader gets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from pairtrade.backtest.engine import (C_SLIP_X, C_SLIP_Y, REASON_OPEN, T_EXIT_REASON, accrual_years, backtest_loop,
                                       cost_vector, default_capital, fill_arrays)
from pairtrade.backtest.grid import grid_search
from pairtrade.backtest.metrics import bars_per_year, equity_stats
from pairtrade.config import CostModel, StrategyParams
from pairtrade.data.bars import EXCHANGE_TZ
from pairtrade.strategy.kernel import params_to_vector


# ---------------------------------------------------------------------------------------------
# statistics on price levels
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LevelStats:
    """Cointegration statistics of a pair on its (log or raw) price levels.

    Attributes
    ----------
    coint_pvalue_yx, coint_pvalue_xy : Engle-Granger p-values (MacKinnon 2010), y on x and x on y
    coint_pvalue : the larger of the two (the pair must be cointegrated whichever leg is dependent)
    johansen_trace : trace statistic for rank 0 (two legs, constant, 1 lagged difference)
    johansen_crit_95 : its 95 % critical value (MacKinnon, Haug & Michelis 1999)
    hedge_beta, hedge_alpha : static OLS of p(y) on [p(x), 1] (``p`` = log or identity)
    half_life_bars : AR(1) half-life of the OLS level spread (bars; inf when it does not revert)
    hurst : R/S Hurst exponent of the OLS level spread
    prices : "log" or "level"
    """

    coint_pvalue_yx: float
    coint_pvalue_xy: float
    coint_pvalue: float
    johansen_trace: float
    johansen_crit_95: float
    hedge_beta: float
    hedge_alpha: float
    half_life_bars: float
    hurst: float
    prices: str


def level_statistics(close_y: np.ndarray, close_x: np.ndarray, prices: str = "log") -> LevelStats:
    """Engle-Granger (both orderings), Johansen trace, half-life and Hurst of the level spread.

    Parameters
    ----------
    close_y, close_x : ndarray, shape (n,), n >= 30
        In-sample closes (USD), aligned.
    prices : "log" (default) or "level"

    Returns
    -------
    LevelStats

    Raises
    ------
    ValueError
        Too few bars, non-positive prices with ``prices="log"``, collinear legs.
    """
    from pairtrade.signals import coint, half_life, hurst_rs, johansen
    from pairtrade.signals.pipeline import fit_ols

    cy = np.asarray(close_y, dtype=float)
    cx = np.asarray(close_x, dtype=float)
    if cy.shape[0] < 30:
        raise ValueError(f"level statistics need at least 30 bars, got {cy.shape[0]}")
    py, px = (np.log(cy), np.log(cx)) if prices == "log" else (cy, cx)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # collinearity warnings: the p-value says it
        p_yx = float(coint(py, px).pvalue)
        p_xy = float(coint(px, py).pvalue)
    jo = johansen(np.column_stack([py, px]), 0, 1)
    b, a = fit_ols(cy, cx, prices)
    spread = py - b * px - a
    try:
        hl = float(half_life(spread))
    except ValueError:
        hl = math.nan
    try:
        h = float(hurst_rs(spread))
    except ValueError:
        h = math.nan
    return LevelStats(p_yx, p_xy, max(p_yx, p_xy), float(jo.trace_stat[0]), float(jo.trace_crit[0, 1]), b, a, hl,
                      h, prices)


# ---------------------------------------------------------------------------------------------
# windows
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """One walk-forward step: bar indices ``[is_start, is_end)`` in-sample, ``[oos_start, oos_end)`` out."""

    is_start: int
    is_end: int
    oos_start: int
    oos_end: int


def session_ids(index: pd.DatetimeIndex) -> np.ndarray:
    """Session number (0, 1, ...) of every bar: its New York calendar date, in order."""
    d = index.tz_convert(EXCHANGE_TZ).normalize() if index.tz is not None else index.normalize()
    codes, _ = pd.factorize(d)
    return codes.astype(np.int64)


def walk_forward_windows(index: pd.DatetimeIndex, is_sessions: int, oos_sessions: int,
                         anchored: bool = False) -> list[Window]:
    """Rolling (or anchored) windows of whole sessions over ``index``.

    Window k: in-sample sessions ``[k*oos, k*oos + is)`` (anchored: ``[0, k*oos + is)``), out-of-sample the
    next ``oos_sessions`` sessions (the last one may be shorter).  Empty when the data has fewer than
    ``is_sessions + 1`` sessions.

    Raises
    ------
    ValueError
        Non-positive window lengths.
    """
    if is_sessions < 1 or oos_sessions < 1:
        raise ValueError(f"walk-forward windows: expected positive session counts, got {is_sessions}/{oos_sessions}")
    sid = session_ids(index)
    n_sess = int(sid[-1]) + 1 if len(sid) else 0
    starts = np.searchsorted(sid, np.arange(n_sess + 1))  # first bar of each session (+ end)
    out = []
    k = 0
    while True:
        s_is = 0 if anchored else k * oos_sessions
        s_oos = k * oos_sessions + is_sessions
        if s_oos >= n_sess:
            break
        s_end = min(s_oos + oos_sessions, n_sess)
        out.append(Window(int(starts[s_is]), int(starts[s_oos]), int(starts[s_oos]), int(starts[s_end])))
        k += 1
    return out


def final_window(index: pd.DatetimeIndex, is_sessions: int, anchored: bool = False) -> Window:
    """The last in-sample window (its out-of-sample period lies after the data: the trader's)."""
    sid = session_ids(index)
    n_sess = int(sid[-1]) + 1
    first = 0 if anchored else max(0, n_sess - is_sessions)
    s = int(np.searchsorted(sid, first))
    return Window(s, len(index), len(index), len(index))


# ---------------------------------------------------------------------------------------------
# fitting one spread model on a window
# ---------------------------------------------------------------------------------------------
def fit_model(params: StrategyParams, cy: np.ndarray, cx: np.ndarray, start: int, end: int) -> StrategyParams:
    """``params`` with the hedge (``hedge="ols"``) and fixed z-score statistics fitted on bars ``[start, end)``."""
    from pairtrade.signals.pipeline import compute_signals, fit_ols, fixed_zscore_stats

    upd: dict = {}
    if params.hedge == "ols":
        b, a = fit_ols(cy[start:end], cx[start:end], params.prices)
        upd.update(hedge_beta=b, hedge_alpha=a)
    if params.zscore == "fixed":
        p0 = params.model_copy(update={**upd, "zscore": "rolling"})
        sig = compute_signals(cy[:end], cx[:end], p0)
        m, sd = fixed_zscore_stats(sig["spread"][start:end])
        upd.update(zscore_mean=m, zscore_std=sd)
    if not upd:
        return params
    return StrategyParams.model_validate({**params.model_dump(), **upd})


def _needs_fit(p: StrategyParams) -> bool:
    return p.hedge == "ols" or p.zscore == "fixed"


# ---------------------------------------------------------------------------------------------
# one out-of-sample run
# ---------------------------------------------------------------------------------------------
def segment_returns(frame: pd.DataFrame, sig: dict, params: StrategyParams, costs: CostModel, start: int, end: int,
                    symbols: tuple[str, str], bar_size: str) -> tuple[np.ndarray, int]:
    """Per-bar returns of running ``params`` on bars ``(start, end)``, decisions from bar ``start``'s close.

    The run starts flat at bar ``start``; a position still open after bar ``end - 1`` is closed at its
    close, paying slippage and fees (so consecutive segments tile without free exits).

    Returns
    -------
    (returns, closed_trades) : returns of bars ``start+1 .. end-1`` (shape ``(end - start - 1,)``), and the
        round trips closed inside the segment (the forced final exit counts).
    """
    arrs = {k: np.ascontiguousarray(frame[k].to_numpy(np.float64)[:end])
            for k in ("open_y", "close_y", "open_x", "close_x")}
    fy, fx = fill_arrays(arrs, params)
    s = {k: np.ascontiguousarray(np.asarray(sig[k][:end], dtype=np.float64))
         for k in ("zscore", "hurst", "adf_pvalue", "beta", "spread_std")}
    capital = default_capital(params)
    cv = cost_vector(costs, symbols)
    equity, hy, hx, _, raw = backtest_loop(fy, arrs["close_y"], fx, arrs["close_x"], s["zscore"], s["hurst"],
                                           s["adf_pvalue"], s["beta"], s["spread_std"], params_to_vector(params),
                                           cv, accrual_years(frame.index[:end]), int(start), capital)
    e = equity[start:end].copy()
    closed = int(np.sum(raw[:, T_EXIT_REASON] != REASON_OPEN)) if raw.shape[0] else 0
    qy, qx = hy[end - 1], hx[end - 1]
    if qy != 0.0 or qx != 0.0:
        py, px = arrs["close_y"][end - 1], arrs["close_x"][end - 1]
        cost = 0.0
        for q, p, slip in ((qy, py, cv[C_SLIP_Y]), (qx, px, cv[C_SLIP_X])):
            if q != 0.0:
                cost += abs(q) * (slip + p * costs.slippage_bps * 1e-4) + abs(q * p) * costs.fee_bps * 1e-4
        e[-1] -= cost
        closed += 1
    return e[1:] / e[:-1] - 1.0, closed


# ---------------------------------------------------------------------------------------------
# walk-forward
# ---------------------------------------------------------------------------------------------
@dataclass
class WalkForwardResult:
    """Outcome of :func:`walk_forward`.

    Attributes
    ----------
    windows : list of dicts per window (bars, times, chosen model and thresholds, in-sample Sharpe, out-of-sample
        Sharpe, return and trades)
    oos_returns : stitched out-of-sample per-bar returns
    oos_trades : closed out-of-sample round trips
    final_params : parameters chosen on the final in-sample window (for the trader), or None
    final_is_sharpe : annualised in-sample Sharpe ratio of that choice
    n_trials : number of (model, thresholds) combinations searched per window
    """

    windows: list = field(default_factory=list)
    oos_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    oos_trades: int = 0
    final_params: StrategyParams | None = None
    final_is_sharpe: float = math.nan
    final_is_trades: int = 0
    n_trials: int = 0
    oos_by_window: list = field(default_factory=list)


def _choose(frame, cy, cx, variants, grid, costs, bar_size, min_trades, start, end, symbols, sig_cache):
    """Best (params, in-sample Sharpe, trades) over variants x grid on bars [start, end); None if none eligible."""
    from pairtrade.signals.pipeline import compute_signals

    best = None
    sub = frame.iloc[:end]
    for v in variants:
        pv = fit_model(v, cy, cx, start, end) if _needs_fit(v) else v
        key = (pv.model_dump_json(exclude={"entry_z", "exit_z", "stop_z"}), end if _needs_fit(v) else None)
        sig = sig_cache.get(key)
        if sig is None:
            sig = compute_signals(cy, cx, pv) if not _needs_fit(v) else compute_signals(cy[:end], cx[:end], pv)
            sig_cache[key] = sig
        s = {k: a[:end] for k, a in sig.items()}
        res = grid_search(sub, s, pv, costs, grid, start_index=start, bar_size=bar_size, min_trades=min_trades,
                          symbols=symbols)
        if res.best is None:
            continue
        row = res.table.loc[res.best]
        cand = (float(row.sharpe), int(row.trades))
        if best is None or cand > (best[1], best[2]):
            best = (res.best_params, float(row.sharpe), int(row.trades), sig)
    return best


def walk_forward(frame: pd.DataFrame, symbols: tuple[str, str], variants: Sequence[StrategyParams],
                 grid: Sequence[tuple[float, float, float]], costs: CostModel, bar_size: str, is_sessions: int,
                 oos_sessions: int, anchored: bool = False, min_trades: int | None = None,
                 progress: Callable[[int], None] | None = None) -> WalkForwardResult:
    """Walk-forward over the aligned bars ``frame`` (columns open_y, close_y, open_x, close_x).

    Parameters
    ----------
    frame : DataFrame indexed by bar start (UTC), the in-sample data of one pair
    symbols : ``(y, x)``
    variants : spread models to search (thresholds are overwritten by ``grid``)
    grid : ``(entry_z, exit_z, stop_z)`` combinations
    costs : cost model
    bar_size : Alpaca timeframe string
    is_sessions, oos_sessions : window lengths in sessions
    anchored : anchored (expanding) in-sample windows instead of rolling ones
    min_trades : minimum closed trades in an in-sample window (default: max(5, sessions // 63))
    progress : called with 1 per window

    Returns
    -------
    WalkForwardResult
    """
    cy = frame["close_y"].to_numpy(np.float64)
    cx = frame["close_x"].to_numpy(np.float64)
    wins = walk_forward_windows(frame.index, is_sessions, oos_sessions, anchored)
    mt = max(5, is_sessions // 63) if min_trades is None else int(min_trades)
    out = WalkForwardResult(n_trials=len(variants) * len(grid))
    cache: dict = {}
    rets = []
    bpy = bars_per_year(bar_size)
    for w in wins:
        best = _choose(frame, cy, cx, variants, grid, costs, bar_size, mt, w.is_start, w.is_end, symbols, cache)
        rec = {"is_start": str(frame.index[w.is_start]), "is_end": str(frame.index[w.is_end - 1]),
               "oos_start": str(frame.index[w.oos_start]), "oos_end": str(frame.index[w.oos_end - 1])}
        if best is None:
            r = np.zeros(w.oos_end - w.oos_start)  # no eligible rule: stay flat
            rec.update(chosen=None, oos_trades=0)
            out.oos_by_window.append(None)
        else:
            p, is_sh, is_tr, sig = best
            if _needs_fit(p):
                from pairtrade.signals.pipeline import compute_signals

                sig = compute_signals(cy[:w.oos_end], cx[:w.oos_end], p)
            r, tr = segment_returns(frame, sig, p, costs, w.oos_start - 1, w.oos_end, symbols, bar_size)
            out.oos_trades += tr
            rec.update(chosen=_describe(p), is_sharpe=is_sh, is_trades=is_tr, oos_trades=tr)
            out.oos_by_window.append((p, sig, w))
        eq = np.concatenate([[1.0], np.cumprod(1.0 + r)])
        sh, ret, _ = equity_stats(eq, 0, float(bpy))
        rec.update(oos_sharpe=float(sh), oos_return_pct=float(ret))
        out.windows.append(rec)
        rets.append(r)
        if progress:
            progress(1)
    out.oos_returns = np.concatenate(rets) if rets else np.zeros(0)
    fw = final_window(frame.index, is_sessions, anchored)
    best = _choose(frame, cy, cx, variants, grid, costs, bar_size, mt, fw.is_start, fw.is_end, symbols, cache)
    if best is not None:
        out.final_params, out.final_is_sharpe, out.final_is_trades = best[0], best[1], best[2]
    return out


def oos_returns_with_costs(frame: pd.DataFrame, wf: WalkForwardResult, costs: CostModel, symbols: tuple[str, str],
                           bar_size: str) -> np.ndarray:
    """The walk-forward's out-of-sample returns re-run with other ``costs`` (same chosen parameters)."""
    rets = []
    for item, rec in zip(wf.oos_by_window, wf.windows):
        if item is None:
            n = int(np.searchsorted(frame.index, pd.Timestamp(rec["oos_end"]), side="right")
                    - np.searchsorted(frame.index, pd.Timestamp(rec["oos_start"])))
            rets.append(np.zeros(n))
            continue
        p, sig, w = item
        r, _ = segment_returns(frame, sig, p, costs, w.oos_start - 1, w.oos_end, symbols, bar_size)
        rets.append(r)
    return np.concatenate(rets) if rets else np.zeros(0)


def trial_return_matrix(frame: pd.DataFrame, symbols: tuple[str, str], variants: Sequence[StrategyParams],
                        grid: Sequence[tuple[float, float, float]], costs: CostModel, bar_size: str,
                        start: int) -> np.ndarray:
    """Per-bar returns (T, N) of every (variant, thresholds) trial over bars ``start..`` of ``frame`` (for CSCV).

    Fitted models (static OLS hedge, fixed z-score) are fitted on the same bars: CSCV asks whether
    choosing among the trials is overfitting, each trial taken as it would be backtested.
    """
    from pairtrade.signals.pipeline import compute_signals

    cy = frame["close_y"].to_numpy(np.float64)
    cx = frame["close_x"].to_numpy(np.float64)
    cols = []
    for v in variants:
        pv = fit_model(v, cy, cx, start, len(frame)) if _needs_fit(v) else v
        sig = compute_signals(cy, cx, pv)
        res = grid_search(frame, sig, pv, costs, grid, start_index=start, bar_size=bar_size, min_trades=0,
                          symbols=symbols, return_matrix=True)
        cols.append(res.returns)
    return np.column_stack(cols)


def _describe(p: StrategyParams) -> dict:
    d = {"hedge": p.hedge, "prices": p.prices, "spread": p.spread, "zscore": p.zscore, "entry_z": p.entry_z,
         "exit_z": p.exit_z, "stop_z": p.stop_z}
    if p.hedge == "kalman":
        d["kalman_delta"] = p.kalman_delta
    return d


__all__ = ["LevelStats", "Window", "WalkForwardResult", "final_window", "fit_model", "level_statistics",
           "oos_returns_with_costs", "segment_returns", "session_ids", "trial_return_matrix", "walk_forward",
           "walk_forward_windows"]
