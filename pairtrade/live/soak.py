"""Fault soak: the daemon against a separate local exchange that misbehaves, checked against its own books.

``python -m pairtrade.bench soak --faults N --seed S [--pairs JPM/BAC,BAC/C,...]`` runs :func:`run_soak`:

1. writes a params file (permissive thresholds, so the pairs trade often) and a pairs file for at
   least four pairs, two of them sharing a leg (default JPM/BAC, BAC/C, XOM/CVX, GS/MS);
2. starts the local exchange as a process of its own (``python -m pairtrade.exchange --state FILE
   --regular-hours ...``) replaying real 5-minute bars of the shared data, and ``controller.py
   --exchange-url URL`` against it: every order, fill and bar goes through the unmodified alpaca-py
   clients of the controller and of its trader processes;
3. runs *episodes* of ``episode_bars`` bars: faults of every kind of
   :data:`pairtrade.exchange.FAULT_KINDS` are armed over ``POST /_local/faults`` (randomised rules,
   each with its own seed drawn from ``seed`` (:data:`RATES`); the costly data-websocket faults
   armed for one bar (:data:`COSTLY`); a kind that has not fired yet also armed for its next
   occasion from a random bar; every ``pdt_every`` episodes every exit of one symbol refused for
   ``pdt_bars`` bars, as Alpaca's pattern-day-trading protection does); some episodes also kill a
   trader process with SIGKILL (found by its command line ``trader.py Y X ... --state-dir <this
   soak's ledger>``; the controller restarts it) or kill the controller with SIGKILL and start it
   again against the same exchange; every ``crash_between_legs_every`` controller starts the traders
   crash once between the two legs of an entry (``PAIRTRADE_FAULT_CRASH_ON=between_legs``); then the
   faults are cleared and ``settle_bars`` calm bars follow;
4. after every episode the controller is stopped (SIGTERM: it stops its traders, which persist), and
   the ledger (:class:`pairtrade.live.ledger.Ledger`) is checked against the exchange
   (``GET /_local/state``) while nothing runs; pairs the traders disabled after repeated refusals
   are enabled again as an operator would (``trader.py Y X --enable``); then the controller is
   started again;
5. stops when at least ``faults`` faults were injected (firings counted by the exchange,
   ``GET /_local/faults``, plus the kills and crashes) and every kind fired at least once, then prints
   one line::

       soak: faults=N orphan_legs=0 duplicate_orders=0 ledger_mismatches=0 lost_fills=0 unhandled_exceptions=0 unalerted_episodes=0

   and a table by fault kind (firings, what the exchange changed, what the traders did).

What is measured
----------------
The *truth* is the exchange's record: its fills, attributed to pairs by their ``client_order_id``
(``<run>-<Y>-<X>-<leg><seq>``, :meth:`pairtrade.live.trader.Trader.owns`), on the replay's bar
timeline.

``orphan_legs``
    one-legged spells (a pair holding one leg without the other, or both legs on the same side,
    by the exchange's fills) during which the pair had nothing working on it -- no order of the
    pair open at the exchange, no order booked or refused -- for more than ``grace_bars``
    consecutive bars, plus pairs one-legged at a check (after the calm bars).  A spell during
    which the venue keeps refusing the repair is not an orphan (it is managed, and alerted).
``duplicate_orders``
    ``client_order_id`` values booked more than once at the exchange, plus round trips exported
    twice to ``trades.csv`` (finding 8 of issue 7: a restarted controller duplicated them).
``ledger_mismatches``
    at each check: symbols whose exchange position differs from the sum of the pairs' ledger
    positions, and (pair, symbol) cells whose ledger position differs from the exchange's fills of
    that pair's orders.
``lost_fills``
    orders whose filled quantity at the exchange exceeds what the ledger recorded at a check.
``unhandled_exceptions``
    ``Traceback`` lines in the standard error of the exchange and of every controller start (which
    carries its traders' standard error, prefixed with the pair).  Blind spot: what a trader writes
    after its controller was killed goes to a closed pipe.
``unalerted_episodes``
    one-legged spells longer than ``alert_after_bars`` (1) without an ``alert`` (or ``pair_given_up``)
    event of the pair between the pair's previous ``recovered`` event and the spell's end.

Time is compressed: alpaca-py's pause before resending a 429/504 answer is
``PAIRTRADE_REST_RETRY_WAIT_SECS`` = 0.2 s instead of 3 s.  The controller waits 10 s for bars that a
dropped or silent market-data websocket withheld, so each such bar costs 10 s of wall time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import requests

log = logging.getLogger("pairtrade.soak")
ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PAIRTRADE_SHARED_DATA", ROOT.parent / "shared" / "data"))
EQUITIES_5MIN = "us_equities_5min_ibkr_15sym_2025-05-12_to_2025-12-31.csv.gz"
DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (("JPM", "BAC"), ("BAC", "C"), ("XOM", "CVX"), ("GS", "MS"))

#: randomised rules of each exchange fault kind during an episode: (rate per occasion, parameters)
RATES: dict[str, tuple[float, dict]] = {
    "submit_504_after_booking": (0.04, {}),
    "reject_on_submit": (0.04, {}),
    "reject_after_accept": (0.04, {}),
    "cancel_after_accept": (0.03, {}),
    "expire_after_accept": (0.03, {}),
    "done_for_day_after_accept": (0.03, {}),
    "partial_fill": (0.05, {}),
    "delayed_fill": (0.04, {"bars": 3}),
    "http_429": (0.008, {"burst": 1}),
    "http_5xx": (0.008, {"burst": 1}),
    "refuse_exit": (0.05, {"bars": 0}),
    "not_shortable": (0.02, {"bars": 10}),
    "drop_trade_ws": (0.02, {}),
    "silent_trade_ws": (0.02, {"bars": 4}),
}
#: kinds armed for one occasion per episode (every ``costly_every`` episodes): each withheld bar costs the
#: controller's 10 s stream deadline
COSTLY: dict[str, dict] = {"drop_data_ws": {}, "silent_data_ws": {"bars": 1}}


def kind_params(kind: str) -> dict:
    """The parameters the soak gives fault ``kind`` (:data:`RATES`, :data:`COSTLY`)."""
    return dict(RATES[kind][1]) if kind in RATES else dict(COSTLY.get(kind, {}))


#: what the soak does itself, besides the exchange's kinds
KILL_KINDS = ("kill_trader", "kill_controller")
LINE_FIELDS = ("orphan_legs", "duplicate_orders", "ledger_mismatches", "lost_fills", "unhandled_exceptions",
               "unalerted_episodes")


class SoakError(RuntimeError):
    """The soak could not run (data absent, a process would not start, the replay stalled)."""


@dataclass
class SoakConfig:
    """Settings of :func:`run_soak`.

    Attributes
    ----------
    faults : faults to inject at least (exchange firings + kills), >= 1
    seed : seed of the fault plan (rules' seeds, kill times, kill victims)
    pairs : ``(Y, X)`` pairs, at least 4 distinct ones with at least one symbol shared by two pairs
    data : 5-minute bars file (default: the shared IBKR equities file)
    start : replay start (ISO, UTC); the traders warm up on the bars from ``warmup_days`` before it
    end : replay end (ISO, UTC; default: the data's end)
    episode_bars : bars with faults armed per episode
    settle_bars : calm bars after each episode's faults, before the check
    grace_bars : bars a pair may stay one-legged with nothing working on it
    alert_after_bars : a one-legged spell longer than this many bars must have been alerted (a leg one
        bar behind the other is ordinary)
    trader_kill_every : one trader is killed with SIGKILL in episodes 1, 1 + this, 1 + 2 * this ...
    controller_kill_every : the controller is killed with SIGKILL (and started again) in episodes 2,
        2 + this, ...
    costly_every : in episodes 1, 1 + this, ...: one dropped and one silent market-data websocket bar
    pdt_every : in episodes 2, 2 + this, ... (0: never) every exit of one symbol is refused for
        ``pdt_bars`` bars from its next exit (Alpaca's pattern-day-trading answer, finding 7)
    pdt_bars : length of that refusal, bars
    crash_between_legs_every : every this many controller starts (0: never), the traders of that start
        crash once between the legs of an entry (``PAIRTRADE_FAULT_CRASH_ON=between_legs``)
    max_episodes : stop after this many episodes even if fewer faults were injected
    workdir : folder for the exchange state, run records and logs (default: a new temporary folder)
    keep : keep ``workdir`` after a clean soak (it is always kept when a figure is not zero)
    retry_wait_secs : alpaca-py's pause before resending 429/504 answers (``PAIRTRADE_REST_RETRY_WAIT_SECS``)
    stall_secs : the replay may make no progress for this long before the soak fails
    """

    faults: int = 200
    seed: int = 1
    pairs: tuple[tuple[str, str], ...] = DEFAULT_PAIRS
    data: str | Path | None = None
    start: str = "2025-09-02T13:30:00"
    end: str | None = None
    episode_bars: int = 40
    settle_bars: int = 8
    grace_bars: int = 3
    alert_after_bars: int = 1
    trader_kill_every: int = 2
    controller_kill_every: int = 3
    costly_every: int = 4
    pdt_every: int = 2
    pdt_bars: int = 12
    crash_between_legs_every: int = 0
    max_episodes: int = 200
    warmup_days: int = 12
    workdir: str | Path | None = None
    keep: bool = False
    retry_wait_secs: float = 0.2
    stall_secs: float = 180.0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the setting that is out of range."""
        if self.faults < 1:
            raise ValueError(f"--faults: expected >= 1, got {self.faults}")
        for name in ("episode_bars", "settle_bars", "grace_bars", "alert_after_bars", "max_episodes",
                     "trader_kill_every",
                     "controller_kill_every", "costly_every", "warmup_days"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        pairs = [tuple(p) for p in self.pairs]
        if len(set(pairs)) < 4 or any(len(p) != 2 or p[0] == p[1] for p in pairs):
            raise ValueError(f"--pairs: expected at least 4 distinct Y/X pairs, got {pairs}")
        legs = Counter(s for p in pairs for s in p)
        if max(legs.values()) < 2:
            raise ValueError(f"--pairs: expected two pairs sharing a leg (e.g. JPM/BAC and BAC/C), got {pairs}")


@dataclass
class SoakResult:
    """Figures of a soak (see the module docstring); :meth:`line` is the one-line verdict."""

    faults: int
    orphan_legs: int
    duplicate_orders: int
    ledger_mismatches: int
    lost_fills: int
    unhandled_exceptions: int
    unalerted_episodes: int
    seed: int
    bars: int
    episodes: int
    wall_secs: float
    by_kind: dict[str, dict] = field(default_factory=dict)
    checks: list[dict] = field(default_factory=list)
    spells: list[dict] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    workdir: str = ""

    def line(self) -> str:
        return "soak: faults=%d " % self.faults + " ".join(f"{k}={getattr(self, k)}" for k in LINE_FIELDS)

    @property
    def clean(self) -> bool:
        return all(getattr(self, k) == 0 for k in LINE_FIELDS) and not self.incidents

    def table(self) -> str:
        """Markdown table by fault kind: firings, what the exchange changed, what was observed."""
        rows = ["| fault | injected | changed at the exchange | observed |", "|---|---:|---:|---|"]
        for kind, d in self.by_kind.items():
            rows.append(f"| `{kind}` | {d['injected']} | {d.get('hits', '-')} | {d.get('observed', '')} |")
        return "\n".join(rows)


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
def data_path(data: str | Path | None = None) -> Path | None:
    """The bars file of the soak, or None when it is absent (the soak is then skipped)."""
    p = Path(data) if data is not None else SHARED / EQUITIES_5MIN
    return p if p.exists() else None


def write_inputs(folder: Path, pairs: tuple[tuple[str, str], ...], warmup_start: pd.Timestamp,
                 in_sample_end: pd.Timestamp) -> tuple[Path, Path]:
    """``pairs.json`` and ``params.json`` with permissive thresholds (entry at |z| >= 1, exit at 0.2).

    Parameters
    ----------
    folder : where to write them
    pairs : ``(Y, X)`` pairs
    warmup_start : ``data.start`` (UTC): the traders warm up on the bars from here
    in_sample_end : ``data.end`` (UTC)

    Returns
    -------
    (pairs file, params file)
    """
    from pairtrade.config import SCHEMA_VERSION, CostModel, ParamsFile, StrategyParams, atomic_write_json

    params = StrategyParams(entry_z=1.0, exit_z=0.2, stop_z=3.5, zscore_window_bars=78, adf_window_bars=100,
                            hurst_window_bars=100, warmup_bars=100, max_notional_usd=10_000.0,
                            risk_per_trade_usd=200.0)
    pf = ParamsFile(schema_version=SCHEMA_VERSION, generated_at=pd.Timestamp.now(tz="UTC").isoformat(),
                    bar_size="5Min", data={"source": "pairtrade soak", "start": warmup_start.isoformat(),
                                           "end": in_sample_end.isoformat()},
                    costs=CostModel(),
                    pairs={f"{y}-{x}": {"y": y, "x": x, "tradable": True, "params": params} for y, x in pairs})
    pp = folder / "params.json"
    atomic_write_json(pp, pf)
    pj = folder / "pairs.json"
    pj.write_text(json.dumps({"pairs": [{"y": y, "x": x} for y, x in pairs]}, indent=1))
    return pj, pp


def replay_timeline(path: Path, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp | None) -> pd.DatetimeIndex:
    """Bar start times the exchange replays: the union of the symbols' regular-hours bars in [start, end]."""
    from pairtrade.data.bars import load_bars, regular_hours

    bs = load_bars(str(path), symbols=symbols)
    idx = pd.DatetimeIndex([])
    for s in symbols:
        idx = idx.union(regular_hours(bs.require(s), bs.bar_size).index)
    idx = idx[idx >= start]
    return idx[idx <= end] if end is not None else idx


# ----------------------------------------------------------------------------------------------
# processes
# ----------------------------------------------------------------------------------------------
def _python_env(retry_wait: float, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PAIRTRADE_REST_RETRY_WAIT_SECS"] = str(retry_wait)
    env.pop("PAIRTRADE_FAULT_CRASH_ON", None)
    env.pop("PAIRTRADE_FAULT_CRASH_AFTER_BARS", None)
    env.update(extra or {})
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM when the soak dies, so no exchange or controller outlives it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_exchange(args: list[str], log_path: Path, env: dict[str, str], timeout: float = 90.0
                   ) -> tuple[subprocess.Popen, str]:
    """``python -m pairtrade.exchange ARGS --port 0``; returns the process and its REST URL."""
    err = open(log_path, "a")
    proc = subprocess.Popen([sys.executable, "-m", "pairtrade.exchange", "--port", "0", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                            preexec_fn=_die_with_parent)
    err.close()
    url = None
    deadline = time.monotonic() + timeout
    lines = []
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        lines.append(line)
        if line.startswith("REST"):
            url = line.rsplit(" ", 1)[1].strip()
    if url is None:
        proc.kill()
        proc.wait(10)
        raise SoakError(f"the exchange did not start: {''.join(lines)[-1000:]} {log_path.read_text()[-2000:]}")
    out = open(log_path.with_suffix(".out"), "w")

    def drain() -> None:
        for ln in proc.stdout:  # type: ignore[union-attr]
            out.write(ln)
        out.close()

    threading.Thread(target=drain, daemon=True).start()
    return proc, url


def trader_pids(state_dir: Path, pair: tuple[str, str] | None = None) -> dict[tuple[str, str], list[int]]:
    """Live trader processes of this soak by pair: command line ``... trader.py Y X ... --state-dir DIR``.

    Only processes whose ``--state-dir`` is ``state_dir`` count (other runs on the machine are left alone).
    """
    out: dict[tuple[str, str], list[int]] = defaultdict(list)
    want = str(state_dir)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/cmdline").read_bytes()
        except OSError:
            continue
        argv = raw.decode(errors="replace").split("\0")
        for i, a in enumerate(argv):
            if a.endswith("trader.py") and i + 2 < len(argv):
                y, x = argv[i + 1], argv[i + 2]
                if "--state-dir" in argv and argv[argv.index("--state-dir") + 1] == want:
                    if pair is None or (y, x) == tuple(pair):
                        out[(y, x)].append(int(d))
                break
    return dict(out)


# ----------------------------------------------------------------------------------------------
# the books: ledger against exchange
# ----------------------------------------------------------------------------------------------
def pair_of(pairs: list[tuple[str, str]], client_order_id: str) -> str | None:
    """The pair (``"Y-X"``) an order belongs to by its ``client_order_id`` ``<run>-<Y>-<X>-<rest>``, or None."""
    parts = str(client_order_id).split("-")
    if len(parts) == 4 and (parts[1], parts[2]) in pairs and parts[3]:
        return f"{parts[1]}-{parts[2]}"
    return None


def _signed(f: dict) -> float:
    return float(f["qty"]) * (1 if f["side"] == "buy" else -1)


def one_legged(qy: float, qx: float) -> bool:
    """True when a pair holds one leg without the other, or both legs on the same side (shares)."""
    return (qy == 0) != (qx == 0) or qy * qx > 0


def compare_books(snap: dict, ledger_db: Path, pairs: list[tuple[str, str]]) -> dict:
    """The ledger against the exchange's record, both at rest.

    Parameters
    ----------
    snap : ``GET /_local/state`` of the exchange (positions, orders, fills; shares, USD)
    ledger_db : the traders' SQLite ledger (:class:`pairtrade.live.ledger.Ledger`)
    pairs : the soak's ``(Y, X)`` pairs

    Returns
    -------
    dict
        ``cursor``; ``symbol_mismatch`` ``{symbol: {exchange, ledger}}`` (exchange position vs the sum of
        the pairs' ledger positions); ``pair_mismatch`` ``{"Y-X:SYM": {exchange, ledger}}`` (the exchange's
        fills of the pair's orders vs the pair's ledger position); ``lost_fills`` (``client_order_id``
        filled further at the exchange than in the ledger); ``phantom_fills`` (the reverse, or unknown
        to the exchange); ``one_legged`` ``{pair: {symbol: shares}}`` by the exchange's fills;
        ``disabled`` (pairs the ledger marks disabled).
    """
    from pairtrade.live.ledger import Ledger

    res: dict[str, Any] = {"cursor": snap["cursor"], "symbol_mismatch": {}, "pair_mismatch": {}, "lost_fills": [],
                           "phantom_fills": [], "one_legged": {}, "disabled": []}
    pids = [f"{y}-{x}" for y, x in pairs]
    ledger_sym: dict[str, float] = {}
    ledger_pairs: dict[str, dict[str, float]] = {}
    lf: dict[str, float] = defaultdict(float)
    if Path(ledger_db).exists():
        led = Ledger(ledger_db, pids[0])
        try:
            ledger_sym = led.positions(None)
            ledger_pairs = led.pair_positions()
            for f in led.fills(None):
                lf[f["client_order_id"]] += f["qty"]
            for pid in pids:
                row = led._db.execute("SELECT state FROM pair_state WHERE pair_id=?", (pid,)).fetchone()
                if row and json.loads(row[0]).get("disabled"):
                    res["disabled"].append(pid)
        finally:
            led.close()
    venue_sym = {s: float(p["qty"]) for s, p in snap["positions"].items() if abs(float(p["qty"])) > 1e-9}
    for s in sorted(set(venue_sym) | set(ledger_sym)):
        if abs(venue_sym.get(s, 0.0) - ledger_sym.get(s, 0.0)) > 1e-6:
            res["symbol_mismatch"][s] = {"exchange": venue_sym.get(s, 0.0), "ledger": ledger_sym.get(s, 0.0)}
    ef: dict[str, float] = defaultdict(float)
    truth: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for f in snap["fills"]:
        ef[f["client_order_id"]] += _signed(f)
        pid = pair_of(pairs, f["client_order_id"])
        if pid is not None:
            truth[pid][f["symbol"]] += _signed(f)
    for pid in pids:
        for s in sorted(set(truth.get(pid, {})) | set(ledger_pairs.get(pid, {}))):
            a, b = truth.get(pid, {}).get(s, 0.0), ledger_pairs.get(pid, {}).get(s, 0.0)
            if abs(a - b) > 1e-6:
                res["pair_mismatch"][f"{pid}:{s}"] = {"exchange": a, "ledger": b}
        y, x = pid.split("-")
        qy, qx = round(truth.get(pid, {}).get(y, 0.0), 9), round(truth.get(pid, {}).get(x, 0.0), 9)
        if one_legged(qy, qx):
            res["one_legged"][pid] = {y: qy, x: qx}
    for cid, q in ef.items():
        if abs(q) > abs(lf.get(cid, 0.0)) + 1e-6:
            res["lost_fills"].append(cid)
        elif abs(lf.get(cid, 0.0)) > abs(q) + 1e-6:
            res["phantom_fills"].append(cid)
    res["phantom_fills"] += [cid for cid, q in lf.items() if cid not in ef and abs(q) > 1e-9]
    return res


def _utc(t: Any) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


#: order statuses after which an order is no longer working at the exchange
FINAL_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "done_for_day", "replaced"})


def bar_index(timeline: pd.DatetimeIndex, t: Any) -> int | None:
    """Index of the last bar of ``timeline`` starting at or before ``t`` (naive = UTC), or None."""
    if t is None or t == "None":
        return None
    try:
        ts = pd.Timestamp(t)
    except (ValueError, TypeError):
        return None
    if ts is pd.NaT:
        return None
    i = int(timeline.searchsorted(_utc(ts), side="right")) - 1
    return i if i >= 0 else None


def one_legged_spells(snap: dict, events: list[dict], pairs: list[tuple[str, str]], timeline: pd.DatetimeIndex,
                      grace_bars: int) -> list[dict]:
    """One-legged spells of each pair by the exchange's fills, with what was working on them and the alerts.

    Parameters
    ----------
    snap : ``GET /_local/state`` (``cursor``: bars replayed; fills stamped with the start of the bar they
        filled at; orders with ``created_at`` = the replay clock, i.e. the end of the bar they were placed
        in, and the times they ended)
    events : the run's ``events.jsonl`` records (``alert``, ``pair_given_up``, ``recovered``, ``reject``,
        ``order_retry`` of each pair, stamped with the bar ``t`` the trader was at)
    pairs : ``(Y, X)`` pairs
    timeline : bar start times of the replay (UTC)
    grace_bars : bars a pair may be one-legged with nothing working on it

    Returns
    -------
    list of dict
        Per spell: ``pair``, ``start_bar``, ``end_bar`` (first bar no longer one-legged, or the cursor),
        ``length`` (bars), ``longest_idle_bars`` (consecutive bars without an order of the pair open at
        the exchange, booked or refused), ``orphan`` (idle longer than ``grace_bars``), ``alerted`` (an
        ``alert`` / ``pair_given_up`` of the pair logged after its last ``recovered`` stamped before the
        spell, and stamped at or before the spell's end), ``open_at_end``.
    """
    end = int(snap["cursor"])
    changes: dict[str, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    for f in snap["fills"]:
        pid, k = pair_of(pairs, f["client_order_id"]), bar_index(timeline, f["timestamp"])
        if pid is not None and k is not None:
            changes[pid][k][f["symbol"]] += _signed(f)
    active: dict[str, set[int]] = defaultdict(set)
    for o in snap["orders"]:
        pid = pair_of(pairs, o["client_order_id"])
        if pid is None or not o.get("created_at"):
            continue
        # created_at is the replay clock, the end of the bar the order was placed in: that bar is active
        a = int(timeline.searchsorted(_utc(o["created_at"]), side="left")) - 1
        if o.get("status") in FINAL_STATUSES:
            closed = (o.get("filled_at") or o.get("canceled_at") or o.get("expired_at") or o.get("failed_at")
                      or o.get("updated_at"))  # done_for_day has no time of its own
            b = bar_index(timeline, closed)
        else:
            b = end
        a = max(a, 0)
        active[pid].update(range(a, (a if b is None else max(a, b)) + 1))
    # (position in the event log, bar): an alert and a recovery stamped with the same bar keep their order
    alerts: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
    recovered: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for pos, e in enumerate(events):
        pid, kind, k = e.get("pair"), e.get("event"), bar_index(timeline, e.get("t"))
        if pid is None:
            continue
        if kind in ("reject", "order_retry") and k is not None:
            active[pid].add(k)
        elif kind in ("alert", "pair_given_up"):
            alerts[pid].append((pos, k))
        elif kind == "recovered" and k is not None:
            recovered[pid].append((pos, k))
    out = []
    for y, x in pairs:
        pid = f"{y}-{x}"
        q = {y: 0.0, x: 0.0}
        start = None
        ch = changes.get(pid, {})
        for k in range(0, end):
            for s, dq in ch.get(k, {}).items():
                q[s] = round(q.get(s, 0.0) + dq, 9)
            one = one_legged(q[y], q[x])
            if one and start is None:
                start = k
            if start is not None and (not one or k == end - 1):
                stop = k if not one else end
                idle = longest = 0
                for j in range(start, stop):
                    idle = 0 if j in active[pid] else idle + 1
                    longest = max(longest, idle)
                since = max([pos for pos, r in recovered[pid] if r < start], default=-1)
                alerted = any(pos > since and (j is None or j <= stop) for pos, j in alerts[pid])
                out.append({"pair": pid, "start_bar": start, "end_bar": stop, "length": stop - start,
                            "start": str(timeline[start]) if start < len(timeline) else None,
                            "longest_idle_bars": longest, "orphan": longest > grace_bars, "alerted": alerted,
                            "open_at_end": one})
                start = None
    return out


class Venue:
    """Admin access to the exchange process (``/_local/...``)."""

    def __init__(self, url: str):
        self.url = url
        self.s = requests.Session()

    def get(self, path: str) -> Any:
        r = self.s.get(self.url + path, timeout=60)
        r.raise_for_status()
        return r.json()

    def faults(self, body: dict) -> dict:
        r = self.s.post(self.url + "/_local/faults", json=body, timeout=30)
        if r.status_code != 200:
            raise SoakError(f"POST /_local/faults {body}: {r.status_code} {r.text[:300]}")
        return r.json()

    def cursor(self) -> tuple[int, int, bool]:
        i = self.get("/_local/info")
        return int(i["cursor"]), int(i["bars_total"]), bool(i.get("done"))


# ----------------------------------------------------------------------------------------------
# the soak
# ----------------------------------------------------------------------------------------------
class Soak:
    """One soak run (see the module docstring); :meth:`run` returns a :class:`SoakResult`."""

    def __init__(self, cfg: SoakConfig, say: Callable[[str], None] = print):
        cfg.validate()
        self.cfg = cfg
        self.say = say
        self.rng = np.random.default_rng([int(cfg.seed), 7])
        self.pairs = [tuple(p) for p in cfg.pairs]
        self.symbols = sorted({s for p in self.pairs for s in p})
        path = data_path(cfg.data)
        if path is None:
            raise SoakError(f"bars file {cfg.data or SHARED / EQUITIES_5MIN} is absent; the soak replays it")
        self.data = path
        self.own_dir = cfg.workdir is None
        self.dir = Path(cfg.workdir or tempfile.mkdtemp(prefix="pairtrade-soak-")).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        if (self.dir / "exchange.sqlite").exists() or (self.dir / "run").exists():
            raise ValueError(f"workdir {self.dir}: holds an earlier soak; expected an empty or new folder")
        self.run_dir = self.dir / "run"
        self.state_dir = self.run_dir / "state"
        self.env = _python_env(cfg.retry_wait_secs)
        self.exchange: subprocess.Popen | None = None
        self.venue: Venue | None = None
        self.ctl: subprocess.Popen | None = None
        self.ctl_starts = 0
        self.kills: Counter = Counter()
        self.checks: list[dict] = []
        self.incidents: list[str] = []
        self.lost: set[str] = set()
        self.enabled: list[str] = []
        self.double_procs: list[str] = []
        self._stop_watch = threading.Event()

    # -------------------------------------------------------------- processes
    def start_controller(self) -> None:
        self.ctl_starts += 1
        n = self.ctl_starts
        extra = {}
        if self.cfg.crash_between_legs_every and n % self.cfg.crash_between_legs_every == 0:
            extra["PAIRTRADE_FAULT_CRASH_ON"] = "between_legs"
        assert self.venue is not None
        cmd = [sys.executable, str(ROOT / "controller.py"), "--exchange-url", self.venue.url,
               "--pairs", str(self.pairs_file), "--params", str(self.params_file), "--run-dir", str(self.run_dir),
               "--env-file", str(self.dir / "no.env")]
        out = open(self.dir / f"controller-{n}.out", "w")
        err = open(self.dir / f"controller-{n}.err", "w")
        self.ctl = subprocess.Popen(cmd, cwd=self.dir, stdout=out, stderr=err,
                                    env=_python_env(self.cfg.retry_wait_secs, extra), preexec_fn=_die_with_parent)
        out.close()
        err.close()

    def _wait_traders_gone(self, timeout: float, why: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not trader_pids(self.state_dir):
                return
            time.sleep(0.1)
        left = trader_pids(self.state_dir)
        self.incidents.append(f"{why}: trader processes still alive after {timeout:.0f} s: {left}")
        for pids in left.values():
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def stop_controller(self, sig: int = signal.SIGTERM, timeout: float = 90.0) -> int | None:
        """Stop the controller with ``sig`` and wait until it and its traders are gone; its exit code."""
        p = self.ctl
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.incidents.append(f"controller start {self.ctl_starts} did not exit within {timeout:.0f} s of "
                                      f"{signal.Signals(sig).name}; killed")
                p.kill()
                p.wait(10)
        self.ctl = None
        self._wait_traders_gone(30.0, f"after {signal.Signals(sig).name} of the controller")
        if sig == signal.SIGTERM and p.returncode != 0:
            self.incidents.append(f"controller start {self.ctl_starts} exited {p.returncode} after SIGTERM (1: a pair "
                                  f"was given up); see {self.dir}/controller-{self.ctl_starts}.out")
        return p.returncode

    def _watch(self) -> None:
        """Sample the trader processes: never two for one pair."""
        while not self._stop_watch.wait(0.2):
            try:
                for pair, pids in trader_pids(self.state_dir).items():
                    if len(pids) > 1:
                        self.double_procs.append(f"{pair[0]}-{pair[1]}: {pids}")
            except Exception:  # /proc races are harmless
                pass

    # -------------------------------------------------------------- replay progress
    def wait_bars(self, n: int, on_bar: Callable[[int], None] | None = None) -> int:
        """Wait until the exchange replayed ``n`` more bars (or the replay ended); returns bars advanced."""
        assert self.venue is not None
        c0, total, done = self.venue.cursor()
        target = min(total, c0 + n)
        last, last_t = c0, time.monotonic()
        seen = c0
        while True:
            c, total, done = self.venue.cursor()
            if c != last:
                last, last_t = c, time.monotonic()
            while seen < c:
                seen += 1
                if on_bar is not None:
                    on_bar(seen)
            if c >= target or done:
                return c - c0
            if self.ctl is not None and self.ctl.poll() is not None:
                code = self.ctl.returncode
                self.incidents.append(f"controller start {self.ctl_starts} exited by itself (code {code}) at bar {c}")
                self.ctl = None
                self._wait_traders_gone(30.0, "after the controller exited")
                self.start_controller()
                last_t = time.monotonic()
            if time.monotonic() - last_t > self.cfg.stall_secs:
                raise SoakError(f"the replay made no progress for {self.cfg.stall_secs:.0f} s at bar {c} "
                                f"(controller log: {self.dir}/controller-{self.ctl_starts}.err)")
            time.sleep(0.05)

    # -------------------------------------------------------------- faults
    def arm(self, episode: int) -> None:
        specs = []
        for kind, (rate, params) in RATES.items():
            seed = int(self.rng.integers(0, 2**31))
            specs.append({"kind": kind, "rate": rate, "seed": seed, **params})
        body: dict = {"random": specs}
        arm = []
        if (episode - 1) % self.cfg.costly_every == 0:
            arm += [{"kind": k, "count": 1, **p} for k, p in COSTLY.items()]
        if self.cfg.pdt_every and episode >= 2 and (episode - 2) % self.cfg.pdt_every == 0:
            sym = self.symbols[int(self.rng.integers(0, len(self.symbols)))]
            arm.append({"kind": "refuse_exit", "count": 1, "symbol": sym, "bars": self.cfg.pdt_bars})
            self.say(f"  every exit of {sym} refused for {self.cfg.pdt_bars} bars from its next exit (PDT-style)")
        if arm:
            body["arm"] = arm
        self.venue.faults(body)  # type: ignore[union-attr]

    def kill_trader(self) -> None:
        live = trader_pids(self.state_dir)
        if not live:
            self.incidents.append("kill_trader: no trader process found")
            return
        pairs = sorted(live)
        pair = pairs[int(self.rng.integers(0, len(pairs)))]
        for pid in live[pair]:
            os.kill(pid, signal.SIGKILL)
        self.kills["kill_trader"] += 1
        self.say(f"  kill -9 trader {pair[0]}-{pair[1]} (pid {', '.join(map(str, live[pair]))})")

    def kill_controller(self) -> None:
        assert self.ctl is not None
        pid = self.ctl.pid
        self.stop_controller(signal.SIGKILL)
        self.kills["kill_controller"] += 1
        self.say(f"  kill -9 controller (pid {pid}); restarting it against the same exchange")
        self.start_controller()

    def injected(self) -> int:
        counts = self.venue.get("/_local/faults")["counts"]  # type: ignore[union-attr]
        return int(sum(counts.values())) + sum(self.kills.values()) + self._crashes_between_legs()

    def _crashes_between_legs(self) -> int:
        n = 0
        for p in sorted(self.dir.glob("controller-*.err")):
            n += p.read_text(errors="replace").count("fault injection: crashing at between_legs")
        return n

    def _unfired(self) -> list[str]:
        """Exchange fault kinds that have not fired yet."""
        from pairtrade.exchange import FAULT_KINDS

        counts = self.venue.get("/_local/faults")["counts"]  # type: ignore[union-attr]
        return [k for k in FAULT_KINDS if counts.get(k, 0) == 0]

    def _all_kinds_fired(self) -> bool:
        return not self._unfired() and all(self.kills[k] > 0 for k in KILL_KINDS)

    # -------------------------------------------------------------- checks
    def check(self, label: str) -> dict:
        """Compare the ledger with the exchange while no controller or trader runs (:func:`compare_books`)."""
        snap = self.venue.get("/_local/state")  # type: ignore[union-attr]
        res = compare_books(snap, self.state_dir / "paper.sqlite", self.pairs)
        res["label"] = label
        self.lost.update(res["lost_fills"])
        self.checks.append(res)
        bad = {k: res[k] for k in ("symbol_mismatch", "pair_mismatch", "lost_fills", "phantom_fills", "one_legged")
               if res[k]}
        self.say(f"  check {label} at bar {res['cursor']}: "
                 + ("ledger = exchange" if not bad else f"DIFFERENCES {bad}")
                 + (f"; disabled pairs {res['disabled']}" if res["disabled"] else ""))
        return res

    def enable(self, pair_ids: list[str]) -> None:
        """``trader.py Y X --enable`` for pairs the traders disabled (what an operator does after a look)."""
        for pid in pair_ids:
            y, x = pid.split("-")
            cmd = [sys.executable, str(ROOT / "trader.py"), y, x, "--params", str(self.params_file), "--state-dir",
                   str(self.state_dir), "--trading-url", self.venue.url, "--enable", "--run-id", "soak"]  # type: ignore
            r = subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                               env=self.env)
            with open(self.dir / "enable.err", "a") as f:
                f.write(r.stderr)
            self.enabled.append(pid)
            if r.returncode != 0:
                self.incidents.append(f"trader.py {y} {x} --enable exited {r.returncode}: {r.stderr[-300:]}")

    # -------------------------------------------------------------- main loop
    def run(self) -> SoakResult:
        t0 = time.monotonic()
        cfg = self.cfg
        start = pd.Timestamp(cfg.start, tz="UTC") if pd.Timestamp(cfg.start).tz is None else pd.Timestamp(cfg.start)
        end = None
        if cfg.end:
            end = pd.Timestamp(cfg.end, tz="UTC") if pd.Timestamp(cfg.end).tz is None else pd.Timestamp(cfg.end)
        self.timeline = replay_timeline(self.data, self.symbols, start, end)
        if len(self.timeline) < cfg.episode_bars + cfg.settle_bars:
            raise SoakError(f"only {len(self.timeline)} bars to replay from {start}; expected more")
        warm = start - pd.Timedelta(days=cfg.warmup_days)
        self.pairs_file, self.params_file = write_inputs(self.dir, tuple(self.pairs), warm,
                                                         start - pd.Timedelta(minutes=5))
        ex_args = ["--data", str(self.data), "--symbols", ",".join(self.symbols), "--regular-hours", "--params",
                   str(self.params_file), "--start", start.isoformat(), "--state", str(self.dir / "exchange.sqlite"),
                   "--rate-limit", "0"]
        if end is not None:
            ex_args += ["--end", end.isoformat()]
        self.exchange, url = start_exchange(ex_args, self.dir / "exchange.err", self.env)
        self.venue = Venue(url)
        watcher = threading.Thread(target=self._watch, daemon=True)
        watcher.start()
        self.say(f"soak seed {cfg.seed}: {len(self.pairs)} pairs {', '.join(f'{y}/{x}' for y, x in self.pairs)} on "
                 f"{self.data.name}, replay from {start} ({len(self.timeline)} bars available); exchange {url}; "
                 f"files in {self.dir}")
        episode = 0
        try:
            self.start_controller()
            while episode < cfg.max_episodes:
                episode += 1
                c0 = self.venue.cursor()[0]
                if c0 >= len(self.timeline) - 1:
                    self.incidents.append(f"the data ran out after {episode - 1} episodes")
                    break
                self.arm(episode)
                kill_t = (episode - 1) % cfg.trader_kill_every == 0
                kill_c = episode >= 2 and (episode - 2) % cfg.controller_kill_every == 0
                at_t = int(self.rng.integers(1, cfg.episode_bars))
                at_c = int(self.rng.integers(1, cfg.episode_bars))
                done_t = done_c = False
                # a kind that has not fired yet is also armed for one occasion, from a random bar of the episode
                unfired = [k for k in self._unfired() if not (k in COSTLY and (episode - 1) % cfg.costly_every == 0)]
                at_k = {k: int(self.rng.integers(0, max(1, cfg.episode_bars // 2))) for k in unfired}

                def on_bar(c: int) -> None:
                    nonlocal done_t, done_c
                    k = c - c0
                    due = [kind for kind, at in at_k.items() if at <= k]
                    if due:
                        self.venue.faults({"arm": [{"kind": kind, "count": 1, **kind_params(kind)}  # type: ignore
                                                   for kind in due]})
                        for kind in due:
                            del at_k[kind]
                    if kill_t and not done_t and k >= at_t:
                        done_t = True
                        self.kill_trader()
                    if kill_c and not done_c and k >= at_c:
                        done_c = True
                        self.kill_controller()

                self.wait_bars(cfg.episode_bars, on_bar)
                self.venue.faults({"clear": True})
                self.wait_bars(cfg.settle_bars)
                self.stop_controller(signal.SIGTERM)
                res = self.check(f"episode {episode}")
                if res.get("disabled"):
                    self.enable(res["disabled"])
                n = self.injected()
                self.say(f"episode {episode}: bar {res['cursor']}, faults injected so far {n}")
                if n >= cfg.faults and self._all_kinds_fired():
                    break
                self.start_controller()
        finally:
            self._stop_watch.set()
            if self.ctl is not None:
                self.stop_controller(signal.SIGTERM)
            try:
                snap = self.venue.get("/_local/state") if self.venue else None
                fstate = self.venue.get("/_local/faults") if self.venue else None
            except Exception as e:  # the exchange died: the figures below say so
                snap, fstate = None, None
                self.incidents.append(f"exchange state unavailable at the end: {e}")
            if self.exchange is not None:
                self.exchange.terminate()
                try:
                    self.exchange.wait(30)
                except subprocess.TimeoutExpired:
                    self.exchange.kill()
        if snap is not None:
            (self.dir / "exchange-final.json").write_text(json.dumps({"state": snap, "faults": fstate}, default=str))
        result = self.analyse(snap, fstate, episode, time.monotonic() - t0)
        (self.dir / "soak.json").write_text(json.dumps(dataclasses.asdict(result), indent=1, default=str))
        if result.clean and self.own_dir and not cfg.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return result

    # -------------------------------------------------------------- analysis
    def analyse(self, snap: dict | None, fstate: dict | None, episodes: int, wall: float) -> SoakResult:
        from pairtrade.exchange import FAULT_KINDS

        events = self._events()
        # duplicates
        cids = Counter(o["client_order_id"] for o in (snap or {}).get("orders", []))
        dup_orders = sum(n - 1 for n in cids.values() if n > 1)
        dup_trades = self._duplicate_trades()
        # tracebacks
        tb = 0
        for p in [self.dir / "exchange.err", self.dir / "enable.err", *sorted(self.dir.glob("controller-*.err"))]:
            if p.exists():
                tb += p.read_text(errors="replace").count("Traceback (most recent call last)")
        spells = self._spells(snap, events) if snap else []
        orphan = sum(1 for s in spells if s["orphan"])
        orphan += sum(len(c["one_legged"]) for c in self.checks)
        unalerted = sum(1 for s in spells if s["length"] > self.cfg.alert_after_bars and not s["alerted"])
        mism = sum(len(c["symbol_mismatch"]) + len(c["pair_mismatch"]) + len(c["phantom_fills"]) for c in self.checks)
        counts = (fstate or {}).get("counts", {})
        hits = (fstate or {}).get("hits", {})
        by_kind = {k: {"injected": int(counts.get(k, 0)), "hits": int(hits.get(k, 0))} for k in FAULT_KINDS}
        crashes = self._crashes_between_legs()
        by_kind["kill_trader"] = {"injected": self.kills["kill_trader"], "hits": "-"}
        by_kind["kill_controller"] = {"injected": self.kills["kill_controller"], "hits": "-"}
        if crashes or self.cfg.crash_between_legs_every:
            by_kind["crash_between_legs"] = {"injected": crashes, "hits": "-"}
        self._observed(by_kind, events, snap)
        faults = int(sum(counts.values())) + sum(self.kills.values()) + crashes
        incidents = list(self.incidents)
        if self.double_procs:
            incidents.append(f"two trader processes for one pair: {sorted(set(self.double_procs))[:5]}")
        res = SoakResult(faults=faults, orphan_legs=orphan, duplicate_orders=dup_orders + dup_trades,
                         ledger_mismatches=mism, lost_fills=len(self.lost), unhandled_exceptions=tb,
                         unalerted_episodes=unalerted, seed=self.cfg.seed, bars=int((snap or {}).get("cursor", 0)),
                         episodes=episodes, wall_secs=round(wall, 1), by_kind=by_kind, checks=self.checks,
                         spells=spells, incidents=incidents, workdir=str(self.dir),
                         details={"duplicate_client_order_ids": dup_orders, "duplicate_trades": dup_trades,
                                  "orders": len(cids), "fills": len((snap or {}).get("fills", [])),
                                  "controller_starts": self.ctl_starts, "pairs_enabled_again": self.enabled,
                                  "one_legged_spells": len(spells),
                                  "longest_spell_bars": max((s["length"] for s in spells), default=0),
                                  "spells_by_length": {str(n): {"spells": sum(1 for s in spells if s["length"] == n),
                                                                "alerted": sum(1 for s in spells
                                                                               if s["length"] == n and s["alerted"])}
                                                       for n in sorted({s["length"] for s in spells})},
                                  "events": dict(Counter(e.get("event") for e in events))})
        return res

    def _events(self) -> list[dict]:
        p = self.run_dir / "events.jsonl"
        out = []
        if p.exists():
            for line in p.read_text(errors="replace").splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def _duplicate_trades(self) -> int:
        p = self.run_dir / "trades.csv"
        if not p.exists():
            return 0
        df = pd.read_csv(p)
        if df.empty:
            return 0
        return int(df.duplicated(subset=["pair", "side", "entry_time", "exit_time", "qty_y", "qty_x"]).sum())

    def _bar(self, t: Any) -> int | None:
        return bar_index(self.timeline, t)

    def _spells(self, snap: dict, events: list[dict]) -> list[dict]:
        return one_legged_spells(snap, events, self.pairs, self.timeline, self.cfg.grace_bars)

    @staticmethod
    def _after_crashes(events: list[dict]) -> str:
        """What the traders restarted after a crash between legs (exit code 3) said next."""
        restarts = handled = 0
        waiting: set[str] = set()
        for e in events:
            pid, kind = e.get("pair"), e.get("event")
            if kind == "trader_restart" and e.get("exit_code") == 3:
                restarts += 1
                waiting.add(pid)
            elif kind == "alert" and pid in waiting:
                waiting.discard(pid)
                text = str(e.get("text", ""))
                handled += ("failed" in text or "one-legged" in text)
        return (f"{restarts} traders restarted; {handled} of them alerted that the half-sent entry failed "
                f"(first leg cancelled or unwound)")

    def _observed(self, by_kind: dict[str, dict], events: list[dict], snap: dict | None) -> None:
        ev = Counter(e.get("event") for e in events)
        rej = [e for e in events if e.get("event") == "reject"]
        err_text = "".join(p.read_text(errors="replace") for p in sorted(self.dir.glob("controller-*.err")))

        def n_rej(s: str) -> int:
            return sum(1 for e in rej if s in str(e.get("error", "")).lower())

        alerts = [str(e.get("text", "")) for e in events if e.get("event") == "alert"]
        venue_cancels = sum(1 for e in events if e.get("event") == "order_canceled" and e.get("by_venue"))
        late = partial = 0
        for o in (snap or {}).get("orders", []):
            a, b = self._bar(o["created_at"]), self._bar(o.get("filled_at"))
            if a is not None and b is not None and b - a >= 2:
                late += 1
        per_order = Counter(f["client_order_id"] for f in (snap or {}).get("fills", []))
        partial = sum(1 for n in per_order.values() if n > 1)
        temporary = sum(err_text.count(s) for s in ("temporary venue error", "(retried next bar)", "not available ("))
        obs = {
            "submit_504_after_booking": f"{err_text.count('the order was booked')} booked orders found by "
                                        f"client_order_id after the 504/422",
            "reject_on_submit": f"{n_rej('fault injection')} refusals at submit -> group aborted / rolled back",
            "reject_after_accept": f"{ev['order_rejected']} orders rejected after acceptance",
            "cancel_after_accept": f"{venue_cancels} orders canceled by the venue",
            "expire_after_accept": f"{ev['order_expired']} orders expired",
            "done_for_day_after_accept": f"{ev['order_done_for_day']} orders done_for_day",
            "partial_fill": f"{partial} orders filled in more than one piece; "
                            f"{sum(1 for a in alerts if a.startswith('leg imbalance'))} leg-imbalance alerts "
                            f"(all kinds)",
            "delayed_fill": f"{late} orders filled 2 or more bars after booking; the traders cancelled "
                            f"{sum(1 for e in events if e.get('event') == 'cancel')} open orders (stale, or another "
                            f"leg failed or ran ahead: all kinds)",
            "http_429": "alpaca-py resends a 429 itself; "
                        f"{temporary} calls left to the next bar and {ev['order_retry']} order resends (429 and 5xx)",
            "http_5xx": f"{temporary} calls left to the next bar and {ev['order_retry']} order resends (429 and 5xx)",
            "refuse_exit": f"{n_rej('pattern day trading')} exits refused (PDT 403); "
                           f"{sum(1 for a in alerts if a.startswith('pair disabled'))} pairs disabled",
            "not_shortable": f"{n_rej('cannot be sold short')} short sales refused; "
                             f"{sum(1 for a in alerts if 'will not lend' in a)} entries not taken",
            "drop_data_ws": f"{ev['stream_stale']} bars taken from the exchange's record (both data kinds)",
            "silent_data_ws": f"{ev['stream_stale']} bars taken from the exchange's record (both data kinds)",
            "drop_trade_ws": f"{by_kind['drop_trade_ws']['hits']} connections dropped; fills found by polling",
            "silent_trade_ws": f"{by_kind['silent_trade_ws']['hits']} trade updates withheld; fills found by polling",
            "kill_trader": f"{ev['trader_restart']} trader restarts by the controller",
            "kill_controller": f"{self.ctl_starts} controller starts in all",
            "crash_between_legs": self._after_crashes(events),
        }
        for k, d in by_kind.items():
            d["observed"] = obs.get(k, "")


def run_soak(cfg: SoakConfig, say: Callable[[str], None] = print) -> SoakResult:
    """Run the soak of ``cfg`` (see the module docstring) and return its figures.

    Raises
    ------
    SoakError
        The bars file is absent, a process would not start, or the replay stalled.
    ValueError
        A setting out of range (names it).
    """
    return Soak(cfg, say).run()


def parse_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``"JPM/BAC,BAC/C,..."`` (``/`` or ``-`` between the legs) -> ``(("JPM", "BAC"), ...)``.

    Raises
    ------
    ValueError
        An item that is not two symbols (names it).
    """
    out = []
    for item in text.split(","):
        item = item.strip().upper()
        if not item:
            continue
        legs = item.replace("-", "/").split("/")
        if len(legs) != 2 or not all(legs):
            raise ValueError(f"--pairs: expected Y/X items separated by commas, got {item!r}")
        out.append((legs[0], legs[1]))
    return tuple(out)
