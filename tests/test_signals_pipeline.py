"""SignalEngine / compute_signals: equal to each other and to independent oracles on real data.

Also runs the kernels with numba switched off (PAIRTRADE_DISABLE_NUMBA=1) in a subprocess and
compares with the compiled results.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from functools import lru_cache
from pathlib import Path

import hurst
import numpy as np
import pandas as pd
import pytest
from statsmodels.tsa.stattools import adfuller

from pairtrade.config import StrategyParams
from pairtrade.signals.pipeline import SIGNAL_KEYS, SignalEngine, SignalSnapshot, compute_signals

ROOT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def _xom_cvx(path) -> tuple[np.ndarray, np.ndarray]:
    df = pd.read_csv(path)
    df = df[df["symbol"].isin(["XOM", "CVX"])]
    wide = df.pivot(index="datetime", columns="symbol", values="close").dropna()
    return wide["XOM"].to_numpy(float), wide["CVX"].to_numpy(float)


def test_engine_equals_compute_signals_and_oracles(equities_5min):
    y, x = _xom_cvx(equities_5min)
    y, x = y[:1300], x[:1300]
    p = StrategyParams(spread="forecast_error")  # Chan's signal; the gates are on the level spread
    sig = compute_signals(y, x, p)
    assert set(sig) == set(SIGNAL_KEYS) and all(v.shape == (1300,) for v in sig.values())
    eng = SignalEngine(p)
    snaps = np.array([tuple(eng.update(a, b)) for a, b in zip(y, x)])
    for i, k in enumerate(SIGNAL_KEYS):
        np.testing.assert_array_equal(snaps[:, i], sig[k], err_msg=k)  # bit-identical
    # warm-up then update == straight run
    eng2 = SignalEngine(p)
    last = eng2.warm_up(y[:1000], x[:1000])
    assert tuple(last) == tuple(snaps[999])
    s = eng2.update(y[1000], x[1000])
    assert isinstance(s, SignalSnapshot) and tuple(s) == tuple(snaps[1000])
    assert eng2.bars_seen == 1001
    # NaN exactly while a window is not full
    assert np.isnan(sig["zscore"][:77]).all() and np.isfinite(sig["zscore"][77:]).all()
    assert np.isnan(sig["hurst"][:99]).all() and np.isfinite(sig["hurst"][99:]).all()
    assert np.isnan(sig["adf_pvalue"][:389]).all() and np.isfinite(sig["adf_pvalue"][389:]).all()
    # oracles: Kalman (pykalman is tested in test_signals_kalman; here the NumPy loop of Chan's script)
    from pairtrade.bench import kalman_numpy

    np.testing.assert_allclose(sig["spread"], kalman_numpy(y, x, p.kalman_delta, p.kalman_ve), rtol=1e-10, atol=1e-10)
    spread = pd.Series(sig["spread"])
    m = spread.rolling(78).mean().to_numpy()
    sd = spread.rolling(78).std().to_numpy()
    np.testing.assert_allclose(sig["spread_std"], sd, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(sig["zscore"], (sig["spread"] - m) / sd, rtol=1e-8, atol=1e-9, equal_nan=True)
    # level spread: y_t - beta_{t|t-1} x_t, beta_{t|t-1} = the posterior of bar t-1 (no look-ahead)
    beta_prev = np.concatenate([[0.0], sig["beta"][:-1]])
    np.testing.assert_allclose(sig["level_spread"], y - beta_prev * x, rtol=1e-12, atol=1e-12)
    for t in (389, 700, 1299):
        w = sig["level_spread"][t - 99 : t + 1]
        assert sig["hurst"][t] == pytest.approx(hurst.compute_Hc(w, kind="random_walk", simplified=False)[0], abs=1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = adfuller(sig["level_spread"][t - 389 : t + 1], autolag="AIC", result_object=True)
        assert abs(sig["adf_pvalue"][t] - ref.pvalue) <= 1e-10


def test_compute_signals_is_fast_enough(equities_5min):
    import time

    y, x = _xom_cvx(equities_5min)
    compute_signals(y[:500], x[:500], StrategyParams())
    t0 = time.perf_counter()
    compute_signals(y, x, StrategyParams())  # ~12,500 bars
    assert time.perf_counter() - t0 < 5.0  # ~0.2-0.4 s here; generous bound for a loaded CI box


def test_errors_and_flat_windows():
    p = StrategyParams(zscore_window_bars=5, hurst_window_bars=20, adf_window_bars=30)
    eng = SignalEngine(p)
    with pytest.raises(ValueError, match="finite"):
        eng.update(float("nan"), 1.0)
    assert eng.bars_seen == 0
    with pytest.raises(ValueError, match="equal lengths"):
        compute_signals([1.0, 2.0], [1.0], p)
    with pytest.raises(ValueError, match="index 1"):
        compute_signals([1.0, np.inf], [1.0, 2.0], p)
    assert eng.warm_up([], []) is None
    # y == x exactly (collinear legs): defined numbers, no exception
    x = 50 + np.cumsum(np.random.default_rng(0).standard_normal(200))
    sig = compute_signals(x, x, p)
    assert np.isfinite(sig["beta"]).all()
    # constant prices: flat spread windows give NaN z-score, Hurst and ADF (documented), never garbage
    sig = compute_signals(np.full(60, 10.0), np.full(60, 5.0), p)
    assert np.isfinite(sig["spread"]).all()


# ----------------------------------------------------------------------------------------------
# numba switched off: same results
# ----------------------------------------------------------------------------------------------
_NONUMBA_SNIPPET = r"""
import json, sys
import numpy as np
from pairtrade import _numba
from pairtrade.config import StrategyParams
from pairtrade.signals import adf, coint, hurst_alp, hurst_rs, kalman_hedge, mackinnonp, rolling_zscore
from pairtrade.signals.pipeline import compute_signals

rng = np.random.default_rng(42)
x = 40 + np.cumsum(rng.standard_normal(150))
u = np.zeros(150)
for i in range(1, 150):
    u[i] = 0.7 * u[i - 1] + rng.standard_normal()
y = 1.2 * x + 5 + u
out = {"numba_disabled": _numba.NUMBA_DISABLED}
out["kalman"] = [a.tolist() for a in kalman_hedge(y, x)]
out["adf"] = [[r.stat, r.pvalue, r.usedlag, r.nobs] for r in
              [adf(u[:80], reg, autolag=al) for reg in ("c", "n", "ct") for al in ("AIC", "BIC", "t-stat", None)]]
out["hurst"] = [hurst_rs(u[:60]), hurst_rs(u[:60], simplified=True), hurst_alp(u[:60])]
out["zscore"] = rolling_zscore(u, 10)[2].tolist()
out["mackinnonp"] = [mackinnonp(s, r, n) for s in (-5.0, -3.1, -1.0, 0.5) for r in ("n", "c", "ct") for n in (1, 2)]
c = coint(y, x)
out["coint"] = [c.stat, c.pvalue]
p = StrategyParams(zscore_window_bars=10, hurst_window_bars=30, adf_window_bars=40, warmup_bars=40)
sig = compute_signals(y, x, p)
out["pipeline"] = {k: v.tolist() for k, v in sig.items()}
print(json.dumps(out))
"""


def _run_snippet(disable: bool) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PAIRTRADE_DISABLE_NUMBA"] = "1" if disable else "0"
    r = subprocess.run([sys.executable, "-c", _NONUMBA_SNIPPET], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=240)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _close(a, b, rtol=1e-12, atol=1e-12):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


def test_numba_disabled_gives_same_results():
    plain = _run_snippet(disable=True)
    compiled = _run_snippet(disable=False)
    assert plain["numba_disabled"] is True and compiled["numba_disabled"] is False
    for key in ("kalman", "adf", "hurst", "zscore", "mackinnonp", "coint"):
        _close(plain[key], compiled[key])
    for k in SIGNAL_KEYS:
        _close(plain["pipeline"][k], compiled["pipeline"][k])
    # and the windows really produced numbers
    assert math.isfinite(compiled["pipeline"]["adf_pvalue"][-1])
