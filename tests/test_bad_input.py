"""Issue 7, finding 10: bad input gets a clear error (file, field, symbol or time named), exit code 2, no traceback.

Every case is tried as a user would, through the real command lines (``optimizer.py``, ``controller.py``,
``python -m pairtrade.exchange``) in a subprocess, on simulated 5-minute bars of two symbols (fixed seed). The
expected times, lines and values come from the file we wrote, never from the code under test. One test uses a
real recorded file (IEX Cloud 1-minute bars of GOOG/FOX) that has two different bars at the same minute.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pairtrade.config import (SCHEMA_VERSION, ConfigError, CostModel, ParamsFile, StrategyParams, atomic_write_json,
                              load_params)
from pairtrade.data.bars import DataError, load_bars
from tests.conftest import ROOT, shared_file

NY = "America/New_York"
SESSIONS = 30  # 30 sessions x 78 five-minute bars per symbol
IN_SAMPLE_SESSIONS = 20


def _times() -> pd.DatetimeIndex:
    days = pd.bdate_range("2025-06-02", periods=SESSIONS + 2)
    days = days[~days.isin(pd.to_datetime(["2025-06-19", "2025-07-04"]))][:SESSIONS]  # NYSE holidays: no session
    out = [pd.date_range(d + pd.Timedelta(hours=9, minutes=30), periods=78, freq="5min") for d in days]
    return out[0].append(out[1:])


TIMES = _times()  # naive New York bar starts, as written in the file
FIRST_BAR_UTC = TIMES[0].tz_localize(NY).tz_convert("UTC")
IN_SAMPLE_END_UTC = TIMES[IN_SAMPLE_SESSIONS * 78 - 1].tz_localize(NY).tz_convert("UTC")


def _frame(seed: int = 7) -> pd.DataFrame:
    """Long layout: AAA = 1.5 BBB + 10 + AR(1) noise, BBB a geometric random walk (USD)."""
    rng = np.random.default_rng(seed)
    n = len(TIMES)
    x = 50 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    s = np.zeros(n)
    for i in range(1, n):
        s[i] = 0.95 * s[i - 1] + rng.normal(0, 0.1)
    rows = []
    for sym, p in (("AAA", 1.5 * x + 10 + s), ("BBB", x)):
        for t, v in zip(TIMES, p):
            rows.append((sym, t.strftime("%Y-%m-%d %H:%M:%S"), f"{v:.4f}", f"{v * 1.001:.4f}", f"{v * 0.999:.4f}",
                         f"{v:.4f}", "1000"))
    return pd.DataFrame(rows, columns=["symbol", "datetime", "open", "high", "low", "close", "volume"])


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad_input")
    good = _frame()
    out = {"dir": d, "good": d / "good.csv"}
    good.to_csv(out["good"], index=False)
    abc = good.copy()
    abc.loc[100, "close"] = "abc"  # row 100 of the frame = line 102 of the file (header is line 1)
    out["abc"] = d / "abc.csv"
    abc.to_csv(out["abc"], index=False)
    conflict = good.iloc[[200]].copy()
    conflict["close"] = "99.0000"  # the same symbol and time, another close
    out["conflict"] = d / "conflict.csv"
    pd.concat([good, conflict]).to_csv(out["conflict"], index=False)
    out["exact"] = d / "exact.csv"
    pd.concat([good, good.iloc[[200, 300]]]).to_csv(out["exact"], index=False)
    (d / "pairs.json").write_text(json.dumps({"pairs": [{"y": "AAA", "x": "BBB"}]}))
    params = StrategyParams(entry_z=1.7, exit_z=0.4, stop_z=3.6, zscore_window_bars=78, adf_window_bars=100,
                            hurst_window_bars=100, warmup_bars=100)
    pf = ParamsFile(schema_version=SCHEMA_VERSION, generated_at="2026-01-01T00:00:00+00:00", bar_size="5Min",
                    data={"source": "simulated", "start": FIRST_BAR_UTC.isoformat(),
                          "end": IN_SAMPLE_END_UTC.isoformat()},
                    costs=CostModel(), pairs={"AAA-BBB": {"y": "AAA", "x": "BBB", "tradable": True, "params": params}})
    out["params"] = d / "params.json"
    atomic_write_json(out["params"], pf)
    return out


def _env() -> dict:
    drop = ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "ALPACA_API_KEY", "ALPACA_SECRET_KEY", "APCA_API_KEY_ID",
            "APCA_API_SECRET_KEY")
    return {k: v for k, v in os.environ.items() if k not in drop}


def optimizer(files, *args: str, data: str = "good") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "optimizer.py"), "--quiet", "--data", str(files[data]),
                           "--pairs", str(files["dir"] / "pairs.json"), "--params", str(files["dir"] / "out.json"),
                           *args], capture_output=True, text=True, timeout=120, cwd=files["dir"], env=_env())


def controller(files, *args: str, data: str = "good", params: Path | None = None) -> subprocess.CompletedProcess:
    # a run that is not refused would replay and trade: the timeout bounds the test when a check is missing
    return subprocess.run([sys.executable, str(ROOT / "controller.py"), "--data", str(files[data]),
                           "--pairs", str(files["dir"] / "pairs.json"), "--params", str(params or files["params"]),
                           "--run-dir", str(files["dir"] / "run"), "--env-file", str(files["dir"] / "none.env"),
                           *args], capture_output=True, text=True, timeout=120, cwd=files["dir"], env=_env())


def exchange(files, *args: str, data: str = "good") -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "pairtrade.exchange", "--data", str(files[data]), "--port", "0",
                               *args], capture_output=True, text=True, timeout=20, cwd=ROOT, env=_env())
    except subprocess.TimeoutExpired:
        pytest.fail("the exchange started serving instead of refusing the input")


def refused(r: subprocess.CompletedProcess, *names: str) -> str:
    """Exit code 2, no traceback, every name in stderr; returns stderr."""
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr[-3000:]
    for n in names:
        assert n in r.stderr, (n, r.stderr)
    return r.stderr


# ------------------------------------------------------------------------------------------------------------
# 1. a non-numeric price
# ------------------------------------------------------------------------------------------------------------
def test_non_numeric_close_is_refused_by_optimizer_controller_and_exchange(files):
    """close='abc' on line 102 (AAA at the 101st bar's time): named with file, symbol, column, value, line, time."""
    when = TIMES[100].strftime("%Y-%m-%d %H:%M:%S")
    names = ("abc.csv", "AAA", "'close'", "'abc'", "line 102", when)
    refused(optimizer(files, data="abc"), *names)
    refused(controller(files, data="abc"), *names)
    refused(exchange(files, data="abc"), *names)


def test_non_numeric_cell_in_a_wide_file(tmp_path):
    t = pd.bdate_range("2024-01-02", periods=5)
    path = tmp_path / "wide.csv"
    pd.DataFrame({"Date": t.strftime("%Y-%m-%d"), "EWA": ["20.1", "20.2", "n/a?", "20.4", "20.5"],
                  "EWC": ["30", "31", "32", "33", "34"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"wide\.csv: symbol EWA: column 'EWA' .*'n/a\?' at line 4 \(time 2024-01-04\)"):
        load_bars(path)


# ------------------------------------------------------------------------------------------------------------
# 2. --start / --end that are not dates
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opt", ["--start", "--end"])
def test_controller_time_that_is_not_a_date_is_one_line_exit_2(files, opt):
    r = controller(files, opt, "notadate")
    err = refused(r, opt, "'notadate'", "ISO 8601")
    assert len(err.strip().splitlines()) == 1, err


def test_controller_inverted_range_is_refused_before_reading_files(files):
    r = controller(files, "--start", "2025-07-01", "--end", "2025-06-01", params=files["dir"] / "absent.json")
    err = refused(r, "--start 2025-07-01", "--end 2025-06-01")
    assert len(err.strip().splitlines()) == 1 and "absent.json" not in err, err


# ------------------------------------------------------------------------------------------------------------
# 3. a threshold missing from the params file is never defaulted
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["entry_z", "exit_z", "stop_z"])
def test_params_file_without_a_threshold_is_refused(files, tmp_path, field):
    raw = json.loads(files["params"].read_text())
    del raw["pairs"]["AAA-BBB"]["params"][field]
    path = tmp_path / "no_threshold.json"
    path.write_text(json.dumps(raw))
    refused(controller(files, params=path), "no_threshold.json", "pairs.AAA-BBB", f"params.{field}", "never defaulted")
    with pytest.raises(ConfigError, match=rf"(?s)no_threshold\.json.*pairs\.AAA-BBB.*params\.{field}"):
        load_params(path)


def test_thresholds_are_read_from_the_file_and_defaults_stay_in_code(files):
    pp = load_params(files["params"]).pairs["AAA-BBB"].params
    assert (pp.entry_z, pp.exit_z, pp.stop_z) == (1.7, 0.4, 3.6)  # the file's values (fixture), not 2.0/0.5/4.0
    d = StrategyParams()  # built in code: the documented defaults remain
    assert (d.entry_z, d.exit_z, d.stop_z) == (2.0, 0.5, 4.0)
    raw = json.loads(files["params"].read_text())
    raw["pairs"]["AAA-BBB"] = {"y": "AAA", "x": "BBB", "tradable": False, "reason": "rejected"}  # no params: fine
    ParamsFile.model_validate(raw)


# ------------------------------------------------------------------------------------------------------------
# 4. duplicate timestamps
# ------------------------------------------------------------------------------------------------------------
def test_conflicting_duplicate_bar_is_refused_naming_file_symbol_time_and_lines(files):
    t_utc = TIMES[200].tz_localize(NY).tz_convert("UTC")
    n_lines = 2 * len(TIMES) + 2  # the conflicting row was appended after every row of both symbols
    names = ("conflict.csv", "symbol AAA", str(t_utc), f"lines {200 + 2}, {n_lines}", "99")
    refused(optimizer(files, data="conflict"), *names)
    refused(controller(files, data="conflict"), *names)


def test_exact_duplicates_are_dropped_silently(files):
    good, exact = load_bars(files["good"]), load_bars(files["exact"])
    for s in ("AAA", "BBB"):
        pd.testing.assert_frame_equal(exact.bars[s], good.bars[s])


def test_real_file_with_two_bars_at_one_minute(tmp_path):
    """IEX Cloud GOOG 2021-03-01 15:59 New York appears twice with different prices; found from the raw file."""
    path = shared_file("us_dualclass_1min_iexcloud_GOOG_GOOGL_FOX_FOXA_2021-02-22_to_2021-03-19.csv.gz")
    with gzip.open(path, "rt") as fh:
        rows = [(n, r) for n, r in enumerate(csv.DictReader(fh), start=2)
                if r["symbol"] == "GOOG" and r["datetime"] == "2021-03-01 15:59:00"]
    assert len(rows) == 2 and rows[0][1]["close"] != rows[1][1]["close"]
    t = pd.Timestamp("2021-03-01 15:59", tz=NY).tz_convert("UTC")
    with pytest.raises(DataError, match=re.escape(f"symbol GOOG: 2 rows for the bar at {t} (lines {rows[0][0]}, "
                                                  f"{rows[1][0]})")):
        load_bars(path, symbols=["GOOG"])
    for keep, (_, row) in (("first", rows[0]), ("last", rows[1])):  # an explicit choice of the caller
        bar = load_bars(path, symbols=["GOOG"], duplicates=keep).bars["GOOG"].loc[t]
        assert bar["close"] == float(row["close"]) and bar["open"] == float(row["open"])


def test_conflict_in_a_wide_file(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("Date,EWA,EWC\n2024-01-02,20.1,30\n2024-01-03,20.2,31\n2024-01-03,20.2,31.5\n")
    with pytest.raises(DataError, match=r"symbol EWC: 2 rows for the bar at 2024-01-03 05:00:00\+00:00 \(lines 3, 4\)"):
        load_bars(path)


# ------------------------------------------------------------------------------------------------------------
# 5. optimizer --start after --end
# ------------------------------------------------------------------------------------------------------------
def test_optimizer_inverted_range_exits_2(files):
    refused(optimizer(files, "--start", "2025-09-01", "--end", "2025-06-01"), "--start 2025-09-01",
            "--end 2025-06-01")
    refused(optimizer(files, "--start", "2025-06-10T12:00", "--end", "2025-06-10T11:00"), "--start", "--end")


def test_optimizer_start_after_the_default_in_sample_end_exits_2(files):
    # the default holds out the final month: in-sample ends on the same day one month before the last session + 1
    last = TIMES[-1]
    cut = pd.Timestamp((last.normalize() + pd.Timedelta(days=1)) - pd.DateOffset(months=1)).tz_localize(NY)
    r = optimizer(files, "--start", (cut + pd.Timedelta(days=1)).strftime("%Y-%m-%d"))
    refused(r, "--start", str(cut.tz_convert("UTC")))


def test_optimizer_range_outside_the_data_exits_2(files):
    refused(optimizer(files, "--end", "2025-05-01"), "good.csv", "no bar", str(FIRST_BAR_UTC))


# ------------------------------------------------------------------------------------------------------------
# 6. controller --start before the data
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("start", ["2025-05-01", TIMES[0].tz_localize(NY).tz_convert("UTC").isoformat()])
def test_controller_start_before_the_data_names_the_first_allowed_time(files, start):
    first_allowed = FIRST_BAR_UTC + pd.Timedelta(minutes=5)  # the first bar has closed: one bar of history
    refused(controller(files, "--start", start), "--start", f"first allowed time {first_allowed}", "good.csv")


def test_replay_range_rules(files, caplog):
    from pairtrade.data.bars import regular_hours
    from pairtrade.live.controller import replay_range

    bs = load_bars(files["good"])
    bs = type(bs)({s: regular_hours(df, "5Min") for s, df in bs.bars.items()}, bs.source, bs.bar_size)
    pf = load_params(files["params"])
    first_oos = TIMES[IN_SAMPLE_SESSIONS * 78].tz_localize(NY).tz_convert("UTC")
    assert replay_range(bs, pf, None, None)[0] == first_oos
    # the first allowed time itself is accepted
    first_allowed = FIRST_BAR_UTC + pd.Timedelta(minutes=5)
    assert replay_range(bs, pf, first_allowed.isoformat(), None)[0] == first_allowed
    # a start inside the in-sample range is allowed but said so, naming the first out-of-sample bar
    with caplog.at_level(logging.WARNING, logger="pairtrade.controller"):
        replay_range(bs, pf, (FIRST_BAR_UTC + pd.Timedelta(days=7)).isoformat(), None)
    assert "in-sample" in caplog.text and str(first_oos) in caplog.text
    # after the data: no bar to replay
    with pytest.raises(DataError, match="no bar"):
        replay_range(bs, pf, "2025-09-01", "2025-10-01")
    # a params file whose in-sample range ends before the data begins: the default start would have no history
    early = ParamsFile.model_validate({**pf.model_dump(mode="json"),
                                       "data": {"source": "x", "start": "2024-01-02T14:30:00+00:00",
                                                "end": "2024-12-31T20:55:00+00:00"}})
    with pytest.raises(DataError, match="first allowed time") as err:
        replay_range(bs, early, None, None)
    assert f"--start >= {first_allowed}" in str(err.value) and "2024-12-31" in str(err.value)
