"""Durable account state of the local exchange: one SQLite file (WAL), written on every change.

:class:`StateStore` keeps what an Alpaca account keeps across a restart of the venue: cash,
positions, every order (with its status, fills and the fault fate pending on it), every fill, and
the replay clock (cursor into the bar timeline).  The :class:`~pairtrade.exchange.engine.Engine`
commits one transaction after each change of account state (an order booked, canceled or
rejected; a bar replayed, with its fills), never on a read; a transaction holds only the orders
that changed and the new fills, so a commit costs the same on the first bar and the ten-thousandth.

Durability: ``journal_mode=WAL``; ``synchronous=NORMAL`` (default) survives a kill -9 of the
exchange process (the commit is in the OS before the response is sent), ``synchronous=FULL``
(``sync="full"``) also survives a power loss at the cost of an fsync per commit.

A state file belongs to one replay: its *fingerprint* (symbols, bar size, replay range, timeline
length and ends, a checksum of the closes, starting cash, cost model) is stored at creation and a
restart with different data or options is refused with :class:`StateMismatch` naming the field.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

SCHEMA = 1


class StateMismatch(ValueError):
    """The state file was written for another replay (different data, range, cash or costs)."""


class StateStore:
    """SQLite store of one exchange account (see module docstring).

    Parameters
    ----------
    path : the state file (created with its folder when absent)
    sync : ``"normal"`` (default; survives a process kill) or ``"full"`` (fsync per commit)

    Raises
    ------
    ValueError
        ``sync`` not ``normal``/``full``; a file that is not a state file of this schema.
    """

    def __init__(self, path: str | Path, sync: str = "normal"):
        if sync not in ("normal", "full"):
            raise ValueError(f"sync must be 'normal' or 'full', got {sync!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={sync.upper()}")
            self.db.executescript("""
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS account (id INTEGER PRIMARY KEY CHECK (id = 1), value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS positions (symbol TEXT PRIMARY KEY, qty REAL NOT NULL,
                                                      avg_entry_price REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS fills (n INTEGER PRIMARY KEY, value TEXT NOT NULL);
            """)
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError as e:
            raise ValueError(f"state file {self.path}: not a local-exchange state database ({e})") from None
        if row is not None and int(row[0]) != SCHEMA:
            raise ValueError(f"state file {self.path}: schema {row[0]}, this exchange writes schema {SCHEMA}")

    # ------------------------------------------------------------------ meta
    def fingerprint(self) -> dict | None:
        """The stored fingerprint, or None for a new file."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
        return json.loads(row[0]) if row else None

    def check_or_init(self, fp: dict) -> bool:
        """Store ``fp`` in a new file, or compare it with the stored one.

        Returns
        -------
        bool
            True when the file already held an account (resume), False when new.

        Raises
        ------
        StateMismatch
            The stored fingerprint differs; the message names the first differing field.
        """
        old = self.fingerprint()
        if old is None:
            with self._lock:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('fingerprint', ?)", (json.dumps(fp),))
                self.db.execute("COMMIT")
            return False
        for k in sorted(set(old) | set(fp)):
            if old.get(k) != fp.get(k):
                raise StateMismatch(
                    f"state file {self.path} belongs to another replay: {k} is {old.get(k)!r} there and "
                    f"{fp.get(k)!r} now; start the exchange with the same --data/--symbols/--start/--end/--cash/"
                    f"costs, or give another --state file")
        return self.db.execute("SELECT 1 FROM account").fetchone() is not None

    # ------------------------------------------------------------------ write
    def commit(self, account: dict, positions: list[tuple[str, float, float]], orders: list[tuple[str, int, dict]],
               fills: list[tuple[int, dict]]) -> None:
        """Write one change of account state atomically.

        Parameters
        ----------
        account : scalars (cash USD, clock, cursor, counters) as a JSON-ready dict
        positions : every open position ``(symbol, qty shares, avg entry USD)``; replaces the table
        orders : changed orders ``(id, seq, JSON-ready dict)``; upserted
        fills : new fills ``(n, JSON-ready dict)``, ``n`` their index in the account's fill list
        """
        with self._lock:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT OR REPLACE INTO account VALUES (1, ?)", (json.dumps(account),))
                db.execute("DELETE FROM positions")
                db.executemany("INSERT INTO positions VALUES (?, ?, ?)", positions)
                db.executemany("INSERT OR REPLACE INTO orders VALUES (?, ?, ?)",
                               [(i, s, json.dumps(v)) for i, s, v in orders])
                db.executemany("INSERT OR REPLACE INTO fills VALUES (?, ?)", [(n, json.dumps(v)) for n, v in fills])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ read
    def load(self) -> dict[str, Any] | None:
        """``{"account", "positions", "orders", "fills"}`` as stored (orders by seq, fills by n), or None."""
        row = self.db.execute("SELECT value FROM account WHERE id = 1").fetchone()
        if row is None:
            return None
        return {
            "account": json.loads(row[0]),
            "positions": self.db.execute("SELECT symbol, qty, avg_entry_price FROM positions").fetchall(),
            "orders": [json.loads(v) for (v,) in self.db.execute("SELECT value FROM orders ORDER BY seq")],
            "fills": [json.loads(v) for (v,) in self.db.execute("SELECT value FROM fills ORDER BY n")],
        }

    def close(self) -> None:
        with self._lock:
            self.db.close()
