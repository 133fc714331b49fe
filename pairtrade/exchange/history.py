"""Historical bars as ``GET /v2/stocks/bars`` serves them: aggregation, no look-ahead, pagination.

A bar (or an aggregate of several data bars) is returned only when **all** of its data bars have
closed by the replay clock, so a client can never see a price the replay has not published yet.
Aggregation is possible when the requested timeframe is a whole multiple of the data's bar size:
``{n}Min`` / ``{n}Hour`` buckets are aligned to the Unix epoch in UTC (clock hours for hours);
``1Day`` buckets are New York calendar dates stamped at New York midnight (as Alpaca stamps
daily bars); ``1Week`` buckets start on Monday and ``1Month`` buckets on the 1st (New York dates).
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache

import numpy as np
import pandas as pd

from pairtrade.data.bars import EXCHANGE_TZ
from pairtrade.exchange.engine import Engine, ExchangeError

_TF = re.compile(r"^(\d*)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNIT = {"Min": "Min", "T": "Min", "Hour": "Hour", "H": "Hour", "Day": "Day", "D": "Day", "Week": "Week",
         "W": "Week", "Month": "Month", "M": "Month"}
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


def parse_timeframe(tf: str) -> tuple[int, str]:
    """``"15Min"`` -> ``(15, "Min")``; also Alpaca's short forms ``15T``, ``1H``, ``1D``.

    Raises
    ------
    ExchangeError
        422 for an unparseable timeframe.
    """
    m = _TF.match(str(tf or "").strip())
    if not m:
        raise ExchangeError(422, 42210000, f"invalid timeframe {tf!r}; expected e.g. 5Min, 1Hour, 1Day")
    return int(m.group(1) or 1), _UNIT[m.group(2)]


def bar_json(t_ns: int, o: float, h: float, l: float, c: float, v: float) -> dict:
    """One bar in Alpaca's REST shape; ``n`` and ``vw`` are unknown (null) in recorded OHLCV data."""
    return {"t": pd.Timestamp(int(t_ns), tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"), "o": o, "h": h, "l": l,
            "c": c, "v": int(v) if float(v).is_integer() else v, "n": None, "vw": None}


class HistoryService:
    """Answers bar queries against an :class:`Engine`'s data and replay clock."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._agg = lru_cache(maxsize=256)(self._aggregate)

    def _aggregate(self, symbol: str, n: int, unit: str) -> pd.DataFrame:
        """Bars of ``symbol`` at timeframe ``(n, unit)`` over the full data, with column ``end_ns``
        (the close time of the bucket's last data bar, used for the look-ahead filter)."""
        eng = self.engine
        df = eng.barset.bars[symbol]
        t = pd.DatetimeIndex(df.index).tz_convert("UTC").as_unit("ns")
        base = eng.bar_secs
        end_ns = t.asi8 + eng.bar_ns
        raw = pd.DataFrame({"open": df["open"].to_numpy(float), "high": df["high"].to_numpy(float),
                            "low": df["low"].to_numpy(float), "close": df["close"].to_numpy(float),
                            "volume": np.nan_to_num(df["volume"].to_numpy(float)) if "volume" in df else 0.0,
                            "end_ns": end_ns}, index=t.asi8)
        secs = {"Min": 60, "Hour": 3600}.get(unit)
        if secs is not None:
            want = n * secs
            if base >= 86400 or want % base != 0:
                raise ExchangeError(422, 42210000, f"timeframe {n}{unit} is not available: the replayed data "
                                                   f"has {eng.barset.bar_size} bars")
            if want == base:
                return raw
            step = want * 1_000_000_000
            key = (raw.index.to_numpy() // step) * step
        else:
            if unit == "Day" and n != 1:
                raise ExchangeError(422, 42210000, "only 1Day daily bars are available")
            if unit == "Day" and base >= 86400:
                return raw
            ny = t.tz_convert(EXCHANGE_TZ).tz_localize(None).normalize()
            if unit == "Week":
                ny = ny - pd.to_timedelta(ny.day_of_week, unit="D")
            elif unit == "Month":
                ny = ny - pd.to_timedelta(ny.day - 1, unit="D")
            if unit in ("Week", "Month") and n != 1:
                raise ExchangeError(422, 42210000, f"only 1{unit} bars are available")
            key = pd.DatetimeIndex(ny).tz_localize(EXCHANGE_TZ).tz_convert("UTC").as_unit("ns").asi8
        g = raw.groupby(key, sort=True)
        out = pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
                            "close": g["close"].last(), "volume": g["volume"].sum(), "end_ns": g["end_ns"].max()})
        return out

    def query(self, symbols: list[str], timeframe: str, start: pd.Timestamp | None, end: pd.Timestamp | None,
              limit: int | None, page_token: str | None, sort: str = "asc") -> dict:
        """Answer one ``GET /v2/stocks/bars`` page.

        Parameters
        ----------
        symbols : tickers (unknown ones are simply absent from the answer, as on Alpaca)
        timeframe : Alpaca timeframe string
        start, end : inclusive range of bar start times (UTC); defaults: start of the replay
            clock's New York day, and the replay clock
        limit : maximum bars in this page over all symbols (1..10000, default 1000)
        page_token : opaque cursor from a previous page
        sort : ``asc`` or ``desc`` (per symbol)

        Returns
        -------
        dict
            ``{"bars": {symbol: [bar, ...]}, "next_page_token": str | None}``
        """
        n, unit = parse_timeframe(timeframe)
        limit = DEFAULT_LIMIT if limit in (None, "") else int(limit)
        if not 1 <= limit <= MAX_LIMIT:
            raise ExchangeError(422, 42210000, f"invalid limit: {limit} (must be 1..{MAX_LIMIT})")
        eng = self.engine
        with eng.lock:
            now_ns = eng.now_ns
        if start is None:
            start = pd.Timestamp(now_ns, tz="UTC").tz_convert(EXCHANGE_TZ).normalize().tz_convert("UTC")
        s_ns = start.value
        e_ns = end.value if end is not None else now_ns
        if e_ns < s_ns:
            raise ExchangeError(422, 42210000, "end should not be before start")
        after_sym, after_t = None, None
        if page_token:
            try:
                sym, ts = base64.urlsafe_b64decode(page_token.encode()).decode().rsplit("|", 1)
                after_sym, after_t = sym, int(ts)
            except Exception:
                raise ExchangeError(422, 42210000, "invalid page_token") from None
        desc = str(sort).lower() == "desc"
        out: dict[str, list] = {}
        count = 0
        next_token = None
        for sym in sorted({s.strip().upper() for s in symbols if s.strip()}):
            if not eng.has_symbol(sym) or (after_sym is not None and sym < after_sym):
                continue
            agg = self._agg(sym, n, unit)
            idx = agg.index.to_numpy()
            ok = (agg["end_ns"].to_numpy() <= now_ns) & (idx >= s_ns) & (idx <= e_ns)
            if after_sym == sym:
                ok &= (idx < after_t) if desc else (idx > after_t)
            rows = np.flatnonzero(ok)
            if desc:
                rows = rows[::-1]
            if len(rows) == 0:
                continue
            take = rows[: limit - count]
            o, h, lo, c, v = (agg[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
            out[sym] = [bar_json(idx[i], float(o[i]), float(h[i]), float(lo[i]), float(c[i]), float(v[i]))
                        for i in take]
            count += len(take)
            if count >= limit:
                more = len(rows) > len(take) or any(
                    eng.has_symbol(s2) for s2 in sorted({s.strip().upper() for s in symbols}) if s2 > sym)
                if more:
                    next_token = base64.urlsafe_b64encode(f"{sym}|{int(idx[take[-1]])}".encode()).decode()
                break
        return {"bars": out, "next_page_token": next_token}
