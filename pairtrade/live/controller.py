"""The daemon: one trader process per pair, fed from the account's single market-data connection.

``python controller.py`` (see :func:`main` for options).

* reads ``pairs.json`` and ``optimized_params.json``; skips pairs without params or marked not
  tradable, saying why;
* ``--exchange local`` (default): starts the local paper exchange in-process on 127.0.0.1 and replays
  recorded bars (``--data PATH`` or the embedded default); ``--exchange alpaca``: Alpaca paper with the
  keys in ``.env`` (``--live`` for the real-money account);
* owns the ONE market-data websocket (alpaca-py ``StockDataStream``) and the ONE ``trade_updates``
  stream (``TradingStream``) of the account and fans bars / order updates out to the traders over
  pipes (routing updates by ``client_order_id``);
* starts the traders staggered (REST budget), restarts a dead or hung trader with exponential
  backoff within a restart budget that recovers over time (``--max-restarts`` per
  ``--restart-window-mins``), flattens the legs of a pair it gives up on and alerts, prefixes each
  trader's log lines with its pair, and stops them cleanly on SIGINT/SIGTERM (supervision:
  :mod:`pairtrade.live.supervisor`);
* writes ``events.jsonl``, ``trades.csv``, ``equity.csv`` and ``summary.json`` to ``--run-dir``.

In the local replay the clock is *lockstep*: the controller advances the exchange by one bar, waits
until the bars arrived over the websocket, hands them to the traders and waits for every trader's
acknowledgement (its orders are then at the venue) before the next bar.  Replays are therefore
deterministic and as fast as the traders keep up.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import math
import os
import queue
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from pairtrade.config import ConfigError, PairSpec, ParamsFile, load_pairs, load_params
from pairtrade.data.bars import BarSet, DataError, bar_seconds, parse_utc, regular_hours
from pairtrade.broker.alpaca import bound_rest_time
from pairtrade.live.supervisor import Supervisor, TraderProc, flatten_pair, pair_holdings

log = logging.getLogger("pairtrade.controller")
ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------------------------
# trader processes: pairtrade.live.supervisor (TraderProc, Supervisor)
# ----------------------------------------------------------------------------------------------
class RunLog:
    """The run directory: events.jsonl, trades.csv, equity.csv, summary.json (all appended as they come)."""

    TRADE_FIELDS = ["pair", "y", "x", "side", "entry_time", "exit_time", "qty_y", "qty_x", "entry_z", "fees_usd",
                    "pnl_usd"]

    def __init__(self, run_dir: Path):
        self.dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self._events = open(run_dir / "events.jsonl", "a")
        new_trades = not (run_dir / "trades.csv").exists()
        self._trades = open(run_dir / "trades.csv", "a", newline="")
        self._tw = csv.DictWriter(self._trades, fieldnames=self.TRADE_FIELDS, extrasaction="ignore")
        if new_trades:
            self._tw.writeheader()
        new_eq = not (run_dir / "equity.csv").exists()
        self._equity = open(run_dir / "equity.csv", "a", newline="")
        self._ew = csv.writer(self._equity)
        if new_eq:
            self._ew.writerow(["timestamp", "cash_usd", "equity_usd"])
        self.counts: dict[str, int] = {}
        self.trades: list[dict] = []
        self.lock = threading.Lock()

    def event(self, msg: dict) -> None:
        with self.lock:
            kind = msg.get("event", msg.get("type"))
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self._events.write(json.dumps(msg, default=str) + "\n")
            self._events.flush()

    def trade(self, msg: dict) -> None:
        with self.lock:
            self.trades.append(msg)
            self._tw.writerow(msg)
            self._trades.flush()
        self.event({**msg, "type": "event", "event": "trade_closed"})

    def equity(self, t: Any, cash: float, equity: float) -> None:
        with self.lock:
            self._ew.writerow([str(t), f"{cash:.2f}", f"{equity:.2f}"])
            self._equity.flush()

    def close(self) -> None:
        for f in (self._events, self._trades, self._equity):
            f.close()


# ----------------------------------------------------------------------------------------------
# the controller
# ----------------------------------------------------------------------------------------------
class Controller:
    """Supervises the traders and routes market data and order updates.

    Supervision (processes, acks, restarts, giving up) is :class:`pairtrade.live.supervisor.Supervisor`;
    this class wires it to the run records, the notifier and the account.

    Parameters
    ----------
    pairs : tradable pairs (already filtered)
    params_path : path of optimized_params.json (passed on to the traders)
    params : its content
    run_dir : output folder
    trading_url : REST url_override (local exchange) or None for Alpaca
    key, secret : credentials (never logged)
    stagger_secs : pause between trader starts (REST budget: each start costs about 6 requests)
    max_restarts, restart_window_secs : restart budget of each trader: at most ``max_restarts``
        restarts in any rolling window of ``restart_window_secs`` seconds; a trader that dies with
        its budget spent is given up and its pair flattened (:meth:`give_up`)
    live : trade the live (real money) Alpaca account
    notifier : Telegram notifier (or a null one; ``notify_alert`` is used)
    ack_timeout_secs : per bar and per trader, seconds; a trader that misses it is killed and restarted
    warmup_start : first bar (ISO UTC) of the traders' warm-up history (``--warmup-start`` of
        trader.py); default ``params.data.start``, the optimizer's first bar, so the live signals
        continue the optimizer's in-sample computation
    demo : local exchange only: traders may trade a pair the optimizer rejected
    ready_timeout_secs : from a trader's start to its ``ready`` (warm-up), seconds
    stop_timeout_secs : at shutdown, from ``stop`` to exit before a trader is terminated, seconds
    lockstep : True for the local replay (the clock waits for every trader, restarts included),
        False for Alpaca (a dispatch waits only for the traders it could send bars to)
    rest_timeout_secs : read timeout of the controller's own REST calls (alpaca-py), seconds
    """

    def __init__(self, pairs: list[PairSpec], params_path: Path, params: ParamsFile, run_dir: Path,
                 trading_url: str | None, key: str, secret: str, stagger_secs: float = 1.0,
                 max_restarts: int = 5, live: bool = False, notifier: Any = None, ack_timeout_secs: float = 120.0,
                 warmup_start: str | None = None, demo: bool = False, restart_window_secs: float = 3600.0,
                 ready_timeout_secs: float = 180.0, stop_timeout_secs: float = 10.0, lockstep: bool = True,
                 rest_timeout_secs: float = 30.0):
        run_dir = Path(run_dir).resolve()  # traders run with cwd=ROOT: their state must land in this run dir
        self.pairs = pairs
        self.params_path = params_path
        self.params = params
        self.run = RunLog(run_dir)
        self.trading_url = trading_url
        self.stagger_secs = stagger_secs
        self.max_restarts = max_restarts
        self.ack_timeout_secs = ack_timeout_secs
        self.notifier = notifier
        self.live = live
        self._key, self._secret = key, secret
        self.rest_timeout_secs = rest_timeout_secs
        self._client: Any = None
        self.run_id = uuid.uuid4().hex[:6]
        self.stop_requested = threading.Event()
        self.bar_queue: "queue.Queue[tuple[str, pd.Timestamp, dict]]" = queue.Queue()
        self.traders: dict[str, TraderProc] = {}
        self.trade_stream_connects = 0
        self.warmup_start = warmup_start or params.data.start
        self.state_dir = run_dir / "state"
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        if trading_url is None:
            env["ALPACA_API_KEY"], env["ALPACA_SECRET_KEY"] = key, secret
        for p in pairs:
            cmd = [sys.executable, str(ROOT / "trader.py"), p.y, p.x, "--params", str(params_path),
                   "--state-dir", str(self.state_dir), "--run-id", self.run_id,
                   "--warmup-start", str(self.warmup_start)]
            if trading_url:
                cmd += ["--trading-url", trading_url]
            if live:
                cmd += ["--live"]
            if demo:
                cmd += ["--demo"]
            self.traders[p.pair_id] = TraderProc(p, cmd, env)
        self.symbol_pairs: dict[str, list[str]] = {}
        for p in pairs:
            for s in (p.y, p.x):
                self.symbol_pairs.setdefault(s, []).append(p.pair_id)
        self.final_stats: dict[str, dict] = {}
        self.sup = Supervisor(self.traders, self.stop_requested, on_message=self._on_message,
                              on_event=self.run.event, on_give_up=self.give_up, max_restarts=max_restarts,
                              restart_window_secs=restart_window_secs, ack_timeout_secs=ack_timeout_secs,
                              ready_timeout_secs=ready_timeout_secs, stop_timeout_secs=stop_timeout_secs,
                              lockstep=lockstep, cwd=ROOT)

    # -- messages from traders ---------------------------------------------------------------
    def _on_message(self, tp: TraderProc, msg: dict) -> None:
        """Record a fact a trader reported (any incarnation); remember the last position it reported."""
        kind = msg.get("type")
        if kind == "event":
            self.run.event(msg)
            if msg.get("event") == "fill" and "position_y" in msg:
                tp.reported = {tp.pair.y: float(msg["position_y"]), tp.pair.x: float(msg["position_x"])}
            elif msg.get("event") == "reconcile" and "broker_qty_y" in msg:
                tp.reported = {tp.pair.y: float(msg["broker_qty_y"]), tp.pair.x: float(msg["broker_qty_x"])}
        elif kind == "trade":
            self.run.trade(msg)
            log.info("[%s] round trip closed: %s pnl %.2f USD", tp.pair_id, msg.get("side"), msg["pnl_usd"])
        elif kind in ("stopped", "status"):
            if kind == "stopped":
                self.final_stats[tp.pair_id] = msg
            if "qty_y" in msg:
                tp.reported = {tp.pair.y: float(msg["qty_y"] or 0.0), tp.pair.x: float(msg["qty_x"] or 0.0)}

    def client(self) -> Any:
        """The controller's alpaca-py ``TradingClient`` (created once, every request with a timeout)."""
        if self._client is None:
            from alpaca.trading.client import TradingClient

            self._client = bound_rest_time(TradingClient(self._key, self._secret, paper=not self.live,
                                                         url_override=self.trading_url),
                                           read_secs=self.rest_timeout_secs)
        return self._client

    def pair_ledger(self, tp: TraderProc) -> Any:
        """The ledger the pair's trader writes (``trader.py --state-dir``: ``<state_dir>/<mode>.sqlite``),
        opened for ``tp``'s pair (:class:`pairtrade.live.ledger.Ledger`; close it after use).

        Raises
        ------
        ValueError
            The file exists but is not a ledger.
        """
        from pairtrade.live.ledger import Ledger, state_db_path

        return Ledger(state_db_path("local", "live" if self.live else "paper", state_dir=self.state_dir), tp.pair_id)

    def pair_state(self, tp: TraderProc) -> Any:
        """The pair's state as its trader last stored it in the ledger, or None when there is no ledger yet.

        Returns
        -------
        :class:`pairtrade.live.state.TraderState` or None

        Raises
        ------
        ValueError
            The ledger exists but cannot be read.
        """
        from pairtrade.live.ledger import state_db_path

        if not state_db_path("local", "live" if self.live else "paper", state_dir=self.state_dir).exists():
            return None
        ledger = self.pair_ledger(tp)
        try:
            return ledger.load()
        finally:
            ledger.close()

    def record_flatten_order(self, tp: TraderProc, client_order_id: str, symbol: str, qty: float) -> None:
        """Write a closing order of a given-up pair to its ledger before it is submitted (persist, then act),
        so the pair's next trader follows it and records its fills (``Ledger.record_order``)."""
        ledger = self.pair_ledger(tp)
        try:
            ledger.record_order(client_order_id, symbol, qty, "give_up")
        finally:
            ledger.close()

    def give_up(self, tp: TraderProc, exit_code: int | None) -> None:
        """The restart budget of ``tp`` is spent: flatten the pair's own legs and alert.

        What the pair holds comes from its trader's store (:meth:`pair_state`: stored position
        plus late fills of the orders it stored; open ones are cancelled), or, when that is
        unreadable, from the position the trader last reported (``fill`` events) --
        never from the account-wide position, which may include other pairs' shares
        (:func:`pairtrade.live.supervisor.pair_holdings`).  Each closing order is written to the
        pair's ledger before it is submitted (:meth:`record_flatten_order`).  Records the event
        ``pair_given_up`` (holdings, closing orders, errors) and sends an alert.
        """
        state, state_error = None, None
        try:
            state = self.pair_state(tp)
        except Exception as e:  # corrupt or from another version: fall back to what the trader reported
            state_error = str(e)
        orders: list[dict] = []
        prefix = f"{self.run_id}-{tp.pair_id}-"
        try:
            holdings, detail = pair_holdings(tp.pair, self.client(), state, tp.reported, prefix=prefix)
            orders = flatten_pair(tp.pair, self.client(), holdings, prefix,
                                  before_submit=lambda cid, sym, q: self.record_flatten_order(tp, cid, sym, q))
        except Exception as e:  # the venue is unreachable: say what should be closed
            holdings = dict(tp.reported) if state is None else {tp.pair.y: state.qty_y, tp.pair.x: state.qty_x}
            detail = {"source": "state" if state is not None else "reported", "errors": [str(e)]}
        failed = [o for o in orders if "error" in o or o.get("status") == "rejected"]
        errors = (detail.get("errors") or []) + [f"{o['symbol']} order not in the ledger: {o['ledger_error']}"
                                                 for o in orders if o.get("ledger_error")]
        closing = ", ".join(f"{o['symbol']} {o['qty']:+g}" for o in orders) or "nothing held"
        budget = tp.budget
        held = ", ".join(f"{s} {q:+g}" for s, q in holdings.items())
        text = (f"trader {tp.pair_id} died with its restart budget spent ({budget.max_restarts if budget else '?'} "
                f"restarts per {budget.window_secs if budget else 0:g} s); giving up on this pair. Flattening its "
                f"own legs (held {held}, from its {detail.get('source')}): {closing}")
        if state_error:
            text += f" (state file unreadable: {state_error}; used the trader's last report)"
        if failed or errors:
            text += f". FLATTEN INCOMPLETE, check {tp.pair.y}/{tp.pair.x}: " + "; ".join(
                [f"{o['symbol']}: {o.get('error') or o.get('status')}" for o in failed] + errors)
        log.error(text)
        self.run.event({"type": "event", "event": "pair_given_up", "pair": tp.pair_id, "exit_code": exit_code,
                        "restarts": tp.restarts, "holdings": holdings, "holdings_source": detail.get("source"),
                        "late_fills": detail.get("late_fills", {}), "cancelled": detail.get("cancelled", []),
                        "flatten_orders": orders, "errors": errors, "state_error": state_error,
                        "flattened": not failed and not errors})
        if self.notifier is not None:
            self.notifier.notify_alert(text)

    def on_trade_update(self, data: Any) -> None:
        """Route an alpaca-py TradeUpdate to the trader that owns its client_order_id."""
        order = data.order
        cid = order.client_order_id or ""
        for pid, tp in self.traders.items():
            if cid.startswith(f"{self.run_id}-{pid}-"):
                payload = json.loads(order.model_dump_json())
                tp.send({"type": "trade_update", "event": str(getattr(data.event, "value", data.event)),
                         "order": payload})
                return

    def on_trade_stream_connected(self) -> None:
        """The trade_updates stream (re)connected: after a reconnect every trader reconciles its ledger.

        Updates sent while the stream was down are lost (Alpaca does not replay them), so each trader
        looks its orders up by ``client_order_id`` (``{"type": "reconcile"}``, see trader.py).
        """
        self.trade_stream_connects += 1
        if self.trade_stream_connects < 2:
            return
        log.warning("trade_updates stream reconnected (connection %d): traders reconcile", self.trade_stream_connects)
        self.run.event({"type": "event", "event": "trade_stream_reconnected",
                        "connection": self.trade_stream_connects})
        for tp in self.traders.values():
            tp.send({"type": "reconcile"})

    # -- the bar loop ------------------------------------------------------------------------
    def dispatch(self, t: pd.Timestamp, bars: dict[str, dict]) -> None:
        """Send a timestamp's bars to the traders of the pairs they belong to and wait for the acks.

        Every trader is awaited at once, each with its own ``ack_timeout_secs``; a dead trader is
        noticed within ``poll_secs`` and restarted (see :class:`~pairtrade.live.supervisor.Supervisor`).
        """
        self.sup.dispatch(t.isoformat(), bars)

    def service(self) -> None:
        """Handle the traders' messages and deaths between bars (the Alpaca loop calls this)."""
        self.sup.pump(0.0)

    def shutdown(self) -> None:
        """Stop every trader (``stop``, then SIGTERM, then SIGKILL) and record their last messages."""
        self.sup.shutdown()

    def start_all(self) -> None:
        """Start the traders ``stagger_secs`` apart and wait until they are ready."""
        self.sup.start_all(self.stagger_secs)


# ----------------------------------------------------------------------------------------------
# streams (alpaca-py) in background threads
# ----------------------------------------------------------------------------------------------
def _bar_dict(b: Any) -> dict:
    return {"o": float(b.open), "h": float(b.high), "l": float(b.low), "c": float(b.close), "v": float(b.volume)}


def start_streams(ctl: Controller, key: str, secret: str, data_url: str | None, trade_url: str | None,
                  symbols: list[str], paper: bool) -> list[Any]:
    """Start the account's one StockDataStream (bars) and one TradingStream (trade_updates)."""
    from alpaca.data.enums import DataFeed
    from alpaca.data.live import StockDataStream
    from alpaca.trading.stream import TradingStream

    data = StockDataStream(key, secret, feed=DataFeed.IEX, url_override=data_url)

    async def on_bar(b: Any) -> None:
        ctl.bar_queue.put((b.symbol, pd.Timestamp(b.timestamp).tz_convert("UTC"), _bar_dict(b)))

    data.subscribe_bars(on_bar, *symbols)
    trades = TradingStream(key, secret, paper=paper, url_override=trade_url)

    async def on_update(u: Any) -> None:
        ctl.on_trade_update(u)

    trades.subscribe_trade_updates(on_update)
    # alpaca-py reconnects the trade_updates websocket by itself and offers no hook; wrap the instance's connect
    # step so that the controller hears of each (re)connection and has the traders reconcile
    start_ws = trades._start_ws

    async def start_ws_and_tell() -> None:
        await start_ws()
        ctl.on_trade_stream_connected()

    trades._start_ws = start_ws_and_tell
    for s in (data, trades):
        threading.Thread(target=s.run, daemon=True, name=type(s).__name__).start()
    return [data, trades]


def stop_streams(streams: list[Any]) -> None:
    """Stop the alpaca-py streams; their reconnect chatter at shutdown is muted."""
    logging.getLogger("alpaca").setLevel(logging.CRITICAL)
    for s in streams:
        try:
            s.stop()
        except Exception:  # a stream that never connected has nothing to stop
            pass


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------
def _restart_count(text: str) -> int:
    """``--max-restarts``: an integer >= 0 (argparse type)."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return n


def _window_mins(text: str) -> float:
    """``--restart-window-mins``: a positive number of minutes (argparse type)."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of minutes, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="controller.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--pairs", default="pairs.json", help="pairs file")
    ap.add_argument("--params", default="optimized_params.json", help="optimizer output")
    ap.add_argument("--exchange", choices=["local", "alpaca"], default="local",
                    help="local: in-process paper exchange replaying bars; alpaca: Alpaca with keys from .env")
    ap.add_argument("--exchange-url", default=None, metavar="URL",
                    help="with --exchange local: connect to a local exchange already running as its own process "
                         "(python -m pairtrade.exchange --state FILE ...) and drive its lockstep replay instead of "
                         "starting one in-process; its account and replay clock survive a restart of the "
                         "controller. The exchange owns the data, range, cash and costs")
    ap.add_argument("--live", action="store_true", help="with --exchange alpaca: trade the LIVE (real money) account")
    ap.add_argument("--data", default=None, help="bars file to replay (default: the embedded arch data)")
    ap.add_argument("--price-column", default=None,
                    help="price column of --data, as given to optimizer.py (e.g. 'Adj Close')")
    ap.add_argument("--start", default=None,
                    help="replay start (ISO, UTC if naive); default: end of the optimizer's in-sample range")
    ap.add_argument("--end", default=None, help="replay end (ISO); default: end of the data")
    ap.add_argument("--run-dir", default=None, help="output folder (default runs/<UTC time>)")
    ap.add_argument("--cash", type=float, default=100_000.0, help="local exchange starting cash, USD")
    ap.add_argument("--stagger-secs", type=float, default=None,
                    help="pause between trader starts (default 0.2 local, 2 alpaca)")
    ap.add_argument("--max-restarts", type=_restart_count, default=5,
                    help="restart budget: a trader that dies after this many restarts within --restart-window-mins "
                         "is given up and its pair's legs are flattened")
    ap.add_argument("--restart-window-mins", type=_window_mins, default=60.0,
                    help="rolling window of the restart budget; older restarts no longer count")
    ap.add_argument("--rate-limit-per-min", type=int, default=None,
                    help="local exchange: enforce this many REST requests per wall-clock minute (Alpaca: 200)")
    ap.add_argument("--equity-interval-mins", type=float, default=60.0, help="Telegram equity update period")
    ap.add_argument("--env-file", default=".env")
    ap.add_argument("--trade-rejected", action="store_true",
                    help="local exchange only: also trade pairs the optimizer rejected (a demo; default on for "
                         "the embedded data)")
    ap.add_argument("--no-demo", action="store_true", help="never trade a rejected pair, even on the embedded data")
    return ap


def replay_range(bs: BarSet, pf: ParamsFile, start: str | None, end: str | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Replay range of the local exchange: by default the out-of-sample bars after the optimizer's range.

    The exchange's clock starts at ``start``: every bar that has closed by then (bar start + bar
    length <= ``start``; bars are stamped with their start, as Alpaca's) is history for the traders'
    warm-up, and every bar starting in ``[start, end]`` is replayed.  The default ``start`` is the
    start time of the first bar of ``bs`` after ``pf.data.end`` (the last in-sample bar), so the
    last in-sample bar is history and no bar after it is skipped.  If no bar after the in-sample
    range starts before ``end``, the last month (intraday) or last year (daily) before ``end`` is
    replayed instead (never starting before the first allowed time below).

    The first allowed start is the time by which every symbol of ``bs`` has one closed bar (the
    latest first-bar start + one bar length): a trader needs history to warm up on, and a start
    before it (before the data) would make every trader fail its warm-up and be restarted until it
    is given up.  An explicit ``start`` at or before the last in-sample bar is allowed (it replays
    bars the optimizer chose its parameters on, so those results are in-sample) and logged as a
    warning naming the first out-of-sample bar.

    Parameters
    ----------
    bs : the bars to replay (already restricted to regular hours)
    pf : the optimizer's params file (``data.end``: ISO UTC start time of the last in-sample bar)
    start, end : ``--start`` / ``--end`` (ISO; naive = UTC) or None

    Returns
    -------
    (start, end) : tz-aware UTC timestamps

    Raises
    ------
    DataError
        Unparseable times; a symbol without bars; a start before the first allowed time (the message
        names it, the data's first bar and the default start); an empty range (start >= end); no bar
        starting in ``[start, end]``.
    """
    ts = parse_utc
    empty = sorted(sym for sym, df in bs.bars.items() if not len(df))
    if empty or not bs.bars:
        raise DataError(f"{bs.source}: no bars in regular trading hours for {', '.join(empty) or 'any symbol'}; "
                        f"expected bars inside the exchange's sessions to replay")
    step = pd.Timedelta(seconds=bar_seconds(bs.bar_size))
    first_sym, first_bar = max(((sym, df.index[0]) for sym, df in bs.bars.items()), key=lambda kv: kv[1])
    first_allowed = first_bar + step  # every symbol has at least one closed bar of history by then
    in_sample_end = ts(pf.data.end, "data.end of the params file")
    later = [df.index[df.index > in_sample_end] for df in bs.bars.values()]
    firsts = [ix[0] for ix in later if len(ix)]
    oos_start = min(firsts) if firsts else in_sample_end + step  # the first out-of-sample bar
    e = ts(end, "--end") if end else bs.end
    if start:
        s = ts(start, "--start")
        if s < first_allowed:
            raise DataError(
                f"--start {start} ({s} UTC) is before the first allowed time {first_allowed} UTC: {bs.source} "
                f"begins with {first_sym}'s bar at {first_bar}, and the traders warm up on the bars closed by the "
                f"start; expected --start >= {first_allowed} (default: {max(oos_start, first_allowed)}, the "
                f"first bar after the optimizer's in-sample range)")
        if s <= in_sample_end:
            log.warning("--start %s is inside the optimizer's in-sample range (last in-sample bar %s): the replay "
                        "until then trades bars the parameters were chosen on (in-sample results); the first "
                        "out-of-sample bar starts at %s", s, in_sample_end, oos_start)
    else:
        s = oos_start
        if s < first_allowed:
            raise DataError(
                f"the params file's in-sample range ends at {pf.data.end}, before {bs.source} begins "
                f"({first_sym}'s first bar at {first_bar}): the traders would have no history to warm up on; "
                f"run optimizer.py on this data, or give --start >= {first_allowed} UTC (the first allowed time)")
        if s >= e:  # nothing out-of-sample to replay
            s = e - (pd.DateOffset(years=1) if bar_seconds(bs.bar_size) >= 86400 else pd.DateOffset(months=1))
            s = max(s, first_allowed)
    if s >= e:
        raise DataError(f"replay range is empty: start {s} >= end {e}; expected --start before --end")
    if not any(((df.index >= s) & (df.index <= e)).any() for df in bs.bars.values()):
        raise DataError(f"no bar of {bs.source} starts in the replay range {s} .. {e} (UTC); the data run from "
                        f"{bs.start} to {bs.end}: expected --start/--end inside the data")
    return s, e


def _equity_from_client(client: Any) -> tuple[float, float, dict[str, float]]:
    """``(cash, equity, {symbol: qty})`` through alpaca-py (USD, shares)."""
    cash, equity, positions, _ = _account_from_client(client)
    return cash, equity, positions


def _account_from_client(client: Any) -> tuple[float, float, dict[str, float], dict[str, float]]:
    acct = client.get_account()
    ps = client.get_all_positions()
    positions = {p.symbol: float(p.qty) for p in ps}
    values = {p.symbol: float(p.market_value) if p.market_value is not None else float("nan") for p in ps}
    return float(acct.cash), float(acct.equity), positions, values


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s controller: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("alpaca").setLevel(logging.WARNING)
    from pairtrade.live.secrets import MissingKeys, load_env, load_keys

    load_env(args.env_file)
    try:
        # the replay range's own checks: one line, before any file is read (replay_range checks it against the data)
        t_start, t_end = (parse_utc(v, opt) if v else None for opt, v in (("--start", args.start), ("--end", args.end)))
        if t_start is not None and t_end is not None and t_start >= t_end:
            raise ConfigError(f"--start {args.start} is not before --end {args.end} (UTC {t_start} >= {t_end}); "
                              f"expected --start before --end")
        pairs_file = load_pairs(args.pairs)
        pf = load_params(args.params)
    except (ConfigError, DataError) as e:
        print(f"controller: {e}", file=sys.stderr)
        return 2
    tradable: list[PairSpec] = []
    # The embedded demo data (no --data, local exchange) has no cointegrated pair: the demo trades the rejected
    # pair so the first run shows the whole job, and says so. With any other data a rejected pair is never traded.
    args.demo = args.exchange == "local" and (args.trade_rejected or (not args.data and not args.exchange_url
                                                                     and not args.no_demo))
    for p in pairs_file.pairs:
        entry = pf.pairs.get(p.pair_id)
        if entry is None:
            print(f"skipping {p.pair_id}: no entry in {args.params} (run optimizer.py)")
        elif not entry.tradable and args.demo and entry.params is not None:
            print(f"DEMO: the optimizer rejected {p.pair_id} ({entry.reason}).\n"
                  f"DEMO: trading it anyway on the local paper exchange, with the parameters of its final "
                  f"walk-forward window, to show the pipeline. Never trade a rejected pair with money.")
            tradable.append(p)
        elif not entry.tradable:
            print(f"skipping {p.pair_id}: not tradable ({entry.reason})")
        else:
            tradable.append(p)
    if not tradable:
        print(f"controller: no tradable pair in {args.params}; nothing to do", file=sys.stderr)
        return 2
    if args.live and args.exchange != "alpaca":
        print("controller: --live needs --exchange alpaca", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir or f"runs/{pd.Timestamp.now(tz='UTC').strftime('%Y%m%dT%H%M%SZ')}")
    from pairtrade.notify import make_notifier

    notifier = make_notifier(os.environ.get("TELEGRAM_BOT_TOKEN"), os.environ.get("TELEGRAM_CHAT_ID"),
                             equity_interval_mins=args.equity_interval_mins)
    symbols = sorted({s for p in tradable for s in (p.y, p.x)})
    try:
        if args.exchange == "local":
            return run_local(args, pf, tradable, symbols, run_dir, notifier)
        key, secret = load_keys(local=False)
        return run_alpaca(args, pf, tradable, symbols, run_dir, notifier, key, secret)
    except (DataError, MissingKeys, ConfigError) as e:
        print(f"controller: {e}", file=sys.stderr)
        return 2


def _install_signals(ctl: Controller) -> None:
    def handler(signum: int, frame: Any) -> None:
        log.warning("signal %s received: stopping traders cleanly", signal.Signals(signum).name)
        ctl.stop_requested.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def connect_exchange(args: argparse.Namespace, pf: ParamsFile, symbols: list[str]) -> tuple[Any, str, Any, Any]:
    """``--exchange-url``: the already running local exchange, checked against the params file.

    The exchange (``python -m pairtrade.exchange``) owns the bars, the replay range, the account
    and its clock; the controller drives its lockstep replay over ``POST /_local/advance`` exactly
    as it drives the in-process exchange, from wherever the exchange's clock stands (after a
    controller restart: where the previous controller stopped; no bar is replayed twice).

    Returns
    -------
    (exchange, data source, replay start, replay end)
        a :class:`~pairtrade.exchange.RemoteExchange`; times as tz-aware UTC timestamps.

    Raises
    ------
    DataError
        Nothing (or not a local exchange) at the URL; it lacks a traded symbol, has another bar
        size, replays intraday bars outside regular hours, advances on its own (``--speed``), or
        ``--start``/``--end``/``--data`` disagree with what it replays.
    """
    from pairtrade.exchange import RemoteExchange
    from pairtrade.live.secrets import LOCAL_KEY, LOCAL_SECRET

    ex = RemoteExchange(args.exchange_url)
    if not ex.accepts_keys(LOCAL_KEY, LOCAL_SECRET):
        raise DataError(f"the exchange at {args.exchange_url} refuses the local keys of controller.py and trader.py; "
                        f"start it without --key/--secret (the defaults are those keys)")
    info = ex.info
    missing = [s for s in symbols if s not in info["symbols"]]
    if missing:
        raise DataError(f"the exchange at {args.exchange_url} does not replay {', '.join(missing)} "
                        f"(it has {', '.join(info['symbols'])})")
    if info["bar_size"] != pf.bar_size:
        raise DataError(f"the exchange at {args.exchange_url} replays {info['bar_size']} bars but {args.params} was "
                        f"optimised on {pf.bar_size} bars")
    if bar_seconds(pf.bar_size) < 86400 and not info["regular_hours"]:
        raise DataError(f"the exchange at {args.exchange_url} replays bars outside regular hours; start it with "
                        f"--regular-hours (the traders and the optimizer use regular-hours bars only)")
    if info["speed"] is not None:
        raise DataError(f"the exchange at {args.exchange_url} advances on its own (--speed {info['speed']}); the "
                        f"controller's lockstep replay needs an exchange started without --speed")
    start = parse_utc(info["start"], "the exchange's replay start")
    end = parse_utc(info["end"] or info["last_bar"], "the exchange's replay end")
    for opt, given, have in (("--start", args.start, start), ("--end", args.end, end)):
        if given and parse_utc(given, opt) != have:
            raise DataError(f"{opt} {given} differs from the replay of the exchange at {args.exchange_url} "
                            f"({have}); drop {opt} (the exchange owns the replay range)")
    if args.data and str(Path(args.data).resolve()) not in info["source"]:
        raise DataError(f"--data {args.data} is not what the exchange at {args.exchange_url} replays "
                        f"({info['source']}); drop --data")
    if info["costs"] != pf.costs.model_dump(mode="json"):
        log.warning("the exchange's cost model differs from %s (start it with --params %s for identical fills)",
                    args.params, args.params)
    print(f"connected to {ex.describe()}\n  symbols {', '.join(symbols)}, replay {start} -> {end}; "
          f"{info['bars_total'] - info['cursor']} bar timestamps left")
    return ex, info["source"], start, end


def run_local(args: argparse.Namespace, pf: ParamsFile, tradable: list[PairSpec], symbols: list[str],
              run_dir: Path, notifier: Any) -> int:
    from alpaca.trading.client import TradingClient

    from pairtrade.data.bars import embedded_bars, load_bars
    from pairtrade.exchange import LocalExchange
    from pairtrade.live.secrets import LOCAL_KEY, LOCAL_SECRET

    if getattr(args, "exchange_url", None):
        ex, source, start, end = connect_exchange(args, pf, symbols)
    else:
        bs = load_bars(args.data, symbols=symbols, price_column=args.price_column) if args.data else embedded_bars()
        for s in symbols:
            bs.require(s)
        if bs.bar_size != pf.bar_size:
            raise DataError(f"{args.data or 'embedded data'} has {bs.bar_size} bars but {args.params} was optimised "
                            f"on {pf.bar_size} bars; run optimizer.py on the same data")
        bs = dataclasses.replace(bs, bars={s: regular_hours(bs.bars[s], bs.bar_size) for s in symbols})
        start, end = replay_range(bs, pf, args.start, args.end)
        # The lockstep replay compresses weeks into seconds, so Alpaca's 200 requests/min (wall clock) would
        # throttle a replay that is well within budget in market time; --rate-limit-per-min turns it on.
        ex = LocalExchange(bs, start=start, end=end, cash=args.cash, costs=pf.costs, key=LOCAL_KEY,
                           secret=LOCAL_SECRET, rate_limit_per_min=args.rate_limit_per_min)
        ex.start()
        source = bs.source
        print(f"replaying {bs.source}\n  symbols {', '.join(symbols)}, {bs.bar_size} bars, regular hours, "
              f"{start} -> {end} (the optimizer's in-sample range is {pf.data.start} .. {pf.data.end}, last bar "
              f"start; the traders warm up on every closed bar from {pf.data.start})")
    print(f"local paper exchange on {ex.base_url}; run dir {run_dir}")
    ctl = Controller(tradable, Path(args.params).resolve(), pf, run_dir, ex.base_url, LOCAL_KEY, LOCAL_SECRET,
                     stagger_secs=0.2 if args.stagger_secs is None else args.stagger_secs,
                     max_restarts=args.max_restarts, notifier=notifier, demo=args.demo,
                     restart_window_secs=60.0 * args.restart_window_mins)
    _install_signals(ctl)
    streams = start_streams(ctl, LOCAL_KEY, LOCAL_SECRET, ex.data_stream_url, ex.trade_stream_url, symbols, True)
    client = bound_rest_time(TradingClient(LOCAL_KEY, LOCAL_SECRET, paper=True, url_override=ex.base_url))
    stats = {"bars": 0, "stale_timestamps": 0}
    t0 = time.monotonic()
    try:
        ctl.start_all()
        pending: dict[tuple[str, pd.Timestamp], dict] = {}
        from tqdm import tqdm

        snap0 = ex.account_snapshot()
        total = snap0["bars_total"] - snap0["cursor"]
        bar = tqdm(total=total, desc="replay", unit="bar", disable=not sys.stderr.isatty())
        while not ctl.stop_requested.is_set():
            pub = ex.advance()
            if pub is None:
                break
            bar.update(1)
            stats["bars"] += 1
            want = {s for s in pub.bars if s in ctl.symbol_pairs}
            got: dict[str, dict] = {}
            deadline = time.monotonic() + 10.0
            while want - set(got) and time.monotonic() < deadline:
                for key_ in [k for k in pending if k[1] == pub.timestamp]:
                    got[key_[0]] = pending.pop(key_)
                if not (want - set(got)):
                    break
                try:
                    sym, t, b = ctl.bar_queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                if t == pub.timestamp:
                    got[sym] = b
                elif t > pub.timestamp:
                    pending[(sym, t)] = b
            if want - set(got):
                # the websocket is silent (zombie): use the exchange's record so the books stay right
                stats["stale_timestamps"] += 1
                ctl.run.event({"type": "event", "event": "stream_stale", "t": str(pub.timestamp),
                               "missing": sorted(want - set(got))})
                for s in want - set(got):
                    b = pub.bars[s]
                    got[s] = {"o": b["open"], "h": b["high"], "l": b["low"], "c": b["close"], "v": b["volume"]}
            ctl.dispatch(pub.timestamp, got)
            cash, equity, positions = ex.account_summary()
            ctl.run.equity(pub.clock, cash, equity)
            notifier.maybe_notify_equity(pub.clock, equity, cash, positions)
        bar.close()
    finally:
        ctl.shutdown()
        stop_streams(streams)
        summary = write_summary(ctl, client, ex, stats, time.monotonic() - t0, start, end, source)
        ex.stop()
        ctl.run.close()
        notifier.close()
    print_summary(summary)
    return 0 if not any(tp.given_up for tp in ctl.traders.values()) else 1


def write_summary(ctl: Controller, client: Any, ex: Any, stats: dict, elapsed: float, start: Any, end: Any,
                  source: str) -> dict:
    """summary.json: pairs, orders, fills, trades, realised PnL, final equity and the books check."""
    cash, equity, positions, values = _account_from_client(client)
    snap = ex.account_snapshot() if ex is not None else None
    if snap:  # marks independent of the venue's own valuation: quantity x last replayed close
        marks = {s: p["last_close"] for s, p in snap["positions"].items()}
        pos_value = sum(q * marks.get(s, float("nan")) for s, q in positions.items())
    else:
        pos_value = sum(values.values())
    orders = sum(1 for o in snap["orders"]) if snap else ctl.run.counts.get("order", 0)
    fills = len(snap["fills"]) if snap else ctl.run.counts.get("fill", 0)
    realised = sum(t["pnl_usd"] for t in ctl.run.trades)
    summary = {
        "data": source, "replay_start": str(start), "replay_end": str(end), "bars_replayed": stats["bars"],
        "stale_timestamps": stats["stale_timestamps"], "elapsed_secs": round(elapsed, 2),
        "pairs": [tp.pair_id for tp in ctl.traders.values()],
        "pairs_given_up": [tp.pair_id for tp in ctl.traders.values() if tp.given_up],
        "trader_restarts": {tp.pair_id: tp.restarts for tp in ctl.traders.values()},
        "orders": orders, "fills": fills, "trades": len(ctl.run.trades),
        "open_orders_at_end": sum(1 for o in snap["orders"] if o.get("status") in ("new", "accepted", "pending_new",
                                                                                  "partially_filled")) if snap else None,
        "realized_pnl_usd": round(realised, 2),
        "per_pair": {pid: {"trades": sum(1 for t in ctl.run.trades if t["pair"] == pid),
                           "realized_pnl_usd": round(sum(t["pnl_usd"] for t in ctl.run.trades if t["pair"] == pid), 2)}
                     for pid in ctl.traders},
        "cash_usd": round(cash, 2), "positions": positions, "positions_value_usd": round(pos_value, 2),
        "final_equity_usd": round(equity, 2),
        "books_balance": bool(math.isclose(cash + pos_value, equity, abs_tol=0.01)),
        "events": dict(ctl.run.counts),
    }
    (ctl.run.dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def print_summary(s: dict) -> None:
    print("\n=== run summary ===")
    print(f"data: {s['data']}")
    print(f"replayed {s['bars_replayed']} bar timestamps {s['replay_start']} -> {s['replay_end']} "
          f"in {s['elapsed_secs']} s")
    for pid, v in s["per_pair"].items():
        print(f"  {pid:<12} trades {v['trades']:>3}  realised PnL {v['realized_pnl_usd']:>10.2f} USD")
    if s.get("open_orders_at_end"):
        print(f"{s['open_orders_at_end']} order(s) submitted on the last bar were still open when the replay ended")
    print(f"orders {s['orders']}, fills {s['fills']}, round trips {s['trades']}, "
          f"realised PnL {s['realized_pnl_usd']:.2f} USD")
    print(f"final equity {s['final_equity_usd']:.2f} USD = cash {s['cash_usd']:.2f} + positions "
          f"{s['positions_value_usd']:.2f} (books balance: {s['books_balance']})")


def run_alpaca(args: argparse.Namespace, pf: ParamsFile, tradable: list[PairSpec], symbols: list[str],
               run_dir: Path, notifier: Any, key: str, secret: str) -> int:
    """Trade Alpaca (paper unless --live) until SIGINT/SIGTERM; 1-minute IEX bars are aggregated to the
    params' bar size and only regular-hours bars are passed on."""
    from alpaca.trading.client import TradingClient

    paper = not args.live
    print(f"trading Alpaca {'PAPER' if paper else 'LIVE (real money)'}; pairs {', '.join(p.pair_id for p in tradable)}")
    ctl = Controller(tradable, Path(args.params).resolve(), pf, run_dir, None, key, secret,
                     stagger_secs=2.0 if args.stagger_secs is None else args.stagger_secs,
                     max_restarts=args.max_restarts, live=args.live, notifier=notifier,
                     restart_window_secs=60.0 * args.restart_window_mins, lockstep=False)
    _install_signals(ctl)
    streams = start_streams(ctl, key, secret, None, None, symbols, paper)
    client = bound_rest_time(TradingClient(key, secret, paper=paper))
    secs = bar_seconds(pf.bar_size)
    buckets: dict[pd.Timestamp, dict[str, dict]] = {}
    t0 = time.monotonic()
    stats = {"bars": 0, "stale_timestamps": 0}
    last_equity = 0.0
    try:
        ctl.start_all()
        while not ctl.stop_requested.is_set():
            try:
                sym, t, b = ctl.bar_queue.get(timeout=1.0)
            except queue.Empty:
                sym = None
            ctl.service()  # traders' messages, deaths and restarts between bars
            if sym is not None:
                start = t.floor(f"{secs}s") if secs < 86400 else t.normalize()
                cur = buckets.setdefault(start, {})
                if sym in cur:
                    c = cur[sym]
                    cur[sym] = {"o": c["o"], "h": max(c["h"], b["h"]), "l": min(c["l"], b["l"]), "c": b["c"],
                                "v": c["v"] + b["v"]}
                else:
                    cur[sym] = b
            now = pd.Timestamp.now(tz="UTC")
            for start in sorted(k for k in buckets if k + pd.Timedelta(seconds=secs) + pd.Timedelta(seconds=5) <= now):
                got = buckets.pop(start)
                if len(regular_hours(pd.DataFrame(index=pd.DatetimeIndex([start])).assign(x=0), pf.bar_size)) == 0:
                    continue
                stats["bars"] += 1
                ctl.dispatch(start, got)
            if time.monotonic() - last_equity > 60:
                last_equity = time.monotonic()
                try:
                    cash, equity, positions = _equity_from_client(client)
                    ctl.run.equity(now, cash, equity)
                    notifier.maybe_notify_equity(now, equity, cash, positions)
                except Exception as e:  # a failed account poll must not stop trading
                    log.warning("account poll failed: %s", type(e).__name__)
    finally:
        ctl.shutdown()
        stop_streams(streams)
        summary = write_summary(ctl, client, None, stats, time.monotonic() - t0, "-", "-", "Alpaca IEX stream")
        ctl.run.close()
        notifier.close()
    print_summary(summary)
    return 0
