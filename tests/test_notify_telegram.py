"""TelegramNotifier against a local stand-in for the Telegram Bot API (aiohttp on 127.0.0.1).

The stand-in answers ``sendMessage`` like Telegram: ``{"ok": true, "result": <Message>}`` where the
Message carries ``message_id``, ``date`` and ``chat`` (what python-telegram-bot's ``Message.de_json``
needs). Modes let it fail with HTTP 500, answer 429 with ``retry_after``, stall, or hold requests at a gate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import socket
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp import web

from pairtrade.notify import (
    NOT_CONFIGURED_NOTICE,
    NullNotifier,
    TelegramNotifier,
    make_notifier,
)
from pairtrade.notify import notifier as notifier_mod

TOKEN = "123456:AAH-test-SECRET-token_do_not_log"
CHAT_ID = "4242"
T0 = datetime(2025, 6, 2, 13, 30, tzinfo=timezone.utc)


class FakeBotApi:
    """Minimal Bot API stand-in running its own event loop in a thread."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.started = 0  # requests that reached the handler
        self.mode = "ok"  # ok | 500 | 429once | stall
        self.stall_secs = 3.0
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.content_type == "application/json":
            params = await request.json()
        else:
            params = dict(await request.post())
        with self._lock:
            self.started += 1
            n_started = self.started
        if self.gate is not None:
            await self._loop.run_in_executor(None, self.gate.wait, 10)
        if self.mode == "500":
            return web.Response(status=500, text="Internal Server Error")
        if self.mode == "429once" and n_started == 1:
            body = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
                    "parameters": {"retry_after": 1}}
            return web.json_response(body, status=429)
        if self.mode == "stall":
            await asyncio.sleep(self.stall_secs)
        with self._lock:
            self.calls.append({"path": request.path, "method": method, "params": params})
            message_id = len(self.calls)
        if method != "sendMessage":
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        result = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": int(params["chat_id"]), "type": "private"},
            "text": params.get("text", ""),
        }
        return web.json_response({"ok": True, "result": result})

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> "FakeBotApi":
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def texts(self) -> list[str]:
        with self._lock:
            return [c["params"]["text"] for c in self.calls]


@pytest.fixture
def api():
    server = FakeBotApi().start()
    yield server
    server.stop()


@pytest.fixture
def notifiers():
    made: list[TelegramNotifier] = []

    def make(base_url: str, **kw) -> TelegramNotifier:
        kw.setdefault("min_interval_secs", 0.0)
        kw.setdefault("timeout_secs", 2.0)
        n = TelegramNotifier(TOKEN, CHAT_ID, base_url=base_url, **kw)
        made.append(n)
        return n

    yield make
    for n in made:
        n.close(timeout_secs=1.0)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _assert_no_token(caplog) -> None:
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in (record.exc_text or "")


# --------------------------------------------------------------------------------------------
def test_entry_exit_equity_arrive_with_chat_id_and_text(api, notifiers):
    n = notifiers(api.base_url)
    assert n.notify_entry("XOM-CVX", "long", 100, 85, 110.25, 150.0, -2.1, T0)
    assert n.notify_exit("XOM-CVX", "exit threshold", 321.5, T0 + timedelta(hours=2))
    assert n.notify_equity(100_250.0, 40_000.0, {"XOM": 100, "CVX": -85}, T0 + timedelta(hours=2))
    assert n.notify_alert("XOM-CVX one-legged: XOM filled, CVX rejected; flatten XOM manually")
    assert n.flush(10)
    assert n.stats == {"sent": 4, "failed": 0, "dropped": 0, "pending": 0}
    assert [c["path"] for c in api.calls] == [f"/bot{TOKEN}/sendMessage"] * 4
    assert {c["params"]["chat_id"] for c in api.calls} == {CHAT_ID}
    entry, exit_, equity, alert = api.texts()
    assert entry.startswith("ENTRY XOM-CVX: LONG spread")
    assert "XOM (y): BUY 100 shares @ 110.25 USD" in entry and "z-score: -2.10" in entry
    assert "2025-06-02 13:30:00 UTC" in entry
    assert exit_.startswith("EXIT XOM-CVX: exit threshold") and "P&L: +321.50 USD" in exit_
    assert "equity: 100,250.00 USD" in equity and "cash: 40,000.00 USD" in equity
    assert "CVX: -85 shares" in equity and "XOM: 100 shares" in equity
    assert alert.startswith("ALERT: XOM-CVX one-legged")


def test_equity_interval_throttle_uses_injected_time(api, notifiers):
    n = notifiers(api.base_url, equity_interval_mins=60)
    null = NullNotifier(equity_interval_mins=60)
    steps = [(0, True), (30, False), (59.9, False), (60, True), (61, False), (125, True), (130, False)]
    for mins, due in steps:
        now = T0 + timedelta(minutes=mins)
        assert n.maybe_notify_equity(now, 1000.0 + mins, 500.0, {"KO": 10}) is due, mins
        assert null.maybe_notify_equity(now, 1000.0, 500.0, {}) is due, mins
    # per-call interval override and epoch-second timestamps
    later = (T0 + timedelta(minutes=140)).timestamp()
    assert n.maybe_notify_equity(later, 1.0, 1.0, {}, interval_mins=10) is True
    # a replay that restarts earlier in time resets the throttle
    assert n.maybe_notify_equity(T0 - timedelta(days=1), 2.0, 2.0, {}) is True
    assert n.flush(10)
    texts = api.texts()
    assert len(texts) == 5
    assert "equity: 1,000.00 USD" in texts[0] and "2025-06-02 13:30:00 UTC" in texts[0]
    assert "equity: 1,060.00 USD" in texts[1] and "equity: 1,125.00 USD" in texts[2]


def test_http_500_is_caught_logged_without_token_and_counted(api, notifiers, caplog):
    caplog.set_level(logging.DEBUG)
    api.mode = "500"
    n = notifiers(api.base_url, max_attempts=2)
    t = time.monotonic()
    assert n.notify_exit("KO-PEP", "dollar stop", -50.0, T0) is True
    assert time.monotonic() - t < 0.1  # the caller is not blocked by the network
    assert n.flush(10)
    assert n.stats["failed"] == 1 and n.stats["sent"] == 0
    assert api.started == 2  # one retry for a server error
    failures = [r for r in caplog.records if r.name == "pairtrade.notify" and "sendMessage failed" in r.getMessage()]
    assert len(failures) == 2 and "giving up" in failures[-1].getMessage()
    assert "Internal Server Error" in caplog.text
    assert "<redacted>" in caplog.text  # httpx's request line had the token in its URL
    _assert_no_token(caplog)


def test_closed_port_does_not_raise_and_token_not_logged(notifiers, caplog):
    caplog.set_level(logging.DEBUG)
    n = notifiers(f"http://127.0.0.1:{_closed_port()}/bot", max_attempts=2)
    assert n.notify_alert("one-legged position in XOM-CVX") is True
    assert n.notify_equity(1.0, 1.0, {}, T0) is True
    assert n.flush(15)
    assert n.stats["failed"] == 2 and n.stats["sent"] == 0
    assert "NetworkError" in caplog.text or "TimedOut" in caplog.text
    _assert_no_token(caplog)
    assert TOKEN not in repr(n)


def test_timeout_is_short_and_caught(api, notifiers, caplog):
    api.mode = "stall"
    api.stall_secs = 1.0
    n = notifiers(api.base_url, timeout_secs=0.3, max_attempts=1)
    t = time.monotonic()
    n.notify_alert("slow telegram")
    assert time.monotonic() - t < 0.1
    assert n.flush(5)
    assert time.monotonic() - t < 2.5
    assert n.stats["failed"] == 1
    assert "TimedOut" in caplog.text
    _assert_no_token(caplog)


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_429_retry_after_then_delivered(api, notifiers):
    api.mode = "429once"
    n = notifiers(api.base_url, max_attempts=2)
    n.notify_alert("rate limited once")
    assert n.flush(10)
    assert n.stats["sent"] == 1 and n.stats["failed"] == 0
    assert api.texts() == ["ALERT: rate limited once"]


def test_full_queue_drops_oldest(api, notifiers, caplog):
    api.gate = threading.Event()
    n = notifiers(api.base_url, max_queue=2)
    n.notify_alert("m1")
    deadline = time.monotonic() + 5
    while api.started < 1 and time.monotonic() < deadline:  # m1 is in flight, held at the gate
        time.sleep(0.01)
    for i in range(2, 6):
        n.notify_alert(f"m{i}")
    assert n.stats["dropped"] == 2
    assert "dropped the oldest" in caplog.text
    api.gate.set()
    assert n.flush(10)
    assert api.texts() == ["ALERT: m1", "ALERT: m4", "ALERT: m5"]


def test_close_is_idempotent_and_later_sends_are_refused(api, notifiers):
    n = notifiers(api.base_url)
    n.notify_alert("before close")
    n.close(timeout_secs=5)
    assert api.texts() == ["ALERT: before close"]
    assert n.notify_alert("after close") is False
    n.close()
    assert not n.enabled


def test_bad_input_is_logged_not_raised(api, notifiers, caplog):
    n = notifiers(api.base_url)
    assert n.notify_entry("XOM-CVX", "sideways", 1, 1, 1, 1, 0, T0) is False
    assert "could not format" in caplog.text
    assert n.maybe_notify_equity(object(), 1, 1, {}) is False


def test_not_configured_logs_one_line_once(caplog):
    caplog.set_level(logging.INFO)
    notifier_mod._reset_not_configured_notice()
    made = [make_notifier(None, CHAT_ID), make_notifier(TOKEN, None), make_notifier("", ""),
            make_notifier("  ", "1", base_url="http://127.0.0.1:9/bot")]
    assert all(isinstance(m, NullNotifier) for m in made)
    notices = [r for r in caplog.records if NOT_CONFIGURED_NOTICE in r.getMessage()]
    assert len(notices) == 1
    assert notices[0].getMessage() == (
        "Telegram not configured (set TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID in .env); notifications disabled"
    )
    null = made[0]
    assert null.notify_entry("A-B", "long", 1, 1, 1, 1, 0, T0) is False
    assert null.notify_exit("A-B", "exit", 0, T0) is False
    assert null.notify_equity(1, 1, {}, T0) is False
    assert null.notify_alert("x") is False
    assert null.flush() is True
    null.close()
    assert TOKEN not in caplog.text


def test_make_notifier_configured_returns_telegram(api):
    n = make_notifier(TOKEN, CHAT_ID, base_url=api.base_url, min_interval_secs=0.0)
    try:
        assert isinstance(n, TelegramNotifier)
        n.notify_alert("configured")
        assert n.flush(10)
        assert api.texts() == ["ALERT: configured"]
    finally:
        n.close()


def test_constructor_rejects_missing_settings():
    with pytest.raises(ValueError, match="TELEGRAM_BOT_TOKEN"):
        TelegramNotifier("", CHAT_ID)
    with pytest.raises(ValueError, match="TELEGRAM_CHAT_ID"):
        TelegramNotifier(TOKEN, " ")


def test_min_interval_paces_sends(api, notifiers):
    n = notifiers(api.base_url, min_interval_secs=0.3)
    t = time.monotonic()
    for i in range(3):
        n.notify_alert(f"p{i}")
    assert n.flush(10)
    assert time.monotonic() - t >= 0.55  # 3 sends need at least 2 gaps
    assert json.dumps(api.texts()) == json.dumps(["ALERT: p0", "ALERT: p1", "ALERT: p2"])


def _child_send(n: TelegramNotifier) -> None:
    n.notify_alert("from child process")
    raise SystemExit(0 if n.flush(10) and n.stats["sent"] == 1 else 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_usable_in_forked_child(api, notifiers):
    n = notifiers(api.base_url)
    n.notify_alert("from parent")
    assert n.flush(10)
    child = multiprocessing.get_context("fork").Process(target=_child_send, args=(n,))
    child.start()
    child.join(20)
    assert child.exitcode == 0
    assert sorted(api.texts()) == ["ALERT: from child process", "ALERT: from parent"]
    assert n.stats["sent"] == 1  # the parent's counters are its own
