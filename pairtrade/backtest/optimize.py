"""The offline optimizer: ``python optimizer.py`` -> ``optimized_params.json``.

For every pair of ``pairs.json`` it loads bars (``--data`` file, else Alpaca historical bars when keys are set,
else the embedded daily SPX/COMP set), keeps regular trading hours, aligns the two legs on the in-sample range
and decides whether the pair is tradable (:func:`optimize_pair`):

1. cointegration on price levels: Engle-Granger on the in-sample log (or level) prices, both orderings
   (:func:`pairtrade.research.walkforward.level_statistics`);
2. a walk-forward of every spread model x entry/exit/stop threshold combination with costs
   (:func:`pairtrade.research.walkforward.walk_forward`), whose stitched out-of-sample returns must have a
   positive Sharpe ratio and a deflated Sharpe ratio of at least ``--min-dsr`` after the (effective) number of
   trials; the probability of backtest overfitting (CSCV) and the cost sensitivity are reported;
3. the parameters chosen on the final in-sample window are written for the trader.

A pair that fails gets ``tradable: false`` and a ``reason``.  ``--preset NAME`` instead re-runs a published
example (:mod:`pairtrade.research.presets`).

In-sample range: ``--start``/``--end`` when given; by default everything before the data's final calendar
month (intraday bars) or final calendar year (daily bars), which is held out so that replaying that final
period is out-of-sample.  The range actually used is recorded under ``data`` in the output.

Exit codes: 0 success, 2 bad configuration or data (:class:`~pairtrade.config.ConfigError`,
:class:`~pairtrade.data.bars.DataError`; the message is printed without a traceback).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from datetime import datetime, timezone
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from pairtrade.backtest.grid import DEFAULT_ENTRY_Z, DEFAULT_EXIT_Z, DEFAULT_STOP_Z, threshold_grid
from pairtrade.backtest.metrics import bars_per_session, bars_per_year, equity_stats
from pairtrade.config import (SCHEMA_VERSION, ConfigError, CostModel, DataRange, PairMetrics, PairParams,
                              PairSpec, ParamsFile, StrategyParams, atomic_write_json, load_pairs)
from pairtrade.data.bars import (EMBEDDED_SOURCE, EXCHANGE_TZ, BarSet, DataError, align, bar_seconds, embedded_bars,
                                 load_bars, regular_hours)

# Per-bar Hurst gate (--hurst-quantile q): admit a level-spread window only when its R/S Hurst exponent is below
# the q quantile of the estimator's random-walk null distribution for the same window (pairtrade.signals.hurst).
#: Kalman delta grid (``--hedge kalman``).  V_w = delta/(1-delta) per bar acts on beta.
DEFAULT_KALMAN_DELTAS = (1e-4, 1e-6, 1e-8)
#: per-bar rolling ADF gate on the level spread (``--gate-adf-pvalue``): off by default -- the pair is selected
#: by Engle-Granger on the whole in-sample and the walk-forward; a 5-session ADF window rarely rejects a unit
#: root and would only thin out the trades
DEFAULT_GATE_ADF_PVALUE = 1.0
#: selection: Engle-Granger level, deflated Sharpe ratio of the walk-forward, CSCV blocks
DEFAULT_COINT_PVALUE = 0.05
DEFAULT_MIN_DSR = 0.95
DEFAULT_CSCV_SPLITS = 16
PRESETS = ("chan-qt-3.6", "chan-at-3.3")


# ---------------------------------------------------------------------------------------------
# defaults that depend on the bar size
# ---------------------------------------------------------------------------------------------
def default_params(bar_size: str, **overrides) -> StrategyParams:
    """StrategyParams with windows suited to ``bar_size``.

    Daily bars: z-score 20, ADF 250, Hurst 100, warm-up 250 bars.  Intraday bars (b bars per regular
    session, 78 for 5-minute bars): z-score ``max(20, b)`` (one session), ADF ``max(100, 5 b)`` (a week),
    Hurst 100, warm-up = the longest window.  ``overrides`` replace any field.
    """
    if bar_seconds(bar_size) >= 86400:
        windows = dict(zscore_window_bars=20, adf_window_bars=250, hurst_window_bars=100, warmup_bars=250)
    else:
        b = bars_per_session(bar_size)
        z = max(20, b)
        adf = max(100, 5 * b)
        windows = dict(zscore_window_bars=z, adf_window_bars=adf, hurst_window_bars=100,
                       warmup_bars=max(z, adf, 100))
    windows.update({k: v for k, v in overrides.items() if v is not None})
    return StrategyParams(**windows)


def holdout_cutoff(last_bar: pd.Timestamp, bar_size: str) -> pd.Timestamp:
    """Start (UTC) of the held-out final period: the last calendar month (intraday) or year (daily).

    The cut is made at New York midnight: with data ending 2025-12-31 the in-sample range ends before
    2025-12-01 (intraday) or 2025-01-01 (daily).
    """
    local_next_day = last_bar.tz_convert(EXCHANGE_TZ).normalize() + pd.Timedelta(days=1)
    local_next_day = local_next_day.tz_localize(None)
    off = pd.DateOffset(years=1) if bar_seconds(bar_size) >= 86400 else pd.DateOffset(months=1)
    cut = (local_next_day - off).tz_localize(EXCHANGE_TZ)
    return cut.tz_convert("UTC")


def _parse_time(s: str, what: str, end: bool) -> tuple[pd.Timestamp, bool]:
    """Parse a ``--start``/``--end`` value; returns (UTC timestamp, exclusive?).

    A date without time means the whole day: ``--end 2025-11-30`` keeps bars before 2025-12-01 00:00 New York.
    """
    try:
        ts = pd.Timestamp(s)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{what}: cannot parse {s!r} as a date/time ({e}); expected e.g. 2025-06-30") from None
    if ts.tzinfo is None:
        ts = ts.tz_localize(EXCHANGE_TZ)
    date_only = len(s.strip()) <= 10
    if end and date_only:
        return (ts + pd.Timedelta(days=1)).tz_convert("UTC"), True
    return ts.tz_convert("UTC"), False


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def load_market_data(args: argparse.Namespace, symbols: list[str],
                     log: Callable[[str], None]) -> BarSet:
    """Bars from ``--data``, else Alpaca historical (keys in the environment), else the embedded set."""
    if args.data:
        return load_bars(args.data, price_column=args.price_column)
    from pairtrade.live.secrets import alpaca_keys

    key, secret = alpaca_keys()  # ALPACA_API_KEY/ALPACA_SECRET_KEY or Alpaca's APCA_API_KEY_ID/APCA_API_SECRET_KEY
    if key and secret:
        try:
            from pairtrade.data.alpaca import fetch_alpaca_bars
        except ImportError as e:
            raise DataError(f"Alpaca keys are set but the Alpaca data adapter is unavailable ({e}); "
                            "pass --data FILE instead") from None
        now = pd.Timestamp.now(tz="UTC").floor("D")
        end = _parse_time(args.end, "--end", True)[0] if args.end else now
        if args.start:
            start = _parse_time(args.start, "--start", False)[0]
        else:
            days = 5 * 365 if bar_seconds(args.bar_size) >= 86400 else 240
            start = end - pd.Timedelta(days=days)
        log(f"fetching {args.bar_size} bars of {', '.join(symbols)} from Alpaca, {start} to {end}")
        # one request per symbol, so that an unknown symbol only makes its pairs untradable
        got: dict[str, pd.DataFrame] = {}
        errors: list[str] = []
        for sym in symbols:
            try:
                bs = fetch_alpaca_bars([sym], start.to_pydatetime(), end.to_pydatetime(), args.bar_size, key,
                                       secret, url_override=os.environ.get("ALPACA_DATA_URL") or None)
            except DataError as e:
                errors.append(f"{sym}: {e}")
                continue
            got.update(bs.bars)
        for msg in errors:
            log(f"warning: {msg}")
        if not got:
            raise DataError("Alpaca returned no bars for any symbol: " + "; ".join(errors))
        return BarSet(got, f"Alpaca historical {args.bar_size} bars ({start.date()} to {end.date()})",
                      args.bar_size)
    return embedded_bars()


def _restrict(barset: BarSet, symbols: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Bars of the requested symbols present in ``barset``, restricted to regular hours when intraday."""
    out = {}
    for s in symbols:
        if s in barset.bars:
            df = barset.bars[s]
            if bar_seconds(barset.bar_size) < 86400:
                df = regular_hours(df, barset.bar_size)
            out[s] = df
    return out


# ---------------------------------------------------------------------------------------------
# one pair
# ---------------------------------------------------------------------------------------------
def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass
class Selection:
    """Settings of the selection and walk-forward (see ``build_parser`` for the meaning of each)."""

    coint_pvalue: float = DEFAULT_COINT_PVALUE
    min_dsr: float = DEFAULT_MIN_DSR
    is_sessions: int = 60
    oos_sessions: int = 15
    anchored: bool = False
    min_trades: int | None = None
    cscv_splits: int = DEFAULT_CSCV_SPLITS
    report_all: bool = False
    effective_trials: bool = True


def effective_trials(trial_returns: np.ndarray) -> float:
    """Effective number of independent trials among correlated ones: the participation ratio
    ``(sum lambda)^2 / sum lambda^2`` of the eigenvalues of the trials' return correlation matrix.

    N uncorrelated trials give N; N identical trials give 1.  The deflated Sharpe ratio assumes independent
    trials (Bailey & Lopez de Prado 2014, who suggest estimating the number of effectively independent
    trials, e.g. by clustering); a threshold grid's trials are strongly correlated, so counting each as
    independent over-deflates.  Constant columns are dropped.

    Parameters
    ----------
    trial_returns : ndarray, shape (T, N)

    Returns
    -------
    float in [1, N] (1.0 when fewer than two non-constant trials)
    """
    a = np.asarray(trial_returns, dtype=float)
    if a.ndim != 2 or a.shape[1] < 2:
        return 1.0
    a = a[:, a.std(axis=0) > 0]
    if a.shape[1] < 2 or a.shape[0] < 3:
        return 1.0
    lam = np.linalg.eigvalsh(np.corrcoef(a, rowvar=False))
    lam = np.clip(lam, 0.0, None)
    return float(min(a.shape[1], max(1.0, lam.sum() ** 2 / float((lam ** 2).sum()))))


def optimize_pair(spec: PairSpec, bars: dict[str, pd.DataFrame], source: str, bar_size: str,
                  variants: Sequence[StrategyParams], costs: CostModel, grid: list[tuple[float, float, float]],
                  start: pd.Timestamp | None, end: pd.Timestamp | None, end_exclusive: bool,
                  sel: Selection, progress: Callable[[int], None] | None = None) -> tuple[PairParams, dict]:
    """Select and parametrise one pair; never raises for pair-level problems (they become ``tradable: false``).

    1. Level statistics of the in-sample log (or level) prices (:func:`~pairtrade.research.walkforward.level_statistics`):
       the pair must be cointegrated by Engle-Granger in both orderings at ``sel.coint_pvalue``;
    2. walk-forward (:func:`~pairtrade.research.walkforward.walk_forward`) of every spread model of ``variants``
       x threshold of ``grid``; the stitched out-of-sample returns must have a deflated Sharpe ratio of at
       least ``sel.min_dsr`` given the number of trials and the variance of their Sharpe ratios, a positive
       Sharpe ratio and at least one closed trade;
    3. the parameters chosen on the final in-sample window are written for the trader, with the
       probability of backtest overfitting (CSCV) and the out-of-sample Sharpe at 0.5x / 1x / 2x costs.

    A pair that fails step 1 skips steps 2-3 unless ``sel.report_all``.

    Returns
    -------
    (PairParams, info) where info holds the aligned range (first/last bar) and the walk-forward windows.
    """
    from pairtrade.research.overfitting import deflated_sharpe_ratio, pbo_cscv, psr_from_returns, sharpe_ratio
    from pairtrade.research.walkforward import (level_statistics, oos_returns_with_costs, trial_return_matrix,
                                                walk_forward)

    info: dict = {}
    for sym in (spec.y, spec.x):
        if sym not in bars:
            return PairParams(y=spec.y, x=spec.x, tradable=False,
                              reason=f"symbol not in data: {sym} is not in {source}"), info
    full = align(bars[spec.y], bars[spec.x])
    if start is not None:
        full = full[full.index >= start]
    frame = full
    if end is not None:
        frame = full[full.index < end] if end_exclusive else full[full.index <= end]
    base = variants[0]
    need = base.warmup_bars + 2 * base.zscore_window_bars
    if len(frame) <= need:
        return PairParams(y=spec.y, x=spec.x, tradable=False,
                          reason=f"only {len(frame)} aligned in-sample bars of {spec.y} and {spec.x} in "
                                 f"{source}; need more than {need}"), info
    info["first"], info["last"] = frame.index[0], frame.index[-1]
    cy, cx = frame["close_y"].to_numpy(float), frame["close_x"].to_numpy(float)
    try:
        ls = level_statistics(cy, cx, base.prices)
    except ValueError as e:
        return PairParams(y=spec.y, x=spec.x, tradable=False, reason=f"level statistics undefined: {e}"), info
    m: dict = dict(coint_pvalue=_num(ls.coint_pvalue), coint_pvalue_yx=_num(ls.coint_pvalue_yx),
                   coint_pvalue_xy=_num(ls.coint_pvalue_xy), johansen_trace=_num(ls.johansen_trace),
                   johansen_crit_95=_num(ls.johansen_crit_95), hedge_beta_ols=_num(ls.hedge_beta),
                   half_life_bars=_num(ls.half_life_bars), hurst=_num(ls.hurst), n_trials=len(variants) * len(grid))
    coint_ok = ls.coint_pvalue <= sel.coint_pvalue
    reason = None
    if not coint_ok:
        reason = (f"not cointegrated: Engle-Granger p = {ls.coint_pvalue_yx:.3f} ({spec.y} on {spec.x}), "
                  f"{ls.coint_pvalue_xy:.3f} ({spec.x} on {spec.y}) on {ls.prices} prices; need both <= "
                  f"--coint-pvalue {sel.coint_pvalue}")
        if not sel.report_all:
            return PairParams(y=spec.y, x=spec.x, tradable=False, reason=reason, metrics=PairMetrics(**m)), info
    symbols = (spec.y, spec.x)
    wf = walk_forward(frame, symbols, variants, grid, costs, bar_size, sel.is_sessions, sel.oos_sessions,
                      sel.anchored, sel.min_trades, progress=progress)
    info["walk_forward"] = wf.windows
    bpy = bars_per_year(bar_size)
    r = wf.oos_returns
    sq = math.sqrt(bpy)
    if len(r) >= 3:
        eq = np.concatenate([[1.0], np.cumprod(1.0 + r)])
        sh, ret, mdd = equity_stats(eq, 0, float(bpy))
        m.update(oos_sharpe=_num(sh), oos_return_pct=_num(ret), oos_max_drawdown_pct=_num(mdd), oos_bars=len(r))
        m["oos_psr"] = _num(psr_from_returns(r, 0.0)) if np.std(r) > 0 else None
    m["oos_trades"] = wf.oos_trades
    m["walk_forward_windows"] = len(wf.windows)
    dsr = None
    if wf.windows and len(r) >= 3:
        first_is = frame.index.get_loc(pd.Timestamp(wf.windows[0]["is_start"]))
        mat = trial_return_matrix(frame, symbols, variants, grid, costs, bar_size, int(first_is))
        srs = np.asarray(sharpe_ratio(mat), dtype=float)
        ok = np.isfinite(srs)
        var_trials = float(np.var(srs[ok], ddof=1)) if ok.sum() > 1 else 0.0
        n_eff = effective_trials(mat[:, ok]) if sel.effective_trials else float(mat.shape[1])
        m["trials_sharpe_std"] = _num(math.sqrt(var_trials) * sq)
        m["n_trials_effective"] = _num(n_eff)
        if np.std(r) > 0:
            dsr = _num(deflated_sharpe_ratio(r, max(1, int(round(n_eff))), var_trials))
        m["oos_dsr"] = dsr
        if mat.shape[1] >= 2 and mat.shape[0] >= 2 * sel.cscv_splits:
            try:
                m["pbo"] = _num(pbo_cscv(mat, sel.cscv_splits, max_combinations=2000).pbo)
            except ValueError:
                pass
        sens = {}
        for f in (0.5, 1.0, 2.0):
            rr = r if f == 1.0 else oos_returns_with_costs(frame, wf, costs.scaled(f), symbols, bar_size)
            e2 = np.concatenate([[1.0], np.cumprod(1.0 + rr)])
            sens[f"{f:g}x"] = _num(equity_stats(e2, 0, float(bpy))[0])
        m["oos_sharpe_by_cost"] = sens
    params = wf.final_params
    if params is not None:
        m.update(sharpe=_num(wf.final_is_sharpe), trades=wf.final_is_trades)
        if len(full) > len(frame) + 1:
            m.update(_holdout(full, len(frame), params, costs, (spec.y, spec.x), bar_size, info))
    if reason is None:
        if not wf.windows:
            reason = (f"too short for a walk-forward of {sel.is_sessions} + {sel.oos_sessions} sessions; "
                      "lower --wf-is-sessions / --wf-oos-sessions")
        elif wf.oos_trades < 1 or m.get("oos_sharpe") is None:
            reason = "no out-of-sample trade in the walk-forward"
        elif not (m["oos_sharpe"] > 0):
            reason = f"walk-forward out-of-sample Sharpe ratio {m['oos_sharpe']:.2f} is not positive"
        elif dsr is None or dsr < sel.min_dsr:
            reason = (f"walk-forward out-of-sample Sharpe {m['oos_sharpe']:.2f} is not significant after "
                      f"{m['n_trials']} trials: deflated Sharpe ratio {dsr if dsr is None else round(dsr, 3)} < "
                      f"--min-dsr {sel.min_dsr}")
        elif params is None:
            reason = "no parameter combination reaches the minimum trade count on the final in-sample window"
        elif not (wf.final_is_sharpe > 0):
            reason = f"the final in-sample window's best Sharpe ratio {wf.final_is_sharpe:.2f} is not positive"
    return PairParams(y=spec.y, x=spec.x, tradable=reason is None, reason=reason, params=params,
                      metrics=PairMetrics(**m), walk_forward=wf.windows), info


def _holdout(full: pd.DataFrame, first: int, params: StrategyParams, costs: CostModel, symbols: tuple[str, str],
             bar_size: str, info: dict) -> dict:
    """The final parameters on the held-out bars ``full[first:]``: what the controller's default replay trades.

    The signals run over the whole aligned history from the first in-sample bar (the traders warm up on the
    same bars), decisions start on the first held-out bar.  The trades go to ``info["holdout_trades"]``.
    """
    from pairtrade.backtest.engine import run_backtest
    from pairtrade.signals.pipeline import compute_signals

    sig = compute_signals(full["close_y"].to_numpy(float), full["close_x"].to_numpy(float), params)
    res = run_backtest(full, sig, params, costs, start_index=first, bar_size=bar_size, symbols=symbols)
    tr = res.trades.assign(y=symbols[0], x=symbols[1])
    for k in ("entry", "exit"):  # the bar whose close decided (what the live trader logs as the trade's time)
        bars_ = tr[f"{k}_decision_bar"]
        tr[f"{k}_decision_time"] = [full.index[int(b)] if b == b else pd.NaT for b in bars_]
    info["holdout_trades"] = tr
    mt = res.metrics
    return dict(holdout_sharpe=_num(mt["Sharpe (annualised)"]), holdout_return_pct=_num(mt["Return [%]"]),
                holdout_trades=int(mt["Trades"]), holdout_pnl_usd=_num(mt["PnL [$]"]), holdout_bars=int(mt["Bars"]))


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def _floats(s: str) -> list[float]:
    try:
        v = [float(p) for p in s.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None
    if not v:
        raise argparse.ArgumentTypeError("expected at least one number")
    return v


def _choices(allowed: Sequence[str]):
    def parse(s: str) -> list[str]:
        v = [p.strip() for p in s.split(",") if p.strip()]
        bad = [p for p in v if p not in allowed]
        if not v or bad:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(allowed)}, got {s!r}")
        return v
    return parse


def _symbol_rates(s: str) -> dict[str, float]:
    out = {}
    for part in (p for p in s.split(",") if p.strip()):
        sym, _, val = part.partition("=")
        try:
            out[sym.strip().upper()] = float(val)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected SYMBOL=PCT[,SYMBOL=PCT], got {s!r}") from None
    return out


class _Parser(argparse.ArgumentParser):
    """An argument error is a :class:`ConfigError` (one line on stderr, exit code 2), not a usage dump."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="optimizer.py", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--pairs", default="pairs.json", help="pairs file: [[\"Y\",\"X\"], ...] or {\"pairs\": [...]}")
    p.add_argument("--params", default="optimized_params.json", help="output file (written atomically)")
    p.add_argument("--data", default=None,
                   help="CSV/CSV.gz bars (long: symbol,<time>,open,high,low,close[,volume]; or wide daily "
                        "<time> + closes); default: Alpaca when keys are set, else the embedded SPX/COMP set")
    p.add_argument("--price-column", default=None, help="price column of a file with several, e.g. 'Adj Close'")
    p.add_argument("--preset", default=None, choices=PRESETS,
                   help="reproduce a published example on --data and write its figures to --params")
    p.add_argument("--start", default=None, help="first in-sample date/time (New York time unless zoned)")
    p.add_argument("--end", default=None,
                   help="last in-sample date/time; default holds out the final month (intraday) or year (daily)")
    p.add_argument("--bar-size", default="5Min", help="bar size when fetching from Alpaca")
    # selection
    p.add_argument("--coint-pvalue", type=float, default=DEFAULT_COINT_PVALUE,
                   help="tradable only when Engle-Granger rejects 'no cointegration' at this level in both orderings")
    p.add_argument("--min-dsr", type=float, default=DEFAULT_MIN_DSR,
                   help="tradable only when the walk-forward out-of-sample deflated Sharpe ratio reaches this")
    p.add_argument("--wf-is-sessions", type=int, default=None,
                   help="walk-forward in-sample window, sessions (default 60 intraday, 756 = 3 years daily)")
    p.add_argument("--wf-oos-sessions", type=int, default=None,
                   help="walk-forward out-of-sample window, sessions (default 15 intraday, 252 daily)")
    p.add_argument("--anchored", action="store_true", help="anchored (expanding) in-sample windows")
    p.add_argument("--cscv-splits", type=int, default=DEFAULT_CSCV_SPLITS, help="CSCV blocks for the PBO")
    p.add_argument("--report-all", action="store_true",
                   help="walk-forward also the pairs that fail the cointegration test (slower; for reports)")
    p.add_argument("--min-trades", type=int, default=None,
                   help="minimum closed trades in an in-sample window (default: max(5, sessions / 63))")
    # spread model (comma lists are searched: each combination is a trial)
    p.add_argument("--hedge", type=_choices(("kalman", "ols", "rolling_ols")), default=["ols"],
                   help="hedge ratio model(s): kalman, ols (static, fitted per in-sample window), rolling_ols")
    p.add_argument("--prices", choices=("log", "level"), default="log", help="spread and tests on log or raw prices")
    p.add_argument("--spread", choices=("level", "forecast_error"), default="level",
                   help="signal spread: the level spread, or the Kalman forecast error (kalman only)")
    p.add_argument("--zscore", choices=("rolling", "fixed", "ewm", "forecast_std"), default="rolling",
                   help="z-score statistics")
    p.add_argument("--zscore-halflife", type=float, default=None, help="ewm z-score half-life, bars")
    p.add_argument("--ols-window", type=int, default=None, help="rolling_ols window, bars")
    p.add_argument("--sizing", choices=("beta", "dollar_neutral"), default="beta", help="leg sizing")
    p.add_argument("--execution", choices=("next_open", "next_close"), default=None,
                   help="fill of a decision: next bar's open (default) or close (default for close-only data)")
    p.add_argument("--entry-z", type=_floats, default=list(DEFAULT_ENTRY_Z), help="grid of entry thresholds")
    p.add_argument("--exit-z", type=_floats, default=list(DEFAULT_EXIT_Z), help="grid of exit thresholds")
    p.add_argument("--stop-z", type=_floats, default=list(DEFAULT_STOP_Z), help="grid of z-stop thresholds")
    p.add_argument("--kalman-delta", type=_floats, default=list(DEFAULT_KALMAN_DELTAS),
                   help="grid of Kalman deltas (with --hedge kalman)")
    p.add_argument("--dollar-stop", type=float, default=None, help="dollar stop, USD of open loss")
    p.add_argument("--max-notional", type=float, default=None, help="cap of notional per leg, USD")
    p.add_argument("--risk-per-trade", type=float, default=None, help="USD per one std of the spread")
    p.add_argument("--hurst-max", type=float, default=None, help="per-bar Hurst gate level (1 disables)")
    p.add_argument("--hurst-quantile", type=float, default=None,
                   help="per-bar Hurst gate as a quantile of the random-walk null distribution of R/S over the "
                        "Hurst window (e.g. 0.05 admits 5%% of random walks); default: no Hurst gate")
    p.add_argument("--gate-adf-pvalue", type=float, default=DEFAULT_GATE_ADF_PVALUE,
                   help="per-bar rolling ADF p-value gate on the level spread (1 disables)")
    p.add_argument("--zscore-window", type=int, default=None, help="z-score window, bars")
    p.add_argument("--adf-window", type=int, default=None, help="rolling ADF window, bars")
    p.add_argument("--hurst-window", type=int, default=None, help="Hurst window, bars")
    p.add_argument("--warmup", type=int, default=None, help="bars before the first decision")
    # costs
    p.add_argument("--slippage", default=None,
                   help="slippage, USD per share, or 'half-spread': half the bid-ask spread per symbol, from "
                        "quotes when the data has them, else Corwin-Schultz or Roll from the bars")
    p.add_argument("--slippage-bps", type=float, default=None, help="slippage, basis points of the price")
    p.add_argument("--fee-bps", type=float, default=None, help="fee, basis points of notional")
    p.add_argument("--borrow-fee", type=float, default=None, help="short borrow fee, annual %%")
    p.add_argument("--borrow-fee-by-symbol", type=_symbol_rates, default=None,
                   help="per-symbol borrow fee, annual %%: SYM=PCT[,SYM=PCT]")
    p.add_argument("--holdout-trades", default=None,
                   help="write the final parameters' trades on the held-out period (what the controller's default "
                        "replay trades) to this CSV")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _cost_model(args, bars: dict[str, pd.DataFrame], log: Callable[[str], None]) -> CostModel:
    kw: dict = {}
    if args.fee_bps is not None:
        kw["fee_bps"] = args.fee_bps
    if args.slippage_bps is not None:
        kw["slippage_bps"] = args.slippage_bps
    if args.borrow_fee is not None:
        kw["borrow_fee_pct"] = args.borrow_fee
    if args.borrow_fee_by_symbol:
        kw["borrow_fee_pct_by_symbol"] = args.borrow_fee_by_symbol
    if args.slippage is not None and str(args.slippage).strip().lower() == "half-spread":
        from pairtrade.research.costs import half_spread_estimate

        per, methods = {}, set()
        for sym, df in bars.items():
            est = half_spread_estimate(df)
            if est.method != "none" and math.isfinite(est.usd_per_share):
                per[sym] = round(float(est.usd_per_share), 6)
                methods.add(est.method)
                log(f"half-spread {sym}: {est.usd_per_share:.4f} USD/share ({est.bps:.2f} bp, {est.method})")
        kw["slippage_per_share_by_symbol"] = per
        kw["slippage_method"] = "+".join(sorted(methods)) or "fixed"
    elif args.slippage is not None:
        try:
            kw["slippage_per_share"] = float(args.slippage)
        except ValueError:
            raise ConfigError(f"--slippage: expected USD per share or 'half-spread', got {args.slippage!r}") from None
    try:
        return CostModel(**kw)
    except ValueError as e:
        raise ConfigError(f"invalid cost option: {e}") from None


def selection_from_args(args: argparse.Namespace, daily: bool, is_sessions: int | None = None,
                        oos_sessions: int | None = None, report_all: bool | None = None) -> Selection:
    """:class:`Selection` of the command line; walk-forward defaults 60/15 sessions intraday, 756/252 daily."""
    return Selection(coint_pvalue=args.coint_pvalue, min_dsr=args.min_dsr,
                     is_sessions=is_sessions or args.wf_is_sessions or (756 if daily else 60),
                     oos_sessions=oos_sessions or args.wf_oos_sessions or (252 if daily else 15),
                     anchored=args.anchored, min_trades=args.min_trades, cscv_splits=args.cscv_splits,
                     report_all=args.report_all if report_all is None else report_all)


def base_params(args: argparse.Namespace, bar_size: str, execution: str,
                log: Callable[[str], None] = lambda _m: None) -> StrategyParams:
    """The spread model and windows of the command line (before the search fills hedge, thresholds and deltas).

    Raises
    ------
    ConfigError
        An option value out of range (named).
    """
    if args.hurst_quantile is not None:
        from pairtrade.signals.hurst import hurst_null_quantile

        if not 0 < args.hurst_quantile < 1:
            raise ConfigError(f"--hurst-quantile must be in (0, 1), got {args.hurst_quantile}")
        window = args.hurst_window or default_params(bar_size).hurst_window_bars
        args.hurst_max = hurst_null_quantile(window, args.hurst_quantile)
        log(f"Hurst gate (level spread): H < {args.hurst_max:.4f} (the {args.hurst_quantile:g} quantile of R/S over "
            f"{window}-bar random walks)")
    try:
        base = default_params(bar_size, zscore_window_bars=args.zscore_window, adf_window_bars=args.adf_window,
                              hurst_window_bars=args.hurst_window, warmup_bars=args.warmup,
                              dollar_stop_usd=args.dollar_stop, max_notional_usd=args.max_notional,
                              risk_per_trade_usd=args.risk_per_trade, hurst_max=args.hurst_max,
                              adf_pvalue_max=args.gate_adf_pvalue, prices=args.prices, spread=args.spread,
                              zscore=args.zscore if args.zscore != "fixed" else "rolling",
                              zscore_halflife_bars=args.zscore_halflife, ols_window_bars=args.ols_window,
                              sizing=args.sizing, execution=execution)
        if args.zscore == "fixed":  # placeholders until fitted on each in-sample window
            base = base.model_copy(update={"zscore": "fixed"})
    except ValueError as e:
        raise ConfigError(f"invalid option value: {e}") from None
    return base


def _variants(args, base: StrategyParams) -> list[StrategyParams]:
    out = []
    for h in args.hedge:
        deltas = args.kalman_delta if h == "kalman" else [base.kalman_delta]
        for d in deltas:
            upd = {"hedge": h, "kalman_delta": float(d)}
            if h == "ols" and base.hedge_beta is None:  # placeholders, fitted on every in-sample window
                upd.update(hedge_beta=1.0, hedge_alpha=0.0)
            if base.zscore == "fixed" and base.zscore_mean is None:
                upd.update(zscore_mean=0.0, zscore_std=1.0)
            try:
                out.append(StrategyParams.model_validate({**base.model_dump(), **upd}))
            except ValueError as e:
                raise ConfigError(f"invalid spread model: {e}") from None
    return out


def run_preset_cli(args, log: Callable[[str], None]) -> ParamsFile:
    """``--preset NAME``: re-run a published example and write its figures to ``--params``."""
    from pairtrade.research.presets import run_preset

    if not args.data:
        raise ConfigError(f"--preset {args.preset} needs --data FILE (e.g. Chan's inputData_ETF closes)")
    try:
        res = run_preset(args.preset, args.data, price_column=args.price_column)
    except DataError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from None
    fig = {"name": res.name, "pair": list(res.pair), "train_range": [str(d) for d in res.train_range],
           "test_range": [str(d) for d in res.test_range] if res.test_range else None,
           "hedge_ratio": res.hedge_ratio, "train_sharpe": res.train_sharpe, "test_sharpe": res.test_sharpe,
           "apr": res.apr, "n_train": res.n_train, "n_test": res.n_test, "source": str(res.source)}
    pf = ParamsFile(schema_version=SCHEMA_VERSION, generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    bar_size="1Day", data=DataRange(source=str(args.data), start=str(res.train_range[0]),
                                                    end=str((res.test_range or res.train_range)[1])),
                    preset=fig)
    atomic_write_json(args.params, pf)
    log(res.summary_line())
    return pf


def run(argv: Sequence[str] | None = None, log: Callable[[str], None] = print) -> ParamsFile:
    """Run the optimizer; returns the written :class:`ParamsFile`.

    Raises
    ------
    ConfigError, DataError
        Malformed pairs file or arguments; unreadable or bad market data.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    args = build_parser().parse_args(argv)
    if args.preset:
        return run_preset_cli(args, log)
    pairs = load_pairs(args.pairs).pairs
    if args.min_trades is not None and args.min_trades < 0:
        raise ConfigError(f"--min-trades must be >= 0, got {args.min_trades}")
    if not 0 < args.coint_pvalue <= 1:
        raise ConfigError(f"--coint-pvalue must be in (0, 1], got {args.coint_pvalue}")
    if not 0 <= args.min_dsr < 1:
        raise ConfigError(f"--min-dsr must be in [0, 1), got {args.min_dsr}")
    symbols = sorted({s for p in pairs for s in (p.y, p.x)})
    start = end = None
    end_excl = True
    if args.start:
        start = _parse_time(args.start, "--start", False)[0]
    if args.end:
        end, end_excl = _parse_time(args.end, "--end", True)
    for opt, value, t in (("--start", args.start, start), ("--end", args.end, end)):
        if value and pd.isna(t):
            raise ConfigError(f"{opt}: expected a date/time such as 2025-06-30, got {value!r}")
    if start is not None and end is not None and (start >= end if end_excl else start > end):
        raise ConfigError(f"--start {args.start} is after --end {args.end}: the in-sample range "
                          f"{start} .. {end} (UTC) is empty; expected --start before --end")
    barset = load_market_data(args, symbols, log)
    bar_size = barset.bar_size
    daily = bar_seconds(bar_size) >= 86400
    log(f"data: {barset.source} ({bar_size} bars, {barset.start} to {barset.end})")
    execution = args.execution or "next_open"
    if barset.close_only and execution == "next_open":
        log("close-only data: each bar's open = high = low = close, so an order decided on a bar's close fills at "
            "the next bar's close (in the backtest and on the local exchange)")
    bars = _restrict(barset, symbols)
    base = base_params(args, bar_size, execution, log)
    present = [df for s, df in bars.items() if len(df)]
    if not present:
        raise DataError(f"none of the symbols {symbols} is in {barset.source}")
    if not args.end:
        last = max(df.index[-1] for df in present)
        end = holdout_cutoff(last, bar_size)
        log(f"in-sample: bars before {end.tz_convert(EXCHANGE_TZ).date()} (New York); the final "
            f"{'year' if daily else 'month'} is held out for out-of-sample replay")
        if start is not None and start >= end:
            raise ConfigError(f"--start {args.start} is not before the default in-sample end {end} (UTC; the final "
                              f"{'year' if daily else 'month'} of {barset.source}, from {end}, is held out); "
                              f"expected an earlier --start, or give --end")

    def in_sample(df: pd.DataFrame) -> pd.DataFrame:
        keep = np.ones(len(df), dtype=bool)
        if start is not None:
            keep &= df.index >= start
        if end is not None:
            keep &= (df.index < end) if end_excl else (df.index <= end)
        return df[keep]

    if not any(len(in_sample(df)) for df in present):
        raise ConfigError(f"no bar of {', '.join(symbols)} in {barset.source} lies in the in-sample range "
                          f"{start if start is not None else 'start of data'} .. {end} (UTC); the data run from "
                          f"{min(df.index[0] for df in present)} to {max(df.index[-1] for df in present)}: "
                          f"expected --start/--end inside the data")
    costs = _cost_model(args, {s: in_sample(df) for s, df in bars.items()}, log)  # estimated in-sample only
    variants = _variants(args, base)
    grid = threshold_grid(args.entry_z, args.exit_z, args.stop_z)
    if not grid:
        raise ConfigError("the threshold grid is empty: need exit_z < entry_z < stop_z for some combination")
    sel = selection_from_args(args, daily, report_all=args.report_all or barset.source == EMBEDDED_SOURCE)

    log(f"selection: Engle-Granger p <= {sel.coint_pvalue} on {args.prices} prices (both orderings); walk-forward "
        f"{sel.is_sessions} / {sel.oos_sessions} sessions ({'anchored' if sel.anchored else 'rolling'}), "
        f"deflated Sharpe >= {sel.min_dsr} after {len(variants) * len(grid)} trials")
    out: dict[str, PairParams] = {}
    firsts, lasts = [], []
    holdout_trades = []
    with tqdm(total=len(pairs), desc="pairs", unit="pair", disable=args.quiet, file=sys.stderr) as bar:
        for spec in pairs:
            pp, info = optimize_pair(spec, bars, barset.source, bar_size, variants, costs, grid, start, end, end_excl,
                                     sel)
            bar.update(1)
            out[spec.pair_id] = pp
            if "holdout_trades" in info:
                holdout_trades.append(info["holdout_trades"].assign(pair=spec.pair_id, tradable=pp.tradable))
            if "first" in info:
                firsts.append(info["first"])
                lasts.append(info["last"])
    if firsts:
        d_start, d_end = min(firsts), max(lasts)
    else:
        d_start = max(min(df.index[0] for df in present), start) if start is not None else \
            min(df.index[0] for df in present)
        d_end = min(max(df.index[-1] for df in present), end) if end is not None else \
            max(df.index[-1] for df in present)
    pf = ParamsFile(schema_version=SCHEMA_VERSION,
                    generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    bar_size=bar_size,
                    data=DataRange(source=barset.source, start=d_start.isoformat(), end=d_end.isoformat()),
                    costs=costs, pairs=out,
                    selection={"coint_pvalue": sel.coint_pvalue, "coint_prices": args.prices,
                               "min_dsr": sel.min_dsr, "wf_is_sessions": sel.is_sessions,
                               "wf_oos_sessions": sel.oos_sessions, "anchored": sel.anchored,
                               "cscv_splits": sel.cscv_splits, "hedge": args.hedge,
                               "trials": len(variants) * len(grid)})
    atomic_write_json(args.params, pf)
    if args.holdout_trades:
        from pairtrade.config import atomic_write_text

        ht = pd.concat(holdout_trades, ignore_index=True) if holdout_trades else pd.DataFrame()
        atomic_write_text(args.holdout_trades, ht.to_csv(index=False))
        log(f"wrote the held-out period's trades of the final parameters to {args.holdout_trades}")
    for line in result_table(out):
        log(line)
    log(f"wrote {args.params} in {time.perf_counter() - t0:.1f} s")
    return pf


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def result_table(out: dict[str, PairParams]) -> list[str]:
    """One console row per pair: level statistics, walk-forward out-of-sample figures, verdict and reason."""
    hdr = (f"  {'pair':<11} {'EG p':>6} {'HL bars':>8} {'IS Sh':>6} {'OOS Sh':>7} {'OOS ret%':>8} {'trades':>6} "
           f"{'PSR':>5} {'DSR':>5} {'PBO':>5} {'Sh 0.5/1/2x cost':>17}  verdict")
    lines = [hdr]
    for pid, pp in out.items():
        m = pp.metrics
        if m is None:
            lines.append(f"  {pid:<11} {'':>6} {'':>8} {'':>6} {'':>7} {'':>8} {'':>6} {'':>5} {'':>5} {'':>5} "
                         f"{'':>17}  NOT tradable: {pp.reason}")
            continue
        c = m.oos_sharpe_by_cost or {}
        cost = "/".join(_f(c.get(k), ".2f") for k in ("0.5x", "1x", "2x")) if c else "-"
        verdict = "tradable" if pp.tradable else f"NOT tradable: {pp.reason}"
        lines.append(f"  {pid:<11} {_f(m.coint_pvalue, '6.3f')} {_f(m.half_life_bars, '8.1f')} "
                     f"{_f(m.sharpe, '6.2f')} {_f(m.oos_sharpe, '7.2f')} {_f(m.oos_return_pct, '8.2f')} "
                     f"{m.oos_trades:>6d} {_f(m.oos_psr, '5.2f')} {_f(m.oos_dsr, '5.2f')} {_f(m.pbo, '5.2f')} "
                     f"{cost:>17}  {verdict}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``optimizer.py``: exit code 0, or 2 with a one-paragraph message on bad input."""
    from pairtrade.live.secrets import load_env

    load_env()  # ALPACA_API_KEY / ALPACA_SECRET_KEY from .env (never printed)
    try:
        run(argv)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
