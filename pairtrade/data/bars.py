"""Bars in: recorded files, the embedded default data set, session filter and alignment of two legs.

Canonical form
--------------
``Bars = dict[str, pandas.DataFrame]``: one frame per symbol, index ``timestamp`` (tz-aware UTC,
the bar's **start** time, strictly increasing, no duplicates), float64 columns
``open, high, low, close, volume`` (prices in USD, volume in shares).

Errors
------
:class:`DataError` (a ``ValueError``) names the file, column or symbol at fault, and the time and
file line of the first bad row where there is one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

Bars = dict[str, pd.DataFrame]
COLUMNS = ("open", "high", "low", "close", "volume")
EXCHANGE_TZ = "America/New_York"


class DataError(ValueError):
    """Bad market data: missing file, column or symbol, non-numeric, NaN or non-positive prices, unparseable
    times, or two rows of one symbol at one time with different values."""


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
    close_only : bool
        True when the source had one price per bar only (a long file with a close but no
        open/high/low, or a wide file with one close column per symbol): open = high = low = close
        were filled in, so no real opening price exists and fills can only be simulated at the next
        bar's close, not at its open.  False (default) for true OHLC bars.
    """

    bars: Bars
    source: str
    bar_size: str
    close_only: bool = False

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
        return replace(self, bars=out)


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
    if df.index.hasnans:
        raise DataError(f"{origin}: symbol {symbol}: a timestamp is missing (NaT); expected one per bar")
    if not df.index.is_monotonic_increasing or df.index.has_duplicates:
        t = df.index.asi8  # ns since the epoch
        i = int(np.argmax(t[1:] <= t[:-1])) + 1  # first bar not after its predecessor
        raise DataError(f"{origin}: symbol {symbol}: timestamps must be strictly increasing; bar {i} at "
                        f"{df.index[i]} follows {df.index[i - 1]}")
    return df


def parse_utc(value, what: str) -> pd.Timestamp:
    """``value`` (ISO 8601 text or a timestamp) as a tz-aware UTC timestamp; naive values are UTC.

    Raises
    ------
    DataError
        Unparseable or empty value; the message names ``what`` (an option or a file field).
    """
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise DataError(f"{what}: cannot parse {value!r} as a date/time ({e}); expected ISO 8601") from None
    if t is pd.NaT:
        raise DataError(f"{what}: expected an ISO 8601 date/time, got {value!r}")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _to_utc(ts: pd.Series | pd.DatetimeIndex, tz: str) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(pd.to_datetime(ts, utc=False, format="mixed"))
    if idx.tz is None:
        idx = idx.tz_localize(tz, ambiguous="infer", nonexistent="shift_forward")
    return idx.tz_convert("UTC")


#: quote columns of a long file kept beside the bars (bid/ask at the bar's close), for cost estimates
QUOTE_COLUMNS = ("bid_close", "ask_close", "bid", "ask")
TIME_COLUMNS = ("datetime", "timestamp", "Date", "date", "Dates")
"""Accepted names of the time column (matched case-insensitively), in order of preference."""


def _by_lower_name(raw: pd.DataFrame) -> tuple[dict[str, str], set[str]]:
    """Map lower-cased column name -> column name, plus the lower-cased names that occur twice."""
    cols: dict[str, str] = {}
    dups: set[str] = set()
    for c in raw.columns:
        key = str(c).strip().lower()
        if key in cols:
            dups.add(key)
        cols.setdefault(key, str(c))
    return cols, dups


def _column(cols: dict[str, str], dups: set[str], name: str, path: Path) -> str | None:
    """The column called ``name`` (case-insensitive), ``None`` when absent; DataError when ambiguous."""
    key = name.strip().lower()
    if key in dups:
        raise DataError(f"{path}: column name {name!r} occurs more than once (names are matched "
                        f"case-insensitively); rename one of them")
    return cols.get(key)


def _time_column(cols: dict[str, str], dups: set[str], path: Path) -> str | None:
    """First accepted time column present (see :data:`TIME_COLUMNS`), ``None`` when there is none."""
    for name in dict.fromkeys(n.lower() for n in TIME_COLUMNS):
        col = _column(cols, dups, name, path)
        if col is not None:
            return col
    return None


def _line(values: pd.Series, i: int) -> int:
    """File line of the ``i``-th element of a column read by :func:`pandas.read_csv` (header = line 1)."""
    return int(values.index[i]) + 2


def _times(values: pd.Series, tz: str, path: Path, col: str) -> pd.DatetimeIndex:
    expected = "expected ISO 8601 dates or date-times such as 2025-07-02 or 2025-07-02 09:30:00"
    empty = values.isna().to_numpy()
    if empty.any():
        i = int(np.argmax(empty))
        raise DataError(f"{path}: column {col!r}: empty time at line {_line(values, i)}; {expected}")
    try:
        return _to_utc(values, tz)
    except (ValueError, TypeError, OverflowError) as e:
        bad = pd.to_datetime(values, format="mixed", errors="coerce").isna().to_numpy()
        where = f", first {values.iloc[int(np.argmax(bad))]!r} at line {_line(values, int(np.argmax(bad)))}" \
            if bad.any() else ""
        raise DataError(f"{path}: column {col!r}: cannot parse the timestamps{where} ({e}); {expected}") from None


def _floats(values: pd.Series, path: Path, col: str, symbol: str | None = None,
            times: pd.Series | None = None) -> np.ndarray:
    """``values`` as float64 (empty cells become NaN); DataError naming the first non-numeric cell.

    ``times`` (the same rows' time column, as written in the file) is quoted in the message.
    """
    try:
        return pd.to_numeric(values, errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError):
        who = f"symbol {symbol}: " if symbol else ""
        bad = (pd.to_numeric(values, errors="coerce").isna() & values.notna()).to_numpy()
        i = int(np.argmax(bad))
        when = f" (time {times.iloc[i]})" if times is not None else ""
        raise DataError(f"{path}: {who}column {col!r} has {int(bad.sum())} non-numeric value(s), first "
                        f"{values.iloc[i]!r} at line {_line(values, i)}{when}; expected numbers (prices in "
                        f"USD, volume in shares)") from None


def _drop_exact_duplicates(df: pd.DataFrame, lines: np.ndarray, path: Path, symbol: str,
                           duplicates: str = "error") -> pd.DataFrame:
    """One row per timestamp: rows repeated identically (every column equal, NaN equal to NaN) are kept
    once; two rows of ``symbol`` at the same time with any different value raise :class:`DataError` naming
    the file, the symbol, the time (UTC bar start), the file lines and the differing values, unless
    ``duplicates`` is ``"first"`` or ``"last"`` (keep that row, in file order)."""
    dup = df.index.duplicated(keep=False)
    if not dup.any():
        return df
    if duplicates in ("first", "last"):
        return df[~df.index.duplicated(keep=duplicates)]
    rows = df[dup]
    distinct = rows[~rows.reset_index().duplicated().to_numpy()]  # identical repeats count once
    conflict = distinct.index.duplicated(keep=False)
    if conflict.any():
        t = distinct.index[int(np.argmax(conflict))]
        same = df.index == t
        at = df[same]
        diff = [c for c in df.columns if at[c].nunique(dropna=False) > 1]
        shown = "; ".join(f"{c} " + " / ".join(f"{v:g}" for v in at[c]) for c in diff)
        raise DataError(f"{path}: symbol {symbol}: {int(same.sum())} rows for the bar at {t} (lines "
                        f"{', '.join(str(int(n)) for n in lines[same])}) with different values ({shown}); "
                        f"expected one bar per symbol and time (rows repeated with identical values are "
                        f"dropped); remove the wrong row")
    return df[~df.index.duplicated(keep="first")]


def _check_symbols(path: Path, symbols: list[str] | None, available: set[str]) -> set[str] | None:
    if symbols is None:
        return None
    wanted = {s.upper() for s in symbols}
    absent = wanted - available
    if absent:
        raise DataError(f"{path}: symbol(s) {sorted(absent)} not in file "
                        f"(available: {', '.join(sorted(available))})")
    return wanted


def load_bars(path: str | Path, symbols: list[str] | None = None, tz: str = EXCHANGE_TZ,
              drop_bad_rows: bool = True, price_column: str | None = None,
              duplicates: Literal["error", "first", "last"] = "error") -> BarSet:
    """Load bars from a CSV/CSV.gz file.

    Column names are matched case-insensitively.  The time column may be called ``datetime``,
    ``timestamp``, ``Date``, ``date`` or ``Dates`` (first present wins, in that order); naive
    timestamps are taken in ``tz`` (America/New_York) and are the bar start, a date alone is that
    session's midnight in ``tz`` (as Alpaca stamps daily bars).  Two layouts are read:

    * long: a ``symbol`` column, the time column and either

      - ``open, high, low, close[, volume]`` (the layout of ``../shared/data``; also Chan's
        ``symbol, Date, Open, High, Low, Close, Volume, Adj Close``), or
      - ``close[, volume]`` only (close-only): open = high = low = close are filled in and
        :attr:`BarSet.close_only` is True;

    * wide: the time column and one close column per symbol (e.g. Chan's ``inputData_ETF``):
      open = high = low = close, ``close_only`` is True.

    ``price_column`` (long layout only) selects another column as the price, e.g. ``"Adj Close"``.
    With open/high/low present the bar is back-adjusted: with ``f_t = price_t / close_t`` the bar
    becomes ``open_t * f_t, high_t * f_t, low_t * f_t, price_t`` (volume unchanged), the
    convention of Yahoo Finance's adjusted close and of yfinance's ``auto_adjust``: the ratio of
    the adjusted to the raw close carries the split and dividend adjustment to the other prices of
    the same bar.  Without open/high/low the selected column is the close of a close-only bar.

    Parameters
    ----------
    path : file path
    symbols : only these symbols (upper-cased); ``None`` keeps all
    tz : time zone of naive timestamps
    drop_bad_rows : long format: rows whose open, high, low and close are all empty (minutes with
        quotes but no trade) are dropped; wide format: empty cells (before a listing) are dropped. Any
        other NaN or non-positive price raises :class:`DataError`.
        Duplicates: rows of one symbol repeated at the same time with identical values in every column
        are exact duplicates and kept once, silently.
    price_column : name of the column to use as the price (case-insensitive), e.g. ``"Adj Close"``;
        ``None`` uses ``close``.  Not applicable to the wide layout (must be ``None`` there).
    duplicates : two rows of one symbol at one time that differ in any value (after ``drop_bad_rows``):
        ``"error"`` (default) raises :class:`DataError` naming the file, the symbol, the time and the file
        lines, so a conflict is never resolved silently; ``"first"`` / ``"last"`` keep the first / last
        such row in file order (a deliberate choice by the caller).

    Returns
    -------
    BarSet
        Canonical bars per symbol (UTC bar starts; prices in USD, volume in shares), ``source``
        ``"file <path>"`` (plus the price column when given), ``bar_size`` inferred from the spacing
        of the first symbol's bars, ``close_only`` as above.

    Raises
    ------
    DataError
        File missing or unreadable; no time column (the message lists the accepted names); a
        required column missing; ``price_column`` absent (names the file, the column and the columns
        present) or given for a wide file; requested symbol absent; empty or unparseable time;
        non-numeric, NaN or non-positive prices; two rows of one symbol at one time with different
        values.  The message names the file, the symbol and column, and the first bad row's time and
        file line.
    """
    path = Path(path)
    if duplicates not in ("error", "first", "last"):
        raise ValueError(f"duplicates must be 'error', 'first' or 'last', got {duplicates!r}")
    if not path.exists():
        raise DataError(f"{path}: data file not found")
    try:
        raw = pd.read_csv(path)
    except Exception as e:  # pandas raises many types; name the file
        raise DataError(f"{path}: cannot read as CSV ({e})") from e
    cols, dups = _by_lower_name(raw)
    tcol = _time_column(cols, dups, path)
    accepted = ", ".join(TIME_COLUMNS)
    if tcol is None:
        raise DataError(f"{path}: no time column; expected one of {accepted} (case-insensitive) in a long file "
                        f"(symbol, time, open, high, low, close[, volume] or symbol, time, close) or a wide "
                        f"file (time + one close column per symbol); got columns {list(raw.columns)}")
    out: Bars = {}
    scol = _column(cols, dups, "symbol", path)
    if scol is not None:
        close_only = _load_long(raw, path, cols, dups, scol, tcol, symbols, tz, drop_bad_rows, price_column, out,
                                duplicates)
    else:
        if price_column is not None:
            raise DataError(f"{path}: price_column {price_column!r} is not applicable to a wide file (column "
                            f"{tcol!r} plus one close column per symbol); pass price_column=None")
        close_only = True
        idx = _times(raw[tcol], tz, path, tcol)
        names = {str(c).upper(): str(c) for c in raw.columns if c != tcol}
        wanted = _check_symbols(path, symbols, set(names))
        for sym, c in names.items():
            if wanted is not None and sym not in wanted:
                continue
            v = _floats(raw[c], path, c, sym, raw[tcol])
            df = pd.DataFrame({"open": v, "high": v, "low": v, "close": v, "volume": np.zeros_like(v)},
                              index=idx)
            df.index.name = "timestamp"
            lines = raw.index.to_numpy() + 2
            if drop_bad_rows:
                keep = np.isfinite(v)
                df, lines = df[keep], lines[keep]
            df = _drop_exact_duplicates(df, lines, path, sym, duplicates)
            out[sym] = validate_bars(df, sym, str(path))
    if not out:
        raise DataError(f"{path}: no bars")
    first = next(iter(out.values()))
    source = f"file {path}" if price_column is None else f"file {path}, price column {price_column!r}"
    return BarSet(out, source, infer_bar_size(first.index), close_only=close_only)


def _load_long(raw: pd.DataFrame, path: Path, cols: dict[str, str], dups: set[str], scol: str, tcol: str,
               symbols: list[str] | None, tz: str, drop_bad_rows: bool, price_column: str | None,
               out: Bars, duplicates: str = "error") -> bool:
    """Fill ``out`` from a long file (see :func:`load_bars`); return True when the file is close-only."""
    ohl = {c: _column(cols, dups, c, path) for c in ("open", "high", "low")}
    close = _column(cols, dups, "close", path)
    volume = _column(cols, dups, "volume", path)
    present_ohl = [c for c, v in ohl.items() if v is not None]
    need = ["symbol", tcol, "open", "high", "low", "close"]
    if present_ohl and len(present_ohl) < 3:
        missing = [c for c, v in ohl.items() if v is None] + ([] if close is not None else ["close"])
        raise DataError(f"{path}: missing column(s) {missing}; long format needs {need} (+ volume), "
                        f"or ['symbol', {tcol!r}, 'close'] for close-only bars")
    close_only = not present_ohl
    if price_column is not None:
        price = _column(cols, dups, price_column, path)
        if price is None:
            raise DataError(f"{path}: price_column {price_column!r} not found (matched case-insensitively); "
                            f"columns present: {list(raw.columns)}")
    else:
        price = close
    if price is None or (not close_only and close is None):
        hint = "" if price_column is not None else " (or pass price_column= to use another price column)"
        raise DataError(f"{path}: missing column(s) ['close']; long format needs {need} (+ volume), "
                        f"or ['symbol', {tcol!r}, 'close'] for close-only bars{hint}")
    sym_upper = raw[scol].astype(str).str.upper()
    wanted = _check_symbols(path, symbols, set(sym_upper.unique()))
    if wanted is not None:
        keep = sym_upper.isin(wanted).to_numpy()
        raw, sym_upper = raw[keep], sym_upper[keep]
    for sym, g in raw.groupby(sym_upper, sort=True):
        sym = str(sym)
        idx = _times(g[tcol], tz, path, tcol)
        tm = g[tcol]
        p = _floats(g[price], path, price, sym, tm)
        if close_only:
            o = h = lo = p
        else:
            o, h, lo = (_floats(g[ohl[c]], path, ohl[c], sym, tm) for c in ("open", "high", "low"))
            if price != close:  # back-adjust the bar by adjusted / raw close
                c = _floats(g[close], path, close, sym, tm)
                bad = np.isfinite(p) & ~(np.isfinite(c) & (c > 0))
                if bad.any():
                    i = int(np.argmax(bad))
                    raise DataError(
                        f"{path}: symbol {sym}: column {close!r} is empty or non-positive in {int(bad.sum())} "
                        f"row(s) where {price!r} has a price, first at {idx[i]}; open/high/low cannot be "
                        f"back-adjusted by {price}/{close} there")
                with np.errstate(divide="ignore", invalid="ignore"):
                    f = p / c
                o, h, lo = o * f, h * f, lo * f
        v = _floats(g[volume], path, volume, sym, tm) if volume is not None else np.zeros(len(g))
        df = pd.DataFrame({"open": o, "high": h, "low": lo, "close": p, "volume": v}, index=idx)
        for q in QUOTE_COLUMNS:  # quotes ride along (half-spread cost estimates), never used as prices
            if cols.get(q) is not None and q not in dups:
                df[q] = _floats(g[cols[q]], path, cols[q], sym, tm)
        df.index.name = "timestamp"
        lines = g.index.to_numpy() + 2
        if drop_bad_rows:  # a minute without any trade (quotes only): all four prices empty
            keep = np.isfinite(df[["open", "high", "low", "close"]].to_numpy()).any(axis=1)
            df, lines = df[keep], lines[keep]
        df = _drop_exact_duplicates(df, lines, path, sym, duplicates).sort_index()
        out[sym] = validate_bars(df, sym, str(path))
    return close_only


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
