"""The local exchange as a venue of its own: durable account state, fault controls, a separate process.

Everything is observed through the unmodified alpaca-py clients (TradingClient, TradingStream,
StockDataStream) as they would see Alpaca.  The references the assertions compare with are not our
own outputs: the recorded bars of ``../shared/data`` (fill prices = bar open + slippage), Alpaca's
documented error bodies (422 40010001 "client_order_id must be unique", 403 40310100 PDT, 422
42210000 "cannot be sold short", 429 42910000), alpaca-py's own retry policy (429/504, 3 retries),
an uninterrupted run of the same exchange (for restarts), and the binomial law (random faults).

alpaca-py pauses 3 s before each retry; the tests shorten that pause on the client instance
(``_retry_wait``); the retry count (3) and the retried codes (429, 504) stay alpaca-py's.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.live import StockDataStream
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream
from scipy.stats import binom

from pairtrade.config import CostModel
from pairtrade.data.bars import load_bars
from pairtrade.exchange import FAULT_KINDS, LocalExchange, RemoteExchange, StateMismatch
from tests.conftest import EQUITIES_5MIN, ROOT, shared_file

START = "2025-06-02T13:30:00Z"
SLIP = 0.01
COSTS = CostModel(slippage_per_share=SLIP, fee_bps=0.5)
KEY = "local"


@pytest.fixture(scope="module")
def xom_cvx():
    return load_bars(shared_file(EQUITIES_5MIN), symbols=["XOM", "CVX"])


def make_ex(bars, **kw) -> LocalExchange:
    kw.setdefault("start", START)
    return LocalExchange(bars, costs=COSTS, rate_limit_per_min=None, key=KEY, secret=KEY, **kw).start()


@pytest.fixture
def ex(xom_cvx):
    e = make_ex(xom_cvx)
    yield e
    e.stop()


def client(ex) -> TradingClient:
    tc = TradingClient(KEY, KEY, paper=True, url_override=ex.base_url)
    tc._retry_wait = 0.01
    return tc


def mkt(sym, qty, side, cid=None):
    return MarketOrderRequest(symbol=sym, qty=qty, side=side, time_in_force=TimeInForce.DAY, client_order_id=cid)


def bar_open(bars, sym, ts) -> float:
    return float(bars.bars[sym].loc[pd.Timestamp(ts), "open"])


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def view(tc: TradingClient) -> dict:
    """The account as alpaca-py sees it: cash, positions, every order, the clock."""
    acct = tc.get_account()
    orders = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500, direction="asc"))
    return {"cash": acct.cash, "equity": acct.equity,
            "positions": {p.symbol: (p.qty, p.avg_entry_price) for p in tc.get_all_positions()},
            "orders": [(o.id, o.client_order_id, o.symbol, o.status, o.qty, o.filled_qty, o.filled_avg_price)
                       for o in orders],
            "clock": tc.get_clock().timestamp}


# ------------------------------------------------------------------------------ durable state
def test_account_and_clock_survive_an_exchange_restart(tmp_path, xom_cvx):
    """Stop the exchange mid-replay (an order open, a partial fill pending), start it again on the
    same state file: alpaca-py sees the same account and clock, and the replay continues exactly as
    an uninterrupted one."""
    state = tmp_path / "ex.sqlite"

    def script(e, tc, phase):
        if phase == 0:
            tc.submit_order(mkt("XOM", 10, OrderSide.BUY, "a-1"))
            tc.submit_order(mkt("CVX", 8, OrderSide.SELL, "a-2"))
            for _ in range(2):
                e.advance()
            e.faults.partial_fill_next("CVX", 0.5)
            tc.submit_order(mkt("CVX", 6, OrderSide.SELL, "a-5"))       # half filled at the restart
            e.advance()
            tc.submit_order(mkt("XOM", 4, OrderSide.SELL, "a-3"))       # open across the restart
        else:
            for _ in range(2):
                e.advance()
            tc.submit_order(mkt("XOM", 6, OrderSide.SELL, "a-4"))
            e.advance()

    ref = make_ex(xom_cvx)                                  # uninterrupted reference
    rtc = client(ref)
    script(ref, rtc, 0)
    script(ref, rtc, 1)
    ref_view = view(rtc)
    ref.stop()

    e1 = make_ex(xom_cvx, state=state)
    tc1 = client(e1)
    script(e1, tc1, 0)
    before, book = view(tc1), e1.account_snapshot()
    assert any(o[3] == OrderStatus.PARTIALLY_FILLED for o in before["orders"])   # a partial is pending
    e1.stop()
    e2 = make_ex(xom_cvx, state=state)
    tc2 = client(e2)
    assert e2.engine.resumed and "resumed: bar 3" in e2.describe()
    assert view(tc2) == before                              # cash, positions, orders, clock: all equal
    assert e2.account_snapshot() == book and len(book["fills"]) == 3        # and every fill
    script(e2, tc2, 1)
    after = view(tc2)
    e2.stop()
    # the ids are uuid4 (different between the two runs): compare everything else
    strip = lambda v: {**v, "orders": [o[1:] for o in v["orders"]]}  # noqa: E731
    assert strip(after) == strip(ref_view)
    # and against the data: the order left open at the restart filled at the next bar's open + slippage
    a3 = next(o for o in after["orders"] if o[1] == "a-3")
    assert a3[3] == OrderStatus.FILLED
    t_fill = pd.Timestamp(START) + pd.Timedelta(minutes=15)
    assert float(a3[6]) == pytest.approx(bar_open(xom_cvx, "XOM", t_fill) - SLIP)


def test_state_is_written_on_changes_only_and_belongs_to_one_replay(tmp_path, xom_cvx):
    state = tmp_path / "ex.sqlite"
    e = make_ex(xom_cvx, state=state)
    commits = []
    orig = e.engine.store.commit
    e.engine.store.commit = lambda *a: (commits.append(1), orig(*a))
    tc = client(e)
    for _ in range(20):                                     # reads never write
        tc.get_account(), tc.get_all_positions(), tc.get_orders(), tc.get_clock()
    assert commits == []
    tc.submit_order(mkt("XOM", 1, OrderSide.BUY))
    assert len(commits) == 1                                # one commit per booked order
    e.advance()
    assert len(commits) == 2                                # one per bar (clock + its fills)
    with pytest.raises(APIError):
        tc.submit_order(mkt("NOPE", 1, OrderSide.BUY))      # refused: nothing changed, nothing written
    assert len(commits) == 2
    e.stop()
    with pytest.raises(StateMismatch, match="start"):
        LocalExchange(xom_cvx, start="2025-06-03T13:30:00Z", costs=COSTS, state=state)
    with pytest.raises(StateMismatch, match="initial_cash"):
        LocalExchange(xom_cvx, start=START, costs=COSTS, cash=5_000.0, state=state)


# ------------------------------------------------------------------------------ ambiguous submits
def test_504_after_booking_resend_gets_422_and_the_order_is_found_by_client_id(ex, xom_cvx):
    """Finding 1 as Alpaca shows it: the order is booked, the answer is 504, alpaca-py resends the same
    body after its pause and gets 422 'client_order_id must be unique'."""
    tc = client(ex)
    ex.faults.arm("submit_504_after_booking", symbol="XOM")
    with pytest.raises(APIError) as err:
        tc.submit_order(mkt("XOM", 7, OrderSide.BUY, "pair-1-y"))
    assert err.value.status_code == 422
    assert (err.value.code, err.value.message) == (40010001, "client_order_id must be unique")
    found = tc.get_order_by_client_id("pair-1-y")           # the way to resolve the ambiguity
    assert found.status == OrderStatus.NEW and float(found.qty) == 7
    assert len(tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))) == 1
    pub = ex.advance()
    assert [f.client_order_id for f in pub.fills] == ["pair-1-y"]
    assert float(tc.get_open_position("XOM").qty) == 7      # booked once, filled once
    assert ex.faults.counts()["submit_504_after_booking"] == 1


def test_504_after_booking_without_client_order_id_books_twice(ex):
    """Why every submit must carry a client_order_id: the resend of an anonymous order is a new order."""
    tc = client(ex)
    ex.faults.arm("submit_504_after_booking", symbol="CVX")
    o = tc.submit_order(mkt("CVX", 3, OrderSide.BUY))       # the resend succeeds ...
    assert o.status == OrderStatus.NEW
    assert len(tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))) == 2   # ... as a second order
    ex.advance()
    assert float(tc.get_open_position("CVX").qty) == 6


def test_http_bursts_as_alpaca_py_sees_them(ex):
    tc = client(ex)
    ex.faults.arm("http_429", burst=3, api="trading")       # 3 of alpaca-py's 4 attempts fail: it recovers
    assert tc.get_account().status.value == "ACTIVE"
    ex.faults.arm("http_429", burst=4, api="trading")       # all 4 fail: APIError 429 with Alpaca's body
    with pytest.raises(APIError) as err:
        tc.get_account()
    assert err.value.status_code == 429 and err.value.code == 42910000
    ex.faults.arm("http_5xx", status=500)                   # 500 is not retried: raised at once ...
    with pytest.raises(APIError) as err:
        tc.submit_order(mkt("XOM", 1, OrderSide.BUY, "b-1"))
    assert err.value.status_code == 500
    with pytest.raises(APIError) as err:                    # ... and nothing was booked
        tc.get_order_by_client_id("b-1")
    assert err.value.status_code == 404
    ex.faults.arm("http_5xx", status=502, html=True)        # a gateway's HTML page, not JSON
    with pytest.raises(APIError) as err:
        tc.get_clock()
    assert err.value.status_code == 502 and "<html>" in str(err.value)
    ex.faults.arm("http_5xx", status=504, burst=2)          # 504 before booking: the resend books it once
    tc.submit_order(mkt("XOM", 2, OrderSide.BUY, "b-2"))
    assert tc.get_order_by_client_id("b-2").status == OrderStatus.NEW
    assert ex.faults.counts()["http_429"] == 2 and ex.faults.hits()["http_429"] == 7
    assert ex.faults.counts()["http_5xx"] == 3 and ex.faults.hits()["http_5xx"] == 4


# ------------------------------------------------------------------------------ order fates and fills
def test_accepted_orders_turn_rejected_canceled_expired_on_the_stream(ex):
    updates: queue.Queue = queue.Queue()

    async def on_update(u):
        updates.put(u)

    stream = TradingStream(KEY, KEY, paper=True, url_override=ex.trade_stream_url)
    stream.subscribe_trade_updates(on_update)
    th = threading.Thread(target=stream.run, daemon=True)
    th.start()
    try:
        wait_for(lambda: any(c.listening for c in list(ex._trade_conns)), what="listen")
        tc = client(ex)
        fates = {"reject_after_accept": "rejected", "cancel_after_accept": "canceled",
                 "expire_after_accept": "expired", "done_for_day_after_accept": "done_for_day"}
        cids = {}
        for i, kind in enumerate(fates):
            ex.faults.arm(kind, symbol="XOM")
            o = tc.submit_order(mkt("XOM", 5, OrderSide.BUY, f"f-{i}"))
            assert o.status == OrderStatus.NEW                 # accepted ...
            cids[o.client_order_id] = fates[kind]
        tc.submit_order(mkt("CVX", 2, OrderSide.BUY, "f-ok"))
        pub = ex.advance()
        assert [f.client_order_id for f in pub.fills] == ["f-ok"]     # ... and never filled
        seen = {}
        deadline = time.time() + 10
        while len(seen) < 5 and time.time() < deadline:
            try:
                u = updates.get(timeout=1)
            except queue.Empty:
                continue
            event = str(getattr(u.event, "value", u.event))
            if event != "new":
                seen[u.order.client_order_id] = event
        assert seen == {**cids, "f-ok": "fill"}
        for cid, status in cids.items():
            assert tc.get_order_by_client_id(cid).status.value == status
        assert [p.symbol for p in tc.get_all_positions()] == ["CVX"]
        c = ex.faults.counts()
        assert all(c[k] == 1 for k in fates)
    finally:
        stream.stop()
        ex.faults.drop_trade_connections()
        th.join(10)


def test_partial_and_delayed_fills_follow_the_recorded_opens(ex, xom_cvx):
    tc = client(ex)
    ex.faults.arm("partial_fill", symbol="XOM", fraction=0.3)
    ex.faults.arm("delayed_fill", symbol="CVX", bars=3)
    xo = tc.submit_order(mkt("XOM", 10, OrderSide.BUY, "p-1"))
    co = tc.submit_order(mkt("CVX", 4, OrderSide.SELL, "d-1"))
    times = [ex.advance().timestamp for _ in range(4)]
    part = tc.get_order_by_id(xo.id)
    assert part.status == OrderStatus.FILLED and float(part.filled_qty) == 10
    # 3 shares (floor of 30 %) at the first open, the other 7 at the second: the average of two recorded opens
    o1, o2 = bar_open(xom_cvx, "XOM", times[0]) + SLIP, bar_open(xom_cvx, "XOM", times[1]) + SLIP
    assert float(part.filled_avg_price) == pytest.approx((3 * o1 + 7 * o2) / 10)
    late = tc.get_order_by_id(co.id)
    assert late.status == OrderStatus.FILLED and late.filled_at == times[3]     # 3 bars late
    assert float(late.filled_avg_price) == pytest.approx(bar_open(xom_cvx, "CVX", times[3]) - SLIP)
    assert ex.faults.counts()["partial_fill"] == 1 and ex.faults.counts()["delayed_fill"] == 1


# ------------------------------------------------------------------------------ refusals
def test_refused_exits_and_non_shortable_symbols(ex):
    tc = client(ex)
    tc.submit_order(mkt("XOM", 10, OrderSide.BUY, "r-1"))
    ex.advance()
    ex.faults.arm("refuse_exit", count=None, symbol="XOM")          # every exit refused (PDT protection)
    for call in (lambda: tc.submit_order(mkt("XOM", 4, OrderSide.SELL, "r-2")),
                 lambda: tc.close_position("XOM")):
        with pytest.raises(APIError) as err:
            call()
        assert err.value.status_code == 403
        assert (err.value.code, err.value.message) == (40310100, "trade denied due to pattern day trading protection")
    tc.submit_order(mkt("XOM", 1, OrderSide.BUY, "r-3"))             # adding to the position is no exit
    ex.faults.disarm("refuse_exit")
    tc.submit_order(mkt("XOM", 11, OrderSide.SELL, "r-4"))
    ex.advance()
    assert tc.get_all_positions() == []
    assert ex.faults.hits()["refuse_exit"] == 2

    ex.faults.arm("not_shortable", symbol="CVX", bars=2)             # fires at the next bar
    assert tc.get_asset("CVX").shortable is True
    ex.advance()
    a = tc.get_asset("CVX")
    assert (a.shortable, a.easy_to_borrow) == (False, False)
    with pytest.raises(APIError) as err:
        tc.submit_order(mkt("CVX", 5, OrderSide.SELL, "s-1"))
    assert err.value.status_code == 422
    assert (err.value.code, err.value.message) == (42210000, 'asset "CVX" cannot be sold short')
    tc.submit_order(mkt("CVX", 5, OrderSide.BUY, "s-2"))             # buying is fine
    ex.advance()
    assert tc.get_asset("CVX").shortable is False                    # 2 bar periods ...
    ex.advance()
    assert tc.get_asset("CVX").shortable is True                     # ... then shortable again
    assert ex.faults.counts()["not_shortable"] == 1 and ex.faults.hits()["not_shortable"] == 1
    ex.faults.arm("not_shortable", symbol="XOM", bars=1, hard_to_borrow=True)
    ex.advance()
    a = tc.get_asset("XOM")
    assert (a.shortable, a.easy_to_borrow) == (True, False)
    with pytest.raises(APIError) as err:
        tc.submit_order(mkt("XOM", 5, OrderSide.SELL, "s-3"))
    assert err.value.status_code == 422


# ------------------------------------------------------------------------------ websockets
def test_silent_and_dropped_websockets(ex):
    bars: queue.Queue = queue.Queue()

    async def on_bar(b):
        bars.put(pd.Timestamp(b.timestamp))

    stream = StockDataStream(KEY, KEY, url_override=ex.data_stream_url)
    stream.subscribe_bars(on_bar, "XOM")
    th = threading.Thread(target=stream.run, daemon=True)
    th.start()

    def conn():
        cs = [c for c in list(ex._data_conns) if c.authed and "XOM" in c.subs["bars"]]
        return cs[0] if cs else None

    try:
        wait_for(lambda: conn() is not None, what="subscription")
        first = conn()
        ex.faults.arm("silent_data_ws", bars=2)
        silent = [ex.advance().timestamp for _ in range(2)]
        heard = ex.advance().timestamp
        assert bars.get(timeout=5) == heard                  # the two silent bars never arrived ...
        assert conn() is first and not first.ws.closed       # ... on a connection that stayed open
        assert bars.empty() and len(silent) == 2
        ex.faults.arm("drop_data_ws")
        lost = ex.advance().timestamp                        # dropped before this bar was sent
        wait_for(lambda: conn() is not None and conn() is not first, timeout=15, what="reconnect")
        nxt = ex.advance().timestamp
        assert bars.get(timeout=5) == nxt and lost < nxt
        c = ex.faults.counts()
        assert c["silent_data_ws"] == 1 and c["drop_data_ws"] == 1
    finally:
        stream.stop()
        ex.faults.drop_data_connections()
        th.join(10)


def test_silent_and_dropped_trade_updates(ex):
    updates: queue.Queue = queue.Queue()

    async def on_update(u):
        updates.put((u.event, u.order.client_order_id))

    stream = TradingStream(KEY, KEY, paper=True, url_override=ex.trade_stream_url)
    stream.subscribe_trade_updates(on_update)
    th = threading.Thread(target=stream.run, daemon=True)
    th.start()
    listening = lambda: [c for c in list(ex._trade_conns) if c.listening]  # noqa: E731
    try:
        wait_for(lambda: listening(), what="listen")
        tc = client(ex)
        ex.faults.arm("silent_trade_ws", bars=1)
        tc.submit_order(mkt("XOM", 1, OrderSide.BUY, "w-1"))
        assert updates.get(timeout=5)[1] == "w-1"            # 'new' (before the silence)
        ex.advance()                                         # the fill update is swallowed
        ex.advance()                                         # the silence lasts one bar period
        tc.submit_order(mkt("XOM", 1, OrderSide.BUY, "w-2"))
        assert updates.get(timeout=5) == ("new", "w-2")      # the connection was alive all along
        first = listening()[0]
        ex.faults.arm("drop_trade_ws")
        ex.advance()                                         # w-2's fill: lost with the dropped connection
        wait_for(lambda: listening() and listening()[0] is not first, timeout=15, what="reconnect")
        assert updates.empty()
        assert tc.get_order_by_client_id("w-2").status == OrderStatus.FILLED   # REST knows (reconcile there)
        assert ex.faults.counts()["silent_trade_ws"] == 1 and ex.faults.counts()["drop_trade_ws"] == 1
    finally:
        stream.stop()
        ex.faults.drop_trade_connections()
        th.join(10)


# ------------------------------------------------------------------------------ random faults, admin API
def test_random_faults_are_seeded_counted_and_binomial(xom_cvx):
    n, rate = 200, 0.25

    def run(seed):
        e = make_ex(xom_cvx)
        try:
            e.faults.inject_random("reject_on_submit", rate, seed, status=403)
            tc = client(e)
            refused = []
            for i in range(n):
                try:
                    tc.submit_order(mkt("XOM", 1, OrderSide.BUY, f"r{i}"))
                except APIError as err:
                    assert err.status_code == 403
                    refused.append(i)
            return refused, e.faults.counts()["reject_on_submit"]
        finally:
            e.stop()

    a, ca = run(1)
    b, cb = run(1)
    c, _ = run(2)
    assert a == b and ca == len(a)                          # same seed, same faults; every one counted
    assert a != c
    lo, hi = binom.interval(0.999, n, rate)
    assert lo <= len(a) <= hi and lo <= len(c) <= hi


def test_every_fault_kind_randomised_at_once_is_reproducible(xom_cvx):
    """All kinds drawn together (as the soak does): each fires, none breaks the exchange (no handler error),
    the same seed gives the same firings and the same book."""

    def run(seed):
        e = make_ex(xom_cvx)
        try:
            for kind in FAULT_KINDS:
                e.faults.inject_random(kind, 0.15, seed)
            tc = client(e)
            statuses = []
            for i in range(80):
                for sym, side in (("XOM", OrderSide.BUY if i % 4 < 2 else OrderSide.SELL), ("CVX", OrderSide.SELL)):
                    try:
                        tc.submit_order(mkt(sym, 3, side, f"{sym}-{i}"))
                    except APIError as err:
                        statuses.append(err.status_code)
                        assert "internal error" not in str(err)
                e.advance()
            return e.faults.counts(), statuses, e.account_snapshot()["positions"]
        finally:
            e.stop()

    a, b = run(7), run(7)
    assert a == b
    counts, statuses, _ = a
    assert all(counts[k] > 0 for k in FAULT_KINDS), counts
    assert {403, 422, 429} <= set(statuses)


def test_admin_faults_endpoint(ex):
    url = ex.base_url + "/_local/faults"
    r = requests.post(url, json={"arm": [{"kind": "refuse_exit", "symbol": "XOM", "count": None}],
                                 "random": {"kind": "http_5xx", "rate": 0.0, "seed": 3, "api": "data"}}, timeout=5)
    assert r.status_code == 200 and set(r.json()["kinds"]) == set(FAULT_KINDS)
    rules = requests.get(url, timeout=5).json()["rules"]
    assert {"kind": "refuse_exit", "symbol": "XOM", "count": None, "bars": 0} in rules
    assert any(x["kind"] == "http_5xx" and x["rate"] == 0.0 and x["seed"] == 3 for x in rules)
    bad = requests.post(url, json={"arm": {"kind": "teleport"}}, timeout=5)
    assert bad.status_code == 422 and "teleport" in bad.json()["message"]
    bad = requests.post(url, json={"random": {"kind": "http_429", "rate": 1.5}}, timeout=5)
    assert bad.status_code == 422 and "rate" in bad.json()["message"]
    bad = requests.post(url, json={"arm": {"kind": "delayed_fill", "bars": 0}}, timeout=5)
    assert bad.status_code == 422 and "bars" in bad.json()["message"]
    requests.post(url, json={"clear": True}, timeout=5)
    assert requests.get(url, timeout=5).json()["rules"] == []


# ------------------------------------------------------------------------------ a separate process
def start_exchange(tmp_path: Path, *args: str, name: str = "ex") -> tuple[subprocess.Popen, str]:
    log = open(tmp_path / f"{name}.log", "a")
    proc = subprocess.Popen([sys.executable, "-m", "pairtrade.exchange", "--port", "0", "--rate-limit", "0", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    url = None
    deadline = time.time() + 60
    while url is None and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"exchange exited: {(tmp_path / f'{name}.log').read_text()[-2000:]}")
        if line.startswith("REST"):
            url = line.rsplit(" ", 1)[1].strip()
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, url


def test_exchange_process_killed_with_9_resumes_from_its_state_file(tmp_path):
    data = str(shared_file(EQUITIES_5MIN))
    opts = ["--data", data, "--symbols", "XOM,CVX", "--start", START, "--state", str(tmp_path / "ex.sqlite"),
            "--key", KEY, "--secret", KEY]
    proc, url = start_exchange(tmp_path, *opts)
    try:
        rex = RemoteExchange(url)
        tc = TradingClient(KEY, KEY, paper=True, url_override=url)
        tc.submit_order(mkt("XOM", 5, OrderSide.BUY, "k-1"))
        for _ in range(3):
            rex.advance()
        tc.submit_order(mkt("CVX", 2, OrderSide.SELL, "k-2"))   # still open at the kill
        before = view(tc)
        cursor = rex.cursor
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    proc, url2 = start_exchange(tmp_path, *opts)
    try:
        tc2 = TradingClient(KEY, KEY, paper=True, url_override=url2)
        assert view(tc2) == before and cursor == 3
        rex2 = RemoteExchange(url2)
        assert rex2.info["resumed"] and rex2.cursor == 3
        # an advance whose answer was lost is answered again, never replayed twice
        pub = rex2.advance()
        assert [f.client_order_id for f in pub.fills] == ["k-2"]
        r = requests.post(url2 + "/_local/advance", params={"n": 1, "cursor": 3}, timeout=10).json()
        assert r["repeated"] and r["cursor"] == 4 and r["published"][0]["fills"][0]["client_order_id"] == "k-2"
        assert requests.post(url2 + "/_local/advance", params={"cursor": 1}, timeout=10).status_code == 409
        # a different replay on the same state file is refused, exit 2
        bad = subprocess.run([sys.executable, "-m", "pairtrade.exchange", "--data", data, "--symbols", "XOM,CVX",
                              "--start", "2025-06-03", "--state", str(tmp_path / "ex.sqlite"), "--port", "0"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "belongs to another replay" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        proc.terminate()
        proc.wait(10)


PAIRS = [("GS", "MS")]
R_START, R_END = "2025-12-29T14:30:00", "2025-12-31T21:00:00"
slow = pytest.mark.skipif(not os.environ.get("PAIRTRADE_SLOW"), reason="slow (about 15 s): set PAIRTRADE_SLOW=1")


def _setup(tmp_path: Path) -> list[str]:
    """pairs.json and params.json of test_live, and the exchange options replaying what controller.py would."""
    from tests.test_live import write_pairs, write_params

    write_pairs(tmp_path / "pairs.json", PAIRS)
    write_params(tmp_path / "params.json", PAIRS)
    symbols = ",".join(sorted({s for p in PAIRS for s in p}))
    return ["--data", str(shared_file(EQUITIES_5MIN)), "--symbols", symbols, "--regular-hours",
            "--params", str(tmp_path / "params.json"), "--start", R_START, "--end", R_END]


def _controller(tmp_path: Path, run: str, *extra: str, wait: bool = True):
    cmd = [sys.executable, str(ROOT / "controller.py"), "--pairs", str(tmp_path / "pairs.json"),
           "--params", str(tmp_path / "params.json"), "--run-dir", str(tmp_path / run), *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM")}
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path, env=env)


def _expected_clocks() -> list[pd.Timestamp]:
    """The replay clock after each bar (bar start + 5 min) of the regular-hours bars in the range, from the data."""
    from pairtrade.data.bars import regular_hours

    bs = load_bars(shared_file(EQUITIES_5MIN), symbols=sorted({s for p in PAIRS for s in p}))
    starts = sorted(set().union(*(regular_hours(df, "5Min").index for df in bs.bars.values())))
    lo, hi = pd.Timestamp(R_START, tz="UTC"), pd.Timestamp(R_END, tz="UTC")
    return [t + pd.Timedelta(minutes=5) for t in starts if lo <= t <= hi]


def test_controller_killed_with_9_restarts_against_the_same_separate_exchange(tmp_path):
    """Finding 8: controller.py --exchange-url drives a separately started exchange; killed with -9 and started
    again it continues on the same account and clock: no bar replayed twice, none skipped, no order booked
    twice (before, a restart replayed from the start on a fresh account)."""
    common = _setup(tmp_path)
    proc, url = start_exchange(tmp_path, *common, "--state", str(tmp_path / "b.sqlite"), name="b")
    try:
        rex = RemoteExchange(url)
        total = rex.info["bars_total"]
        ctl = _controller(tmp_path, "run", "--exchange-url", url, wait=False)
        wait_for(lambda: requests.get(url + "/_local/info", timeout=5).json()["cursor"] >= total // 3,
                 timeout=120, what="a third of the replay")
        ctl.send_signal(signal.SIGKILL)
        ctl.wait(10)
        at_kill = requests.get(url + "/_local/info", timeout=5).json()["cursor"]
        assert 0 < at_kill < total
        r = _controller(tmp_path, "run", "--exchange-url", url)
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"bar {at_kill} of {total}" in r.stdout         # the restart continued where the exchange stood
        snap = rex.account_snapshot()
    finally:
        proc.terminate()
        proc.wait(10)
    expected = _expected_clocks()
    assert total == len(expected)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["bars_replayed"] == total - at_kill and snap["cursor"] == total
    # one equity row per replayed bar across both controllers: none twice, none skipped (only the bar in
    # flight at the kill may lack its row: replayed by the exchange, never answered to the dead controller)
    ts = [pd.Timestamp(t) for t in pd.read_csv(tmp_path / "run" / "equity.csv")["timestamp"]]
    assert ts == sorted(set(ts)) and set(ts) <= set(expected) and len(ts) >= total - 1
    cids = [o["client_order_id"] for o in snap["orders"]]
    assert cids and len(cids) == len(set(cids))                # no order booked twice
    assert {f["order_id"] for f in snap["fills"]} <= {o["id"] for o in snap["orders"]}


@slow
def test_controller_against_a_separate_exchange_trades_as_in_process(tmp_path):
    """The same replay through a separate exchange process and through the in-process one: same trades, same
    equity curve to the cent."""
    common = _setup(tmp_path)
    ref = _controller(tmp_path, "inproc", "--data", str(shared_file(EQUITIES_5MIN)), "--start", R_START,
                      "--end", R_END)
    assert ref.returncode == 0, ref.stderr[-3000:]
    proc, url = start_exchange(tmp_path, *common, "--state", str(tmp_path / "a.sqlite"), name="a")
    try:
        r = _controller(tmp_path, "remote", "--exchange-url", url)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "connected to local exchange" in r.stdout
    finally:
        proc.terminate()
        proc.wait(10)
    assert _trades(tmp_path / "remote" / "trades.csv") == _trades(tmp_path / "inproc" / "trades.csv")
    assert len(_trades(tmp_path / "remote" / "trades.csv")) > 0
    eq_ref = pd.read_csv(tmp_path / "inproc" / "equity.csv")
    assert pd.read_csv(tmp_path / "remote" / "equity.csv").equals(eq_ref)
    assert [pd.Timestamp(t) for t in eq_ref["timestamp"]] == _expected_clocks()


def test_controller_exchange_url_errors(tmp_path):
    """Bad --exchange-url: one line naming the URL, exit 2, no traceback."""
    _setup(tmp_path)
    r = _controller(tmp_path, "x", "--exchange-url", "http://127.0.0.1:9")
    assert r.returncode == 2 and "127.0.0.1:9" in r.stderr and "Traceback" not in r.stderr


def _trades(path: Path) -> list[tuple]:
    # exit_time is left out: the trader stamps it when the fill update arrives, which races the next bar
    df = pd.read_csv(path)
    return sorted(zip(df["pair"], df["side"], df["entry_time"], df["qty_y"], df["qty_x"], df["pnl_usd"].round(6)))
