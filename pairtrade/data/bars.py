"""Bars in: recorded files, the embedded default data set, session filter and alignment of two legs.

Canonical form
--------------
``Bars = dict[str, pandas.DataFrame]``: one frame per symbol, index ``timestamp`` (tz-aware UTC,
the bar's **start** time, strictly increasing, no duplicates), float64 columns
``open, high, low, close, volume`` (prices in USD, volume in shares).

Errors
------
:class:`DataError` (a ``ValueError``) names the file, column or symbol at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

Bars = dict[str, pd.DataFrame]
COLUMNS = ("open", "high", "low", "close", "volume")
EXCHANGE_TZ = "America/New_York"


class DataError(ValueError):
    """Bad market data: missing file, column or symbol, NaN or non-positive prices."""


@dataclass(frozen=True)
class BarSet:
    """Bars of several symbols plus where they came from.

    Attributes
    ----------
    bars : dict[str, DataFrame]
        Canonical bars per symbol (see module docstring).
    source : str
        Human-readable description of the data, printed by optimizer and controller.
    bar_size : str
        Alpaca timeframe string: ``"1Min"``, ``"5Min"``, ``"15Min"``, ``"1Hour"`` or ``"1Day"``.
    """

    bars: Bars
    source: str
    bar_size: str

    @property
    def symbols(self) -> list[str]:
        return sorted(self.bars)

    @property
    def start(self) -> pd.Timestamp:
        return min(df.index[0] for df in self.bars.values())

    @property
    def end(self) -> pd.Timestamp:
        return max(df.index[-1] for df in self.bars.values())

    def require(self, symbol: str) -> pd.DataFrame:
        """Bars of ``symbol``; :class:`DataError` naming the symbol and the source when absent."""
        try:
            return self.bars[symbol]
        except KeyError:
            raise DataError(
                f"symbol {symbol!r} not found in {self.source} (available: {', '.join(self.symbols)})"
            ) from None

    def between(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> "BarSet":
        """Sub-range ``[start, end]`` (UTC, inclusive) of every symbol."""
        out = {}
        for s, df in self.bars.items():
            sel = df
            if start is not None:
                sel = sel[sel.index >= start]
            if end is not None:
                sel = sel[sel.index <= end]
            out[s] = sel
        return BarSet(out, self.source, self.bar_size)


def infer_bar_size(index: pd.DatetimeIndex) -> str:
    """Alpaca timeframe string of the most common spacing of ``index`` ('5Min', '1Day', ...)."""
    if len(index) < 2:
        return "1Day"
    step = pd.Series(index[1:] - index[:-1]).mode().iloc[0]
    minutes = int(step.total_seconds() // 60)
    if minutes >= 24 * 60:
        return "1Day"
    if minutes % 60 == 0:
        return f"{minutes // 60}Hour"
    return f"{minutes}Min"


def bar_seconds(bar_size: str) -> int:
    """Length of one bar in seconds for an Alpaca timeframe string (``'5Min'`` -> 300)."""
    for unit, secs in (("Min", 60), ("Hour", 3600), ("Day", 86400), ("Week", 7 * 86400)):
        if bar_size.endswith(unit):
            return int(bar_size[: -len(unit)] or 1) * secs
    raise DataError(f"unknown bar size {bar_size!r}; expected e.g. '5Min', '1Hour', '1Day'")


def validate_bars(df: pd.DataFrame, symbol: str, origin: str) -> pd.DataFrame:
    """Check a canonical frame: columns present, prices finite and positive, index increasing.

    Raises
    ------
    DataError
        Naming ``origin`` (file), ``symbol``, the column and the first bad timestamp.
    """
    missing = [c for c in ("open", "high", "low", "close") if c not in df.columns]
    if missing:
        raise DataError(f"{origin}: symbol {symbol}: missing column(s) {missing}; expected {list(COLUMNS)}")
    for c in ("open", "high", "low", "close"):
        v = df[c].to_numpy(dtype=float)
        bad = ~np.isfinite(v) | (v <= 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"{origin}: symbol {symbol}: column {c!r} has {int(bad.sum())} NaN or non-positive "
                f"price(s), first at {df.index[i]} (value {v[i]}); expected finite prices > 0"
            )
    if not df.index.is_monotonic_increasing or df.index.has_duplicates:
        raise DataError(f"{origin}: symbol {symbol}: timestamps must be strictly increasing")
    return df


def _to_utc(ts: pd.Series | pd.DatetimeIndex, tz: str) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(pd.to_datetime(ts, utc=False, format="mixed"))
    if idx.tz is None:
        idx = idx.tz_localize(tz, ambiguous="infer", nonexistent="shift_forward")
    return idx.tz_convert("UTC")


def load_bars(path: str | Path, symbols: list[str] | None = None, tz: str = EXCHANGE_TZ,
              drop_bad_rows: bool = True) -> BarSet:
    """Load bars from a CSV/CSV.gz file.

    Two layouts are read:

    * long: columns ``symbol, datetime, open, high, low, close[, volume]`` (the layout of
      ``../shared/data``); naive timestamps are taken in ``tz`` (America/New_York) and are the
      bar start;
    * wide daily: a ``Date`` column and one close column per symbol (open=high=low=close).

    Parameters
    ----------
    path : file path
    symbols : only these symbols (upper-cased); ``None`` keeps all
    tz : time zone of naive timestamps
    drop_bad_rows : long format: rows whose open, high, low and close are all empty (minutes with
        quotes but no trade) are dropped; wide format: empty cells (before a listing) are dropped. Any
        other NaN or non-positive price raises :class:`DataError`.

    Raises
    ------
    DataError
        File missing or unreadable, required column missing, requested symbol absent, bad prices.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data file not found")
    try:
        raw = pd.read_csv(path)
    except Exception as e:  # pandas raises many types; name the file
        raise DataError(f"{path}: cannot read as CSV ({e})") from e
    cols = {c.lower(): c for c in raw.columns}
    out: Bars = {}
    if "symbol" in cols:
        need = ["symbol", "datetime", "open", "high", "low", "close"]
        missing = [c for c in need if c not in cols]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; long format needs {need} (+ volume)")
        raw = raw.rename(columns={v: k for k, v in cols.items()})
        raw["symbol"] = raw["symbol"].astype(str).str.upper()
        if symbols is not None:
            wanted = {s.upper() for s in symbols}
            absent = wanted - set(raw["symbol"].unique())
            if absent:
                raise DataError(f"{path}: symbol(s) {sorted(absent)} not in file "
                                f"(available: {', '.join(sorted(raw['symbol'].unique()))})")
            raw = raw[raw["symbol"].isin(wanted)]
        if "volume" not in raw:
            raw["volume"] = 0.0
        for sym, g in raw.groupby("symbol", sort=True):
            idx = _to_utc(g["datetime"], tz)
            df = pd.DataFrame({c: g[c].to_numpy(dtype=float) for c in COLUMNS}, index=idx)
            df.index.name = "timestamp"
            if drop_bad_rows:  # a minute without any trade (quotes only): all four prices empty
                df = df[np.isfinite(df[["open", "high", "low", "close"]].to_numpy()).any(axis=1)]
            df = df[~df.index.duplicated(keep="last")].sort_index()
            out[str(sym)] = validate_bars(df, str(sym), str(path))
    elif "date" in cols:
        raw = raw.set_index(cols["date"])
        idx = _to_utc(pd.Series(raw.index), tz)
        keep = [c for c in raw.columns if symbols is None or c.upper() in {s.upper() for s in symbols}]
        if symbols is not None:
            absent = {s.upper() for s in symbols} - {c.upper() for c in raw.columns}
            if absent:
                raise DataError(f"{path}: symbol(s) {sorted(absent)} not in file "
                                f"(available: {', '.join(c.upper() for c in raw.columns)})")
        for c in keep:
            v = raw[c].to_numpy(dtype=float)
            df = pd.DataFrame({"open": v, "high": v, "low": v, "close": v, "volume": np.zeros_like(v)},
                              index=idx)
            df.index.name = "timestamp"
            if drop_bad_rows:
                df = df[np.isfinite(v)]
            out[c.upper()] = validate_bars(df, c.upper(), str(path))
    else:
        raise DataError(f"{path}: expected a long file with columns symbol, datetime, open, high, low, close, "
                        f"volume or a wide daily file with a 'Date' column; got columns {list(raw.columns)}")
    if not out:
        raise DataError(f"{path}: no bars")
    first = next(iter(out.values()))
    return BarSet(out, f"file {path}", infer_bar_size(first.index))


EMBEDDED_SOURCE = ("embedded default: daily S&P 500 (SPX) and NASDAQ Composite (COMP) index bars "
                   "1999-01-04 to 2018-12-31 shipped with the 'arch' package (arch.data)")


@lru_cache(maxsize=1)
def _embedded() -> Bars:
    import arch.data.nasdaq
    import arch.data.sp500

    out: Bars = {}
    for sym, mod in (("SPX", arch.data.sp500), ("COMP", arch.data.nasdaq)):
        raw = mod.load()
        # Daily bars are stamped at the session date's midnight in New York, as Alpaca does.
        idx = _to_utc(pd.Series(pd.DatetimeIndex(raw.index)), EXCHANGE_TZ)
        df = pd.DataFrame({"open": raw["Open"].to_numpy(float), "high": raw["High"].to_numpy(float),
                           "low": raw["Low"].to_numpy(float), "close": raw["Close"].to_numpy(float),
                           "volume": raw["Volume"].to_numpy(float)}, index=idx)
        df.index.name = "timestamp"
        out[sym] = validate_bars(df, sym, "arch.data")
    return out


def embedded_bars() -> BarSet:
    """The embedded default data set: real daily index bars shipped inside the ``arch`` package.

    Needs no network and no ``../shared``: symbols ``SPX`` (S&P 500) and ``COMP`` (NASDAQ
    Composite), 1999-01-04 to 2018-12-31, 5,031 sessions each.
    """
    return BarSet({k: v.copy() for k, v in _embedded().items()}, EMBEDDED_SOURCE, "1Day")


@lru_cache(maxsize=8)
def trading_calendar(name: str, first_year: int, last_year: int):
    """An exchange_calendars calendar covering the given years (cached; its own pandas warnings muted)."""
    import warnings

    import exchange_calendars as xc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xc.get_calendar(name, start=pd.Timestamp(f"{first_year}-01-01"),
                               end=pd.Timestamp(f"{last_year}-12-31"))


def regular_hours(df: pd.DataFrame, bar_size: str, calendar: str = "XNYS") -> pd.DataFrame:
    """Keep only bars that start inside a regular trading session (holidays and half days honoured).

    Uses ``exchange_calendars`` (``XNYS``).  Daily and longer bars are kept when their date is a
    session.  Bars are stamped with their start; a bar is kept when ``open <= start < close``.
    """
    if df.empty:
        return df
    start = (df.index[0] - pd.Timedelta(days=7)).tz_convert(None).normalize()
    end = (df.index[-1] + pd.Timedelta(days=7)).tz_convert(None).normalize()
    cal = trading_calendar(calendar, start.year, end.year)
    if bar_seconds(bar_size) >= 86400:
        dates = df.index.tz_convert(EXCHANGE_TZ).tz_localize(None).normalize()
        return df[np.asarray(dates.isin(cal.sessions))]
    sched = cal.schedule.loc[start:end]

    def utc_naive(col: pd.Series) -> np.ndarray:
        col = col.dt.tz_convert("UTC") if col.dt.tz is not None else col.dt.tz_localize("UTC")
        return col.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")

    o = utc_naive(sched["open"])
    c = utc_naive(sched["close"])
    t = df.index.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]")
    k = np.searchsorted(o, t, side="right") - 1
    ok = (k >= 0) & (t < c[np.clip(k, 0, len(c) - 1)])
    return df[ok]


def align(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Inner-join two legs on timestamp.

    Returns
    -------
    DataFrame with columns ``open_y, close_y, open_x, close_x`` (USD) on the common timestamps.
    """
    out = pd.concat({"open_y": a["open"], "close_y": a["close"], "open_x": b["open"], "close_x": b["close"]},
                    axis=1, join="inner")
    return out.dropna()
