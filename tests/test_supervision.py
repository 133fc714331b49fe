"""Supervision of the trader processes (issue 7, finding 5 and 6): incarnations, dead-process detection,
concurrent per-trader ack timeouts, a restart budget that recovers, flattening a given-up pair, REST timeouts.

The traders here are small stand-in processes speaking the trader protocol (JSON lines on stdin/stdout,
see :mod:`pairtrade.live.trader`) with scripted faults, so every race is reproduced on purpose and fast.
Each stand-in takes an exclusive ``flock`` on ``<work>/<pair>.lock`` at start: a second live process for
the same pair cannot get it and records itself in ``<work>/doubles`` -- the kernel, not our code, says
whether two processes of one pair were alive at once.  The give-up test runs the real alpaca-py client
against the local exchange on simulated bars (fixed seed).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from pairtrade.config import SCHEMA_VERSION, CostModel, PairSpec, ParamsFile, StrategyParams, atomic_write_json
from pairtrade.live.controller import Controller
from pairtrade.broker.alpaca import bound_rest_time
from pairtrade.live.supervisor import RestartBudget, backoff_secs

FAKE_TRADER = r'''
import fcntl, json, os, sys, time
pair, work, mode = sys.argv[1], sys.argv[2], sys.argv[3]
n = int(sys.argv[4]) if sys.argv[4].isdigit() else 0
crash_times = set(sys.argv[4].split(","))
restart_ready_delay = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0

def record(name, text):
    with open(os.path.join(work, name), "a") as f:
        f.write(text + "\n")

lock = open(os.path.join(work, pair + ".lock"), "w")
deadline = time.monotonic() + 1.0
while True:  # a dying predecessor may need a moment to release it; a live one never does
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except BlockingIOError:
        if time.monotonic() > deadline:
            record("doubles", f"{pair} {os.getpid()}")
            break
        time.sleep(0.02)
marker = os.path.join(work, pair + ".faulted")
first = not os.path.exists(marker)
record("starts", f"{pair} {os.getpid()}")
if mode == "exit_at_start":
    os._exit(3)
if not first:
    time.sleep(restart_ready_delay)

def emit(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()

emit({"type": "ready", "pair": pair})
bars = 0
for line in sys.stdin:
    msg = json.loads(line)
    if msg["type"] == "stop":
        emit({"type": "stopped", "pair": pair})
        break
    if msg["type"] != "bars":
        continue
    bars += 1
    record(pair + ".bars", msg["t"])
    if mode == "exit_at_bars":  # crash once at each listed bar time, in whichever process gets it
        mark = os.path.join(work, pair + ".faulted." + msg["t"].replace(":", ""))
        if msg["t"] in crash_times and not os.path.exists(mark):
            open(mark, "w").close()
            os._exit(3)
    fault = bars == n and first
    if fault:
        open(marker, "w").close()
    if fault and mode == "exit_before_ack":
        os._exit(3)
    if fault and mode == "orphan_stdout":
        if os.fork() == 0:  # a child that inherited stdout outlives the trader: no end of output
            lock.close()
            record(pair + ".orphan", str(os.getpid()))
            time.sleep(120)
            os._exit(0)
        time.sleep(0.2)
        os._exit(3)
    if fault and mode == "hang":
        time.sleep(600)
    emit({"type": "ack", "t": msg["t"]})
    if fault and mode == "exit_after_ack":
        os._exit(3)  # dies between two bars
'''


def write_params(path: Path, pairs: list[tuple[str, str]]) -> ParamsFile:
    params = StrategyParams(entry_z=2.0, exit_z=0.5, stop_z=4.0)
    pf = ParamsFile(schema_version=SCHEMA_VERSION, generated_at="2026-01-01T00:00:00+00:00", bar_size="5Min",
                    data={"source": "test", "start": "2025-01-02T14:30:00+00:00", "end": "2025-01-03T21:00:00+00:00"},
                    costs=CostModel(),
                    pairs={f"{y}-{x}": {"y": y, "x": x, "tradable": True, "params": params} for y, x in pairs})
    atomic_write_json(path, pf)
    return pf


class Alerts:
    """Stands in for the Telegram notifier: keeps the alerts."""

    def __init__(self) -> None:
        self.alerts: list[str] = []

    def notify_alert(self, text: str) -> None:
        self.alerts.append(text)


def make_controller(tmp_path: Path, pairs: list[tuple[str, str]], modes: dict[str, tuple], trading_url=None,
                    key="k", secret="s", **kw) -> Controller:
    """A Controller whose traders are the scripted stand-ins; ``modes``: pair_id -> (mode, n[, restart delay])."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    script = tmp_path / "fake_trader.py"
    script.write_text(FAKE_TRADER)
    pf = write_params(tmp_path / "params.json", pairs)
    kw.setdefault("stagger_secs", 0.0)
    ctl = Controller([PairSpec(y=y, x=x) for y, x in pairs], tmp_path / "params.json", pf, tmp_path / "run",
                     trading_url, key, secret, **kw)
    for pid, tp in ctl.traders.items():
        mode = modes.get(pid, ("ok", 0))
        tp.cmd = [sys.executable, str(script), pid, str(work), mode[0], str(mode[1]), *map(str, mode[2:])]
    return ctl


T0 = pd.Timestamp("2025-01-06T14:30:00", tz="UTC")


def bar_at(i: int, symbols) -> tuple[pd.Timestamp, dict]:
    return T0 + pd.Timedelta(minutes=5 * i), {s: {"o": 10.0, "h": 10.0, "l": 10.0, "c": 10.0, "v": 100.0}
                                             for s in symbols}


def events(ctl: Controller) -> list[dict]:
    return [json.loads(line) for line in open(ctl.run.dir / "events.jsonl")]


def running(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def no_doubles(tmp_path: Path) -> None:
    doubles = tmp_path / "work" / "doubles"
    assert not doubles.exists(), f"two live processes for one pair: {doubles.read_text()}"


def finish(ctl: Controller, tmp_path: Path) -> None:
    ctl.shutdown()
    ctl.run.close()
    no_doubles(tmp_path)
    for tp in ctl.traders.values():
        for pid in tp.pids:
            assert not running(pid), f"{tp.pair_id}: process {pid} still running after shutdown"


# ----------------------------------------------------------------------------------------------
# 1. messages belong to one incarnation; never two processes for one pair
# ----------------------------------------------------------------------------------------------
def test_end_of_output_of_a_dead_trader_never_spawns_a_second_process(tmp_path):
    """Finding 5a: the dead process's end-of-output marker made the next start look failed."""
    ctl = make_controller(tmp_path, [("AAA", "BBB")], {"AAA-BBB": ("exit_after_ack", 2)})
    try:
        ctl.start_all()
        for i in range(6):
            t, bars = bar_at(i, ["AAA", "BBB"])
            ctl.dispatch(t, bars)
            time.sleep(0.2)  # the trader dies between two bars; its end of output waits in the pipe
    finally:
        finish(ctl, tmp_path)
    tp = ctl.traders["AAA-BBB"]
    ev = events(ctl)
    started = [e["pid"] for e in ev if e.get("event") == "trader_started"]
    assert len(tp.pids) == 2 and started == tp.pids  # the first process and exactly one restart
    assert tp.restarts == 1 and not tp.given_up
    assert not [e for e in ev if e.get("event") == "trader_failed_start"]
    # every bar reached a live trader: bars 0-1 the first process, 2-5 the second
    got = (tmp_path / "work" / "AAA-BBB.bars").read_text().split()
    assert got == [bar_at(i, [])[0].isoformat() for i in range(6)]


# ----------------------------------------------------------------------------------------------
# 2. a dead trader is noticed at once, even when its output stays open
# ----------------------------------------------------------------------------------------------
def test_dead_trader_whose_output_stays_open_is_noticed_at_once(tmp_path):
    """Finding 5b: a dead trader counted as alive and the replay froze for the ack timeout."""
    ctl = make_controller(tmp_path, [("AAA", "BBB")], {"AAA-BBB": ("orphan_stdout", 2)}, ack_timeout_secs=20.0)
    try:
        ctl.start_all()
        took = []
        for i in range(4):
            t, bars = bar_at(i, ["AAA", "BBB"])
            t0 = time.monotonic()
            ctl.dispatch(t, bars)
            took.append(time.monotonic() - t0)
        orphan = int((tmp_path / "work" / "AAA-BBB.orphan").read_text())
    finally:
        finish(ctl, tmp_path)
    # death noticed by polling the process, restart after the 0.5 s backoff, the bar re-sent and acknowledged
    assert took[1] < 5.0, took
    tp = ctl.traders["AAA-BBB"]
    assert tp.restarts == 1 and len(tp.pids) == 2
    deadline = time.monotonic() + 3
    while running(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(orphan)  # the trader's process group died with it


def test_stop_request_interrupts_the_wait_for_a_hung_trader(tmp_path):
    """Finding 5b: SIGTERM during the freeze took 110 s; now the wait ends at once and shutdown is bounded."""
    ctl = make_controller(tmp_path, [("AAA", "BBB")], {"AAA-BBB": ("hang", 2)}, ack_timeout_secs=60.0,
                          stop_timeout_secs=1.0)
    try:
        ctl.start_all()
        ctl.dispatch(*bar_at(0, ["AAA", "BBB"]))
        threading.Timer(0.5, ctl.stop_requested.set).start()  # what the SIGTERM handler does
        t0 = time.monotonic()
        ctl.dispatch(*bar_at(1, ["AAA", "BBB"]))
        waited = time.monotonic() - t0
        t1 = time.monotonic()
        ctl.shutdown()
        stopping = time.monotonic() - t1
    finally:
        finish(ctl, tmp_path)
    assert 0.4 < waited < 1.5, waited
    assert stopping < 1.0 + 3.0 + 1.0, stopping  # stop_timeout, then SIGTERM (3 s at most), then SIGKILL
    assert ctl.traders["AAA-BBB"].restarts == 0  # nothing is restarted after a stop request


# ----------------------------------------------------------------------------------------------
# 3. per-trader, concurrent ack timeouts
# ----------------------------------------------------------------------------------------------
def test_ack_timeouts_are_per_trader_and_concurrent(tmp_path):
    """Finding 5: acks were awaited trader after trader, 120 s each; two hung traders cost one timeout."""
    pairs = [("AAA", "BBB"), ("CCC", "DDD"), ("EEE", "FFF")]
    syms = [s for p in pairs for s in p]
    ctl = make_controller(tmp_path, pairs, {"AAA-BBB": ("hang", 2), "CCC-DDD": ("hang", 2)}, ack_timeout_secs=1.0,
                          lockstep=False)
    try:
        ctl.start_all()
        ctl.dispatch(*bar_at(0, syms))
        t0 = time.monotonic()
        ctl.dispatch(*bar_at(1, syms))
        took = time.monotonic() - t0
        ctl.sup.wait(ctl.sup.settled, max_secs=10)  # the two hung traders are killed and restarted
        for i in range(2, 4):
            ctl.dispatch(*bar_at(i, syms))
    finally:
        finish(ctl, tmp_path)
    assert 1.0 <= took < 1.8, took  # one timeout, not two
    ev = events(ctl)
    assert sorted(e["pair"] for e in ev if e.get("event") == "trader_unresponsive") == ["AAA-BBB", "CCC-DDD"]
    assert ctl.traders["EEE-FFF"].restarts == 0 and len(ctl.traders["EEE-FFF"].pids) == 1
    for pid in ("AAA-BBB", "CCC-DDD"):
        assert ctl.traders[pid].restarts == 1
        # the unacknowledged bar went to the new process, then every later bar
        got = (tmp_path / "work" / f"{pid}.bars").read_text().split()
        assert got == [bar_at(i, [])[0].isoformat() for i in (0, 1, 1, 2, 3)]


def test_a_restarting_trader_never_delays_the_others(tmp_path):
    """Without lockstep (Alpaca), bars of the healthy traders go on while one trader restarts slowly."""
    pairs = [("AAA", "BBB"), ("EEE", "FFF")]
    syms = [s for p in pairs for s in p]
    ctl = make_controller(tmp_path, pairs, {"AAA-BBB": ("exit_before_ack", 2, 1.5)}, lockstep=False)
    try:
        ctl.start_all()
        took = []
        for i in range(5):
            t0 = time.monotonic()
            ctl.dispatch(*bar_at(i, syms))
            took.append(time.monotonic() - t0)
        ctl.sup.wait(ctl.sup.settled, max_secs=10)  # once ready it gets the bars it missed, in order
    finally:
        finish(ctl, tmp_path)
    assert max(took) < 0.5, took
    assert (tmp_path / "work" / "EEE-FFF.bars").read_text().split() == [bar_at(i, [])[0].isoformat() for i in range(5)]
    assert (tmp_path / "work" / "AAA-BBB.bars").read_text().split() == [bar_at(i, [])[0].isoformat()
                                                                       for i in (0, 1, 1, 2, 3, 4)]


# ----------------------------------------------------------------------------------------------
# 4. a restart budget that recovers over time
# ----------------------------------------------------------------------------------------------
def test_restart_budget_is_a_rolling_window():
    b = RestartBudget(max_restarts=2, window_secs=10.0)
    assert b.allow(0.0) and b.record(0.0) == 1
    assert b.allow(1.0) and b.record(1.0) == 2
    assert not b.allow(9.9)  # two restarts in (−0.1, 9.9]
    assert b.allow(10.0) and b.count(10.0) == 1  # the restart at 0 is 10 s old: out of the window
    assert b.record(10.0) == 2 and not b.allow(10.5)
    assert b.count(21.0) == 0
    assert [backoff_secs(k) for k in (1, 2, 3, 7, 8)] == [0.5, 1.0, 2.0, 30.0, 30.0]
    with pytest.raises(ValueError, match="max_restarts"):
        RestartBudget(-1, 10.0)
    with pytest.raises(ValueError, match="window"):
        RestartBudget(1, 0.0)


@pytest.mark.parametrize("window_secs, given_up", [(0.6, False), (60.0, True)])
def test_restart_budget_recovers_after_healthy_running(tmp_path, window_secs, given_up):
    """Finding 5c: the restart counter never reset; a trader crashing now and then was eventually given up."""
    crash_at = ",".join(bar_at(i, [])[0].isoformat() for i in (1, 3))
    ctl = make_controller(tmp_path, [("AAA", "BBB")], {"AAA-BBB": ("exit_at_bars", crash_at)}, max_restarts=1,
                          restart_window_secs=window_secs)
    try:
        ctl.start_all()
        for i in range(5):  # the trader crashes at bars 1 and 3
            ctl.dispatch(*bar_at(i, ["AAA", "BBB"]))
            time.sleep(0.4)  # 0.8 s of healthy running after the first restart, then the second crash
    finally:
        finish(ctl, tmp_path)
    tp = ctl.traders["AAA-BBB"]
    assert tp.given_up is given_up
    assert tp.restarts == (1 if given_up else 2)


# ----------------------------------------------------------------------------------------------
# 5. giving up flattens the pair's own legs and alerts
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def exchange():
    from pairtrade.data.bars import BarSet
    from pairtrade.exchange import LocalExchange
    from pairtrade.research.simulate import random_walk_pair

    a = random_walk_pair(3, "5Min", seed=7, symbols=("AAA", "BBB"))
    c = random_walk_pair(3, "5Min", seed=8, symbols=("CCC", "DDD"))
    bars = {**a.bars, **c.bars}
    bs = BarSet(bars, "simulated (seed 7, 8)", "5Min")
    start = bars["AAA"].index[80]
    with LocalExchange(bs, start=start, key="k", secret="s", rate_limit_per_min=None) as ex:
        yield ex


def _fill(client, ex, orders: list[tuple[str, float, str]]) -> None:
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    for sym, q, cid in orders:
        client.submit_order(MarketOrderRequest(symbol=sym, qty=abs(q), side=OrderSide.BUY if q > 0 else OrderSide.SELL,
                                               time_in_force=TimeInForce.DAY, client_order_id=cid))
    ex.advance()


def _positions(client) -> dict[str, float]:
    return {p.symbol: float(p.qty) for p in client.get_all_positions()}


def test_given_up_pair_is_flattened_from_its_own_records_not_the_account(tmp_path, exchange):
    """Finding 6: a given-up pair kept its legs.  Pair AAA-BBB shares AAA with pair AAA-CCC; the state file
    of AAA-BBB is one fill behind (its BBB order filled after the trader's last save) and it has an open
    order.  Giving up must cancel that order, close exactly AAA-BBB's shares and leave AAA-CCC's alone."""
    from alpaca.trading.client import TradingClient

    from pairtrade.live.state import PendingOrder, TraderState

    pairs = [("AAA", "BBB"), ("AAA", "CCC")]
    alerts = Alerts()
    ctl = make_controller(tmp_path, pairs, {"AAA-BBB": ("exit_at_start", 0), "AAA-CCC": ("ok", 0)},
                          trading_url=exchange.base_url, max_restarts=1, notifier=alerts)
    client = TradingClient("k", "s", paper=True, url_override=exchange.base_url)
    ab, ac = f"{ctl.run_id}-AAA-BBB-", f"{ctl.run_id}-AAA-CCC-"
    _fill(client, exchange, [("AAA", 10, ab + "y1"), ("BBB", -6, ab + "x2"), ("AAA", -4, ac + "y1"),
                             ("CCC", 3, ac + "x2")])
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    client.submit_order(MarketOrderRequest(symbol="AAA", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                                           client_order_id=ab + "y3"))  # open: the next bar would fill it
    assert _positions(client) == {"AAA": 6.0, "BBB": -6.0, "CCC": 3.0}
    stored = TraderState("AAA-BBB", qty_y=10.0, qty_x=0.0,
                         pending=[PendingOrder(ab + "x2", "BBB", -6.0, status="accepted"),
                                  PendingOrder(ab + "y3", "AAA", 2.0, status="new")])
    ctl.pair_state = lambda tp: stored if tp.pair_id == "AAA-BBB" else None  # what its store holds
    try:
        ctl.start_all()
    finally:
        finish(ctl, tmp_path)
    tp = ctl.traders["AAA-BBB"]
    assert tp.given_up and tp.restarts == 1 and not ctl.traders["AAA-CCC"].given_up
    exchange.advance()
    # AAA-BBB is flat; AAA-CCC still holds its -4 AAA and +3 CCC; the open order never filled
    assert _positions(client) == {"AAA": -4.0, "CCC": 3.0}
    assert client.get_order_by_client_id(ab + "y3").status.value == "canceled"
    ev = [e for e in events(ctl) if e.get("event") == "pair_given_up"]
    assert len(ev) == 1 and ev[0]["pair"] == "AAA-BBB" and ev[0]["flattened"] is True
    assert ev[0]["holdings"] == {"AAA": 10.0, "BBB": -6.0} and ev[0]["holdings_source"] == "state"
    assert ev[0]["late_fills"] == {"BBB": -6.0} and ev[0]["cancelled"] == [ab + "y3"]
    assert sorted((o["symbol"], o["qty"]) for o in ev[0]["flatten_orders"]) == [("AAA", -10.0), ("BBB", 6.0)]
    assert len(alerts.alerts) == 1 and "AAA-BBB" in alerts.alerts[0] and "AAA -10" in alerts.alerts[0]
    # persist, then act: the closing orders are in the pair's ledger, for its next trader to follow
    ledger = ctl.pair_ledger(tp)
    recorded = {o.client_order_id: (o.symbol, o.qty, o.purpose) for o in ledger.orders()}
    ledger.close()
    assert {cid: recorded[cid] for cid in (o["client_order_id"] for o in ev[0]["flatten_orders"])} == {
        ab + "ygiveup": ("AAA", -10.0, "give_up"), ab + "xgiveup": ("BBB", 6.0, "give_up")}


def test_given_up_pair_without_state_is_flattened_from_its_last_report(tmp_path, exchange):
    """No readable state file: the position the trader last reported (its fill events) is closed."""
    from alpaca.trading.client import TradingClient

    alerts = Alerts()
    ctl = make_controller(tmp_path, [("AAA", "BBB")], {"AAA-BBB": ("exit_at_start", 0)},
                          trading_url=exchange.base_url, max_restarts=0, notifier=alerts)
    client = TradingClient("k", "s", paper=True, url_override=exchange.base_url)
    _fill(client, exchange, [("AAA", 5, "other-1"), ("BBB", -4, "other-2")])

    def unreadable(tp):
        raise ValueError("state.db: corrupt state of pair AAA-BBB")

    ctl.pair_state = unreadable
    ctl.traders["AAA-BBB"].reported = {"AAA": 5.0, "BBB": -4.0}  # as from its last fill event
    try:
        ctl.start_all()
    finally:
        finish(ctl, tmp_path)
    exchange.advance()
    assert _positions(client) == {}
    ev = [e for e in events(ctl) if e.get("event") == "pair_given_up"][0]
    assert ev["holdings_source"] == "reported" and ev["holdings"] == {"AAA": 5.0, "BBB": -4.0}
    assert "corrupt" in ev["state_error"] and ev["flattened"] is True
    assert "state file unreadable" in alerts.alerts[0] and "AAA -5" in alerts.alerts[0]


def test_fill_events_set_the_reported_position(tmp_path):
    ctl = make_controller(tmp_path, [("AAA", "BBB")], {})
    tp = ctl.traders["AAA-BBB"]
    ctl._on_message(tp, {"type": "event", "event": "fill", "pair": "AAA-BBB", "symbol": "AAA", "qty": 3,
                         "price": 10.0, "position_y": 3.0, "position_x": -2.0})
    assert tp.reported == {"AAA": 3.0, "BBB": -2.0}
    ctl.run.close()


# ----------------------------------------------------------------------------------------------
# 6. REST calls with timeouts
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    th.join()
    for c in conns:
        c.close()
    srv.close()


def test_alpaca_rest_calls_are_bounded_in_time(silent_server):
    """alpaca-py's REST client has no timeout: a silent server blocks a call for ever; bound_rest_time ends it."""
    import requests
    from alpaca.trading.client import TradingClient

    def call(client, out):
        try:
            client.get_account()
        except Exception as e:
            out.append(e)

    plain: list = []
    th = threading.Thread(target=call, args=(TradingClient("k", "s", url_override=silent_server), plain), daemon=True)
    th.start()
    th.join(1.5)
    assert th.is_alive() and not plain  # unbounded: still waiting

    bounded = bound_rest_time(TradingClient("k", "s", url_override=silent_server), connect_secs=1.0, read_secs=0.5)
    got: list = []
    t0 = time.monotonic()
    call(bounded, got)
    assert time.monotonic() - t0 < 3.0
    assert len(got) == 1 and isinstance(got[0], requests.exceptions.Timeout)
    with pytest.raises(TypeError, match="requests.Session"):
        bound_rest_time(object())
    with pytest.raises(ValueError, match="read_secs"):
        bound_rest_time(bounded, read_secs=0)


def test_controller_client_has_timeouts(tmp_path, silent_server):
    import requests

    ctl = make_controller(tmp_path, [("AAA", "BBB")], {}, trading_url=silent_server, rest_timeout_secs=0.5)
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        ctl.client().get_account()
    assert time.monotonic() - t0 < 7.0
    ctl.run.close()


def test_controller_cli_rejects_a_bad_restart_budget(tmp_path):
    from pairtrade.live.controller import build_parser

    for bad in (["--max-restarts", "-1"], ["--restart-window-mins", "0"], ["--restart-window-mins", "x"]):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(bad)
        assert e.value.code == 2
    args = build_parser().parse_args(["--max-restarts", "3", "--restart-window-mins", "15"])
    assert (args.max_restarts, args.restart_window_mins) == (3, 15.0)


def test_pair_state_reads_what_the_trader_stored(tmp_path):
    """The controller reads a given-up pair's orders from the trader's own store (under ``--state-dir``)."""
    from pairtrade.live.state import PendingOrder, StateStore, TraderState

    ctl = make_controller(tmp_path, [("AAA", "BBB"), ("AAA", "CCC")], {})
    tp = ctl.traders["AAA-BBB"]
    assert ctl.pair_state(tp) is None  # nothing stored yet
    p = PendingOrder(f"{ctl.run_id}-AAA-BBB-y1", "AAA", 4.0, status="new")
    q = PendingOrder(f"{ctl.run_id}-AAA-CCC-y1", "AAA", -3.0, status="new")
    StateStore(ctl.state_dir, "AAA-BBB").save(TraderState("AAA-BBB", realized_pnl=1.5, pending=[p]), orders=[p])
    StateStore(ctl.state_dir, "AAA-CCC").save(TraderState("AAA-CCC", pending=[q]), orders=[q])
    st = ctl.pair_state(tp)
    assert st.realized_pnl == 1.5 and [o.client_order_id for o in st.pending] == [p.client_order_id]
    ctl.run.close()
