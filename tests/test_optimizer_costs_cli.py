"""``optimizer.py --slippage half-spread``: per-symbol slippage from the quotes of the data, in-sample only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pairtrade.config import load_params
from tests.conftest import shared_file
from tests.test_optimizer_cli import run_cli

LEAN = "us_equities_1min_trade_quote_lean_SPY_IBM_AIG_BAC_2013-10-04_to_2013-10-11.csv.gz"


def test_half_spread_slippage_from_quotes(tmp_path):
    path = shared_file(LEAN)
    (tmp_path / "p.json").write_text('[["SPY", "IBM"], ["AIG", "BAC"]]')
    out = tmp_path / "o.json"
    cp = run_cli("--data", str(path), "--pairs", str(tmp_path / "p.json"), "--params", str(out), "--slippage",
                 "half-spread", "--start", "2013-10-04", "--end", "2013-10-09", "--wf-is-sessions", "2",
                 "--wf-oos-sessions", "1", "--borrow-fee", "0.3", "--borrow-fee-by-symbol", "BAC=5")
    assert cp.returncode == 0, cp.stderr
    pf = load_params(out)
    assert pf.costs.slippage_method == "quotes"
    assert pf.costs.borrow_fee_pct == 0.3 and pf.costs.borrow_fee_pct_by_symbol == {"BAC": 5.0}
    # independent: median (ask - bid) / 2 over the in-sample regular-hours trade minutes, from the raw file
    raw = pd.read_csv(path)
    raw["t"] = pd.to_datetime(raw["datetime"])
    raw = raw[raw["close"].notna() & (raw["t"] < "2013-10-10") & (raw["t"].dt.strftime("%H:%M") >= "09:30")
              & (raw["t"].dt.strftime("%H:%M") < "16:00")]
    for sym, g in raw.groupby("symbol"):
        ok = (g["ask_close"] > g["bid_close"]) & (g["bid_close"] > 0)
        expect = float(np.median((g["ask_close"] - g["bid_close"])[ok] / 2))
        assert abs(pf.costs.slippage_per_share_by_symbol[sym] - expect) < 1e-6, sym
    assert pf.costs.slippage_for("IBM") > pf.costs.slippage_for("SPY")
