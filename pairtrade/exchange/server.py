"""The local Alpaca-compatible paper exchange: one aiohttp server on 127.0.0.1, one port.

Serves, well enough for the unmodified alpaca-py 0.44 clients (``url_override``):

* Trading REST ``/v2/...`` (``TradingClient``): account, clock, calendar, assets, positions, orders;
* market-data REST ``/v2/stocks/...`` and ``/v1beta3/crypto/us/...``
  (``StockHistoricalDataClient``, ``CryptoHistoricalDataClient``): bars (with aggregation and
  pagination, never a bar that has not closed by the replay clock), latest bars and quotes;
* the market-data websocket ``/v2/iex`` (also ``/v2/sip``, ``/v1beta3/crypto/us``): msgpack;
* the ``trade_updates`` websocket ``/stream``: JSON;
* an admin API outside Alpaca's namespace (no credentials; the server listens on loopback only).

The wire protocol follows ``../shared/alpaca-protocol.md``; the book and the fill model live in
:mod:`pairtrade.exchange.engine`, the fault kinds in :mod:`pairtrade.exchange.faults`, the durable
account state in :mod:`pairtrade.exchange.store`.

Admin API
---------
``POST /_local/advance?n=1[&cursor=K]``
    Lockstep: replay the next ``n`` bar timestamps (fill pending orders at the bar's open, publish
    the bars on the market-data websockets and the fills on ``trade_updates``).  Answers
    ``{"published": [{"timestamp", "clock", "bars": {SYM: {open, high, low, close, volume}},
    "fills": [...]}], "repeated", "now", "done", "cursor", "bars_total", "account": {"cash",
    "equity", "positions": {SYM: qty}}}``.  With ``cursor=K`` (the bar index the driver expects
    to replay) the call is idempotent: if bar K was already replayed (the answer was lost when
    either side crashed), its bars and fills are sent again with ``"repeated": true`` and nothing
    is replayed; any other mismatch is a 409.  Whoever drives the replay calls it: ``controller.py`` does, in
    process (``LocalExchange.advance``) or over HTTP against a separate exchange
    (``--exchange-url``); ``--speed`` makes the exchange advance itself instead.
``GET /_local/state``
    Cash, equity, positions, every order and fill, the clock (``cursor``/``bars_total``).
``GET /_local/info``
    Data source, symbols, bar size, replay range, clock, speed, state file, the URLs.
``GET /_local/faults``
    ``{"kinds", "counts": {kind: firings}, "hits": {kind: requests/orders/bars changed}, "rules",
    "mute_data", "mute_trade", ...}``.
``POST /_local/faults`` with a JSON object, any of
    ``{"arm": {"kind": K, "count": 1, "symbol": S, ...params}}`` (or a list of them; ``"count":
    null`` = until disarmed), ``{"random": {"kind": K, "rate": 0.05, "seed": 1, ...params}}`` (or a
    list), ``{"disarm": K | [K, ...] | true}``, ``{"clear": true}`` (disarm all),
    ``{"reset_counts": true}``, ``{"mute_data": bool}``, ``{"mute_trade": bool}``,
    ``{"drop_data": true}``, ``{"drop_trade": true}`` (close those websockets now), and the older
    one-shot keys ``reject_next_order`` (list of symbols) + ``reject_via``, ``partial_fill_next``
    (``{SYM: fraction}``), ``fail_next_requests`` + ``fail_status``.  The kinds and their
    parameters are listed in :mod:`pairtrade.exchange.faults`.  Answers like ``GET``; a bad body
    is a 422 ``{"code", "message"}`` naming the key.

Example: ``curl -X POST localhost:8765/_local/faults -d '{"random": {"kind": "http_429", "rate": 0.02,
"seed": 1, "burst": 2}}'``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pandas as pd
from aiohttp import WSMsgType, web

from pairtrade.config import CostModel
from pairtrade.data.bars import EXCHANGE_TZ, BarSet
from pairtrade.exchange.engine import Engine, ExchangeError, Order, Published, asset_id, iso
from pairtrade.exchange.faults import PDT_CODE, PDT_MESSAGE, ExchangeFaults, HttpFault, not_shortable_message
from pairtrade.exchange.history import HistoryService, bar_json

log = logging.getLogger(__name__)

DATA_WS_PATHS = ("/v2/iex", "/v2/sip", "/v2/delayed_sip", "/v1beta3/crypto/us")
TRADE_WS_PATH = "/stream"
AUTH_TIMEOUT_SECS = 10.0
SEND_TIMEOUT_SECS = 5.0
CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds", "corrections",
            "cancelErrors", "orderbooks")


def _truthy(v: Any) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def _ts(v: str | None) -> pd.Timestamp | None:
    """Parse an ISO 8601 date/datetime query value; naive means UTC."""
    if v is None or v == "":
        return None
    try:
        t = pd.Timestamp(v)
    except (ValueError, TypeError):
        raise ExchangeError(422, 42210000, f"invalid timestamp {v!r}; expected RFC 3339") from None
    return t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")


def _json_default(o: Any) -> Any:
    if isinstance(o, pd.Timestamp):
        return iso(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(obj, default=_json_default), status=status,
                        content_type="application/json")


def _error(status: int, code: int, message: str) -> web.Response:
    return _json_response({"code": code, "message": message}, status)


def _published_json(p: Published) -> dict:
    return {"timestamp": iso(p.timestamp), "clock": iso(p.clock), "bars": p.bars,
            "fills": [dict(order_id=f.order_id, client_order_id=f.client_order_id, symbol=f.symbol,
                           side=f.side, qty=f.qty, price=f.price, fee=f.fee, timestamp=iso(f.timestamp),
                           position_qty=f.position_qty, execution_id=f.execution_id) for f in p.fills]}


def _fault_response(f: HttpFault) -> web.Response:
    """The answer of an injected HTTP failure: Alpaca's JSON error body, or a gateway's HTML page."""
    if f.html:  # what a load balancer in front of the API sends (UNVERIFIED for Alpaca: no public capture)
        return web.Response(text=f"<html><head><title>{f.status} {f.message.title()}</title></head><body>"
                                 f"<center><h1>{f.status} {f.message.title()}</h1></center></body></html>",
                            status=f.status, content_type="text/html")
    resp = _error(f.status, f.code, f.message)
    if f.status == 429:
        resp.headers["Retry-After"] = "1"
    return resp


@dataclass(eq=False)
class _DataConn:
    ws: web.WebSocketResponse
    path: str
    authed: bool = False
    subs: dict[str, set[str]] = field(default_factory=lambda: {c: set() for c in CHANNELS})

    def ack(self) -> dict:
        msg: dict[str, Any] = {"T": "subscription"}
        for c in CHANNELS:
            if c == "orderbooks" and not self.path.startswith("/v1beta3"):
                continue
            msg[c] = sorted(self.subs[c])
        return msg

    def wants(self, channel: str, symbol: str) -> bool:
        s = self.subs[channel]
        return symbol in s or "*" in s


@dataclass(eq=False)
class _TradeConn:
    ws: web.WebSocketResponse
    queue: asyncio.Queue
    authed: bool = False
    listening: bool = False


class _RateLimiter:
    """Fixed one-minute windows per (key, API) in wall-clock time, like Alpaca's 200 req/min."""

    def __init__(self, per_min: int | None):
        self.per_min = per_min
        self._win: dict[tuple[str, str], tuple[int, int]] = {}

    def hit(self, key: str, api: str) -> tuple[bool, dict[str, str]]:
        if not self.per_min:
            return True, {}
        window = int(time.time() // 60)
        w, used = self._win.get((key, api), (window, 0))
        if w != window:
            w, used = window, 0
        ok = used < self.per_min
        if ok:
            used += 1
        self._win[(key, api)] = (w, used)
        return ok, {"X-Ratelimit-Limit": str(self.per_min), "X-Ratelimit-Remaining": str(self.per_min - used),
                    "X-Ratelimit-Reset": str((w + 1) * 60)}


class LocalExchange:
    """Alpaca-compatible paper exchange replaying a :class:`~pairtrade.data.bars.BarSet`.

    Parameters
    ----------
    barset : bars to replay (``None``: the embedded default :func:`~pairtrade.data.bars.embedded_bars`)
    start, end : replay range, ISO strings or timestamps (naive = UTC); bars closed by ``start``
        are history for warm-up. ``None``: first / last bar.
    cash : starting cash, USD
    costs : slippage (USD/share) and fee (bps of notional), the shared fill model
    key, secret : the only credentials accepted (REST headers and websocket auth)
    rate_limit_per_min : requests per minute per API (trading, market data); ``None`` disables
    speed : bars per second for automatic replay in a background task; ``None`` = lockstep,
        driven by :meth:`advance`
    host, port : where to listen; port 0 picks a free port
    reject_position_flip : reject orders that take a position through zero (real Alpaca does)
    state : SQLite state file (:mod:`pairtrade.exchange.store`): the account (cash, positions,
        orders, fills) and the replay clock persist there on every change and are restored when
        the file already holds this replay's account; ``None`` (default): in memory only
    sync : ``"normal"`` (survives a kill of the process) or ``"full"`` (also a power loss)
    regular_hours : informational: the bars were restricted to regular trading hours (reported by
        ``GET /_local/info``; ``controller.py --exchange-url`` requires it for intraday bars)

    Raises
    ------
    StateMismatch
        ``state`` holds the account of another replay (other data, range, cash or costs).

    Examples
    --------
    >>> ex = LocalExchange(embedded_bars(), start="2018-01-02")      # doctest: +SKIP
    >>> ex.start(); TradingClient("local", "local", url_override=ex.base_url)  # doctest: +SKIP
    """

    def __init__(self, barset: BarSet | None = None, start: Any = None, end: Any = None,
                 cash: float = 100_000.0, costs: CostModel | None = None, key: str = "local",
                 secret: str = "local", rate_limit_per_min: int | None = 200, speed: float | None = None,
                 host: str = "127.0.0.1", port: int = 0, reject_position_flip: bool = False,
                 state: str | Path | None = None, sync: str = "normal", regular_hours: bool = False):
        if barset is None:
            from pairtrade.data.bars import embedded_bars
            barset = embedded_bars()
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be > 0 bars per second, got {speed}")
        self.barset = barset
        self.state_path = Path(state) if state is not None else None
        self.regular_hours = bool(regular_hours)
        store = None
        if state is not None:
            from pairtrade.exchange.store import StateStore
            store = StateStore(state, sync=sync)
        try:
            self.engine = Engine(barset, start, end, cash, costs, reject_position_flip, store=store)
        except BaseException:
            if store is not None:
                store.close()
            raise
        self.history = HistoryService(self.engine)
        self.faults = ExchangeFaults(symbols=list(self.engine.symbols))
        self.faults._drop_data = lambda: self._call_soon(self._drop_data())
        self.faults._drop_trade = lambda: self._call_soon(self._drop_trade())
        self.engine.order_hook = self._order_hook
        self.engine.short_check = self._short_check
        self._key, self._secret = key, secret
        self.account_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "pairtrade-local:" + key))
        self.account_number = "PALOCAL" + self.account_id[:5].upper()
        self.speed = speed
        self.host = host
        self._port = port
        self._limiter = _RateLimiter(rate_limit_per_min)
        self._data_conns: set[_DataConn] = set()
        self._trade_conns: set[_TradeConn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._speed_task: asyncio.Task | None = None
        self._advance_lock: asyncio.Lock | None = None
        self._cal = None
        self.engine.listeners.append(self._on_trade_event)

    # ------------------------------------------------------------------ public API
    @property
    def port(self) -> int:
        """TCP port the server listens on (after :meth:`start`)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: ``url_override`` of TradingClient and the historical data clients."""
        return f"http://{self.host}:{self._port}"

    @property
    def data_stream_url(self) -> str:
        """``ws://127.0.0.1:PORT/v2/iex``: ``url_override`` of StockDataStream."""
        return f"ws://{self.host}:{self._port}/v2/iex"

    @property
    def crypto_stream_url(self) -> str:
        return f"ws://{self.host}:{self._port}/v1beta3/crypto/us"

    @property
    def trade_stream_url(self) -> str:
        """``ws://127.0.0.1:PORT/stream``: ``url_override`` of TradingStream."""
        return f"ws://{self.host}:{self._port}{TRADE_WS_PATH}"

    @property
    def now(self) -> pd.Timestamp:
        """Replay clock (UTC)."""
        return self.engine.now

    @property
    def done(self) -> bool:
        """True when every bar of the replay range has been published."""
        return self.engine.done

    def account_snapshot(self) -> dict:
        """Cash, equity, positions, orders and fills (plain Python, USD and shares)."""
        return self.engine.snapshot()

    def account_summary(self) -> tuple[float, float, dict[str, float]]:
        """``(cash, equity, {symbol: qty})`` in USD and shares; cheap enough to call on every bar."""
        e = self.engine
        with e.lock:
            return e.cash, e.equity(), {s: p.qty for s, p in e.positions.items()}

    def describe(self) -> str:
        """Human-readable summary: data source, symbols, bar size, replay range, URLs, state file."""
        e = self.engine
        last = pd.Timestamp(int(e.timeline[-1]), tz="UTC") if len(e.timeline) else None
        if self.state_path is None:
            state = "state: in memory (lost when the exchange stops; --state FILE keeps it)"
        else:
            state = (f"state: {self.state_path} ({'resumed' if e.resumed else 'new account'}: bar {e.cursor} of "
                     f"{len(e.timeline)}, cash {e.cash:.2f} USD, {len(e.positions)} position(s), "
                     f"{len(e.orders)} order(s))")
        return (f"data: {self.barset.source}\n"
                f"symbols: {', '.join(self.barset.symbols)} ({self.barset.bar_size} bars, "
                f"{self.barset.start} .. {self.barset.end})\n"
                f"replay: {len(e.timeline)} timestamps from {e.start} to {last}; clock at {e.now}; "
                f"{'lockstep (POST /_local/advance)' if self.speed is None else f'{self.speed} bars/s'}\n"
                f"REST (TradingClient / StockHistoricalDataClient url_override): {self.base_url}\n"
                f"market data websocket (StockDataStream url_override): {self.data_stream_url}\n"
                f"trade updates websocket (TradingStream url_override): {self.trade_stream_url}\n"
                f"admin: POST {self.base_url}/_local/advance?n=1, GET {self.base_url}/_local/state, "
                f"GET|POST {self.base_url}/_local/faults\n"
                f"{state}")

    def info(self) -> dict:
        """What ``GET /_local/info`` answers: data, symbols, bar size, range, clock, mode, URLs (JSON-ready)."""
        e = self.engine
        return {"source": self.barset.source, "symbols": list(e.symbols), "bar_size": self.barset.bar_size,
                "start": iso(e.start), "end": iso(e.end),
                "last_bar": iso(pd.Timestamp(int(e.timeline[-1]), tz="UTC")) if len(e.timeline) else None,
                "now": iso(e.now), "cursor": e.cursor, "bars_total": int(len(e.timeline)), "done": e.done,
                "speed": self.speed, "regular_hours": self.regular_hours, "initial_cash": e.initial_cash,
                "costs": e.costs.model_dump(mode="json"),
                "state": str(self.state_path) if self.state_path else None, "resumed": e.resumed,
                "base_url": self.base_url, "data_stream_url": self.data_stream_url,
                "trade_stream_url": self.trade_stream_url}

    def start(self) -> "LocalExchange":
        """Serve in a background thread with its own asyncio loop; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("exchange already started")
        ready = threading.Event()
        err: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as e:  # report start-up failures to the caller
                err.append(e)
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="local-exchange", daemon=True)
        self._thread.start()
        ready.wait(30)
        if err:
            self._thread = None
            raise err[0]
        return self

    def stop(self) -> None:
        """Close all connections, stop the server and its thread."""
        if self._loop is None or self._thread is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            fut.result(15)
        except Exception:  # pragma: no cover - best effort
            log.exception("local exchange shutdown")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(15)
        self._thread = None
        self._loop = None
        self.close_state()

    def close_state(self) -> None:
        """Close the state file (after :meth:`stop`; a stopped exchange without a loop may call it alone)."""
        if self.engine.store is not None:
            with self.engine.lock:
                self.engine.store.close()
                self.engine.store = None

    def __enter__(self) -> "LocalExchange":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def advance(self) -> Published | None:
        """Lockstep step: fill pending orders at the next bar's open, mark, publish the bars.

        Blocks until the bars have been written to every subscribed market-data websocket.

        Returns
        -------
        Published or None
            ``timestamp`` (bar start), ``clock`` (after), ``bars`` ``{symbol: ohlcv}``, ``fills``;
            ``None`` when the replay is over.
        """
        if self._loop is None:
            return self._step()
        if threading.current_thread() is self._thread:
            raise RuntimeError("advance() called on the exchange's own loop; await _advance_async()")
        return asyncio.run_coroutine_threadsafe(self._advance_async(), self._loop).result(60)

    # ------------------------------------------------------------------ replay and fault hooks
    def _partial_hook(self, order: Order) -> float | None:
        return self.faults.partial_fraction(order.symbol)

    def _order_hook(self, order: Order) -> None:
        """Engine hook on every booked order: a fate (``*_after_accept``) or a delay (``delayed_fill``)."""
        fate, delay = self.faults.on_booked(order.symbol)
        order.fate = fate
        order.fill_from_cursor += delay

    def _short_check(self, symbol: str) -> str | None:
        shortable, etb = self.faults.borrow(symbol, self.engine.cursor)
        if shortable and etb:
            return None
        self.faults.short_refused()
        return not_shortable_message(symbol)

    def _is_exit(self, symbol: Any, side: Any) -> bool:
        """True when an order of ``side`` reduces the current position of ``symbol``."""
        e = self.engine
        with e.lock:
            p = e.positions.get(str(symbol or "").upper())
            sign = {"buy": 1, "sell": -1}.get(str(side or "").lower(), 0)
            return p is not None and p.qty * sign < 0

    def _step(self) -> Published | None:
        pub = self.engine.advance(partial=self._partial_hook, on_fate=lambda o: self.faults.fate_applied(o.status))
        if pub is not None:
            for f in pub.fills:
                if self.engine.orders[f.order_id].status == "partially_filled":
                    self.faults.partial_applied()
        return pub

    async def _advance_async(self) -> Published | None:
        async with self._advance_lock:
            if self.engine.done:
                return None
            act = self.faults.on_advance(self.engine.cursor)
            if act.drop_trade:      # before the bar: its fill updates are lost to the dropped clients
                await self._drop_trade()
            if act.drop_data:
                await self._drop_data()
            pub = self._step()
            if pub is not None:
                await asyncio.sleep(0)          # let the fill events reach their queues first
                await self._publish(pub)
            return pub

    async def _speed_loop(self) -> None:
        interval = 1.0 / float(self.speed)
        while not self.engine.done:
            await asyncio.sleep(interval)
            await self._advance_async()
        log.info("replay finished at %s", self.engine.now)

    async def _publish(self, pub: Published) -> None:
        if self.faults.data_silent(self.engine.cursor - 1):
            return
        ts = msgpack.Timestamp.from_unix_nano(pub.timestamp.value)
        quote_t = msgpack.Timestamp.from_unix_nano(pub.clock.value)
        slip = self.engine.costs.slippage_per_share
        daily = self.engine.bar_secs >= 86400
        for conn in list(self._data_conns):
            if not conn.authed or conn.ws.closed:
                continue
            msgs = []
            for sym, b in sorted(pub.bars.items()):
                bar = {"S": sym, "o": b["open"], "h": b["high"], "l": b["low"], "c": b["close"],
                       "v": int(b["volume"]) if float(b["volume"]).is_integer() else b["volume"], "t": ts,
                       "n": None, "vw": None}
                if conn.wants("bars", sym):
                    msgs.append({"T": "b", **bar})
                if daily and conn.wants("dailyBars", sym):
                    msgs.append({"T": "d", **bar})
                if conn.wants("quotes", sym):
                    msgs.append(self._quote_msg(sym, b["close"], slip, quote_t, conn.path))
            if msgs:
                await self._send_data(conn, msgs)

    @staticmethod
    def _quote_msg(sym: str, close: float, slip: float, t: Any, path: str) -> dict:
        if path.startswith("/v1beta3"):
            return {"T": "q", "S": sym, "bp": close - slip, "bs": 1.0, "ap": close + slip, "as": 1.0, "t": t}
        return {"T": "q", "S": sym, "bx": "V", "bp": close - slip, "bs": 1, "ax": "V", "ap": close + slip,
                "as": 1, "c": ["R"], "z": "A", "t": t}

    async def _send_data(self, conn: _DataConn, msgs: list[dict]) -> None:
        try:
            await asyncio.wait_for(conn.ws.send_bytes(msgpack.packb(msgs, use_bin_type=True)), SEND_TIMEOUT_SECS)
        except Exception as e:  # slow or dead client: drop it, it reconnects
            log.warning("data websocket send failed (%s); closing it", type(e).__name__)
            self._data_conns.discard(conn)
            try:
                await conn.ws.close(code=1011, message=b"slow client")
            except Exception:
                pass

    # ------------------------------------------------------------------ server lifecycle
    async def _serve(self) -> None:
        self._advance_lock = asyncio.Lock()
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_post("/_local/advance", self._h_admin_advance)
        r.add_get("/_local/state", self._h_admin_state)
        r.add_get("/_local/info", self._h_admin_info)
        r.add_get("/_local/faults", self._h_admin_faults_get)
        r.add_post("/_local/faults", self._h_admin_faults)
        for p in DATA_WS_PATHS:
            r.add_get(p, self._h_data_ws)
        r.add_get(TRADE_WS_PATH, self._h_trade_ws)
        r.add_get("/v2/account", self._h_account)
        r.add_get("/v2/clock", self._h_clock)
        r.add_get("/v2/calendar", self._h_calendar)
        r.add_get("/v2/assets", self._h_assets)
        r.add_get("/v2/assets/{sym:.+}", self._h_asset)
        r.add_get("/v2/positions", self._h_positions)
        r.add_delete("/v2/positions", self._h_close_all)
        r.add_get("/v2/positions/{sym:.+}", self._h_position)
        r.add_delete("/v2/positions/{sym:.+}", self._h_close_position)
        r.add_get("/v2/orders:by_client_order_id", self._h_order_by_client_id)
        r.add_post("/v2/orders", self._h_submit)
        r.add_get("/v2/orders", self._h_orders)
        r.add_delete("/v2/orders", self._h_cancel_all)
        r.add_get("/v2/orders/{oid}", self._h_order)
        r.add_delete("/v2/orders/{oid}", self._h_cancel)
        for prefix in ("/v2/stocks", "/v1beta3/crypto/us"):
            r.add_get(prefix + "/bars", self._h_bars)
            r.add_get(prefix + "/bars/latest", self._h_latest_bars)
            r.add_get(prefix + "/quotes/latest", self._h_latest_quotes)
        r.add_get("/v1beta3/crypto/us/latest/bars", self._h_latest_bars)     # crypto spells them this way
        r.add_get("/v1beta3/crypto/us/latest/quotes", self._h_latest_quotes)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port, reuse_address=True)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]
        if self.speed is not None:
            self._speed_task = asyncio.get_running_loop().create_task(self._speed_loop())

    async def _shutdown(self) -> None:
        if self._speed_task is not None:
            self._speed_task.cancel()
        for c in list(self._data_conns) + list(self._trade_conns):
            try:
                await c.ws.close(code=1001, message=b"server shutdown")
            except Exception:
                pass
        if self._runner is not None:
            await self._runner.cleanup()

    def _call_soon(self, coro) -> None:
        if self._loop is None:
            coro.close()
            return
        asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _drop_data(self) -> None:
        conns = list(self._data_conns)
        self._data_conns.difference_update(conns)
        for c in conns:
            try:
                await c.ws.close(code=1001, message=b"connection dropped (fault injection)")
            except Exception:
                pass

    async def _drop_trade(self) -> None:
        conns = list(self._trade_conns)
        self._trade_conns.difference_update(conns)
        for c in conns:
            c.listening = False
            try:
                await c.ws.close(code=1001, message=b"connection dropped (fault injection)")
            except Exception:
                pass

    # ------------------------------------------------------------------ middleware
    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        path = request.path
        if path in DATA_WS_PATHS or path == TRADE_WS_PATH:
            return await handler(request)  # websockets authenticate in-band
        api = None
        if path.startswith("/v2/stocks") or path.startswith("/v1beta3"):
            api = "data"
        elif path.startswith("/v2/"):
            api = "trading"
        headers: dict[str, str] = {}
        if api is not None:
            key = request.headers.get("APCA-API-KEY-ID")
            sec = request.headers.get("APCA-API-SECRET-KEY")
            if not key or not sec:
                return _error(401, 40110000, "request is not authorized: missing APCA-API-KEY-ID or "
                                             "APCA-API-SECRET-KEY header")
            if key != self._key or sec != self._secret:
                return _error(403, 40310000, "forbidden: invalid API key or secret")
            ok, headers = self._limiter.hit(key, api)
            if not ok:
                resp = _error(429, 42910000, "rate limit exceeded")
                resp.headers.update(headers)
                return resp
            fail = self.faults.on_request(api)
            if fail is not None:
                resp = _fault_response(fail)
                resp.headers.update(headers)
                return resp
        try:
            resp = await handler(request)
        except ExchangeError as e:
            resp = _error(e.status, e.code, e.message)
        except web.HTTPNotFound:
            resp = _error(404, 40410000, f"endpoint not found: {request.method} {path}")
        except web.HTTPMethodNotAllowed:
            resp = _error(405, 40510000, f"method not allowed: {request.method} {path}")
        except web.HTTPException:
            raise
        except Exception as e:  # never leak a traceback or a header to the client
            log.exception("handler error on %s %s", request.method, path)
            resp = _error(500, 50010000, f"internal error: {type(e).__name__}")
        if headers and not resp.prepared:
            resp.headers.update(headers)
        return resp

    # ------------------------------------------------------------------ admin
    async def _h_admin_advance(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            n = int(q.get("n", "1"))
            expect = int(q["cursor"]) if "cursor" in q else None
        except ValueError:
            raise ExchangeError(422, 40010001, f"n and cursor must be whole numbers of bars, got "
                                               f"n={q.get('n')!r} cursor={q.get('cursor')!r}") from None
        e = self.engine
        if expect is not None and e.cursor != expect:
            # idempotent advance: the driver lost our answer for bar `expect` (it or we crashed): send it again
            if e.cursor == expect + 1 and n == 1:
                return self._advance_response([_published_json(e.published_at(expect))], repeated=True)
            raise ExchangeError(409, 40910000, f"the replay clock is at bar {e.cursor}, not {expect}: another "
                                               f"driver advanced it")

        async def run() -> list[dict]:
            pubs = []
            for _ in range(max(1, n)):
                p = await self._advance_async()
                if p is None:
                    break
                pubs.append(_published_json(p))
            return pubs

        # shielded: a client that disconnects (or is killed) mid-request never leaves a bar half replayed
        pubs = await asyncio.shield(asyncio.get_running_loop().create_task(run()))
        return self._advance_response(pubs)

    def _advance_response(self, pubs: list[dict], repeated: bool = False) -> web.Response:
        cash, equity, positions = self.account_summary()
        e = self.engine
        return _json_response({"published": pubs, "repeated": repeated, "now": iso(self.now), "done": self.done,
                               "cursor": e.cursor, "bars_total": int(len(e.timeline)),
                               "account": {"cash": cash, "equity": equity, "positions": positions}})

    async def _h_admin_state(self, request: web.Request) -> web.Response:
        return _json_response(self.account_snapshot())

    async def _h_admin_info(self, request: web.Request) -> web.Response:
        return _json_response(self.info())

    async def _h_admin_faults_get(self, request: web.Request) -> web.Response:
        return _json_response(self.faults.state())

    async def _h_admin_faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            raise ExchangeError(400, 40010000, "POST /_local/faults: the body is not JSON") from None
        try:
            actions = self.faults.apply_admin(body)
        except (ValueError, TypeError) as e:
            raise ExchangeError(422, 40010001, str(e)) from None
        if "drop_data" in actions:
            await self._drop_data()
        if "drop_trade" in actions:
            await self._drop_trade()
        return _json_response({"ok": True, **self.faults.state()})

    # ------------------------------------------------------------------ trading REST
    async def _h_account(self, request: web.Request) -> web.Response:
        return _json_response(self.engine.account_json(self.account_id, self.account_number))

    def _calendar(self):
        if self._cal is None:
            from pairtrade.data.bars import trading_calendar

            lo = min(self.barset.start, self.engine.start) - pd.Timedelta(days=30)
            hi = max(self.barset.end, self.engine.now) + pd.Timedelta(days=400)
            self._cal = trading_calendar("XNYS", lo.year, hi.year)
        return self._cal

    async def _h_clock(self, request: web.Request) -> web.Response:
        now = self.engine.now
        cal = self._calendar()
        minute = now.floor("min")
        try:
            is_open = bool(cal.is_open_on_minute(minute))
            nxt_open, nxt_close = cal.next_open(minute), cal.next_close(minute)
        except Exception:  # outside the calendar's bounds
            raise ExchangeError(500, 50010000, f"replay clock {now} outside the XNYS calendar") from None
        ny = lambda t: pd.Timestamp(t).tz_convert(EXCHANGE_TZ).isoformat()  # noqa: E731
        return _json_response({"timestamp": ny(now), "is_open": is_open, "next_open": ny(nxt_open),
                               "next_close": ny(nxt_close)})

    async def _h_calendar(self, request: web.Request) -> web.Response:
        cal = self._calendar()
        q = request.query
        sched = cal.schedule
        lo = pd.Timestamp(q["start"][:10]) if q.get("start") else sched.index[0]
        hi = pd.Timestamp(q["end"][:10]) if q.get("end") else sched.index[-1]
        sel = sched.loc[lo:hi]
        out = []
        for day, row in sel.iterrows():
            o = row["open"].tz_convert(EXCHANGE_TZ)
            c = row["close"].tz_convert(EXCHANGE_TZ)
            out.append({"date": day.strftime("%Y-%m-%d"), "open": o.strftime("%H:%M"), "close": c.strftime("%H:%M"),
                        "session_open": "0400", "session_close": "2000",
                        "settlement_date": (day + pd.offsets.BDay(1)).strftime("%Y-%m-%d")})
        return _json_response(out)

    def _asset_json(self, sym: str) -> dict:
        crypto = "/" in sym
        shortable, etb = (False, False) if crypto else self.faults.borrow(sym, self.engine.cursor)
        return {"id": asset_id(sym), "class": "crypto" if crypto else "us_equity",
                "exchange": "CRYPTO" if crypto else "NASDAQ", "symbol": sym, "name": f"{sym} (local replay)",
                "status": "active", "tradable": True, "marginable": not crypto, "shortable": shortable,
                "easy_to_borrow": etb, "fractionable": True, "maintenance_margin_requirement": 30,
                "attributes": []}

    def _resolve_symbol(self, s: str) -> str | None:
        s = s.upper()
        if self.engine.has_symbol(s):
            return s
        for sym in self.engine.symbols:
            if asset_id(sym) == s.lower():
                return sym
        return None

    async def _h_assets(self, request: web.Request) -> web.Response:
        return _json_response([self._asset_json(s) for s in self.engine.symbols])

    async def _h_asset(self, request: web.Request) -> web.Response:
        raw = request.match_info["sym"]
        sym = self._resolve_symbol(raw)
        if sym is None:
            raise ExchangeError(404, 40410000, f"asset not found for {raw}")
        return _json_response(self._asset_json(sym))

    async def _h_positions(self, request: web.Request) -> web.Response:
        e = self.engine
        with e.lock:
            return _json_response([e.position_json(p) for _, p in sorted(e.positions.items())])

    async def _h_position(self, request: web.Request) -> web.Response:
        raw = request.match_info["sym"]
        sym = self._resolve_symbol(raw) or raw.upper()
        e = self.engine
        with e.lock:
            p = e.positions.get(sym)
            if p is None:
                raise ExchangeError(404, 40410000, "position does not exist")
            return _json_response(e.position_json(p))

    async def _h_close_position(self, request: web.Request) -> web.Response:
        raw = request.match_info["sym"]
        sym = self._resolve_symbol(raw) or raw.upper()
        q = request.query
        if sym in self.engine.positions and self.faults.refuse_exit(sym, self.engine.cursor):
            raise ExchangeError(403, PDT_CODE, PDT_MESSAGE)
        o = self.engine.close_position(sym, q.get("qty"), q.get("percentage"))
        return _json_response(o.to_alpaca())

    async def _h_close_all(self, request: web.Request) -> web.Response:
        e = self.engine
        if _truthy(request.query.get("cancel_orders", "false")):
            e.cancel_all()
        out = []
        with e.lock:
            syms = sorted(e.positions)
        for sym in syms:
            try:
                if self.faults.refuse_exit(sym, e.cursor):
                    raise ExchangeError(403, PDT_CODE, PDT_MESSAGE)
                o = e.close_position(sym)
                out.append({"symbol": sym, "status": 200, "body": o.to_alpaca()})
            except ExchangeError as err:
                out.append({"symbol": sym, "status": err.status, "body": {**err.body(), "symbol": sym}})
        return _json_response(out, 207)

    async def _h_submit(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except Exception:
            raise ExchangeError(400, 40010000, "request body format is invalid") from None
        if not isinstance(body, dict):
            raise ExchangeError(400, 40010000, "request body format is invalid")
        sym = str(body.get("symbol") or "")
        spec = self.faults.on_submit(sym)
        if spec is not None:
            if spec.via == "http":
                raise ExchangeError(spec.status, spec.status * 100000, spec.message)
            o = self.engine.book_rejected(**body)
            return _json_response(o.to_alpaca())
        if self._is_exit(sym, body.get("side")) and self.faults.refuse_exit(sym, self.engine.cursor):
            raise ExchangeError(403, PDT_CODE, PDT_MESSAGE)
        o = self.engine.submit(**body)
        answer = self.faults.answer_after_booking(o.symbol)
        if answer is not None:  # booked, but the client never learns it (alpaca-py resends the same body)
            return _fault_response(answer)
        return _json_response(o.to_alpaca())

    async def _h_orders(self, request: web.Request) -> web.Response:
        q = request.query
        status = q.get("status", "open").lower()
        if status not in ("open", "closed", "all"):
            raise ExchangeError(422, 40010001, f"invalid status {status!r}; expected open, closed or all")
        limit = int(q.get("limit", 50))
        if not 1 <= limit <= 500:
            raise ExchangeError(422, 40010001, "limit must be in 1..500")
        symbols = [s for s in q.get("symbols", "").split(",") if s] or None
        orders = self.engine.list_orders(status, limit, _ts(q.get("after")), _ts(q.get("until")),
                                         q.get("direction", "desc").lower(), symbols, q.get("side"))
        return _json_response([o.to_alpaca() for o in orders])

    async def _h_order(self, request: web.Request) -> web.Response:
        return _json_response(self.engine.get_order(request.match_info["oid"]).to_alpaca())

    async def _h_order_by_client_id(self, request: web.Request) -> web.Response:
        cid = request.query.get("client_order_id")
        if not cid:
            raise ExchangeError(422, 40010001, "client_order_id is required")
        return _json_response(self.engine.get_order_by_client_id(cid).to_alpaca())

    async def _h_cancel(self, request: web.Request) -> web.Response:
        self.engine.cancel(request.match_info["oid"])
        return web.Response(status=204)

    async def _h_cancel_all(self, request: web.Request) -> web.Response:
        return _json_response([{"id": o.id, "status": 200, "body": o.to_alpaca()} for o in self.engine.cancel_all()],
                              207)

    # ------------------------------------------------------------------ market-data REST
    async def _h_bars(self, request: web.Request) -> web.Response:
        q = request.query
        symbols = q.get("symbols", "").split(",")
        if not any(s.strip() for s in symbols):
            raise ExchangeError(422, 42210000, "missing symbols")
        if not q.get("timeframe"):
            raise ExchangeError(422, 42210000, "missing timeframe")
        page = self.history.query(symbols, q["timeframe"], _ts(q.get("start")), _ts(q.get("end")),
                                  q.get("limit"), q.get("page_token"), q.get("sort", "asc"))
        if request.path.startswith("/v1beta3"):
            page = {"bars": page["bars"], "next_page_token": page["next_page_token"]}
        return _json_response(page)

    async def _h_latest_bars(self, request: web.Request) -> web.Response:
        out = {}
        with self.engine.lock:
            for sym in {s.strip().upper() for s in request.query.get("symbols", "").split(",") if s.strip()}:
                lb = self.engine.last_bar(sym) if self.engine.has_symbol(sym) else None
                if lb is not None:
                    t, b = lb
                    out[sym] = bar_json(t.value, b["open"], b["high"], b["low"], b["close"], b["volume"])
        return _json_response({"bars": out})

    async def _h_latest_quotes(self, request: web.Request) -> web.Response:
        out = {}
        slip = self.engine.costs.slippage_per_share
        crypto = request.path.startswith("/v1beta3")
        with self.engine.lock:
            for sym in {s.strip().upper() for s in request.query.get("symbols", "").split(",") if s.strip()}:
                lb = self.engine.last_bar(sym) if self.engine.has_symbol(sym) else None
                if lb is None:
                    continue
                t, b = lb
                tq = (t + pd.Timedelta(seconds=self.engine.bar_secs)).strftime("%Y-%m-%dT%H:%M:%SZ")
                c = b["close"]
                if crypto:
                    out[sym] = {"t": tq, "bp": c - slip, "bs": 1.0, "ap": c + slip, "as": 1.0}
                else:
                    out[sym] = {"t": tq, "ax": "V", "ap": c + slip, "as": 1, "bx": "V", "bp": c - slip, "bs": 1,
                                "c": ["R"], "z": "A"}
        return _json_response({"quotes": out})

    # ------------------------------------------------------------------ market-data websocket
    async def _h_data_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        conn = _DataConn(ws, request.path)

        async def send(msgs: list[dict]) -> None:
            await ws.send_bytes(msgpack.packb(msgs, use_bin_type=True))

        async def auth_timeout() -> None:
            await asyncio.sleep(AUTH_TIMEOUT_SECS)
            if not conn.authed and not ws.closed:
                await send([{"T": "error", "code": 404, "msg": "auth timeout"}])
                await ws.close()

        await send([{"T": "success", "msg": "connected"}])
        timer = asyncio.get_running_loop().create_task(auth_timeout())
        try:
            async for m in ws:
                if m.type == WSMsgType.BINARY:
                    try:
                        msg = msgpack.unpackb(m.data)
                    except Exception:
                        await send([{"T": "error", "code": 400, "msg": "invalid syntax"}])
                        continue
                elif m.type == WSMsgType.TEXT:
                    try:
                        msg = json.loads(m.data)
                    except ValueError:
                        await send([{"T": "error", "code": 400, "msg": "invalid syntax"}])
                        continue
                else:
                    break
                if not isinstance(msg, dict):
                    await send([{"T": "error", "code": 400, "msg": "invalid syntax"}])
                    continue
                action = msg.get("action")
                if action == "auth":
                    if conn.authed:
                        await send([{"T": "error", "code": 403, "msg": "already authenticated"}])
                    elif msg.get("key") != self._key or msg.get("secret") != self._secret:
                        await send([{"T": "error", "code": 402, "msg": "auth failed"}])
                        await ws.close()
                    elif any(c.authed and not c.ws.closed for c in self._data_conns):
                        await send([{"T": "error", "code": 406, "msg": "connection limit exceeded"}])
                        await ws.close()
                    else:
                        conn.authed = True
                        self._data_conns.add(conn)
                        await send([{"T": "success", "msg": "authenticated"}])
                elif action in ("subscribe", "unsubscribe"):
                    if not conn.authed:
                        await send([{"T": "error", "code": 401, "msg": "not authenticated"}])
                        continue
                    for ch in CHANNELS:
                        syms = msg.get(ch)
                        if not syms:
                            continue
                        if isinstance(syms, str):
                            syms = [syms]
                        up = {s if s == "*" or "/" in s else s.upper() for s in syms}
                        if action == "subscribe":
                            conn.subs[ch] |= up
                        else:
                            conn.subs[ch] -= up
                    await send([conn.ack()])
                else:
                    await send([{"T": "error", "code": 410, "msg": "invalid subscribe action"}])
        finally:
            timer.cancel()
            self._data_conns.discard(conn)
        return ws

    # ------------------------------------------------------------------ trade_updates websocket
    def _on_trade_event(self, payload: dict) -> None:
        """Engine listener (any thread): queue the update for every listening connection."""
        if self._loop is None:
            return
        msg = {"stream": "trade_updates", "data": payload}
        self._loop.call_soon_threadsafe(self._fanout_trade, msg)

    def _fanout_trade(self, msg: dict) -> None:
        if self.faults.trade_silent(self.engine.cursor - 1):
            return      # a silent ("zombie") trade_updates connection: the update is never sent
        for c in list(self._trade_conns):
            if c.listening:
                c.queue.put_nowait(msg)

    async def _h_trade_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _TradeConn(ws, asyncio.Queue())

        async def send(obj: dict) -> None:
            # real paper sends binary frames; alpaca-py accepts text or binary
            await ws.send_bytes(json.dumps(obj, default=_json_default).encode())

        async def writer() -> None:
            while True:
                msg = await conn.queue.get()
                try:
                    await send(msg)
                except Exception:
                    return

        wtask = asyncio.get_running_loop().create_task(writer())
        try:
            async for m in ws:
                if m.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    msg = json.loads(m.data)
                except ValueError:
                    await send({"stream": "error", "data": {"error_message": "invalid syntax"}})
                    continue
                action = msg.get("action") if isinstance(msg, dict) else None
                data = (msg.get("data") or {}) if isinstance(msg, dict) else {}
                if action in ("authenticate", "auth"):
                    ok = data.get("key_id") == self._key and data.get("secret_key") == self._secret
                    await send({"stream": "authorization",
                                "data": {"status": "authorized" if ok else "unauthorized",
                                         "action": "authenticate"}})
                    if not ok:
                        await ws.close()
                        break
                    conn.authed = True
                    self._trade_conns.add(conn)
                elif action == "listen":
                    if not conn.authed:
                        await send({"stream": "authorization", "data": {"status": "unauthorized",
                                                                        "action": "listen"}})
                        continue
                    streams = [s for s in data.get("streams", []) if s == "trade_updates"]
                    conn.listening = bool(streams)
                    await send({"stream": "listening", "data": {"streams": streams}})
                else:
                    await send({"stream": "error", "data": {"error_message": f"invalid action {action!r}"}})
        finally:
            wtask.cancel()
            self._trade_conns.discard(conn)
        return ws
