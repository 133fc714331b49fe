"""Fault injection for the local exchange: the failures a live trader must survive.

Every fault has a *kind* (:data:`KINDS`).  A kind is either **armed** for the next ``count``
occasions (:meth:`ExchangeFaults.arm`) or **randomised** at a rate with its own seed
(:meth:`ExchangeFaults.inject_random`); every firing is **counted** per kind
(:meth:`ExchangeFaults.counts`), and every request, order or bar a fault actually changed is
counted in :meth:`ExchangeFaults.hits`.  Everything is thread-safe, so a test (or the admin endpoint
``POST /_local/faults``) can arm faults from any thread while the server runs.

Kinds, their occasion (what is drawn or counted down) and what Alpaca shows the client
-----------------------------------------------------------------------------------------
``submit_504_after_booking``
    each order booked by ``POST /v2/orders``: the order **is** booked (and a ``new`` trade update
    sent), the response is HTTP ``status`` (504) ``{"code": 50400000, "message": "gateway timeout"}``.
    alpaca-py retries 504 (and 429) 3 times after 3 s with the same body, hence the same
    ``client_order_id``; the resend gets Alpaca's 422 ``{"code": 40010001, "message":
    "client_order_id must be unique"}``, which ``submit_order`` raises as ``APIError``.
``reject_on_submit``
    each ``POST /v2/orders``: refused with HTTP ``status`` (403) before booking.
``reject_after_accept`` / ``cancel_after_accept`` / ``expire_after_accept`` / ``done_for_day_after_accept``
    each booked order: it is accepted (``new``) and turns ``rejected`` / ``canceled`` /
    ``expired`` / ``done_for_day`` at the next bar, before any fill, with that trade update.
``partial_fill``
    each fill of an order at a bar: only ``fraction`` (default: uniform in [0.2, 0.8] from the
    fault's own generator) of the remaining quantity fills (whole shares for whole-share orders);
    the rest stays open and fills at later bars (``partial_fill`` then ``fill`` updates).
``delayed_fill``
    each booked order: it fills no earlier than ``bars`` (3) bars after the bar it would have
    filled at.
``http_429`` / ``http_5xx``
    each REST request of ``api`` (``"trading"``, ``"data"`` or ``"any"``): a burst of ``burst``
    (1) consecutive requests is answered without being processed: 429 ``{"code": 42910000,
    "message": "rate limit exceeded"}`` with ``Retry-After``, or ``status`` (default: one of 500,
    502, 503, 504 drawn per burst) with a JSON body (``html=True``: an HTML gateway page, as a
    load balancer sends).  alpaca-py retries 429 and 504 and raises the others at once.
``refuse_exit``
    each order that reduces a position (and ``DELETE /v2/positions``): 403 ``{"code": 40310100,
    "message": "trade denied due to pattern day trading protection"}``; with ``bars`` > 0 every
    exit of the symbol is refused for that many bars after a firing (one episode).
``not_shortable``
    each bar (``symbol``: that symbol, else one drawn from the replayed symbols): the symbol
    becomes ``shortable: false, easy_to_borrow: false`` on ``/v2/assets`` for ``bars`` (20) bars
    (``hard_to_borrow=True``: ``shortable: true, easy_to_borrow: false``); an order that opens
    or extends a short is refused 422 ``{"code": 42210000, "message": "asset \\"X\\" cannot be
    sold short"}`` (Alpaca's answer; hard-to-borrow locates are not modelled).
``drop_data_ws`` / ``drop_trade_ws``
    each bar: every market-data / trade_updates websocket is closed before the bar is published
    (its bars / fill updates are lost; the clients reconnect; nothing is replayed).
``silent_data_ws`` / ``silent_trade_ws``
    each bar: the connections stay open but send nothing for ``bars`` (10) bars ("zombie").

Older one-shot helpers (:meth:`reject_next_order`, :meth:`partial_fill_next`,
:meth:`fail_next_requests`, :meth:`drop_data_connections`, :meth:`drop_trade_connections`, the
``mute_data`` switch) remain and are counted under the matching kind.  Faults are test controls:
they are not part of the persisted account state.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

KINDS: tuple[str, ...] = (
    "submit_504_after_booking", "reject_on_submit", "reject_after_accept", "cancel_after_accept",
    "expire_after_accept", "done_for_day_after_accept", "partial_fill", "delayed_fill", "http_429", "http_5xx",
    "refuse_exit", "not_shortable", "drop_data_ws", "drop_trade_ws", "silent_data_ws", "silent_trade_ws",
)
#: the order status (and trade update event) each "..._after_accept" kind ends in
FATES = {"reject_after_accept": "rejected", "cancel_after_accept": "canceled",
         "expire_after_accept": "expired", "done_for_day_after_accept": "done_for_day"}
#: parameters each kind accepts beyond ``symbol`` (with defaults)
PARAMS: dict[str, dict[str, Any]] = {
    "submit_504_after_booking": {"status": 504, "html": False},
    "reject_on_submit": {"status": 403, "message": "order rejected (fault injection)"},
    "reject_after_accept": {}, "cancel_after_accept": {}, "expire_after_accept": {},
    "done_for_day_after_accept": {},
    "partial_fill": {"fraction": None},
    "delayed_fill": {"bars": 3},
    "http_429": {"burst": 1, "api": "any"},
    "http_5xx": {"burst": 1, "api": "any", "status": None, "html": False},
    "refuse_exit": {"bars": 0},
    "not_shortable": {"bars": 20, "hard_to_borrow": False},
    "drop_data_ws": {}, "drop_trade_ws": {},
    "silent_data_ws": {"bars": 10}, "silent_trade_ws": {"bars": 10},
}
PDT_CODE, PDT_MESSAGE = 40310100, "trade denied due to pattern day trading protection"
RATE_LIMIT_CODE, RATE_LIMIT_MESSAGE = 42910000, "rate limit exceeded"
_5XX = (500, 502, 503, 504)
_5XX_TEXT = {500: "internal server error", 502: "bad gateway", 503: "service unavailable", 504: "gateway timeout"}


def not_shortable_message(symbol: str) -> str:
    """Alpaca's 422 message for a short sale of an asset that cannot be shorted."""
    return f'asset "{symbol}" cannot be sold short'


@dataclass
class RejectSpec:
    """How to reject the next order of a symbol (:meth:`ExchangeFaults.reject_next_order`).

    Attributes
    ----------
    via : ``"http"`` (the submit call fails with ``status``/``message``) or ``"event"`` (the order
        is accepted with status ``rejected`` and a ``rejected`` trade update follows)
    status : HTTP status for ``via="http"``
    message : error message
    """

    via: str = "http"
    status: int = 403
    message: str = "order rejected (fault injection)"


@dataclass
class HttpFault:
    """A REST answer replacing the real one: HTTP ``status``, JSON ``{code, message}`` or HTML."""

    status: int
    message: str
    kind: str
    html: bool = False

    @property
    def code(self) -> int:
        return RATE_LIMIT_CODE if self.status == 429 else self.status * 100000


@dataclass
class Rule:
    """One armed or randomised fault (see :meth:`ExchangeFaults.arm`, :meth:`ExchangeFaults.inject_random`)."""

    kind: str
    symbol: str | None = None
    count: int | None = None          # armed: occasions left (None: until disarmed)
    rate: float | None = None         # randomised: probability per occasion
    seed: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    rng: random.Random | None = None

    def describe(self) -> dict:
        d: dict[str, Any] = {"kind": self.kind}
        if self.symbol:
            d["symbol"] = self.symbol
        if self.rate is not None:
            d.update(rate=self.rate, seed=self.seed)
        else:
            d["count"] = self.count
        d.update(self.params)
        return d


@dataclass
class AdvanceActions:
    """What the faults do at one bar (returned by :meth:`ExchangeFaults.on_advance`)."""

    drop_data: bool = False
    drop_trade: bool = False


def _check_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    if kind not in PARAMS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
    allowed = PARAMS[kind]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"fault {kind!r}: unknown parameter(s) {', '.join(unknown)}; "
                         f"accepted: {', '.join(sorted(allowed)) or 'none'} (and symbol)")
    out = {**allowed, **params}
    for name in ("bars", "burst"):
        if name in out and (not isinstance(out[name], int) or isinstance(out[name], bool) or out[name] < 0
                            or (name == "burst" and out[name] < 1)):
            raise ValueError(f"fault {kind!r}: {name} must be a whole number >= {1 if name == 'burst' else 0}, "
                             f"got {out[name]!r}")
    if kind == "delayed_fill" and out["bars"] < 1:
        raise ValueError(f"fault 'delayed_fill': bars must be >= 1, got {out['bars']}")
    if out.get("fraction") is not None and not 0 < float(out["fraction"]) < 1:
        raise ValueError(f"fault 'partial_fill': fraction must be in (0, 1), got {out['fraction']!r}")
    if "api" in out and out["api"] not in ("trading", "data", "any"):
        raise ValueError(f"fault {kind!r}: api must be 'trading', 'data' or 'any', got {out['api']!r}")
    if kind == "http_5xx" and out["status"] is not None and int(out["status"]) not in range(500, 600):
        raise ValueError(f"fault 'http_5xx': status must be 500..599, got {out['status']!r}")
    if kind == "submit_504_after_booking" and int(out["status"]) not in range(500, 600):
        raise ValueError(f"fault 'submit_504_after_booking': status must be 500..599, got {out['status']!r}")
    if kind == "reject_on_submit" and int(out["status"]) not in range(400, 500):
        raise ValueError(f"fault 'reject_on_submit': status must be 400..499, got {out['status']!r}")
    return out


@dataclass
class ExchangeFaults:
    """Armed and randomised faults of one :class:`~pairtrade.exchange.server.LocalExchange`.

    Attributes
    ----------
    mute_data : when true the data websockets stay connected but send no bars (a "zombie"
        connection; clients defend with ``data_timeout``)
    mute_trade : when true the trade_updates websockets stay connected but send no updates
    """

    mute_data: bool = False
    mute_trade: bool = False
    _rules: list[Rule] = field(default_factory=list)
    _reject: dict[str, list[RejectSpec]] = field(default_factory=dict)
    _partial: dict[str, list[float]] = field(default_factory=dict)
    _fail_requests: list[tuple[int, str]] = field(default_factory=list)
    _burst: list[HttpFault] = field(default_factory=list)
    _burst_api: str = "any"
    _counts: dict[str, int] = field(default_factory=dict)
    _hits: dict[str, int] = field(default_factory=dict)
    _refuse_until: dict[str, int] = field(default_factory=dict)     # symbol -> cursor (exclusive)
    _borrow_until: dict[str, tuple[int, bool]] = field(default_factory=dict)  # symbol -> (cursor, htb)
    _silent_data_until: int = -1
    _silent_trade_until: int = -1
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _drop_data: Callable | None = None       # set by the server
    _drop_trade: Callable | None = None
    symbols: list[str] = field(default_factory=list)   # set by the server (draws for not_shortable)

    # ------------------------------------------------------------------ arming
    def arm(self, kind: str, count: int | None = 1, symbol: str | None = None, **params: Any) -> None:
        """Fire fault ``kind`` on its next ``count`` occasions (``None``: every occasion until disarmed).

        Parameters
        ----------
        kind : one of :data:`KINDS` (module docstring: occasion and effect of each)
        count : occasions to fire on (>= 1), or ``None`` for all until :meth:`disarm`
        symbol : only orders / bars of this symbol are occasions (``None``: any)
        **params : the kind's parameters (:data:`PARAMS`), e.g. ``bars=5``, ``status=502``

        Raises
        ------
        ValueError
            Unknown kind or parameter, or a parameter out of range.
        """
        p = _check_params(kind, params)
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise ValueError(f"fault {kind!r}: count must be a whole number >= 1 or None, got {count!r}")
        with self._lock:
            self._rules.append(Rule(kind, symbol.upper() if symbol else None, count=count, params=p,
                                    rng=random.Random(f"arm:{kind}:{len(self._rules)}")))

    def inject_random(self, kind: str, rate: float, seed: Any = 0, symbol: str | None = None,
                      **params: Any) -> None:
        """Fire fault ``kind`` on each of its occasions with probability ``rate``, reproducibly.

        Each call has its own generator, seeded from ``(seed, kind, symbol)``, so the draws of one
        kind do not depend on which other kinds are randomised.

        Parameters
        ----------
        kind : one of :data:`KINDS`
        rate : probability per occasion, in [0, 1]
        seed : any hashable value (int or str)
        symbol : restrict occasions to one symbol (``None``: any)
        **params : the kind's parameters (:data:`PARAMS`)

        Raises
        ------
        ValueError
            Unknown kind or parameter, or ``rate`` outside [0, 1].
        """
        p = _check_params(kind, params)
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            raise ValueError(f"fault {kind!r}: rate must be a number in [0, 1], got {rate!r}") from None
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault {kind!r}: rate must be in [0, 1], got {rate}")
        with self._lock:
            self._rules.append(Rule(kind, symbol.upper() if symbol else None, rate=rate, seed=seed, params=p,
                                    rng=random.Random(f"{seed}:{kind}:{symbol or '*'}")))

    def disarm(self, kind: str | None = None) -> None:
        """Remove the armed and randomised rules of ``kind`` (all kinds when ``None``); episodes in
        progress (silences, refusals, borrow restrictions) end too."""
        if kind is not None and kind not in PARAMS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
        with self._lock:
            self._rules = [r for r in self._rules if kind is not None and r.kind != kind]
            if kind in (None, "refuse_exit"):
                self._refuse_until.clear()
            if kind in (None, "not_shortable"):
                self._borrow_until.clear()
            if kind in (None, "silent_data_ws"):
                self._silent_data_until = -1
            if kind in (None, "silent_trade_ws"):
                self._silent_trade_until = -1
            if kind in (None, "http_429", "http_5xx"):
                self._burst.clear()

    def rules(self) -> list[dict]:
        """The armed and randomised rules, as JSON-ready dicts."""
        with self._lock:
            return [r.describe() for r in self._rules]

    def counts(self) -> dict[str, int]:
        """``{kind: firings}`` for every kind in :data:`KINDS` (an episode or burst counts once)."""
        with self._lock:
            return {k: self._counts.get(k, 0) for k in KINDS}

    def hits(self) -> dict[str, int]:
        """``{kind: requests, orders or bars the fault changed}`` (a burst of 3 requests is 3 hits)."""
        with self._lock:
            return {k: self._hits.get(k, 0) for k in KINDS}

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._hits.clear()

    def _count(self, kind: str, hits: int = 1, fired: int = 1) -> None:
        self._counts[kind] = self._counts.get(kind, 0) + fired
        self._hits[kind] = self._hits.get(kind, 0) + hits

    def _fire(self, kind: str, symbol: str | None = None, where: Callable[[Rule], bool] | None = None
              ) -> Rule | None:
        """The first rule of ``kind`` that fires on this occasion (consumes one armed count or one draw)."""
        sym = symbol.upper() if symbol else None
        for r in self._rules:
            if r.kind != kind or (r.symbol is not None and r.symbol != sym) or (where and not where(r)):
                continue
            if r.rate is not None:
                if r.rng.random() < r.rate:
                    return r
                continue
            if r.count is None:
                return r
            if r.count > 0:
                r.count -= 1
                if r.count == 0:
                    self._rules.remove(r)
                return r
        return None

    # ------------------------------------------------------------------ REST requests
    def on_request(self, api: str) -> HttpFault | None:
        """Occasion of ``http_429`` / ``http_5xx``: the answer replacing this REST request, if any.

        Parameters
        ----------
        api : ``"trading"`` or ``"data"``
        """
        with self._lock:
            if self._fail_requests:
                status, message = self._fail_requests.pop(0)
                kind = "http_429" if status == 429 else "http_5xx"
                self._count(kind)
                return HttpFault(status, message, kind)
            if self._burst and self._burst_api in ("any", api):
                f = self._burst.pop(0)
                self._count(f.kind, fired=0)
                return f
            for kind in ("http_429", "http_5xx"):
                r = self._fire(kind, where=lambda r: r.params["api"] in ("any", api))
                if r is None:
                    continue
                p = r.params
                if kind == "http_429":
                    f = HttpFault(429, RATE_LIMIT_MESSAGE, kind)
                else:
                    status = int(p["status"]) if p["status"] is not None else r.rng.choice(_5XX)
                    f = HttpFault(status, _5XX_TEXT.get(status, "server error"), kind, bool(p["html"]))
                self._burst = [f] * (int(p["burst"]) - 1)
                self._burst_api = p["api"]
                self._count(kind)
                return f
        return None

    # ------------------------------------------------------------------ orders
    def on_submit(self, symbol: str) -> RejectSpec | None:
        """Occasion of ``reject_on_submit`` (and the one-shot :meth:`reject_next_order`)."""
        with self._lock:
            spec = self.take_reject(symbol)
            if spec is not None:
                return spec
            r = self._fire("reject_on_submit", symbol)
            if r is None:
                return None
            self._count("reject_on_submit")
            return RejectSpec("http", int(r.params["status"]), str(r.params["message"]))

    def refuse_exit(self, symbol: str, cursor: int) -> bool:
        """Occasion of ``refuse_exit``: True when this position-reducing order is refused (PDT 403)."""
        sym = symbol.upper()
        with self._lock:
            if self._refuse_until.get(sym, -1) > cursor:
                self._count("refuse_exit", fired=0)
                return True
            r = self._fire("refuse_exit", sym)
            if r is None:
                return False
            if r.params["bars"] > 0:
                self._refuse_until[sym] = cursor + int(r.params["bars"])
            self._count("refuse_exit")
            return True

    def on_booked(self, symbol: str) -> tuple[str | None, int]:
        """Occasions of a freshly booked order: ``(fate, delay_bars)``.

        ``fate``: the status the order turns to at the next bar (``*_after_accept``; counted when
        applied, :meth:`fate_applied`), ``delay_bars``: extra bars before it may fill
        (``delayed_fill``; counted here).
        """
        with self._lock:
            fate = None
            for kind, status in FATES.items():
                if self._fire(kind, symbol) is not None:
                    fate = status
                    break
            delay = 0
            r = self._fire("delayed_fill", symbol)
            if r is not None:
                delay = int(r.params["bars"])
                self._count("delayed_fill")
            return fate, delay

    def answer_after_booking(self, symbol: str) -> HttpFault | None:
        """Occasion of ``submit_504_after_booking`` (an order just booked by ``POST /v2/orders``):
        the HTTP error replacing the response, or None."""
        with self._lock:
            r = self._fire("submit_504_after_booking", symbol)
            if r is None:
                return None
            status = int(r.params["status"])
            self._count("submit_504_after_booking")
            return HttpFault(status, _5XX_TEXT.get(status, "server error"), "submit_504_after_booking",
                             bool(r.params["html"]))

    def fate_applied(self, status: str) -> None:
        """Count an ``*_after_accept`` fault whose order turned ``status`` at a bar."""
        kind = {v: k for k, v in FATES.items()}.get(status)
        if kind:
            with self._lock:
                self._count(kind)

    def partial_fraction(self, symbol: str) -> float | None:
        """Occasion of ``partial_fill`` (one fill of one order): the fraction to fill, or None."""
        with self._lock:
            q = self._partial.get(symbol.upper())
            if q:
                return q.pop(0)
            r = self._fire("partial_fill", symbol)
            if r is None:
                return None
            f = r.params["fraction"]
            return float(f) if f is not None else r.rng.uniform(0.2, 0.8)

    def partial_applied(self) -> None:
        """Count a partial fill that happened (the order was not filled completely)."""
        with self._lock:
            self._count("partial_fill")

    # ------------------------------------------------------------------ assets
    def borrow(self, symbol: str, cursor: int) -> tuple[bool, bool]:
        """``(shortable, easy_to_borrow)`` of ``symbol`` at replay position ``cursor``."""
        with self._lock:
            until, htb = self._borrow_until.get(symbol.upper(), (-1, False))
        if until > cursor:
            return (True, False) if htb else (False, False)
        return True, True

    def short_refused(self) -> None:
        """Count a short sale refused because of a ``not_shortable`` episode."""
        with self._lock:
            self._count("not_shortable", fired=0)

    def set_borrow(self, symbol: str, bars: int, cursor: int, hard_to_borrow: bool = False) -> None:
        """Make ``symbol`` not shortable (or hard to borrow) for ``bars`` bars from ``cursor``."""
        with self._lock:
            self._borrow_until[symbol.upper()] = (cursor + int(bars), bool(hard_to_borrow))

    # ------------------------------------------------------------------ bars and websockets
    def on_advance(self, cursor: int) -> AdvanceActions:
        """Occasions at the bar with replay position ``cursor`` (before it is published)."""
        act = AdvanceActions()
        with self._lock:
            if self._fire("drop_data_ws") is not None:
                act.drop_data = True
                self._count("drop_data_ws")
            if self._fire("drop_trade_ws") is not None:
                act.drop_trade = True
                self._count("drop_trade_ws")
            for kind in ("silent_data_ws", "silent_trade_ws"):
                r = self._fire(kind)
                if r is not None:
                    until = cursor + int(r.params["bars"])
                    if kind == "silent_data_ws":
                        self._silent_data_until = max(self._silent_data_until, until)
                    else:
                        self._silent_trade_until = max(self._silent_trade_until, until)
                    self._count(kind, hits=0)       # hits: the bars / updates actually withheld
            for r in [r for r in self._rules if r.kind == "not_shortable"]:
                # one occasion per rule and bar; a rule without a symbol then draws one from its own generator
                if self._fire("not_shortable", r.symbol, where=lambda x, r=r: x is r) is None:
                    continue
                sym = r.symbol or (r.rng.choice(sorted(self.symbols)) if self.symbols else None)
                if sym is None:
                    continue
                # restricted from the publication of this bar for `bars` bar periods
                self._borrow_until[sym] = (cursor + 1 + int(r.params["bars"]), bool(r.params["hard_to_borrow"]))
                self._count("not_shortable", hits=0)    # hits: the short sales refused
        return act

    def data_silent(self, cursor: int) -> bool:
        """True when market-data websockets send nothing at replay position ``cursor``."""
        with self._lock:
            silent = self.mute_data or cursor < self._silent_data_until
            if silent:
                self._count("silent_data_ws", fired=0)
            return silent

    def trade_silent(self, cursor: int) -> bool:
        """True when trade_updates websockets send nothing at replay position ``cursor`` (one call
        per update: a silent answer counts one withheld update)."""
        with self._lock:
            silent = self.mute_trade or cursor < self._silent_trade_until
            if silent:
                self._count("silent_trade_ws", fired=0)
            return silent

    def state(self) -> dict:
        """JSON-ready view: kinds, counts, hits, rules, switches and restrictions in force."""
        with self._lock:
            return {"kinds": list(KINDS), "counts": self.counts(), "hits": self.hits(), "rules": self.rules(),
                    "mute_data": self.mute_data, "mute_trade": self.mute_trade,
                    "silent_data_until_cursor": self._silent_data_until,
                    "silent_trade_until_cursor": self._silent_trade_until,
                    "refuse_exit_until_cursor": dict(self._refuse_until),
                    "not_shortable_until_cursor": {s: {"until": u, "hard_to_borrow": h}
                                                   for s, (u, h) in self._borrow_until.items()}}

    # ------------------------------------------------------------------ one-shot helpers (older API)
    def reject_next_order(self, symbol: str, via: str = "http", status: int = 403,
                          message: str = "order rejected (fault injection)") -> None:
        """Reject the next order submitted for ``symbol`` (see :class:`RejectSpec`)."""
        if via not in ("http", "event"):
            raise ValueError(f"via must be 'http' or 'event', got {via!r}")
        with self._lock:
            self._reject.setdefault(symbol.upper(), []).append(RejectSpec(via, int(status), message))

    def take_reject(self, symbol: str) -> RejectSpec | None:
        with self._lock:
            q = self._reject.get(str(symbol).upper())
            if not q:
                return None
            spec = q.pop(0)
            self._count("reject_on_submit" if spec.via == "http" else "reject_after_accept")
            return spec

    def partial_fill_next(self, symbol: str, fraction: float = 0.5) -> None:
        """Fill only ``fraction`` (0..1) of the next fill of ``symbol``; the rest fills on a later bar."""
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        with self._lock:
            self._partial.setdefault(symbol.upper(), []).append(float(fraction))

    def take_partial(self, symbol: str) -> float | None:
        with self._lock:
            q = self._partial.get(symbol.upper())
            return q.pop(0) if q else None

    def fail_next_requests(self, n: int = 1, status: int = 500, message: str = "internal server error") -> None:
        """Answer the next ``n`` Alpaca REST requests with HTTP ``status`` (429/504 are retried by alpaca-py)."""
        with self._lock:
            self._fail_requests.extend([(int(status), message)] * int(n))

    def take_request_failure(self) -> tuple[int, str] | None:
        with self._lock:
            return self._fail_requests.pop(0) if self._fail_requests else None

    def drop_data_connections(self) -> None:
        """Close every market-data websocket now (clients reconnect, re-auth, re-subscribe)."""
        if self._drop_data is not None:
            with self._lock:
                self._count("drop_data_ws")
            self._drop_data()

    def drop_trade_connections(self) -> None:
        """Close every trade_updates websocket now (missed events are not replayed)."""
        if self._drop_trade is not None:
            with self._lock:
                self._count("drop_trade_ws")
            self._drop_trade()

    def clear(self) -> None:
        """Disarm everything (counts are kept; :meth:`reset_counts` clears them)."""
        with self._lock:
            self._reject.clear()
            self._partial.clear()
            self._fail_requests.clear()
            self.mute_data = False
            self.mute_trade = False
            self.disarm()

    # ------------------------------------------------------------------ admin endpoint
    def apply_admin(self, body: dict) -> list[str]:
        """Apply a ``POST /_local/faults`` body (see the server's module docstring).

        Returns
        -------
        list of str
            Immediate actions the server must perform: ``"drop_data"``, ``"drop_trade"``.

        Raises
        ------
        ValueError
            A malformed body, naming the key.
        """
        if not isinstance(body, dict):
            raise ValueError("POST /_local/faults: the body must be a JSON object")
        known = {"arm", "random", "disarm", "clear", "reset_counts", "mute_data", "mute_trade", "drop_data",
                 "drop_trade", "reject_next_order", "reject_via", "partial_fill_next", "fail_next_requests",
                 "fail_status"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValueError(f"POST /_local/faults: unknown key(s) {', '.join(unknown)}; "
                             f"expected {', '.join(sorted(known))}")
        if body.get("clear"):
            self.clear()
        if body.get("reset_counts"):
            self.reset_counts()
        if "disarm" in body:
            d = body["disarm"]
            for k in ([None] if d is True else ([d] if isinstance(d, str) else list(d))):
                self.disarm(k)
        for key, fn in (("arm", self._admin_arm), ("random", self._admin_random)):
            specs = body.get(key)
            if specs is None:
                continue
            for spec in ([specs] if isinstance(specs, dict) else specs):
                if not isinstance(spec, dict) or "kind" not in spec:
                    raise ValueError(f"POST /_local/faults: each {key!r} entry must be an object with 'kind'")
                fn(dict(spec))
        for sym in body.get("reject_next_order", []) or []:
            self.reject_next_order(sym, via=body.get("reject_via", "http"))
        for sym, frac in (body.get("partial_fill_next") or {}).items():
            self.partial_fill_next(sym, float(frac))
        if body.get("fail_next_requests"):
            self.fail_next_requests(int(body["fail_next_requests"]), int(body.get("fail_status", 500)))
        if "mute_data" in body:
            self.mute_data = bool(body["mute_data"])
        if "mute_trade" in body:
            self.mute_trade = bool(body["mute_trade"])
        actions = []
        if body.get("drop_data"):
            with self._lock:
                self._count("drop_data_ws")
            actions.append("drop_data")
        if body.get("drop_trade"):
            with self._lock:
                self._count("drop_trade_ws")
            actions.append("drop_trade")
        return actions

    def _admin_arm(self, spec: dict) -> None:
        kind = spec.pop("kind")
        count = spec.pop("count", 1)
        self.arm(kind, count=count, symbol=spec.pop("symbol", None), **spec)

    def _admin_random(self, spec: dict) -> None:
        kind = spec.pop("kind")
        if "rate" not in spec:
            raise ValueError(f"POST /_local/faults: random fault {kind!r} needs a 'rate'")
        self.inject_random(kind, spec.pop("rate"), spec.pop("seed", 0), symbol=spec.pop("symbol", None), **spec)
