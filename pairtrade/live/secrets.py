"""Keys from the environment / ``.env`` (python-dotenv).  Values are never logged or echoed."""

from __future__ import annotations

import os

from dotenv import load_dotenv

LOCAL_KEY = "local-key"
LOCAL_SECRET = "local-secret"


class MissingKeys(RuntimeError):
    """Alpaca keys were needed but are not set (the message names the variables, never values)."""


def load_env(path: str | None = None) -> None:
    """Load ``.env`` (or ``path``) into the environment without overriding variables already set."""
    load_dotenv(path or ".env", override=False)


def have_alpaca_keys() -> bool:
    load_env()
    return bool(os.environ.get("ALPACA_API_KEY") and os.environ.get("ALPACA_SECRET_KEY"))


def load_keys(local: bool) -> tuple[str, str]:
    """``(key, secret)``: the local exchange's fixed pair, or ALPACA_API_KEY/ALPACA_SECRET_KEY.

    Raises
    ------
    MissingKeys
        When ``local`` is false and either variable is unset.
    """
    if local:
        return LOCAL_KEY, LOCAL_SECRET
    load_env()
    key, secret = os.environ.get("ALPACA_API_KEY"), os.environ.get("ALPACA_SECRET_KEY")
    if not key or not secret:
        raise MissingKeys("ALPACA_API_KEY and ALPACA_SECRET_KEY must be set in .env for --exchange alpaca")
    return key, secret
