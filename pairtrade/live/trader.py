"""One pair's trader: signals on every bar, the strategy kernel, both legs through alpaca-py.

A trader process is normally started by the controller (``python trader.py Y X ...``).  It talks to
the controller over its standard streams, one JSON object per line:

controller -> trader (stdin)
    ``{"type": "bars", "t": ISO, "bars": {SYM: {"o","h","l","c","v"}}}`` a bar timestamp's bars;
    ``{"type": "trade_update", "event": E, "order": {...}}`` routed by ``client_order_id``;
    ``{"type": "flatten"}`` close both legs; ``{"type": "reconcile"}`` compare the ledger with the
    venue again (after a reconnect); ``{"type": "stop"}`` persist and exit.
trader -> controller (stdout)
    ``{"type": "ready"}`` after warm-up and reconciliation; ``{"type": "ack", "t": ISO}`` after a
    bar was handled (orders, if any, were accepted by the venue); ``{"type": "event", ...}`` for the
    event log; ``{"type": "trade", ...}`` for each closed round trip.
Logs go to stderr; the controller prefixes them with the pair.

Leg safety ("never a naked leg")
--------------------------------
* **Persist, then act.**  Each decision becomes an order *group* (one order per leg to move from
  the held position to the target).  Every order's ``client_order_id =
  "<run>-<Y>-<X>-<leg><seq>"`` (at most 48 characters) is written to the ledger
  (:mod:`pairtrade.live.ledger`) before it is submitted.
* **Ambiguity is resolved, never guessed.**  A submit whose outcome is unknown is looked up by
  ``client_order_id`` (:meth:`~pairtrade.broker.alpaca.AlpacaBroker.submit_market`); an order not
  booked after a temporary error stays an *intent* and is resent with the same id (idempotent),
  a few times within the bar (``LegSafety.submit_retry_secs``) and then on every bar: a 5xx on an
  exit never drops the exit.  Only a definite refusal (4xx) is a reject.
* **Every leg is followed to a final state** (trade_updates first, a REST poll of the open orders
  on every bar as the fallback).  When a leg ends without filling -- refused at submit, or
  ``rejected`` / ``canceled`` / ``expired`` / ``done_for_day`` after acceptance -- the group is
  aborted: the other legs' open orders are cancelled and unsent ones are not sent.  When every
  order of the group is final and the pair does not hold the target, whatever it holds is
  flattened (a failed entry is rolled back, a failed exit is retried) with an alert.
* **Partial fills** are tracked to completion; the **leg imbalance** of a working group (USD and
  shares one leg is ahead of the other) has a cap: beyond it an alert, and from the second bar
  on the group is aborted and unwound.  Open orders older than ``LegSafety.stale_order_bars``
  bars are cancelled.
* **Repeated refusal.**  A refused group is retried after a backoff of 1, 2, 4 ... bars (at most
  ``max_backoff_bars``; a one-legged position is retried on the next bar), one alert per episode;
  after ``max_refusals`` consecutive refusals the pair is disabled with one alert: no new entries,
  and what it holds is flattened, retried every ``max_backoff_bars`` bars (a one-legged position
  every ``max_backoff_bars // 4``) until the venue accepts.
  A failed order never changes the kernel's entry prices: the kernel is set to what the pair holds
  at its fill prices.
* **Short sales.**  Before an entry with a short leg the asset's ``shortable`` and
  ``easy_to_borrow`` flags are checked (cached for ``asset_check_secs`` of bar time); a pair that
  cannot be shorted is not entered, with one alert per symbol and episode.
* **Per-pair ownership.**  The pair's position is the sum of its own fills in the ledger, never
  the account-wide position; pairs sharing a symbol never touch each other's shares.  At start
  (:meth:`Trader.reconcile`) every stored order that can still fill is looked up (missed fills
  recorded), the venue's open orders of this pair unknown to the ledger are cancelled, its order
  history since the last start is compared, and a venue position in the pair's symbols that the
  ledgers of all pairs do not explain is reported -- never flattened.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, fields
from typing import Any, Callable

import numpy as np
import pandas as pd

from pairtrade.broker.alpaca import (AlpacaBroker, AssetInfo, BrokerError, OrderInfo, OrderRejected,
                                     SubmitOutcomeUnknown, TemporaryBrokerError, order_info)
from pairtrade.config import CostModel, PairSpec, StrategyParams
from pairtrade.data.bars import align, bar_seconds, parse_utc, regular_hours
from pairtrade.live.ledger import FINAL, Ledger, json_default, state_db_path
from pairtrade.live.state import OpenTrade, PendingOrder, TraderState
from pairtrade.strategy.kernel import S_BARS, S_LAST_REASON, PairStrategy

log = logging.getLogger("pairtrade.trader")

Emit = Callable[[dict], None]
#: statuses of an order the venue holds open (it may still fill)
VENUE_OPEN = frozenset({"new", "accepted", "pending_new", "partially_filled", "held", "pending_cancel",
                        "pending_replace", "accepted_for_bidding", "calculated", "stopped", "suspended"})
CRASH_POINTS = ("between_legs", "entry_submitted")


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


@dataclass(frozen=True)
class LegSafety:
    """Limits of the leg-safety machinery of a :class:`Trader` (see the module docstring).

    Attributes
    ----------
    stale_order_bars : an order still open this many bars after submission is cancelled; an entry
        order not placed after this many bars of temporary errors is given up (exits never are)
    max_imbalance_usd : cap of a working group's leg imbalance, USD (``None``: 25 % of the pair's
        ``max_notional_usd``)
    max_imbalance_shares : cap of the imbalance in shares of one leg (``None``: no share cap)
    max_refusals : consecutive refused groups after which the pair is disabled
    max_backoff_bars : longest pause between retries after a refusal, bars (1, 2, 4 ... up to this)
    submit_retry_secs : pauses before the resends of an order not placed because of a temporary
        error, within one bar (seconds); later bars resend again
    asset_check_secs : how long the ``shortable`` / ``easy_to_borrow`` flags of a symbol are
        trusted, seconds of bar time
    check_shortable : check the borrow flags before an entry with a short leg

    Raises
    ------
    ValueError
        A limit out of range (names the field).
    """

    stale_order_bars: int = 3
    max_imbalance_usd: float | None = None
    max_imbalance_shares: float | None = None
    max_refusals: int = 5
    max_backoff_bars: int = 16
    submit_retry_secs: tuple[float, ...] = (0.25, 1.0)
    asset_check_secs: float = 3600.0
    check_shortable: bool = True

    def __post_init__(self) -> None:
        for name in ("stale_order_bars", "max_refusals", "max_backoff_bars"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"LegSafety.{name} must be a whole number >= 1, got {v!r}")
        for name in ("max_imbalance_usd", "max_imbalance_shares"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"LegSafety.{name} must be a positive number or None, got {v!r}")
        if any(not (isinstance(w, (int, float)) and 0 <= w <= 60) for w in self.submit_retry_secs):
            raise ValueError(f"LegSafety.submit_retry_secs must be seconds in [0, 60], got {self.submit_retry_secs!r}")
        if not (isinstance(self.asset_check_secs, (int, float)) and self.asset_check_secs >= 0):
            raise ValueError(f"LegSafety.asset_check_secs must be >= 0 seconds, got {self.asset_check_secs!r}")


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
    store : the account's ledger seen by this pair (:class:`~pairtrade.live.ledger.Ledger`)
    emit : callback receiving protocol messages (events, trades, acks) for the controller
    costs : cost model, used to estimate fees in the trade log (USD)
    run_id : short tag making ``client_order_id`` unique across runs on one account (letters and
        digits; other characters are dropped, at most 6 kept)
    notifier : Telegram notifier (or a null one)
    warmup_start : first bar (UTC; ISO string or timestamp) of the history the signals are warmed up on,
        normally ``data.start`` of ``optimized_params.json`` so that the Kalman filter and the rolling
        windows have seen the same bars as in the optimizer's backtest; ``None``: only the last
        :func:`warmup_length` bars
    safety : limits of the leg-safety machinery (:class:`LegSafety`)
    """

    def __init__(self, pair: PairSpec, params: StrategyParams, bar_size: str, broker: AlpacaBroker,
                 store: Ledger, emit: Emit, costs: CostModel | None = None, run_id: str = "pt",
                 notifier: Any = None, warmup_start: Any = None, safety: LegSafety | None = None):
        from pairtrade.signals.pipeline import SignalEngine

        self.pair = pair
        self.params = params
        self.bar_size = bar_size
        self.broker = broker
        self.store = store
        self.emit = emit
        self.costs = costs or CostModel()
        self.run_id = "".join(c for c in str(run_id) if c.isalnum())[:6] or "pt"
        self.notifier = notifier
        self.safety = safety or LegSafety()
        self.warmup_start = None if warmup_start is None else _utc(warmup_start, "warmup_start")
        self.engine = SignalEngine(params)
        self.state: TraderState = store.load()
        self.strategy = PairStrategy(params, state=self.state.kernel_state or None)
        self.last_close: dict[str, float] = {}
        self.last_t: pd.Timestamp | None = None
        self.warm_last: pd.Timestamp | None = None  # last bar of the warm-up history
        self.legs = (Leg("y", pair.y), Leg("x", pair.x))
        self.bar_no = 0                  # bars handled by this process (order ages are counted in bars)
        self.crash_on: str | None = None  # fault injection (serve): os._exit at this point
        self._retry_at = 0               # bar_no before which no new group starts (refusal backoff)
        self._assets: dict[str, tuple[pd.Timestamp | None, AssetInfo]] = {}
        self._fills_out: list[dict] = []
        self._trades_out: list[dict] = []
        self._retired: list[PendingOrder] = []
        self._saved_sig: str | None = None
        self._saved_orders: dict[str, tuple] = {}
        self._saved_kernel: tuple | None = None

    # ------------------------------------------------------------------------------------------
    # events, alerts, persistence
    # ------------------------------------------------------------------------------------------
    def event(self, kind: str, t: Any = None, **fields_: Any) -> None:
        msg = {"type": "event", "event": kind, "pair": self.pair.pair_id,
               "t": str(t if t is not None else self.last_t)}
        msg.update(fields_)
        self.emit(msg)

    def alert(self, text: str) -> None:
        log.error("ALERT %s", text)
        self.event("alert", text=text)
        if self.notifier is not None:
            self.notifier.notify_alert(f"{self.pair.pair_id}: {text}")

    def _kernel_sig(self) -> tuple:
        """The kernel state without the bar counter and last reason (which change on every bar)."""
        s = self.strategy.state
        s[S_BARS] = 0.0
        s[S_LAST_REASON] = 0.0
        return tuple(np.round(s, 9).tolist())

    def _state_sig(self) -> str:
        skip = ("pending", "kernel_state", "last_bar")
        d = {f.name: getattr(self.state, f.name) for f in fields(self.state) if f.name not in skip}
        return json.dumps(d, default=lambda o: o.__dict__ if hasattr(o, "__dict__") else str(o), sort_keys=True)

    @staticmethod
    def _order_sig(p: PendingOrder) -> tuple:
        return tuple(getattr(p, f.name) for f in fields(p))

    def _persist(self, force: bool = False) -> None:
        """Write what changed (state, orders, fills, trades) to the ledger in one transaction.

        Nothing is written on a bar that changed nothing (no per-bar fsync).
        """
        gid = self.state.group["id"] if self.state.group else None
        done = [p for p in self.state.pending if p.status in FINAL and p.group != gid]
        if done:  # final orders outside the working group (e.g. recorded by the controller): retire them
            self.state.pending = [p for p in self.state.pending if p not in done]
            self._retired.extend(done)
        orders = [p for p in [*self._retired, *self.state.pending]
                  if self._saved_orders.get(p.client_order_id) != self._order_sig(p)]
        ksig = self._kernel_sig()
        sig = self._state_sig()
        if not (force or orders or self._fills_out or self._trades_out or sig != self._saved_sig
                or ksig != self._saved_kernel):
            return
        self.state.kernel_state = self.strategy.state.tolist()
        self.store.save(self.state, orders, self._fills_out, self._trades_out)
        for p in orders:
            self._saved_orders[p.client_order_id] = self._order_sig(p)
        for p in self._retired:
            self._saved_orders.pop(p.client_order_id, None)
        self._retired.clear()
        self._fills_out.clear()
        self._trades_out.clear()
        self._saved_sig, self._saved_kernel = sig, ksig

    def save(self) -> None:
        """Persist everything now (at start and stop)."""
        self._persist(force=True)

    def stop(self) -> None:
        """Persist and write the readable export ``<ledger dir>/<pair_id>.json``."""
        self._persist(force=True)
        try:
            self.store.export_json(self.state)
        except OSError as e:
            log.warning("state export failed: %s", e)

    def _maybe_crash(self, point: str) -> None:
        if self.crash_on == point:
            log.error("fault injection: crashing at %s", point)
            sys.stderr.flush()
            os._exit(3)

    # ------------------------------------------------------------------------------------------
    # start: warm-up and reconciliation
    # ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Check symbols and the ledger's account, warm the signals up, reconcile with the venue."""
        for leg in self.legs:
            self.broker.check_symbol(leg.symbol)
        self.store.bind_account(self.broker.account_id())
        if self.state.run_id != self.run_id:
            self.state.run_id, self.state.run_starts = self.run_id, 0
        self.state.run_starts += 1
        self.warm_up()
        self.reconcile()
        if self.state.disabled:
            self.alert(f"pair disabled ({self.state.disabled}); it places no orders until restarted with "
                       f"trader.py --enable")
        self.save()
        self.emit({"type": "ready", "pair": self.pair.pair_id, "ledger": str(self.store.path)})

    def warm_up(self) -> None:
        """Feed the signal engine with every bar that has closed by the venue's clock (alpaca-py historical).

        The history runs from ``warmup_start`` (the optimizer's first bar) to the last bar closed at
        the venue's clock ``now`` -- Alpaca stamps bars with their start, and a bar is complete once
        ``start + bar length <= now`` -- so the engine sees the same aligned closes as the optimizer's
        ``compute_signals`` over its whole range, and the kernel's bar count equals the backtest's
        bar index (``PairStrategy(bars_seen=...)``; a kernel state restored from the ledger gets the
        same count).  The history starts at the earlier of ``warmup_start`` and
        ``now - history_span(warmup_length(params))``, so the signal windows are full even when
        ``warmup_start`` is late; without ``warmup_start`` only the last :func:`warmup_length` bars
        are kept.  Regular-hours filter and alignment as the optimizer (:func:`warmup_frame`).
        alpaca-py pages through long histories (10,000 bars per request; a year of 5-minute IEX
        bars of two legs, extended hours included, is about ten requests).

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
        if self.state.kernel_state:
            ks = np.asarray(self.state.kernel_state, dtype=float)
            ks[S_BARS] = float(len(df))  # the bars counted by a backtest over this history
            self.strategy = PairStrategy(self.params, state=ks)
        else:
            # the kernel counts warm-up bars towards params.warmup_bars (the backtest's start_index)
            self.strategy = PairStrategy(self.params, bars_seen=len(df))
        if len(df):
            self.last_close = {self.pair.y: float(df["close_y"].iloc[-1]),
                               self.pair.x: float(df["close_x"].iloc[-1])}
        log.info("warmed up on %d bars (%s .. %s)", len(df), df.index[0] if len(df) else "-",
                 df.index[-1] if len(df) else "-")

    def owns(self, client_order_id: str) -> bool:
        """True when ``client_order_id`` names an order placed for this pair: ``<run>-<Y>-<X>-<rest>``, any
        run (the trader's own ``<y|x><seq>`` and, e.g., the controller's orders for the pair)."""
        parts = str(client_order_id).split("-")
        return len(parts) == 4 and parts[1] == self.pair.y and parts[2] == self.pair.x and parts[3] != ""

    def reconcile(self) -> None:
        """Compare the ledger with the venue at start (and after a reconnect); fix or alert each difference.

        1. every stored order of the pair that can still fill is looked up by ``client_order_id``:
           missed fills are recorded, an intent the venue never booked is marked ``not_sent``;
        2. the venue's open orders of this pair that the ledger does not know are cancelled (alert);
        3. the venue's order history of the pair's symbols since the last start is compared: an
           order of this pair unknown to the ledger is alerted (and never adopted);
        4. a venue position in the pair's symbols that the fills of all pairs in the ledger do not
           explain is alerted -- never flattened (it may belong to another pair or a person);
        5. the order group of the previous process is followed on; a one-legged position of the
           pair's *own* shares with no group working is flattened (alert).

        Temporary venue errors leave the affected step to the per-bar polling.
        """
        st = self.state
        starting = self.bar_no == 0
        if starting and st.group is not None:
            st.group["bar_no"] = 0  # ages count in this process's bars
        for p in st.pending:
            if starting:
                p.bar_no = 0
            if p.status in FINAL:
                continue
            try:
                info = self.broker.get_order(p.client_order_id)
            except BrokerError as e:
                log.warning("reconcile: lookup of %s failed (%s); polled on the next bar", p.client_order_id, e)
                if starting and p.status == "intent":
                    # stored before submission by a process that may have sent it: booked or not is unknown
                    # (an "intent" would be taken for never sent, and dropped when its group is aborted)
                    p.status = "unknown"
                continue
            if info is None:
                if p.status in ("intent", "unknown"):
                    p.status = "not_sent"
                    self.event("order_not_sent", symbol=p.symbol, qty=p.qty, client_order_id=p.client_order_id)
                else:
                    self._order_lost(p, f"; its fills so far ({p.filled_qty:+g}) stay in the ledger")
                continue
            self._apply(p, info)
        self._persist()  # missed fills first: the position check reads the ledger
        self._cancel_unknown_orders()
        self._check_history()
        self.check_positions()
        self._settle()
        if st.group is None:
            qy, qx = st.qty_y, st.qty_x
            if qy == 0 and qx == 0:
                st.open_trade = None
                self._sync_kernel()
            elif (qy == 0) != (qx == 0) or qy * qx > 0:
                if not st.repair:
                    self.alert(f"one-legged position of this pair at start (its own fills: {self.pair.y} {qy:+g}, "
                               f"{self.pair.x} {qx:+g}); flattening it")
                st.repair, st.repair_why = True, st.repair_why or "repair"
                self._sync_kernel()
            else:
                self._sync_kernel()
        self._maybe_repair()

    def _cancel_unknown_orders(self) -> None:
        try:
            open_orders = self.broker.open_orders([self.pair.y, self.pair.x])
        except BrokerError as e:
            log.warning("reconcile: open orders not available (%s)", e)
            return
        for o in open_orders:
            if not self.owns(o.client_order_id) or self.store.has_order(o.client_order_id):
                continue
            try:
                self.broker.cancel(o.order_id)
                done = "cancelled"
            except BrokerError as e:
                done = f"cancel failed: {e}"
            self.alert(f"open order {o.client_order_id} ({o.symbol} {o.qty:+g}) of this pair is not in the ledger "
                       f"{self.store.path}: {done}")

    def _check_history(self) -> None:
        st = self.state
        try:
            now = self.broker.now()
            after = None if st.history_mark is None else pd.Timestamp(st.history_mark) - pd.Timedelta(seconds=1)
            for _ in range(20 if after is not None else 0):  # pages of 500, oldest first
                page = self.broker.orders("all", after=after, symbols=[self.pair.y, self.pair.x])
                for o in page:
                    if self.owns(o.client_order_id) and not self.store.has_order(o.client_order_id) \
                            and abs(o.filled_qty) > 1e-9:
                        self.alert(f"order {o.client_order_id} of this pair filled {o.filled_qty:+g} {o.symbol} at "
                                   f"the venue but is not in the ledger {self.store.path}; not adopted (orders "
                                   f"placed for a pair belong in its ledger before submission: Ledger.record_order)")
                if len(page) < 500 or page[-1].created_at is None:
                    break
                after = pd.Timestamp(page[-1].created_at)
        except BrokerError as e:
            log.warning("reconcile: order history not available (%s)", e)
            return
        st.history_mark = str(now)

    def check_positions(self) -> dict[str, float]:
        """Compare the venue's positions in the pair's symbols with the fills of all pairs in the ledger.

        A difference that the open orders of other pairs (looked up, read only) do not explain is
        alerted and left alone.

        Returns
        -------
        dict
            ``{symbol: unexplained shares}`` (signed; empty when everything is explained or the
            venue could not be asked).
        """
        try:
            venue = self.broker.positions()
        except BrokerError as e:
            log.warning("reconcile: positions not available (%s)", e)
            return {}
        mine = self.store.positions()
        allp = self.store.positions(None)
        out: dict[str, float] = {}
        for sym in (self.pair.y, self.pair.x):
            v = venue.get(sym, 0.0)
            explained = allp.get(sym, 0.0)
            if abs(v - explained) > 1e-6:
                for o in self.store.orders(None, final=False):  # fills other pairs have not recorded yet
                    if o.symbol != sym or getattr(o, "pair_id", None) == self.pair.pair_id:
                        continue
                    try:
                        info = self.broker.get_order(o.client_order_id)
                    except BrokerError:
                        info = None
                    if info is not None:
                        explained += info.filled_qty - o.filled_qty
            diff = round(v - explained, 9)
            if abs(diff) > 1e-6:
                out[sym] = diff
                others = {pid: q[sym] for pid, q in self.store.pair_positions().items()
                          if sym in q and pid != self.pair.pair_id}
                self.event("unexplained_position", symbol=sym, venue_qty=v, ledger_qty=explained,
                           pair_qty=mine.get(sym, 0.0), other_pairs=others, unexplained_qty=diff)
                self.alert(f"position {sym}: the venue holds {v:+g}, the ledgers of all pairs explain {explained:+g} "
                           f"(this pair {mine.get(sym, 0.0):+g}, others {others or 0}); {diff:+g} shares belong to "
                           f"no pair -- reported, not traded")
            elif abs(v - mine.get(sym, 0.0)) > 1e-6:
                others = {pid: q[sym] for pid, q in self.store.pair_positions().items()
                          if sym in q and pid != self.pair.pair_id}
                self.event("shared_symbol", symbol=sym, venue_qty=v, pair_qty=mine.get(sym, 0.0), other_pairs=others)
        return out

    # ------------------------------------------------------------------------------------------
    # orders
    # ------------------------------------------------------------------------------------------
    def _next_id(self, leg: Leg) -> str:
        self.state.order_seq += 1
        cid = f"{self.run_id}-{self.pair.pair_id}-{leg.name}{self.state.order_seq}"
        return cid[:48]

    def _open_pending(self) -> bool:
        return any(p.status not in FINAL for p in self.state.pending)

    def _group_orders(self) -> list[PendingOrder]:
        g = self.state.group
        return [] if g is None else [p for p in self.state.pending if p.group == g["id"]]

    def _apply(self, p: PendingOrder, info: OrderInfo) -> None:
        """Account for the venue's view of an order: id, status, newly filled shares (idempotent)."""
        p.order_id = info.order_id
        prev = p.status
        p.status = info.status
        if not p.announced:
            p.announced = True
            self.event("order", symbol=p.symbol, qty=p.qty, client_order_id=p.client_order_id, reason=p.purpose)
        new = info.filled_qty - p.filled_qty
        if abs(new) > 1e-9 and info.filled_avg_price is not None:
            # price of the increment: total cost now minus cost already booked
            booked = p.filled_qty * (p.filled_avg_price or 0.0)
            price = (info.filled_qty * info.filled_avg_price - booked) / new
            p.filled_qty = info.filled_qty
            p.filled_avg_price = info.filled_avg_price
            self._on_fill(p, new, price)
        if info.is_final and info.status != "filled" and prev != info.status:
            if not p.cancel_requested:
                p.refused = True
            self.event("order_" + info.status, symbol=p.symbol, qty=p.qty, client_order_id=p.client_order_id,
                       filled_qty=p.filled_qty, by_venue=p.refused)
            if info.status == "done_for_day":  # no fill today; make sure none comes tomorrow either
                try:
                    self.broker.cancel(info.order_id)
                except BrokerError:
                    pass

    def _on_fill(self, p: PendingOrder, qty: float, price: float) -> None:
        symbol = p.symbol
        fee = abs(qty * price) * self.costs.fee_bps * 1e-4
        is_y = symbol == self.pair.y
        if is_y:
            self.state.qty_y = round(self.state.qty_y + qty, 9)
        else:
            self.state.qty_x = round(self.state.qty_x + qty, 9)
        self.state.fees_paid += fee
        self._fills_out.append({"client_order_id": p.client_order_id, "symbol": symbol, "qty": qty, "price": price,
                                "fee": fee, "cum_qty": p.filled_qty, "bar_time": str(self.last_t)})
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
                   position_x=self.state.qty_x, client_order_id=p.client_order_id)
        if self.state.qty_y == 0 and self.state.qty_x == 0 and not self._open_pending():
            self._close_trade()

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
        self._trades_out.append(trade)
        self.emit(trade)
        if self.notifier is not None:
            self.notifier.notify_exit(self.pair.pair_id, "closed", pnl, self.last_t)

    def _send(self, p: PendingOrder) -> None:
        """Submit ``p`` (already in the ledger); resend with the same id after a temporary error.

        Leaves ``p`` booked (venue status), ``rejected`` (refused: definite), or -- when every
        attempt of this bar failed temporarily -- ``intent`` (not booked) / ``unknown`` (lookup
        failed too), to be resent on a later bar.
        """
        error = None
        for wait in (0.0, *self.safety.submit_retry_secs):
            if wait:
                time.sleep(wait)
            p.attempts += 1
            try:
                info = self.broker.submit_market(p.symbol, p.qty, p.client_order_id)
            except OrderRejected as e:
                p.status, p.refused, p.error = "rejected", True, str(e)
                self.event("reject", symbol=p.symbol, qty=p.qty, client_order_id=p.client_order_id, error=str(e),
                           reason=p.purpose)
                if "short" in e.venue_message.lower() and p.symbol not in self.state.short_blocked:
                    self.state.short_blocked.append(p.symbol)
                return
            except BrokerError as e:  # not placed, or outcome unknown: the same id makes a resend safe
                p.status = "unknown" if isinstance(e, SubmitOutcomeUnknown) else "intent"
                p.error = error = str(e)
                log.warning("submit %s %s %+g: %s", p.client_order_id, p.symbol, p.qty, e)
                if e.status_code == 429:  # rate limited (alpaca-py already waited): next bar, not now
                    break
                continue
            self._apply(p, info)
            return
        self.event("order_retry", symbol=p.symbol, qty=p.qty, client_order_id=p.client_order_id,
                   attempts=p.attempts, status=p.status, error=error)

    def _cancel(self, p: PendingOrder, why: str) -> None:
        if p.order_id is None:
            return
        try:
            self.broker.cancel(p.order_id)
        except TemporaryBrokerError as e:
            log.warning("cancel %s (%s) failed, retried next bar: %s", p.client_order_id, why, e)
            return
        except BrokerError as e:  # typically 422: already filled or final; the poll tells
            log.info("cancel %s (%s): %s", p.client_order_id, why, e)
        p.cancel_requested = True
        self.event("cancel", symbol=p.symbol, client_order_id=p.client_order_id, why=why)

    def _poll(self) -> None:
        """Ask the venue about every order that can still fill (the fallback of trade_updates)."""
        for p in self.state.pending:
            if p.status in FINAL or p.status == "intent":
                continue
            try:
                info = self.broker.get_order(p.client_order_id)
            except BrokerError as e:
                log.warning("order refresh of %s failed (retried next bar): %s", p.client_order_id, e)
                continue
            if info is None:
                if p.status == "unknown":
                    p.status = "intent"  # not booked: resend
                else:
                    self._order_lost(p)
                continue
            self._apply(p, info)

    def _order_lost(self, p: PendingOrder, detail: str = "") -> None:
        """A booked order the venue no longer knows: mark it lost and alert (its recorded fills stay)."""
        p.status = "lost"
        self.alert(f"order {p.client_order_id} ({p.symbol} {p.qty:+g}) was booked but the venue no longer knows it"
                   f"{detail}")

    def _manage(self) -> None:
        """Resend orders not placed yet, cancel stale ones, settle the group, start a pending repair."""
        g = self.state.group
        for p in self.state.pending:
            if p.status in FINAL:
                continue
            age = self.bar_no - p.bar_no
            if p.status in ("intent", "unknown"):
                if g is not None and g.get("aborting"):
                    if p.status == "intent":
                        p.status = "not_sent"
                    continue
                if p.purpose.startswith("entry") and age >= self.safety.stale_order_bars:
                    if p.status == "intent":
                        p.status = "not_sent"
                        self.event("order_not_sent", symbol=p.symbol, qty=p.qty, client_order_id=p.client_order_id,
                                   why=f"not placed after {age} bars: {p.error}")
                    continue
                if age >= self.safety.stale_order_bars and not p.alerted:
                    p.alerted = True
                    self.alert(f"order {p.client_order_id} ({p.symbol} {p.qty:+g}, {p.purpose}) not placed after "
                               f"{age} bars of temporary errors ({p.error}); still retrying")
                self._send(p)
            elif p.status in VENUE_OPEN and age >= self.safety.stale_order_bars and not p.cancel_requested:
                self._cancel(p, f"stale: open {age} bars")
        self._settle()
        self._check_imbalance()
        self._maybe_repair()

    def _settle(self) -> None:
        """Abort the group when a leg failed; complete it when every order is final."""
        g = self.state.group
        if g is None:
            return
        orders = self._group_orders()
        if not g.get("aborting") and any(p.status in FINAL and p.status != "filled" for p in orders):
            g["aborting"] = True
            self.event("group_abort", group=g["id"], purpose=g["purpose"],
                       statuses={p.client_order_id: p.status for p in orders})
        if g.get("aborting"):
            for p in orders:
                if p.status == "intent":
                    p.status = "not_sent"
                elif p.status in VENUE_OPEN and not p.cancel_requested:
                    self._cancel(p, "another leg of the group failed")
        if all(p.status in FINAL for p in orders):
            self._complete(g, orders)

    def _complete(self, g: dict, orders: list[PendingOrder]) -> None:
        st = self.state
        st.group = None
        st.pending = [p for p in st.pending if p not in orders]
        self._retired.extend(orders)
        held = (st.qty_y, st.qty_x)
        target = (g["target_y"], g["target_x"])
        if all(abs(h - t) < 1e-9 for h, t in zip(held, target)):
            if st.episode:
                self.event("recovered", purpose=g["purpose"])
            st.refusals, st.episode, st.repair, st.repair_why, self._retry_at = 0, False, False, "", 0
            shorted = {p.symbol for p in orders if p.qty < 0} if g["entering"] else set()
            st.short_blocked = [s for s in st.short_blocked if s not in shorted]
            self._sync_kernel()
            if held == (0.0, 0.0) and st.open_trade is not None and not self._open_pending():
                self._close_trade()
            if g["entering"] and self.notifier is not None and st.open_trade is not None:
                self.notifier.notify_entry(self.pair.pair_id, st.open_trade.side, target[0], target[1],
                                           self.last_close.get(self.pair.y, float("nan")),
                                           self.last_close.get(self.pair.x, float("nan")),
                                           st.open_trade.entry_z, self.last_t)
            return
        refused = [p for p in orders if p.refused]
        if refused:
            st.refusals += 1
        flat = held == (0.0, 0.0)
        if flat:
            st.repair = False
            ot = st.open_trade
            if ot is not None and ot.cost_y == 0 and ot.cost_x == 0:
                st.open_trade = None
            if ot is not None and st.open_trade is ot:  # filled and unwound inside the group
                self._close_trade()
        else:
            st.repair = True
            st.repair_why = "rollback" if g["entering"] else "repair"
        self._sync_kernel()  # what is held, at its fill prices -- never the bar's closes
        what = ", ".join(f"{p.symbol} {p.qty:+g} {p.status}" + (f" ({p.error})" if p.error else "")
                         for p in orders)
        naked = (held[0] == 0) != (held[1] == 0)
        if st.disabled:  # no new alerts; a one-legged position is retried more often than a hedged one
            backoff = max(1, self.safety.max_backoff_bars // 4) if naked else self.safety.max_backoff_bars
        elif not refused:
            backoff = 0
        else:  # a one-legged position is retried on the next bar; a hedged one backs off 1, 2, 4 .. bars
            backoff = 1 if naked else self._backoff()
        text = (f"{g['purpose']} failed: {what}; the pair holds {self.pair.y} {held[0]:+g}, {self.pair.x} {held[1]:+g}"
                + ("" if flat else "; flattening it") + (f" (retry after {backoff} bars)" if backoff and not flat
                                                         else ""))
        self.event("group_failed", group=g["id"], purpose=g["purpose"], text=text, refusals=st.refusals)
        self._retry_at = self.bar_no + backoff
        if st.disabled:
            return
        if st.refusals >= self.safety.max_refusals:
            self._disable(f"{st.refusals} consecutive refused orders; last: {what}")
            return
        if not st.episode:
            st.episode = True
            self.alert(text)

    def _backoff(self) -> int:
        return int(min(2 ** max(0, self.state.refusals - 1), self.safety.max_backoff_bars))

    def _disable(self, reason: str) -> None:
        """No new entries; what the pair holds is flattened now and retried every ``max_backoff_bars``."""
        st = self.state
        st.disabled = reason
        held = (st.qty_y, st.qty_x)
        flat = held == (0.0, 0.0)
        self.alert(f"pair disabled: {reason}; no new entries until trader.py --enable" + (
            "" if flat else f"; flattening {self.pair.y} {held[0]:+g}, {self.pair.x} {held[1]:+g} now, retried "
                            f"every {self.safety.max_backoff_bars} bars (one-legged: every "
                            f"{max(1, self.safety.max_backoff_bars // 4)}) until the venue accepts"))
        if not flat:
            st.repair, st.repair_why = True, "flatten_disabled"
            self._start_group(0.0, 0.0, "flatten_disabled", entering=False)

    def _maybe_repair(self) -> None:
        st = self.state
        if st.group is None and st.repair and self.bar_no >= self._retry_at:
            self._start_group(0.0, 0.0, st.repair_why or "repair", entering=False)

    def _check_imbalance(self) -> None:
        """Alert when a working group's legs are apart by more than the cap; abort it from the 2nd bar."""
        g = self.state.group
        orders = self._group_orders()
        if g is None or len(orders) < 2:
            return
        done = min(abs(p.filled_qty) / abs(p.qty) for p in orders)
        ahead = [(p, p.filled_qty - p.qty * done) for p in orders]
        shares = max(abs(u) for _, u in ahead)
        usd = sum(abs(u) * self.last_close.get(p.symbol, 0.0) for p, u in ahead)
        cap_usd = self.safety.max_imbalance_usd or 0.25 * self.params.max_notional_usd
        cap_sh = self.safety.max_imbalance_shares
        if usd <= cap_usd + 1e-9 and (cap_sh is None or shares <= cap_sh + 1e-9):
            return
        if not g.get("imbalance_alerted"):
            g["imbalance_alerted"] = True
            self.alert(f"leg imbalance {usd:.0f} USD / {shares:g} shares in {g['purpose']} (cap {cap_usd:.0f} USD"
                       + (f", {cap_sh:g} shares" if cap_sh is not None else "") + "): "
                       + ", ".join(f"{p.symbol} {p.filled_qty:+g} of {p.qty:+g}" for p in orders))
        if self.bar_no - g["bar_no"] >= 2 and not g.get("aborting"):
            g["aborting"] = True
            self.event("group_abort", group=g["id"], purpose=g["purpose"], why="leg imbalance over the cap")
            self._settle()

    def _sync_kernel(self) -> None:
        """Give the kernel the held position and its average fill prices (as the backtest does)."""
        qy, qx = self.state.qty_y, self.state.qty_x
        ot = self.state.open_trade
        if not qy and not qx:
            self.strategy.on_fill(0.0, 0.0, 0.0, 0.0)
        elif ot is not None:
            py = ot.cost_y / qy if qy else 0.0
            px = ot.cost_x / qx if qx else 0.0
            self.strategy.on_fill(qy, qx, py, px)
        else:  # a position without a recorded round trip (should not happen): mark at the last closes
            self.strategy.on_fill(qy, qx, self.last_close.get(self.pair.y, 0.0), self.last_close.get(self.pair.x, 0.0))

    def _restore_kernel(self, pre: np.ndarray) -> None:
        """Undo this bar's decision: the kernel state before it, with this bar counted."""
        ks = pre.copy()
        ks[S_BARS] = self.strategy.state[S_BARS]
        self.strategy = PairStrategy(self.params, state=ks)

    def _start_group(self, target_y: float, target_x: float, purpose: str, entering: bool,
                     entry_z: float = float("nan")) -> None:
        """Persist the orders that move the pair from what it holds to the target, then submit them."""
        st = self.state
        deltas = [(leg, round(t - h, 9)) for leg, t, h in ((self.legs[0], target_y, st.qty_y),
                                                          (self.legs[1], target_x, st.qty_x))]
        deltas = [(leg, q) for leg, q in deltas if abs(q) > 1e-9]
        if not deltas:
            return
        held = {self.pair.y: st.qty_y, self.pair.x: st.qty_x}
        # the leg that opens or extends a short (the likeliest refusal) goes first
        deltas.sort(key=lambda lq: 0 if held[lq[0].symbol] + lq[1] < 0 and abs(held[lq[0].symbol] + lq[1])
                    > abs(held[lq[0].symbol]) else 1)
        st.group_seq += 1
        st.group = {"id": st.group_seq, "purpose": purpose, "target_y": target_y, "target_x": target_x,
                    "entering": entering, "aborting": False, "imbalance_alerted": False, "bar_no": self.bar_no}
        if entering:
            st.open_trade = OpenTrade(entry_time=str(self.last_t), side=1 if target_y > 0 else -1,
                                      entry_z=float(entry_z))
        orders = [PendingOrder(self._next_id(leg), leg.symbol, q, group=st.group_seq, purpose=purpose,
                               bar_no=self.bar_no) for leg, q in deltas]
        st.pending.extend(orders)
        self._persist(force=True)  # intents before submission
        for i, p in enumerate(orders):
            if p.status in FINAL:  # marked not_sent: the group was aborted by an earlier leg
                continue
            if st.group is None or st.group["id"] != p.group or st.group.get("aborting"):
                p.status = "not_sent"
                continue
            self._send(p)
            if i == 0 and len(orders) > 1 and entering:
                self._maybe_crash("between_legs")
            if p.status in FINAL and p.status != "filled":
                self._settle()
        if entering:
            self._maybe_crash("entry_submitted")
        self._settle()
        self._persist()

    def _short_blocked(self, target_y: float, target_x: float) -> str | None:
        """The symbol of a short leg of this entry the venue will not lend now (flags cached), or None."""
        if not self.safety.check_shortable:
            return None
        for sym, q in ((self.pair.y, target_y), (self.pair.x, target_x)):
            if q >= 0:
                continue
            cached = self._assets.get(sym)
            fresh = cached is not None and cached[0] is not None and self.last_t is not None and \
                (self.last_t - cached[0]).total_seconds() < self.safety.asset_check_secs
            if not fresh:
                try:
                    info = self.broker.asset(sym)
                except BrokerError as e:
                    # the venue refuses an impossible short itself; that leg goes first, so nothing is traded
                    log.warning("borrow flags of %s not available (%s); entering, the venue decides", sym, e)
                    continue
                self._assets[sym] = (self.last_t, info)
            info = self._assets[sym][1]
            if not (info.shortable and info.easy_to_borrow):
                return f"{sym} (shortable={info.shortable}, easy_to_borrow={info.easy_to_borrow})"
            if sym in self.state.short_blocked:  # lendable again: the episode is over
                self.state.short_blocked.remove(sym)
                self.event("short_available", symbol=sym)
        return None

    def _blocked(self) -> str | None:
        st = self.state
        if st.disabled:
            return f"pair disabled ({st.disabled})"
        if st.group is not None or self._open_pending():
            return "orders in flight"
        if st.repair:
            return "flattening a failed group's position"
        if self.bar_no < self._retry_at:
            return f"backoff after a refusal until bar {self._retry_at}"
        return None

    # ------------------------------------------------------------------------------------------
    # controller messages
    # ------------------------------------------------------------------------------------------
    def on_trade_update(self, event: str, order: dict) -> None:
        """Apply a routed trade_updates message (fills arrive here first; REST polling is the fallback)."""
        info = order_info(order)
        for p in self.state.pending:
            if p.client_order_id == info.client_order_id:
                if p.status in FINAL and p.status == info.status:
                    return
                self._apply(p, info)
                self._settle()
                self._maybe_repair()
                self._persist()
                return

    def on_bars(self, t: pd.Timestamp, bars: dict[str, dict]) -> None:
        """Handle one bar timestamp: follow the orders, update signals, decide, submit orders.

        A bar at or before the last warm-up bar (dispatched while this trader started or restarted) is
        already in the signals and is ignored, so no bar is counted twice.  The ledger is written only
        when something changed (orders, fills, the kernel's position state).
        """
        if self.warm_last is not None and t <= self.warm_last:
            log.info("bar %s is already in the warm-up history; ignored", t)
            return
        self.last_t = t
        self.bar_no += 1
        self.state.last_bar = str(t)
        self._poll()
        for sym, b in bars.items():
            c = float(b["c"])
            if not (math.isfinite(c) and c > 0):
                self.alert(f"bad close {c!r} for {sym} at {t}; bar ignored")
                self._manage()
                self._persist()
                return
            self.last_close[sym] = c
        self._manage()
        if self.pair.y not in bars or self.pair.x not in bars:
            self._persist()
            return  # one leg missing at this timestamp: no decision (signals need both closes)
        cy, cx = float(bars[self.pair.y]["c"]), float(bars[self.pair.x]["c"])
        snap = self.engine.update(cy, cx)
        pre = self.strategy.state
        decision = self.strategy.on_bar(snap, cy, cx)
        if decision.is_change:
            self._decide(decision, snap, pre, t, cy, cx)
        self._persist()

    def _decide(self, decision: Any, snap: Any, pre: np.ndarray, t: pd.Timestamp, cy: float, cx: float) -> None:
        reason = decision.reason_name
        ty, tx = decision.target_qty_y, decision.target_qty_x
        blocked = self._blocked()
        entering = self.state.qty_y == 0 and self.state.qty_x == 0 and (ty != 0 or tx != 0)
        if blocked is None and entering:
            short = self._short_blocked(ty, tx)
            if short is not None:
                blocked = f"cannot short {short}"
                sym = short.split(" ")[0]
                if sym not in self.state.short_blocked:
                    self.state.short_blocked.append(sym)
                    self.alert(f"{reason} not entered: the venue will not lend {short}")
        self.event("signal", reason=reason, zscore=snap.zscore, beta=snap.beta, hurst=snap.hurst,
                   adf_pvalue=snap.adf_pvalue, close_y=cy, close_x=cx, target_qty_y=ty, target_qty_x=tx,
                   **({"deferred": blocked} if blocked else {}))
        if blocked:
            log.info("decision %s at %s not acted on: %s", reason, t, blocked)
            self._restore_kernel(pre)
            return
        log.info("%s at %s: z=%.3f beta=%.4f -> target y=%s x=%s", reason, t, snap.zscore, snap.beta, ty, tx)
        self._start_group(ty, tx, reason, entering, entry_z=float(snap.zscore) if entering else float("nan"))

    def flatten(self, why: str) -> None:
        """Close both legs with market orders (operator command); a working group is aborted first."""
        st = self.state
        self.event("flatten", why=why)
        st.repair, st.repair_why = True, f"flatten: {why}"
        self._retry_at = 0
        if st.group is not None:
            st.group["aborting"] = True
            self._settle()
        if st.group is None and (st.qty_y or st.qty_x):
            self._start_group(0.0, 0.0, f"flatten: {why}", entering=False)
        elif st.group is None:
            st.repair = False
        self._persist()


# ----------------------------------------------------------------------------------------------
# process entry point
# ----------------------------------------------------------------------------------------------
def _stdout_emit(msg: dict) -> None:
    sys.stdout.write(json.dumps(msg, default=json_default) + "\n")
    sys.stdout.flush()


def serve(trader: Trader, lines: Any = None) -> int:
    """Read controller messages from ``lines`` (stdin) until ``stop`` or EOF; return an exit code.

    Fault injection for tests (environment): ``PAIRTRADE_FAULT_CRASH_AFTER_BARS=N`` exits abruptly
    (``os._exit(3)``, as a kill -9) after the N-th bar of the process; ``PAIRTRADE_FAULT_CRASH_ON``
    = ``between_legs`` (after the first leg of an entry was submitted) or ``entry_submitted``
    (after all legs of an entry were submitted, before their statuses were written).  With
    ``PAIRTRADE_FAULT_ONCE=1`` (default) a trader restarted in the same run does not crash again.
    """
    trader.start()
    once = os.environ.get("PAIRTRADE_FAULT_ONCE", "1") == "1"
    restarted = trader.state.run_starts > 1
    crash_after = int(os.environ.get("PAIRTRADE_FAULT_CRASH_AFTER_BARS", "0") or 0)
    crash_on = os.environ.get("PAIRTRADE_FAULT_CRASH_ON") or None
    if crash_on is not None and crash_on not in CRASH_POINTS:
        raise ValueError(f"PAIRTRADE_FAULT_CRASH_ON must be one of {', '.join(CRASH_POINTS)}, got {crash_on!r}")
    if restarted and once:
        crash_after, crash_on = 0, None  # restarted in this run: crash only once
    trader.crash_on = crash_on
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
        elif kind == "reconcile":
            trader.reconcile()
            trader.save()
            trader.emit({"type": "reconciled", "pair": trader.pair.pair_id})
        elif kind == "status":
            trader.emit({"type": "status", "pair": trader.pair.pair_id, "qty_y": trader.state.qty_y,
                         "qty_x": trader.state.qty_x, "realized_pnl": trader.state.realized_pnl,
                         "trades": trader.state.trades_closed, "disabled": trader.state.disabled})
        elif kind == "stop":
            break
    trader.stop()
    trader.emit({"type": "stopped", "pair": trader.pair.pair_id, "realized_pnl": trader.state.realized_pnl,
                 "trades": trader.state.trades_closed, "qty_y": trader.state.qty_y, "qty_x": trader.state.qty_x})
    return 0


def _positive_int(name: str) -> Callable[[str], int]:
    def parse(v: str) -> int:
        try:
            n = int(v)
        except ValueError:
            raise ValueError(f"{name} must be a whole number >= 1, got {v!r}") from None
        if n < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
        return n
    return parse


def main(argv: list[str] | None = None) -> int:
    """``python trader.py Y X --params FILE [--trading-url URL] [--state-dir DIR] [--warmup-start ISO]``.

    Started by the controller, which passes ``--warmup-start`` = ``data.start`` of the params file.
    The ledger is ``DIR/<mode>.sqlite`` with ``--state-dir``, else
    :func:`~pairtrade.live.ledger.state_db_path` (``$PAIRTRADE_STATE_DIR`` or
    ``~/.local/state/pairtrade``, then ``<account>/<mode>.sqlite``; account ``local`` for a local
    exchange, mode ``paper`` or ``live``).  ``PAIRTRADE_REST_RETRY_WAIT_SECS`` sets alpaca-py's
    pause between its resends of 429/504 answers (default 3 s).
    """
    import argparse

    from pairtrade.config import ConfigError, load_params
    from pairtrade.live.secrets import load_keys

    ap = argparse.ArgumentParser(prog="trader.py", description="Trade one pair (normally started by controller.py)")
    ap.add_argument("y")
    ap.add_argument("x")
    ap.add_argument("--params", default="optimized_params.json")
    ap.add_argument("--trading-url", default=None, help="url_override of the REST API (local exchange)")
    ap.add_argument("--state-dir", default=None,
                    help="folder of the ledger (<mode>.sqlite); default $PAIRTRADE_STATE_DIR or "
                         "~/.local/state/pairtrade/<account>/")
    ap.add_argument("--run-id", default="pt")
    ap.add_argument("--live", action="store_true", help="trade the live (real money) account")
    ap.add_argument("--demo", action="store_true",
                    help="local exchange only: trade a pair the optimizer rejected (its final-window parameters)")
    ap.add_argument("--warmup-start", default=None,
                    help="first bar (ISO, UTC if naive) of the warm-up history; default: data.start of --params "
                         "(the optimizer's first bar)")
    ap.add_argument("--enable", action="store_true", help="clear the pair's 'disabled' mark in the ledger")
    ap.add_argument("--stale-order-bars", default="3", help="cancel orders still open after this many bars")
    ap.add_argument("--max-refusals", default="5", help="consecutive refused orders before the pair is disabled")
    ap.add_argument("--submit-retry-secs", default="0.25,1",
                    help="pauses (s, comma-separated) before resending an order not placed after a temporary "
                         "error, within one bar; later bars resend again")
    ap.add_argument("--max-imbalance-usd", default=None,
                    help="cap of the leg imbalance of a working order group, USD (default 25%% of max_notional_usd)")
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
        cap = None
        if args.max_imbalance_usd is not None:
            try:
                cap = float(args.max_imbalance_usd)
            except ValueError:
                raise ValueError(f"--max-imbalance-usd must be a number of USD, got {args.max_imbalance_usd!r}") \
                    from None
        try:
            waits = tuple(float(w) for w in args.submit_retry_secs.split(",") if w.strip())
        except ValueError:
            raise ValueError(f"--submit-retry-secs must be seconds separated by commas, got "
                             f"{args.submit_retry_secs!r}") from None
        safety = LegSafety(stale_order_bars=_positive_int("--stale-order-bars")(args.stale_order_bars),
                           max_refusals=_positive_int("--max-refusals")(args.max_refusals), max_imbalance_usd=cap,
                           submit_retry_secs=waits)
        wait = os.environ.get("PAIRTRADE_REST_RETRY_WAIT_SECS")
        try:
            retry_wait = float(wait) if wait else None
        except ValueError:
            raise ValueError(f"PAIRTRADE_REST_RETRY_WAIT_SECS must be seconds, got {wait!r}") from None
        key, secret = load_keys(local=args.trading_url is not None)
        broker = AlpacaBroker(key, secret, paper=not args.live, trading_url=args.trading_url,
                              data_url=args.trading_url, retry_wait_secs=retry_wait)
        mode = "live" if args.live else "paper"
        account = "local" if args.trading_url is not None or args.state_dir is not None else broker.account_id()
        store = Ledger(state_db_path(account, mode, state_dir=args.state_dir), pair.pair_id)
        if args.enable:
            st = store.load()
            if st.disabled:
                log.warning("pair %s was disabled (%s); enabled again", pair.pair_id, st.disabled)
                st.disabled, st.refusals, st.episode = None, 0, False
                store.save(st)
        from pairtrade.notify import make_notifier

        notifier = make_notifier(os.environ.get("TELEGRAM_BOT_TOKEN"), os.environ.get("TELEGRAM_CHAT_ID"))
        warmup_start = _utc(args.warmup_start or pf.data.start,
                            "--warmup-start" if args.warmup_start else f"{args.params}: data.start")
        trader = Trader(pair, entry.params, pf.bar_size, broker, store, _stdout_emit, costs=pf.costs,
                        run_id=args.run_id, notifier=notifier, warmup_start=warmup_start, safety=safety)
        return serve(trader)
    except (ConfigError, ValueError, BrokerError) as e:
        print(f"trader {args.y}-{args.x}: {e}", file=sys.stderr)
        return 2
