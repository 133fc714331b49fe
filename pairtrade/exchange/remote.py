"""Client of a local exchange running as a separate process (``python -m pairtrade.exchange``).

:class:`RemoteExchange` offers the part of :class:`~pairtrade.exchange.server.LocalExchange`'s
interface that ``controller.py`` uses (``advance``, ``account_snapshot``, ``account_summary``,
the URLs, ``faults``), over the exchange's admin API (``/_local/...``), so the lockstep replay
runs the same against an in-process exchange and against one that outlives the controller.
Trading itself always goes through alpaca-py against ``base_url``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd
import requests

from pairtrade.data.bars import DataError
from pairtrade.exchange.engine import Fill, Published

log = logging.getLogger(__name__)


class RemoteExchangeError(DataError):
    """The exchange at the given URL cannot be reached or answered something unexpected."""


def _ts(v: str | None) -> pd.Timestamp | None:
    return None if v is None else pd.Timestamp(v).tz_convert("UTC")


class RemoteFaults:
    """:class:`~pairtrade.exchange.faults.ExchangeFaults` of a remote exchange over ``/_local/faults``."""

    def __init__(self, ex: "RemoteExchange"):
        self._ex = ex

    def post(self, body: dict) -> dict:
        """Send a ``POST /_local/faults`` body (server module docstring); returns the new fault state."""
        return self._ex._call("POST", "/_local/faults", json=body)

    def arm(self, kind: str, count: int | None = 1, symbol: str | None = None, **params: Any) -> dict:
        return self.post({"arm": {"kind": kind, "count": count, "symbol": symbol, **params}})

    def inject_random(self, kind: str, rate: float, seed: Any = 0, symbol: str | None = None, **params: Any) -> dict:
        return self.post({"random": {"kind": kind, "rate": rate, "seed": seed, "symbol": symbol, **params}})

    def disarm(self, kind: str | None = None) -> dict:
        return self.post({"disarm": True if kind is None else kind})

    def state(self) -> dict:
        return self._ex._call("GET", "/_local/faults")

    def counts(self) -> dict[str, int]:
        return self.state()["counts"]


class RemoteExchange:
    """A running local exchange reached over HTTP.

    Parameters
    ----------
    url : ``http://127.0.0.1:PORT`` (the exchange's ``base_url``; a trailing ``/`` is dropped)
    timeout_secs : per admin request (an advance waits for the bars to be written to the websockets)
    reconnect_secs : how long a call keeps retrying while the exchange cannot be reached (it is
        being restarted with its ``--state``); advances are idempotent (``cursor=K``), so a retry
        never replays a bar twice

    Raises
    ------
    RemoteExchangeError
        Nothing answers at ``url``, or it is not a local exchange (no ``/_local/info``).
    """

    def __init__(self, url: str, timeout_secs: float = 60.0, reconnect_secs: float = 60.0):
        if not str(url).startswith(("http://", "https://")):
            raise RemoteExchangeError(f"--exchange-url: expected http://HOST:PORT, got {url!r}")
        self.base_url = str(url).rstrip("/")
        self.timeout_secs = timeout_secs
        self.reconnect_secs = 0.0          # the first contact fails fast: nothing may be listening at all
        self._session = requests.Session()
        self.faults = RemoteFaults(self)
        self.info = self._call("GET", "/_local/info")
        self.reconnect_secs = reconnect_secs
        self.cursor = int(self.info["cursor"])
        host_port = self.base_url.split("://", 1)[1]
        self.data_stream_url = f"ws://{host_port}/v2/iex"
        self.trade_stream_url = f"ws://{host_port}/stream"
        self._summary: tuple[float, float, dict[str, float]] | None = None
        self._now = _ts(self.info["now"])
        self._done = bool(self.info["done"])

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        deadline = time.monotonic() + self.reconnect_secs
        pause = 0.1
        while True:
            try:
                r = self._session.request(method, self.base_url + path, timeout=self.timeout_secs, **kw)
                break
            except requests.RequestException as e:
                if time.monotonic() + pause > deadline:
                    raise RemoteExchangeError(
                        f"local exchange at {self.base_url}: {method} {path} failed ({type(e).__name__}); is "
                        f"`python -m pairtrade.exchange` running there?") from None
                log.warning("local exchange at %s unreachable (%s); retrying in %.1f s", self.base_url,
                            type(e).__name__, pause)
                time.sleep(pause)
                pause = min(2.0, pause * 2)
        if r.status_code == 404 and path.startswith("/_local/"):
            raise RemoteExchangeError(f"{self.base_url} is not a local exchange ({method} {path} -> 404)")
        if r.status_code >= 400:
            try:
                msg = r.json().get("message", r.text)
            except ValueError:
                msg = r.text[:200]
            raise RemoteExchangeError(f"local exchange at {self.base_url}: {method} {path} -> {r.status_code} {msg}")
        return r.json()

    def accepts_keys(self, key: str, secret: str) -> bool:
        """True when the exchange accepts these credentials (``GET /v2/account``)."""
        try:
            r = self._session.get(self.base_url + "/v2/account", timeout=self.timeout_secs,
                                  headers={"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret})
        except requests.RequestException as e:
            raise RemoteExchangeError(f"local exchange at {self.base_url}: GET /v2/account failed "
                                      f"({type(e).__name__})") from None
        return r.status_code not in (401, 403)

    # ------------------------------------------------------------------ LocalExchange interface
    @property
    def now(self) -> pd.Timestamp:
        """Replay clock (UTC) as of the last call."""
        return self._now

    @property
    def done(self) -> bool:
        return self._done

    def advance(self) -> Published | None:
        """``POST /_local/advance?n=1``: replay one bar timestamp; None when the replay is over."""
        r = self._call("POST", "/_local/advance", params={"n": 1, "cursor": self.cursor})
        self._now, self._done, self.cursor = _ts(r["now"]), bool(r["done"]), int(r["cursor"])
        if r.get("repeated"):
            log.warning("the exchange had replayed bar %d already (its answer was lost); continuing from its record",
                        self.cursor - 1)
        a = r["account"]
        self._summary = (float(a["cash"]), float(a["equity"]), {s: float(q) for s, q in a["positions"].items()})
        if not r["published"]:
            return None
        p = r["published"][0]
        fills = [Fill(**{**f, "timestamp": _ts(f["timestamp"])}) for f in p["fills"]]
        return Published(_ts(p["timestamp"]), _ts(p["clock"]), p["bars"], fills)

    def account_snapshot(self) -> dict:
        """``GET /_local/state``: clock, cash, equity, positions, orders, fills (USD, shares)."""
        snap = self._call("GET", "/_local/state")
        self._now, self._done = _ts(snap["now"]), bool(snap["done"])
        return snap

    def account_summary(self) -> tuple[float, float, dict[str, float]]:
        """``(cash, equity, {symbol: qty})`` after the last advance (USD, shares)."""
        if self._summary is None:
            snap = self.account_snapshot()
            self._summary = (float(snap["cash"]), float(snap["equity"]),
                             {s: float(p["qty"]) for s, p in snap["positions"].items()})
        return self._summary

    def describe(self) -> str:
        i = self.info
        return (f"local exchange at {self.base_url} (separate process): {i['source']}; symbols "
                f"{', '.join(i['symbols'])} ({i['bar_size']} bars); clock at {i['now']}, bar {i['cursor']} of "
                f"{i['bars_total']}; state {i['state'] or 'in memory'}")

    def start(self) -> "RemoteExchange":
        return self

    def stop(self) -> None:
        """Close the HTTP session; the exchange process keeps running (and keeps the account)."""
        self._session.close()
