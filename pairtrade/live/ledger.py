"""The durable ledger of the traders of one account: orders, fills, per-pair positions, kernel state.

One SQLite database (stdlib :mod:`sqlite3`, write-ahead log) per account and mode, shared by the
traders of all pairs of that account, at a stable place (:func:`state_db_path`)::

    $PAIRTRADE_STATE_DIR or $XDG_STATE_HOME/pairtrade or ~/.local/state/pairtrade
        /<account number, or "local" for a local exchange>/<mode>.sqlite      (mode: paper | live)

``trader.py --state-dir DIR`` puts the database at ``DIR/<mode>.sqlite`` instead (tests, and the
controller's per-run folders).  The database records the account it belongs to and refuses
another one.

Tables
------
``orders``
    every order a trader decided on, one row per ``client_order_id``, written as an *intent*
    before it is submitted (persist, then act) and updated with the venue's id, status and
    cumulative fill.  ``qty`` and ``filled_qty`` are signed shares (+ buy, - sell).
``fills``
    one row per fill increment (signed shares, USD price and estimated fee); unique on
    ``(client_order_id, cum_qty)`` so a fill seen twice (stream and poll, or after a restart)
    is recorded once.  A pair's position in a symbol is the sum of its fills: the pairs sharing
    a symbol never count each other's shares.
``pair_state``
    per pair: the strategy kernel's state, the open round trip, realised PnL, counters of the
    refusal backoff (JSON of :class:`~pairtrade.live.state.TraderState` without its orders).
``trades``
    closed round trips (JSON), also emitted to the controller's ``trades.csv``.

Writes happen when an order is decided, submitted or updated, on a fill and when the kernel's
position state changes -- never on a bar that changes nothing.  Each write is one transaction
(``synchronous=FULL``: durable once committed, also across a power loss).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Iterable

from pairtrade.config import ConfigError
from pairtrade.live.state import OpenTrade, PendingOrder, TraderState

SCHEMA_VERSION = 1
#: statuses after which an order can no longer fill ("not_sent": an intent the venue never booked,
#: "lost": booked once, unknown to the venue later)
FINAL = frozenset({"filled", "canceled", "expired", "rejected", "done_for_day", "replaced", "not_sent", "lost"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pair_state (pair_id TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY, pair_id TEXT NOT NULL, symbol TEXT NOT NULL, qty REAL NOT NULL,
    order_id TEXT, status TEXT NOT NULL, filled_qty REAL NOT NULL DEFAULT 0, filled_avg_price REAL,
    grp INTEGER NOT NULL DEFAULT 0, purpose TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS orders_by_pair ON orders (pair_id, status);
CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pair_id TEXT NOT NULL, client_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL, fee REAL NOT NULL, cum_qty REAL NOT NULL,
    bar_time TEXT, recorded_at TEXT NOT NULL, UNIQUE (client_order_id, cum_qty));
CREATE INDEX IF NOT EXISTS fills_by_pair ON fills (pair_id, symbol);
CREATE TABLE IF NOT EXISTS trades (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pair_id TEXT NOT NULL, exit_time TEXT, record TEXT NOT NULL);
"""

_ORDER_COLUMNS = ("client_order_id", "pair_id", "symbol", "qty", "order_id", "status", "filled_qty",
                  "filled_avg_price", "grp", "purpose", "detail", "created_at", "updated_at")
#: PendingOrder fields stored in the ``detail`` JSON column
_DETAIL = ("attempts", "refused", "cancel_requested", "error", "announced", "alerted", "bar_no")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def state_root(env: dict[str, str] | None = None) -> Path:
    """Folder of the per-account state databases.

    ``$PAIRTRADE_STATE_DIR`` when set, else ``$XDG_STATE_HOME/pairtrade``, else
    ``~/.local/state/pairtrade`` (the XDG base directory specification's default state home).

    Parameters
    ----------
    env : environment (default ``os.environ``)
    """
    env = os.environ if env is None else env
    if env.get("PAIRTRADE_STATE_DIR"):
        return Path(env["PAIRTRADE_STATE_DIR"]).expanduser()
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "pairtrade"


def state_db_path(account: str, mode: str, state_dir: str | Path | None = None,
                  env: dict[str, str] | None = None) -> Path:
    """Where the ledger of ``account`` in ``mode`` lives.

    Parameters
    ----------
    account : the venue's account number, or ``"local"`` for a local exchange (letters, digits,
        ``-`` and ``_`` only)
    mode : ``"paper"`` or ``"live"``
    state_dir : explicit folder (``trader.py --state-dir``): the database is ``state_dir/<mode>.sqlite``
    env : environment for :func:`state_root`

    Returns
    -------
    pathlib.Path
        ``<state_dir>/<mode>.sqlite`` or ``<state_root>/<account>/<mode>.sqlite``.

    Raises
    ------
    ValueError
        ``mode`` not paper/live, or ``account`` empty or with other characters.
    """
    if mode not in ("paper", "live"):
        raise ValueError(f"mode must be 'paper' or 'live', got {mode!r}")
    if state_dir is not None:
        return Path(state_dir).expanduser() / f"{mode}.sqlite"
    if not account or not all(c.isalnum() or c in "-_" for c in account):
        raise ValueError(f"account must be letters, digits, '-' or '_', got {account!r}")
    return state_root(env) / account / f"{mode}.sqlite"


class Ledger:
    """One pair's view of the account's SQLite ledger (see the module docstring).

    Parameters
    ----------
    path : the database file (created with its folder when absent)
    pair_id : the pair this object writes for (``"Y-X"``); reads may cover all pairs

    Raises
    ------
    ValueError
        The file exists but is not a ledger database (names the file).
    """

    def __init__(self, path: str | Path, pair_id: str):
        self.path = Path(path)
        self.pair_id = pair_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise ValueError(f"schema version {row[0]}, this version reads {SCHEMA_VERSION}")
        except (sqlite3.DatabaseError, ValueError) as e:
            raise ValueError(f"{self.path}: not a pairtrade ledger ({e}); move it away to start a new one") from e

    @property
    def dir(self) -> Path:
        return self.path.parent

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ account
    def bind_account(self, account: str) -> None:
        """Record the account this ledger belongs to, or check it is the recorded one.

        Raises
        ------
        ConfigError
            The ledger belongs to another account (names both and the file).
        """
        with self._tx():
            row = self._db.execute("SELECT value FROM meta WHERE key='account'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('account', ?)", (str(account),))
            elif row[0] != str(account):
                raise ConfigError(f"{self.path}: ledger of account {row[0]}, but the venue's account is {account}; "
                                  f"use the ledger of that account (--state-dir / PAIRTRADE_STATE_DIR)")

    def account(self) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key='account'").fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------ transactions
    class _Tx:
        def __init__(self, db: sqlite3.Connection):
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type: Any, *rest: Any) -> None:
            self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")

    def _tx(self) -> "Ledger._Tx":
        return Ledger._Tx(self._db)

    # ------------------------------------------------------------------ state
    def load(self) -> TraderState:
        """The pair's state: stored scalars and kernel, its not-final orders, positions from its fills.

        A pair the ledger has never seen starts flat.

        Raises
        ------
        ValueError
            The stored state cannot be read (names the file and pair).
        """
        row = self._db.execute("SELECT state FROM pair_state WHERE pair_id=?", (self.pair_id,)).fetchone()
        try:
            d = json.loads(row[0]) if row else {}
            names = {f.name for f in fields(TraderState)} - {"pending", "pair_id"}
            d = {k: v for k, v in d.items() if k in names}
            ot = d.get("open_trade")
            d["open_trade"] = OpenTrade(**{k: (float("nan") if v is None and k == "entry_z" else v)
                                           for k, v in ot.items()}) if ot else None
            state = TraderState(self.pair_id, **d)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{self.path}: corrupt state of pair {self.pair_id} ({e}); move the file away "
                             f"to start flat") from e
        gid = (state.group or {}).get("id")
        state.pending = [o for o in self.orders() if o.status not in FINAL or (gid is not None and o.group == gid)]
        pos = self.positions(self.pair_id)
        y, x = self.pair_id.split("-", 1)
        state.qty_y, state.qty_x = pos.get(y, 0.0), pos.get(x, 0.0)
        return state

    def save(self, state: TraderState, orders: Iterable[PendingOrder] = (), fills: Iterable[dict] = (),
             trades: Iterable[dict] = ()) -> None:
        """Write the pair's state, the given orders (insert or update), fills and trades in one transaction.

        Parameters
        ----------
        state : the pair's state (its ``pending`` list is not written; pass changed orders in ``orders``)
        orders : orders to upsert
        fills : ``{client_order_id, symbol, qty, price, fee, cum_qty, bar_time}`` (shares signed, USD);
            a fill already recorded (same order and cumulative quantity) is ignored
        trades : closed round trips (JSON-able dicts with ``exit_time``)
        """
        st = {k: v for k, v in asdict(state).items() if k not in ("pending", "pair_id")}
        blob = json.dumps(st, default=json_default, allow_nan=True)
        now = _now()
        with self._tx() as db:
            db.execute("INSERT INTO pair_state VALUES (?, ?, ?) ON CONFLICT(pair_id) DO UPDATE SET "
                       "state=excluded.state, updated_at=excluded.updated_at", (self.pair_id, blob, now))
            for p in orders:
                detail = json.dumps({k: getattr(p, k) for k in _DETAIL})
                db.execute("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(client_order_id) "
                           "DO UPDATE SET order_id=excluded.order_id, status=excluded.status, "
                           "filled_qty=excluded.filled_qty, filled_avg_price=excluded.filled_avg_price, "
                           "detail=excluded.detail, updated_at=excluded.updated_at",
                           (p.client_order_id, self.pair_id, p.symbol, p.qty, p.order_id, p.status, p.filled_qty,
                            p.filled_avg_price, p.group, p.purpose, detail, now, now))
            for f in fills:
                db.execute("INSERT OR IGNORE INTO fills (pair_id, client_order_id, symbol, qty, price, fee, cum_qty, "
                           "bar_time, recorded_at) VALUES (?,?,?,?,?,?,?,?,?)",
                           (self.pair_id, f["client_order_id"], f["symbol"], f["qty"], f["price"], f["fee"],
                            f["cum_qty"], f.get("bar_time"), now))
            for t in trades:
                db.execute("INSERT INTO trades (pair_id, exit_time, record) VALUES (?,?,?)",
                           (self.pair_id, str(t.get("exit_time")), json.dumps(t, default=json_default)))

    def record_order(self, client_order_id: str, symbol: str, qty: float, purpose: str) -> None:
        """Record an order placed on the pair's behalf by someone else (the controller flattening a pair it
        gave up), *before* it is submitted; the pair's trader follows it like its own (fills recorded at
        its next start or bar).  An id already recorded is left as it is.

        Parameters
        ----------
        client_order_id : the order's id (at most 48 characters; ``<run>-<Y>-<X>-...`` by convention)
        symbol : one of the pair's symbols
        qty : signed shares (+ buy, - sell), non-zero
        purpose : why (e.g. ``"give_up"``)

        Raises
        ------
        ValueError
            ``qty`` zero or not finite, ``client_order_id`` empty or longer than 48 characters, or
            ``symbol`` not a leg of the pair.
        """
        if not client_order_id or len(client_order_id) > 48:
            raise ValueError(f"client_order_id must be 1..48 characters, got {client_order_id!r}")
        if symbol not in self.pair_id.split("-", 1):
            raise ValueError(f"symbol {symbol!r} is not a leg of pair {self.pair_id}")
        if not (isinstance(qty, (int, float)) and math.isfinite(qty) and qty != 0):
            raise ValueError(f"qty must be a non-zero number of shares, got {qty!r}")
        now = _now()
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (client_order_id, self.pair_id, symbol, float(qty), None, "unknown", 0.0, None, 0,
                        purpose, json.dumps({"announced": False}), now, now))

    # ------------------------------------------------------------------ queries
    def orders(self, pair_id: str | None = "", final: bool | None = None) -> list[PendingOrder]:
        """Stored orders, oldest first.

        Parameters
        ----------
        pair_id : ``""`` this ledger's pair, ``None`` every pair, or a pair id
        final : ``False`` only orders that can still fill, ``True`` only final ones, ``None`` all
        """
        pid = self.pair_id if pair_id == "" else pair_id
        q = f"SELECT {', '.join(_ORDER_COLUMNS)} FROM orders"
        args: tuple = ()
        if pid is not None:
            q += " WHERE pair_id=?"
            args = (pid,)
        q += " ORDER BY rowid"
        out = []
        for row in self._db.execute(q, args):
            r = dict(zip(_ORDER_COLUMNS, row))
            if final is not None and (r["status"] in FINAL) != final:
                continue
            p = PendingOrder(r["client_order_id"], r["symbol"], r["qty"], order_id=r["order_id"],
                             filled_qty=r["filled_qty"], filled_avg_price=r["filled_avg_price"], status=r["status"],
                             group=r["grp"], purpose=r["purpose"])
            for k, v in json.loads(r["detail"] or "{}").items():
                if k in _DETAIL:
                    setattr(p, k, v)
            p.pair_id = r["pair_id"]  # type: ignore[attr-defined]
            out.append(p)
        return out

    def has_order(self, client_order_id: str) -> bool:
        """True when any pair of this ledger decided on this ``client_order_id``."""
        return self._db.execute("SELECT 1 FROM orders WHERE client_order_id=?", (client_order_id,)).fetchone() \
            is not None

    def positions(self, pair_id: str | None = "") -> dict[str, float]:
        """Shares held per symbol according to the fills: of this pair (``""``), a pair, or all pairs (``None``)."""
        pid = self.pair_id if pair_id == "" else pair_id
        if pid is None:
            rows = self._db.execute("SELECT symbol, SUM(qty) FROM fills GROUP BY symbol")
        else:
            rows = self._db.execute("SELECT symbol, SUM(qty) FROM fills WHERE pair_id=? GROUP BY symbol", (pid,))
        return {s: _clean(q) for s, q in rows if abs(q) > 1e-9}

    def pair_positions(self) -> dict[str, dict[str, float]]:
        """``{pair_id: {symbol: shares}}`` of every pair with a non-zero position."""
        out: dict[str, dict[str, float]] = {}
        for pid, s, q in self._db.execute("SELECT pair_id, symbol, SUM(qty) FROM fills GROUP BY pair_id, symbol"):
            if abs(q) > 1e-9:
                out.setdefault(pid, {})[s] = _clean(q)
        return out

    def fills(self, pair_id: str | None = "") -> list[dict]:
        """Recorded fill increments (oldest first) of this pair, a pair, or all (``None``)."""
        pid = self.pair_id if pair_id == "" else pair_id
        cols = ("pair_id", "client_order_id", "symbol", "qty", "price", "fee", "cum_qty", "bar_time")
        q = f"SELECT {', '.join(cols)} FROM fills" + ("" if pid is None else " WHERE pair_id=?") + " ORDER BY id"
        return [dict(zip(cols, r)) for r in self._db.execute(q, () if pid is None else (pid,))]

    def trades(self, pair_id: str | None = "") -> list[dict]:
        """Closed round trips (oldest first) of this pair, a pair, or all (``None``)."""
        pid = self.pair_id if pair_id == "" else pair_id
        q = "SELECT record FROM trades" + ("" if pid is None else " WHERE pair_id=?") + " ORDER BY id"
        return [json.loads(r[0]) for r in self._db.execute(q, () if pid is None else (pid,))]

    def export_json(self, state: TraderState, path: str | Path | None = None) -> Path:
        """Write a readable snapshot of the pair's state (``<dir>/<pair_id>.json``; an export, not read back)."""
        from pairtrade.config import atomic_write_json

        path = Path(path) if path is not None else self.dir / f"{self.pair_id}.json"
        d = asdict(state)
        d["ledger"] = str(self.path)
        atomic_write_json(path, json.loads(json.dumps(d, default=json_default)))
        return path


class StateStore(Ledger):
    """The ledger of ``state_dir/<mode>.sqlite`` seen by pair ``pair_id`` (the trader's store).

    Parameters
    ----------
    state_dir : folder of the database
    pair_id : ``"Y-X"``
    mode : ``"paper"`` (default) or ``"live"``
    """

    def __init__(self, state_dir: str | Path, pair_id: str, mode: str = "paper"):
        super().__init__(state_db_path("local", mode, state_dir=state_dir), pair_id)


def _clean(q: float) -> float:
    """Round float noise of summed fills (shares) to 9 decimals."""
    r = round(float(q), 9)
    return 0.0 if r == 0 else r


def json_default(o: Any) -> Any:
    """``json.dumps`` fallback: numpy scalars as numbers, non-finite floats as null, anything else as text."""
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)
