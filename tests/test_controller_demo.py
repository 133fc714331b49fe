"""The first run (README command 1) still shows the job although the gates reject the embedded pair --
and says so; with any other data a rejected pair is never traded.  Live execution is next-open only."""

from __future__ import annotations

import json
import subprocess
import sys

from pairtrade.config import load_params
from tests.conftest import ROOT


def _run(args, cwd, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def test_embedded_demo_trades_the_rejected_pair_and_says_so(tmp_path):
    (tmp_path / "pairs.json").write_text((ROOT / "pairs.json").read_text())
    opt = _run([str(ROOT / "optimizer.py"), "--quiet"], tmp_path)
    assert opt.returncode == 0, opt.stderr
    pp = load_params(tmp_path / "optimized_params.json").pairs["SPX-COMP"]
    assert not pp.tradable and pp.params is not None
    ctl = _run([str(ROOT / "controller.py"), "--run-dir", str(tmp_path / "run")], tmp_path)
    assert ctl.returncode == 0, ctl.stderr[-3000:]
    assert "DEMO: the optimizer rejected SPX-COMP" in ctl.stdout and "Never trade a rejected pair" in ctl.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    text = json.dumps(summary)
    assert summary and "SPX-COMP" in text
    trades = (tmp_path / "run" / "trades.csv").read_text().strip().splitlines()
    assert len(trades) > 1  # header + at least one round trip
    assert (tmp_path / "run" / "state").is_dir()  # trader state lands in the run dir (not under the repo)
    # --no-demo: nothing tradable, said in one line, exit 2
    ctl = _run([str(ROOT / "controller.py"), "--no-demo", "--run-dir", str(tmp_path / "run2")], tmp_path)
    assert ctl.returncode == 2 and "no tradable pair" in ctl.stderr and "skipping SPX-COMP: not tradable" in ctl.stdout


def test_trader_refuses_next_close_execution(tmp_path):
    from pairtrade.backtest.optimize import default_params
    from pairtrade.config import SCHEMA_VERSION, ParamsFile, atomic_write_json
    from pairtrade.live import trader

    p = default_params("5Min", execution="next_close")
    pf = ParamsFile(schema_version=SCHEMA_VERSION, generated_at="2026-01-01T00:00:00+00:00", bar_size="5Min",
                    data={"source": "t", "start": "2025-05-12T13:30:00+00:00", "end": "2025-11-28T17:55:00+00:00"},
                    pairs={"XOM-CVX": {"y": "XOM", "x": "CVX", "tradable": True, "params": p}})
    atomic_write_json(tmp_path / "p.json", pf)
    rc = trader.main(["XOM", "CVX", "--params", str(tmp_path / "p.json"), "--trading-url", "http://127.0.0.1:9"])
    assert rc == 2
    # a rejected pair is refused outside the demo, and --demo needs the local exchange
    raw = pf.model_dump(mode="json")
    raw["pairs"] = {"XOM-CVX": {"y": "XOM", "x": "CVX", "tradable": False, "reason": "r",
                                "params": default_params("5Min").model_dump(mode="json")}}
    atomic_write_json(tmp_path / "p2.json", ParamsFile.model_validate(raw))
    assert trader.main(["XOM", "CVX", "--params", str(tmp_path / "p2.json"), "--demo"]) == 2
