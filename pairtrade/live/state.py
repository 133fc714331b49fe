"""Per-pair trader state, persisted atomically before every action (persist, then act).

The file ``<state_dir>/<pair_id>.json`` holds what the trader believes: leg positions (shares),
the strategy kernel's state vector, orders in flight (their ``client_order_id`` is stored *before*
submission), the open round trip and realised PnL.  At start the trader loads it and reconciles it
with the broker's positions and open orders (:func:`pairtrade.live.trader.reconcile`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pairtrade.config import atomic_write_json


@dataclass
class PendingOrder:
    """An order stored before submission; ``qty`` signed shares (+ buy, - sell)."""

    client_order_id: str
    symbol: str
    qty: float
    order_id: str | None = None
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    status: str = "intent"


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
    """Everything a trader must remember across restarts."""

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

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "TraderState":
        d = dict(d)
        d["pending"] = [PendingOrder(**p) for p in d.get("pending", [])]
        ot = d.get("open_trade")
        d["open_trade"] = OpenTrade(**ot) if ot else None
        return cls(**d)


class StateStore:
    """Atomic JSON store of one pair's :class:`TraderState` (temp file + fsync + rename)."""

    def __init__(self, state_dir: str | Path, pair_id: str):
        self.path = Path(state_dir) / f"{pair_id}.json"
        self.pair_id = pair_id

    def load(self) -> TraderState:
        """The stored state, or a fresh flat state when no file exists.

        Raises
        ------
        ValueError
            When the file exists but is not a valid state (names the file).
        """
        if not self.path.exists():
            return TraderState(self.pair_id)
        try:
            return TraderState.from_json(json.loads(self.path.read_text()))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{self.path}: corrupt trader state ({e}); move it away to start flat") from e

    def save(self, state: TraderState) -> None:
        atomic_write_json(self.path, state.to_json())
