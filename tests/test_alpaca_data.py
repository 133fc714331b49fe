"""fetch_alpaca_bars against the local exchange: conversion, cache, errors without secrets."""

from __future__ import annotations

import pandas as pd
import pytest

from pairtrade.data.alpaca import bars_to_frame, fetch_alpaca_bars, timeframe_of
from pairtrade.data.bars import DataError, load_bars
from pairtrade.exchange import LocalExchange

START = "2025-06-02T13:30:00Z"
SECRET = "s3cr3t-value-never-shown"


@pytest.fixture(scope="module")
def xom_cvx():
    from tests.conftest import EQUITIES_5MIN, shared_file
    return load_bars(shared_file(EQUITIES_5MIN), symbols=["XOM", "CVX"])


@pytest.fixture
def ex(xom_cvx):
    e = LocalExchange(xom_cvx, start=START, secret=SECRET, rate_limit_per_min=None).start()
    yield e
    e.stop()


def test_fetch_converts_to_canonical_frames_and_caches(ex, xom_cvx, tmp_path):
    a, b = "2025-05-19T00:00:00Z", "2025-06-30T00:00:00Z"  # end beyond the replay clock
    bs = fetch_alpaca_bars(["XOM", "CVX"], a, b, "5Min", "local", SECRET, url_override=ex.base_url,
                           cache_dir=tmp_path)
    assert bs.bar_size == "5Min" and bs.symbols == ["CVX", "XOM"] and SECRET not in bs.source
    for sym in ("XOM", "CVX"):
        ref = xom_cvx.bars[sym]
        ref = ref[(ref.index >= pd.Timestamp(a)) & (ref.index < pd.Timestamp(START))]  # no look-ahead
        got = bs.bars[sym]
        assert str(got.index.tz) == "UTC" and list(got.columns) == ["open", "high", "low", "close", "volume"]
        assert all(str(t) == "float64" for t in got.dtypes)
        pd.testing.assert_frame_equal(got, ref, check_freq=False, check_names=False)
    files = sorted(p.name for p in tmp_path.rglob("*.csv.gz"))
    assert len(files) == 2 and all(SECRET not in f for f in files)
    ex.stop()  # the server is gone: the second call must come from the cache
    again = fetch_alpaca_bars(["XOM", "CVX"], a, b, "5Min", "local", SECRET, url_override=ex.base_url,
                              cache_dir=tmp_path)
    for sym in ("XOM", "CVX"):
        pd.testing.assert_frame_equal(again.bars[sym], bs.bars[sym], check_freq=False)


def test_fetch_daily_aggregate_without_cache(ex, xom_cvx):
    bs = fetch_alpaca_bars("XOM", "2025-05-27", "2025-05-31", "1Day", "local", SECRET,
                           url_override=ex.base_url, cache_dir=None)
    df = bs.bars["XOM"]
    assert len(df) == 4 and df["close"].iloc[-1] == xom_cvx.bars["XOM"].loc[:"2025-05-30 19:55:00+00:00",
                                                                           "close"].iloc[-1]


def test_fetch_errors_name_the_problem_but_never_the_secret(ex, tmp_path):
    with pytest.raises(DataError) as e:
        fetch_alpaca_bars(["NOPE"], "2025-05-19", "2025-05-30", "5Min", "local", SECRET,
                          url_override=ex.base_url, cache_dir=tmp_path)
    assert "NOPE" in str(e.value) and SECRET not in str(e.value)
    with pytest.raises(DataError) as e:
        fetch_alpaca_bars(["XOM"], "2025-05-19", "2025-05-30", "5Min", "local", "wrong-" + SECRET,
                          url_override=ex.base_url, cache_dir=tmp_path)
    msg = str(e.value)
    assert "HTTP 403" in msg and SECRET not in msg and e.value.__cause__ is None
    with pytest.raises(DataError):
        timeframe_of("5Sec")


def test_bars_to_frame_accepts_raw_dicts_with_strings():
    df = bars_to_frame([{"t": "2025-01-02T14:30:00Z", "o": "1.5", "h": "2", "l": "1", "c": "1.75", "v": "10"}])
    assert df.index[0] == pd.Timestamp("2025-01-02T14:30:00Z") and df["close"].iloc[0] == 1.75
    assert bars_to_frame([]).empty
