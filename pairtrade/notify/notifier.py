"""Notifiers: Telegram via python-telegram-bot, and a do-nothing stand-in when Telegram is not configured.

Threading model
---------------
python-telegram-bot's :class:`telegram.Bot` is asynchronous; the trader and controller are ordinary
synchronous code. :class:`TelegramNotifier` therefore exposes a synchronous API whose methods only format
the text and append it to a bounded in-memory queue; they never touch the network and return in
microseconds. One daemon *sender thread* per notifier owns a private asyncio event loop and the
:class:`telegram.Bot`; it takes messages off the queue one at a time and runs
``loop.run_until_complete(bot.send_message(...))`` with short HTTP timeouts and an overall deadline.
Keeping the Bot and its HTTP connection pool on one loop in one thread avoids sharing asyncio objects
across threads, and a slow or dead Telegram only ever delays that thread.

* Queue full: the **oldest** queued message is dropped (recent news is worth more) and counted.
* Failures (network errors, timeouts, HTTP 4xx/5xx, malformed answers) are caught in the sender thread,
  logged at WARNING with the bot token redacted, and counted; nothing is raised to the caller. Transient
  errors (network, timeout, HTTP 429 ``retry_after``) are retried once; client errors are not.
* ``min_interval_secs`` paces consecutive sends (Telegram allows about one message per second per chat).
  This is I/O pacing measured with :func:`time.monotonic`; no trading logic depends on it.
* Processes: the sender thread is started lazily on the first message and restarted (with a fresh queue)
  when the notifier is used in a child process after ``fork``; create or use the notifier in the process
  that sends. :meth:`TelegramNotifier.close` (also registered with :mod:`atexit`) drains the queue for a
  bounded time and shuts the Bot down.

Token hygiene
-------------
The bot token is part of every Bot API URL. It is removed from every log line this module writes and
from exception texts it reports, and a redacting :class:`logging.Filter` is attached to the third-party
loggers that print request URLs (``httpx``, ``telegram.Bot``, ``telegram.request.*``).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pairtrade.notify import format as fmt
from pairtrade.notify.format import TimeLike

log = logging.getLogger("pairtrade.notify")

NOT_CONFIGURED_NOTICE = (
    "Telegram not configured (set TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID in .env); notifications disabled"
)
REDACTED = "<redacted>"

#: Third-party loggers known to print the Bot API URL (which contains the token).
_URL_LOGGERS = (
    "httpx",
    "telegram.Bot",
    "telegram.ext.ExtBot",
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
)

_not_configured_logged = False
_notice_lock = threading.Lock()
_start_lock = threading.Lock()


# --------------------------------------------------------------------------------------------
# Token redaction
# --------------------------------------------------------------------------------------------
def redact(text: object, secrets: tuple[str, ...]) -> str:
    """Return ``str(text)`` with every secret replaced by ``<redacted>``.

    Parameters
    ----------
    text : object
        Anything; converted with :func:`str`.
    secrets : tuple of str
        Strings that must not appear (empty strings are ignored).

    Returns
    -------
    str
        The redacted text.
    """
    out = str(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, REDACTED)
    return out


class _RedactFilter(logging.Filter):
    """Logging filter that removes registered secrets from a record's rendered message."""

    def __init__(self) -> None:
        super().__init__("pairtrade-redact")
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        with self._lock:
            self._secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003 - logging API name
        with self._lock:
            secrets = tuple(self._secrets)
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the emitter's problem; leave it as it is
            return True
        if any(s in message for s in secrets):
            record.msg = redact(message, secrets)
            record.args = None
        if record.exc_info and not record.exc_text:
            # render the traceback now so that it can be redacted too
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and any(s in record.exc_text for s in secrets):
            record.exc_text = redact(record.exc_text, secrets)
        return True


_REDACT_FILTER = _RedactFilter()


def _install_redaction(token: str) -> None:
    _REDACT_FILTER.add(token)
    for name in _URL_LOGGERS + ("pairtrade.notify",):
        logger = logging.getLogger(name)
        if _REDACT_FILTER not in logger.filters:
            logger.addFilter(_REDACT_FILTER)


# --------------------------------------------------------------------------------------------
# Common behaviour
# --------------------------------------------------------------------------------------------
class Notifier:
    """Base class: formats messages and throttles equity updates; subclasses deliver the text.

    Parameters
    ----------
    equity_interval_mins : float, default 60.0
        Default minimum spacing, in minutes of *caller-supplied* time, between equity updates sent
        through :meth:`maybe_notify_equity`.

    Notes
    -----
    All methods are safe to call from any thread and never raise because of delivery problems.
    Formatting errors (e.g. an unknown ``side``) are logged and the message is skipped, so a notification
    bug cannot stop trading either.
    """

    def __init__(self, equity_interval_mins: float = 60.0) -> None:
        if not equity_interval_mins >= 0:
            raise ValueError(f"equity_interval_mins must be >= 0, got {equity_interval_mins!r}")
        self.equity_interval_mins = float(equity_interval_mins)
        self._last_equity_secs: float | None = None
        self._throttle_lock = threading.Lock()

    # -- to be provided by subclasses -------------------------------------------------------
    def send_text(self, text: str) -> bool:
        """Queue a ready-made text for delivery.

        Parameters
        ----------
        text : str
            Message text.

        Returns
        -------
        bool
            ``True`` if the message was accepted for delivery.
        """
        raise NotImplementedError

    @property
    def enabled(self) -> bool:
        """bool: Whether messages are actually delivered somewhere."""
        return False

    def flush(self, timeout_secs: float = 5.0) -> bool:
        """Wait until queued messages have been handled (sent or given up).

        Parameters
        ----------
        timeout_secs : float, default 5.0
            Maximum wait in seconds.

        Returns
        -------
        bool
            ``True`` if nothing is pending any more.
        """
        return True

    def close(self, timeout_secs: float = 5.0) -> None:
        """Drain the queue for at most ``timeout_secs`` seconds and release resources.

        Parameters
        ----------
        timeout_secs : float, default 5.0
            Maximum time spent draining, in seconds.
        """

    def __enter__(self) -> "Notifier":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API ---------------------------------------------------------------------------
    def _safe_send(self, build: Any, *args: Any, **kwargs: Any) -> bool:
        try:
            text = build(*args, **kwargs)
        except Exception as exc:
            log.warning("notification skipped, could not format it: %s: %s", type(exc).__name__, exc)
            return False
        return self.send_text(text)

    def notify_entry(
        self,
        pair_id: str,
        side: str | int | float,
        qty_y: float,
        qty_x: float,
        price_y: float,
        price_x: float,
        zscore: float,
        ts: TimeLike | None,
    ) -> bool:
        """Announce a pair entry.

        Parameters
        ----------
        pair_id : str
            Pair identifier ``"Y-X"``.
        side : str or int or float
            Spread side: ``"long"``/``+1`` (buy y, sell x) or ``"short"``/``-1`` (sell y, buy x).
        qty_y, qty_x : float
            Leg quantities in shares.
        price_y, price_x : float
            Leg prices in USD per share.
        zscore : float
            Spread z-score at the decision bar.
        ts : datetime or int or float or str or None
            Bar/replay time (never the wall clock).

        Returns
        -------
        bool
            ``True`` if the message was accepted for delivery.
        """
        return self._safe_send(fmt.format_entry, pair_id, side, qty_y, qty_x, price_y, price_x, zscore, ts)

    def notify_exit(self, pair_id: str, reason: str, pnl_usd: float, ts: TimeLike | None) -> bool:
        """Announce a pair exit.

        Parameters
        ----------
        pair_id : str
            Pair identifier ``"Y-X"``.
        reason : str
            Exit reason, e.g. ``"exit threshold"``, ``"z-stop"``, ``"dollar stop"``.
        pnl_usd : float
            Realised P&L in USD.
        ts : datetime or int or float or str or None
            Bar/replay time.

        Returns
        -------
        bool
            ``True`` if the message was accepted for delivery.
        """
        return self._safe_send(fmt.format_exit, pair_id, reason, pnl_usd, ts)

    def notify_equity(
        self,
        equity_usd: float,
        cash_usd: float,
        positions: Mapping[str, float] | None,
        ts: TimeLike | None,
    ) -> bool:
        """Send an equity update now (unthrottled; see :meth:`maybe_notify_equity`).

        Parameters
        ----------
        equity_usd : float
            Account equity in USD.
        cash_usd : float
            Cash in USD.
        positions : mapping of str to float or None
            Symbol -> signed shares.
        ts : datetime or int or float or str or None
            Bar/replay time.

        Returns
        -------
        bool
            ``True`` if the message was accepted for delivery.
        """
        return self._safe_send(fmt.format_equity, equity_usd, cash_usd, positions, ts)

    def notify_alert(self, text: str, ts: TimeLike | None = None) -> bool:
        """Send an operational alert, e.g. a one-legged position after a failed rollback.

        Parameters
        ----------
        text : str
            What happened and what to do about it.
        ts : datetime or int or float or str or None, optional
            Bar/replay time.

        Returns
        -------
        bool
            ``True`` if the message was accepted for delivery.
        """
        return self._safe_send(fmt.format_alert, text, ts)

    def maybe_notify_equity(
        self,
        now_ts: TimeLike,
        equity_usd: float,
        cash_usd: float,
        positions: Mapping[str, float] | None,
        interval_mins: float | None = None,
    ) -> bool:
        """Send an equity update if at least ``interval_mins`` have passed since the last one.

        Time is injected: ``now_ts`` is the bar/replay time, so replays throttle deterministically.

        Parameters
        ----------
        now_ts : datetime or int or float or str
            Current bar/replay time.
        equity_usd : float
            Account equity in USD.
        cash_usd : float
            Cash in USD.
        positions : mapping of str to float or None
            Symbol -> signed shares.
        interval_mins : float, optional
            Minimum spacing in minutes; defaults to ``equity_interval_mins`` given at construction.

        Returns
        -------
        bool
            ``True`` if an update was due (and handed to :meth:`notify_equity`), else ``False``.

        Notes
        -----
        The first call always sends. If ``now_ts`` is earlier than the previous send (a replay restarted),
        the throttle restarts from ``now_ts`` and the update is sent.
        """
        interval = self.equity_interval_mins if interval_mins is None else float(interval_mins)
        try:
            now_secs = fmt.to_epoch_secs(now_ts)
        except (TypeError, ValueError) as exc:
            log.warning("equity update skipped, bad now_ts: %s", exc)
            return False
        with self._throttle_lock:
            last = self._last_equity_secs
            due = last is None or now_secs < last or now_secs - last >= interval * 60.0
            if not due:
                return False
            self._last_equity_secs = now_secs
        self.notify_equity(equity_usd, cash_usd, positions, now_ts)
        return True


class NullNotifier(Notifier):
    """Notifier used when Telegram is not configured: same API, delivers nothing.

    Parameters
    ----------
    equity_interval_mins : float, default 60.0
        Kept so that :meth:`maybe_notify_equity` reports the same due/not-due answers as a real notifier.
    """

    def send_text(self, text: str) -> bool:
        """Discard ``text``.

        Parameters
        ----------
        text : str
            Ignored.

        Returns
        -------
        bool
            Always ``False`` (nothing is delivered).
        """
        return False


# --------------------------------------------------------------------------------------------
# Telegram
# --------------------------------------------------------------------------------------------
class TelegramNotifier(Notifier):
    """Send notifications to one Telegram chat through :class:`telegram.Bot` (python-telegram-bot).

    Methods return immediately; a background sender thread delivers the messages (see the module
    docstring for the threading model and failure handling).

    Parameters
    ----------
    token : str
        Bot token from @BotFather. Never logged.
    chat_id : str or int
        Target chat id (a user, group or channel id, or ``"@channelname"``).
    base_url : str, optional
        Bot API base URL; the token is appended (or substituted for ``{token}``). Defaults to
        ``"https://api.telegram.org/bot"``. Tests point it at a local stand-in, e.g.
        ``"http://127.0.0.1:PORT/bot"``.
    min_interval_secs : float, default 1.0
        Minimum wall-clock spacing between two sends (Telegram's per-chat rate limit).
    equity_interval_mins : float, default 60.0
        Default spacing of :meth:`maybe_notify_equity`, in minutes of caller-supplied time.
    max_queue : int, default 100
        Capacity of the message queue; when full the oldest message is dropped.
    timeout_secs : float, default 5.0
        HTTP connect/read/write timeout per request; each send attempt is also bounded by
        ``2 * timeout_secs`` overall.
    max_attempts : int, default 2
        Attempts per message for transient errors (network, timeout, HTTP 429).

    Raises
    ------
    ValueError
        If ``token`` or ``chat_id`` is empty, or a numeric parameter is out of range. Use
        :func:`make_notifier` to get a :class:`NullNotifier` instead when they may be missing.

    Attributes
    ----------
    sent_count, failed_count, dropped_count : int
        Messages delivered, given up after errors, and dropped because the queue was full.
    """

    def __init__(
        self,
        token: str | None,
        chat_id: str | int | None,
        base_url: str | None = None,
        min_interval_secs: float = 1.0,
        equity_interval_mins: float = 60.0,
        max_queue: int = 100,
        timeout_secs: float = 5.0,
        max_attempts: int = 2,
    ) -> None:
        super().__init__(equity_interval_mins=equity_interval_mins)
        if not token:
            raise ValueError("TelegramNotifier needs a bot token (TELEGRAM_BOT_TOKEN); use make_notifier()")
        if chat_id is None or str(chat_id).strip() == "":
            raise ValueError("TelegramNotifier needs a chat id (TELEGRAM_CHAT_ID); use make_notifier()")
        if not min_interval_secs >= 0:
            raise ValueError(f"min_interval_secs must be >= 0, got {min_interval_secs!r}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue!r}")
        if not timeout_secs > 0:
            raise ValueError(f"timeout_secs must be > 0, got {timeout_secs!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
        self._token = str(token)
        _install_redaction(self._token)
        self.chat_id = str(chat_id).strip()
        self.base_url = base_url or "https://api.telegram.org/bot"
        self.min_interval_secs = float(min_interval_secs)
        self.max_queue = int(max_queue)
        self.timeout_secs = float(timeout_secs)
        self.max_attempts = int(max_attempts)
        self.sent_count = 0
        self.failed_count = 0
        self.dropped_count = 0
        self._closed = False
        self._pid = -1
        self._thread: threading.Thread | None = None
        self._init_queue()
        atexit.register(self._atexit)

    def __repr__(self) -> str:
        return f"TelegramNotifier(chat_id={self.chat_id!r}, base_url={self._redact(self.base_url)!r})"

    @property
    def enabled(self) -> bool:
        """bool: ``True`` until :meth:`close` is called."""
        return not self._closed

    @property
    def stats(self) -> dict[str, int]:
        """dict: Counters ``sent``, ``failed``, ``dropped`` and ``pending`` (queued or in flight)."""
        with self._cond:
            return {
                "sent": self.sent_count,
                "failed": self.failed_count,
                "dropped": self.dropped_count,
                "pending": self._pending,
            }

    def _redact(self, text: object) -> str:
        return redact(text, (self._token,))

    def _init_queue(self) -> None:
        self._cond = threading.Condition()
        self._queue: collections.deque[str] = collections.deque()
        self._pending = 0  # queued + in flight
        self._stop = False

    def _ensure_started(self) -> None:
        # called with no lock held; (re)starts the sender thread in this process
        pid = os.getpid()
        if self._pid == pid and self._thread is not None and self._thread.is_alive():
            return
        with _start_lock:
            if self._pid == pid and self._thread is not None and self._thread.is_alive():
                return
            if self._pid != pid and self._pid != -1:
                # forked child: the parent's thread does not exist here and its lock may be held;
                # start afresh (the parent's queued messages and counters stay the parent's)
                self._init_queue()
                self.sent_count = self.failed_count = self.dropped_count = 0
            self._pid = pid
            self._thread = threading.Thread(target=self._run, name="telegram-notifier", daemon=True)
            self._thread.start()

    # -- producer side ------------------------------------------------------------------------
    def send_text(self, text: str) -> bool:
        """Queue ``text`` for delivery to the chat; returns at once.

        Parameters
        ----------
        text : str
            Message text (cut to Telegram's 4096-character limit).

        Returns
        -------
        bool
            ``True`` if queued; ``False`` after :meth:`close`.
        """
        if self._closed:
            return False
        self._ensure_started()
        text = fmt.truncate(str(text))
        with self._cond:
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self._pending -= 1
                self.dropped_count += 1
                dropped = self.dropped_count
            else:
                dropped = 0
            self._queue.append(text)
            self._pending += 1
            self._cond.notify_all()
        if dropped and (dropped == 1 or dropped % 100 == 0):
            log.warning("Telegram queue full (%d messages); dropped the oldest (%d dropped so far)",
                        self.max_queue, dropped)
        return True

    def flush(self, timeout_secs: float = 5.0) -> bool:
        """Wait until every queued message has been sent or given up.

        Parameters
        ----------
        timeout_secs : float, default 5.0
            Maximum wait in seconds.

        Returns
        -------
        bool
            ``True`` if nothing is pending any more.
        """
        deadline = time.monotonic() + max(0.0, timeout_secs)
        with self._cond:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout_secs: float = 5.0) -> None:
        """Drain the queue for at most ``timeout_secs``, stop the sender thread and close the Bot.

        Messages still queued after the deadline are discarded. Calling it twice is harmless.

        Parameters
        ----------
        timeout_secs : float, default 5.0
            Maximum time spent draining, in seconds.
        """
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is None or not thread.is_alive() or self._pid != os.getpid():
            return
        self.flush(timeout_secs)
        with self._cond:
            self._stop = True
            self._queue.clear()
            self._cond.notify_all()
        thread.join(timeout=max(1.0, self.timeout_secs))

    def _atexit(self) -> None:
        try:
            self.close(timeout_secs=2.0)
        except Exception:  # never let interpreter shutdown fail because of notifications
            pass

    # -- sender thread --------------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        bot = None
        try:
            bot = self._make_bot()
            last_send = -float("inf")
            while True:
                with self._cond:
                    while not self._queue and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                    text = self._queue.popleft()
                wait = self.min_interval_secs - (time.monotonic() - last_send)
                if wait > 0:
                    time.sleep(wait)
                ok = self._deliver(loop, bot, text)
                last_send = time.monotonic()
                with self._cond:
                    if ok:
                        self.sent_count += 1
                    else:
                        self.failed_count += 1
                    self._pending -= 1
                    self._cond.notify_all()
        except Exception as exc:  # a bug here must not take the process down; stop notifying
            log.error("Telegram sender thread stopped: %s: %s", type(exc).__name__, self._redact(exc))
            with self._cond:
                self.failed_count += self._pending
                self._pending = 0
                self._queue.clear()
                self._cond.notify_all()
        finally:
            if bot is not None:
                try:
                    loop.run_until_complete(asyncio.wait_for(bot.shutdown(), self.timeout_secs))
                except Exception:
                    pass
            loop.close()

    def _make_bot(self) -> Any:
        from telegram import Bot
        from telegram.request import HTTPXRequest

        t = self.timeout_secs
        request = HTTPXRequest(
            connection_pool_size=2, connect_timeout=t, read_timeout=t, write_timeout=t, pool_timeout=t
        )
        return Bot(token=self._token, base_url=self.base_url, request=request)

    def _deliver(self, loop: asyncio.AbstractEventLoop, bot: Any, text: str) -> bool:
        """One message, up to ``max_attempts`` tries; returns whether it was delivered."""
        from telegram.error import NetworkError, RetryAfter, TimedOut

        for attempt in range(1, self.max_attempts + 1):
            try:
                loop.run_until_complete(
                    asyncio.wait_for(bot.send_message(chat_id=self.chat_id, text=text), 2 * self.timeout_secs)
                )
                return True
            except RetryAfter as exc:
                retry_after = exc.retry_after  # int seconds, or timedelta with PTB_TIMEDELTA=1
                if isinstance(retry_after, timedelta):
                    retry_after = retry_after.total_seconds()
                delay = min(float(retry_after), 2 * self.timeout_secs)
                transient = True
                err = exc
            except (TimedOut, asyncio.TimeoutError) as exc:
                delay, transient, err = 0.5, True, exc
            except NetworkError as exc:
                # python-telegram-bot reports HTTP 5xx and connection failures as NetworkError
                delay, transient, err = 0.5, True, exc
            except Exception as exc:  # BadRequest, Forbidden, InvalidToken, bad JSON, anything else
                delay, transient, err = 0.0, False, exc
            final = not transient or attempt == self.max_attempts
            log.warning(
                "Telegram sendMessage failed (attempt %d/%d%s): %s: %s",
                attempt,
                self.max_attempts,
                ", giving up" if final else ", will retry",
                type(err).__name__,
                self._redact(err),
            )
            if final:
                return False
            if delay > 0:
                with self._cond:
                    if self._stop:
                        return False
                time.sleep(delay)
        return False


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------
def make_notifier(
    token: str | None,
    chat_id: str | int | None,
    base_url: str | None = None,
    **kwargs: Any,
) -> Notifier:
    """Build a :class:`TelegramNotifier`, or a :class:`NullNotifier` when Telegram is not configured.

    When the token or the chat id is missing or blank, the line
    ``"Telegram not configured (set TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID in .env); notifications
    disabled"`` is logged at WARNING, once per process.

    Parameters
    ----------
    token : str or None
        Bot token (``TELEGRAM_BOT_TOKEN``).
    chat_id : str or int or None
        Chat id (``TELEGRAM_CHAT_ID``).
    base_url : str, optional
        Bot API base URL, see :class:`TelegramNotifier`.
    **kwargs
        Further keyword arguments of :class:`TelegramNotifier` (``min_interval_secs``,
        ``equity_interval_mins``, ...); only ``equity_interval_mins`` is used by the null notifier.

    Returns
    -------
    Notifier
        A ready notifier.
    """
    global _not_configured_logged
    token = (token or "").strip()
    chat = "" if chat_id is None else str(chat_id).strip()
    if token and chat:
        return TelegramNotifier(token, chat, base_url=base_url, **kwargs)
    with _notice_lock:
        if not _not_configured_logged:
            _not_configured_logged = True
            log.warning(NOT_CONFIGURED_NOTICE)
    return NullNotifier(equity_interval_mins=kwargs.get("equity_interval_mins", 60.0))


def _reset_not_configured_notice() -> None:
    """Forget that the not-configured notice was logged (for tests)."""
    global _not_configured_logged
    with _notice_lock:
        _not_configured_logged = False
