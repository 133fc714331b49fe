"""live = optimizer: the controller's default replay trades exactly what the optimizer's out-of-sample backtest trades.

The optimizer computes the signals once over the whole aligned history of a pair and its backtest
of the held-out month (``run_backtest(..., start_index=<first out-of-sample bar>)``) continues that
computation.  The live path (controller -> trader processes -> alpaca-py -> local exchange) must
do the same: warm the Kalman filter and the rolling windows up on every in-sample bar (from
``data.start`` of the params file), then receive every bar after the last in-sample bar
(``data.end``), none skipped, with the kernel's bar count equal to the backtest's bar index.

The reference is the backtest engine driven by ``compute_signals`` over the aligned frame -- the
optimizer's own computation -- built here from library calls, not from anything the live path wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pairtrade.config import SCHEMA_VERSION, ParamsFile, atomic_write_json
from pairtrade.data.bars import BarSet, align, load_bars, regular_hours
from tests.conftest import ROOT

PAIRS = [("XOM", "CVX"), ("GS", "MS"), ("JPM", "BAC")]
# the optimizer's default holdout of 5-minute data ending 2025-12-31: in-sample = bars before 2025-12-01 New York
CUTOFF = pd.Timestamp("2025-12-01", tz="America/New_York").tz_convert("UTC")
COSTS = {"slippage_per_share": 0.01, "fee_bps": 0.5}


def strategy_params() -> dict:
    from pairtrade.backtest.optimize import default_params

    return default_params("5Min", kalman_delta=1e-6, entry_z=2.0, exit_z=0.5, stop_z=3.5, adf_pvalue_max=1.0,
                          hurst_max=1.0).model_dump(mode="json")


def write_params_file(path: Path, frames: dict[str, pd.DataFrame], source: str) -> ParamsFile:
    """optimized_params.json as the optimizer writes it (built from plain dicts: the schema is growing)."""
    ins = {pid: f[f.index < CUTOFF] for pid, f in frames.items()}
    params = strategy_params()
    pf = ParamsFile.model_validate({
        "schema_version": SCHEMA_VERSION, "generated_at": "2026-01-01T00:00:00+00:00", "bar_size": "5Min",
        "data": {"source": source, "start": min(f.index[0] for f in ins.values()).isoformat(),
                 "end": max(f.index[-1] for f in ins.values()).isoformat()},
        "costs": COSTS,
        "pairs": {f"{y}-{x}": {"y": y, "x": x, "tradable": True, "params": params} for y, x in PAIRS},
    })
    atomic_write_json(path, pf)
    return pf


def aligned_frames(data: Path) -> tuple[dict[str, pd.DataFrame], BarSet]:
    """Per pair, the aligned regular-hours frame over the whole file (what optimize_pair aligns)."""
    bs = load_bars(data, symbols=sorted({s for p in PAIRS for s in p}))
    rh = {s: regular_hours(df, "5Min") for s, df in bs.bars.items()}
    return {f"{y}-{x}": align(rh[y], rh[x]) for y, x in PAIRS}, bs


def expected_fills(frame: pd.DataFrame, pf: ParamsFile, pid: str) -> tuple[pd.DataFrame, list[tuple], pd.DataFrame]:
    """The optimizer's out-of-sample backtest: closed trades, one (decision time, symbol, qty, price) per leg
    fill, and the signals of every bar (index = bar start)."""
    from pairtrade.backtest.engine import run_backtest
    from pairtrade.signals.pipeline import compute_signals

    entry = pf.pairs[pid]
    frame = frame[frame.index >= pd.Timestamp(pf.data.start)]
    first_oos = int((frame.index <= pd.Timestamp(pf.data.end)).sum())
    sig = compute_signals(frame["close_y"].to_numpy(float), frame["close_x"].to_numpy(float), entry.params)
    trades = run_backtest(frame, sig, entry.params, pf.costs, start_index=first_oos, bar_size="5Min",
                          symbols=(entry.y, entry.x)).trades
    fills = []
    for t in trades.to_dict("records"):
        dec = frame.index[int(t["entry_decision_bar"])]
        fills += [(dec, entry.y, t["qty_y"], t["entry_price_y"]), (dec, entry.x, t["qty_x"], t["entry_price_x"])]
        if t["exit_reason"] != "open":
            dec = frame.index[int(t["exit_decision_bar"])]
            fills += [(dec, entry.y, -t["qty_y"], t["exit_price_y"]), (dec, entry.x, -t["qty_x"], t["exit_price_x"])]
    closed = trades[trades["exit_reason"] != "open"].reset_index(drop=True)
    return closed, sorted(fills, key=lambda r: (r[0], r[1])), pd.DataFrame(sig, index=frame.index)


def live_fills(events: list[dict], pid: str) -> tuple[list[tuple], list[dict]]:
    """Filled orders of a pair as (decision time, symbol, qty, fill price), and the orders never filled.

    Orders are logged with the bar they were decided on; a market order fills completely at the next
    open, so the fills of a symbol answer its orders in sequence.
    """
    orders = [e for e in events if e.get("pair") == pid and e.get("event") == "order"]
    fills = [e for e in events if e.get("pair") == pid and e.get("event") == "fill"]
    out, unfilled = [], []
    for sym in sorted({o["symbol"] for o in orders}):
        os_ = [o for o in orders if o["symbol"] == sym]
        fs = [f for f in fills if f["symbol"] == sym]
        assert len(fs) <= len(os_), f"{pid} {sym}: more fills than orders"
        for o, f in zip(os_, fs):
            assert f["qty"] == o["qty"], (o, f)
            out.append((pd.Timestamp(o["t"]), sym, float(o["qty"]), float(f["price"])))
        unfilled += os_[len(fs):]
    return sorted(out, key=lambda r: (r[0], r[1])), unfilled


def test_default_replay_starts_at_the_first_bar_after_the_in_sample_range():
    """replay_range's default start is the first bar after data.end: the last in-sample bar is history
    (closed by the start clock), the next bar is the first one replayed."""
    from pairtrade.live.controller import replay_range

    idx = pd.date_range("2025-11-26 14:30", periods=78, freq="5min", tz="UTC").append(
        pd.date_range("2025-11-28 14:30", periods=42, freq="5min", tz="UTC")).append(  # half day (13:00 New York)
        pd.date_range("2025-12-01 14:30", periods=78, freq="5min", tz="UTC"))
    df = pd.DataFrame({c: np.linspace(10, 11, len(idx)) for c in ("open", "high", "low", "close")}, index=idx)
    df["volume"] = 100.0
    bs = BarSet({"AAA": df, "BBB": df.iloc[::2]}, "simulated", "5Min")
    last_in_sample = pd.Timestamp("2025-11-28 17:55", tz="UTC")  # last bar before 2025-12-01 New York
    pf = ParamsFile.model_validate({
        "schema_version": SCHEMA_VERSION, "generated_at": "2026-01-01T00:00:00+00:00", "bar_size": "5Min",
        "data": {"source": "simulated", "start": idx[0].isoformat(), "end": last_in_sample.isoformat()},
        "pairs": {}})
    s, e = replay_range(bs, pf, None, None)
    assert s == pd.Timestamp("2025-12-01 14:30", tz="UTC") and e == idx[-1]
    # the exchange's rule: bars closed by the clock are history, bars starting in [s, e] are replayed
    assert last_in_sample + pd.Timedelta(minutes=5) <= s
    assert not ((idx > last_in_sample) & (idx < s)).any()
    # a data.end inside a session: the very next 5-minute bar
    pf2 = ParamsFile.model_validate({**pf.model_dump(mode="json"),
                                     "data": {"source": "x", "start": idx[0].isoformat(),
                                              "end": "2025-11-26T15:00:00+00:00"}})
    assert replay_range(bs, pf2, None, None)[0] == pd.Timestamp("2025-11-26 15:05", tz="UTC")
    # an explicit --start wins; an empty range is an error
    assert replay_range(bs, pf, "2025-12-01T15:00:00", None)[0] == pd.Timestamp("2025-12-01 15:00", tz="UTC")
    from pairtrade.data.bars import DataError

    with pytest.raises(DataError, match="empty"):
        replay_range(bs, pf, "2025-12-02", "2025-12-01")


def test_controller_default_replay_trades_what_the_optimizer_backtest_trades(tmp_path, equities_5min):
    frames, bs = aligned_frames(equities_5min)
    pf = write_params_file(tmp_path / "params.json", frames, bs.source)
    assert pd.Timestamp(pf.data.end) < CUTOFF <= min(f.index[f.index >= CUTOFF][0] for f in frames.values())
    (tmp_path / "pairs.json").write_text(json.dumps({"pairs": [{"y": y, "x": x} for y, x in PAIRS]}))
    env = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID")}
    r = subprocess.run([sys.executable, str(ROOT / "controller.py"), "--data", str(equities_5min),
                        "--pairs", str(tmp_path / "pairs.json"), "--params", str(tmp_path / "params.json"),
                        "--run-dir", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    # no bar is skipped: the replay starts at the first bar after the last in-sample bar
    first_oos = min(df.index[df.index > pd.Timestamp(pf.data.end)][0] for df in bs.bars.values())
    assert pd.Timestamp(summary["replay_start"]) == first_oos
    assert summary["pairs_given_up"] == [] and not summary["stale_timestamps"]
    # the traders warmed up on every in-sample bar of their pair (logged by each trader)
    for pid, frame in frames.items():
        n_in = int((frame.index < CUTOFF).sum())
        assert f"[{pid}] INFO warmed up on {n_in} bars ({frame.index[0]} .. {frame.index[n_in - 1]})" in r.stderr

    live_trades = pd.read_csv(run / "trades.csv")
    events = [json.loads(line) for line in open(run / "events.jsonl")]
    last_t = max(pd.Timestamp(e["t"]) for e in events if e.get("event") == "order")
    total = 0
    for pid, frame in frames.items():
        closed, want, sig = expected_fills(frame, pf, pid)
        got, unfilled = live_fills(events, pid)
        # the live signals at each decision are the optimizer's (same closes since data.start, same Kalman
        # filter path): a skipped or extra bar moves the hedge ratio and the z-score
        decisions = [e for e in events if e.get("pair") == pid and e.get("event") == "signal"]
        assert decisions, pid
        for e in decisions:
            ref = sig.loc[pd.Timestamp(e["t"])]
            assert e["beta"] == pytest.approx(ref["beta"], rel=1e-12, abs=0), (pid, e["t"], "beta")
            assert e["zscore"] == pytest.approx(ref["zscore"], rel=1e-9, abs=1e-12), (pid, e["t"], "zscore")
        # an order decided on the final bar cannot fill (the backtest takes no decision there)
        assert all(pd.Timestamp(o["t"]) == last_t for o in unfilled), unfilled
        assert len(got) == len(want), f"{pid}: {len(got)} live fills vs {len(want)} in the backtest"
        # same decision bar, leg, signed quantity; same fill price (the open of the same next bar, slipped)
        for g, w in zip(got, want):
            assert g[:3] == w[:3], f"{pid}: first differing fill: live {g} vs backtest {w}"
            assert abs(g[3] - w[3]) < 1e-6, f"{pid}: fill price live {g} vs backtest {w}"
        lt = live_trades[live_trades["pair"] == pid].reset_index(drop=True)
        assert len(lt) == len(closed) > 0, pid
        dec = [frame.index[frame.index >= pd.Timestamp(pf.data.start)][int(i)] for i in closed["entry_decision_bar"]]
        assert list(pd.to_datetime(lt["entry_time"], utc=True)) == dec
        assert list(lt["side"]) == ["long_spread" if s > 0 else "short_spread" for s in closed["side"]]
        assert list(lt["qty_y"]) == list(closed["qty_y"]) and list(lt["qty_x"]) == list(closed["qty_x"])
        np.testing.assert_allclose(lt["pnl_usd"], closed["pnl_usd"], atol=1e-5)
        total += len(closed)
    assert total == summary["trades"]


def test_optimizer_output_drives_the_replay_to_the_optimizers_holdout_trades(tmp_path, equities_5min):
    """End to end as a user runs it: optimizer.py writes the params and its own backtest of the held-out month
    (--holdout-trades); controller.py's default replay of that month trades exactly the same."""
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([[y, x] for y, x in PAIRS]))
    env = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID")}
    # selection gates opened so the three (non-cointegrated) pairs get parameters; --trade-rejected trades all
    opt = subprocess.run([sys.executable, str(ROOT / "optimizer.py"), "--quiet", "--data", str(equities_5min),
                          "--pairs", str(pairs), "--params", str(tmp_path / "params.json"), "--report-all",
                          "--holdout-trades", str(tmp_path / "holdout.csv")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert opt.returncode == 0, opt.stderr[-3000:]
    want = pd.read_csv(tmp_path / "holdout.csv")
    assert set(want["pair"]) == {f"{y}-{x}" for y, x in PAIRS} and len(want) > 10
    r = subprocess.run([sys.executable, str(ROOT / "controller.py"), "--data", str(equities_5min),
                        "--pairs", str(pairs), "--params", str(tmp_path / "params.json"),
                        "--run-dir", str(tmp_path / "run"), "--trade-rejected"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    got = pd.read_csv(tmp_path / "run" / "trades.csv")
    for pid, w in want.groupby("pair"):
        w = w[w["exit_reason"] != "open"].reset_index(drop=True)
        g = got[got["pair"] == pid].reset_index(drop=True)
        assert len(g) == len(w) > 0, pid
        assert list(pd.to_datetime(g["entry_time"], utc=True)) == list(pd.to_datetime(w["entry_decision_time"], utc=True))
        assert list(g["side"]) == ["long_spread" if s > 0 else "short_spread" for s in w["side"]]
        assert list(g["qty_y"]) == list(w["qty_y"]) and list(g["qty_x"]) == list(w["qty_x"])
        for col in ("entry_price_y", "entry_price_x", "exit_price_y", "exit_price_x"):
            if col in g:
                np.testing.assert_allclose(g[col], w[col], atol=1e-6, err_msg=f"{pid} {col}")
        np.testing.assert_allclose(g["pnl_usd"], w["pnl_usd"], atol=1e-5, err_msg=pid)
