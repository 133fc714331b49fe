"""The offline optimizer: ``python optimizer.py`` -> ``optimized_params.json``.

For every pair of ``pairs.json`` it loads bars (``--data`` file, else Alpaca historical bars when
``ALPACA_API_KEY``/``ALPACA_SECRET_KEY`` are set, else the embedded daily SPX/COMP set), keeps regular
trading hours, aligns the two legs on the in-sample range, computes the signals once
(:func:`pairtrade.signals.pipeline.compute_signals`), backtests a grid of entry x exit x stop thresholds with
costs (:mod:`pairtrade.backtest.grid`), and writes the best thresholds by annualised Sharpe ratio.

A pair is written with ``tradable: false`` and a ``reason`` when a leg is missing from the data, when the
ADF p-value of its in-sample Kalman spread exceeds ``--adf-max``, when no grid point reaches
``--min-trades`` closed trades, or when the best in-sample Sharpe ratio is not positive.

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
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from pairtrade.backtest.grid import (DEFAULT_ENTRY_Z, DEFAULT_EXIT_Z, DEFAULT_STOP_Z, GridResult, grid_search,
                                     threshold_grid)
from pairtrade.backtest.metrics import bars_per_session
from pairtrade.config import (SCHEMA_VERSION, ConfigError, CostModel, DataRange, PairMetrics, PairParams,
                              PairSpec, ParamsFile, StrategyParams, atomic_write_json, load_pairs)
from pairtrade.data.bars import EXCHANGE_TZ, BarSet, DataError, align, bar_seconds, embedded_bars, load_bars, \
    regular_hours

DEFAULT_MIN_TRADES = 10
# A threshold set that trades less than about once a quarter cannot be judged on its in-sample Sharpe.
SESSIONS_PER_REQUIRED_TRADE = 63
# Per-bar Hurst gate: admit a spread window only when its R/S Hurst exponent is below the 5 % quantile of
# the estimator's random-walk null distribution for the same window (pairtrade.signals.hurst).
DEFAULT_HURST_QUANTILE = 0.05
DEFAULT_ADF_MAX = 0.05
#: Kalman delta grid.  V_w = delta/(1-delta) per bar acts on beta in units of y per unit of x, so the
#: hedge's random walk per bar is ~ sqrt(delta) * x (USD): 1e-4 lets beta follow every tick of $100 stocks
#: (the spread becomes white noise); 1e-6..1e-8 keep it slow enough that the spread mean-reverts in price.
DEFAULT_KALMAN_DELTAS = (1e-4, 1e-6, 1e-8)
#: per-bar rolling ADF gate used by default (``--gate-adf-pvalue``); the Hurst gate is off by default
DEFAULT_GATE_ADF_PVALUE = 0.05


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
        return load_bars(args.data)
    key = os.environ.get("ALPACA_API_KEY")
    secret = os.environ.get("ALPACA_SECRET_KEY")
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
# statistics of the whole in-sample spread
# ---------------------------------------------------------------------------------------------
def spread_adf_pvalue(spread: np.ndarray) -> float:
    """ADF p-value (regression "c", lag by AIC) of a spread series (NaN removed).

    Uses :func:`pairtrade.signals.adf.adf` (numerically equal to statsmodels ``adfuller``), falling back
    to statsmodels when the signals package cannot be imported.
    """
    s = np.asarray(spread, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) < 30 or np.std(s) == 0:
        return math.nan
    try:
        from pairtrade.signals.adf import adf
    except ImportError:
        from statsmodels.tsa.stattools import adfuller

        return float(adfuller(s, regression="c", autolag="AIC", result_object=False)[1])
    try:
        return float(adf(s, regression="c", autolag="AIC").pvalue)
    except ValueError:
        return math.nan


def spread_half_life(spread: np.ndarray) -> float:
    """Half-life of mean reversion, bars: ``-ln 2 / ln(1 + lambda)`` of ``ds_t = c + lambda s_{t-1}``.

    Uses ``pairtrade.signals`` when it provides ``half_life``; otherwise an OLS fit (statsmodels).
    NaN when the spread does not mean-revert (lambda >= 0).
    """
    s = np.asarray(spread, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) < 10:
        return math.nan
    fn = _signals_half_life()
    if fn is not None:
        try:
            v = fn(s)
            v = float(v[0] if isinstance(v, tuple) else v)
            return v if math.isfinite(v) and v >= 0 else math.nan
        except Exception:  # an interim mismatch of signatures must not sink the run
            pass
    import statsmodels.api as sm

    ds = np.diff(s)
    lag = s[:-1]
    fit = sm.OLS(ds, sm.add_constant(lag)).fit()
    phi = 1.0 + float(fit.params[1])
    if phi >= 1.0:
        return math.nan
    return 0.0 if phi <= 0.0 else -math.log(2.0) / math.log(phi)


def _signals_half_life():
    try:
        import pairtrade.signals as sigpkg
    except ImportError:
        return None
    obj = getattr(sigpkg, "half_life", None)
    if obj is None:
        try:
            import importlib

            obj = importlib.import_module("pairtrade.signals.half_life")
        except ImportError:
            return None
    if callable(obj):
        return obj
    return getattr(obj, "half_life", None)


def _compute_signals():
    try:
        from pairtrade.signals.pipeline import compute_signals
    except ImportError as e:
        raise RuntimeError(f"pairtrade.signals.pipeline.compute_signals is not available ({e})") from e
    return compute_signals


# ---------------------------------------------------------------------------------------------
# one pair
# ---------------------------------------------------------------------------------------------
def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def optimize_pair(spec: PairSpec, bars: dict[str, pd.DataFrame], source: str, bar_size: str,
                  base_params: StrategyParams, costs: CostModel, grid: list[tuple[float, float, float]],
                  start: pd.Timestamp | None, end: pd.Timestamp | None, end_exclusive: bool,
                  min_trades: int, adf_max: float, kalman_deltas: Sequence[float] | None = None,
                  progress: Callable[[int], None] | None = None) -> tuple[PairParams, dict]:
    """Optimise one pair; never raises for pair-level problems (they become ``tradable: false``).

    The signals are computed once per Kalman ``delta`` of ``kalman_deltas`` (default: the delta of
    ``base_params``) -- they do not depend on the thresholds -- and every threshold combination of
    ``grid`` is backtested on them.  The best point is the highest annualised Sharpe ratio among points
    with at least ``min_trades`` closed trades.  The pair-level ADF p-value and half-life are those of the
    in-sample Kalman spread (after the warm-up) of the chosen delta.

    Returns
    -------
    (PairParams, info) where info holds the aligned range (first/last bar) and the grid table.
    """
    info: dict = {}
    deltas = list(kalman_deltas) if kalman_deltas else [base_params.kalman_delta]
    n_runs = len(grid) * len(deltas)
    for sym in (spec.y, spec.x):
        if sym not in bars:
            if progress:
                progress(n_runs)
            return PairParams(y=spec.y, x=spec.x, tradable=False,
                              reason=f"symbol not in data: {sym} is not in {source}"), info
    frame = align(bars[spec.y], bars[spec.x])
    if start is not None:
        frame = frame[frame.index >= start]
    if end is not None:
        frame = frame[frame.index < end] if end_exclusive else frame[frame.index <= end]
    need = base_params.warmup_bars + 2 * base_params.zscore_window_bars
    if len(frame) <= need:
        if progress:
            progress(n_runs)
        return PairParams(y=spec.y, x=spec.x, tradable=False,
                          reason=f"only {len(frame)} aligned in-sample bars of {spec.y} and {spec.x} in "
                                 f"{source}; need more than {need}"), info
    info["first"], info["last"] = frame.index[0], frame.index[-1]
    compute_signals = _compute_signals()
    cy, cx = frame["close_y"].to_numpy(float), frame["close_x"].to_numpy(float)
    tables, spreads, results = [], {}, {}
    for d in deltas:
        p_d = StrategyParams.model_validate({**base_params.model_dump(), "kalman_delta": float(d)})
        sig = compute_signals(cy, cx, p_d)
        spreads[d] = np.asarray(sig["spread"], dtype=float)[base_params.warmup_bars:]
        res: GridResult = grid_search(frame, sig, p_d, costs, grid, start_index=0, bar_size=bar_size,
                                      min_trades=min_trades, progress=progress)
        results[d] = res
        tables.append(res.table.assign(kalman_delta=float(d)))
    table = pd.concat(tables, ignore_index=True)
    info["grid"] = table
    elig = table[table["eligible"]]
    if not elig.empty:
        row = elig.sort_values(["sharpe", "trades"], ascending=[False, False], kind="stable").iloc[0]
    else:
        fin = table[np.isfinite(table["sharpe"])]
        row = fin.loc[fin["sharpe"].idxmax()] if not fin.empty else None
    chosen = float(row.kalman_delta) if row is not None else deltas[0]
    adf_p = spread_adf_pvalue(spreads[chosen])
    hl = spread_half_life(spreads[chosen])
    metrics = PairMetrics(
        sharpe=_num(row.sharpe) if row is not None else None,
        trades=int(row.trades) if row is not None else 0,
        total_return_pct=_num(row.total_return_pct) if row is not None else None,
        max_drawdown_pct=_num(row.max_drawdown_pct) if row is not None else None,
        adf_pvalue=_num(adf_p), half_life_bars=_num(hl))
    params = None
    if row is not None:
        params = StrategyParams.model_validate({**base_params.model_dump(), "kalman_delta": chosen,
                                                "entry_z": float(row.entry_z), "exit_z": float(row.exit_z),
                                                "stop_z": float(row.stop_z)})
    reason = None
    if not (math.isfinite(adf_p) and adf_p <= adf_max):
        reason = (f"ADF p-value {adf_p:.4f} of the in-sample Kalman spread exceeds --adf-max {adf_max}"
                  if math.isfinite(adf_p) else "ADF p-value of the in-sample Kalman spread is undefined")
    elif elig.empty:
        most = int(table["trades"].max()) if len(table) else 0
        reason = f"no parameter combination reaches --min-trades {min_trades} (most closed trades: {most})"
    elif not (row.sharpe > 0):
        reason = f"best in-sample Sharpe ratio {row.sharpe:.2f} is not positive"
    return PairParams(y=spec.y, x=spec.x, tradable=reason is None, reason=reason, params=params,
                      metrics=metrics), info


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="optimizer.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--pairs", default="pairs.json", help="pairs file")
    p.add_argument("--params", default="optimized_params.json", help="output file (written atomically)")
    p.add_argument("--data", default=None,
                   help="CSV/CSV.gz bars (long: symbol,datetime,open,high,low,close,volume; or wide daily "
                        "Date + closes); default: Alpaca when keys are set, else the embedded SPX/COMP set")
    p.add_argument("--start", default=None, help="first in-sample date/time (New York time unless zoned)")
    p.add_argument("--end", default=None,
                   help="last in-sample date/time; default holds out the final month (intraday) or year (daily)")
    p.add_argument("--bar-size", default="5Min", help="bar size when fetching from Alpaca")
    p.add_argument("--min-trades", type=int, default=None,
                   help=f"minimum closed in-sample trades (default: at least {DEFAULT_MIN_TRADES} and one per "
                        f"{SESSIONS_PER_REQUIRED_TRADE} sessions of in-sample data)")
    p.add_argument("--adf-max", type=float, default=DEFAULT_ADF_MAX,
                   help="pair gate: maximum ADF p-value of the in-sample Kalman spread")
    p.add_argument("--entry-z", type=_floats, default=list(DEFAULT_ENTRY_Z), help="grid of entry thresholds")
    p.add_argument("--exit-z", type=_floats, default=list(DEFAULT_EXIT_Z), help="grid of exit thresholds")
    p.add_argument("--stop-z", type=_floats, default=list(DEFAULT_STOP_Z), help="grid of z-stop thresholds")
    p.add_argument("--kalman-delta", type=_floats, default=list(DEFAULT_KALMAN_DELTAS),
                   help="grid of Kalman deltas (signals are computed once per pair and delta)")
    p.add_argument("--dollar-stop", type=float, default=None, help="dollar stop, USD of open loss")
    p.add_argument("--max-notional", type=float, default=None, help="cap of notional per leg, USD")
    p.add_argument("--risk-per-trade", type=float, default=None, help="USD per one std of the spread")
    p.add_argument("--hurst-max", type=float, default=None, help="per-bar Hurst gate level (1 disables)")
    p.add_argument("--hurst-quantile", type=float, default=None,
                   help="per-bar Hurst gate as a quantile of the random-walk null distribution of R/S over the "
                        "Hurst window (e.g. 0.05 admits 5%% of random walks); default 0.05 unless --hurst-max is given")
    p.add_argument("--gate-adf-pvalue", type=float, default=DEFAULT_GATE_ADF_PVALUE,
                   help="per-bar rolling ADF p-value gate (1 disables)")
    p.add_argument("--zscore-window", type=int, default=None, help="z-score window, bars")
    p.add_argument("--adf-window", type=int, default=None, help="rolling ADF window, bars")
    p.add_argument("--hurst-window", type=int, default=None, help="Hurst window, bars")
    p.add_argument("--warmup", type=int, default=None, help="bars before the first decision")
    p.add_argument("--slippage", type=float, default=None, help="slippage, USD per share")
    p.add_argument("--fee-bps", type=float, default=None, help="fee, basis points of notional")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


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
    pairs = load_pairs(args.pairs).pairs
    if args.min_trades is not None and args.min_trades < 0:
        raise ConfigError(f"--min-trades must be >= 0, got {args.min_trades}")
    symbols = sorted({s for p in pairs for s in (p.y, p.x)})
    start = end = None
    end_excl = True
    if args.start:
        start = _parse_time(args.start, "--start", False)[0]
    if args.end:
        end, end_excl = _parse_time(args.end, "--end", True)
    barset = load_market_data(args, symbols, log)
    bar_size = barset.bar_size
    log(f"data: {barset.source} ({bar_size} bars, {barset.start} to {barset.end})")
    bars = _restrict(barset, symbols)
    if args.hurst_quantile is None and args.hurst_max is None:
        args.hurst_quantile = DEFAULT_HURST_QUANTILE
    if args.hurst_quantile is not None:
        from pairtrade.signals.hurst import hurst_null_quantile

        if not 0 < args.hurst_quantile < 1:
            raise ConfigError(f"--hurst-quantile must be in (0, 1), got {args.hurst_quantile}")
        window = args.hurst_window or default_params(bar_size).hurst_window_bars
        args.hurst_max = hurst_null_quantile(window, args.hurst_quantile)
        log(f"Hurst gate: H < {args.hurst_max:.4f} (the {args.hurst_quantile:g} quantile of R/S over {window}-bar "
            f"random walks)")
    try:
        costs = CostModel(**{k: v for k, v in (("slippage_per_share", args.slippage), ("fee_bps", args.fee_bps))
                             if v is not None})
        base = default_params(bar_size, zscore_window_bars=args.zscore_window, adf_window_bars=args.adf_window,
                              hurst_window_bars=args.hurst_window, warmup_bars=args.warmup,
                              dollar_stop_usd=args.dollar_stop, max_notional_usd=args.max_notional,
                              risk_per_trade_usd=args.risk_per_trade, hurst_max=args.hurst_max,
                              adf_pvalue_max=args.gate_adf_pvalue)
    except ValueError as e:
        raise ConfigError(f"invalid option value: {e}") from None
    grid = threshold_grid(args.entry_z, args.exit_z, args.stop_z)
    if not grid:
        raise ConfigError("the threshold grid is empty: need exit_z < entry_z < stop_z for some combination")

    present = [df for s, df in bars.items() if len(df)]
    if not present:
        raise DataError(f"none of the symbols {symbols} is in {barset.source}")
    if not args.end:
        last = max(df.index[-1] for df in present)
        end = holdout_cutoff(last, bar_size)
        log(f"in-sample: bars before {end.tz_convert(EXCHANGE_TZ).date()} (New York); the final "
            f"{'year' if bar_seconds(bar_size) >= 86400 else 'month'} is held out for out-of-sample replay")

    min_trades = args.min_trades
    if min_trades is None:
        days = set()
        for df in present:
            idx = df.index
            sel = idx[((idx >= start) if start is not None else True) & ((idx < end) if end is not None else True)]
            days.update(sel.tz_convert(EXCHANGE_TZ).date)
        min_trades = max(DEFAULT_MIN_TRADES, len(days) // SESSIONS_PER_REQUIRED_TRADE)
        log(f"minimum in-sample trades: {min_trades} ({len(days)} sessions; at least one trade per "
            f"{SESSIONS_PER_REQUIRED_TRADE} sessions, never fewer than {DEFAULT_MIN_TRADES})")
    out: dict[str, PairParams] = {}
    firsts, lasts = [], []
    deltas = args.kalman_delta
    with tqdm(total=len(pairs) * len(grid) * len(deltas), desc="pairs x grid", unit="run", disable=args.quiet,
              file=sys.stderr) as bar:
        for spec in pairs:
            pp, info = optimize_pair(spec, bars, barset.source, bar_size, base, costs, grid, start, end, end_excl,
                                     min_trades, args.adf_max, kalman_deltas=deltas,
                                     progress=bar.update)
            out[spec.pair_id] = pp
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
                    costs=costs, pairs=out)
    atomic_write_json(args.params, pf)
    for pid, pp in out.items():
        m = pp.metrics
        if pp.tradable:
            log(f"  {pid:<10} tradable  Sharpe {m.sharpe:6.2f}  trades {m.trades:4d}  return {m.total_return_pct:7.2f}%"
                f"  maxDD {m.max_drawdown_pct:6.2f}%  entry/exit/stop {pp.params.entry_z}/{pp.params.exit_z}/"
                f"{pp.params.stop_z}  delta {pp.params.kalman_delta:g}  ADF p {m.adf_pvalue:.3g}"
                f"  half-life {m.half_life_bars if m.half_life_bars is None else round(m.half_life_bars, 2)} bars")
        else:
            extra = ""
            if m is not None and m.sharpe is not None:
                extra = f" (best Sharpe {m.sharpe:.2f}, trades {m.trades})"
            log(f"  {pid:<10} NOT tradable: {pp.reason}{extra}")
    log(f"wrote {args.params} in {time.perf_counter() - t0:.1f} s")
    return pf


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
