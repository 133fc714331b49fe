"""Historical bars from Alpaca (or the local exchange) via alpaca-py, with an on-disk cache.

Bars are requested with ``StockHistoricalDataClient.get_stock_bars`` (feed IEX, adjustment raw;
alpaca-py follows ``next_page_token``) and converted at this boundary into the canonical frames of
:mod:`pairtrade.data.bars`: tz-aware UTC index of bar **start** times, float64 columns
``open, high, low, close, volume`` (USD, shares).

Cache
-----
One gzip CSV per (source, symbol, timeframe, start, end, feed, adjustment) under ``cache_dir``;
``source`` is ``"alpaca"`` for the real API and a short hash of ``url_override`` otherwise, so data
from a local exchange never masquerades as Alpaca data.  Only requests with an explicit ``end``
are cached (an open-ended range would freeze an incomplete answer).

Secrets
-------
The key and secret go to alpaca-py only; they are never logged, never part of a cache path and
never part of an exception message.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from pairtrade.data.bars import COLUMNS, BarSet, DataError, bar_seconds, validate_bars

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(os.environ.get("PAIRTRADE_CACHE_DIR", Path.home() / ".cache" / "pairtrade")) / "alpaca_bars"


def timeframe_of(bar_size: str):
    """alpaca-py ``TimeFrame`` of an Alpaca timeframe string (``"5Min"`` -> ``TimeFrame(5, Minute)``).

    Raises
    ------
    DataError
        For an unknown unit.
    """
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    bar_seconds(bar_size)  # validates
    for suffix, unit in (("Min", TimeFrameUnit.Minute), ("Hour", TimeFrameUnit.Hour), ("Day", TimeFrameUnit.Day),
                         ("Week", TimeFrameUnit.Week), ("Month", TimeFrameUnit.Month)):
        if bar_size.endswith(suffix):
            return TimeFrame(int(bar_size[: -len(suffix)] or 1), unit)
    raise DataError(f"unknown bar size {bar_size!r}; expected e.g. '5Min', '1Hour', '1Day'")


def _utc(ts: Any) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")


def _source_tag(url_override: str | None) -> str:
    if url_override is None:
        return "alpaca"
    return "url-" + hashlib.sha256(url_override.encode()).hexdigest()[:10]


def cache_path(cache_dir: Path, source: str, symbol: str, bar_size: str, start: pd.Timestamp,
               end: pd.Timestamp, feed: str = "iex", adjustment: str = "raw") -> Path:
    """File of one cached request: ``{cache_dir}/{source}/{SYMBOL}_{bar}_{start}_{end}_{feed}_{adj}.csv.gz``."""
    safe = symbol.replace("/", "-")
    f = "%Y%m%dT%H%M%SZ"
    return Path(cache_dir) / source / f"{safe}_{bar_size}_{start.strftime(f)}_{end.strftime(f)}_{feed}_{adjustment}.csv.gz"


def _read_cache(path: Path, symbol: str) -> pd.DataFrame:
    df = pd.read_csv(path, index_col="timestamp")
    df.index = pd.DatetimeIndex(pd.to_datetime(df.index, utc=True), name="timestamp")
    df = df[list(COLUMNS)].astype(float)
    return validate_bars(df, symbol, str(path))


def _write_cache(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index_label="timestamp", compression="gzip")
    os.replace(tmp, path)


def bars_to_frame(bars: Iterable[Any]) -> pd.DataFrame:
    """Canonical frame from alpaca-py ``Bar`` models (or raw ``{t,o,h,l,c,v}`` dicts).

    Prices and volumes may arrive as strings or numbers; they are converted to float64 here.
    """
    rows = []
    for b in bars:
        if isinstance(b, dict):
            rows.append((b["t"], b["o"], b["h"], b["l"], b["c"], b.get("v", 0.0)))
        else:
            rows.append((b.timestamp, b.open, b.high, b.low, b.close, b.volume))
    if not rows:
        return pd.DataFrame({c: np.array([], dtype=float) for c in COLUMNS},
                            index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
    t, o, h, lo, c, v = zip(*rows)
    idx = pd.DatetimeIndex(pd.to_datetime(list(t), utc=True), name="timestamp")
    df = pd.DataFrame({"open": np.asarray(o, dtype=float), "high": np.asarray(h, dtype=float),
                       "low": np.asarray(lo, dtype=float), "close": np.asarray(c, dtype=float),
                       "volume": np.asarray([0.0 if x is None else x for x in v], dtype=float)}, index=idx)
    df = df[~df.index.duplicated(keep="last")].sort_index()
    return df


def fetch_alpaca_bars(symbols: list[str] | str, start: Any, end: Any, bar_size: str, key: str, secret: str,
                      url_override: str | None = None, cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
                      feed: str = "iex", adjustment: str = "raw", client: Any = None) -> BarSet:
    """Historical bars of several symbols from Alpaca through alpaca-py, cached on disk.

    Parameters
    ----------
    symbols : tickers, e.g. ``["XOM", "CVX"]``
    start, end : range of bar start times (ISO strings or timestamps; naive = UTC); ``end=None``
        means "up to now" on the server and disables the cache
    bar_size : Alpaca timeframe string (``"5Min"``, ``"1Hour"``, ``"1Day"``)
    key, secret : Alpaca API credentials (never logged)
    url_override : base URL of another Alpaca-compatible server (the local exchange's ``base_url``)
    cache_dir : cache folder; ``None`` disables the cache
    feed : ``"iex"`` (free plan) or ``"sip"``
    adjustment : ``"raw"`` (default), ``"split"``, ``"dividend"`` or ``"all"``
    client : an existing ``StockHistoricalDataClient`` (tests, connection reuse)

    Returns
    -------
    BarSet
        Canonical bars per symbol, ``bar_size`` as requested, ``source`` naming the API and range.

    Raises
    ------
    DataError
        When the request fails (HTTP status and Alpaca's message, no credentials) or a symbol has
        no bars in the range.
    """
    from alpaca.common.exceptions import APIError
    from alpaca.data.enums import Adjustment, DataFeed
    from alpaca.data.historical import StockHistoricalDataClient
    from alpaca.data.requests import StockBarsRequest

    syms = [symbols] if isinstance(symbols, str) else list(symbols)
    syms = [s.strip().upper() for s in syms if s.strip()]
    if not syms:
        raise DataError("fetch_alpaca_bars: no symbols given")
    t0 = _utc(start)
    t1 = _utc(end) if end is not None else None
    tf = timeframe_of(bar_size)
    source = _source_tag(url_override)
    where = "Alpaca" if url_override is None else f"Alpaca-compatible server {url_override}"
    out: dict[str, pd.DataFrame] = {}
    missing = []
    for s in syms:
        p = cache_path(Path(cache_dir), source, s, bar_size, t0, t1, feed, adjustment) \
            if cache_dir is not None and t1 is not None else None
        if p is not None and p.exists():
            out[s] = _read_cache(p, s)
            log.info("bars %s %s from cache %s", s, bar_size, p)
        else:
            missing.append(s)
    if missing:
        if client is None:
            client = StockHistoricalDataClient(key, secret, url_override=url_override)
        req = StockBarsRequest(symbol_or_symbols=missing, timeframe=tf, start=t0.to_pydatetime(),
                               end=t1.to_pydatetime() if t1 is not None else None, feed=DataFeed(feed),
                               adjustment=Adjustment(adjustment))
        try:
            resp = client.get_stock_bars(req)
        except APIError as e:
            try:
                detail = f"{e.message} (code {e.code})"
            except Exception:
                detail = "no JSON error body"
            raise DataError(f"{where}: bars request for {', '.join(missing)} {bar_size} failed: "
                            f"HTTP {e.status_code}: {detail}") from None
        except Exception as e:  # connection errors etc.; their text holds no credentials, but be safe
            raise DataError(f"{where}: bars request for {', '.join(missing)} {bar_size} failed: "
                            f"{type(e).__name__}") from None
        data = resp if isinstance(resp, dict) else resp.data
        for s in missing:
            df = bars_to_frame(data.get(s, []))
            if df.empty:
                raise DataError(f"{where}: no {bar_size} bars for {s} between {t0} and {t1 or 'now'} "
                                f"(feed {feed}); check the symbol and the range")
            df = validate_bars(df, s, where)
            out[s] = df
            if cache_dir is not None and t1 is not None:
                _write_cache(cache_path(Path(cache_dir), source, s, bar_size, t0, t1, feed, adjustment), df)
    rng = f"{t0.isoformat()} to {t1.isoformat() if t1 is not None else 'now'}"
    return BarSet(out, f"{where} {feed.upper()} {adjustment} {bar_size} bars {rng}", bar_size)
