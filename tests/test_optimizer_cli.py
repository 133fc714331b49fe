"""``python optimizer.py`` end to end on real data, the embedded default, and bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pairtrade.backtest.optimize import default_params, holdout_cutoff
from pairtrade.config import load_params

ROOT = Path(__file__).resolve().parents[1]
OPTIMIZER = ROOT / "optimizer.py"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "APCA_API_KEY_ID", "APCA_API_SECRET_KEY")}
    return subprocess.run([sys.executable, str(OPTIMIZER), "--quiet", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=timeout)


def _pipeline():
    pytest.importorskip("pairtrade.signals.pipeline", reason="signal pipeline not available yet")


def _eg_pvalues(path, y, x, end):
    """Engle-Granger p-values on in-sample log closes (statsmodels), both orderings."""
    from statsmodels.tsa.stattools import coint

    from pairtrade.data.bars import align, load_bars, regular_hours

    bs = load_bars(path, symbols=[y, x])
    f = align(regular_hours(bs.bars[y], bs.bar_size), regular_hours(bs.bars[x], bs.bar_size))
    f = f[f.index <= end]
    ly, lx = np.log(f["close_y"].to_numpy()), np.log(f["close_x"].to_numpy())
    return coint(ly, lx)[1], coint(lx, ly)[1]


def test_real_5min_data_end_to_end(tmp_path, equities_5min):
    """The three bank/oil pairs are not cointegrated on 5-minute log prices May-Nov 2025 (statsmodels agrees)."""
    _pipeline()
    out = tmp_path / "optimized_params.json"
    (tmp_path / "p.json").write_text('[["SPX", "COMP"], ["XOM", "CVX"], ["GS", "MS"], ["JPM", "BAC"]]')
    cp = run_cli("--data", str(equities_5min), "--pairs", str(tmp_path / "p.json"), "--params", str(out))
    assert cp.returncode == 0, cp.stderr
    pf = load_params(out)  # validates against ParamsFile
    raw = json.loads(out.read_text())
    assert raw["schema_version"] == 2 and raw["bar_size"] == "5Min"
    assert str(equities_5min) in pf.data.source and "file" in cp.stdout
    # default in-sample range holds out the final calendar month (December 2025)
    assert pd.Timestamp(pf.data.end) < pd.Timestamp("2025-12-01 05:00", tz="UTC")
    assert pd.Timestamp(pf.data.end) > pd.Timestamp("2025-11-25", tz="UTC")
    assert pd.Timestamp(pf.data.start) >= pd.Timestamp("2025-05-12 13:30", tz="UTC")
    assert set(pf.pairs) == {"SPX-COMP", "XOM-CVX", "GS-MS", "JPM-BAC"}
    spx = pf.pairs["SPX-COMP"]
    assert not spx.tradable and "symbol not in data" in spx.reason and "SPX" in spx.reason
    end = pd.Timestamp(pf.data.end)
    for pid in ("XOM-CVX", "GS-MS", "JPM-BAC"):
        pp = pf.pairs[pid]
        y, x = pid.split("-")
        p_yx, p_xy = _eg_pvalues(equities_5min, y, x, end)
        assert pp.metrics.coint_pvalue_yx == pytest.approx(p_yx, rel=1e-6)
        assert pp.metrics.coint_pvalue_xy == pytest.approx(p_xy, rel=1e-6)
        assert not pp.tradable and "Engle-Granger" in pp.reason and pid.split("-")[0] in pp.reason
        assert pid in cp.stdout and "NOT tradable" in cp.stdout
    assert pf.costs.slippage_per_share == 0.01


def test_embedded_default(tmp_path):
    """SPX/COMP 1999-2017 is not cointegrated: the demo pair is rejected, but its walk-forward is reported
    (and its final parameters written) so the controller's demo can show the pipeline, saying so."""
    _pipeline()
    (tmp_path / "pairs.json").write_text((ROOT / "pairs.json").read_text())
    cp = run_cli(cwd=tmp_path)
    assert cp.returncode == 0, cp.stderr
    assert "embedded default" in cp.stdout
    pf = load_params(tmp_path / "optimized_params.json")
    assert pf.bar_size == "1Day" and "embedded" in pf.data.source
    assert pd.Timestamp(pf.data.end) < pd.Timestamp("2018-01-01", tz="UTC")  # 2018 held out
    assert set(pf.pairs) == {"SPX-COMP"}  # the default pairs file lists only pairs of the default data
    pp = pf.pairs["SPX-COMP"]
    assert not pp.tradable and "Engle-Granger" in pp.reason
    assert pp.metrics.coint_pvalue > 0.05 and pp.metrics.walk_forward_windows >= 10
    assert pp.params is not None and pp.params.zscore_window_bars == 20 and pp.params.hedge == "ols"


@pytest.mark.parametrize("content,needle", [
    ('{"pairs": [{"y": "XOM"}]}', "pairs.0.x"),
    ('{"pairs": [{"y": "XOM", "x": "CVX", "z": 1}]}', "pairs.0.z"),
    ('{"pairs": [', "not valid JSON"),
    ('{"pairs": []}', "pairs"),
])
def test_malformed_pairs_file_exit_2(tmp_path, content, needle):
    bad = tmp_path / "bad_pairs.json"
    bad.write_text(content)
    cp = run_cli("--pairs", str(bad), "--params", str(tmp_path / "o.json"))
    assert cp.returncode == 2
    assert "bad_pairs.json" in cp.stderr and needle in cp.stderr
    assert "Traceback" not in cp.stderr
    assert not (tmp_path / "o.json").exists()


def test_missing_data_file_exit_2(tmp_path):
    cp = run_cli("--data", str(tmp_path / "nope.csv"), "--params", str(tmp_path / "o.json"))
    assert cp.returncode == 2 and "nope.csv" in cp.stderr and "not found" in cp.stderr
    assert "Traceback" not in cp.stderr


def test_nan_prices_and_missing_column_exit_2(tmp_path):
    idx = pd.date_range("2024-01-02 09:30", periods=20, freq="5min")
    rows = []
    for sym in ("AAA", "BBB"):
        for t in idx:
            rows.append((sym, t, 10.0, 10.5, 9.5, 10.2, 100))
    df = pd.DataFrame(rows, columns=["symbol", "datetime", "open", "high", "low", "close", "volume"])
    df.loc[5, "open"] = np.nan
    f = tmp_path / "nan.csv"
    df.to_csv(f, index=False)
    (tmp_path / "p.json").write_text('{"pairs": [{"y": "AAA", "x": "BBB"}]}')
    cp = run_cli("--data", str(f), "--pairs", str(tmp_path / "p.json"), "--params", str(tmp_path / "o.json"))
    assert cp.returncode == 2 and "Traceback" not in cp.stderr
    assert "nan.csv" in cp.stderr and "AAA" in cp.stderr and "open" in cp.stderr
    df.drop(columns=["close"]).to_csv(f, index=False)
    cp = run_cli("--data", str(f), "--pairs", str(tmp_path / "p.json"), "--params", str(tmp_path / "o.json"))
    assert cp.returncode == 2 and "close" in cp.stderr and "Traceback" not in cp.stderr


def test_too_short_history_is_not_tradable(tmp_path):
    _pipeline()
    idx = pd.date_range("2024-01-02", periods=120, freq="B")
    rng = np.random.default_rng(3)
    a = 50 + np.cumsum(rng.normal(0, 0.5, len(idx)))
    pd.DataFrame({"Date": idx.strftime("%Y-%m-%d"), "AAA": a, "BBB": a + 5}).to_csv(tmp_path / "w.csv", index=False)
    (tmp_path / "p.json").write_text('{"pairs": [{"y": "AAA", "x": "BBB"}, {"y": "AAA", "x": "CCC"}]}')
    cp = run_cli("--data", str(tmp_path / "w.csv"), "--pairs", str(tmp_path / "p.json"),
                 "--params", str(tmp_path / "o.json"), "--start", "2024-01-01", "--end", "2024-06-30")
    assert cp.returncode == 0, cp.stderr
    pf = load_params(tmp_path / "o.json")
    assert not pf.pairs["AAA-BBB"].tradable and "aligned in-sample bars" in pf.pairs["AAA-BBB"].reason
    assert "symbol not in data: CCC" in pf.pairs["AAA-CCC"].reason
    assert pd.Timestamp(pf.data.end) <= pd.Timestamp("2024-07-01", tz="America/New_York")


def test_defaults_by_bar_size():
    d = default_params("1Day")
    assert (d.zscore_window_bars, d.adf_window_bars, d.hurst_window_bars, d.warmup_bars) == (20, 250, 100, 250)
    m = default_params("5Min")
    assert (m.zscore_window_bars, m.adf_window_bars, m.hurst_window_bars, m.warmup_bars) == (78, 390, 100, 390)
    assert default_params("5Min", entry_z=2.5).entry_z == 2.5
    assert holdout_cutoff(pd.Timestamp("2025-12-31 20:55", tz="UTC"), "5Min") == \
        pd.Timestamp("2025-12-01", tz="America/New_York")
    assert holdout_cutoff(pd.Timestamp("2018-12-31 05:00", tz="UTC"), "1Day") == \
        pd.Timestamp("2018-01-01", tz="America/New_York")


def test_alpaca_source_used_when_keys_set(tmp_path, monkeypatch, equities_5min):
    _pipeline()
    import pairtrade.data.alpaca as alpaca_mod
    from pairtrade.backtest import optimize
    from pairtrade.data.bars import BarSet, DataError, load_bars

    real = load_bars(equities_5min, symbols=["XOM", "CVX"])
    calls = []

    def fake_fetch(symbols, start, end, bar_size, key, secret, url_override=None, **kw):
        calls.append((tuple(symbols), bar_size, key, url_override))
        (sym,) = symbols
        if sym not in real.bars:
            raise DataError(f"Alpaca: no bars for {sym}")
        df = real.bars[sym]
        return BarSet({sym: df[(df.index >= start) & (df.index < end)]}, "fake alpaca", bar_size)

    monkeypatch.setattr(alpaca_mod, "fetch_alpaca_bars", fake_fetch)
    monkeypatch.setenv("ALPACA_API_KEY", "k")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "s")
    monkeypatch.delenv("ALPACA_DATA_URL", raising=False)
    (tmp_path / "p.json").write_text('{"pairs": [{"y": "XOM", "x": "CVX"}, {"y": "SPX", "x": "COMP"}]}')
    lines = []
    pf = optimize.run(["--quiet", "--pairs", str(tmp_path / "p.json"), "--params", str(tmp_path / "o.json"),
                       "--start", "2025-05-12", "--end", "2025-12-31"], log=lines.append)
    assert {c[0] for c in calls} == {("XOM",), ("CVX",), ("SPX",), ("COMP",)}
    assert all(c[1] == "5Min" and c[2] == "k" for c in calls)
    assert "Alpaca" in pf.data.source and any("Alpaca" in line for line in lines)
    assert "symbol not in data" in pf.pairs["SPX-COMP"].reason
    xc = pf.pairs["XOM-CVX"].metrics
    assert xc is not None and xc.coint_pvalue is not None and 0 <= xc.coint_pvalue <= 1
