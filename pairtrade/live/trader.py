"""One pair's trader: signals on every bar, the strategy kernel, both legs through alpaca-py.

A trader process is normally started by the controller (``python trader.py Y X ...``).  It talks to
the controller over its standard streams, one JSON object per line:

controller -> trader (stdin)
    ``{"type": "bars", "t": ISO, "bars": {SYM: {"o","h","l","c","v"}}}`` a bar timestamp's bars;
    ``{"type": "trade_update", "event": E, "order": {...}}`` routed by ``client_order_id``;
    ``{"type": "flatten"}`` close both legs; ``{"type": "stop"}`` persist and exit.
trader -> controller (stdout)
    ``{"type": "ready"}`` after warm-up and reconciliation; ``{"type": "ack", "t": ISO}`` after a
    bar was handled (orders, if any, were accepted by the venue); ``{"type": "event", ...}`` for the
    event log; ``{"type": "trade", ...}`` for each closed round trip.
Logs go to stderr; the controller prefixes them with the pair.

Order ids: ``client_order_id = "<run>-<Y>-<X>-<leg><seq>"`` (at most 48 characters), stored in the
state file before submission (persist, then act).  Both legs are submitted back to back; if the
second is rejected the first is reversed at once (rollback) and an alert is raised, so no position
is left one-legged silently.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from pairtrade.broker.alpaca import (AlpacaBroker, BrokerError, OrderInfo, OrderRejected,
                                     TemporaryBrokerError, order_info)
from pairtrade.config import CostModel, PairSpec, StrategyParams
from pairtrade.data.bars import align, bar_seconds, parse_utc, regular_hours
from pairtrade.live.state import OpenTrade, PendingOrder, StateStore, TraderState
from pairtrade.strategy.kernel import PairStrategy

log = logging.getLogger("pairtrade.trader")

Emit = Callable[[dict], None]


def warmup_length(params: StrategyParams) -> int:
    """Minimum history before the first decision, bars: the longest signal window + 10.

    Parameters
    ----------
    params : strategy parameters (``warmup_bars`` and the ADF, z-score and Hurst windows, bars)

    Returns
    -------
    int
        Bars.  The trader warms up on at least this many aligned bars even when the optimizer's
        in-sample history (``data.start`` of the params file) is shorter.
    """
    return int(max(params.warmup_bars, params.adf_window_bars, params.zscore_window_bars,
                   params.hurst_window_bars) + 10)


def history_span(n_bars: int, bar_size: str) -> pd.Timedelta:
    """Calendar time that surely holds ``n_bars`` regular-hours bars.

    Sessions of 6.5 h, 5 sessions per calendar week, plus 10 % and 7 days for holidays.

    Parameters
    ----------
    n_bars : number of bars (>= 0)
    bar_size : Alpaca timeframe string, e.g. ``"5Min"`` or ``"1Day"``

    Returns
    -------
    pandas.Timedelta
        Whole days.

    Raises
    ------
    ValueError
        ``n_bars`` negative; ``DataError`` for an unknown ``bar_size``.
    """
    if n_bars < 0:
        raise ValueError(f"n_bars must be >= 0, got {n_bars}")
    secs = bar_seconds(bar_size)
    if secs >= 86400:
        sessions = n_bars * secs / 86400
    else:
        sessions = n_bars / max(1.0, 6.5 * 3600 / secs)
    return pd.Timedelta(days=math.ceil(sessions * 7 / 5 * 1.1) + 7)


def warmup_frame(frames: dict[str, pd.DataFrame], y: str, x: str, bar_size: str) -> pd.DataFrame:
    """The aligned closes the signal engine is warmed up on, prepared exactly as the optimizer does.

    Mirrors :func:`pairtrade.backtest.optimize.optimize_pair` (via ``_restrict``): regular-hours
    filter of each leg when intraday (daily bars are kept as they are), then
    :func:`pairtrade.data.bars.align` (inner join on the bar start time).

    Parameters
    ----------
    frames : ``{symbol: DataFrame}`` of canonical bars (UTC bar start index; open/high/low/close USD)
    y, x : the legs
    bar_size : Alpaca timeframe string

    Returns
    -------
    DataFrame
        Columns ``open_y, close_y, open_x, close_x`` (USD) on the common bar start times (UTC).

    Raises
    ------
    BrokerError
        When a leg has no bars.
    """
    legs = {}
    for sym in (y, x):
        df = frames.get(sym)
        if df is None or df.empty:
            raise BrokerError(f"no historical bars for {sym}")
        legs[sym] = regular_hours(df, bar_size) if bar_seconds(bar_size) < 86400 else df
    return align(legs[y], legs[x])


def _utc(value: Any, what: str) -> pd.Timestamp:
    """``value`` as a tz-aware UTC timestamp (naive = UTC); a ``DataError`` (ValueError) naming ``what``."""
    return parse_utc(value, what)


@dataclass
class Leg:
    name: str  # "y" or "x"
    symbol: str


class Trader:
    """Trades one pair through a :class:`~pairtrade.broker.alpaca.AlpacaBroker`.

    Parameters
    ----------
    pair : the two legs
    params : strategy parameters from ``optimized_params.json``
    bar_size : Alpaca timeframe of the bars the controller sends (e.g. ``"5Min"``)
    broker : trading + historical data access (alpaca-py)
    store : the pair's atomic state store
    emit : callback receiving protocol messages (events, trades, acks) for the controller
    costs : cost model, used to estimate fees in the trade log (USD)
    run_id : short tag making ``client_order_id`` unique across runs on one account
    notifier : Telegram notifier (or a null one)
    warmup_start : first bar (UTC; ISO string or timestamp) of the history the signals are warmed up on,
        normally ``data.start`` of ``optimized_params.json`` so that the Kalman filter and the rolling
        windows have seen the same bars as in the optimizer's backtest; ``None``: only the last
        :func:`warmup_length` bars
    """

    def __init__(self, pair: PairSpec, params: StrategyParams, bar_size: str, broker: AlpacaBroker,
                 store: StateStore, emit: Emit, costs: CostModel | None = None, run_id: str = "pt",
                 notifier: Any = None, warmup_start: Any = None):
        from pairtrade.signals.pipeline import SignalEngine

        self.pair = pair
        self.params = params
        self.bar_size = bar_size
        self.broker = broker
        self.store = store
        self.emit = emit
        self.costs = costs or CostModel()
        self.run_id = run_id[:6]
        self.notifier = notifier
        self.warmup_start = None if warmup_start is None else _utc(warmup_start, "warmup_start")
        self.engine = SignalEngine(params)
        self.state: TraderState = store.load()
        self.strategy = PairStrategy(params, state=self.state.kernel_state or None)
        self.last_close: dict[str, float] = {}
        self.last_t: pd.Timestamp | None = None
        self.warm_last: pd.Timestamp | None = None  # last bar of the warm-up history
        self.legs = (Leg("y", pair.y), Leg("x", pair.x))

    # ------------------------------------------------------------------------------------------
    def event(self, kind: str, t: Any = None, **fields: Any) -> None:
        msg = {"type": "event", "event": kind, "pair": self.pair.pair_id,
               "t": str(t if t is not None else self.last_t)}
        msg.update(fields)
        self.emit(msg)

    def alert(self, text: str) -> None:
        log.error("ALERT %s", text)
        self.event("alert", text=text)
        if self.notifier is not None:
            self.notifier.notify_alert(f"{self.pair.pair_id}: {text}")

    def save(self) -> None:
        self.state.kernel_state = self.strategy.state.tolist()
        self.store.save(self.state)

    # ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Check symbols, warm the signals up from history, reconcile with the broker."""
        for leg in self.legs:
            self.broker.check_symbol(leg.symbol)
        self.warm_up()
        self.reconcile()
        self.save()
        self.emit({"type": "ready", "pair": self.pair.pair_id})

    def warm_up(self) -> None:
        """Feed the signal engine with every bar that has closed by the venue's clock (alpaca-py historical).

        The history runs from ``warmup_start`` (the optimizer's first bar) to the last bar closed at
        the venue's clock ``now`` -- Alpaca stamps bars with their start, and a bar is complete once
        ``start + bar length <= now`` -- so the engine sees the same aligned closes as the optimizer's
        ``compute_signals`` over its whole range, and the kernel's bar count equals the backtest's
        bar index (``PairStrategy(bars_seen=...)``).  The history starts at the earlier of
        ``warmup_start`` and ``now - history_span(warmup_length(params))``, so the signal windows are
        full even when ``warmup_start`` is late; without ``warmup_start`` only the last
        :func:`warmup_length` bars are kept.  Regular-hours filter and alignment as the optimizer
        (:func:`warmup_frame`).  alpaca-py pages through long histories (10,000 bars per request;
        a year of 5-minute IEX bars of two legs, extended hours included, is about ten requests).

        Raises
        ------
        BrokerError
            No bars for a leg; the venue's errors (see :mod:`pairtrade.broker.alpaca`).
        """
        now = self.broker.now()
        n = warmup_length(self.params)
        last_start = now - pd.Timedelta(seconds=bar_seconds(self.bar_size))  # last bar closed by now
        start = now - history_span(n, self.bar_size)
        if self.warmup_start is not None and self.warmup_start < start:
            start = self.warmup_start
        if start > last_start:
            raise BrokerError(f"no complete bar between warm-up start {start} and the venue clock {now}")
        frames = self.broker.bars([self.pair.y, self.pair.x], start.to_pydatetime(), last_start.to_pydatetime(),
                                  self.bar_size)
        for sym in (self.pair.y, self.pair.x):
            if frames.get(sym) is None or frames[sym].empty:
                raise BrokerError(f"no historical bars for {sym} from {start} to {last_start} (warm-up)")
        df = warmup_frame(frames, self.pair.y, self.pair.x, self.bar_size)
        df = df[df.index <= last_start]  # never a bar still forming at the venue
        if self.warmup_start is None:
            df = df.iloc[-n:]
        if len(df) < n:
            log.warning("warm-up has %d aligned bars, fewer than the %d the signal windows need", len(df), n)
        self.engine.warm_up(df["close_y"].to_numpy(float), df["close_x"].to_numpy(float))
        self.warm_last = df.index[-1] if len(df) else None  # bars up to here are in the signals already
        if not self.state.kernel_state:
            # the kernel counts warm-up bars towards params.warmup_bars (the backtest's start_index)
            self.strategy = PairStrategy(self.params, bars_seen=len(df))
        if len(df):
            self.last_close = {self.pair.y: float(df["close_y"].iloc[-1]),
                               self.pair.x: float(df["close_x"].iloc[-1])}
        log.info("warmed up on %d bars (%s .. %s)", len(df), df.index[0] if len(df) else "-",
                 df.index[-1] if len(df) else "-")

    def reconcile(self) -> None:
        """Rebuild the position from the broker: settle stored orders, adopt the venue's quantities.

        A position held in only one leg is flattened at once and an alert raised.
        """
        for p in list(self.state.pending):
            info = self.broker.get_order(p.client_order_id)
            if info is None:  # stored but never reached the venue
                self.state.pending.remove(p)
                continue
            if not info.is_final:
                try:
                    self.broker.cancel(info.order_id)
                except BrokerError as e:
                    log.warning("could not cancel %s: %s", p.client_order_id, e)
                info = self.broker.get_order(p.client_order_id) or info
            self._apply_order(p, info)
        self.state.pending = [p for p in self.state.pending if p.status not in
                              ("filled", "canceled", "expired", "rejected")]
        pos = self.broker.positions()
        qy, qx = pos.get(self.pair.y, 0.0), pos.get(self.pair.x, 0.0)
        if (qy, qx) != (self.state.qty_y, self.state.qty_x):
            self.event("reconcile", stored_qty_y=self.state.qty_y, stored_qty_x=self.state.qty_x,
                       broker_qty_y=qy, broker_qty_x=qx)
            log.warning("state had y=%s x=%s, broker has y=%s x=%s; adopting the broker's", self.state.qty_y,
                        self.state.qty_x, qy, qx)
            self.state.qty_y, self.state.qty_x = qy, qx
        if (qy == 0) != (qx == 0):
            self.alert(f"one-legged position at start (y {self.pair.y}={qy}, x {self.pair.x}={qx}); flattening")
            self.flatten("one-legged at start")
            return
        if qy == 0 and qx == 0:
            self.state.open_trade = None
        py = self.last_close.get(self.pair.y, 0.0)
        px = self.last_close.get(self.pair.x, 0.0)
        if self.state.open_trade is not None and self.state.open_trade.qty_y:
            py = abs(self.state.open_trade.cost_y / self.state.open_trade.qty_y) or py
            px = abs(self.state.open_trade.cost_x / self.state.open_trade.qty_x) if self.state.open_trade.qty_x else px
        self.strategy.sync_position(qy, qx, py, px)

    # ------------------------------------------------------------------------------------------
    def _next_id(self, leg: Leg) -> str:
        self.state.order_seq += 1
        cid = f"{self.run_id}-{self.pair.pair_id}-{leg.name}{self.state.order_seq}"
        return cid[:48]

    def _apply_order(self, p: PendingOrder, info: OrderInfo) -> None:
        """Account for newly filled shares of a pending order (idempotent)."""
        new = info.filled_qty - p.filled_qty
        p.order_id = info.order_id
        p.status = info.status
        if abs(new) > 1e-9 and info.filled_avg_price is not None:
            # price of the increment: total cost now minus cost already booked
            booked = p.filled_qty * (p.filled_avg_price or 0.0)
            total = info.filled_qty * info.filled_avg_price
            price = (total - booked) / new
            p.filled_qty = info.filled_qty
            p.filled_avg_price = info.filled_avg_price
            self._on_fill(p.symbol, new, price)

    def _on_fill(self, symbol: str, qty: float, price: float) -> None:
        fee = abs(qty * price) * self.costs.fee_bps * 1e-4
        is_y = symbol == self.pair.y
        if is_y:
            self.state.qty_y += qty
        else:
            self.state.qty_x += qty
        self.state.fees_paid += fee
        ot = self.state.open_trade
        if ot is None:
            ot = self.state.open_trade = OpenTrade(entry_time=str(self.last_t), side=0)
        if is_y:
            ot.cost_y += qty * price
        else:
            ot.cost_x += qty * price
        ot.fees += fee
        if ot.side == 0 and self.state.qty_y != 0:
            ot.side = 1 if self.state.qty_y > 0 else -1
        ot.qty_y = max(abs(ot.qty_y), abs(self.state.qty_y)) * (1 if ot.side >= 0 else -1)
        ot.qty_x = max(abs(ot.qty_x), abs(self.state.qty_x)) * (-1 if ot.side >= 0 else 1)
        self.event("fill", symbol=symbol, qty=qty, price=price, fee_usd=fee, position_y=self.state.qty_y,
                   position_x=self.state.qty_x)
        if self.state.qty_y == 0 and self.state.qty_x == 0 and not self._open_pending():
            self._close_trade()

    def _open_pending(self) -> bool:
        return any(p.status not in ("filled", "canceled", "expired", "rejected") for p in self.state.pending)

    def _close_trade(self) -> None:
        ot = self.state.open_trade
        if ot is None:
            return
        pnl = -(ot.cost_y + ot.cost_x) - ot.fees
        self.state.realized_pnl += pnl
        self.state.trades_closed += 1
        self.state.open_trade = None
        trade = {"type": "trade", "pair": self.pair.pair_id, "y": self.pair.y, "x": self.pair.x,
                 "side": "long_spread" if ot.side > 0 else "short_spread", "entry_time": ot.entry_time,
                 "exit_time": str(self.last_t), "qty_y": ot.qty_y, "qty_x": ot.qty_x,
                 "entry_z": ot.entry_z, "fees_usd": round(ot.fees, 6), "pnl_usd": round(pnl, 6)}
        self.emit(trade)
        if self.notifier is not None:
            self.notifier.notify_exit(self.pair.pair_id, "closed", pnl, self.last_t)

    def _refresh_pending(self) -> None:
        for p in self.state.pending:
            if p.status in ("filled", "canceled", "expired", "rejected"):
                continue
            info = self.broker.get_order(p.client_order_id)
            if info is not None:
                self._apply_order(p, info)
        self.state.pending = [p for p in self.state.pending if p.status not in ("filled", "canceled", "expired",
                                                                                 "rejected")]
        if not self.state.pending:
            self._sync_kernel()

    def _sync_kernel(self) -> None:
        """Give the kernel the held position and its average fill prices (as the backtest does)."""
        qy, qx = self.state.qty_y, self.state.qty_x
        ot = self.state.open_trade
        if (qy or qx) and ot is not None:
            py = ot.cost_y / qy if qy else 0.0
            px = ot.cost_x / qx if qx else 0.0
            self.strategy.on_fill(qy, qx, py, px)
        elif not qy and not qx:
            self.strategy.on_fill(0.0, 0.0, 0.0, 0.0)

    def on_trade_update(self, event: str, order: dict) -> None:
        """Apply a routed trade_updates message (fills arrive here first; REST polling is the fallback)."""
        info = order_info(order)
        for p in self.state.pending:
            if p.client_order_id == info.client_order_id:
                self._apply_order(p, info)
                if info.status == "rejected":
                    self.alert(f"order {p.client_order_id} for {p.symbol} rejected after acceptance")
                self.save()
                return

    # ------------------------------------------------------------------------------------------
    def _submit_with_retry(self, symbol: str, qty: float, client_order_id: str, attempts: int = 4,
                           backoff_secs: float = 1.0) -> OrderInfo:
        """Submit; on a temporary error (429, 5xx, network) look the order up, then retry with backoff.

        The lookup by ``client_order_id`` makes the retry idempotent: an order that reached the venue
        before the connection failed is not sent twice.
        """
        import time

        for i in range(attempts):
            try:
                return self.broker.submit_market(symbol, qty, client_order_id)
            except TemporaryBrokerError as e:
                if i == attempts - 1:
                    raise
                log.warning("submit %s %s: %s; retrying in %.1f s", symbol, qty, e, backoff_secs * 2 ** i)
                time.sleep(backoff_secs * 2 ** i)
                try:
                    known = self.broker.get_order(client_order_id)
                except TemporaryBrokerError:
                    known = None
                if known is not None:
                    return known
        raise AssertionError("unreachable")

    def submit_legs(self, deltas: list[tuple[Leg, float]], reason: str) -> bool:
        """Submit both legs; on a rejection reverse what was accepted.  Returns True when all accepted."""
        accepted: list[tuple[Leg, float, PendingOrder]] = []
        for leg, qty in deltas:
            p = PendingOrder(self._next_id(leg), leg.symbol, qty)
            self.state.pending.append(p)
            self.save()  # persist, then act
            try:
                info = self._submit_with_retry(leg.symbol, qty, p.client_order_id)
            except (OrderRejected, BrokerError) as e:
                p.status = "rejected"
                self.state.pending.remove(p)
                self.event("reject", symbol=leg.symbol, qty=qty, client_order_id=p.client_order_id, error=str(e))
                if accepted:
                    for aleg, aqty, _ in accepted:
                        rb = PendingOrder(self._next_id(aleg), aleg.symbol, -aqty)
                        self.state.pending.append(rb)
                        self.save()
                        try:
                            rinfo = self._submit_with_retry(aleg.symbol, -aqty, rb.client_order_id)
                            rb.order_id, rb.status = rinfo.order_id, rinfo.status
                            self.event("rollback", symbol=aleg.symbol, qty=-aqty, client_order_id=rb.client_order_id)
                        except BrokerError as e2:
                            self.state.pending.remove(rb)
                            self.alert(f"ONE-LEGGED: rollback of {aleg.symbol} {-aqty} failed: {e2}")
                    self.alert(f"leg {leg.symbol} rejected ({e}); other leg rolled back ({reason})")
                else:
                    self.alert(f"order for {leg.symbol} rejected ({e}); no leg traded ({reason})")
                self.save()
                return False
            p.order_id, p.status = info.order_id, info.status
            self.event("order", symbol=leg.symbol, qty=qty, client_order_id=p.client_order_id, reason=reason)
            accepted.append((leg, qty, p))
            if info.filled_qty:
                self._apply_order(p, info)
        self.save()
        return True

    def on_bars(self, t: pd.Timestamp, bars: dict[str, dict]) -> None:
        """Handle one bar timestamp: settle fills, update signals, decide, submit orders.

        A bar at or before the last warm-up bar (dispatched while this trader started or restarted) is
        already in the signals and is ignored, so no bar is counted twice.
        """
        if self.warm_last is not None and t <= self.warm_last:
            log.info("bar %s is already in the warm-up history; ignored", t)
            return
        self.last_t = t
        try:
            self._refresh_pending()
        except TemporaryBrokerError as e:
            log.warning("order refresh failed (will retry next bar): %s", e)
        for sym, b in bars.items():
            c = float(b["c"])
            if not (math.isfinite(c) and c > 0):
                self.alert(f"bad close {c!r} for {sym} at {t}; bar ignored")
                return
            self.last_close[sym] = c
        if self.pair.y not in bars or self.pair.x not in bars:
            self.save()
            return  # one leg missing at this timestamp: no decision (signals need both closes)
        cy, cx = float(bars[self.pair.y]["c"]), float(bars[self.pair.x]["c"])
        snap = self.engine.update(cy, cx)
        prev_target = self.strategy.qty
        decision = self.strategy.on_bar(snap, cy, cx)
        self.state.last_bar = str(t)
        if self._open_pending():
            # Orders still working: hold the decision back until the book is settled.
            if decision.is_change:
                log.info("decision %s deferred: orders in flight", decision.reason_name)
                self.strategy.sync_position(*prev_target, cy, cx)
            self.save()
            return
        if decision.is_change:
            reason = decision.reason_name
            deltas = [(self.legs[0], decision.target_qty_y - self.state.qty_y),
                      (self.legs[1], decision.target_qty_x - self.state.qty_x)]
            deltas = [(leg, q) for leg, q in deltas if abs(q) > 1e-9]
            self.event("signal", reason=reason, zscore=snap.zscore, beta=snap.beta, hurst=snap.hurst,
                       adf_pvalue=snap.adf_pvalue, close_y=cy, close_x=cx,
                       target_qty_y=decision.target_qty_y, target_qty_x=decision.target_qty_x)
            log.info("%s at %s: z=%.3f beta=%.4f -> target y=%s x=%s", reason, t, snap.zscore, snap.beta,
                     decision.target_qty_y, decision.target_qty_x)
            if deltas:
                entering = self.state.qty_y == 0 and self.state.qty_x == 0
                if entering:
                    self.state.open_trade = OpenTrade(entry_time=str(t), side=1 if decision.target_qty_y > 0 else -1,
                                                      entry_z=float(snap.zscore))
                ok = self.submit_legs(deltas, reason)
                if not ok and entering and not self.state.qty_y and not self.state.qty_x and not self._open_pending():
                    self.state.open_trade = None
                if ok and entering:
                    if self.notifier is not None:
                        self.notifier.notify_entry(self.pair.pair_id, self.state.open_trade.side,
                                                   decision.target_qty_y, decision.target_qty_x, cy, cx,
                                                   float(snap.zscore), t)
                if not ok:
                    # the kernel believed the trade happened; put it back on what is actually held
                    self.strategy.sync_position(self.state.qty_y, self.state.qty_x, cy, cx)
        self.save()

    def flatten(self, why: str) -> None:
        """Close both legs with market orders (operator command or one-legged recovery)."""
        deltas = [(leg, -q) for leg, q in ((self.legs[0], self.state.qty_y), (self.legs[1], self.state.qty_x))
                  if q]
        if deltas:
            self.event("flatten", why=why)
            if not self.submit_legs(deltas, f"flatten: {why}"):
                self.alert(f"flatten failed ({why}); check positions of {self.pair.y}/{self.pair.x}")
        self.strategy.sync_position(0.0, 0.0, 0.0, 0.0)
        self.save()


# ----------------------------------------------------------------------------------------------
# process entry point
# ----------------------------------------------------------------------------------------------
def _stdout_emit(msg: dict) -> None:
    sys.stdout.write(json.dumps(msg, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)


def serve(trader: Trader, lines: Any = None) -> int:
    """Read controller messages from ``lines`` (stdin) until ``stop`` or EOF; return an exit code."""
    import os

    trader.start()
    # Fault injection for tests of supervision: exit abruptly after this many bars in this process.
    crash_after = int(os.environ.get("PAIRTRADE_FAULT_CRASH_AFTER_BARS", "0") or 0)
    if crash_after and trader.state.last_bar is not None and os.environ.get("PAIRTRADE_FAULT_ONCE", "1") == "1":
        crash_after = 0  # restarted from a saved state: crash only once
    bars_seen = 0
    for line in (lines if lines is not None else sys.stdin):
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        kind = msg.get("type")
        if kind == "bars":
            t = pd.Timestamp(msg["t"])
            trader.on_bars(t, msg["bars"])
            bars_seen += 1
            if crash_after and bars_seen >= crash_after:
                log.error("fault injection: crashing after %d bars", bars_seen)
                os._exit(3)
            trader.emit({"type": "ack", "t": msg["t"]})
        elif kind == "trade_update":
            trader.on_trade_update(msg.get("event", ""), msg["order"])
        elif kind == "flatten":
            trader.flatten("operator")
            trader.emit({"type": "ack", "t": msg.get("t")})
        elif kind == "status":
            trader.emit({"type": "status", "pair": trader.pair.pair_id, "qty_y": trader.state.qty_y,
                         "qty_x": trader.state.qty_x, "realized_pnl": trader.state.realized_pnl,
                         "trades": trader.state.trades_closed})
        elif kind == "stop":
            break
    trader.save()
    trader.emit({"type": "stopped", "pair": trader.pair.pair_id, "realized_pnl": trader.state.realized_pnl,
                 "trades": trader.state.trades_closed, "qty_y": trader.state.qty_y, "qty_x": trader.state.qty_x})
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python trader.py Y X --params FILE --trading-url URL --state-dir DIR [--warmup-start ISO]``.

    Started by the controller, which passes ``--warmup-start`` = ``data.start`` of the params file.
    """
    import argparse
    import os

    from pairtrade.config import ConfigError, load_params
    from pairtrade.live.secrets import load_keys

    ap = argparse.ArgumentParser(prog="trader.py", description="Trade one pair (normally started by controller.py)")
    ap.add_argument("y")
    ap.add_argument("x")
    ap.add_argument("--params", default="optimized_params.json")
    ap.add_argument("--trading-url", default=None, help="url_override of the REST API (local exchange)")
    ap.add_argument("--state-dir", default="state")
    ap.add_argument("--run-id", default="pt")
    ap.add_argument("--live", action="store_true", help="trade the live (real money) account")
    ap.add_argument("--demo", action="store_true",
                    help="local exchange only: trade a pair the optimizer rejected (its final-window parameters)")
    ap.add_argument("--warmup-start", default=None,
                    help="first bar (ISO, UTC if naive) of the warm-up history; default: data.start of --params "
                         "(the optimizer's first bar)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    try:
        pair = PairSpec(y=args.y, x=args.x)
        pf = load_params(args.params)
        entry = pf.pairs.get(pair.pair_id)
        demo = args.demo and args.trading_url is not None and not args.live
        if entry is None or entry.params is None or not (entry.tradable or demo):
            why = "absent" if entry is None else (entry.reason or "no params")
            print(f"trader: pair {pair.pair_id} not tradable in {args.params}: {why}", file=sys.stderr)
            return 2
        if entry.params.execution != "next_open":
            print(f"trader: pair {pair.pair_id}: execution {entry.params.execution!r} is a backtest assumption; "
                  "live orders are market orders filled at the next available price (next bar's open on the "
                  "local exchange): re-run optimizer.py with --execution next_open", file=sys.stderr)
            return 2
        key, secret = load_keys(local=args.trading_url is not None)
        broker = AlpacaBroker(key, secret, paper=not args.live, trading_url=args.trading_url,
                              data_url=args.trading_url)
        from pairtrade.notify import make_notifier

        notifier = make_notifier(os.environ.get("TELEGRAM_BOT_TOKEN"), os.environ.get("TELEGRAM_CHAT_ID"))
        warmup_start = _utc(args.warmup_start or pf.data.start,
                            "--warmup-start" if args.warmup_start else f"{args.params}: data.start")
        trader = Trader(pair, entry.params, pf.bar_size, broker, StateStore(args.state_dir, pair.pair_id),
                        _stdout_emit, costs=pf.costs, run_id=args.run_id, notifier=notifier,
                        warmup_start=warmup_start)
        return serve(trader)
    except (ConfigError, ValueError, BrokerError) as e:
        print(f"trader {args.y}-{args.x}: {e}", file=sys.stderr)
        return 2
