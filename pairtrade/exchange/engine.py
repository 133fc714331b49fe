"""The book of the local paper exchange: replay clock, cash, positions, orders and fills.

No I/O lives here; :mod:`pairtrade.exchange.server` puts the Alpaca wire protocol around it.

Replay semantics
----------------
* Bars are stamped with their **start** time ``t`` and become visible ("closed") once the replay
  clock reaches ``t + bar length``.
* Before the first :meth:`Engine.advance` the clock sits at ``start``: every bar that closed at or
  before ``start`` is history (warm-up); the replay timeline is the sorted union of all bar start
  times in ``[start, end]``.
* :meth:`Engine.advance` moves to the next timeline timestamp ``t``: pending orders of every symbol
  that has a bar at ``t`` fill at that bar's open (the shared fill model of
  :mod:`pairtrade.strategy.fill`), then the bars of ``t`` are published, positions are marked at
  their closes and the clock becomes ``t + bar length``.

Fill model
----------
A market order fills at the open of its symbol's next bar moved against the trader by
``CostModel.slippage_per_share`` (USD/share); a fee of ``CostModel.fee_bps`` basis points of the
filled notional is deducted from cash.  A limit order fills at the first bar whose open, after
slippage, is at or better than its limit (checked at bar opens only, never inside a bar); it then
fills at that slippage-adjusted open.

Money is in USD, quantities in shares (fractional allowed, negative position = short), times
are tz-aware UTC :class:`pandas.Timestamp`.
"""

from __future__ import annotations

import math
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from pairtrade.config import CostModel
from pairtrade.data.bars import EXCHANGE_TZ, BarSet, bar_seconds
from pairtrade.strategy.fill import fill_fee, fill_price

OPEN_STATUSES = frozenset({"new", "accepted", "pending_new", "partially_filled", "held"})
CLOSED_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "replaced", "done_for_day"})
MAX_CLIENT_ORDER_ID_CHARS = 48
MARGIN_MULTIPLIER = 2.0          # Reg T overnight buying power of a margin account
MIN_EQUITY_TO_SHORT_USD = 2000.0  # Alpaca: shorting needs >= $2,000 equity
_NS = uuid.UUID("5b0c4a3e-7d52-4c63-9a51-2f7a8f0c1d11")


class ExchangeError(Exception):
    """A request the exchange refuses; becomes an HTTP error ``{code, message}``.

    Parameters
    ----------
    status : HTTP status (403, 404, 422, ...)
    code : Alpaca-style 8-digit error code
    message : human-readable reason (never contains secrets)
    """

    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict:
        return {"code": self.code, "message": self.message}


def not_found(message: str) -> ExchangeError:
    return ExchangeError(404, 40410000, message)


def unprocessable(message: str) -> ExchangeError:
    return ExchangeError(422, 40010001, message)


def forbidden(message: str) -> ExchangeError:
    return ExchangeError(403, 40310000, message)


def _positive(value: Any, name: str) -> float:
    """``value`` as a finite float > 0, else a 422 naming the field."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise unprocessable(f"invalid {name} {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise unprocessable(f"{name} must be > 0")
    return v


def iso(ts: pd.Timestamp | None) -> str | None:
    """RFC 3339 UTC string with ``Z`` and microseconds, as Alpaca's trading API writes them."""
    if ts is None:
        return None
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def num(x: float | None) -> str | None:
    """Decimal string of a number as Alpaca sends it (``"10"``, ``"101.25"``), at most 9 decimals."""
    if x is None:
        return None
    x = float(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return format(round(x, 9), ".9f").rstrip("0").rstrip(".")


def asset_id(symbol: str) -> str:
    """Stable asset UUID of a symbol (uuid5), so ids survive restarts."""
    return str(uuid.uuid5(_NS, "asset:" + symbol))


@dataclass
class Order:
    """One order on the book (quantities in shares, prices in USD, times UTC)."""

    id: str
    client_order_id: str
    symbol: str
    side: str                     # "buy" | "sell"
    qty: float
    type: str                     # "market" | "limit"
    time_in_force: str
    limit_price: float | None
    created_at: pd.Timestamp
    seq: int
    status: str = "new"
    updated_at: pd.Timestamp | None = None
    filled_at: pd.Timestamp | None = None
    canceled_at: pd.Timestamp | None = None
    failed_at: pd.Timestamp | None = None
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    extended_hours: bool = False
    position_intent: str | None = None
    expired_at: pd.Timestamp | None = None
    fate: str | None = None          # fault injection: status this accepted order turns to at the next bar
    fill_from_cursor: int = 0        # fault injection (delayed fill): first timeline index it may fill at

    _TIMES = ("created_at", "updated_at", "filled_at", "canceled_at", "failed_at", "expired_at")

    def to_state(self) -> dict:
        """Every field as JSON-ready values (times as integer ns since the epoch, UTC) for the state file."""
        d = dict(self.__dict__)
        for k in self._TIMES:
            d[k] = None if d[k] is None else int(pd.Timestamp(d[k]).value)
        return d

    @classmethod
    def from_state(cls, d: dict) -> "Order":
        """Inverse of :meth:`to_state`."""
        d = dict(d)
        for k in cls._TIMES:
            d[k] = None if d.get(k) is None else pd.Timestamp(int(d[k]), tz="UTC")
        return cls(**d)

    @property
    def sign(self) -> int:
        return 1 if self.side == "buy" else -1

    @property
    def remaining(self) -> float:
        return self.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_alpaca(self) -> dict:
        """The order as Alpaca's ``Order`` JSON object (parses into ``alpaca.trading.models.Order``)."""
        return {
            "id": self.id, "client_order_id": self.client_order_id,
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at or self.created_at),
            "submitted_at": iso(self.created_at), "filled_at": iso(self.filled_at),
            "expired_at": iso(self.expired_at), "canceled_at": iso(self.canceled_at),
            "failed_at": iso(self.failed_at),
            "replaced_at": None, "replaced_by": None, "replaces": None, "expires_at": None,
            "asset_id": asset_id(self.symbol), "symbol": self.symbol, "asset_class": "us_equity",
            "notional": None, "qty": num(self.qty), "filled_qty": num(self.filled_qty),
            "filled_avg_price": num(self.filled_avg_price), "order_class": "simple",
            "order_type": self.type, "type": self.type, "side": self.side,
            "position_intent": self.position_intent, "time_in_force": self.time_in_force,
            "limit_price": num(self.limit_price), "stop_price": None, "status": self.status,
            "extended_hours": self.extended_hours, "legs": None, "trail_percent": None,
            "trail_price": None, "hwm": None, "subtag": None, "source": None,
        }


@dataclass
class Position:
    """Open position: ``qty`` shares (negative when short) at ``avg_entry_price`` USD."""

    symbol: str
    qty: float
    avg_entry_price: float


@dataclass(frozen=True)
class Fill:
    """One execution: ``qty`` shares (> 0) of ``side`` at ``price`` USD, ``fee`` USD charged."""

    order_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    fee: float
    timestamp: pd.Timestamp
    position_qty: float
    execution_id: str


@dataclass(frozen=True)
class Published:
    """What one :meth:`Engine.advance` did.

    Attributes
    ----------
    timestamp : bar start time of the published bars (UTC)
    clock : replay clock after publishing (``timestamp + bar length``)
    bars : ``{symbol: {"open", "high", "low", "close", "volume"}}`` (USD, shares)
    fills : executions at the opens of these bars
    """

    timestamp: pd.Timestamp
    clock: pd.Timestamp
    bars: dict[str, dict[str, float]]
    fills: list[Fill] = field(default_factory=list)


@dataclass
class _Series:
    t: np.ndarray          # int64 ns bar starts
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray
    c: np.ndarray
    v: np.ndarray


class Engine:
    """Replay clock and account book of the local exchange (thread-safe).

    Parameters
    ----------
    barset : bars to replay
    start, end : replay range (UTC; ``None`` = first / last bar). Bars closed by ``start`` are
        history for warm-up.
    cash : starting cash, USD
    costs : slippage (USD/share) and fee (bps of notional) of every fill
    reject_position_flip : when true, an order that would take a position through zero (long to
        short or back) in one order is rejected with 403 "insufficient qty available", as real
        Alpaca does; off by default.
    store : durable state (:class:`~pairtrade.exchange.store.StateStore`); when it already holds
        this replay's account, the account and the replay clock are restored from it, and every
        change of account state is committed to it before the call that made it returns.

    Attributes
    ----------
    order_hook : called with each newly booked order (inside the book's lock, before its ``new``
        update): fault injection sets ``fate`` / ``fill_from_cursor`` there
    short_check : called with a symbol before an order opens or extends a short; returns the
        refusal message (422) or None
    resumed : True when the account was restored from ``store``

    Raises
    ------
    StateMismatch
        ``store`` holds the account of another replay.
    """

    def __init__(self, barset: BarSet, start: Any = None, end: Any = None, cash: float = 100_000.0,
                 costs: CostModel | None = None, reject_position_flip: bool = False, store: Any = None):
        self.barset = barset
        self.costs = costs or CostModel()
        self.bar_secs = bar_seconds(barset.bar_size)
        self.bar_ns = self.bar_secs * 1_000_000_000
        self.reject_position_flip = reject_position_flip
        self.lock = threading.RLock()
        self.listeners: list[Callable[[dict], None]] = []
        self._series: dict[str, _Series] = {}
        for sym, df in barset.bars.items():
            idx = pd.DatetimeIndex(df.index).tz_convert("UTC")
            vol = np.nan_to_num(df["volume"].to_numpy(float)) if "volume" in df else np.zeros(len(df))
            self._series[sym] = _Series(idx.as_unit("ns").asi8.copy(), df["open"].to_numpy(float),
                                        df["high"].to_numpy(float), df["low"].to_numpy(float),
                                        df["close"].to_numpy(float), vol)
        first = barset.start
        self.start = pd.Timestamp(start).tz_convert("UTC") if start is not None and pd.Timestamp(start).tz \
            else (pd.Timestamp(start).tz_localize("UTC") if start is not None else first.tz_convert("UTC"))
        self.end = None if end is None else (pd.Timestamp(end).tz_convert("UTC") if pd.Timestamp(end).tz
                                             else pd.Timestamp(end).tz_localize("UTC"))
        s_ns = self.start.value
        e_ns = self.end.value if self.end is not None else np.iinfo(np.int64).max
        allt = np.unique(np.concatenate([s.t for s in self._series.values()])) if self._series else \
            np.array([], dtype=np.int64)
        self.timeline = allt[(allt >= s_ns) & (allt <= e_ns)]
        self.cursor = 0
        self.now_ns = s_ns
        # book
        self.initial_cash = float(cash)
        self.cash = float(cash)
        self.positions: dict[str, Position] = {}
        self.orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}  # open orders by id (kept in submission order)
        self.by_client_id: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.fees_paid = 0.0
        self._seq = 0
        # marks: index (into the symbol's series) of the last closed bar, -1 when none
        self._last_idx: dict[str, int] = {s: self._closed_upto(s, self.now_ns) for s in self._series}
        self._last_date = self._ny_date(self.now_ns)
        self.last_equity = self.equity()
        self.order_hook: Callable[[Order], None] | None = None
        self.short_check: Callable[[str], str | None] | None = None
        # durable state
        self.store = store
        self._depth = 0
        self._changed = False
        self._dirty: set[str] = set()
        self._fills_saved = 0
        self.resumed = False
        if store is not None:
            self.resumed = store.check_or_init(self.fingerprint())
            if self.resumed:
                self._restore(store.load())
            else:
                self._changed = True
                self._commit()

    # ------------------------------------------------------------------ durable state
    def fingerprint(self) -> dict:
        """What identifies this replay in a state file (data, range, cash, costs); JSON-ready."""
        checks = {s: round(float(np.sum(ser.c)), 6) for s, ser in sorted(self._series.items())}
        return {"symbols": sorted(self._series), "bar_size": self.barset.bar_size,
                "start": iso(self.start), "end": iso(self.end), "timeline_bars": int(len(self.timeline)),
                "timeline_first": iso(pd.Timestamp(int(self.timeline[0]), tz="UTC")) if len(self.timeline) else None,
                "timeline_last": iso(pd.Timestamp(int(self.timeline[-1]), tz="UTC")) if len(self.timeline) else None,
                "close_sums": checks, "initial_cash": self.initial_cash,
                "costs": self.costs.model_dump(mode="json"), "reject_position_flip": self.reject_position_flip}

    def _restore(self, st: dict) -> None:
        a = st["account"]
        self.cash = float(a["cash"])
        self.fees_paid = float(a["fees_paid"])
        self.cursor = int(a["cursor"])
        self.now_ns = int(a["now_ns"])
        self._seq = int(a["seq"])
        self.last_equity = float(a["last_equity"])
        self._last_date = pd.Timestamp(a["last_date"]).date()
        self.positions = {s: Position(s, float(q), float(px)) for s, q, px in st["positions"]}
        self.orders, self._open, self.by_client_id = {}, {}, {}
        for d in st["orders"]:
            o = Order.from_state(d)
            self.orders[o.id] = o
            self.by_client_id.setdefault(o.client_order_id, o)
            if o.is_open:
                self._open[o.id] = o
        self.fills = [Fill(**{**f, "timestamp": pd.Timestamp(int(f["timestamp"]), tz="UTC")}) for f in st["fills"]]
        self._fills_saved = len(self.fills)
        self._last_idx = {s: self._closed_upto(s, self.now_ns) for s in self._series}

    @contextmanager
    def _mutating(self):
        """Group the changes of one call; the outermost call commits them to the store."""
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._changed:
                    self._commit()

    def _commit(self) -> None:
        self._changed = False
        if self.store is None:
            self._dirty.clear()
            return
        account = {"cash": self.cash, "fees_paid": self.fees_paid, "cursor": self.cursor, "now_ns": self.now_ns,
                   "seq": self._seq, "last_equity": self.last_equity, "last_date": str(self._last_date)}
        positions = [(p.symbol, p.qty, p.avg_entry_price) for p in self.positions.values()]
        orders = [(o.id, o.seq, o.to_state()) for o in (self.orders[i] for i in sorted(self._dirty))]
        fills = [(n, {**f.__dict__, "timestamp": int(f.timestamp.value)})
                 for n, f in enumerate(self.fills[self._fills_saved:], start=self._fills_saved)]
        self.store.commit(account, positions, orders, fills)
        self._dirty.clear()
        self._fills_saved = len(self.fills)

    # ------------------------------------------------------------------ clock and data
    @property
    def now(self) -> pd.Timestamp:
        """Replay clock (UTC)."""
        return pd.Timestamp(self.now_ns, tz="UTC")

    @property
    def done(self) -> bool:
        """True when every timeline timestamp has been published."""
        return self.cursor >= len(self.timeline)

    @property
    def symbols(self) -> list[str]:
        return sorted(self._series)

    def has_symbol(self, symbol: str) -> bool:
        return symbol in self._series

    def _closed_upto(self, symbol: str, now_ns: int) -> int:
        """Index of the last bar of ``symbol`` with ``t + bar length <= now_ns`` (-1 when none)."""
        s = self._series[symbol]
        return int(np.searchsorted(s.t, now_ns - self.bar_ns, side="right")) - 1

    @staticmethod
    def _ny_date(ns: int):
        return pd.Timestamp(ns, tz="UTC").tz_convert(EXCHANGE_TZ).date()

    def last_close(self, symbol: str) -> float | None:
        """Close (USD) of the last bar of ``symbol`` that has closed by the replay clock."""
        i = self._last_idx.get(symbol, -1)
        return None if i < 0 else float(self._series[symbol].c[i])

    def last_bar(self, symbol: str) -> tuple[pd.Timestamp, dict[str, float]] | None:
        """``(start time, ohlcv)`` of the last closed bar of ``symbol``; ``None`` when none closed."""
        i = self._last_idx.get(symbol, -1)
        if i < 0:
            return None
        s = self._series[symbol]
        return pd.Timestamp(int(s.t[i]), tz="UTC"), {"open": float(s.o[i]), "high": float(s.h[i]),
                                                      "low": float(s.l[i]), "close": float(s.c[i]),
                                                      "volume": float(s.v[i])}

    def prev_day_close(self, symbol: str) -> float | None:
        """Close of the last closed bar of ``symbol`` on an earlier New York date than its last bar."""
        i = self._last_idx.get(symbol, -1)
        if i < 0:
            return None
        s = self._series[symbol]
        day = self._ny_date(int(s.t[i]))
        j = i
        while j >= 0 and self._ny_date(int(s.t[j])) == day:
            j -= 1
            if i - j > 2000:
                return None
        return None if j < 0 else float(s.c[j])

    def closed_bars(self, symbol: str) -> pd.DataFrame:
        """All bars of ``symbol`` closed by the replay clock (no look-ahead), canonical frame."""
        df = self.barset.bars[symbol]
        return df.iloc[: self._last_idx.get(symbol, -1) + 1]

    # ------------------------------------------------------------------ valuation
    def market_value(self) -> tuple[float, float]:
        """``(long market value, short market value)`` in USD at the last closes (short <= 0)."""
        lmv = smv = 0.0
        for p in self.positions.values():
            px = self.last_close(p.symbol)
            mv = p.qty * (px if px is not None else p.avg_entry_price)
            if mv >= 0:
                lmv += mv
            else:
                smv += mv
        return lmv, smv

    def equity(self) -> float:
        """Cash plus the signed market value of all positions at the last closes, USD."""
        lmv, smv = self.market_value()
        return self.cash + lmv + smv

    def buying_power(self) -> float:
        """Reg T buying power, USD: ``2 * equity - gross market value - open order exposure`` (>= 0)."""
        lmv, smv = self.market_value()
        return max(0.0, MARGIN_MULTIPLIER * self.equity() - (lmv - smv) - self._open_order_exposure())

    def _open_order_exposure(self) -> float:
        """USD by which open orders would grow the gross position of their symbols (>= 0)."""
        tot = 0.0
        self._prune()
        for sym in {o.symbol for o in self._open.values()}:
            pos = self.positions.get(sym)
            cur = pos.qty if pos else 0.0
            grow = abs(cur + self._pending_qty(sym)) - abs(cur)
            if grow > 0:
                lim = [o.limit_price for o in self._open.values() if o.symbol == sym and o.limit_price]
                px = self.last_close(sym) or (max(lim) if lim else 0.0)
                tot += grow * px
        return tot

    def _pending_qty(self, symbol: str) -> float:
        self._prune()
        return sum(o.sign * o.remaining for o in self._open.values() if o.symbol == symbol)

    def _prune(self) -> None:
        """Forget orders that are no longer open (filled, canceled, rejected)."""
        for oid in [oid for oid, o in self._open.items() if not o.is_open]:
            del self._open[oid]

    # ------------------------------------------------------------------ orders
    def _emit(self, event: str, order: Order, fill: Fill | None = None) -> None:
        self._dirty.add(order.id)       # every change of an order emits an update: mark it for the store
        self._changed = True
        payload: dict[str, Any] = {"event": event, "order": order.to_alpaca(),
                                   "timestamp": iso(fill.timestamp if fill else (order.updated_at or self.now))}
        if fill is not None:
            payload.update(execution_id=fill.execution_id, price=num(fill.price), qty=num(fill.qty),
                           position_qty=num(fill.position_qty))
        else:
            pos = self.positions.get(order.symbol)
            payload["position_qty"] = num(pos.qty if pos else 0.0)
        for cb in list(self.listeners):
            cb(payload)

    def submit(self, symbol: str, qty: Any, side: str, type: str = "market", time_in_force: str = "day",
               limit_price: Any = None, client_order_id: str | None = None, extended_hours: bool = False,
               notional: Any = None, order_class: str | None = None, position_intent: str | None = None,
               **ignored: Any) -> Order:
        """Validate and book an order; it fills on a later :meth:`advance`.

        Parameters
        ----------
        symbol : ticker; must be one of the replayed symbols
        qty : shares (> 0; fractional allowed for long positions)
        side : ``"buy"`` or ``"sell"`` (a sell beyond the long position opens a short)
        type : ``"market"`` or ``"limit"``
        time_in_force : ``day``, ``gtc``, ``ioc``, ``fok``, ``opg``, ``cls`` (``ioc``/``fok`` limit
            orders not marketable at the next open are canceled; others rest until canceled)
        limit_price : USD, required for limit orders
        client_order_id : at most 48 characters, unique per account; generated when absent

        Raises
        ------
        ExchangeError
            422 unknown symbol, bad qty/side/type/price, duplicate or too long client_order_id;
            403 insufficient buying power or not allowed to short.
        """
        with self._mutating():
            symbol = str(symbol or "").upper()
            if not self.has_symbol(symbol):
                raise ExchangeError(422, 40010001, f'asset "{symbol}" not found')
            if order_class not in (None, "", "simple"):
                raise unprocessable(f"order_class {order_class!r} is not supported by the local exchange")
            if notional is not None:
                raise unprocessable("notional orders are not supported by the local exchange; send qty")
            if qty is None:
                raise unprocessable("qty or notional is required")
            q = _positive(qty, "qty")
            side = str(side or "").lower()
            if side not in ("buy", "sell"):
                raise unprocessable(f"invalid side {side!r}; expected buy or sell")
            type = str(type or "").lower()
            if type not in ("market", "limit"):
                raise unprocessable(f"order type {type!r} is not supported by the local exchange "
                                    f"(market, limit)")
            tif = str(time_in_force or "").lower()
            if tif not in ("day", "gtc", "ioc", "fok", "opg", "cls"):
                raise unprocessable(f"invalid time_in_force {time_in_force!r}")
            lp = None
            if type == "limit":
                if limit_price is None:
                    raise unprocessable("limit_price is required for limit orders")
                lp = _positive(limit_price, "limit_price")
                decimals = 2 if lp >= 1.0 else 4
                if abs(round(lp, decimals) - lp) > 1e-9:
                    raise ExchangeError(422, 42210000, f"invalid limit_price {lp}. sub-penny increment does "
                                                       f"not fulfill minimum pricing criteria")
            if client_order_id is None or client_order_id == "":
                client_order_id = str(uuid.uuid4())
            client_order_id = str(client_order_id)
            if len(client_order_id) > MAX_CLIENT_ORDER_ID_CHARS:
                raise unprocessable(f"client_order_id must be no more than {MAX_CLIENT_ORDER_ID_CHARS} "
                                    f"characters")
            if client_order_id in self.by_client_id:
                raise unprocessable("client_order_id must be unique")
            sign = 1 if side == "buy" else -1
            pos = self.positions.get(symbol)
            cur = pos.qty if pos else 0.0
            before = cur + self._pending_qty(symbol)
            after = before + sign * q
            if self.reject_position_flip and before * after < 0:
                raise forbidden(f"insufficient qty available for order (requested: {num(q)}, "
                                f"available: {num(abs(before))})")
            if after < 0 and abs(after) > abs(before) + 1e-12:  # opens or extends a short
                if "/" in symbol:
                    raise forbidden("crypto assets cannot be sold short")
                if abs(q - round(q)) > 1e-9:
                    raise forbidden("fractional orders cannot be sold short")
                if self.equity() < MIN_EQUITY_TO_SHORT_USD:
                    raise forbidden("account is not allowed to short (equity below $2,000)")
                refusal = self.short_check(symbol) if self.short_check is not None else None
                if refusal:
                    raise ExchangeError(422, 42210000, refusal)
            px = lp if lp is not None else self.last_close(symbol)
            if px is not None:
                extra = (abs(after) - abs(before)) * px
                if extra > 0 and extra > self.buying_power() + 1e-9:
                    raise forbidden("insufficient buying power")
            self._seq += 1
            now = self.now
            o = Order(id=str(uuid.uuid4()), client_order_id=client_order_id, symbol=symbol, side=side, qty=q,
                      type=type, time_in_force=tif, limit_price=lp, created_at=now, updated_at=now,
                      seq=self._seq, extended_hours=bool(extended_hours), position_intent=position_intent,
                      fill_from_cursor=self.cursor)
            if self.order_hook is not None:
                self.order_hook(o)
            self.orders[o.id] = o
            self._open[o.id] = o
            self.by_client_id[client_order_id] = o
            self._emit("new", o)
            return o

    def book_rejected(self, symbol: str, qty: Any, side: str, client_order_id: str | None = None,
                      type: str = "market", time_in_force: str = "day", **ignored: Any) -> Order:
        """Book an order that is accepted over REST and then rejected (fault injection).

        The order is stored with status ``rejected`` and a ``rejected`` trade update is emitted.
        """
        with self._mutating():
            self._seq += 1
            now = self.now
            cid = str(client_order_id) if client_order_id else str(uuid.uuid4())
            try:
                q = float(qty)
            except (TypeError, ValueError):
                q = 0.0
            o = Order(id=str(uuid.uuid4()), client_order_id=cid, symbol=str(symbol).upper(),
                      side=str(side).lower(), qty=q, type=str(type), time_in_force=str(time_in_force),
                      limit_price=None, created_at=now, updated_at=now, seq=self._seq, status="rejected",
                      failed_at=now)
            self.orders[o.id] = o
            self.by_client_id.setdefault(cid, o)
            self._emit("rejected", o)
            return o

    def get_order(self, order_id: str) -> Order:
        with self.lock:
            try:
                return self.orders[str(order_id)]
            except KeyError:
                raise not_found(f"order not found for {order_id}") from None

    def get_order_by_client_id(self, client_order_id: str) -> Order:
        with self.lock:
            try:
                return self.by_client_id[str(client_order_id)]
            except KeyError:
                raise not_found(f"order not found for client_order_id {client_order_id}") from None

    def list_orders(self, status: str = "open", limit: int = 50, after: pd.Timestamp | None = None,
                    until: pd.Timestamp | None = None, direction: str = "desc",
                    symbols: list[str] | None = None, side: str | None = None) -> list[Order]:
        """Orders filtered as ``GET /v2/orders`` does (status open/closed/all, submitted time window)."""
        with self.lock:
            out = list(self.orders.values())
        if status == "open":
            out = [o for o in out if o.is_open]
        elif status == "closed":
            out = [o for o in out if not o.is_open]
        if after is not None:
            out = [o for o in out if o.created_at > after]
        if until is not None:
            out = [o for o in out if o.created_at < until]
        if symbols:
            wanted = {s.upper() for s in symbols}
            out = [o for o in out if o.symbol in wanted]
        if side:
            out = [o for o in out if o.side == side]
        out.sort(key=lambda o: o.seq, reverse=(direction != "asc"))
        return out[:limit]

    def cancel(self, order_id: str) -> Order:
        """Cancel an open order (emits ``canceled``).

        Raises
        ------
        ExchangeError
            404 unknown id, 422 when the order is no longer open.
        """
        with self._mutating():
            o = self.get_order(order_id)
            if not o.is_open:
                raise ExchangeError(422, 42210000, f'order is already in "{o.status}" state')
            o.status, o.fate = "canceled", None
            o.canceled_at = o.updated_at = self.now
            self._emit("canceled", o)
            return o

    def cancel_all(self) -> list[Order]:
        with self._mutating():
            return [self.cancel(o.id) for o in self.list_orders("open", limit=10**9, direction="asc")]

    def close_position(self, symbol: str, qty: Any = None, percentage: Any = None) -> Order:
        """Submit the market order that closes (part of) a position.

        Raises
        ------
        ExchangeError
            404 when flat, 422 for a bad qty/percentage.
        """
        with self._mutating():
            symbol = symbol.upper()
            pos = self.positions.get(symbol)
            if pos is None:
                raise not_found(f"position not found: {symbol}")
            q = abs(pos.qty)
            if qty is not None:
                q = float(qty)
                if q <= 0 or q > abs(pos.qty) + 1e-9:
                    raise forbidden(f"insufficient qty available for order (requested: {num(q)}, "
                                    f"available: {num(abs(pos.qty))})")
            elif percentage is not None:
                pct = float(percentage)
                if not 0 < pct <= 100:
                    raise unprocessable("percentage must be in (0, 100]")
                q = abs(pos.qty) * pct / 100.0
                if abs(pos.qty - round(pos.qty)) < 1e-9 and pct < 100:
                    q = math.floor(q + 1e-9)  # Alpaca rounds down to whole shares
                    if q <= 0:
                        raise unprocessable("percentage too small: it rounds to 0 shares")
            side = "sell" if pos.qty > 0 else "buy"
            flip, self.reject_position_flip = self.reject_position_flip, False
            try:
                # a close never needs buying power; submit bypasses the check because exposure shrinks
                return self.submit(symbol, q, side, "market", "day")
            finally:
                self.reject_position_flip = flip

    # ------------------------------------------------------------------ replay
    def _apply_fill(self, o: Order, qty: float, price: float, ts: pd.Timestamp) -> Fill:
        fee = float(fill_fee(price, qty, self.costs.fee_bps))
        signed = o.sign * qty
        self.cash -= signed * price + fee
        self.fees_paid += fee
        pos = self.positions.get(o.symbol)
        if pos is None:
            pos = self.positions[o.symbol] = Position(o.symbol, 0.0, price)
        new = pos.qty + signed
        if abs(new) < 1e-9:
            del self.positions[o.symbol]
            new = 0.0
        elif pos.qty == 0 or pos.qty * signed > 0:      # open or add: weighted average entry
            pos.avg_entry_price = (abs(pos.qty) * pos.avg_entry_price + qty * price) / abs(new)
            pos.qty = new
        elif pos.qty * new < 0:                          # crossed through zero: new position at price
            pos.avg_entry_price = price
            pos.qty = new
        else:                                            # reduced: entry price unchanged
            pos.qty = new
        prev = o.filled_qty
        o.filled_qty = prev + qty
        o.filled_avg_price = price if not o.filled_avg_price else \
            (o.filled_avg_price * prev + price * qty) / o.filled_qty
        o.updated_at = ts
        if o.remaining <= 1e-9:
            o.status = "filled"
            o.filled_at = ts
        else:
            o.status = "partially_filled"
        f = Fill(o.id, o.client_order_id, o.symbol, o.side, qty, price, fee, ts, new, str(uuid.uuid4()))
        self.fills.append(f)
        self._emit("fill" if o.status == "filled" else "partial_fill", o, f)
        return f

    def advance(self, partial: Callable[[Order], float | None] | None = None,
                on_fate: Callable[[Order], None] | None = None) -> Published | None:
        """Move the replay clock to the next timeline timestamp (see module docstring).

        Open orders with a ``fate`` (fault injection) first turn to that status (``rejected``,
        ``canceled``, ``expired``, ``done_for_day``) with its trade update; orders whose
        ``fill_from_cursor`` lies ahead (a delayed fill) wait.

        Parameters
        ----------
        partial : optional hook (fault injection) returning the fraction (0, 1) of an order's
            remaining quantity to fill at this bar, or ``None`` for a complete fill.
        on_fate : optional hook called with each order whose fate was applied at this bar.

        Returns
        -------
        Published or None
            What was filled and published; ``None`` when the replay is over.
        """
        with self._mutating():
            if self.done:
                return None
            t_ns = int(self.timeline[self.cursor])
            self.cursor += 1
            ts = pd.Timestamp(t_ns, tz="UTC")
            day = self._ny_date(t_ns)
            if day != self._last_date:
                self.last_equity = self.equity()
                self._last_date = day
            rows = self._rows_at(t_ns)
            fills: list[Fill] = []
            self._prune()
            for o in [o for o in self._open.values() if o.fate]:
                o.status, o.fate, o.updated_at = o.fate, None, ts
                if o.status == "canceled":
                    o.canceled_at = ts
                elif o.status == "expired":
                    o.expired_at = ts
                elif o.status == "rejected":
                    o.failed_at = ts
                self._emit(o.status, o)
                if on_fate is not None:
                    on_fate(o)
            self._prune()
            k = self.cursor - 1      # timeline index of this bar
            pending = [o for o in self._open.values() if o.symbol in rows and o.fill_from_cursor <= k]
            for o in pending:
                op = float(self._series[o.symbol].o[rows[o.symbol]])
                px = float(fill_price(op, o.sign, self.costs.slippage_for(o.symbol), self.costs.slippage_bps))
                if o.type == "limit" and (px - o.limit_price) * o.sign > 1e-12:
                    if o.time_in_force in ("ioc", "fok"):
                        o.status = "canceled"
                        o.canceled_at = o.updated_at = ts
                        self._emit("canceled", o)
                    continue
                q = o.remaining
                frac = partial(o) if partial else None
                if frac is not None and 0 < frac < 1 and o.time_in_force != "fok":
                    q = o.remaining * frac
                    if abs(o.qty - round(o.qty)) < 1e-9:
                        q = max(1.0, math.floor(q))
                    q = min(q, o.remaining)
                fills.append(self._apply_fill(o, q, px, ts))
            self._last_idx.update(rows)
            self.now_ns = t_ns + self.bar_ns
            self._changed = True
            return Published(ts, self.now, self._bars(rows), fills)

    def _rows_at(self, t_ns: int) -> dict[str, int]:
        """``{symbol: row}`` of the symbols with a bar starting exactly at ``t_ns``."""
        rows: dict[str, int] = {}
        for sym, s in self._series.items():
            i = int(np.searchsorted(s.t, t_ns))
            if i < len(s.t) and s.t[i] == t_ns:
                rows[sym] = i
        return rows

    def _bars(self, rows: dict[str, int]) -> dict[str, dict[str, float]]:
        out = {}
        for sym, i in rows.items():
            s = self._series[sym]
            out[sym] = {"open": float(s.o[i]), "high": float(s.h[i]), "low": float(s.l[i]),
                        "close": float(s.c[i]), "volume": float(s.v[i])}
        return out

    def published_at(self, k: int) -> Published:
        """What the advance to timeline index ``k`` (< ``cursor``) published: its bars and fills.

        Lets a driver that lost the answer of an advance (a crash of either side) get it again
        without replaying the bar twice.

        Raises
        ------
        ValueError
            ``k`` is not a bar already replayed.
        """
        with self.lock:
            if not 0 <= k < self.cursor:
                raise ValueError(f"bar {k} has not been replayed (replayed: 0..{self.cursor - 1})")
            t_ns = int(self.timeline[k])
            ts = pd.Timestamp(t_ns, tz="UTC")
            fills = [f for f in self.fills if f.timestamp == ts]
            return Published(ts, pd.Timestamp(t_ns + self.bar_ns, tz="UTC"), self._bars(self._rows_at(t_ns)), fills)

    # ------------------------------------------------------------------ snapshots
    def position_json(self, p: Position) -> dict:
        """A position as Alpaca's ``Position`` JSON (strings, qty negative when short)."""
        px = self.last_close(p.symbol) or p.avg_entry_price
        prev = self.prev_day_close(p.symbol) or px
        mv = p.qty * px
        cost = p.qty * p.avg_entry_price
        upl = mv - cost
        intraday = p.qty * (px - prev)
        return {
            "asset_id": asset_id(p.symbol), "symbol": p.symbol, "exchange": "NASDAQ",
            "asset_class": "us_equity", "asset_marginable": True, "avg_entry_price": num(p.avg_entry_price),
            "qty": num(p.qty), "qty_available": num(p.qty), "side": "long" if p.qty > 0 else "short",
            "market_value": num(mv), "cost_basis": num(cost), "unrealized_pl": num(upl),
            "unrealized_plpc": num(upl / abs(cost) if cost else 0.0),
            "unrealized_intraday_pl": num(intraday),
            "unrealized_intraday_plpc": num(intraday / abs(p.qty * prev) if prev else 0.0),
            "current_price": num(px), "lastday_price": num(prev),
            "change_today": num((px - prev) / prev if prev else 0.0),
        }

    def account_json(self, account_id: str, account_number: str) -> dict:
        """The account as Alpaca's ``TradeAccount`` JSON (money as strings, USD)."""
        with self.lock:
            lmv, smv = self.market_value()
            eq = self.cash + lmv + smv
            gross = lmv - smv
            bp = self.buying_power()
            return {
                "id": account_id, "account_number": account_number, "status": "ACTIVE",
                "crypto_status": "INACTIVE", "currency": "USD", "buying_power": num(bp),
                "regt_buying_power": num(bp), "daytrading_buying_power": num(bp),
                "non_marginable_buying_power": num(max(0.0, self.cash)), "options_buying_power": num(0.0),
                "cash": num(self.cash), "accrued_fees": num(0.0), "pending_transfer_in": None,
                "pending_transfer_out": None, "portfolio_value": num(eq), "pattern_day_trader": False,
                "trading_blocked": False, "transfers_blocked": False, "account_blocked": False,
                "created_at": iso(self.start), "trade_suspended_by_user": False,
                "multiplier": num(MARGIN_MULTIPLIER), "shorting_enabled": True, "equity": num(eq),
                "last_equity": num(self.last_equity), "long_market_value": num(lmv),
                "short_market_value": num(smv), "initial_margin": num(0.5 * gross),
                "maintenance_margin": num(0.3 * gross), "last_maintenance_margin": num(0.3 * gross),
                "sma": num(0.0), "daytrade_count": 0, "options_approved_level": 0,
                "options_trading_level": 0,
            }

    def snapshot(self) -> dict:
        """Plain-Python state: clock, cash, equity, positions, orders, fills (USD, shares)."""
        with self.lock:
            lmv, smv = self.market_value()
            return {
                "now": self.now, "done": self.done, "cursor": self.cursor, "bars_total": len(self.timeline),
                "cash": self.cash, "equity": self.cash + lmv + smv, "long_market_value": lmv,
                "short_market_value": smv, "fees_paid": self.fees_paid,
                "positions": {s: {"qty": p.qty, "avg_entry_price": p.avg_entry_price,
                                  "last_close": self.last_close(s)} for s, p in self.positions.items()},
                "orders": [o.to_alpaca() for o in sorted(self.orders.values(), key=lambda o: o.seq)],
                "fills": [dict(order_id=f.order_id, client_order_id=f.client_order_id, symbol=f.symbol,
                               side=f.side, qty=f.qty, price=f.price, fee=f.fee, timestamp=f.timestamp,
                               position_qty=f.position_qty) for f in self.fills],
            }
