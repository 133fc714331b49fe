"""What a trader remembers across restarts (the records of :mod:`pairtrade.live.ledger`).

:class:`PendingOrder` is one order of the pair from the decision until it is final (its
``client_order_id`` is written to the ledger *before* submission); :class:`OpenTrade` the round
trip currently open; :class:`TraderState` the pair's whole state: leg positions (shares, from the
pair's own fills -- never the account-wide position), the strategy kernel's state vector, the
order group being executed, the refusal backoff and the realised PnL.  The storage is the SQLite
ledger (:class:`pairtrade.live.ledger.StateStore`, also importable from here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PendingOrder:
    """An order of the pair; ``qty`` and ``filled_qty`` signed shares (+ buy, - sell), price USD.

    ``status`` is the venue's (``new``, ``partially_filled``, ``filled``, ``rejected`` ...) or the
    trader's own before the venue answered: ``intent`` (stored, not booked yet), ``unknown``
    (submitted, outcome not known yet: looked up before anything else is done), ``not_sent``
    (never booked; final) and ``lost`` (booked once, unknown to the venue later; final).
    ``group`` ties the legs of one decision together; ``purpose`` is the decision's reason
    (``entry_long``, ``exit``, ``rollback`` ...).  ``bar_no`` is the trader's bar count at
    submission (the order's age is counted in bars), ``refused`` marks a refusal by the venue
    (as opposed to a cancel the trader asked for).
    """

    client_order_id: str
    symbol: str
    qty: float
    order_id: str | None = None
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    status: str = "intent"
    group: int = 0
    purpose: str = ""
    bar_no: int = 0
    attempts: int = 0
    refused: bool = False
    cancel_requested: bool = False
    error: str | None = None
    announced: bool = False
    alerted: bool = False


@dataclass
class OpenTrade:
    """The round trip currently open: entry time (ISO UTC), side (+1 long spread, -1 short)."""

    entry_time: str
    side: int
    qty_y: float = 0.0
    qty_x: float = 0.0
    cost_y: float = 0.0  # USD paid (+) / received (-) for the y leg so far
    cost_x: float = 0.0
    fees: float = 0.0
    entry_z: float = float("nan")


@dataclass
class TraderState:
    """Everything a trader must remember across restarts.

    Attributes
    ----------
    qty_y, qty_x : the pair's own position (shares), the sum of its fills in the ledger
    kernel_state : :class:`~pairtrade.strategy.kernel.PairStrategy` state vector
    pending : orders that can still fill (stored as ledger rows, not in the state blob)
    group : the order group being executed: ``{"id", "purpose", "target_y", "target_x",
        "entering", "aborting", "imbalance_alerted", "bar_no"}`` (shares), or None
    repair : the pair's position must be brought to flat (a group failed leaving a position
        that is not the target, or the operator asked for flat); ``repair_why`` names the
        orders' purpose (``rollback`` after a failed entry, ``repair``, ``flatten``)
    refusals : consecutive orders refused by the venue (reset by a completed group)
    episode : an alert was raised for the current failure episode (one alert per episode)
    disabled : why the pair was disabled (no more orders), or None
    run_id, run_starts : the controller run that started the trader last, and how many times
        the trader started in that run (the crash-once fault hook reads it)
    history_mark : venue time (ISO) up to which the venue's order history was compared with the ledger
    short_blocked : symbols whose short sale was refused or found impossible (alerted once each)
    """

    pair_id: str
    qty_y: float = 0.0
    qty_x: float = 0.0
    kernel_state: list[float] = field(default_factory=list)
    pending: list[PendingOrder] = field(default_factory=list)
    order_seq: int = 0
    last_bar: str | None = None
    open_trade: OpenTrade | None = None
    realized_pnl: float = 0.0
    fees_paid: float = 0.0
    trades_closed: int = 0
    group_seq: int = 0
    group: dict[str, Any] | None = None
    repair: bool = False
    repair_why: str = ""
    refusals: int = 0
    episode: bool = False
    disabled: str | None = None
    run_id: str | None = None
    run_starts: int = 0
    history_mark: str | None = None
    short_blocked: list[str] = field(default_factory=list)


def __getattr__(name: str) -> Any:
    # the store lives in pairtrade.live.ledger (SQLite); kept importable from here
    if name in ("StateStore", "Ledger"):
        from pairtrade.live import ledger

        return getattr(ledger, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
