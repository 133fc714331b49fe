"""The broker edge: every trading and market-data call of a trader goes through alpaca-py here.

alpaca-py returns prices and quantities as strings in pydantic models; this module converts them
to floats at the boundary and translates alpaca-py/requests exceptions into the project's error
taxonomy (the freqtrade pattern, ``raise ... from e``):

* :class:`TemporaryBrokerError` - retry later (HTTP 429, 5xx, connection problems);
* :class:`OrderRejected` - the venue refused an order (4xx on submit); names symbol and reason;
* :class:`OperationalBrokerError` - stops the trader (authentication, configuration).

Ambiguous submits are resolved here, never guessed.  alpaca-py (``alpaca.common.rest.RESTClient``)
resends a request answered 429 or 504 up to 3 times, 3 s apart, with the same body -- hence the
same ``client_order_id``.  When the first ``POST /v2/orders`` was booked before its 504, the resend
is answered 422 "client_order_id must be unique".  :meth:`AlpacaBroker.submit_market` therefore
treats every failed submit -- timeout, connection error, 429, 5xx, 504, the 422 duplicate, and
also a 4xx refusal, which may answer a resend whose first attempt was booked (on Alpaca e.g.
"insufficient buying power", used up by the booked order) -- as a question to the venue: it looks
the order up by ``client_order_id`` and returns the booked order when there is one;
:class:`OrderNotPlaced` when the venue does not know it after a temporary error (a resend with the
same ``client_order_id`` is then safe: the id makes it idempotent); :class:`SubmitOutcomeUnknown`
when even the lookup failed.  Only a refusal of an order the venue does not hold is an
:class:`OrderRejected`.

Every REST call has a timeout (``timeout_secs``); alpaca-py itself sets none.

Secrets are never part of a message: alpaca-py error bodies carry only the venue's
``{"code", "message"}``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """Base class of broker errors; ``status_code`` is the venue's HTTP status when there was one."""

    status_code: int | None = None


class TemporaryBrokerError(BrokerError):
    """A transient failure (rate limit, 5xx, network); the caller may retry."""


class OperationalBrokerError(BrokerError):
    """A failure that needs an operator (bad keys, account blocked); the trader stops."""


class OrderRejected(BrokerError):
    """The venue rejected an order; ``symbol`` and the venue's message are in the text."""

    def __init__(self, symbol: str, message: str, status_code: int | None = None):
        super().__init__(f"order for {symbol} rejected: {message} (HTTP {status_code})")
        self.symbol = symbol
        self.venue_message = message
        self.status_code = status_code


class OrderNotPlaced(TemporaryBrokerError):
    """A submit failed temporarily and the venue does not know its ``client_order_id``: not booked.

    Resending with the same ``client_order_id`` is safe (a booked duplicate is refused by the venue).
    """

    def __init__(self, symbol: str, client_order_id: str, message: str, status_code: int | None = None):
        super().__init__(f"order {client_order_id} for {symbol} not placed: {message}")
        self.symbol = symbol
        self.client_order_id = client_order_id
        self.status_code = status_code


class SubmitOutcomeUnknown(TemporaryBrokerError):
    """A submit failed temporarily and the lookup by ``client_order_id`` failed too: booked or not is
    unknown.  Look the order up again before acting; a resend with the same id is also safe."""

    def __init__(self, symbol: str, client_order_id: str, message: str, status_code: int | None = None):
        super().__init__(f"order {client_order_id} for {symbol}: outcome unknown ({message})")
        self.symbol = symbol
        self.client_order_id = client_order_id
        self.status_code = status_code


def is_duplicate_client_order_id(e: BaseException) -> bool:
    """True for the venue's 422 "client_order_id must be unique" (an earlier identical submit was booked)."""
    if isinstance(e, OrderRejected):
        return e.status_code == 422 and "client_order_id" in e.venue_message and "unique" in e.venue_message
    return False


@dataclass(frozen=True)
class AssetInfo:
    """What the trader checks about a symbol before trading it (``GET /v2/assets/{symbol}``)."""

    symbol: str
    tradable: bool
    shortable: bool
    easy_to_borrow: bool


@dataclass(frozen=True)
class OrderInfo:
    """An order as the trader needs it; quantities in shares (signed: + buy, - sell), prices USD."""

    order_id: str
    client_order_id: str
    symbol: str
    qty: float
    filled_qty: float
    filled_avg_price: float | None
    status: str
    created_at: str | None = None

    @property
    def is_final(self) -> bool:
        """No further fill can come (``done_for_day`` counts as final: the trader cancels it)."""
        return self.status in FINAL_STATUSES


#: order statuses after which no fill can come (Alpaca's terminal states; ``done_for_day`` included,
#: see :class:`OrderInfo`)
FINAL_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "done_for_day", "replaced"})


def _f(v: Any) -> float | None:
    return None if v is None or v == "" else float(v)


def order_info(o: Any) -> OrderInfo:
    """Convert an alpaca-py ``Order`` (or the ``order`` dict of a trade update) to :class:`OrderInfo`."""
    get = (lambda k: o.get(k)) if isinstance(o, dict) else (lambda k: getattr(o, k, None))
    side = get("side")
    side = getattr(side, "value", side)
    sign = 1.0 if str(side).lower() == "buy" else -1.0
    status = get("status")
    status = str(getattr(status, "value", status))
    return OrderInfo(
        order_id=str(get("id")),
        client_order_id=str(get("client_order_id")),
        symbol=str(get("symbol")),
        qty=sign * (_f(get("qty")) or 0.0),
        filled_qty=sign * (_f(get("filled_qty")) or 0.0),
        filled_avg_price=_f(get("filled_avg_price")),
        status=status,
        created_at=None if get("created_at") is None else str(get("created_at")),
    )


def _translate(e: Exception, what: str, symbol: str | None = None) -> BrokerError:
    """Map an alpaca-py / requests exception to the project's taxonomy."""
    from alpaca.common.exceptions import APIError
    import requests

    if isinstance(e, APIError):
        status = e.status_code
        try:
            msg = json.loads(str(e)).get("message", str(e))
        except (ValueError, AttributeError):
            msg = str(e)
        if status in (401, 403) and "buying power" not in msg.lower() and what != "submit":
            return OperationalBrokerError(f"{what}: not authorised by the venue ({msg})")
        if status is None or status == 429 or status >= 500:
            err = TemporaryBrokerError(f"{what}: temporary venue error HTTP {status}: {msg}")
            err.status_code = status
            return err
        if what == "submit" and symbol:
            return OrderRejected(symbol, msg, status)
        return BrokerError(f"{what}: HTTP {status}: {msg}")
    if isinstance(e, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
        return TemporaryBrokerError(f"{what}: connection problem ({type(e).__name__})")
    return BrokerError(f"{what}: {type(e).__name__}: {e}")


def bound_rest_time(client: Any, connect_secs: float = 5.0, read_secs: float = 30.0) -> Any:
    """Give every REST request of an alpaca-py client a ``(connect, read)`` timeout; return the client.

    alpaca-py's ``RESTClient`` (``alpaca/common/rest.py``) keeps a ``requests.Session`` in
    ``client._session`` and calls ``self._session.request(method, url, **opts)`` with no timeout,
    so a server that accepts the connection and never answers blocks the call for ever.  This
    mounts a ``requests.adapters.HTTPAdapter`` whose ``send`` fills in the timeout when none is
    given, for ``http://`` and ``https://``.  A timeout raises ``requests.exceptions.Timeout``
    (``ConnectTimeout`` / ``ReadTimeout``, both ``requests.RequestException``); alpaca-py does not
    retry it (it retries only HTTP 429 and 504, three times 3 s apart), so one call takes at most
    about ``4 * (connect_secs + read_secs) + 9`` seconds.

    Parameters
    ----------
    client : an alpaca-py REST client (``TradingClient``, ``StockHistoricalDataClient``, ...)
    connect_secs : TCP connect timeout, seconds (> 0)
    read_secs : longest silence while waiting for the response, seconds (> 0)

    Returns
    -------
    the same client

    Raises
    ------
    ValueError
        A timeout that is not a positive number.
    TypeError
        ``client`` has no ``requests.Session`` in ``_session`` (not an alpaca-py REST client).
    """
    import requests
    from requests.adapters import HTTPAdapter

    for name, v in (("connect_secs", connect_secs), ("read_secs", read_secs)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
    session = getattr(client, "_session", None)
    if not isinstance(session, requests.Session):
        raise TypeError(f"{type(client).__name__} has no requests.Session in _session; not an alpaca-py REST client")

    class _TimeoutAdapter(HTTPAdapter):
        def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = (float(connect_secs), float(read_secs))
            return super().send(request, **kwargs)

    adapter = _TimeoutAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return client


class AlpacaBroker:
    """Trading and historical-data access through alpaca-py.

    Parameters
    ----------
    key, secret : Alpaca API keys (for the local exchange any non-empty strings it accepts)
    paper : trade the paper account (default); ``False`` trades real money and must be asked for
        explicitly (``controller.py --live``)
    trading_url, data_url : ``url_override`` for the REST clients (the local exchange's base URL);
        ``None`` uses Alpaca's servers
    timeout_secs : read timeout of every REST call, seconds (connect timeout: at most 5 s); a
        timeout is a :class:`TemporaryBrokerError` (and an unknown outcome on submit)
    retry_wait_secs : pause between alpaca-py's own resends of a request answered 429 or 504
        (alpaca-py's default: 3 s, 3 resends); ``None`` keeps alpaca-py's default

    Raises
    ------
    ValueError
        ``timeout_secs`` or ``retry_wait_secs`` not a positive number.
    """

    def __init__(self, key: str, secret: str, paper: bool = True, trading_url: str | None = None,
                 data_url: str | None = None, timeout_secs: float = 30.0, retry_wait_secs: float | None = None):
        from alpaca.data.historical import StockHistoricalDataClient
        from alpaca.trading.client import TradingClient

        if not (isinstance(timeout_secs, (int, float)) and timeout_secs > 0):
            raise ValueError(f"timeout_secs must be a positive number of seconds, got {timeout_secs!r}")
        if retry_wait_secs is not None and not (isinstance(retry_wait_secs, (int, float)) and retry_wait_secs > 0):
            raise ValueError(f"retry_wait_secs must be a positive number of seconds, got {retry_wait_secs!r}")
        self.trading = TradingClient(key, secret, paper=paper, url_override=trading_url)
        self.data = StockHistoricalDataClient(key, secret, url_override=data_url)
        for client in (self.trading, self.data):
            bound_rest_time(client, min(5.0, float(timeout_secs)), float(timeout_secs))
            if retry_wait_secs is not None:
                client._retry_wait = retry_wait_secs

    # -- account and time -------------------------------------------------------------------
    def now(self) -> pd.Timestamp:
        """The venue's clock (UTC); the local exchange returns its replay clock."""
        try:
            return pd.Timestamp(self.trading.get_clock().timestamp).tz_convert("UTC")
        except Exception as e:
            raise _translate(e, "get_clock") from e

    def account(self) -> tuple[float, float]:
        """``(cash, equity)`` in USD."""
        try:
            a = self.trading.get_account()
        except Exception as e:
            raise _translate(e, "get_account") from e
        return float(a.cash), float(a.equity)

    def account_id(self) -> str:
        """The account number (``id`` when the venue sends none), naming the ledger's account."""
        try:
            a = self.trading.get_account()
        except Exception as e:
            raise _translate(e, "get_account") from e
        return str(getattr(a, "account_number", None) or a.id)

    def positions(self) -> dict[str, float]:
        """Open positions: ``{symbol: signed qty in shares}`` (short negative)."""
        try:
            ps = self.trading.get_all_positions()
        except Exception as e:
            raise _translate(e, "get_all_positions") from e
        return {p.symbol: float(p.qty) for p in ps}

    def check_symbol(self, symbol: str) -> None:
        """Raise :class:`OrderRejected` naming ``symbol`` when the venue does not know or trade it."""
        try:
            a = self.trading.get_asset(symbol)
        except Exception as e:
            err = _translate(e, "get_asset", symbol)
            if isinstance(err, TemporaryBrokerError):
                raise err from e
            raise OrderRejected(symbol, f"unknown symbol {symbol!r} at the venue") from e
        if not a.tradable:
            raise OrderRejected(symbol, f"{symbol} is not tradable")

    def asset(self, symbol: str) -> AssetInfo:
        """Tradability and borrow flags of ``symbol`` (alpaca-py ``TradingClient.get_asset``).

        Raises
        ------
        TemporaryBrokerError
            Transient venue or network error.
        BrokerError
            The venue does not know the symbol (HTTP 404) or another error.
        """
        try:
            a = self.trading.get_asset(symbol)
        except Exception as e:
            raise _translate(e, "get_asset", symbol) from e
        return AssetInfo(symbol, bool(a.tradable), bool(getattr(a, "shortable", False)),
                         bool(getattr(a, "easy_to_borrow", False)))

    # -- orders ------------------------------------------------------------------------------
    def submit_market(self, symbol: str, qty: float, client_order_id: str) -> OrderInfo:
        """Submit a day market order of ``qty`` shares (positive buy, negative sell); resolve ambiguity.

        Every failed submit -- timeout, connection error, HTTP 429 or 5xx (alpaca-py has already
        resent 429/504 three times), the 422 "client_order_id must be unique" that a resend of a
        booked order gets, or a refusal (which may answer such a resend) -- is checked by looking
        the order up by ``client_order_id`` (``GET /v2/orders:by_client_order_id``) before returning.

        Parameters
        ----------
        symbol : ticker
        qty : signed shares, non-zero
        client_order_id : at most 48 characters, unique per account (the idempotency key)

        Returns
        -------
        OrderInfo
            The booked order (its ``status`` may already be final, e.g. ``rejected``).

        Raises
        ------
        OrderRejected
            A refusal (4xx other than the duplicate-id 422) of an order the venue does not hold:
            names the symbol.
        OrderNotPlaced
            Temporary failure and the venue does not know the order (safe to resend, same id).
        SubmitOutcomeUnknown
            Temporary failure and the lookup failed as well.
        ValueError
            ``qty`` zero or ``client_order_id`` too long.
        """
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        if qty == 0:
            raise ValueError("qty must be non-zero")
        if len(client_order_id) > 48:
            raise ValueError(f"client_order_id {client_order_id!r} longer than 48 characters")
        req = MarketOrderRequest(symbol=symbol, qty=abs(qty), side=OrderSide.BUY if qty > 0 else OrderSide.SELL,
                                 time_in_force=TimeInForce.DAY, client_order_id=client_order_id)
        try:
            return order_info(self.trading.submit_order(req))
        except Exception as e:
            err = _translate(e, "submit", symbol)
            cause = e
        # Any failure may follow a request that alpaca-py resent after a 429/504 whose first attempt was
        # booked (the resend then meets a duplicate id, or e.g. the buying power the booked order uses):
        # the venue is asked before anything is concluded.
        duplicate = is_duplicate_client_order_id(err)
        code = err.status_code
        try:
            found = self.get_order(client_order_id)
        except BrokerError as e2:
            raise SubmitOutcomeUnknown(symbol, client_order_id, f"{err}; lookup failed: {e2}",
                                       e2.status_code or code) from cause
        if found is not None:
            log.warning("submit %s %s: %s; the order was booked (%s), adopting it", client_order_id, symbol, err,
                        found.status)
            return found
        if isinstance(err, (OrderRejected, OperationalBrokerError)) and not duplicate:
            raise err from cause
        if duplicate:  # the venue says it has the id but cannot show it (yet): ask again later
            raise SubmitOutcomeUnknown(symbol, client_order_id, str(err), code) from cause
        raise OrderNotPlaced(symbol, client_order_id, str(err), code) from cause

    def get_order(self, client_order_id: str) -> OrderInfo | None:
        """The order with this ``client_order_id``; ``None`` when the venue does not know it."""
        from alpaca.common.exceptions import APIError

        try:
            return order_info(self.trading.get_order_by_client_id(client_order_id))
        except APIError as e:
            if e.status_code == 404:
                return None
            raise _translate(e, "get_order") from e
        except Exception as e:
            raise _translate(e, "get_order") from e

    def open_orders(self, symbols: list[str] | None = None) -> list[OrderInfo]:
        """The account's open orders (of ``symbols`` when given), at most 500."""
        return self.orders("open", symbols=symbols)

    def orders(self, status: str = "all", after: Any = None, symbols: list[str] | None = None,
               limit: int = 500) -> list[OrderInfo]:
        """Orders of the account (``GET /v2/orders``), oldest first.

        Parameters
        ----------
        status : ``"open"``, ``"closed"`` or ``"all"``
        after : only orders submitted after this time (UTC; ISO string or timestamp), or None
        symbols : only these symbols, or None
        limit : at most this many (1..500)
        """
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        req = GetOrdersRequest(status=QueryOrderStatus(status), limit=limit, direction="asc",
                               after=None if after is None else pd.Timestamp(after).to_pydatetime(),
                               symbols=symbols)
        try:
            return [order_info(o) for o in self.trading.get_orders(req)]
        except Exception as e:
            raise _translate(e, "get_orders") from e

    def cancel(self, order_id: str) -> None:
        try:
            self.trading.cancel_order_by_id(order_id)
        except Exception as e:
            raise _translate(e, "cancel_order") from e

    def close_position(self, symbol: str) -> OrderInfo | None:
        """Flatten ``symbol`` with a market order; ``None`` when already flat."""
        from alpaca.common.exceptions import APIError

        try:
            return order_info(self.trading.close_position(symbol))
        except APIError as e:
            if e.status_code == 404:
                return None
            raise _translate(e, "close_position", symbol) from e
        except Exception as e:
            raise _translate(e, "close_position", symbol) from e

    # -- history -----------------------------------------------------------------------------
    def bars(self, symbols: list[str], start: datetime, end: datetime, bar_size: str) -> dict[str, pd.DataFrame]:
        """Historical IEX bars as canonical frames (UTC bar start; float open/high/low/close/volume).

        Not cached: the trader's warm-up must see what the venue has now.
        """
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import StockBarsRequest

        from pairtrade.data.alpaca import bars_to_frame, timeframe_of

        req = StockBarsRequest(symbol_or_symbols=symbols, timeframe=timeframe_of(bar_size), start=start, end=end,
                               feed=DataFeed.IEX, adjustment=Adjustment.RAW)
        try:
            barset = self.data.get_stock_bars(req)
        except Exception as e:
            raise _translate(e, "get_stock_bars") from e
        return {sym: bars_to_frame(barset.data.get(sym, [])) for sym in symbols}
