"""Unmodified alpaca-py websocket clients (StockDataStream, TradingStream) against the local exchange."""

from __future__ import annotations

import json
import queue
import threading
import time

import msgpack
import pandas as pd
import pytest
from alpaca.data.live import StockDataStream
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream
from websockets.sync.client import connect

from pairtrade.config import CostModel
from pairtrade.data.bars import load_bars
from pairtrade.exchange import LocalExchange

START = "2025-06-02T13:30:00Z"


@pytest.fixture(scope="module")
def xom_cvx():
    from tests.conftest import EQUITIES_5MIN, shared_file
    return load_bars(shared_file(EQUITIES_5MIN), symbols=["XOM", "CVX"])


@pytest.fixture
def ex(xom_cvx):
    e = LocalExchange(xom_cvx, start=START, costs=CostModel(), rate_limit_per_min=None).start()
    yield e
    e.stop()


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Runner:
    """Run an alpaca-py stream's blocking ``run()`` in a thread; stop it cleanly."""

    def __init__(self, stream, drop):
        self.stream, self.drop = stream, drop
        self.thread = threading.Thread(target=stream.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.stream._loop is not None and self.stream._loop.is_running(), what="stream loop")
        return self

    def __exit__(self, *exc):
        self.stream.stop()
        self.drop()  # wake the client's 5 s recv() at once
        self.thread.join(10)
        assert not self.thread.is_alive()


def subscribed(ex, sym):
    return any(c.authed and sym in c.subs["bars"] for c in list(ex._data_conns))


def test_data_stream_bars_after_advance_and_single_connection(ex, xom_cvx):
    got: queue.Queue = queue.Queue()

    async def on_bar(bar):
        got.put(bar)

    stream = StockDataStream("local", "local", url_override=ex.data_stream_url)
    stream.subscribe_bars(on_bar, "XOM", "CVX")
    with Runner(stream, ex.faults.drop_data_connections):
        wait_for(lambda: subscribed(ex, "XOM") and subscribed(ex, "CVX"), what="subscription")
        assert got.empty()  # nothing is published before the clock moves
        pub = ex.advance()
        bars = {b.symbol: b for b in (got.get(timeout=5), got.get(timeout=5))}
        for sym in ("XOM", "CVX"):
            row = xom_cvx.bars[sym].loc[pd.Timestamp(START)]
            assert pd.Timestamp(bars[sym].timestamp) == pub.timestamp == pd.Timestamp(START)  # bar start
            assert (bars[sym].open, bars[sym].close, bars[sym].volume) == (row["open"], row["close"], row["volume"])
        # a second connection of the same account is refused with 406
        with connect(ex.data_stream_url) as ws2:
            assert msgpack.unpackb(ws2.recv(5)) == [{"T": "success", "msg": "connected"}]
            ws2.send(msgpack.packb({"action": "auth", "key": "local", "secret": "local"}))
            assert msgpack.unpackb(ws2.recv(5))[0] == {"T": "error", "code": 406, "msg": "connection limit exceeded"}
        # dropped connection: the client reconnects, re-authenticates, re-subscribes, and gets the next bars
        ex.faults.drop_data_connections()
        wait_for(lambda: not subscribed(ex, "XOM"), what="drop")
        wait_for(lambda: subscribed(ex, "XOM"), timeout=15, what="re-subscription")
        pub2 = ex.advance()
        b = got.get(timeout=5)
        assert pd.Timestamp(b.timestamp) == pub2.timestamp == pd.Timestamp(START) + pd.Timedelta(minutes=5)


def test_data_stream_protocol_errors(ex):
    with connect(ex.data_stream_url) as ws:
        msgpack.unpackb(ws.recv(5))
        ws.send(msgpack.packb({"action": "subscribe", "bars": ["XOM"]}))
        assert msgpack.unpackb(ws.recv(5))[0]["code"] == 401
        ws.send(msgpack.packb({"action": "auth", "key": "local", "secret": "nope"}))
        assert msgpack.unpackb(ws.recv(5))[0] == {"T": "error", "code": 402, "msg": "auth failed"}
    with connect(ex.data_stream_url) as ws:
        msgpack.unpackb(ws.recv(5))
        ws.send(msgpack.packb({"action": "auth", "key": "local", "secret": "local"}))
        assert msgpack.unpackb(ws.recv(5)) == [{"T": "success", "msg": "authenticated"}]
        ws.send(msgpack.packb({"action": "subscribe", "bars": ["XOM"], "quotes": ["CVX"]}))
        ack = msgpack.unpackb(ws.recv(5))[0]
        assert ack["T"] == "subscription" and ack["bars"] == ["XOM"] and ack["quotes"] == ["CVX"]
        ws.send(msgpack.packb({"action": "unsubscribe", "quotes": ["CVX"]}))
        assert msgpack.unpackb(ws.recv(5))[0]["quotes"] == []
        ex.advance()
        frame = msgpack.unpackb(ws.recv(5), timestamp=3)
        assert [m["T"] for m in frame] == ["b"] and frame[0]["S"] == "XOM"
        assert isinstance(frame[0]["t"], pd.Timestamp) or frame[0]["t"] is not None
        assert {"n", "vw"} <= set(frame[0])


def test_trade_stream_new_fill_and_cancel(ex, xom_cvx):
    got: queue.Queue = queue.Queue()

    async def on_update(u):
        got.put(u)

    stream = TradingStream("local", "local", paper=True, url_override=ex.trade_stream_url)
    stream.subscribe_trade_updates(on_update)
    tc = TradingClient("local", "local", paper=True, url_override=ex.base_url)
    with Runner(stream, ex.faults.drop_trade_connections):
        wait_for(lambda: any(c.listening for c in list(ex._trade_conns)), what="listen")
        o = tc.submit_order(MarketOrderRequest(symbol="XOM", qty=3, side=OrderSide.SELL,
                                               time_in_force=TimeInForce.DAY, client_order_id="XOM-CVX-7-y"))
        new = got.get(timeout=5)
        assert new.event == "new" and new.order.id == o.id and new.order.client_order_id == "XOM-CVX-7-y"
        ex.advance()
        fill = got.get(timeout=5)
        op = xom_cvx.bars["XOM"].loc[pd.Timestamp(START), "open"]
        assert fill.event == "fill" and fill.order.status.value == "filled"
        assert fill.price == pytest.approx(op - 0.01) and fill.qty == 3 and fill.position_qty == -3
        assert pd.Timestamp(fill.timestamp) == pd.Timestamp(START)
        lim = tc.submit_order(LimitOrderRequest(symbol="CVX", qty=1, side=OrderSide.BUY, limit_price=1.0,
                                                time_in_force=TimeInForce.GTC))
        assert got.get(timeout=5).event == "new"
        tc.cancel_order_by_id(lim.id)
        cancel = got.get(timeout=5)
        assert cancel.event == "canceled" and cancel.order.id == lim.id


def test_trade_stream_raw_protocol(ex):
    with connect(ex.trade_stream_url) as ws:
        ws.send(json.dumps({"action": "authenticate", "data": {"key_id": "local", "secret_key": "local"}}))
        assert json.loads(ws.recv(5)) == {"stream": "authorization",
                                          "data": {"status": "authorized", "action": "authenticate"}}
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(ws.recv(5)) == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
    with connect(ex.trade_stream_url) as ws:
        ws.send(json.dumps({"action": "authenticate", "data": {"key_id": "local", "secret_key": "bad"}}))
        assert json.loads(ws.recv(5))["data"]["status"] == "unauthorized"
