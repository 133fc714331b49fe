"""After the trade_updates websocket drops and alpaca-py reconnects, every trader is told to reconcile
(updates sent while the stream was down are lost; the ledger is checked against the venue by client_order_id)."""

from __future__ import annotations

import time

import pandas as pd

from pairtrade.config import CostModel
from pairtrade.data.bars import load_bars
from pairtrade.exchange import LocalExchange
from pairtrade.live.controller import Controller, start_streams, stop_streams
from tests.conftest import shared_file, EQUITIES_5MIN


class _Proc:
    def __init__(self):
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)


class _Run:
    def __init__(self):
        self.events = []

    def event(self, msg):
        self.events.append(msg)


def _controller_stub():
    ctl = Controller.__new__(Controller)  # only the stream bookkeeping is exercised
    ctl.traders = {"XOM-CVX": _Proc(), "GS-MS": _Proc()}
    ctl.trade_stream_connects = 0
    ctl.run = _Run()
    ctl.run_id = "t"
    import queue

    ctl.bar_queue = queue.Queue()
    return ctl


def test_reconcile_is_sent_on_every_reconnect_not_on_the_first_connect():
    ctl = _controller_stub()
    ctl.on_trade_stream_connected()
    assert all(p.sent == [] for p in ctl.traders.values())
    ctl.on_trade_stream_connected()
    assert all(p.sent == [{"type": "reconcile"}] for p in ctl.traders.values())
    assert ctl.run.events[-1]["event"] == "trade_stream_reconnected"


def test_dropped_trade_stream_reconnects_and_traders_reconcile():
    bs = load_bars(shared_file(EQUITIES_5MIN), symbols=["XOM", "CVX"])
    bs = bs.between(pd.Timestamp("2025-12-01", tz="UTC"), pd.Timestamp("2025-12-03", tz="UTC"))
    ex = LocalExchange(bs, costs=CostModel(), rate_limit_per_min=None, key="k", secret="s").start()
    ctl = _controller_stub()
    streams = start_streams(ctl, "k", "s", ex.data_stream_url, ex.trade_stream_url, ["XOM", "CVX"], paper=True)
    try:
        deadline = time.monotonic() + 15
        while ctl.trade_stream_connects < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ctl.trade_stream_connects == 1
        ex.faults.drop_trade_connections()
        deadline = time.monotonic() + 20
        while ctl.trade_stream_connects < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ctl.trade_stream_connects == 2, "alpaca-py did not reconnect the trade_updates stream"
        assert all({"type": "reconcile"} in p.sent for p in ctl.traders.values())
    finally:
        stop_streams(streams)
        ex.stop()
