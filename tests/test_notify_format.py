"""Pure message formatting: units, sides, times, limits."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pairtrade.notify import format as fmt

TS = datetime(2025, 6, 2, 14, 35, tzinfo=timezone.utc)


def test_entry_long_spread_names_legs_actions_and_units():
    text = fmt.format_entry("XOM-CVX", "long", 100, 85.5, 110.25, 150.0, -2.134, TS)
    lines = text.splitlines()
    assert lines[0] == "ENTRY XOM-CVX: LONG spread"
    assert lines[1] == "XOM (y): BUY 100 shares @ 110.25 USD"
    assert lines[2] == "CVX (x): SELL 85.5 shares @ 150.00 USD"
    assert "gross notional: 23,850.00 USD" in text  # 100*110.25 + 85.5*150
    assert "z-score: -2.13" in text
    assert text.endswith("time: 2025-06-02 14:35:00 UTC")


def test_entry_short_spread_and_numeric_side_and_signed_quantities():
    text = fmt.format_entry("KO-PEP", -1, -10, 7, 60.0, 170.0, 2.5, None)
    assert "SHORT spread" in text
    assert "KO (y): SELL 10 shares" in text
    assert "PEP (x): BUY 7 shares" in text
    assert "time:" not in text


def test_entry_unknown_side_raises_and_odd_pair_id_uses_y_x():
    with pytest.raises(ValueError, match="unknown spread side"):
        fmt.format_entry("A-B", "sideways", 1, 1, 1, 1, 0, None)
    text = fmt.format_entry("BRK-B-BRK-A", "short_spread", 1, 1, 1, 1, 0, None)
    assert "y (y): SELL 1 share @" in text


def test_exit_signed_pnl():
    assert fmt.format_exit("XOM-CVX", "z-stop", -1234.5, TS) == (
        "EXIT XOM-CVX: z-stop\nP&L: -1,234.50 USD\ntime: 2025-06-02 14:35:00 UTC"
    )
    assert "P&L: +12.00 USD" in fmt.format_exit("XOM-CVX", "exit threshold", 12, None)


def test_equity_lists_nonzero_positions_sorted():
    text = fmt.format_equity(100_123.456, 50_000, {"XOM": 100, "CVX": -85, "KO": 0}, TS)
    assert text.splitlines() == [
        "EQUITY update",
        "equity: 100,123.46 USD",
        "cash: 50,000.00 USD",
        "positions (2):",
        "  CVX: -85 shares",
        "  XOM: 100 shares",
        "time: 2025-06-02 14:35:00 UTC",
    ]
    assert "positions: none" in fmt.format_equity(1, 1, {}, None)


def test_equity_caps_position_lines_and_message_length():
    many = {f"S{i:04d}": i + 1 for i in range(500)}
    text = fmt.format_equity(1, 1, many, TS)
    assert f"… and {500 - fmt.MAX_POSITION_LINES} more" in text
    assert len(fmt.format_alert("x" * 10_000)) == fmt.MAX_MESSAGE_CHARS


@pytest.mark.parametrize(
    "ts",
    [TS, datetime(2025, 6, 2, 14, 35), TS.timestamp(), int(TS.timestamp()), "2025-06-02T14:35:00Z",
     "2025-06-02T16:35:00+02:00"],
)
def test_time_inputs_all_print_utc(ts):
    assert fmt.format_ts(ts) == "2025-06-02 14:35:00 UTC"


def test_pandas_timestamp_is_accepted():
    pd = pytest.importorskip("pandas")
    assert fmt.format_ts(pd.Timestamp("2025-06-02 14:35", tz="UTC")) == "2025-06-02 14:35:00 UTC"


def test_units_helpers():
    assert fmt.format_shares(1) == "1 share"
    assert fmt.format_shares(2.25) == "2.25 shares"
    assert fmt.format_usd(float("nan")) == "n/a USD"
    with pytest.raises(TypeError):
        fmt.to_epoch_secs(object())
