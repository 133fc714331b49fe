"""The broker edge: every trading and market-data call of a trader goes through alpaca-py here.

alpaca-py returns prices and quantities as strings in pydantic models; this module converts them
to floats at the boundary and translates alpaca-py/requests exceptions into the project's error
taxonomy (the freqtrade pattern, ``raise ... from e``):

* :class:`TemporaryBrokerError` - retry later (HTTP 429, 5xx, connection problems);
* :class:`OrderRejected` - the venue refused an order (4xx on submit); names symbol and reason;
* :class:`OperationalBrokerError` - stops the trader (authentication, configuration).

Secrets are never part of a message: alpaca-py error bodies carry only the venue's
``{"code", "message"}``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """Base class of broker errors."""


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

    @property
    def is_final(self) -> bool:
        return self.status in {"filled", "canceled", "expired", "rejected", "done_for_day", "replaced"}


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
            return TemporaryBrokerError(f"{what}: temporary venue error HTTP {status}: {msg}")
        if what == "submit" and symbol:
            return OrderRejected(symbol, msg, status)
        return BrokerError(f"{what}: HTTP {status}: {msg}")
    if isinstance(e, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
        return TemporaryBrokerError(f"{what}: connection problem ({type(e).__name__})")
    return BrokerError(f"{what}: {type(e).__name__}: {e}")


class AlpacaBroker:
    """Trading and historical-data access through alpaca-py.

    Parameters
    ----------
    key, secret : Alpaca API keys (for the local exchange any non-empty strings it accepts)
    paper : trade the paper account (default); ``False`` trades real money and must be asked for
        explicitly (``controller.py --live``)
    trading_url, data_url : ``url_override`` for the REST clients (the local exchange's base URL);
        ``None`` uses Alpaca's servers
    """

    def __init__(self, key: str, secret: str, paper: bool = True, trading_url: str | None = None,
                 data_url: str | None = None):
        from alpaca.data.historical import StockHistoricalDataClient
        from alpaca.trading.client import TradingClient

        self.trading = TradingClient(key, secret, paper=paper, url_override=trading_url)
        self.data = StockHistoricalDataClient(key, secret, url_override=data_url)

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

    # -- orders ------------------------------------------------------------------------------
    def submit_market(self, symbol: str, qty: float, client_order_id: str) -> OrderInfo:
        """Submit a day market order of ``qty`` shares (positive buy, negative sell).

        Raises
        ------
        OrderRejected, TemporaryBrokerError, OperationalBrokerError
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
            raise _translate(e, "submit", symbol) from e

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

    def open_orders(self) -> list[OrderInfo]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        try:
            return [order_info(o) for o in self.trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN,
                                                                                       limit=500))]
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
