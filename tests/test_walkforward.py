"""Walk-forward evaluation and pair selection (:mod:`pairtrade.research.walkforward`, ``optimizer.py``).

What is compared against what we did not write:

* **no look-ahead**: a pair and a copy identical up to bar T whose future after T carries a planted, very
  profitable oscillation of the spread -- every choice made before T, every out-of-sample return of a bar
  <= T and every signal of a bar <= T must be bit-identical in both runs (a known truth: the past is equal);
* **windows**: session counts from the New York calendar dates of an ``exchange_calendars`` XNYS grid;
* **level statistics**: ``statsmodels.tsa.stattools.coint`` and ``statsmodels.tsa.vector_ar.vecm.coint_johansen``;
* **stitched out-of-sample returns**: their length from the session grid, cost sensitivity from the
  ordering a cost increase must give (and zero costs scaled by any factor staying zero);
* **selection end to end** (``python optimizer.py`` in a subprocess): a simulated Ornstein-Uhlenbeck pair
  (known to be cointegrated) is tradable, two independent random walks (known not to be) are not; the
  final hedge ratio equals statsmodels OLS on the final in-sample window;
* **presets**: Chan (2013) Example 3.3's script output ``APR=0.262252 Sharpe=2.361162`` and
  :func:`pairtrade.research.presets.run_preset` on the same file.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.tsa.stattools import coint as sm_coint
from statsmodels.tsa.vector_ar.vecm import coint_johansen

from pairtrade.config import CostModel, StrategyParams, load_params
from pairtrade.data.bars import align, trading_calendar
from pairtrade.research.walkforward import (final_window, fit_model, level_statistics, oos_returns_with_costs,
                                            walk_forward, walk_forward_windows)
from pairtrade.signals.pipeline import SIGNAL_KEYS, compute_signals

ROOT = Path(__file__).resolve().parents[1]
NY = "America/New_York"
BARS_PER_SESSION = 78  # 5-minute bars of a full XNYS session, 09:30-16:00


# ---------------------------------------------------------------------------------------------
# simulated data (fixed seeds)
# ---------------------------------------------------------------------------------------------
def xnys_5min_index(first_session: str, n_sessions: int) -> pd.DatetimeIndex:
    """UTC bar starts of ``n_sessions`` full XNYS sessions of 5-minute bars from ``first_session`` on."""
    cal = trading_calendar("XNYS", 2024, 2024)
    sched = cal.schedule.loc[first_session:].iloc[:n_sessions]
    assert len(sched) == n_sessions
    parts = [pd.date_range(o, c, freq="5min", inclusive="left") for o, c in zip(sched["open"], sched["close"])]
    idx = parts[0].append(parts[1:])
    return idx.tz_convert("UTC")


def ou_path(rng: np.random.Generator, n: int, half_life: float, std: float) -> np.ndarray:
    """AR(1) path with half-life ``half_life`` bars and stationary standard deviation ``std``, started at 0."""
    phi = 2.0 ** (-1.0 / half_life)
    e = rng.normal(0.0, std * math.sqrt(1.0 - phi * phi), n)
    s = np.zeros(n)
    for t in range(1, n):
        s[t] = phi * s[t - 1] + e[t]
    return s


def random_walk(rng: np.random.Generator, n: int, start: float, vol: float) -> np.ndarray:
    """Log-price random walk: ``log(start)`` plus cumulated N(0, vol) steps."""
    return math.log(start) + np.cumsum(rng.normal(0.0, vol, n))


def canonical_bars(index: pd.DatetimeIndex, log_close: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Canonical bar frame (UTC bar starts; float open, high, low, close, volume) from log closes.

    The open is the previous close moved by a small noise, high/low enclose open and close.
    """
    close = np.exp(log_close)
    prev = np.r_[close[0], close[:-1]]
    open_ = prev * np.exp(rng.normal(0.0, 2e-4, len(close)))
    high = np.maximum(open_, close) * 1.0003
    low = np.minimum(open_, close) * 0.9997
    vol = rng.integers(1_000, 5_000, len(close)).astype(float)
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": vol}, index=index)


def cointegrated_legs(seed: int, index: pd.DatetimeIndex, beta: float = 0.9, alpha: float = 0.5,
                      half_life: float = 10.0, std: float = 0.008,
                      x_vol: float = 0.001) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log closes ``(log y, log x, spread)``: ``log y = alpha + beta log x + OU spread``, x a random walk."""
    rng = np.random.default_rng(seed)
    lx = random_walk(rng, len(index), 40.0, x_vol)
    s = ou_path(rng, len(index), half_life, std)
    return alpha + beta * lx + s, lx, s


def pair_frame(index: pd.DatetimeIndex, ly: np.ndarray, lx: np.ndarray, seed: int) -> pd.DataFrame:
    """Aligned pair frame (open_y, close_y, open_x, close_x) built from two canonical bar frames."""
    rng = np.random.default_rng(seed)
    return align(canonical_bars(index, ly, rng), canonical_bars(index, lx, rng))


def ny_session_dates(index: pd.DatetimeIndex) -> np.ndarray:
    """New York calendar date of every bar (independent of the library's ``session_ids``)."""
    return np.asarray(index.tz_convert(NY).date)


def variant(**kw) -> StrategyParams:
    """Short windows (fast) on log prices; placeholders for the fitted fields of ``ols`` / ``fixed``."""
    base = dict(zscore_window_bars=78, adf_window_bars=100, hurst_window_bars=100, warmup_bars=100, prices="log",
                ols_window_bars=200)
    if kw.get("hedge") == "ols":
        base.update(hedge_beta=1.0, hedge_alpha=0.0)
    if kw.get("zscore") == "fixed":
        base.update(zscore_mean=0.0, zscore_std=1.0)
    base.update(kw)
    return StrategyParams(**base)


#: every spread model: hedge x signal spread x z-score statistics
MODELS = {
    "kalman_level_rolling": variant(hedge="kalman"),
    "kalman_forecast_error_sqrtQ": variant(hedge="kalman", spread="forecast_error", zscore="forecast_std"),
    "ols_rolling": variant(hedge="ols"),
    "ols_fixed": variant(hedge="ols", zscore="fixed"),
    "ols_level_prices_ewm": variant(hedge="ols", prices="level", zscore="ewm", zscore_halflife_bars=40.0),
    "rolling_ols_rolling": variant(hedge="rolling_ols"),
    "rolling_ols_ewm": variant(hedge="rolling_ols", zscore="ewm", zscore_halflife_bars=40.0),
}
GRID = [(1.5, 0.0, 4.0), (1.5, 0.5, 4.0), (2.0, 0.0, 4.0), (2.0, 0.5, 4.0)]


# ---------------------------------------------------------------------------------------------
# 1. no look-ahead: a planted future must not change anything decided before it
# ---------------------------------------------------------------------------------------------
N_SESSIONS, IS_SESSIONS, OOS_SESSIONS = 30, 10, 5
T_SESSION = 22  # T = the middle bar of session 22 (0-based): inside window 2's out-of-sample period


@pytest.fixture(scope="module")
def planted():
    """Pair A and a copy B equal up to bar T; after T, B's log y carries a sine of 3 spread std, period 40 bars.

    Knowing that future is worth a fortune: a fixed z-score entered at |z| >= 2 and left at 0 earns about
    two spread standard deviations every 20 bars, with certainty.
    """
    idx = xnys_5min_index("2024-03-01", N_SESSIONS)
    ly, lx, s = cointegrated_legs(1, idx)
    t = T_SESSION * BARS_PER_SESSION + BARS_PER_SESSION // 2
    ly_b = ly.copy()
    k = np.arange(1, len(idx) - t)
    ly_b[t + 1:] += 3.0 * s[:t + 1].std() * np.sin(2.0 * np.pi * k / 40.0)
    fa = pair_frame(idx, ly, lx, seed=2)
    fb = pair_frame(idx, ly_b, lx, seed=2)
    fb.loc[fb.index[t + 1:], "open_y"] = fb["close_y"].shift(1).iloc[t + 1:]  # B's opens follow its own closes
    # the copies are bit-identical up to and including bar T, and differ after it
    pd.testing.assert_frame_equal(fa.iloc[:t + 1], fb.iloc[:t + 1], check_exact=True)
    assert (fa["close_y"].iloc[t + 1:] != fb["close_y"].iloc[t + 1:]).sum() > 0.9 * (len(idx) - t - 1)
    return fa, fb, t


@pytest.fixture(scope="module")
def planted_runs(planted):
    fa, fb, t = planted
    variants = list(MODELS.values())
    costs = CostModel()
    run = lambda f: walk_forward(f, ("Y", "X"), variants, GRID, costs, "5Min", IS_SESSIONS, OOS_SESSIONS)  # noqa: E731
    return run(fa), run(fb)


def test_planted_future_changes_nothing_decided_before_it(planted, planted_runs):
    fa, fb, t = planted
    wa, wb = planted_runs
    wins = walk_forward_windows(fa.index, IS_SESSIONS, OOS_SESSIONS)
    assert len(wa.windows) == len(wb.windows) == len(wins) == 4
    checked_full = checked_choice = 0
    for w, ra, rb, ia, ib in zip(wins, wa.windows, wb.windows, wa.oos_by_window, wb.oos_by_window):
        if w.is_end <= t + 1:  # chosen before T: same model, thresholds, fitted hedge and z-score statistics
            assert ia is not None and ib is not None
            assert ia[0] == ib[0]
            for key in ("chosen", "is_sharpe", "is_trades", "is_start", "is_end"):
                assert ra[key] == rb[key], key
            checked_choice += 1
        if w.oos_end <= t + 1:  # out-of-sample period over by T: the whole record is the same
            assert ra == rb
            checked_full += 1
    assert (checked_full, checked_choice) == (2, 3)
    # stitched out-of-sample returns: bit-identical for every bar <= T
    first_oos = wins[0].oos_start
    m = t + 1 - first_oos
    np.testing.assert_array_equal(wa.oos_returns[:m], wb.oos_returns[:m])
    # ... and the planted future does reach the results after T (the test can fail), profitably
    assert not np.array_equal(wa.oos_returns[m:], wb.oos_returns[m:])
    assert np.log1p(wb.oos_returns[m:]).sum() > np.log1p(wa.oos_returns[m:]).sum() + 0.1
    assert wb.final_is_sharpe > wa.final_is_sharpe


@pytest.mark.parametrize("name", sorted(MODELS))
def test_signals_before_the_planted_future_are_identical(planted, name):
    fa, fb, t = planted
    p = MODELS[name]
    ya, xa = fa["close_y"].to_numpy(), fa["close_x"].to_numpy()
    yb, xb = fb["close_y"].to_numpy(), fb["close_x"].to_numpy()
    # fitted on a window ending at T (static OLS hedge, fixed z-score statistics): same fit from both copies
    start = t + 1 - IS_SESSIONS * BARS_PER_SESSION
    pa, pb = fit_model(p, ya, xa, start, t + 1), fit_model(p, yb, xb, start, t + 1)
    assert pa == pb
    sa, sb = compute_signals(ya, xa, pa), compute_signals(yb, xb, pb)
    for k in SIGNAL_KEYS:
        np.testing.assert_array_equal(sa[k][:t + 1], sb[k][:t + 1], err_msg=f"{name}: {k}")
        assert np.isfinite(sa[k][t]), (name, k)
    # signals of the full series equal those of the series cut at T (nothing reads a later bar)
    cut = compute_signals(ya[:t + 1], xa[:t + 1], pa)
    for k in SIGNAL_KEYS:
        np.testing.assert_array_equal(sa[k][:t + 1], cut[k], err_msg=f"{name}: {k} (cut)")
    assert not np.array_equal(sa["spread"][t + 1:], sb["spread"][t + 1:])


@pytest.mark.parametrize("anchored", [False, True])
@pytest.mark.parametrize("is_sessions,oos_sessions", [(10, 5), (7, 3), (12, 7), (29, 4)])
def test_walk_forward_windows_partition_whole_sessions(anchored, is_sessions, oos_sessions):
    # 2024-03-29 (Good Friday) is not an XNYS session: the grid skips it
    idx = xnys_5min_index("2024-03-20", 30)
    dates = ny_session_dates(idx)
    sessions = list(dict.fromkeys(dates))
    assert len(sessions) == 30
    wins = walk_forward_windows(idx, is_sessions, oos_sessions, anchored=anchored)
    n_expected = math.ceil((30 - is_sessions) / oos_sessions)
    assert len(wins) == n_expected
    for k, w in enumerate(wins):
        assert 0 <= w.is_start < w.is_end == w.oos_start < w.oos_end <= len(idx)  # disjoint, OOS right after IS
        is_dates, oos_dates = set(dates[w.is_start:w.is_end]), set(dates[w.oos_start:w.oos_end])
        assert not is_dates & oos_dates
        for b in (w.is_start, w.oos_start):  # boundaries at the first bar of a session
            assert b == 0 or dates[b - 1] != dates[b]
        assert w.oos_end == len(idx) or dates[w.oos_end - 1] != dates[w.oos_end]
        if anchored:
            assert w.is_start == 0 and len(is_dates) == is_sessions + k * oos_sessions
        else:
            assert len(is_dates) == is_sessions and sessions.index(dates[w.is_start]) == k * oos_sessions
        assert len(oos_dates) == min(oos_sessions, 30 - is_sessions - k * oos_sessions)
        if k:
            assert w.oos_start == wins[k - 1].oos_end  # out-of-sample periods tile
    assert wins[0].oos_start == is_sessions * BARS_PER_SESSION and wins[-1].oos_end == len(idx)
    fw = final_window(idx, is_sessions, anchored)
    assert fw.is_end == len(idx) and fw.is_start == (0 if anchored else (30 - is_sessions) * BARS_PER_SESSION)
    # too short for one out-of-sample session: no window; bad lengths: ValueError naming them
    assert walk_forward_windows(idx[:is_sessions * BARS_PER_SESSION], is_sessions, oos_sessions, anchored) == []
    with pytest.raises(ValueError, match="session counts"):
        walk_forward_windows(idx, 0, oos_sessions)


def test_walk_forward_windows_on_daily_bars():
    # daily bars stamped at New York midnight (as Alpaca and the loader do), one bar per session
    cal = trading_calendar("XNYS", 2023, 2024)
    days = cal.sessions[(cal.sessions >= "2023-01-01") & (cal.sessions <= "2024-12-31")]
    idx = pd.DatetimeIndex(days).tz_localize(NY).tz_convert("UTC")
    wins = walk_forward_windows(idx, 252, 63)
    assert [(w.is_start, w.is_end, w.oos_end) for w in wins] == [
        (k * 63, 252 + k * 63, min(252 + (k + 1) * 63, len(idx))) for k in range(math.ceil((len(idx) - 252) / 63))]


# ---------------------------------------------------------------------------------------------
# 2. level statistics vs statsmodels
# ---------------------------------------------------------------------------------------------
def _level_pairs():
    idx = np.arange(600)
    ly, lx, _ = cointegrated_legs(21, idx, beta=1.3, alpha=-0.2, half_life=10.0, std=0.02,
                                  x_vol=0.01)
    rng = np.random.default_rng(22)
    return {"cointegrated": (np.exp(ly), np.exp(lx)),
            "independent": (np.exp(random_walk(rng, 600, 30.0, 0.01)), np.exp(random_walk(rng, 600, 80.0, 0.01)))}


@pytest.mark.parametrize("case", ["cointegrated", "independent"])
def test_level_statistics_equal_statsmodels(case):
    cy, cx = _level_pairs()[case]
    ls = level_statistics(cy, cx)
    py, px = np.log(cy), np.log(cx)
    p_yx = sm_coint(py, px)[1]
    p_xy = sm_coint(px, py)[1]
    assert ls.coint_pvalue_yx == pytest.approx(p_yx, rel=1e-8, abs=1e-300)
    assert ls.coint_pvalue_xy == pytest.approx(p_xy, rel=1e-8, abs=1e-300)
    assert ls.coint_pvalue == max(ls.coint_pvalue_yx, ls.coint_pvalue_xy)
    jo = coint_johansen(np.column_stack([py, px]), 0, 1)
    assert ls.johansen_trace == pytest.approx(jo.lr1[0], rel=1e-8)
    assert ls.johansen_crit_95 == pytest.approx(jo.cvt[0, 1], rel=1e-12)
    b = sm.OLS(py, sm.add_constant(px)).fit().params
    assert (ls.hedge_beta, ls.hedge_alpha) == (pytest.approx(b[1], rel=1e-9), pytest.approx(b[0], rel=1e-9))
    assert ls.prices == "log"
    if case == "cointegrated":  # the simulation's truth: stationary spread of half-life 10 bars, beta 1.3
        assert max(p_yx, p_xy) < 1e-3 and ls.johansen_trace > ls.johansen_crit_95
        assert ls.hedge_beta == pytest.approx(1.3, abs=0.1) and 6.0 < ls.half_life_bars < 15.0
    else:
        assert ls.coint_pvalue > 0.05
    # level prices: statsmodels on the raw closes
    lv = level_statistics(cy, cx, prices="level")
    assert lv.coint_pvalue_yx == pytest.approx(sm_coint(cy, cx)[1], rel=1e-8, abs=1e-300)
    assert lv.johansen_trace == pytest.approx(coint_johansen(np.column_stack([cy, cx]), 0, 1).lr1[0], rel=1e-8)


def test_level_statistics_rejects_short_input():
    with pytest.raises(ValueError, match="30 bars"):
        level_statistics(np.full(29, 10.0), np.full(29, 20.0))


# ---------------------------------------------------------------------------------------------
# 3. stitched out-of-sample returns, cost sensitivity
# ---------------------------------------------------------------------------------------------
def _annual_sharpe(r: np.ndarray) -> float:
    return float(np.mean(r) / np.std(r, ddof=1) * math.sqrt(252 * BARS_PER_SESSION))


@pytest.mark.parametrize("costs", [CostModel(slippage_per_share=0.0, fee_bps=0.0),
                                   CostModel(slippage_per_share=0.01, fee_bps=1.0, borrow_fee_pct=2.0)],
                         ids=["zero-costs", "costs"])
def test_stitched_oos_returns_and_cost_sensitivity(planted, costs):
    fa, _, _ = planted
    variants = [MODELS["ols_rolling"], MODELS["kalman_level_rolling"], MODELS["rolling_ols_ewm"]]
    wf = walk_forward(fa, ("Y", "X"), variants, GRID, costs, "5Min", IS_SESSIONS, OOS_SESSIONS)
    # one return per out-of-sample bar: every bar of sessions IS_SESSIONS.. (the session grid's count)
    dates = ny_session_dates(fa.index)
    first_oos_day = list(dict.fromkeys(dates))[IS_SESSIONS]
    n_oos = int(np.sum(dates >= first_oos_day))
    assert n_oos == (N_SESSIONS - IS_SESSIONS) * BARS_PER_SESSION
    assert len(wf.oos_returns) == n_oos and np.all(np.isfinite(wf.oos_returns))
    assert wf.n_trials == len(variants) * len(GRID) and wf.oos_trades > 0
    assert all(rec["chosen"] is not None for rec in wf.windows)
    # the same costs reproduce the walk-forward's returns exactly
    np.testing.assert_array_equal(oos_returns_with_costs(fa, wf, costs, ("Y", "X"), "5Min"), wf.oos_returns)
    by = {f: oos_returns_with_costs(fa, wf, costs.scaled(f), ("Y", "X"), "5Min") for f in (0.5, 2.0)}
    by[1.0] = wf.oos_returns
    if costs.fee_bps == 0 and costs.slippage_per_share == 0:
        np.testing.assert_array_equal(by[0.5], by[1.0])
        np.testing.assert_array_equal(by[2.0], by[1.0])
    else:
        sh = {f: _annual_sharpe(r) for f, r in by.items()}
        assert sh[2.0] < sh[1.0] < sh[0.5], sh
        # costs only ever take money away: within every out-of-sample window (each starts flat with the same
        # capital) the equity is never higher at higher costs, and it ends lower where the window traded
        edges = np.cumsum([0] + [w.oos_end - w.oos_start for _, _, w in wf.oos_by_window])
        for a, b in zip(edges[:-1], edges[1:]):
            eq = {f: np.cumprod(1.0 + r[a:b]) for f, r in by.items()}
            assert np.all(eq[2.0] <= eq[1.0] * (1 + 1e-12)) and np.all(eq[1.0] <= eq[0.5] * (1 + 1e-12))
            assert eq[2.0][-1] < eq[1.0][-1] < eq[0.5][-1]


# ---------------------------------------------------------------------------------------------
# 4. selection end to end through the command line
# ---------------------------------------------------------------------------------------------
CLI_SESSIONS, CLI_IS, CLI_OOS = 45, 10, 5
CLI_GRID = ["--entry-z", "1.5,2", "--exit-z", "0,0.5", "--stop-z", "4"]


def _env() -> dict:
    return {k: v for k, v in os.environ.items()
            if k not in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "APCA_API_KEY_ID", "APCA_API_SECRET_KEY")}


def _start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "optimizer.py", *args], cwd=ROOT, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(p: subprocess.Popen, timeout: float = 120) -> subprocess.CompletedProcess:
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.fixture(scope="module")
def selection_runs(tmp_path_factory):
    """Two pairs in one long CSV (naive New York times): AAA/BBB cointegrated (OU spread, half-life 10 bars,
    std 0.8 % against 1 cent + 0.5 bp costs), CCC/DDD independent random walks; one optimizer run per
    ``pairs.json`` spelling, both started at once."""
    d = tmp_path_factory.mktemp("selection")
    idx = xnys_5min_index("2024-03-01", CLI_SESSIONS)
    la, lb, _ = cointegrated_legs(5, idx)
    rng = np.random.default_rng(11)
    lc, ld = random_walk(rng, len(idx), 60.0, 0.001), random_walk(rng, len(idx), 30.0, 0.001)
    rng = np.random.default_rng(12)
    frames = []
    for sym, lp in (("AAA", la), ("BBB", lb), ("CCC", lc), ("DDD", ld)):
        bars = canonical_bars(idx, lp, rng)
        frames.append(bars.assign(symbol=sym, datetime=bars.index.tz_convert(NY).tz_localize(None)
                                  .strftime("%Y-%m-%d %H:%M:%S")))
    data = d / "bars.csv"
    pd.concat(frames)[["symbol", "datetime", "open", "high", "low", "close", "volume"]].to_csv(data, index=False)
    (d / "pairs_list.json").write_text(json.dumps([["AAA", "BBB"], ["CCC", "DDD"]]))
    (d / "pairs_obj.json").write_text(json.dumps({"pairs": [{"y": "AAA", "x": "BBB"}, {"y": "CCC", "x": "DDD"}]}))
    last_day = str(idx[-1].tz_convert(NY).date())
    common = ["--data", str(data), "--quiet", "--wf-is-sessions", str(CLI_IS), "--wf-oos-sessions", str(CLI_OOS),
              "--end", last_day, *CLI_GRID]
    procs = {k: _start_cli(*common, "--pairs", str(d / f"pairs_{k}.json"), "--params", str(d / f"out_{k}.json"))
             for k in ("list", "obj")}
    done = {k: _finish(p) for k, p in procs.items()}
    return d, idx, (la, lb), done


def test_selection_cointegrated_pair_is_tradable(selection_runs):
    d, idx, (la, lb), done = selection_runs
    cp = done["list"]
    assert cp.returncode == 0, cp.stderr
    assert "Traceback" not in cp.stderr
    pf = load_params(d / "out_list.json")
    assert set(pf.pairs) == {"AAA-BBB", "CCC-DDD"}
    pp = pf.pairs["AAA-BBB"]
    m = pp.metrics
    assert pp.tradable and pp.reason is None, pp.reason
    assert m.coint_pvalue <= 0.05 and m.coint_pvalue_yx <= 0.05 and m.coint_pvalue_xy <= 0.05
    assert m.oos_dsr >= 0.95 and m.oos_sharpe > 0 and m.oos_trades > 0
    assert m.n_trials == 4 and pf.selection["trials"] == 4
    n_win = math.ceil((CLI_SESSIONS - CLI_IS) / CLI_OOS)
    assert len(pp.walk_forward) == m.walk_forward_windows == n_win
    assert m.oos_bars == (CLI_SESSIONS - CLI_IS) * BARS_PER_SESSION
    assert all(row["chosen"] is not None for row in pp.walk_forward)
    # the simulation's truth: half-life 10 bars
    assert 6.0 < m.half_life_bars < 15.0
    # the params carry the static hedge fitted on the final in-sample window (statsmodels OLS on log prices)
    p = pp.params
    assert p.hedge == "ols" and p.prices == "log" and p.exit_z < p.entry_z < p.stop_z
    k = (CLI_SESSIONS - CLI_IS) * BARS_PER_SESSION
    close_y, close_x = np.exp(la[k:]), np.exp(lb[k:])
    ols = sm.OLS(np.log(close_y), sm.add_constant(np.log(close_x))).fit().params
    assert p.hedge_beta == pytest.approx(ols[1], rel=1e-6) and p.hedge_alpha == pytest.approx(ols[0], rel=1e-6)
    # cost sensitivity is reported and ordered
    c = m.oos_sharpe_by_cost
    assert c["2x"] < c["1x"] < c["0.5x"] and c["1x"] == pytest.approx(m.oos_sharpe, rel=1e-12)


def test_selection_random_walk_pair_is_not_tradable(selection_runs):
    d, _, _, done = selection_runs
    assert done["list"].returncode == 0, done["list"].stderr
    pp = load_params(d / "out_list.json").pairs["CCC-DDD"]
    assert not pp.tradable
    assert "Engle-Granger" in pp.reason and "not cointegrated" in pp.reason
    assert pp.metrics.coint_pvalue > 0.05
    assert pp.walk_forward == []  # not walked forward without --report-all


def test_both_pairs_file_spellings_give_the_same_output(selection_runs):
    d, _, _, done = selection_runs
    for cp in done.values():
        assert cp.returncode == 0, cp.stderr
    a, b = load_params(d / "out_list.json"), load_params(d / "out_obj.json")
    assert list(a.pairs) == list(b.pairs) == ["AAA-BBB", "CCC-DDD"]
    assert a.pairs == b.pairs and a.selection == b.selection and a.data == b.data
    assert (a.pairs["AAA-BBB"].y, a.pairs["AAA-BBB"].x) == ("AAA", "BBB")


BAD_OPTIONS = {"coint-pvalue": ["--coint-pvalue", "0"], "hedge": ["--hedge", "nope"]}


@pytest.fixture(scope="module")
def bad_option_runs(tmp_path_factory):
    """One optimizer run per bad option (started at once); the pairs file is valid, so the option is at fault."""
    d = tmp_path_factory.mktemp("bad_options")
    (d / "pairs.json").write_text('[["AAA", "BBB"]]')
    procs = {k: _start_cli("--quiet", "--pairs", str(d / "pairs.json"), "--params", str(d / f"out_{k}.json"), *a)
             for k, a in BAD_OPTIONS.items()}
    return d, {k: _finish(p, timeout=60) for k, p in procs.items()}


@pytest.mark.parametrize("key", sorted(BAD_OPTIONS))
def test_bad_selection_option_exit_2_without_traceback(bad_option_runs, key):
    d, done = bad_option_runs
    cp, (option, value) = done[key], BAD_OPTIONS[key]
    assert cp.returncode == 2
    assert "Traceback" not in cp.stderr and cp.stdout == ""
    errors = [ln for ln in cp.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and option in errors[0] and value in errors[0], cp.stderr
    assert errors[0] == cp.stderr.strip().splitlines()[-1]
    assert not (d / f"out_{key}.json").exists()


@pytest.mark.parametrize("key", [
    "coint-pvalue",
    "hedge",
])
def test_bad_selection_option_is_a_single_line(bad_option_runs, key):
    cp = bad_option_runs[1][key]
    assert cp.returncode == 2
    assert len(cp.stderr.strip().splitlines()) == 1, cp.stderr


# ---------------------------------------------------------------------------------------------
# 5. presets through the command line
# ---------------------------------------------------------------------------------------------
def test_presets_through_the_cli(tmp_path, chan_etf):
    from pairtrade.research.presets import run_preset

    procs = {name: _start_cli("--preset", name, "--data", str(chan_etf), "--params", str(tmp_path / f"{name}.json"))
             for name in ("chan-at-3.3", "chan-qt-3.6")}
    done = {name: _finish(p) for name, p in procs.items()}
    # Chan (2013) Example 3.3: KF_beta_EWA_EWC.m prints APR=0.262252 Sharpe=2.361162 (no train/test split)
    cp = done["chan-at-3.3"]
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip().splitlines()[-1] == f"train Sharpe {2.361162:.4f} test Sharpe n/a APR {0.262252:.4f}"
    for name, cp in done.items():
        assert cp.returncode == 0, cp.stderr
        ref = run_preset(name, chan_etf)
        assert cp.stdout.strip().splitlines()[-1] == ref.summary_line()
        pf = load_params(tmp_path / f"{name}.json")
        fig = pf.preset
        assert fig["name"] == name and tuple(fig["pair"]) == ref.pair
        assert fig["train_sharpe"] == ref.train_sharpe and fig["test_sharpe"] == ref.test_sharpe
        assert fig["apr"] == ref.apr and fig["hedge_ratio"] == ref.hedge_ratio
        assert (fig["n_train"], fig["n_test"]) == (ref.n_train, ref.n_test)
        assert pf.pairs == {}
    at = load_params(tmp_path / "chan-at-3.3.json").preset
    assert at["apr"] == pytest.approx(0.262252, abs=1e-6) and at["train_sharpe"] == pytest.approx(2.361162, abs=1e-6)
    qt = load_params(tmp_path / "chan-qt-3.6.json").preset
    assert qt["test_sharpe"] is not None and qt["hedge_ratio"] > 0 and qt["n_train"] == 252
