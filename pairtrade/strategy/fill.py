"""The one fill model, shared by the backtest kernel and the local paper exchange.

Model (documented in the README, "Fill model"):

* decisions are taken on the **close** of bar t; the resulting market orders fill at the **open**
  of bar t+1 of the same symbol;
* the fill price moves against the trader by ``slippage_per_share`` USD:
  ``open + slippage`` for a buy, ``open - slippage`` for a sell;
* a fee of ``fee_bps`` basis points of the filled notional (USD) is charged per fill;
* no partial fills and no market impact in the default model (the local exchange can inject
  partial fills as a fault).
"""

from __future__ import annotations

from pairtrade._numba import njit


@njit
def fill_price(open_price: float, side: int, slippage_per_share: float, slippage_bps: float = 0.0) -> float:
    """Fill price (USD/share) of a market order at the next bar's open.

    Parameters
    ----------
    open_price : open of the fill bar, USD
    side : +1 buy, -1 sell
    slippage_per_share : USD per share, against the trader
    slippage_bps : basis points of ``open_price``, against the trader
    """
    return open_price * (1.0 + side * slippage_bps * 1e-4) + side * slippage_per_share


@njit
def fill_fee(price: float, qty: float, fee_bps: float) -> float:
    """Fee in USD of a fill of ``qty`` shares at ``price``: ``|price * qty| * fee_bps / 1e4``."""
    return abs(price * qty) * fee_bps * 1e-4
