"""Chan's long file layout with an ``Adj Close`` column, end to end: ``--price-column`` in the optimizer and the
controller.  A 2-for-1 split in the raw closes breaks the pair's levels; the adjusted closes do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd

from pairtrade.config import load_params
from tests.conftest import ROOT
from tests.test_optimizer_cli import run_cli


def _chan_layout(tmp_path, n=1300, seed=5):
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2014-01-02", periods=n)
    lx = np.log(50.0) + np.cumsum(rng.normal(0, 0.012, n))
    u = np.zeros(n)
    for i in range(1, n):
        u[i] = 0.8 * u[i - 1] + rng.normal(0, 0.012)
    ly = 0.3 + lx + u
    rows = []
    for sym, lp in (("AAA", ly), ("BBB", lx)):
        adj = np.exp(lp)
        raw = adj.copy()
        if sym == "AAA":
            raw[:n // 2] *= 2.0  # 2-for-1 split half-way: the raw closes before it are twice the adjusted ones
        o = np.concatenate([[raw[0]], raw[:-1]]) * np.exp(rng.normal(0, 0.002, n))
        o[n // 2] = raw[n // 2]
        rows.append(pd.DataFrame({"symbol": sym, "Date": days.strftime("%Y-%m-%d"), "Open": o,
                                  "High": np.maximum(o, raw) * 1.002, "Low": np.minimum(o, raw) * 0.998,
                                  "Close": raw, "Volume": 1e6, "Adj Close": adj}))
    path = tmp_path / "chan_layout.csv"
    pd.concat(rows).to_csv(path, index=False)
    (tmp_path / "pairs.json").write_text('[["AAA", "BBB"]]')
    return path


WF = ("--wf-is-sessions", "250", "--wf-oos-sessions", "125", "--entry-z", "1.5,2", "--exit-z", "0,0.5",
      "--stop-z", "4", "--cscv-splits", "8")


def test_price_column_adjusted_closes_through_optimizer_and_controller(tmp_path):
    path = _chan_layout(tmp_path)
    out = tmp_path / "params.json"
    cp = run_cli("--data", str(path), "--pairs", str(tmp_path / "pairs.json"), "--params", str(out), *WF,
                 "--price-column", "Adj Close")
    assert cp.returncode == 0, cp.stderr
    pf = load_params(out)
    pp = pf.pairs["AAA-BBB"]
    assert pp.tradable, pp.reason
    assert "price column 'Adj Close'" in pf.data.source and pp.metrics.pbo is not None
    raw = run_cli("--data", str(path), "--pairs", str(tmp_path / "pairs.json"), "--params", str(tmp_path / "r.json"),
                  *WF)
    assert raw.returncode == 0, raw.stderr
    assert not load_params(tmp_path / "r.json").pairs["AAA-BBB"].tradable  # the raw split breaks the levels
    env = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID")}
    r = subprocess.run([sys.executable, str(ROOT / "controller.py"), "--data", str(path), "--price-column",
                        "Adj Close", "--pairs", str(tmp_path / "pairs.json"), "--params", str(out),
                        "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["trades"] > 0 and summary["books_balance"] is True
