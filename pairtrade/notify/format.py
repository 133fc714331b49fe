"""Pure message formatting for notifications (no I/O, no clock reads).

Every function returns plain text (no Markdown/HTML parse mode, so symbols such as ``_`` or ``*`` in a
pair id never break a message). Units are written out: prices and P&L in USD, quantities in shares.
Times are printed in UTC; the caller always passes the time (bar or replay time), this module never reads
the wall clock.

Conventions
-----------
* ``pair_id`` is ``"Y-X"`` (see :attr:`pairtrade.config.PairSpec.pair_id`); when it splits into exactly
  two parts on ``-`` the leg symbols are printed, otherwise the legs are called ``y`` and ``x``.
* ``side`` of an entry is the spread side: ``"long"``/``"long_spread"``/``+1`` buys y and sells x,
  ``"short"``/``"short_spread"``/``-1`` sells y and buys x. Quantities are printed as absolute share counts
  next to the action (BUY/SELL).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Union

#: Telegram rejects messages longer than this many characters.
MAX_MESSAGE_CHARS = 4096
#: At most this many position lines are listed in an equity message; the rest are summarised.
MAX_POSITION_LINES = 40

TimeLike = Union[datetime, int, float, str]

_LONG = {"long", "long_spread", "buy", "1", "+1"}
_SHORT = {"short", "short_spread", "sell", "-1"}


def to_epoch_secs(ts: TimeLike) -> float:
    """Convert a time value to POSIX seconds.

    Parameters
    ----------
    ts : datetime or int or float or str
        A ``datetime`` (a naive one is taken as UTC; ``pandas.Timestamp`` is accepted), POSIX seconds,
        or an ISO-8601 string.

    Returns
    -------
    float
        Seconds since the epoch, UTC.

    Raises
    ------
    TypeError
        If ``ts`` is none of the accepted types.
    ValueError
        If a string is not ISO-8601.
    """
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        return ts.timestamp()
    if isinstance(ts, bool):
        raise TypeError("expected a datetime, POSIX seconds or an ISO-8601 string, got a bool")
    if isinstance(ts, (int, float)):
        return float(ts)
    if isinstance(ts, str):
        text = ts.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        return to_epoch_secs(datetime.fromisoformat(text))
    raise TypeError(f"expected a datetime, POSIX seconds or an ISO-8601 string, got {type(ts).__name__}")


def format_ts(ts: TimeLike | None) -> str:
    """Format a time as ``YYYY-MM-DD HH:MM:SS UTC`` (empty string for ``None``).

    Parameters
    ----------
    ts : datetime or int or float or str or None
        See :func:`to_epoch_secs`.

    Returns
    -------
    str
        The UTC time, or ``""`` when ``ts`` is ``None``.
    """
    if ts is None:
        return ""
    secs = to_epoch_secs(ts)
    return datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_usd(value: float, signed: bool = False) -> str:
    """Format an amount in US dollars, e.g. ``"12,345.67 USD"`` or ``"+12.50 USD"``.

    Parameters
    ----------
    value : float
        Amount in USD.
    signed : bool, default False
        Always print the sign (for P&L).

    Returns
    -------
    str
        The amount with two decimals and thousands separators; ``"n/a USD"`` for NaN.
    """
    value = float(value)
    if math.isnan(value):
        return "n/a USD"
    return f"{value:+,.2f} USD" if signed else f"{value:,.2f} USD"


def format_shares(qty: float) -> str:
    """Format a share quantity: integers without decimals, fractional shares with up to 4 decimals.

    Parameters
    ----------
    qty : float
        Number of shares (sign kept).

    Returns
    -------
    str
        E.g. ``"100 shares"``, ``"-2.5 shares"``, ``"1 share"``.
    """
    qty = float(qty)
    if math.isnan(qty):
        return "n/a shares"
    text = f"{qty:,.0f}" if qty == int(qty) else f"{qty:,.4f}".rstrip("0").rstrip(".")
    return f"{text} share" if abs(qty) == 1 else f"{text} shares"


def leg_symbols(pair_id: str) -> tuple[str, str]:
    """Leg labels of a pair id ``"Y-X"``.

    Parameters
    ----------
    pair_id : str
        Pair identifier.

    Returns
    -------
    tuple of str
        ``(y_symbol, x_symbol)``, or ``("y", "x")`` when the id does not split into two parts on ``-``.
    """
    parts = str(pair_id).split("-")
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    return "y", "x"


def spread_side(side: str | int | float) -> int:
    """Normalise a spread side to ``+1`` (long spread) or ``-1`` (short spread).

    Parameters
    ----------
    side : str or int or float
        ``"long"``, ``"long_spread"``, ``"buy"``, or a positive number for long; ``"short"``,
        ``"short_spread"``, ``"sell"`` or a negative number for short (case-insensitive).

    Returns
    -------
    int
        ``+1`` or ``-1``.

    Raises
    ------
    ValueError
        If the side is neither long nor short.
    """
    if isinstance(side, (int, float)) and not isinstance(side, bool):
        if side > 0:
            return 1
        if side < 0:
            return -1
        raise ValueError("spread side 0 is neither long nor short; pass +1/-1 or 'long'/'short'")
    key = str(side).strip().lower()
    if key in _LONG:
        return 1
    if key in _SHORT:
        return -1
    raise ValueError(f"unknown spread side {side!r}; pass +1/-1 or 'long'/'short'")


def truncate(text: str, max_chars: int = MAX_MESSAGE_CHARS) -> str:
    """Cut a message to Telegram's length limit, marking the cut.

    Parameters
    ----------
    text : str
        Message text.
    max_chars : int, default MAX_MESSAGE_CHARS
        Maximum length in characters.

    Returns
    -------
    str
        ``text`` itself when short enough, else its head followed by ``"…[truncated]"``.
    """
    if len(text) <= max_chars:
        return text
    marker = "…[truncated]"
    return text[: max_chars - len(marker)] + marker


def format_entry(
    pair_id: str,
    side: str | int | float,
    qty_y: float,
    qty_x: float,
    price_y: float,
    price_x: float,
    zscore: float,
    ts: TimeLike | None,
) -> str:
    """Message for a pair entry (both legs).

    Parameters
    ----------
    pair_id : str
        Pair identifier ``"Y-X"``.
    side : str or int or float
        Spread side, see :func:`spread_side`.
    qty_y, qty_x : float
        Shares of the y and x legs (the sign is ignored; the action comes from ``side``).
    price_y, price_x : float
        Fill or reference prices of the legs in USD per share.
    zscore : float
        Spread z-score at the decision bar.
    ts : datetime or int or float or str or None
        Bar/replay time of the entry.

    Returns
    -------
    str
        Plain-text message.
    """
    sign = spread_side(side)
    sym_y, sym_x = leg_symbols(pair_id)
    act_y, act_x = ("BUY", "SELL") if sign > 0 else ("SELL", "BUY")
    notional = abs(float(qty_y)) * float(price_y) + abs(float(qty_x)) * float(price_x)
    lines = [
        f"ENTRY {pair_id}: {'LONG' if sign > 0 else 'SHORT'} spread",
        f"{sym_y} (y): {act_y} {format_shares(abs(float(qty_y)))} @ {format_usd(price_y)}",
        f"{sym_x} (x): {act_x} {format_shares(abs(float(qty_x)))} @ {format_usd(price_x)}",
        f"gross notional: {format_usd(notional)}",
        f"z-score: {float(zscore):+.2f}",
    ]
    if ts is not None:
        lines.append(f"time: {format_ts(ts)}")
    return truncate("\n".join(lines))


def format_exit(pair_id: str, reason: str, pnl_usd: float, ts: TimeLike | None) -> str:
    """Message for a pair exit.

    Parameters
    ----------
    pair_id : str
        Pair identifier ``"Y-X"``.
    reason : str
        Why the position was closed, e.g. ``"exit threshold"``, ``"z-stop"``, ``"dollar stop"``.
    pnl_usd : float
        Realised P&L of the round trip in USD (after costs, as the caller computes it).
    ts : datetime or int or float or str or None
        Bar/replay time of the exit.

    Returns
    -------
    str
        Plain-text message.
    """
    lines = [
        f"EXIT {pair_id}: {reason}",
        f"P&L: {format_usd(pnl_usd, signed=True)}",
    ]
    if ts is not None:
        lines.append(f"time: {format_ts(ts)}")
    return truncate("\n".join(lines))


def format_equity(
    equity_usd: float,
    cash_usd: float,
    positions: Mapping[str, float] | None,
    ts: TimeLike | None,
) -> str:
    """Message for an account equity update.

    Parameters
    ----------
    equity_usd : float
        Account equity in USD.
    cash_usd : float
        Cash in USD.
    positions : mapping of str to float or None
        Open positions, symbol -> signed shares (short is negative). Zero quantities are omitted;
        symbols are listed alphabetically, at most :data:`MAX_POSITION_LINES` of them.
    ts : datetime or int or float or str or None
        Bar/replay time of the snapshot.

    Returns
    -------
    str
        Plain-text message.
    """
    lines = [
        "EQUITY update",
        f"equity: {format_usd(equity_usd)}",
        f"cash: {format_usd(cash_usd)}",
    ]
    held = sorted((str(s), float(q)) for s, q in (positions or {}).items() if float(q) != 0.0)
    if held:
        lines.append(f"positions ({len(held)}):")
        for sym, qty in held[:MAX_POSITION_LINES]:
            lines.append(f"  {sym}: {format_shares(qty)}")
        if len(held) > MAX_POSITION_LINES:
            lines.append(f"  … and {len(held) - MAX_POSITION_LINES} more")
    else:
        lines.append("positions: none")
    if ts is not None:
        lines.append(f"time: {format_ts(ts)}")
    return truncate("\n".join(lines))


def format_alert(text: str, ts: TimeLike | None = None) -> str:
    """Message for an operational alert (e.g. a one-legged position).

    Parameters
    ----------
    text : str
        What happened and, ideally, what the operator should do.
    ts : datetime or int or float or str or None, optional
        Bar/replay time of the alert.

    Returns
    -------
    str
        Plain-text message starting with ``"ALERT"``.
    """
    body = f"ALERT: {text}"
    if ts is not None:
        body += f"\ntime: {format_ts(ts)}"
    return truncate(body)
