"""Keys from the environment / ``.env`` (python-dotenv).  Values are never logged or echoed.

Alpaca keys are read under either naming convention:

* this project's ``ALPACA_API_KEY`` / ``ALPACA_SECRET_KEY``;
* Alpaca's own ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY`` (the names of Alpaca's SDKs and CLI).
"""

from __future__ import annotations

import os

from dotenv import load_dotenv

LOCAL_KEY = "local-key"
LOCAL_SECRET = "local-secret"

#: (key variable, secret variable) per naming convention, in order of precedence.
KEY_NAMES: tuple[tuple[str, str], ...] = (
    ("ALPACA_API_KEY", "ALPACA_SECRET_KEY"),
    ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY"),
)


class MissingKeys(RuntimeError):
    """Alpaca keys were needed but are not set (the message names the variables, never values)."""


def load_env(path: str | None = None) -> None:
    """Load ``.env`` (or ``path``) into the environment without overriding variables already set."""
    load_dotenv(path or ".env", override=False)


def _env(name: str) -> str | None:
    """The variable's value stripped of surrounding blanks; ``None`` when unset or blank."""
    value = (os.environ.get(name) or "").strip()
    return value or None


def alpaca_keys() -> tuple[str | None, str | None]:
    """The Alpaca ``(key id, secret key)`` from the environment, after loading ``.env``.

    ``ALPACA_API_KEY`` / ``ALPACA_SECRET_KEY`` win over Alpaca's own ``APCA_API_KEY_ID`` /
    ``APCA_API_SECRET_KEY``: the first convention whose two variables are both set gives the
    pair, so a key and a secret of different conventions are never mixed while a complete pair
    exists.  Otherwise each value falls back on its own (current name first), and ``None`` marks
    a value set under neither name.  Empty or blank variables (as left by copying ``.env.example``)
    count as unset.  Values are never logged.

    Returns
    -------
    (key, secret) : tuple of str or None
    """
    load_env()
    for key_name, secret_name in KEY_NAMES:
        key, secret = _env(key_name), _env(secret_name)
        if key and secret:
            return key, secret
    key = next((v for v in (_env(k) for k, _ in KEY_NAMES) if v), None)
    secret = next((v for v in (_env(s) for _, s in KEY_NAMES) if v), None)
    return key, secret


def have_alpaca_keys() -> bool:
    """True when both an Alpaca key id and a secret key are set (either convention, see :func:`alpaca_keys`)."""
    key, secret = alpaca_keys()
    return bool(key and secret)


def load_keys(local: bool) -> tuple[str, str]:
    """``(key, secret)``: the local exchange's fixed pair, or the Alpaca keys of :func:`alpaca_keys`.

    Raises
    ------
    MissingKeys
        When ``local`` is false and no key id or no secret key is set under either convention; the
        message names the variables of both conventions, never a value.
    """
    if local:
        return LOCAL_KEY, LOCAL_SECRET
    key, secret = alpaca_keys()
    if not key or not secret:
        names = " or ".join(f"{k} and {s}" for k, s in KEY_NAMES)
        raise MissingKeys(f"Alpaca keys not set: set {names} (environment or .env) for --exchange alpaca")
    return key, secret
