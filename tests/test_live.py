"""The daemon end to end on real bars: controller -> trader processes -> alpaca-py -> local exchange."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pairtrade.config import CostModel, ParamsFile, StrategyParams, atomic_write_json
from pairtrade.config import SCHEMA_VERSION
from tests.conftest import ROOT

PAIRS = [("XOM", "CVX"), ("GS", "MS"), ("JPM", "BAC")]


def write_params(path: Path, pairs=PAIRS, end="2025-12-19T21:00:00+00:00", **overrides) -> None:
    params = StrategyParams(entry_z=2.0, exit_z=0.5, stop_z=4.0, zscore_window_bars=78, adf_window_bars=390,
                            hurst_window_bars=100, warmup_bars=390, **overrides)
    pf = ParamsFile(schema_version=SCHEMA_VERSION, generated_at="2026-01-01T00:00:00+00:00", bar_size="5Min",
                    data={"source": "test", "start": "2025-05-12T13:30:00+00:00", "end": end},
                    costs=CostModel(),
                    pairs={f"{y}-{x}": {"y": y, "x": x, "tradable": True, "params": params} for y, x in pairs})
    atomic_write_json(path, pf)


def write_pairs(path: Path, pairs=PAIRS) -> None:
    path.write_text(json.dumps({"pairs": [{"y": y, "x": x} for y, x in pairs]}))


def run_controller(tmp_path: Path, data: Path, *extra: str, env: dict | None = None, timeout: int = 240):
    cmd = [sys.executable, str(ROOT / "controller.py"), "--data", str(data), "--pairs", str(tmp_path / "pairs.json"),
           "--params", str(tmp_path / "params.json"), "--run-dir", str(tmp_path / "run"), *extra]
    import os

    e = dict(os.environ)
    e.pop("TELEGRAM_BOT_TOKEN", None)
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=e)


def test_end_to_end_three_traders_on_real_bars(tmp_path, equities_5min):
    write_pairs(tmp_path / "pairs.json")
    write_params(tmp_path / "params.json")
    r = run_controller(tmp_path, equities_5min, "--end", "2025-12-31T21:00:00")
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["pairs"] == ["XOM-CVX", "GS-MS", "JPM-BAC"]
    assert summary["pairs_given_up"] == [] and all(v == 0 for v in summary["trader_restarts"].values())
    # the three trader processes started and each logged with its pair prefix
    for pid in summary["pairs"]:
        assert f"[{pid}] " in r.stderr
    assert summary["orders"] > 0 and summary["fills"] == summary["orders"]
    # books balance: cash + qty * last close == equity, to the cent
    assert summary["books_balance"] is True
    assert abs(summary["cash_usd"] + summary["positions_value_usd"] - summary["final_equity_usd"]) < 0.01
    # trades.csv and the summary agree, and realised PnL adds up
    rows = list(csv.DictReader(open(run / "trades.csv")))
    assert len(rows) == summary["trades"] > 0
    assert abs(sum(float(r_["pnl_usd"]) for r_ in rows) - summary["realized_pnl_usd"]) < 0.05
    # every order is both legs of a decision: orders come in pairs per pair id
    events = [json.loads(line) for line in open(run / "events.jsonl")]
    orders = [e for e in events if e.get("event") == "order"]
    assert not [e for e in events if e.get("event") in ("reject", "alert")]
    assert len(orders) == summary["orders"]
    for pid in summary["pairs"]:
        legs = [e["symbol"] for e in orders if e["pair"] == pid]
        y, x = pid.split("-")
        assert legs.count(y) == legs.count(x)
    # equity.csv has one row per replayed bar and ends at the final equity
    eq = pd.read_csv(run / "equity.csv")
    assert len(eq) == summary["bars_replayed"]
    assert abs(eq["equity_usd"].iloc[-1] - summary["final_equity_usd"]) < 0.01
    # no position is left one-legged
    for pid in summary["pairs"]:
        y, x = pid.split("-")
        assert (summary["positions"].get(y, 0) == 0) == (summary["positions"].get(x, 0) == 0)


def test_replay_reproduces_the_backtest(tmp_path, equities_5min):
    """Invariant 1: the live path (signals engine, kernel, exchange fills) reproduces the backtest's trades."""
    from pairtrade.backtest.engine import run_backtest
    from pairtrade.data.bars import align, load_bars, regular_hours
    from pairtrade.signals.pipeline import compute_signals

    pair = [("GS", "MS")]
    write_pairs(tmp_path / "pairs.json", pair)
    write_params(tmp_path / "params.json", pair)
    start, end = "2025-12-01T14:00:00", "2025-12-31T21:00:00"
    r = run_controller(tmp_path, equities_5min, "--start", start, "--end", end)
    assert r.returncode == 0, r.stderr[-3000:]
    live = pd.read_csv(tmp_path / "run" / "trades.csv")

    pf = json.loads((tmp_path / "params.json").read_text())
    params = StrategyParams(**pf["pairs"]["GS-MS"]["params"])
    bs = load_bars(equities_5min, symbols=["GS", "MS"])
    df = align(regular_hours(bs.bars["GS"], "5Min"), regular_hours(bs.bars["MS"], "5Min"))
    # the traders warm up on every bar from the params file's data.start (live = optimizer)
    df = df[(df.index >= pd.Timestamp(pf["data"]["start"])) & (df.index <= pd.Timestamp(end, tz="UTC"))]
    first = int((df.index < pd.Timestamp(start, tz="UTC")).sum())
    sig = compute_signals(df["close_y"].to_numpy(), df["close_x"].to_numpy(), params)
    res = run_backtest(df, sig, params, CostModel(), start_index=first, bar_size="5Min")
    bt = res.trades
    assert len(bt) > 0
    closed = bt[bt["exit_reason"] != "open"]
    assert len(live) == len(closed)
    decided = [df.index[int(i)] for i in closed["entry_decision_bar"]]
    assert list(pd.to_datetime(live["entry_time"], utc=True)) == decided
    assert list(live["qty_y"]) == list(closed["qty_y"]) and list(live["qty_x"]) == list(closed["qty_x"])
    assert abs(live["pnl_usd"].sum() - closed["pnl_usd"].sum()) < 0.01 * len(closed)


def test_trader_crash_is_restarted_and_reconciled(tmp_path, equities_5min):
    write_pairs(tmp_path / "pairs.json", [("GS", "MS")])
    write_params(tmp_path / "params.json", [("GS", "MS")])
    r = run_controller(tmp_path, equities_5min, "--start", "2025-12-15T14:00:00", "--end", "2025-12-31T21:00:00",
                       env={"PAIRTRADE_FAULT_CRASH_AFTER_BARS": "150"})
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["trader_restarts"]["GS-MS"] >= 1
    events = [json.loads(line) for line in open(tmp_path / "run" / "events.jsonl")]
    assert any(e.get("event") == "trader_restart" for e in events)
    assert summary["books_balance"] is True
    g, m = summary["positions"].get("GS", 0), summary["positions"].get("MS", 0)
    assert (g == 0) == (m == 0)


def test_sigterm_stops_traders_cleanly(tmp_path, equities_5min):
    """SIGTERM mid-replay: traders get 'stop', state is saved, summary written, no orphan processes."""
    import os
    import signal
    import time

    write_pairs(tmp_path / "pairs.json", [("GS", "MS"), ("XOM", "CVX")])
    write_params(tmp_path / "params.json", [("GS", "MS"), ("XOM", "CVX")])
    cmd = [sys.executable, str(ROOT / "controller.py"), "--data", str(equities_5min), "--pairs",
           str(tmp_path / "pairs.json"), "--params", str(tmp_path / "params.json"), "--run-dir",
           str(tmp_path / "run"), "--start", "2025-06-02T14:00:00", "--end", "2025-12-31T21:00:00"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    equity = tmp_path / "run" / "equity.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not equity.exists() or equity.stat().st_size < 2000):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "stopping traders cleanly" in err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 0 < summary["bars_replayed"] < 8000  # stopped well before the end of the range
    events = [json.loads(line) for line in open(tmp_path / "run" / "events.jsonl")]
    pids = [e["pid"] for e in events if e.get("event") == "trader_started"]
    assert len(pids) == 2
    for pid in pids:  # the trader processes are gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for pid in ("GS-MS", "XOM-CVX"):
        state = json.loads((tmp_path / "run" / "state" / f"{pid}.json").read_text())
        assert state["last_bar"] is not None


def test_controller_bad_inputs(tmp_path, equities_5min):
    (tmp_path / "pairs.json").write_text('{"pairs": [{"y": "XOM"}]}')
    write_params(tmp_path / "params.json")
    r = run_controller(tmp_path, equities_5min)
    assert r.returncode == 2
    assert "pairs.json" in r.stderr and "pairs.0.x" in r.stderr
    (tmp_path / "pairs.json").write_text("{not json")
    r = run_controller(tmp_path, equities_5min)
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    # a tradable pair whose symbol the data does not have: named in the error
    write_pairs(tmp_path / "pairs.json", [("XOM", "ZZZZ")])
    write_params(tmp_path / "params.json", [("XOM", "ZZZZ")])
    r = run_controller(tmp_path, equities_5min)
    assert r.returncode == 2 and "ZZZZ" in r.stderr
    # params marked not tradable are skipped with the reason
    pf = json.loads((tmp_path / "params.json").read_text())
    pf["pairs"]["XOM-ZZZZ"] = {"y": "XOM", "x": "ZZZZ", "tradable": False, "reason": "symbol not in data: ZZZZ"}
    (tmp_path / "params.json").write_text(json.dumps(pf))
    r = run_controller(tmp_path, equities_5min)
    assert r.returncode == 2 and "skipping XOM-ZZZZ: not tradable (symbol not in data: ZZZZ)" in r.stdout


def test_position_that_belongs_to_no_pair_is_reported_not_flattened_at_start(tmp_path, equities_5min):
    """Reconciliation (issue 7, build item 2): a position no pair's ledger explains -- here 5 GS bought by hand --
    is alerted and left alone; the pair's own one-legged shares are flattened (tests/test_leg_safety.py)."""
    from pairtrade.broker.alpaca import AlpacaBroker
    from pairtrade.config import PairSpec
    from pairtrade.data.bars import load_bars
    from pairtrade.exchange import LocalExchange
    from pairtrade.live.state import StateStore
    from pairtrade.live.trader import Trader

    bs = load_bars(equities_5min, symbols=["GS", "MS"])
    with LocalExchange(bs, start="2025-12-15T14:30:00", key="k", secret="s") as ex:
        broker = AlpacaBroker("k", "s", trading_url=ex.base_url, data_url=ex.base_url)
        broker.submit_market("GS", 5, "manual-gs-1")
        ex.advance()
        assert broker.positions() == {"GS": 5.0}
        msgs: list[dict] = []
        params = StrategyParams(zscore_window_bars=78, adf_window_bars=390, warmup_bars=390)
        t = Trader(PairSpec(y="GS", x="MS"), params, "5Min", broker, StateStore(tmp_path, "GS-MS"), msgs.append)
        t.start()
        alerts = [m for m in msgs if m.get("event") == "alert"]
        assert len(alerts) == 1 and "GS" in alerts[0]["text"] and "belong to no pair" in alerts[0]["text"]
        assert not any(m.get("event") == "order" for m in msgs)
        ex.advance()
        t.on_bars(ex.now, {})
        assert broker.positions() == {"GS": 5.0}
        assert StateStore(tmp_path, "GS-MS").load().qty_y == 0
