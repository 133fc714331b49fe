"""Fault injection for the local exchange: the failures a live trader must survive.

Every switch is one-shot or explicit and thread-safe, so a test (or the admin endpoint
``POST /_local/faults``) can arm it from any thread while the server runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class RejectSpec:
    """How to reject the next order of a symbol.

    Attributes
    ----------
    via : ``"http"`` (the submit call fails with ``status``/``message``) or ``"event"`` (the order
        is accepted with status ``rejected`` and a ``rejected`` trade update follows)
    status : HTTP status for ``via="http"``
    message : error message
    """

    via: str = "http"
    status: int = 403
    message: str = "order rejected (fault injection)"


@dataclass
class ExchangeFaults:
    """Armed faults of one :class:`~pairtrade.exchange.server.LocalExchange`.

    Attributes
    ----------
    mute_data : when true the data websocket stays connected but sends no bars (a "zombie"
        connection; clients defend with ``data_timeout``)
    """

    mute_data: bool = False
    _reject: dict[str, list[RejectSpec]] = field(default_factory=dict)
    _partial: dict[str, list[float]] = field(default_factory=dict)
    _fail_requests: list[tuple[int, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _drop_data: callable = None       # set by the server
    _drop_trade: callable = None

    # ------------------------------------------------------------------ orders
    def reject_next_order(self, symbol: str, via: str = "http", status: int = 403,
                          message: str = "order rejected (fault injection)") -> None:
        """Reject the next order submitted for ``symbol`` (see :class:`RejectSpec`)."""
        if via not in ("http", "event"):
            raise ValueError(f"via must be 'http' or 'event', got {via!r}")
        with self._lock:
            self._reject.setdefault(symbol.upper(), []).append(RejectSpec(via, int(status), message))

    def take_reject(self, symbol: str) -> RejectSpec | None:
        with self._lock:
            q = self._reject.get(str(symbol).upper())
            return q.pop(0) if q else None

    def partial_fill_next(self, symbol: str, fraction: float = 0.5) -> None:
        """Fill only ``fraction`` (0..1) of the next fill of ``symbol``; the rest fills on a later bar."""
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        with self._lock:
            self._partial.setdefault(symbol.upper(), []).append(float(fraction))

    def take_partial(self, symbol: str) -> float | None:
        with self._lock:
            q = self._partial.get(symbol.upper())
            return q.pop(0) if q else None

    # ------------------------------------------------------------------ REST
    def fail_next_requests(self, n: int = 1, status: int = 500, message: str = "internal server error") -> None:
        """Answer the next ``n`` Alpaca REST requests with HTTP ``status`` (429/504 are retried by alpaca-py)."""
        with self._lock:
            self._fail_requests.extend([(int(status), message)] * int(n))

    def take_request_failure(self) -> tuple[int, str] | None:
        with self._lock:
            return self._fail_requests.pop(0) if self._fail_requests else None

    # ------------------------------------------------------------------ websockets
    def drop_data_connections(self) -> None:
        """Close every market-data websocket now (clients reconnect, re-auth, re-subscribe)."""
        if self._drop_data is not None:
            self._drop_data()

    def drop_trade_connections(self) -> None:
        """Close every trade_updates websocket now (missed events are not replayed)."""
        if self._drop_trade is not None:
            self._drop_trade()

    def clear(self) -> None:
        """Disarm everything."""
        with self._lock:
            self._reject.clear()
            self._partial.clear()
            self._fail_requests.clear()
            self.mute_data = False
