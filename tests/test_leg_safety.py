"""Never a naked leg (issue 7): the trader through the real alpaca-py clients against the local exchange's faults.

Each test drives one or more :class:`~pairtrade.live.trader.Trader` objects bar by bar as the controller's
lockstep loop does (advance the exchange, route the trade updates, hand each trader its bars) and judges them by
the exchange's own books (positions, orders, fills), which the trader does not write.  The faults are the
exchange's (:class:`pairtrade.exchange.faults.ExchangeFaults`), seen by the trader exactly as Alpaca would send
them through alpaca-py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pairtrade.broker.alpaca import AlpacaBroker, OrderInfo
from pairtrade.config import SCHEMA_VERSION, CostModel, PairSpec, ParamsFile, StrategyParams, atomic_write_json
from pairtrade.live.ledger import StateStore
from pairtrade.live.trader import LegSafety, Trader
from pairtrade.strategy.kernel import S_ENTRY_PX_X, S_ENTRY_PX_Y
from tests.conftest import EQUITIES_5MIN, ROOT, shared_file

# Small windows and a low entry threshold: the pair trades every few bars, so faults meet orders quickly.
PARAMS = StrategyParams(entry_z=1.0, exit_z=0.2, stop_z=4.0, zscore_window_bars=30, adf_window_bars=60,
                        hurst_window_bars=30, warmup_bars=60)
START = "2025-12-15T14:30:00"
FAST = LegSafety(submit_retry_secs=(0.01, 0.01))


@pytest.fixture(scope="module")
def bars():
    from pairtrade.data.bars import load_bars

    return load_bars(shared_file(EQUITIES_5MIN), symbols=["GS", "MS", "JPM", "BAC"])


class Rig:
    """A local exchange, an alpaca-py broker and traders, stepped in lockstep like the controller.

    Trade updates of the exchange are routed to the trader owning the ``client_order_id`` (as the
    controller's TradingStream callback does).  After every bar the rig records, per pair, whether
    the exchange holds exactly one of its legs (``naked_run``: the longest run of such bars); for a
    pair sharing a symbol with another pair of the rig, the pair's own fills in the ledger are judged
    instead (the tests check the ledger against the exchange's books separately).
    """

    def __init__(self, bs, state_dir: Path, pairs=(("GS", "MS"),), params=PARAMS, safety=FAST, start=START,
                 run_id="r1", key="k", secret="s"):
        from pairtrade.exchange import LocalExchange

        self.ex = LocalExchange(bs, start=start, key=key, secret=secret, rate_limit_per_min=None)
        self.ex.start()
        self.lock = threading.Lock()
        self.updates: list[dict] = []
        self.ex.engine.listeners.append(self._on_update)
        self.broker = AlpacaBroker(key, secret, trading_url=self.ex.base_url, data_url=self.ex.base_url,
                                   retry_wait_secs=0.01)
        self.state_dir = state_dir
        self.params, self.safety, self.run_id = params, safety, run_id
        self.msgs: list[dict] = []
        self.traders: dict[str, Trader] = {}
        self.naked: dict[str, int] = {}
        self.naked_run: dict[str, int] = {}
        self.t: pd.Timestamp | None = None
        for y, x in pairs:
            self.add(y, x)

    def _on_update(self, payload: dict) -> None:
        with self.lock:
            self.updates.append(payload)

    def add(self, y: str, x: str, **kw) -> Trader:
        pair = PairSpec(y=y, x=x)
        t = Trader(pair, kw.get("params", self.params), "5Min", self.broker, StateStore(self.state_dir, pair.pair_id),
                   self.msgs.append, run_id=kw.get("run_id", self.run_id), safety=kw.get("safety", self.safety))
        t.start()
        self.traders[pair.pair_id] = t
        self.naked[pair.pair_id] = self.naked_run[pair.pair_id] = 0
        return t

    def route(self) -> None:
        with self.lock:
            ups, self.updates = self.updates, []
        for u in ups:
            cid = u["order"]["client_order_id"]
            for pid, t in self.traders.items():
                if cid.startswith(f"{t.run_id}-{pid}-"):
                    t.on_trade_update(u["event"], u["order"])

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            pub = self.ex.advance()
            assert pub is not None, "replay ended"
            self.t = pub.timestamp
            self.route()
            for pid, t in self.traders.items():
                mine = {s: {"o": b["open"], "h": b["high"], "l": b["low"], "c": b["close"], "v": b["volume"]}
                        for s, b in pub.bars.items() if s in (t.pair.y, t.pair.x)}
                if mine:
                    t.on_bars(pub.timestamp, mine)
            self.route()
            pos = self.positions()
            ledgers = None
            for pid, t in self.traders.items():
                shared = any(s in (o.pair.y, o.pair.x) for o in self.traders.values() if o is not t
                             for s in (t.pair.y, t.pair.x))
                if shared:  # the venue's position is the sum of pairs: judge the pair's own fills
                    ledgers = ledgers or StateStore(self.state_dir, "any").pair_positions()
                    held = ledgers.get(pid, {})
                else:
                    held = pos
                one = (held.get(t.pair.y, 0) == 0) != (held.get(t.pair.x, 0) == 0)
                self.naked[pid] = self.naked[pid] + 1 if one else 0
                self.naked_run[pid] = max(self.naked_run[pid], self.naked[pid])

    def run_until(self, pred, max_bars: int = 200) -> int:
        for i in range(max_bars):
            if pred():
                return i
            self.step()
        raise AssertionError(f"condition not met in {max_bars} bars")

    def positions(self) -> dict[str, float]:
        return dict(self.ex.account_summary()[2])

    def orders(self) -> list[dict]:
        return self.ex.account_snapshot()["orders"]

    def events(self, kind: str, pair: str | None = None) -> list[dict]:
        return [m for m in self.msgs if m.get("event") == kind and (pair is None or m.get("pair") == pair)]

    def holding(self, pid: str = "GS-MS") -> bool:
        t = self.traders[pid]
        return t.state.qty_y != 0 and t.state.qty_x != 0 and not t.state.pending

    def flat(self, pid: str = "GS-MS") -> bool:
        t = self.traders[pid]
        return t.state.qty_y == 0 and t.state.qty_x == 0 and not t.state.pending

    def ledger_positions(self) -> dict[str, float]:
        return StateStore(self.state_dir, "any").positions(None)

    def close(self) -> None:
        self.ex.stop()


@pytest.fixture
def rig_factory(bars, tmp_path):
    rigs: list[Rig] = []

    def make(**kw) -> Rig:
        r = Rig(bars, tmp_path / f"state{len(rigs)}", **kw)
        rigs.append(r)
        return r

    yield make
    for r in rigs:
        r.close()


def _open_orders(rig: Rig) -> list[dict]:
    return [o for o in rig.orders() if o["status"] in ("new", "accepted", "partially_filled", "pending_new")]


# ----------------------------------------------------------------------------------------------
# 1. ambiguous submit
# ----------------------------------------------------------------------------------------------
def test_broker_resolves_a_504_after_booking_by_client_order_id(bars):
    """alpaca-py resends the POST after the 504; the resend gets 422 duplicate; the adapter returns the booked order."""
    from pairtrade.exchange import LocalExchange

    with LocalExchange(bars, start=START, key="k", secret="s", rate_limit_per_min=None) as ex:
        broker = AlpacaBroker("k", "s", trading_url=ex.base_url, data_url=ex.base_url, retry_wait_secs=0.01)
        ex.faults.arm("submit_504_after_booking", count=1, symbol="GS")
        info = broker.submit_market("GS", 3, "t-GS-MS-y1")
        assert isinstance(info, OrderInfo) and info.client_order_id == "t-GS-MS-y1" and info.qty == 3
        assert ex.faults.counts()["submit_504_after_booking"] == 1
        booked = [o for o in ex.account_snapshot()["orders"] if o["client_order_id"] == "t-GS-MS-y1"]
        assert len(booked) == 1 and booked[0]["id"] == info.order_id


def test_broker_checks_a_refusal_of_a_resend_against_the_booked_order(bars):
    """The first POST is booked and answered 504; alpaca-py's resend is refused (here 403, on Alpaca e.g. the
    buying power the booked order already uses): the order exists, so it is not a reject."""
    from pairtrade.exchange import LocalExchange

    with LocalExchange(bars, start=START, key="k", secret="s", rate_limit_per_min=None) as ex:
        broker = AlpacaBroker("k", "s", trading_url=ex.base_url, data_url=ex.base_url, retry_wait_secs=0.01)
        ex.faults.arm("submit_504_after_booking", count=1, symbol="GS")

        def refuse_the_resend(update: dict) -> None:  # armed once the first attempt is booked
            if update["event"] == "new" and update["order"]["client_order_id"] == "t-GS-MS-y1":
                ex.faults.arm("reject_on_submit", count=1, symbol="GS")

        ex.engine.listeners.append(refuse_the_resend)
        info = broker.submit_market("GS", 3, "t-GS-MS-y1")
        assert info.client_order_id == "t-GS-MS-y1" and info.status == "new"
        assert ex.faults.counts()["reject_on_submit"] == 1
        assert [o["client_order_id"] for o in ex.account_snapshot()["orders"]] == ["t-GS-MS-y1"]


@pytest.mark.parametrize("symbol", ["MS", "GS"])
def test_504_after_booking_is_not_a_reject(rig_factory, symbol):
    """Finding 1: the booked leg is adopted; nothing is rolled back; no leg is left alone."""
    rig = rig_factory()
    rig.ex.faults.arm("submit_504_after_booking", count=1, symbol=symbol)
    rig.run_until(lambda: rig.ex.faults.counts()["submit_504_after_booking"] == 1)
    rig.step(3)
    assert not rig.events("reject") and not rig.events("alert")
    cids = [o["client_order_id"] for o in rig.orders()]
    assert len(cids) == len(set(cids))  # no duplicate order
    assert rig.naked_run["GS-MS"] == 0
    assert rig.ledger_positions() == rig.positions()


# ----------------------------------------------------------------------------------------------
# 2. a leg that fails after acceptance
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,symbol", [("reject_after_accept", "MS"), ("cancel_after_accept", "GS"),
                                         ("expire_after_accept", "MS"), ("done_for_day_after_accept", "GS")])
def test_leg_failing_after_acceptance_is_unwound(rig_factory, kind, symbol):
    """Finding 2: the filled leg is rolled back at once (one bar one-legged at most), with one alert."""
    rig = rig_factory()
    rig.run_until(lambda: rig.flat() and rig.traders["GS-MS"].bar_no > 0)
    rig.ex.faults.arm(kind, count=1, symbol=symbol)  # the next order of the symbol is an entry leg
    fate = {"reject_after_accept": "rejected", "cancel_after_accept": "canceled",
            "expire_after_accept": "expired", "done_for_day_after_accept": "done_for_day"}[kind]
    rig.run_until(lambda: any(o["status"] == fate for o in rig.orders()))
    rig.step(3)
    assert rig.naked_run["GS-MS"] <= 1
    alerts = rig.events("alert")
    assert len(alerts) == 1 and "failed" in alerts[0]["text"]
    assert not _open_orders(rig)
    pos = rig.positions()
    assert (pos.get("GS", 0) == 0) == (pos.get("MS", 0) == 0)
    assert rig.ledger_positions() == pos
    t = rig.traders["GS-MS"]
    assert (t.state.qty_y, t.state.qty_x) == (pos.get("GS", 0.0), pos.get("MS", 0.0))


def test_partial_fills_are_followed_and_imbalance_is_capped(rig_factory):
    """A partially filled leg is tracked to completion; the imbalance over the cap is alerted once."""
    rig = rig_factory(safety=LegSafety(submit_retry_secs=(0.01,), max_imbalance_usd=100.0))
    rig.run_until(lambda: rig.flat() and rig.traders["GS-MS"].bar_no > 0)
    n = len(rig.events("order"))
    rig.ex.faults.arm("partial_fill", count=1, symbol="MS", fraction=0.5)
    rig.run_until(lambda: len(rig.events("order")) > n)
    entry = rig.events("order")[n:]
    assert entry[0]["reason"].startswith("entry")
    rig.step(2)
    alerts = rig.events("alert")
    assert len(alerts) == 1 and "imbalance" in alerts[0]["text"]
    assert rig.ex.faults.counts()["partial_fill"] == 1
    ms = [o for o in rig.orders() if o["client_order_id"] in {e["client_order_id"] for e in entry}
          and o["symbol"] == "MS"][0]
    assert ms["status"] == "filled" and float(ms["filled_qty"]) == float(ms["qty"])  # completed, not cut
    pos = rig.positions()
    t = rig.traders["GS-MS"]
    assert (t.state.qty_y, t.state.qty_x) == (pos.get("GS", 0.0), pos.get("MS", 0.0))
    assert not rig.events("reject") and not [e for e in rig.events("order") if e["reason"] in ("rollback", "repair")]


def test_stale_open_order_is_cancelled_and_the_other_leg_unwound(rig_factory):
    """A leg that does not fill within stale_order_bars is cancelled and its partner rolled back."""
    rig = rig_factory(safety=LegSafety(submit_retry_secs=(0.01,), stale_order_bars=2, max_imbalance_usd=1e9))
    rig.run_until(lambda: rig.flat() and rig.traders["GS-MS"].bar_no > 0)
    rig.ex.faults.arm("delayed_fill", count=1, symbol="MS", bars=6)
    rig.run_until(lambda: rig.events("cancel"))
    assert "stale" in rig.events("cancel")[0]["why"]
    rig.step(2)
    assert rig.naked_run["GS-MS"] <= 3
    assert any(o["status"] == "canceled" and o["symbol"] == "MS" for o in rig.orders())
    assert rig.flat()
    assert rig.positions() == {} == rig.ledger_positions()
    assert len(rig.events("alert")) == 1


# ----------------------------------------------------------------------------------------------
# 3. repeated refusal, short sales, temporary errors
# ----------------------------------------------------------------------------------------------
def test_refused_exits_back_off_alert_once_and_disable_the_pair(rig_factory):
    """Finding 7: every exit refused (PDT 403): a few refusals with backoff, two alerts, entry prices kept."""
    rig = rig_factory(safety=LegSafety(submit_retry_secs=(0.01,), max_refusals=4, max_backoff_bars=16))
    rig.run_until(lambda: rig.holding())
    t = rig.traders["GS-MS"]
    fills = {e["symbol"]: e["price"] for e in rig.events("fill")[-2:]}
    rig.ex.faults.arm("refuse_exit", count=None)
    rig.step(60)
    rejects = rig.events("reject")  # the first leg of each attempt is refused, the second is not sent
    gaps = np.diff([pd.Timestamp(r["t"]) for r in rejects]) / pd.Timedelta(minutes=5)
    assert list(gaps[:3]) == [1, 2, 4]  # backoff after each refusal (bars)
    assert len(rejects) >= 4 and all(g >= 16 for g in gaps[4:])  # disabled: the flatten retried every 16 bars
    assert len(rejects) <= 4 + 1 + 60 // 16
    alerts = [a["text"] for a in rig.events("alert")]
    assert len(alerts) == 2 and "disabled" in alerts[1]
    assert t.state.disabled
    # a failed order never moves the kernel's entry prices: still the exchange's fill prices
    s = t.strategy.state
    assert s[S_ENTRY_PX_Y] == pytest.approx(fills["GS"]) and s[S_ENTRY_PX_X] == pytest.approx(fills["MS"])
    assert rig.positions() == rig.ledger_positions() and rig.naked_run["GS-MS"] == 0


def test_pair_that_cannot_be_shorted_is_not_entered(rig_factory):
    """MS not shortable: no order ever opens an MS short; one alert; the other direction still trades."""
    rig = rig_factory()
    rig.ex.faults.arm("not_shortable", count=1, symbol="MS", bars=500)
    rig.step(80)
    ms_shorts = [e for e in rig.events("order") if e["symbol"] == "MS" and e["reason"].startswith("entry")
                 and e["qty"] < 0]
    assert ms_shorts == []
    alerts = rig.events("alert")
    assert len(alerts) == 1 and "MS" in alerts[0]["text"] and "shortable=False" in alerts[0]["text"]
    assert not rig.events("reject")
    assert any(e["reason"] == "entry_short" for e in rig.events("order"))  # short GS / long MS is fine


@pytest.mark.parametrize("kind,extra", [("http_5xx", {"status": 500}), ("http_429", {})])
def test_5xx_on_an_exit_is_retried_not_dropped(rig_factory, kind, extra):
    """Finding 9: a burst of HTTP 500 (or 429) on the exit: no reject, the exit goes out once, the pair ends flat."""
    rig = rig_factory()
    rig.run_until(lambda: rig.holding())
    n_orders = len(rig.orders())
    rig.ex.faults.arm(kind, count=1, api="trading", burst=12, **extra)  # the next 12 trading requests
    rig.run_until(lambda: rig.flat(), max_bars=100)
    assert rig.ex.faults.hits()[kind] == 12
    assert not rig.events("reject")
    exits = rig.orders()[n_orders:n_orders + 2]
    assert sorted(o["symbol"] for o in exits) == ["GS", "MS"] and all(o["status"] == "filled" for o in exits)
    cids = [o["client_order_id"] for o in rig.orders()]
    assert len(cids) == len(set(cids))
    assert rig.positions() == {} == rig.ledger_positions() and rig.naked_run["GS-MS"] == 0


# ----------------------------------------------------------------------------------------------
# 4. per-pair ownership and reconciliation
# ----------------------------------------------------------------------------------------------
def test_pairs_sharing_a_symbol_never_touch_each_others_shares(rig_factory):
    """Finding 3: a trader starting next to a pair that holds its symbol adopts nothing and flattens nothing."""
    rig = rig_factory()
    rig.run_until(lambda: rig.holding())
    a = rig.traders["GS-MS"]
    held = (a.state.qty_y, a.state.qty_x)
    before = len(rig.orders())
    b = rig.add("JPM", "GS")  # shares GS with GS-MS
    assert len(rig.orders()) == before and not rig.events("alert")
    assert (b.state.qty_y, b.state.qty_x) == (0, 0)
    assert rig.positions()["GS"] == held[0] and rig.positions()["MS"] == held[1]
    assert rig.events("shared_symbol", "JPM-GS")
    rig.step(40)
    ledgers = StateStore(rig.state_dir, "x").pair_positions()
    pos = rig.positions()
    for sym in ("GS", "MS", "JPM"):
        assert sum(p.get(sym, 0.0) for p in ledgers.values()) == pos.get(sym, 0.0)
    for pid, t in rig.traders.items():
        assert (t.state.qty_y, t.state.qty_x) == (ledgers.get(pid, {}).get(t.pair.y, 0.0),
                                                  ledgers.get(pid, {}).get(t.pair.x, 0.0))
        assert (t.state.qty_y == 0) == (t.state.qty_x == 0)


def test_position_that_belongs_to_no_pair_is_reported_never_flattened(rig_factory):
    rig = rig_factory(pairs=())
    rig.broker.submit_market("GS", 5, "manual-gs-1")
    rig.step()
    t = rig.add("GS", "MS")
    alerts = rig.events("alert")
    assert len(alerts) == 1 and "GS" in alerts[0]["text"] and "no pair" in alerts[0]["text"]
    assert not rig.events("order")
    rig.step(40)
    assert rig.positions().get("GS", 0) == 5 + t.state.qty_y  # the 5 shares stay; the pair trades its own
    assert len(rig.events("alert")) == 1


def test_own_one_legged_position_is_flattened_at_start(rig_factory):
    """The pair's own shares (its fills in the ledger) held in one leg only are flattened at start."""
    rig = rig_factory(pairs=())
    rig.broker.submit_market("GS", 5, "r0-GS-MS-y1")  # an order of this pair that filled before a crash
    rig.step()
    store = StateStore(rig.state_dir, "GS-MS")
    from pairtrade.live.state import PendingOrder

    st = store.load()
    st.order_seq = 1
    store.save(st, orders=[PendingOrder("r0-GS-MS-y1", "GS", 5.0, status="new", group=1, purpose="entry_long")])
    t = rig.add("GS", "MS")
    assert t.state.qty_y == 5  # the missed fill was recorded from the order lookup
    alerts = rig.events("alert")
    assert len(alerts) == 1 and "one-legged" in alerts[0]["text"]
    assert any(e["symbol"] == "GS" and e["qty"] == -5 for e in rig.events("order"))
    rig.step()
    assert rig.positions() == {} and StateStore(rig.state_dir, "GS-MS").load().qty_y == 0


def test_orders_recorded_for_the_pair_by_the_controller_are_followed(rig_factory):
    """The controller flattens a pair whose trader died (give-up), recording its orders in the pair's ledger
    first; the pair's next trader records their fills and holds nothing -- it does not 'exit' again."""
    rig = rig_factory()
    rig.run_until(lambda: rig.holding())
    dead = rig.traders.pop("GS-MS")
    held = {dead.pair.y: dead.state.qty_y, dead.pair.x: dead.state.qty_x}
    store = StateStore(rig.state_dir, "GS-MS")
    for leg, (sym, q) in zip("yx", held.items()):
        store.record_order(f"r1-GS-MS-{leg}giveup", sym, -q, purpose="give_up")  # persist, then act
        rig.broker.submit_market(sym, -q, f"r1-GS-MS-{leg}giveup")
    rig.step()
    assert rig.positions() == {}
    n_orders = len(rig.orders())
    t = rig.add("GS", "MS")
    assert (t.state.qty_y, t.state.qty_x) == (0.0, 0.0) and not t.state.pending
    assert not rig.events("alert")
    rig.step(3)
    assert rig.positions() == rig.ledger_positions()
    assert all(o["client_order_id"].startswith("r1-GS-MS-") for o in rig.orders()[n_orders:])  # its own trades only
    with pytest.raises(ValueError, match="not a leg"):
        store.record_order("r1-GS-MS-zgiveup", "JPM", 1.0, purpose="give_up")


def test_open_order_of_the_pair_unknown_to_the_ledger_is_cancelled_at_start(rig_factory):
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import LimitOrderRequest

    rig = rig_factory(pairs=())
    o = rig.broker.trading.submit_order(LimitOrderRequest(symbol="GS", qty=2, side=OrderSide.BUY, limit_price=1.0,
                                                          time_in_force=TimeInForce.GTC,
                                                          client_order_id="old9-GS-MS-y3"))
    rig.add("GS", "MS")
    assert [x["status"] for x in rig.orders() if x["id"] == str(o.id)] == ["canceled"]
    assert len(rig.events("alert")) == 1 and "old9-GS-MS-y3" in rig.events("alert")[0]["text"]


# ----------------------------------------------------------------------------------------------
# 5. durable state: a trader killed with orders in flight, restarted by a new controller run
# ----------------------------------------------------------------------------------------------
def _params_file(path: Path) -> None:
    pf = ParamsFile(schema_version=SCHEMA_VERSION, generated_at="2026-01-01T00:00:00+00:00", bar_size="5Min",
                    data={"source": "test", "start": "2025-12-01T14:30:00+00:00", "end": "2025-12-12T20:55:00+00:00"},
                    costs=CostModel(), pairs={"GS-MS": {"y": "GS", "x": "MS", "tradable": True, "params": PARAMS}})
    atomic_write_json(path, pf)


class _Proc:
    """trader.py as a subprocess, spoken to like the controller does (JSON lines)."""

    def __init__(self, cmd: list[str], env: dict):
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, bufsize=1, env=env, cwd=str(ROOT))
        self.msgs: list[dict] = []

    def until(self, kind: str) -> dict | None:
        for line in self.p.stdout:
            m = json.loads(line)
            self.msgs.append(m)
            if m.get("type") == kind:
                return m
        return None  # the process ended

    def send(self, msg: dict) -> None:
        self.p.stdin.write(json.dumps(msg) + "\n")
        self.p.stdin.flush()


def test_trader_killed_with_orders_in_flight_knows_and_exits_its_position(bars, tmp_path):
    """Finding 4: killed right after submitting an entry (kill -9 equivalent), restarted by a new run: it
    records the fills that happened while it was dead and exits the position later."""
    from pairtrade.exchange import LocalExchange
    from pairtrade.live.secrets import LOCAL_KEY, LOCAL_SECRET

    _params_file(tmp_path / "params.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "ALPACA_", "TELEGRAM_"))}
    env.update(PYTHONUNBUFFERED="1", PAIRTRADE_REST_RETRY_WAIT_SECS="0.01")
    with LocalExchange(bars, start=START, key=LOCAL_KEY, secret=LOCAL_SECRET, rate_limit_per_min=None) as ex:
        def cmd(run: str) -> list[str]:
            return [sys.executable, str(ROOT / "trader.py"), "GS", "MS", "--params", str(tmp_path / "params.json"),
                    "--trading-url", ex.base_url, "--state-dir", str(tmp_path / "state"), "--run-id", run]

        def feed(proc: _Proc) -> dict | None:
            pub = ex.advance()
            bars_ = {s: {"o": b["open"], "h": b["high"], "l": b["low"], "c": b["close"], "v": b["volume"]}
                     for s, b in pub.bars.items() if s in ("GS", "MS")}
            proc.send({"type": "bars", "t": pub.timestamp.isoformat(), "bars": bars_})
            return proc.until("ack")

        first = _Proc(cmd("run1"), {**env, "PAIRTRADE_FAULT_CRASH_ON": "entry_submitted"})
        assert first.until("ready") is not None, first.p.stderr.read()[-2000:]
        for _ in range(200):
            if feed(first) is None:
                break
        assert first.p.wait(timeout=10) == 3  # crashed right after the entry's orders went out
        orders = [m for m in first.msgs if m.get("event") == "order"]
        assert len(orders) == 2 and not [m for m in first.msgs if m.get("event") == "fill"]
        ex.advance()  # the entry fills while no trader runs
        held = dict(ex.account_summary()[2])
        assert held and set(held) == {"GS", "MS"}

        second = _Proc(cmd("run2"), env)
        assert second.until("ready") is not None, second.p.stderr.read()[-2000:]
        second.send({"type": "status"})
        st = second.until("status")
        assert (st["qty_y"], st["qty_x"]) == (held["GS"], held["MS"])
        assert not [m for m in second.msgs if m.get("event") == "alert"]
        for _ in range(200):
            feed(second)
            if not ex.account_summary()[2]:
                break
        assert ex.account_summary()[2] == {}  # exited
        second.send({"type": "stop"})
        assert second.until("stopped") is not None and second.p.wait(timeout=10) == 0
        trades = [m for m in second.msgs if m.get("type") == "trade"]
        assert len(trades) == 1 and (trades[0]["qty_y"], trades[0]["qty_x"]) == (held["GS"], held["MS"])
    ledger = StateStore(tmp_path / "state", "GS-MS")
    assert ledger.positions(None) == {}
    assert len(ledger.trades()) == 1
    assert json.loads((tmp_path / "state" / "GS-MS.json").read_text())["last_bar"] is not None


# ----------------------------------------------------------------------------------------------
# 6. cost: nothing is written on a bar that changes nothing
# ----------------------------------------------------------------------------------------------
def test_no_ledger_write_on_a_quiet_bar(rig_factory):
    quiet = StrategyParams(entry_z=50.0, exit_z=0.2, stop_z=60.0, zscore_window_bars=30, adf_window_bars=60,
                           hurst_window_bars=30, warmup_bars=60)
    rig = rig_factory(params=quiet)
    rig.step()

    def files():
        return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in rig.state_dir.iterdir()}

    before = files()
    times = []
    t = rig.traders["GS-MS"]
    for _ in range(30):
        pub = rig.ex.advance()
        b = {s: {"c": v["close"]} for s, v in pub.bars.items() if s in ("GS", "MS")}
        t0 = time.perf_counter()
        t.on_bars(pub.timestamp, b)
        times.append(time.perf_counter() - t0)
    assert files() == before
    print(f"median on_bars {1000 * float(np.median(times)):.3f} ms")
