"""Bar loading: formats, session filter, alignment and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pairtrade.data.bars import DataError, align, embedded_bars, load_bars, regular_hours


def _long(tmp_path, mutate=None, drop=None):
    idx = pd.date_range("2025-07-02 09:30", periods=6, freq="5min")
    rows = [(s, t, 10.0 + i, 10.5 + i, 9.5 + i, 10.2 + i, 100) for s in ("AAA", "BBB") for i, t in enumerate(idx)]
    df = pd.DataFrame(rows, columns=["symbol", "datetime", "open", "high", "low", "close", "volume"])
    if mutate:
        mutate(df)
    if drop:
        df = df.drop(columns=drop)
    f = tmp_path / "bars.csv"
    df.to_csv(f, index=False)
    return f


def test_long_file_loads_as_utc_bar_starts(tmp_path):
    bs = load_bars(_long(tmp_path))
    assert bs.symbols == ["AAA", "BBB"] and bs.bar_size == "5Min"
    a = bs.bars["AAA"]
    assert str(a.index.tz) == "UTC" and a.index[0] == pd.Timestamp("2025-07-02 13:30", tz="UTC")  # EDT = UTC-4
    assert a["close"].tolist() == [10.2 + i for i in range(6)]


def test_partial_nan_and_zero_prices_are_errors_naming_file_symbol_column(tmp_path):
    f = _long(tmp_path, lambda d: d.__setitem__("close", d["close"].where(d.index != 3, np.nan)))
    with pytest.raises(DataError, match=r"bars.csv: symbol AAA: column 'close'.*2025-07-02 13:45"):
        load_bars(f)
    f = _long(tmp_path, lambda d: d.__setitem__("open", d["open"].where(d.index != 8, 0.0)))
    with pytest.raises(DataError, match=r"symbol BBB: column 'open'"):
        load_bars(f)


def test_minutes_without_any_trade_are_dropped(tmp_path):
    def blank(d):
        for c in ("open", "high", "low", "close"):
            d.loc[2, c] = np.nan
    bs = load_bars(_long(tmp_path, blank))
    assert len(bs.bars["AAA"]) == 5 and len(bs.bars["BBB"]) == 6


def test_missing_column_and_symbol(tmp_path):
    f = _long(tmp_path, drop=["low"])
    with pytest.raises(DataError, match=r"missing column\(s\) \['low'\]"):
        load_bars(f)
    with pytest.raises(DataError, match=r"symbol\(s\) \['ZZZ'\] not in file"):
        load_bars(_long(tmp_path), symbols=["AAA", "ZZZ"])
    with pytest.raises(DataError, match="symbol 'ZZZ' not found in"):
        load_bars(_long(tmp_path)).require("ZZZ")


def test_regular_hours_drops_pre_market_holidays_and_keeps_half_days(equities_5min):
    spy = load_bars(equities_5min, symbols=["SPY"]).bars["SPY"]
    rth = regular_hours(spy, "5Min")
    ny = rth.index.tz_convert("America/New_York")
    assert ny.time.min() == pd.Timestamp("09:30").time() and ny.time.max() == pd.Timestamp("15:55").time()
    assert len(rth) < len(spy)  # SPY carries pre/post-market bars from the live recorder
    per_day = pd.Series(1, index=ny.date).groupby(level=0).sum()
    assert per_day[pd.Timestamp("2025-11-28").date()] == 42  # half day after Thanksgiving closes at 13:00
    assert pd.Timestamp("2025-12-25").date() not in per_day.index


def test_embedded_default_and_align():
    bs = embedded_bars()
    assert bs.symbols == ["COMP", "SPX"] and bs.bar_size == "1Day" and "arch" in bs.source
    both = align(bs.bars["SPX"], bs.bars["COMP"])
    assert list(both.columns) == ["open_y", "close_y", "open_x", "close_x"] and len(both) == 5031
    assert (both.to_numpy() > 0).all()
