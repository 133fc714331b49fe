"""The local Alpaca-compatible paper exchange (REST, market-data and trade_updates websockets).

Unmodified alpaca-py clients talk to it through ``url_override``; it replays a
:class:`~pairtrade.data.bars.BarSet` on a replay clock and fills orders with the shared fill model
(:mod:`pairtrade.strategy.fill`).  See :class:`LocalExchange`; ``python -m pairtrade.exchange``
runs it standalone.
"""

from pairtrade.exchange.engine import Engine, ExchangeError, Fill, Published
from pairtrade.exchange.faults import ExchangeFaults
from pairtrade.exchange.server import LocalExchange

__all__ = ["LocalExchange", "Engine", "ExchangeError", "ExchangeFaults", "Fill", "Published"]
