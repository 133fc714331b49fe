"""pairtrade.notify — notifications (Telegram via python-telegram-bot) and their message formatting.

Use :func:`make_notifier` with ``TELEGRAM_BOT_TOKEN`` and ``TELEGRAM_CHAT_ID``: it returns a
:class:`TelegramNotifier` when both are set, else a :class:`NullNotifier` with the same methods.
"""

from pairtrade.notify.notifier import (
    NOT_CONFIGURED_NOTICE,
    Notifier,
    NullNotifier,
    TelegramNotifier,
    make_notifier,
    redact,
)

__all__ = [
    "NOT_CONFIGURED_NOTICE",
    "Notifier",
    "NullNotifier",
    "TelegramNotifier",
    "make_notifier",
    "redact",
]
