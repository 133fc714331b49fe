"""Inputs as users have them: pairs.json spellings, bar file layouts and Alpaca key names."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pairtrade.config import ConfigError, PairsFile, PairSpec, load_pairs
from pairtrade.data.bars import TIME_COLUMNS, DataError, load_bars
from pairtrade.live import secrets
from tests.conftest import shared_file

NY = "America/New_York"
TIMES = ["2025-07-02 09:30:00", "2025-07-02 09:35:00", "2025-07-02 09:40:00"]
# 09:30 New York in July is EDT = UTC-4
UTC = pd.DatetimeIndex(["2025-07-02 13:30", "2025-07-02 13:35", "2025-07-02 13:40"], tz="UTC")


# --------------------------------------------------------------------------------------------
# pairs.json
# --------------------------------------------------------------------------------------------
def _write(tmp_path, obj, name="pairs.json"):
    f = tmp_path / name
    f.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return f


def test_pairs_file_spellings_give_the_same_model(tmp_path):
    expected = PairsFile(pairs=[PairSpec(y="XOM", x="CVX"), PairSpec(y="GS", x="MS")])
    spellings = [
        {"pairs": [{"y": "XOM", "x": "CVX"}, {"y": "GS", "x": "MS"}]},
        {"pairs": [["XOM", "CVX"], ["GS", "MS"]]},
        [["XOM", "CVX"], ["GS", "MS"]],
        [["xom", " cvx"], {"y": "GS", "x": "MS"}],  # mixed, lower case and blanks normalised as before
    ]
    for obj in spellings:
        got = load_pairs(_write(tmp_path, obj))
        assert got == expected, obj
        # first symbol is the dependent leg y, second the hedge leg x
        assert [(p.y, p.x) for p in got.pairs] == [("XOM", "CVX"), ("GS", "MS")]
    assert PairsFile.model_validate([["XOM", "CVX"], ["GS", "MS"]]) == expected


@pytest.mark.parametrize("entry", [["GS"], ["GS", "MS", "C"], ["GS", 5], "GS-MS", 7, None])
def test_malformed_list_entry_names_file_and_entry(tmp_path, entry):
    for obj in ([["XOM", "CVX"], entry], {"pairs": [["XOM", "CVX"], entry]}):
        f = _write(tmp_path, obj, "my_pairs.json")
        with pytest.raises(ConfigError) as ei:
            load_pairs(f)
        msg = str(ei.value)
        assert "my_pairs.json" in msg and "pairs.1: expected two symbols [Y, X]" in msg
        assert json.dumps(entry) in msg


def test_list_spelling_keeps_schema_checks(tmp_path):
    with pytest.raises(ConfigError, match=r"pairs.json.*\n.*pairs.0: .*legs must differ"):
        load_pairs(_write(tmp_path, [["XOM", "XOM"]]))
    with pytest.raises(ConfigError, match="XOM-CVX is listed twice"):
        load_pairs(_write(tmp_path, [["XOM", "CVX"], ["xom", "cvx"]]))
    with pytest.raises(ConfigError, match="field pairs: List should have at least 1 item"):
        load_pairs(_write(tmp_path, []))
    with pytest.raises(ConfigError, match=r"pairs.1.x"):  # object entries still name the field
        load_pairs(_write(tmp_path, {"pairs": [["XOM", "CVX"], {"y": "GS"}]}))


# --------------------------------------------------------------------------------------------
# bar files
# --------------------------------------------------------------------------------------------
def _long_ohlc(time_col: str) -> pd.DataFrame:
    rows = []
    for k, sym in enumerate(("AAA", "BBB")):
        for i, t in enumerate(TIMES):
            base = 10.0 * (k + 1) + i
            rows.append((sym, t, base, base + 0.5, base - 0.5, base + 0.2, 100 * (i + 1)))
    return pd.DataFrame(rows, columns=["symbol", time_col, "open", "high", "low", "close", "volume"])


@pytest.mark.parametrize("time_col", list(TIME_COLUMNS) + ["DATETIME", "TimeStamp", "DATES"])
def test_every_time_column_name_in_long_and_wide_layout(tmp_path, time_col):
    src = _long_ohlc(time_col)
    f = tmp_path / "long.csv"
    src.to_csv(f, index=False)
    bs = load_bars(f)
    assert bs.symbols == ["AAA", "BBB"] and bs.bar_size == "5Min" and not bs.close_only
    a = bs.bars["AAA"]
    assert a.index.equals(UTC) and a.index.name == "timestamp"
    assert a["close"].tolist() == src.loc[src.symbol == "AAA", "close"].tolist()

    wide = pd.DataFrame({time_col: TIMES, "AAA": [1.0, 2.0, 3.0], "bbb": [4.0, 5.0, 6.0]})
    f = tmp_path / "wide.csv"
    wide.to_csv(f, index=False)
    bs = load_bars(f)
    assert bs.symbols == ["AAA", "BBB"] and bs.close_only
    assert bs.bars["BBB"].index.equals(UTC) and bs.bars["BBB"]["close"].tolist() == [4.0, 5.0, 6.0]


def test_no_time_column_lists_accepted_names(tmp_path):
    f = tmp_path / "notime.csv"
    _long_ohlc("when").to_csv(f, index=False)
    with pytest.raises(DataError) as ei:
        load_bars(f)
    msg = str(ei.value)
    assert "notime.csv" in msg and "when" in msg
    for name in ("datetime", "timestamp", "Date", "date", "Dates"):
        assert name in msg


def test_datetime_wins_over_date_in_real_iex_file():
    # GOOG/GOOGL/FOX/FOXA 1-min IEX Cloud file: both a 'datetime' and a session 'date' column
    bs = load_bars(shared_file("us_dualclass_1min_iexcloud_GOOG_GOOGL_FOX_FOXA_2021-02-22_to_2021-03-19.csv.gz"),
                   symbols=["GOOG"], duplicates="last")  # the file has two different GOOG bars at 2021-03-01 15:59
    assert bs.bar_size == "1Min"
    assert bs.bars["GOOG"].index[0] == pd.Timestamp("2021-02-22 14:30", tz="UTC")  # 09:30 EST


CHAN_HEADER = "symbol,Date,Open,High,Low,Close,Volume,Adj Close"


def _chan_long(tmp_path):
    """Chan's long layout with a 2-for-1 split of AAA after the second session (known truth)."""
    text = "\n".join([
        CHAN_HEADER,
        # raw prices before the split are twice the split-adjusted ones; Adj Close = Close / 2
        "AAA,2024-01-03,100.0,104.0,98.0,102.0,1000,51.0",
        "AAA,2024-01-04,102.0,106.0,100.0,104.0,1100,52.0",
        "AAA,2024-01-05,52.5,53.5,51.5,53.0,2400,53.0",
        "BBB,2024-01-03,20.0,21.0,19.5,20.5,500,20.5",
        "BBB,2024-01-04,20.5,21.5,20.0,21.0,600,21.0",
        "BBB,2024-01-05,21.0,22.0,20.5,21.5,700,21.5",
    ]) + "\n"
    f = tmp_path / "chan_long.csv"
    f.write_text(text)
    return f


def test_chan_long_format_raw_prices(tmp_path):
    bs = load_bars(_chan_long(tmp_path))
    assert bs.symbols == ["AAA", "BBB"] and bs.bar_size == "1Day" and not bs.close_only
    a = bs.bars["AAA"]
    # daily bars are stamped at the session's midnight in New York (EST = UTC-5 in January)
    assert a.index[0] == pd.Timestamp("2024-01-03 05:00", tz="UTC")
    assert a["open"].tolist() == [100.0, 102.0, 52.5] and a["close"].tolist() == [102.0, 104.0, 53.0]
    assert a["volume"].tolist() == [1000.0, 1100.0, 2400.0]


def test_adjusted_close_back_adjusts_the_bar(tmp_path):
    bs = load_bars(_chan_long(tmp_path), price_column="Adj Close")
    a = bs.bars["AAA"]
    assert "Adj Close" in bs.source and not bs.close_only
    # known truth: before a 2-for-1 split the adjusted bar is the raw bar halved; after it, unchanged
    assert a["close"].tolist() == [51.0, 52.0, 53.0]
    np.testing.assert_allclose(a["open"], [50.0, 51.0, 52.5])
    np.testing.assert_allclose(a["high"], [52.0, 53.0, 53.5])
    np.testing.assert_allclose(a["low"], [49.0, 50.0, 51.5])
    # no split in BBB: Adj Close == Close leaves the bar unchanged
    pd.testing.assert_frame_equal(bs.bars["BBB"], load_bars(_chan_long(tmp_path)).bars["BBB"])
    # case-insensitive column name
    pd.testing.assert_frame_equal(load_bars(_chan_long(tmp_path), price_column="adj close").bars["AAA"], a)


def test_absent_price_column_names_file_column_and_columns_present(tmp_path):
    with pytest.raises(DataError) as ei:
        load_bars(_chan_long(tmp_path), price_column="Adjusted")
    msg = str(ei.value)
    assert "chan_long.csv" in msg and "'Adjusted'" in msg and "'Adj Close'" in msg and "'Open'" in msg


def test_close_only_long_file(tmp_path):
    f = tmp_path / "close_only.csv"
    pd.DataFrame({"symbol": ["aaa"] * 3 + ["BBB"] * 3, "Timestamp": TIMES * 2,
                  "Close": [10.0, 10.5, 11.0, 20.0, 19.5, np.nan]}).to_csv(f, index=False)
    bs = load_bars(f)
    assert bs.close_only and bs.symbols == ["AAA", "BBB"]
    a = bs.bars["AAA"]
    assert a.index.equals(UTC) and a["close"].tolist() == [10.0, 10.5, 11.0]
    for c in ("open", "high", "low"):
        assert a[c].tolist() == a["close"].tolist()
    assert (a["volume"] == 0).all()
    assert len(bs.bars["BBB"]) == 2  # an empty close is a bar without a trade: dropped
    assert bs.between(UTC[1], UTC[2]).close_only  # sub-ranges keep the fill assumption
    # a close-only file with an adjusted column: the chosen column is the close
    f2 = tmp_path / "adj_only.csv"
    pd.DataFrame({"symbol": ["AAA"] * 3, "date": TIMES, "close": [10.0, 10.5, 11.0],
                  "adj_close": [5.0, 5.25, 5.5]}).to_csv(f2, index=False)
    bs = load_bars(f2, price_column="adj_close")
    assert bs.close_only and bs.bars["AAA"]["open"].tolist() == [5.0, 5.25, 5.5]


def test_partial_ohlc_is_still_an_error(tmp_path):
    f = tmp_path / "partial.csv"
    _long_ohlc("datetime").drop(columns=["high", "low"]).to_csv(f, index=False)
    with pytest.raises(DataError, match=r"partial.csv: missing column\(s\) \['high', 'low'\]"):
        load_bars(f)
    f = tmp_path / "noclose.csv"
    _long_ohlc("datetime").drop(columns=["close"]).to_csv(f, index=False)
    with pytest.raises(DataError, match=r"noclose.csv: missing column\(s\) \['close'\]"):
        load_bars(f)


def test_chan_wide_etf_file_loads_with_date(chan_etf):
    raw = pd.read_csv(chan_etf)
    bs = load_bars(chan_etf)
    assert bs.symbols == sorted(["EWA", "EWC", "IGE", "GLD", "GDX", "USO", "SPY"])
    assert bs.bar_size == "1Day" and bs.close_only
    ewa = bs.bars["EWA"]
    assert len(ewa) == 1500 and ewa.index[0] == pd.Timestamp("2006-04-26 04:00", tz="UTC")  # EDT
    np.testing.assert_array_equal(ewa["close"].to_numpy(), raw["EWA"].to_numpy())
    assert (ewa["open"] == ewa["close"]).all()
    gdx = raw["GDX"].dropna()  # GDX lists later: its empty cells are not bars
    assert len(bs.bars["GDX"]) == len(gdx)
    with pytest.raises(DataError, match=r"price_column 'Adj Close' is not applicable to a wide file"):
        load_bars(chan_etf, price_column="Adj Close")


# --------------------------------------------------------------------------------------------
# Alpaca key names
# --------------------------------------------------------------------------------------------
ALL_NAMES = ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "APCA_API_KEY_ID", "APCA_API_SECRET_KEY")


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env of the developer's clone
    for name in ALL_NAMES:
        monkeypatch.delenv(name, raising=False)  # also undoes what load_dotenv sets during the test
    return monkeypatch


def test_apca_names_are_picked_up(clean_env):
    clean_env.setenv("APCA_API_KEY_ID", "PKAPCA")
    clean_env.setenv("APCA_API_SECRET_KEY", "apca-secret")
    assert secrets.alpaca_keys() == ("PKAPCA", "apca-secret")
    assert secrets.have_alpaca_keys() and secrets.load_keys(local=False) == ("PKAPCA", "apca-secret")
    # blank project names (as left by copying .env.example) do not hide Alpaca's names
    clean_env.setenv("ALPACA_API_KEY", "")
    clean_env.setenv("ALPACA_SECRET_KEY", " ")
    assert secrets.load_keys(local=False) == ("PKAPCA", "apca-secret")


def test_project_names_win_and_pairs_are_not_mixed(clean_env):
    clean_env.setenv("APCA_API_KEY_ID", "PKAPCA")
    clean_env.setenv("APCA_API_SECRET_KEY", "apca-secret")
    clean_env.setenv("ALPACA_API_KEY", "PKMINE")
    assert secrets.alpaca_keys() == ("PKAPCA", "apca-secret")  # incomplete project pair: not mixed
    clean_env.setenv("ALPACA_SECRET_KEY", "my-secret")
    assert secrets.alpaca_keys() == ("PKMINE", "my-secret")


def test_apca_names_from_dotenv(clean_env, tmp_path):
    (tmp_path / ".env").write_text("APCA_API_KEY_ID=PKFILE\nAPCA_API_SECRET_KEY=file-secret\n")
    assert secrets.alpaca_keys() == ("PKFILE", "file-secret")


def test_missing_keys_message_names_both_conventions_never_values(clean_env):
    assert secrets.alpaca_keys() == (None, None) and not secrets.have_alpaca_keys()
    clean_env.setenv("ALPACA_API_KEY", "PKVALUE-DO-NOT-PRINT")
    clean_env.setenv("APCA_API_KEY_ID", "PKOTHER-DO-NOT-PRINT")
    assert not secrets.have_alpaca_keys()
    with pytest.raises(secrets.MissingKeys) as ei:
        secrets.load_keys(local=False)
    msg = str(ei.value)
    for name in ALL_NAMES:
        assert name in msg
    assert "DO-NOT-PRINT" not in msg and "PKVALUE" not in msg and "PKOTHER" not in msg
    assert secrets.load_keys(local=True) == (secrets.LOCAL_KEY, secrets.LOCAL_SECRET)
