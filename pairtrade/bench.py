"""Benchmarks that print measured medians and ratios.

Usage::

    python -m pairtrade.bench signals [--bars N] [--baseline-bars N]
    python -m pairtrade.bench hurst-gate [--window W] [--q Q ...]
    python -m pairtrade.bench null [--pairs N] [--grid 5min|daily|both] [--jobs 2]
    python -m pairtrade.bench soak [--faults 200] [--seed 1] [--pairs JPM/BAC,BAC/C,XOM/CVX,GS/MS]
    python -m pairtrade.bench replay [--pairs 10] [--bars 780]

``signals`` compares the streaming signal core (:class:`pairtrade.signals.pipeline.SignalEngine`) with
the usual recompute-everything approach, in the same run:

* **incremental**: one ``SignalEngine.update`` per bar (Kalman step, z-score over 78 bars, R/S
  Hurst over 100 bars, ADF with autolag AIC over the ADF window), after a warm-up;
* **recompute**: per bar, on the whole buffer (390 or 1,500 bars): Chan's Kalman loop in NumPy over
  all bars, pandas rolling mean/std of the spread, ``hurst.compute_Hc`` over the last 100 spreads,
  statsmodels OLS of y on x and ``adfuller(autolag="AIC")`` over the buffer's spreads;
* **cold start**: a fresh interpreter that imports the pipeline, builds a ``SignalEngine``, warms it
  up on 390 bars and makes the first update -- once to fill numba's on-disk cache, then measured
  with the warm cache.

``null`` runs the optimizer's CLI defaults on simulated independent random-walk pairs (share marked tradable:
the false-positive rate) and on cointegrated pairs with known half-lives (share found), see
:mod:`pairtrade.research.simulate`.

``soak`` runs the daemon (controller.py, trader processes, alpaca-py) against a separate local
exchange that injects faults of every kind, kills traders and the controller with SIGKILL, and
checks the ledger against the exchange after every episode (:mod:`pairtrade.live.soak`); it ends
with one line ``soak: faults=N orphan_legs=0 ...`` and a table by fault kind.

``replay`` times the controller's lockstep loop (advance the in-process exchange, wait for the bars
on the websocket, dispatch to the traders, wait for every ack) per bar, with 10 pairs trading the
5-minute shared data: median and p90 in ms per bar.

``hurst-gate`` prints the random-walk null quantiles of the R/S estimator and how often gates
reject bars on the shared data (pairs' Kalman spreads and single legs, which are near random walks).

Data: XOM/CVX 5-minute closes from ``../shared/data`` when present, else a simulated cointegrated
pair (stated in the output).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PAIRTRADE_SHARED_DATA", ROOT.parent / "shared" / "data"))
EQUITIES_5MIN = "us_equities_5min_ibkr_15sym_2025-05-12_to_2025-12-31.csv.gz"
CHAN_ETF = "chan_inputData_ETF_close_EWA_EWC_IGE_GLD_GDX_USO_SPY_2006-04-26_to_2012-04-09.csv"
KO_PEP = "ko_pep_daily_1977-01-03_to_2008-01-18.csv"


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def _load_5min(symbols: list[str]):
    import pandas as pd

    path = SHARED / EQUITIES_5MIN
    if not path.exists():
        return None
    df = pd.read_csv(path)
    df = df[df["symbol"].isin(symbols)]
    t = pd.to_datetime(df["datetime"])
    df = df[(t.dt.time >= pd.Timestamp("09:30").time()) & (t.dt.time < pd.Timestamp("16:00").time())]
    wide = df.pivot(index="datetime", columns="symbol", values="close").dropna()
    return wide


def pair_closes(n_min: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(y, x, description): XOM/CVX 5-min regular-hours closes, or a simulated pair."""
    wide = _load_5min(["XOM", "CVX"])
    if wide is not None and len(wide) >= n_min:
        return wide["XOM"].to_numpy(float), wide["CVX"].to_numpy(float), f"XOM/CVX 5-min closes ({len(wide)} bars, shared data)"
    rng = np.random.default_rng(7)
    n = max(n_min, 5000)
    x = 100 + np.cumsum(rng.standard_normal(n) * 0.2)
    y = 0.8 * x + 10 + np.cumsum(rng.standard_normal(n) * 0.02) + rng.standard_normal(n) * 0.1
    return y, x, f"simulated cointegrated pair ({n} bars; shared data absent)"


# ----------------------------------------------------------------------------------------------
# recompute baseline
# ----------------------------------------------------------------------------------------------
def kalman_numpy(y: np.ndarray, x: np.ndarray, delta: float = 1e-4, ve: float = 1e-3) -> np.ndarray:
    """Chan's KF_beta_EWA_EWC loop in plain NumPy over all bars; returns the forecast errors e."""
    n = len(y)
    vw = delta / (1 - delta) * np.eye(2)
    theta = np.zeros(2)
    P = np.zeros((2, 2))
    R = np.zeros((2, 2))
    e = np.empty(n)
    for t in range(n):
        if t > 0:
            R = P + vw
        h = np.array([x[t], 1.0])
        q = h @ R @ h + ve
        e[t] = y[t] - h @ theta
        k = R @ h / q
        theta = theta + k * e[t]
        P = R - np.outer(k, h) @ R
    return e


def recompute_bar(y_buf: np.ndarray, x_buf: np.ndarray, zw: int = 78, hw: int = 100) -> tuple:
    """Signals of the last bar recomputed from the whole buffer the usual way."""
    import warnings

    import hurst
    import pandas as pd
    import statsmodels.api as sm
    from statsmodels.tsa.stattools import adfuller

    e = kalman_numpy(y_buf, x_buf)
    s = pd.Series(e)
    mean = s.rolling(zw).mean().iloc[-1]
    std = s.rolling(zw).std().iloc[-1]
    z = (e[-1] - mean) / std
    h = hurst.compute_Hc(e[-hw:], kind="random_walk", simplified=False)[0]
    ols = sm.OLS(y_buf, sm.add_constant(x_buf)).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = adfuller(e, autolag="AIC", result_object=True).pvalue
    return z, h, p, ols.params[1]


# ----------------------------------------------------------------------------------------------
# signals benchmark
# ----------------------------------------------------------------------------------------------
def _median_us(samples_ns: list[int]) -> float:
    return float(np.median(samples_ns)) / 1000.0


def _time_engine(y, x, adf_window: int, n_bars: int) -> dict:
    from pairtrade.config import StrategyParams
    from pairtrade.signals.pipeline import SignalEngine

    params = StrategyParams(adf_window_bars=adf_window, warmup_bars=adf_window)
    warm = adf_window + 10
    eng = SignalEngine(params)
    eng.warm_up(y[:warm], x[:warm])
    ts = []
    upd = eng.update
    pc = time.perf_counter_ns
    for i in range(warm, min(len(y), warm + n_bars)):
        t0 = pc()
        upd(y[i], x[i])
        ts.append(pc() - t0)
    return {"median_us": _median_us(ts), "p90_us": float(np.percentile(ts, 90)) / 1000.0, "bars": len(ts)}


def _time_components(y, x, n_bars: int) -> dict:
    from pairtrade.signals import KalmanHedge, RollingADF, RollingHurst, RollingZScore

    kf, zs, hu, ad = KalmanHedge(), RollingZScore(78), RollingHurst(100), RollingADF(390)
    spreads = []
    for i in range(400):
        e = kf.update(y[i], x[i])[2]
        spreads.append(e)
        zs.update(e)
        hu.update(e)
        ad.update(e)
    res = {}
    pc = time.perf_counter_ns
    for name, fn in (
        ("kalman", lambda i: kf.update(y[i], x[i])),
        ("zscore_78", lambda i: zs.update(y[i] - x[i])),
        ("hurst_100", lambda i: hu.update(y[i] - x[i])),
        ("adf_390", lambda i: ad.update(y[i] - x[i])),
    ):
        ts = []
        for i in range(400, min(len(y), 400 + n_bars)):
            t0 = pc()
            fn(i)
            ts.append(pc() - t0)
        res[name] = _median_us(ts)
    return res


def _time_baseline(y, x, buf: int, n_bars: int) -> float:
    ts = []
    recompute_bar(y[:buf], x[:buf])  # imports
    for k in range(n_bars):
        end = buf + k
        t0 = time.perf_counter_ns()
        recompute_bar(y[end - buf : end], x[end - buf : end])
        ts.append(time.perf_counter_ns() - t0)
    return _median_us(ts)


_COLD_SNIPPET = r"""
import time
t0 = time.perf_counter()
import numpy as np
from pairtrade.config import StrategyParams
from pairtrade.signals.pipeline import SignalEngine
t1 = time.perf_counter()
rng = np.random.default_rng(0)
x = 100 + np.cumsum(rng.standard_normal(391) * 0.2)
y = 0.8 * x + 10 + rng.standard_normal(391) * 0.1
eng = SignalEngine(StrategyParams())
eng.warm_up(y[:390], x[:390])
snap = eng.update(y[390], x[390])
t2 = time.perf_counter()
import json
print(json.dumps({"import_s": t1 - t0, "warmup_first_decision_s": t2 - t1, "total_s": t2 - t0,
                  "adf_pvalue": snap.adf_pvalue}))
"""


def cold_start() -> dict:
    """Run the cold-start snippet twice in fresh interpreters (1st fills the JIT cache)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = []
    for _ in range(2):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", _COLD_SNIPPET], capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"cold-start subprocess failed:\n{r.stderr}")
        d = json.loads(r.stdout.strip().splitlines()[-1])
        d["process_wall_s"] = wall
        out.append(d)
    return {"first_run": out[0], "warm_cache": out[1]}


def bench_signals(n_bars: int = 2000, baseline_bars: int = 15) -> dict:
    y, x, desc = pair_closes(n_min=4000)
    print(f"data: {desc}")
    res = {"data": desc}
    # compile / load every kernel before timing
    _time_engine(y, x, 390, 5)
    _time_engine(y, x, 1500, 5)
    comp = _time_components(y, x, n_bars)
    res["components_median_us"] = comp
    print("streaming components, median per bar: " + ", ".join(f"{k} {v:.2f} us" for k, v in comp.items()))
    for buf in (390, 1500):
        inc = _time_engine(y, x, buf, n_bars)
        base = _time_baseline(y, x, buf, baseline_bars)
        ratio = base / inc["median_us"]
        res[f"window_{buf}"] = {"incremental": inc, "recompute_median_us": base, "ratio": ratio}
        print(
            f"window {buf:5d} bars: incremental update median {inc['median_us']:8.2f} us (p90 {inc['p90_us']:.2f}, "
            f"{inc['bars']} bars) | recompute median {base / 1000:8.2f} ms ({baseline_bars} bars) | ratio {ratio:,.0f}x"
        )
    # compute_signals throughput
    from pairtrade.config import StrategyParams
    from pairtrade.signals.pipeline import compute_signals

    n = min(len(y), 15000)
    compute_signals(y[:500], x[:500], StrategyParams())
    t0 = time.perf_counter()
    compute_signals(y[:n], x[:n], StrategyParams())
    dt = time.perf_counter() - t0
    res["compute_signals"] = {"bars": n, "seconds": dt}
    print(f"compute_signals over {n} bars: {dt:.3f} s ({dt / n * 1e6:.1f} us/bar)")
    cs = cold_start()
    res["cold_start"] = cs
    w = cs["warm_cache"]
    print(
        f"cold start (fresh process, warm JIT cache): import {w['import_s']:.3f} s + engine warm-up to first "
        f"decision {w['warmup_first_decision_s']:.3f} s = {w['total_s']:.3f} s (process wall {w['process_wall_s']:.3f} s); "
        f"first of the two runs (compiles only what the on-disk cache lacks): {cs['first_run']['total_s']:.2f} s"
    )
    ok = (
        res["window_390"]["incremental"]["median_us"] <= 50
        and res["window_390"]["ratio"] >= 100
        and res["window_1500"]["ratio"] >= 1000
        and w["total_s"] < 2.0
    )
    print("targets (<= 50 us, >= 100x @390, >= 1000x @1500, cold start < 2 s):", "MET" if ok else "NOT MET")
    return res


# ----------------------------------------------------------------------------------------------
# Hurst gate on the shared data
# ----------------------------------------------------------------------------------------------
def _gate_series() -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    import pandas as pd

    out = []
    wide = _load_5min(["XOM", "CVX", "GS", "MS", "JPM", "BAC", "SPY", "QQQ", "XLE", "XLF", "GDX", "NUGT"])
    if wide is not None:
        for a, b in (("XOM", "CVX"), ("GS", "MS"), ("JPM", "BAC"), ("SPY", "QQQ"), ("XLE", "XLF"), ("NUGT", "GDX")):
            out.append((f"{a}/{b} 5-min", wide[a].to_numpy(float), wide[b].to_numpy(float)))
    if (SHARED / CHAN_ETF).exists():
        df = pd.read_csv(SHARED / CHAN_ETF)
        out.append(("EWC/EWA daily", df["EWC"].to_numpy(float), df["EWA"].to_numpy(float)))
    if (SHARED / KO_PEP).exists():
        df = pd.read_csv(SHARED / KO_PEP)
        out.append(("KO/PEP daily", df["ko"].to_numpy(float), df["pep"].to_numpy(float)))
    return out


def bench_hurst_gate(window: int = 100, qs: tuple[float, ...] = (0.05, 0.10, 0.50)) -> dict:
    from pairtrade.config import StrategyParams
    from pairtrade.signals.hurst import DEFAULT_HURST_GATE_Q, hurst_null_distribution, hurst_null_quantile
    from pairtrade.signals.pipeline import compute_signals

    null = hurst_null_distribution(window)
    gates = {f"q{q:g}": hurst_null_quantile(window, q) for q in qs}
    gates["fixed 0.8"] = 0.8
    print(f"R/S Hurst null (Gaussian random walk, {window} levels, {null.size} sims): median {np.median(null):.4f}, "
          f"5% {np.quantile(null, 0.05):.4f}, 95% {np.quantile(null, 0.95):.4f}; random walks passing H < 0.8: "
          f"{(null < 0.8).mean():.1%}")
    for w2 in (390,):
        n2 = hurst_null_distribution(w2)
        print(f"  ({w2} levels: median {np.median(n2):.4f}, 95% {np.quantile(n2, 0.95):.4f})")
    print("gate thresholds: " + ", ".join(f"{k} = {v:.4f}" for k, v in gates.items())
          + f"  (default q = {DEFAULT_HURST_GATE_Q})")
    params = StrategyParams(hurst_window_bars=window)
    rows = {}
    header = f"{'series':24s} {'bars':>7s} " + " ".join(f"{k:>10s}" for k in gates)
    print("share of bars whose Hurst >= gate (entry rejected):")
    print(header)
    from pairtrade.signals import RollingHurst

    for name, yv, xv in _gate_series():
        sig = compute_signals(yv, xv, params)
        h = sig["hurst"][~np.isnan(sig["hurst"])]
        rows[name + " Kalman spread"] = {k: float((h >= g).mean()) for k, g in gates.items()}
        print(f"{name + ' spread':24s} {h.size:7d} " + " ".join(f"{float((h >= g).mean()):10.1%}" for g in gates.values()))
        for leg, v in (("y", yv),):
            rh = RollingHurst(window)
            hl = np.array([rh.update(p) for p in v])
            hl = hl[~np.isnan(hl)]
            rows[f"{name} leg {leg}"] = {k: float((hl >= g).mean()) for k, g in gates.items()}
            print(f"{name + ' leg y price':24s} {hl.size:7d} " + " ".join(f"{float((hl >= g).mean()):10.1%}" for g in gates.values()))
    return {"gates": gates, "rejected_share": rows}


# ----------------------------------------------------------------------------------------------
# null: does the optimizer reject noise and find cointegration?
# ----------------------------------------------------------------------------------------------
#: grid name -> (bar size, default sessions, true half-lives of the cointegrated pairs in bars)
NULL_GRIDS = {"5min": ("5Min", 185, (10, 20, 40, 80, 160)), "daily": ("1Day", 3024, (2, 5, 10, 20, 40))}


def _null_call(kw: dict) -> dict:
    from pairtrade.research.simulate import null_trial

    return null_trial(**kw)


def _wilson(k: int, n: int) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return float(lo), float(hi)


def _median(v: list) -> float | None:
    v = [float(a) for a in v if a is not None and np.isfinite(a)]
    return float(np.median(v)) if v else None


def bench_null(n_pairs: int = 200, grids: tuple[str, ...] = ("5min", "daily"),
               sessions: dict[str, int] | None = None, jobs: int = 2, seed: int = 2024,
               quiet: bool = False) -> dict:
    """Run the optimizer (CLI defaults) on simulated noise and cointegrated pairs; print the verdict shares.

    For each grid of :data:`NULL_GRIDS` (5-minute bars over 185 XNYS sessions ~ 14,400 bars; daily bars over
    3,024 sessions ~ 12 years), ``n_pairs`` pairs of independent geometric random walks and ``n_pairs``
    cointegrated pairs (true half-lives cycled over the grid's five values) are simulated with fixed seeds
    (:mod:`pairtrade.research.simulate`) and passed to
    :func:`pairtrade.backtest.optimize.optimize_pair` with the settings of ``optimizer.py`` without options
    (:func:`~pairtrade.research.simulate.optimizer_defaults`).  Printed: the share of noise pairs marked
    tradable (the false-selection rate, goal <= 5 %, with a Wilson 95 % interval) and the reasons tally;
    the share of cointegrated pairs found, by half-life, with the median walk-forward out-of-sample Sharpe
    ratio (annualised) of the found ones and the main reason of the misses; wall time.

    Parameters
    ----------
    n_pairs : pairs of each kind per grid (>= 1)
    grids : subset of ``("5min", "daily")``
    sessions : sessions per grid (default 185 and 3024)
    jobs : worker processes (1 runs in this process)
    seed : base seed; pair i of kind k on grid g uses ``[seed, g, k, i]``

    Returns
    -------
    dict: per grid the per-pair records and the summary figures, plus ``markdown`` (the tables printed).

    Raises
    ------
    ValueError
        ``n_pairs`` or ``jobs`` < 1, an unknown grid, sessions < 2.
    """
    import multiprocessing as mp
    from collections import Counter

    from tqdm import tqdm

    from pairtrade.research.simulate import optimizer_defaults

    if n_pairs < 1 or jobs < 1:
        raise ValueError(f"--pairs and --jobs: expected >= 1, got {n_pairs} and {jobs}")
    bad = [g for g in grids if g not in NULL_GRIDS]
    if bad or not grids:
        raise ValueError(f"--grid: expected one of {', '.join(NULL_GRIDS)} or both, got {list(grids)}")
    sessions = {g: (sessions or {}).get(g) or NULL_GRIDS[g][1] for g in grids}
    for g, n in sessions.items():
        if n < 2:
            raise ValueError(f"sessions of grid {g}: expected >= 2, got {n}")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # one thread per worker (read by the spawned interpreters)
    pool = mp.get_context("spawn").Pool(jobs) if jobs > 1 else None
    res: dict = {"pairs_per_kind": n_pairs, "seed": seed, "jobs": jobs, "grids": {}}
    overview, by_hl, tallies = [], [], []
    try:
        for gi, g in enumerate(grids):
            bar_size, _, hls = NULL_GRIDS[g]
            setup = optimizer_defaults(bar_size)
            n_sess = sessions[g]
            tasks = [dict(kind="coint", n_sessions=n_sess, bar_size=bar_size, seed=[seed, gi, 1, i],
                          half_life_bars=float(hls[i % len(hls)])) for i in range(n_pairs)]
            tasks += [dict(kind="rw", n_sessions=n_sess, bar_size=bar_size, seed=[seed, gi, 0, i])
                      for i in range(n_pairs)]
            t0 = time.perf_counter()
            it = pool.imap_unordered(_null_call, tasks, chunksize=1) if pool else map(_null_call, tasks)
            recs = list(tqdm(it, total=len(tasks), desc=f"null {g}", unit="pair", disable=quiet, file=sys.stderr))
            wall = time.perf_counter() - t0
            noise = [r for r in recs if r["kind"] == "rw"]
            coint = [r for r in recs if r["kind"] == "coint"]
            k_noise = sum(r["tradable"] for r in noise)
            eg_noise = sum(r["label"] != "not cointegrated (Engle-Granger)" for r in noise)
            k_coint = sum(r["tradable"] for r in coint)
            lo, hi = _wilson(k_noise, len(noise))
            sh_found = _median([r["oos_sharpe"] for r in coint if r["tradable"]])
            bars = recs[0]["bars"]
            summ = {"bar_size": bar_size, "sessions": n_sess, "bars_per_pair": bars, "wall_s": wall,
                    "noise_tradable": k_noise, "noise_tradable_share": k_noise / len(noise),
                    "noise_tradable_wilson95": [lo, hi], "noise_pass_engle_granger": eg_noise,
                    "noise_reasons": dict(Counter(r["label"] for r in noise).most_common()),
                    "coint_found": k_coint, "coint_found_share": k_coint / len(coint),
                    "coint_reasons": dict(Counter(r["label"] for r in coint).most_common()),
                    "median_oos_sharpe_found": sh_found,
                    "median_seconds_noise": _median([r["seconds"] for r in noise]),
                    "median_seconds_coint": _median([r["seconds"] for r in coint]),
                    "walk_forward": f"{setup.sel.is_sessions}/{setup.sel.oos_sessions} sessions",
                    "trials": len(setup.variants) * len(setup.grid), "by_half_life": {}}
            overview.append(
                f"| {g} ({bar_size}, {n_sess} sessions, {bars:,} bars) | {k_noise}/{len(noise)} = "
                f"{k_noise / len(noise):.1%} [{lo:.1%}, {hi:.1%}] | {eg_noise / len(noise):.1%} | "
                f"{k_coint}/{len(coint)} = {k_coint / len(coint):.1%} | {_fmt(sh_found)} | {wall:.0f} s |")
            for hl in hls:
                rs = [r for r in coint if r["half_life"] == float(hl)]
                if not rs:
                    continue
                found = [r for r in rs if r["tradable"]]
                eg = sum(r["label"] != "not cointegrated (Engle-Granger)" for r in rs)
                miss = Counter(r["label"] for r in rs if not r["tradable"]).most_common(1)
                row = {"pairs": len(rs), "found": len(found), "pass_engle_granger": eg,
                       "median_oos_sharpe_found": _median([r["oos_sharpe"] for r in found]),
                       "median_oos_sharpe_all": _median([r["oos_sharpe"] for r in rs]),
                       "median_half_life_est": _median([r["half_life_est"] for r in rs]),
                       "main_miss_reason": f"{miss[0][0]} ({miss[0][1]})" if miss else "-"}
                summ["by_half_life"][str(hl)] = row
                by_hl.append(f"| {g} | {hl} | {_fmt(row['median_half_life_est'], '.1f')} | {eg}/{len(rs)} | "
                             f"{len(found)}/{len(rs)} = {len(found) / len(rs):.0%} | "
                             f"{_fmt(row['median_oos_sharpe_found'])} | {_fmt(row['median_oos_sharpe_all'])} | "
                             f"{row['main_miss_reason']} |")
            tallies.append(f"{g} noise pairs: " + ", ".join(f"{k} {v}" for k, v in summ["noise_reasons"].items()))
            tallies.append(f"{g} cointegrated pairs: "
                           + ", ".join(f"{k} {v}" for k, v in summ["coint_reasons"].items()))
            res["grids"][g] = {"summary": summ, "pairs": recs}
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    md = ["| grid | noise pairs tradable [Wilson 95 %] | noise pairs passing Engle-Granger | cointegrated pairs "
          "found | median OOS Sharpe of found | wall time |", "|---|---|---|---|---|---|", *overview, "",
          "| grid | true half-life (bars) | estimated (median) | Engle-Granger rejects | found | median OOS Sharpe "
          "(found) | median OOS Sharpe (all) | main reason when missed |", "|---|---|---|---|---|---|---|---|",
          *by_hl]
    s0 = next(iter(res["grids"].values()))["summary"]
    print(f"null bench: {n_pairs} random-walk + {n_pairs} cointegrated pairs per grid, seed {seed}, {jobs} "
          f"worker(s); optimizer CLI defaults (--hedge ols --prices log --zscore rolling, per-bar gates off, "
          f"{s0['trials']} trials; walk-forward " + ", ".join(
              f"{g} {res['grids'][g]['summary']['walk_forward']}" for g in res["grids"]) + ")")
    print("\n".join(md))
    print()
    print("\n".join(tallies))
    for g, d in res["grids"].items():
        s1 = d["summary"]
        print(f"{g}: median optimize_pair time {_fmt(s1['median_seconds_noise'])} s (noise), "
              f"{_fmt(s1['median_seconds_coint'])} s (cointegrated); wall {s1['wall_s']:.0f} s")
    res["markdown"] = "\n".join(md)
    return res


# ----------------------------------------------------------------------------------------------
# soak: faults of every kind against the daemon (pairtrade.live.soak)
# ----------------------------------------------------------------------------------------------
def bench_soak(faults: int = 200, seed: int = 1, pairs: str | None = None, **kw) -> dict | None:
    """Run :func:`pairtrade.live.soak.run_soak`; print the table by fault kind and the one-line verdict.

    Parameters
    ----------
    faults : faults to inject at least (exchange firings + kills)
    seed : seed of the fault plan
    pairs : ``"Y/X,Y/X,..."`` (default JPM/BAC, BAC/C, XOM/CVX, GS/MS)
    **kw : other :class:`~pairtrade.live.soak.SoakConfig` fields

    Returns
    -------
    dict or None
        The figures (:class:`~pairtrade.live.soak.SoakResult` as a dict); None when the bars file is absent
        (a message says so).

    Raises
    ------
    ValueError
        A setting out of range; ``SoakError`` when a process would not start or the replay stalled.
    """
    import dataclasses

    from pairtrade.live.soak import DEFAULT_PAIRS, SoakConfig, data_path, parse_pairs, run_soak

    cfg = SoakConfig(faults=faults, seed=seed, pairs=parse_pairs(pairs) if pairs else DEFAULT_PAIRS, **kw)
    cfg.validate()
    if data_path(cfg.data) is None:
        print(f"soak skipped: the bars file {cfg.data or SHARED / EQUITIES_5MIN} is absent (it replays real "
              f"5-minute bars; set PAIRTRADE_SHARED_DATA or --data)")
        return None
    res = run_soak(cfg)
    print()
    print(res.table())
    print()
    d = res.details
    print(f"{res.bars} bars, {res.episodes} episodes, {d['controller_starts']} controller starts, {d['orders']} orders, "
          f"{d['fills']} fills, {d['one_legged_spells']} one-legged spells (longest {d['longest_spell_bars']} bars), "
          f"{len(res.checks)} ledger checks, {res.wall_secs:.0f} s; duplicated client_order_ids "
          f"{d['duplicate_client_order_ids']}, duplicated trades {d['duplicate_trades']}")
    for line in res.incidents:
        print(f"incident: {line}")
    if not res.clean:
        print(f"files kept in {res.workdir}")
    print(res.line())
    return dataclasses.asdict(res)


# ----------------------------------------------------------------------------------------------
# replay: the controller's lockstep loop per bar
# ----------------------------------------------------------------------------------------------
#: pairs of the shared 5-minute file timed by ``replay`` (the first ``--pairs`` are used)
REPLAY_PAIRS = (("XOM", "CVX"), ("GS", "MS"), ("JPM", "BAC"), ("BAC", "C"), ("XLE", "XOM"), ("XLF", "JPM"),
                ("SPY", "QQQ"), ("NUGT", "GDX"), ("SOXL", "SOXS"), ("XLF", "BAC"), ("C", "JPM"), ("MS", "JPM"))

_REPLAY_SNIPPET = r"""
import json, sys, time
from pairtrade.exchange import server
from pairtrade.live import controller
marks = []
orig = server.LocalExchange.advance
def advance(self, *a, **k):
    marks.append(time.perf_counter())
    return orig(self, *a, **k)
server.LocalExchange.advance = advance
code = controller.main(sys.argv[1:])
print("REPLAY-TIMES " + json.dumps({"code": code, "marks": marks}), flush=True)
"""


def bench_replay(n_pairs: int = 10, bars: int = 780, start: str = "2025-12-01T14:30:00", skip: int = 5,
                 workdir: Path | None = None) -> dict | None:
    """Time the controller's lockstep replay loop per bar with ``n_pairs`` traders on the shared 5-minute bars.

    ``controller.py --data FILE`` (in-process local exchange, one trader process per pair, the
    parameters of ``tests/test_live.py``: entry at |z| >= 2, exit 0.5, stop 4, z-score over 78 bars, ADF
    over 390, warm-up from the data's first bar) replays ``bars`` bar timestamps from ``start``; the
    time between two successive ``LocalExchange.advance`` calls is one bar of the loop (advance and
    fills, bars over the websocket, dispatch, every trader's ack, the equity row).  The first ``skip``
    bars are left out.

    Parameters
    ----------
    n_pairs : pairs timed, 1 .. len(REPLAY_PAIRS) (the first ones of :data:`REPLAY_PAIRS`)
    bars : bar timestamps replayed (>= skip + 10)
    start : replay start (ISO, UTC)
    skip : first bars not timed
    workdir : where the run records go (default: a temporary folder, removed)

    Returns
    -------
    dict or None
        ``median_ms``, ``p90_ms``, ``mean_ms``, ``max_ms`` (per bar), ``bars_timed``, ``pairs``, ``orders``,
        ``trades``, ``bars_with_orders`` and the medians of the bars with and without orders (a bar whose
        traders submit orders waits for their REST round trips); None when the bars file is absent.

    Raises
    ------
    ValueError
        ``n_pairs`` or ``bars`` out of range; RuntimeError when the controller fails.
    """
    import shutil
    import tempfile

    if not 1 <= n_pairs <= len(REPLAY_PAIRS):
        raise ValueError(f"--pairs: expected 1..{len(REPLAY_PAIRS)}, got {n_pairs}")
    if bars < skip + 10:
        raise ValueError(f"--bars: expected >= {skip + 10}, got {bars}")
    data = SHARED / EQUITIES_5MIN
    if not data.exists():
        print(f"replay skipped: the bars file {data} is absent")
        return None
    import pandas as pd

    from pairtrade.config import SCHEMA_VERSION, CostModel, ParamsFile, StrategyParams, atomic_write_json
    from pairtrade.data.bars import load_bars, regular_hours

    pairs = REPLAY_PAIRS[:n_pairs]
    symbols = sorted({s for p in pairs for s in p})
    bs = load_bars(str(data), symbols=symbols)
    t0 = pd.Timestamp(start, tz="UTC") if pd.Timestamp(start).tz is None else pd.Timestamp(start)
    idx = pd.DatetimeIndex([])
    for s in symbols:
        idx = idx.union(regular_hours(bs.require(s), bs.bar_size).index)
    idx = idx[idx >= t0]
    if len(idx) < bars:
        raise ValueError(f"--bars {bars}: only {len(idx)} bars from {start} in {data.name}")
    end = idx[bars - 1]
    own = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="pairtrade-replay-")) if own else Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    try:
        params = StrategyParams(entry_z=2.0, exit_z=0.5, stop_z=4.0, zscore_window_bars=78, adf_window_bars=390,
                                hurst_window_bars=100, warmup_bars=390)
        pf = ParamsFile(schema_version=SCHEMA_VERSION, generated_at="2026-01-01T00:00:00+00:00", bar_size="5Min",
                        data={"source": "replay bench", "start": "2025-05-12T13:30:00+00:00",
                              "end": (t0 - pd.Timedelta(minutes=5)).isoformat()},
                        costs=CostModel(),
                        pairs={f"{y}-{x}": {"y": y, "x": x, "tradable": True, "params": params} for y, x in pairs})
        atomic_write_json(wd / "params.json", pf)
        (wd / "pairs.json").write_text(json.dumps({"pairs": [{"y": y, "x": x} for y, x in pairs]}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM")}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, "-c", _REPLAY_SNIPPET, "--data", str(data), "--pairs", str(wd / "pairs.json"),
               "--params", str(wd / "params.json"), "--run-dir", str(wd / "run"), "--start", t0.isoformat(),
               "--end", end.isoformat(), "--env-file", str(wd / "no.env")]
        wall = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=wd, env=env, timeout=1800)
        wall = time.perf_counter() - wall
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("REPLAY-TIMES ")]
        if r.returncode != 0 or not line:
            raise RuntimeError(f"controller failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
        marks = np.asarray(json.loads(line[-1].split(" ", 1)[1])["marks"])
        summary = json.loads((wd / "run" / "summary.json").read_text())
        # bars whose dispatch placed orders (the traders' REST submits are inside the loop)
        clocks = pd.to_datetime(pd.read_csv(wd / "run" / "equity.csv")["timestamp"], utc=True)
        step = pd.Timedelta(minutes=5)
        with_orders = set()
        for ln in (wd / "run" / "events.jsonl").read_text().splitlines():
            e = json.loads(ln)
            if e.get("event") == "order" and e.get("t") not in (None, "None"):
                with_orders.add(pd.Timestamp(e["t"]) + step)
        busy = np.array([c in with_orders for c in clocks])
    finally:
        if own:
            shutil.rmtree(wd, ignore_errors=True)
    per_bar_all = np.diff(marks) * 1000.0       # bar i: from its advance to the next advance
    per_bar = per_bar_all[skip:]
    busy = busy[: per_bar_all.size][skip:] if busy.size >= per_bar_all.size else np.zeros(per_bar.size, bool)
    quiet = per_bar[~busy]
    res = {"pairs": [f"{y}-{x}" for y, x in pairs], "bars_replayed": int(summary["bars_replayed"]),
           "bars_timed": int(per_bar.size), "median_ms": float(np.median(per_bar)),
           "p90_ms": float(np.percentile(per_bar, 90)), "mean_ms": float(per_bar.mean()),
           "max_ms": float(per_bar.max()), "orders": summary["orders"], "trades": summary["trades"],
           "process_wall_s": wall, "replay": f"{t0} .. {end}", "bars_with_orders": int(busy.sum()),
           "median_ms_bars_without_orders": float(np.median(quiet)) if quiet.size else None,
           "median_ms_bars_with_orders": float(np.median(per_bar[busy])) if busy.any() else None}
    print(f"lockstep replay, {n_pairs} pairs ({', '.join(res['pairs'])}), {res['bars_timed']} bars timed of "
          f"{res['bars_replayed']} ({res['replay']}), {res['orders']} orders, {res['trades']} round trips:")
    print(f"controller loop per bar: median {res['median_ms']:.2f} ms, p90 {res['p90_ms']:.2f} ms, mean "
          f"{res['mean_ms']:.2f} ms, max {res['max_ms']:.1f} ms (goal: median <= 3 ms: "
          f"{'MET' if res['median_ms'] <= 3.0 else 'NOT MET'}); process wall {wall:.1f} s")
    print(f"  {res['bars_with_orders']} bars placed orders (median {_fmt(res['median_ms_bars_with_orders'])} ms), "
          f"{per_bar.size - res['bars_with_orders']} did not (median {_fmt(res['median_ms_bars_without_orders'])} ms)")
    return res


def _fmt(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pairtrade.bench", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("signals", help="per-bar cost of the signal core vs recomputing; cold start")
    s.add_argument("--bars", type=int, default=2000, help="bars timed for the incremental engine")
    s.add_argument("--baseline-bars", type=int, default=15, help="bars timed for the recompute baseline")
    s.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    g = sub.add_parser("hurst-gate", help="null quantiles of R/S Hurst and gate rejection on shared data")
    g.add_argument("--window", type=int, default=100)
    g.add_argument("--q", type=float, nargs="*", default=[0.05, 0.10, 0.50])
    n = sub.add_parser("null", help="optimizer on simulated random-walk and cointegrated pairs")
    n.add_argument("--pairs", type=int, default=200, help="pairs of each kind per grid")
    n.add_argument("--grid", choices=("5min", "daily", "both"), default="both")
    n.add_argument("--sessions-5min", type=int, default=NULL_GRIDS["5min"][1], help="sessions of the 5-min grid")
    n.add_argument("--sessions-daily", type=int, default=NULL_GRIDS["daily"][1], help="sessions of the daily grid")
    n.add_argument("--jobs", type=int, default=2, help="worker processes")
    n.add_argument("--seed", type=int, default=2024)
    n.add_argument("--quiet", action="store_true", help="no progress bar")
    n.add_argument("--json", type=Path, default=None, help="also write the figures and per-pair records here")
    k = sub.add_parser("soak", help="faults of every kind against controller.py and its traders; ledger checks")
    k.add_argument("--faults", type=int, default=200, help="faults to inject at least (exchange firings + kills)")
    k.add_argument("--seed", type=int, default=1, help="seed of the fault plan")
    k.add_argument("--pairs", default=None, help="Y/X pairs separated by commas (>= 4, two sharing a leg; default "
                                                 "JPM/BAC,BAC/C,XOM/CVX,GS/MS)")
    k.add_argument("--episode-bars", type=int, default=40, help="bars with faults armed per episode")
    k.add_argument("--settle-bars", type=int, default=8, help="calm bars after each episode, before its check")
    k.add_argument("--grace-bars", type=int, default=3,
                   help="bars a pair may stay one-legged with nothing working on it")
    k.add_argument("--crash-between-legs-every", type=int, default=3,
                   help="every this many controller starts the traders crash once between the legs of an entry "
                        "(0: never)")
    k.add_argument("--data", default=None, help="5-minute bars file (default: the shared IBKR equities file)")
    k.add_argument("--start", default="2025-09-02T13:30:00", help="replay start (ISO, UTC)")
    k.add_argument("--workdir", default=None, help="folder for the exchange state, run records and logs "
                                                   "(default: a temporary one, removed after a clean soak)")
    k.add_argument("--keep", action="store_true", help="keep the workdir after a clean soak")
    k.add_argument("--json", type=Path, default=None, help="also write the figures here")
    r = sub.add_parser("replay", help="controller's lockstep loop time per bar with 10 pairs")
    r.add_argument("--pairs", type=int, default=10, help=f"pairs (1..{len(REPLAY_PAIRS)})")
    r.add_argument("--bars", type=int, default=780, help="bar timestamps replayed")
    r.add_argument("--start", default="2025-12-01T14:30:00", help="replay start (ISO, UTC)")
    r.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = ap.parse_args(argv)
    if a.cmd == "soak":
        from pairtrade.live.soak import SoakError

        try:
            res = bench_soak(a.faults, a.seed, a.pairs, episode_bars=a.episode_bars, settle_bars=a.settle_bars,
                             grace_bars=a.grace_bars, crash_between_legs_every=a.crash_between_legs_every,
                             data=a.data, start=a.start, workdir=a.workdir, keep=a.keep)
        except (ValueError, SoakError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if res is None:
            return 0
        if a.json:
            a.json.write_text(json.dumps(res, indent=2, default=str))
        from pairtrade.live.soak import LINE_FIELDS

        return 0 if all(res[f] == 0 for f in LINE_FIELDS) and not res["incidents"] else 1
    if a.cmd == "replay":
        try:
            res = bench_replay(a.pairs, a.bars, a.start)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if res is not None and a.json:
            a.json.write_text(json.dumps(res, indent=2))
        return 0
    if a.cmd == "signals":
        res = bench_signals(a.bars, a.baseline_bars)
        if a.json:
            a.json.write_text(json.dumps(res, indent=2, default=float))
    elif a.cmd == "null":
        grids = ("5min", "daily") if a.grid == "both" else (a.grid,)
        try:
            res = bench_null(a.pairs, grids, {"5min": a.sessions_5min, "daily": a.sessions_daily}, a.jobs, a.seed,
                             a.quiet)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if a.json:
            a.json.write_text(json.dumps(res, indent=2, default=float))
    else:
        bench_hurst_gate(a.window, tuple(a.q))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
