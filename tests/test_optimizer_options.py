"""Every spread-model, selection and cost option of ``optimizer.py`` reaches the params file and acts.

Simulated, fixed-seed daily data (a cointegrated pair with an OU spread, and an independent random walk),
written as a long CSV the way users have files; each run is a subprocess of the real CLI.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from pairtrade.config import load_params
from tests.test_optimizer_cli import run_cli


def _write(tmp_path, n=1300, seed=11):
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2015-01-02", periods=n)
    lx = np.log(60.0) + np.cumsum(rng.normal(0, 0.012, n))
    u = np.zeros(n)
    for i in range(1, n):
        u[i] = 0.8 * u[i - 1] + rng.normal(0, 0.012)  # half-life ~3 days
    ly = 0.2 + 1.0 * lx + u
    lw = np.log(40.0) + np.cumsum(rng.normal(0, 0.012, n))  # independent random walk
    rows = []
    for sym, lp in (("AAA", ly), ("BBB", lx), ("WWW", lw)):
        c = np.exp(lp)
        o = np.concatenate([[c[0]], c[:-1]]) * np.exp(rng.normal(0, 0.002, n))
        rows.append(pd.DataFrame({"symbol": sym, "datetime": days.strftime("%Y-%m-%d"), "open": o,
                                  "high": np.maximum(o, c) * 1.002, "low": np.minimum(o, c) * 0.998, "close": c,
                                  "volume": 1e6}))
    path = tmp_path / "bars.csv"
    pd.concat(rows).to_csv(path, index=False)
    (tmp_path / "p.json").write_text('[["AAA", "BBB"], ["AAA", "WWW"]]')
    return path


WF = ("--wf-is-sessions", "250", "--wf-oos-sessions", "125", "--entry-z", "1.5,2", "--exit-z", "0,0.5",
      "--stop-z", "4")


def _run(tmp_path, *extra):
    path = _write(tmp_path)
    out = tmp_path / "o.json"
    cp = run_cli("--data", str(path), "--pairs", str(tmp_path / "p.json"), "--params", str(out), *WF, *extra)
    assert cp.returncode == 0, cp.stderr
    return load_params(out), json.loads(out.read_text()), cp.stdout


def test_defaults_select_the_cointegrated_pair_only(tmp_path):
    pf, raw, out = _run(tmp_path)
    good, bad = pf.pairs["AAA-BBB"], pf.pairs["AAA-WWW"]
    assert good.tradable, good.reason
    assert good.params.hedge == "ols" and good.params.prices == "log"
    m = good.metrics
    assert m.coint_pvalue <= 0.05 and m.oos_dsr >= 0.95 and m.oos_trades > 0 and m.n_trials == 4
    assert m.walk_forward_windows == len(good.walk_forward) >= 5
    assert not bad.tradable and "Engle-Granger" in bad.reason and bad.params is None  # skipped without --report-all
    assert raw["selection"]["trials"] == 4 and "AAA-WWW" in out and "NOT tradable" in out
    # the final window's hedge is the OLS of its own in-sample log prices (last 250 sessions)
    from pairtrade.data.bars import align, load_bars

    bs = load_bars(tmp_path / "bars.csv")
    f = align(bs.bars["AAA"], bs.bars["BBB"])
    f = f[f.index <= pd.Timestamp(pf.data.end)].iloc[-250:]
    b, a = np.polyfit(np.log(f.close_x), np.log(f.close_y), 1)
    assert good.params.hedge_beta == pytest.approx(b, rel=1e-9) and good.params.hedge_alpha == pytest.approx(a, rel=1e-8)


def test_report_all_and_thresholds(tmp_path):
    pf, _, _ = _run(tmp_path, "--report-all", "--coint-pvalue", "1.0", "--min-dsr", "0.0")
    bad = pf.pairs["AAA-WWW"]
    assert bad.metrics.walk_forward_windows >= 5  # reported although not cointegrated
    # with the cointegration and DSR gates off, only the out-of-sample sign and the final window decide
    assert bad.tradable == (bad.metrics.oos_sharpe > 0 and bad.metrics.sharpe > 0)


@pytest.mark.parametrize("extra,check", [
    (("--hedge", "rolling_ols", "--ols-window", "120"), lambda p: p.hedge == "rolling_ols" and p.ols_window_bars == 120),
    (("--hedge", "kalman", "--prices", "level", "--kalman-delta", "1e-4,1e-5"),
     lambda p: p.hedge == "kalman" and p.prices == "level" and p.kalman_delta in (1e-4, 1e-5)),
    (("--hedge", "kalman", "--prices", "level", "--spread", "forecast_error", "--zscore", "forecast_std",
      "--kalman-delta", "1e-4"),
     lambda p: p.spread == "forecast_error" and p.zscore == "forecast_std"),
    (("--zscore", "ewm", "--zscore-halflife", "15"), lambda p: p.zscore == "ewm" and p.zscore_halflife_bars == 15),
    (("--sizing", "dollar_neutral", "--execution", "next_close"),
     lambda p: p.sizing == "dollar_neutral" and p.execution == "next_close"),
])
def test_spread_model_options_reach_the_params(tmp_path, extra, check):
    pf, raw, _ = _run(tmp_path, "--report-all", *extra)
    p = pf.pairs["AAA-BBB"].params
    assert p is not None and check(p), p
    n_models = 2 if "1e-4,1e-5" in extra else 1
    assert raw["selection"]["trials"] == 4 * n_models


def test_fixed_zscore_statistics_come_from_the_final_window(tmp_path):
    pf, _, _ = _run(tmp_path, "--zscore", "fixed")
    p = pf.pairs["AAA-BBB"].params
    from pairtrade.data.bars import align, load_bars

    bs = load_bars(tmp_path / "bars.csv")
    f = align(bs.bars["AAA"], bs.bars["BBB"])
    f = f[f.index <= pd.Timestamp(pf.data.end)].iloc[-250:]
    s = np.log(f.close_y) - p.hedge_beta * np.log(f.close_x) - p.hedge_alpha
    assert p.zscore == "fixed"
    assert p.zscore_mean == pytest.approx(float(s.mean()), abs=1e-12)
    assert p.zscore_std == pytest.approx(float(s.std(ddof=1)), rel=1e-9)


def test_anchored_windows_start_at_the_first_bar(tmp_path):
    pf, _, _ = _run(tmp_path, "--anchored")
    w = pf.pairs["AAA-BBB"].walk_forward
    assert len({r["is_start"] for r in w}) == 1
    pf2, _, _ = _run(tmp_path)
    assert len({r["is_start"] for r in pf2.pairs["AAA-BBB"].walk_forward}) == len(pf2.pairs["AAA-BBB"].walk_forward)


def test_costs_options_and_sensitivity(tmp_path):
    pf, _, _ = _run(tmp_path, "--slippage", "0.05", "--slippage-bps", "2", "--fee-bps", "3")
    c = pf.costs
    assert (c.slippage_per_share, c.slippage_bps, c.fee_bps) == (0.05, 2.0, 3.0)
    sens = pf.pairs["AAA-BBB"].metrics.oos_sharpe_by_cost
    assert sens["0.5x"] >= sens["1x"] >= sens["2x"]
    assert not math.isclose(sens["0.5x"], sens["2x"])


@pytest.mark.parametrize("args,needle", [
    (("--coint-pvalue", "0"), "--coint-pvalue"),
    (("--min-dsr", "1.5"), "--min-dsr"),
    (("--slippage", "cheap"), "--slippage"),
    (("--hedge", "ols", "--spread", "forecast_error"), "forecast_error"),
])
def test_bad_option_values_exit_2_without_traceback(tmp_path, args, needle):
    path = _write(tmp_path)
    cp = run_cli("--data", str(path), "--pairs", str(tmp_path / "p.json"), "--params", str(tmp_path / "o.json"), *args)
    assert cp.returncode == 2 and needle in cp.stderr and "Traceback" not in cp.stderr
