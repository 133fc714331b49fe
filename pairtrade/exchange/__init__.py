"""The local Alpaca-compatible paper exchange (REST, market-data and trade_updates websockets).

Unmodified alpaca-py clients talk to it through ``url_override``; it replays a
:class:`~pairtrade.data.bars.BarSet` on a replay clock and fills orders with the shared fill model
(:mod:`pairtrade.strategy.fill`).  See :class:`LocalExchange`; ``python -m pairtrade.exchange``
runs it standalone, as a venue of its own whose account and clock persist (``--state``), and
:class:`RemoteExchange` drives such a process.  Fault controls: :mod:`pairtrade.exchange.faults`.
"""

from pairtrade.exchange.engine import Engine, ExchangeError, Fill, Published
from pairtrade.exchange.faults import KINDS as FAULT_KINDS
from pairtrade.exchange.faults import ExchangeFaults
from pairtrade.exchange.remote import RemoteExchange, RemoteExchangeError
from pairtrade.exchange.server import LocalExchange
from pairtrade.exchange.store import StateMismatch, StateStore

__all__ = ["LocalExchange", "RemoteExchange", "RemoteExchangeError", "Engine", "ExchangeError", "ExchangeFaults",
           "FAULT_KINDS", "Fill", "Published", "StateMismatch", "StateStore"]
