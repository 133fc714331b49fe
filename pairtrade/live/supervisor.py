"""Supervision of the trader processes: one process per pair, acks, restarts, giving up.

The controller (:mod:`pairtrade.live.controller`) owns a :class:`Supervisor`, which owns one
:class:`TraderProc` per pair.  The rules it enforces:

* **Messages belong to one process.**  Every start of a trader is an *incarnation* with its own
  number; the reader threads tag each line they read with ``(pair, incarnation)``.  Control
  messages (``ready``, ``ack``, end of output) of an incarnation that is no longer current are
  dropped, so the end-of-output marker of a dead process can never make the next start look
  failed.  Facts (``event``, ``trade``, ``stopped``) are always recorded, whichever process sent
  them.
* **Never two processes for one pair.**  A new incarnation is spawned only after the previous one
  was reaped; its process group (the trader runs in a session of its own) is killed first, so a
  child that inherited the trader's pipes dies with it.
* **A dead process is noticed at once.**  Every wait polls each trader with ``waitid(WNOWAIT)``
  (the process is inspected without being reaped) and treats the end of its standard output as
  death; its outstanding bars are no longer awaited.
* **Per-trader ack timeout, concurrent waits.**  Each bar sent to a trader has its own deadline
  (``ack_timeout_secs``); all traders are awaited together, so a slow or dead trader never adds
  its wait to the others'.  A trader that misses the deadline is considered hung: it is killed
  and restarted (its state was persisted before it acted).
* **Restart budget that recovers.**  A dead trader is restarted after an exponential backoff
  (0.5 s, 1 s, 2 s, ... at most 30 s, by the number of restarts in the window) as long as it was
  restarted fewer than ``max_restarts`` times in the last ``restart_window_secs`` (wall clock,
  monotonic).  Restarts older than the window no longer count: a trader that crashes once a day
  runs for ever, one that crash-loops is given up after ``max_restarts`` restarts.
* **Giving up** calls the controller back (``on_give_up``), which flattens the pair's own legs
  (:func:`flatten_pair`) and alerts.
* **Lockstep.**  In the local replay the clock is shared: a dispatch returns only when every
  trader is ready and has acknowledged its bars (a trader that is restarting is waited for, within
  its budget), so the replay stays deterministic.  With ``lockstep=False`` (Alpaca) a dispatch
  waits only for the traders it could send bars to; bars for a trader that is restarting are kept
  (at most :data:`BACKLOG_MAX`) and sent, in order, once it is ready (bars already in its warm-up
  history are ignored by the trader).
* **Stop** (SIGINT/SIGTERM sets ``stop``) interrupts every wait within ``poll_secs``; no trader is
  restarted after it.

REST timeouts: alpaca-py's REST clients send every request through a ``requests.Session`` without a
timeout (``alpaca/common/rest.py``: ``self._session.request(method, url, **opts)``), so a silent
server blocks a call for ever.  :func:`pairtrade.broker.alpaca.bound_rest_time` mounts a ``requests`` transport adapter
with a default ``(connect, read)`` timeout on the client's session.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pairtrade.config import PairSpec

log = logging.getLogger("pairtrade.controller")
ROOT = Path(__file__).resolve().parents[2]

#: bars kept for a trader that is restarting (non-lockstep); the oldest are dropped beyond this
BACKLOG_MAX = 200
#: backoff before the k-th restart in the window: min(BACKOFF_MAX_SECS, BACKOFF_FIRST_SECS * 2 ** (k - 1))
BACKOFF_FIRST_SECS = 0.5
BACKOFF_MAX_SECS = 30.0


# ----------------------------------------------------------------------------------------------
# restart budget
# ----------------------------------------------------------------------------------------------
class RestartBudget:
    """At most ``max_restarts`` restarts in any rolling window of ``window_secs`` seconds.

    Parameters
    ----------
    max_restarts : int >= 0
        Restarts allowed within one window (0: never restart).
    window_secs : float > 0
        Length of the rolling window, seconds (monotonic clock).

    Raises
    ------
    ValueError
        ``max_restarts`` negative or ``window_secs`` not a positive finite number.
    """

    def __init__(self, max_restarts: int, window_secs: float):
        if int(max_restarts) != max_restarts or max_restarts < 0:
            raise ValueError(f"max_restarts must be an integer >= 0, got {max_restarts!r}")
        if not (isinstance(window_secs, (int, float)) and math.isfinite(window_secs) and window_secs > 0):
            raise ValueError(f"restart window must be > 0 seconds, got {window_secs!r}")
        self.max_restarts = int(max_restarts)
        self.window_secs = float(window_secs)
        self._times: deque[float] = deque()

    def count(self, now: float) -> int:
        """Restarts recorded in ``(now - window_secs, now]``."""
        while self._times and self._times[0] <= now - self.window_secs:
            self._times.popleft()
        return len(self._times)

    def allow(self, now: float) -> bool:
        """True when one more restart at ``now`` stays within the budget."""
        return self.count(now) < self.max_restarts

    def record(self, now: float) -> int:
        """Record a restart at ``now``; return the number of restarts in the window, this one included."""
        self._times.append(now)
        return self.count(now)


def backoff_secs(k: int) -> float:
    """Pause before the ``k``-th restart in the window (k >= 1), seconds: 0.5, 1, 2, 4, ... at most 30."""
    return min(BACKOFF_MAX_SECS, BACKOFF_FIRST_SECS * 2 ** (max(1, k) - 1))


# ----------------------------------------------------------------------------------------------
# trader processes
# ----------------------------------------------------------------------------------------------
@dataclass
class Incarnation:
    """One start of a trader: its process, reader threads and protocol state."""

    n: int
    proc: subprocess.Popen
    started: float
    ready: bool = False
    eof: bool = False  # its standard output is closed
    dead: bool = False  # reaped; its exit code is proc.returncode
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one writer at a time on stdin


@dataclass
class TraderProc:
    """A supervised trader: the pair, how to start it, its current incarnation and its record."""

    pair: PairSpec
    cmd: list[str]
    env: dict[str, str]
    inc: Incarnation | None = None
    incarnations: int = 0
    restarts: int = 0
    given_up: bool = False
    stopping: bool = False
    restart_at: float | None = None  # dead, restart due at this monotonic time
    last_exit: int | None = None
    budget: RestartBudget | None = None
    backlog: list[dict] = field(default_factory=list)  # bars to send once ready (non-lockstep)
    outstanding: dict[str, tuple[float, dict]] = field(default_factory=dict)  # t -> (ack deadline, message)
    reported: dict[str, float] = field(default_factory=dict)  # last position the trader reported, shares
    pids: list[int] = field(default_factory=list)  # every process started for this pair

    @property
    def pair_id(self) -> str:
        return self.pair.pair_id

    @property
    def proc(self) -> subprocess.Popen | None:
        return self.inc.proc if self.inc is not None else None

    @property
    def ready(self) -> bool:
        return self.inc is not None and self.inc.ready and not self.inc.dead

    def alive(self) -> bool:
        """True while the current incarnation has not been found dead (no reaping here: any thread may ask)."""
        return self.inc is not None and not self.inc.dead and not _exited(self.inc.proc)

    def send(self, msg: dict) -> bool:
        """Write one JSON line to the current incarnation; False when it is dead or its pipe is closed."""
        inc = self.inc
        if inc is None or inc.dead:
            return False
        line = json.dumps(msg) + "\n"
        with inc.lock:
            try:
                inc.proc.stdin.write(line)  # type: ignore[union-attr]
                inc.proc.stdin.flush()  # type: ignore[union-attr]
                return True
            except (BrokenPipeError, OSError, ValueError):
                return False


def _exited(proc: subprocess.Popen) -> bool:
    """True when ``proc`` has terminated, without reaping it (its pid stays reserved until ``wait``)."""
    if proc.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped elsewhere
        return proc.poll() is not None
    return info is not None


def _kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the trader's process group (its session); nothing once it is reaped (the pid may be reused)."""
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ----------------------------------------------------------------------------------------------
# the supervisor
# ----------------------------------------------------------------------------------------------
class Supervisor:
    """Starts, watches, feeds and restarts the trader processes (see the module docstring).

    Parameters
    ----------
    traders : ``{pair_id: TraderProc}``, not started
    stop : set by the signal handler; interrupts every wait, and no restart happens after it
    on_message : ``f(trader, msg)`` for each fact a trader reports (``event``, ``trade``, ``stopped``,
        ``status``), from any incarnation
    on_event : ``f(msg)`` records the supervisor's own events (``trader_started``, ``trader_restart``,
        ``trader_failed_start``, ``trader_unresponsive``)
    on_give_up : ``f(trader, exit_code)`` after the restart budget of a pair is exhausted and its
        process is reaped
    max_restarts, restart_window_secs : the :class:`RestartBudget` of each trader
    ack_timeout_secs : per bar and per trader, seconds; a trader that misses it is killed and restarted
    ready_timeout_secs : from spawn to ``ready`` (warm-up and reconciliation), seconds
    stop_timeout_secs : at shutdown, from ``stop`` to exit before the trader is terminated, seconds
    lockstep : the local replay's shared clock (see the module docstring)
    poll_secs : longest pause between two checks of the processes, seconds
    cwd : working directory of the trader processes
    clock : monotonic clock, seconds (injectable for tests)

    Raises
    ------
    ValueError
        A timeout that is not a positive number; an invalid restart budget.
    """

    def __init__(self, traders: dict[str, TraderProc], stop: threading.Event,
                 on_message: Callable[[TraderProc, dict], None], on_event: Callable[[dict], None],
                 on_give_up: Callable[[TraderProc, int | None], None], max_restarts: int = 5,
                 restart_window_secs: float = 3600.0, ack_timeout_secs: float = 120.0,
                 ready_timeout_secs: float = 180.0, stop_timeout_secs: float = 10.0, lockstep: bool = True,
                 poll_secs: float = 0.05, cwd: Path = ROOT, clock: Callable[[], float] = time.monotonic):
        for name, v in (("ack_timeout_secs", ack_timeout_secs), ("ready_timeout_secs", ready_timeout_secs),
                        ("stop_timeout_secs", stop_timeout_secs), ("poll_secs", poll_secs)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
        self.traders = traders
        self.stop = stop
        self.on_message = on_message
        self.on_event = on_event
        self.on_give_up = on_give_up
        self.ack_timeout_secs = float(ack_timeout_secs)
        self.ready_timeout_secs = float(ready_timeout_secs)
        self.stop_timeout_secs = float(stop_timeout_secs)
        self.lockstep = lockstep
        self.poll_secs = float(poll_secs)
        self.cwd = cwd
        self.clock = clock
        self.inbox: "queue.Queue[tuple[str, int, dict]]" = queue.Queue()
        self.stale_messages = 0
        self._stopping = False
        self._last_check = -math.inf
        self._check_due = False
        for tp in traders.values():
            tp.budget = RestartBudget(max_restarts, restart_window_secs)

    # -- processes -----------------------------------------------------------------------------
    def spawn(self, tp: TraderProc) -> None:
        """Start a new incarnation of ``tp`` (the previous one is killed and reaped first)."""
        self._reap(tp)
        tp.restart_at = None
        tp.incarnations += 1
        n = tp.incarnations
        try:
            proc = subprocess.Popen(tp.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, bufsize=1, env=tp.env, cwd=str(self.cwd),
                                    start_new_session=True)  # Ctrl-C reaches the controller only
        except OSError as e:
            log.error("trader %s could not be started: %s", tp.pair_id, e)
            self.on_event({"type": "event", "event": "trader_failed_start", "pair": tp.pair_id, "exit_code": None,
                           "error": str(e)})
            tp.inc = None
            self._after_death(tp, None)
            return
        inc = Incarnation(n, proc, self.clock())
        inc.threads = [threading.Thread(target=self._read_stdout, args=(tp.pair_id, n, proc), daemon=True),
                       threading.Thread(target=self._read_stderr, args=(tp.pair_id, proc), daemon=True)]
        for th in inc.threads:
            th.start()
        tp.inc = inc
        tp.pids.append(proc.pid)

    def _read_stdout(self, pair_id: str, n: int, proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                log.info("[%s] %s", pair_id, line)
                continue
            if isinstance(msg, dict):
                self.inbox.put((pair_id, n, msg))
        self.inbox.put((pair_id, n, {"type": "_eof"}))

    @staticmethod
    def _read_stderr(pair_id: str, proc: subprocess.Popen) -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            sys.stderr.write(f"[{pair_id}] {line}")
        sys.stderr.flush()

    @staticmethod
    def _reap(tp: TraderProc) -> int | None:
        """Make sure the current incarnation is dead: SIGKILL its process group (children that inherited its
        pipes included; harmless when it has exited), then reap it.  Returns its exit code."""
        inc = tp.inc
        if inc is None or inc.dead:
            return inc.proc.returncode if inc is not None else None
        _kill_group(inc.proc, signal.SIGKILL)
        code = inc.proc.wait()
        inc.dead = True
        with inc.lock:
            try:
                inc.proc.stdin.close()  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass
        tp.last_exit = code
        return code

    # -- messages --------------------------------------------------------------------------------
    def pump(self, timeout: float = 0.0) -> None:
        """Handle every queued message (waiting up to ``timeout`` s for the first), then check the processes."""
        try:
            item = self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
        except queue.Empty:
            item = None
        while item is not None:
            self._handle(*item)
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                item = None
        now = self.clock()
        if self._check_due or now - self._last_check >= self.poll_secs:  # at most every poll_secs, or at once
            self._check_due = False  # after an end of output
            self._last_check = now
            self._check_all()

    def _handle(self, pair_id: str, n: int, msg: dict) -> None:
        tp = self.traders.get(pair_id)
        if tp is None:
            return
        kind = msg.get("type")
        if kind in ("ready", "ack", "_eof"):
            inc = tp.inc
            if inc is None or inc.n != n or inc.dead:
                self.stale_messages += 1  # from a process that is gone: never about the current one
                log.debug("[%s] stale %s from incarnation %d dropped", pair_id, kind, n)
                return
            if kind == "ready":
                inc.ready = True
                log.info("trader %s ready (pid %d)", pair_id, inc.proc.pid)
                self.on_event({"type": "event", "event": "trader_started", "pair": pair_id, "pid": inc.proc.pid,
                               "incarnation": n})
                self._flush_backlog(tp)
            elif kind == "ack":
                tp.outstanding.pop(str(msg.get("t")), None)
            else:
                inc.eof = True
                self._check_due = True
            return
        self.on_message(tp, msg)

    def _flush_backlog(self, tp: TraderProc) -> None:
        backlog, tp.backlog = tp.backlog, []
        for i, msg in enumerate(backlog):
            if tp.send(msg):
                tp.outstanding[msg["t"]] = (self.clock() + self.ack_timeout_secs, msg)
            else:  # died again: keep the rest for the next incarnation
                tp.backlog = backlog[i:]
                return

    # -- health ------------------------------------------------------------------------------
    def _check_all(self) -> None:
        for tp in self.traders.values():
            self._check(tp)

    def _check(self, tp: TraderProc) -> None:
        if tp.given_up:
            return
        inc = tp.inc
        now = self.clock()
        if inc is not None and not inc.dead:
            if _exited(inc.proc):
                self._on_exit(tp, "exited")
            elif inc.eof:
                # its output is closed: exiting right now, or unable to talk; a moment to tell which
                # (polled without reaping, so _reap can still kill what is left of its process group)
                end = time.monotonic() + 0.5
                while not _exited(inc.proc) and time.monotonic() < end:
                    time.sleep(0.005)
                self._on_exit(tp, "exited" if _exited(inc.proc) else "closed its output")
            elif not inc.ready and now - inc.started > self.ready_timeout_secs and not tp.stopping:
                log.error("trader %s not ready after %.0f s; killing it", tp.pair_id, self.ready_timeout_secs)
                self._on_exit(tp, f"not ready after {self.ready_timeout_secs:g} s")
            elif not tp.stopping and any(dl <= now for dl, _ in tp.outstanding.values()):
                late = sorted(t for t, (dl, _) in tp.outstanding.items() if dl <= now)
                log.error("trader %s did not acknowledge bar %s within %.0f s; killing it", tp.pair_id, late[0],
                          self.ack_timeout_secs)
                self.on_event({"type": "event", "event": "trader_unresponsive", "pair": tp.pair_id, "t": late[0],
                               "ack_timeout_secs": self.ack_timeout_secs, "pid": inc.proc.pid})
                self._on_exit(tp, f"no ack within {self.ack_timeout_secs:g} s")
        elif tp.restart_at is not None and now >= tp.restart_at and not self._stopping and not self.stop.is_set():
            self.spawn(tp)

    def _on_exit(self, tp: TraderProc, why: str) -> None:
        """The current incarnation is dead or must die: reap it, stop waiting for it, restart or give up."""
        inc = tp.inc
        assert inc is not None
        was_ready = inc.ready
        code = self._reap(tp)
        if tp.stopping or self._stopping:
            return
        log.warning("trader %s %s (exit code %s)", tp.pair_id, why, code)
        if not was_ready:
            self.on_event({"type": "event", "event": "trader_failed_start", "pair": tp.pair_id, "exit_code": code,
                           "why": why})
        # bars it never acknowledged go to the next incarnation (it ignores those already in its warm-up)
        lost = [m for _, (_, m) in sorted(tp.outstanding.items())]
        tp.outstanding.clear()
        tp.backlog = (lost + tp.backlog)[-BACKLOG_MAX:]
        self._after_death(tp, code, why)

    def _after_death(self, tp: TraderProc, code: int | None, why: str = "could not start") -> None:
        now = self.clock()
        if self.stop.is_set() or self._stopping:
            return
        assert tp.budget is not None
        if not tp.budget.allow(now):
            tp.given_up = True
            tp.backlog.clear()
            log.error("trader %s died %d time(s) in %.0f s (budget %d restarts); giving up on this pair",
                      tp.pair_id, tp.budget.count(now) + 1, tp.budget.window_secs, tp.budget.max_restarts)
            self._drain_dead(tp)
            self.on_give_up(tp, code)
            return
        k = tp.budget.record(now)
        tp.restarts += 1
        delay = backoff_secs(k)
        tp.restart_at = now + delay
        log.warning("trader %s: restart %d (%d in the last %.0f s) in %.1f s", tp.pair_id, tp.restarts, k,
                    tp.budget.window_secs, delay)
        self.on_event({"type": "event", "event": "trader_restart", "pair": tp.pair_id, "exit_code": code, "why": why,
                       "restart": tp.restarts, "restarts_in_window": k, "window_secs": tp.budget.window_secs,
                       "backoff_secs": delay})

    def _drain_dead(self, tp: TraderProc) -> None:
        """Read what the dead incarnation still had in its pipe, so its last reports are recorded."""
        if tp.inc is not None:
            for th in tp.inc.threads:
                th.join(timeout=2.0)
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            self._handle(*item)

    # -- waiting -----------------------------------------------------------------------------
    def wait(self, done: Callable[[], bool], max_secs: float | None = None) -> bool:
        """Pump messages until ``done()``, ``stop`` or ``max_secs``; return ``done()``."""
        deadline = None if max_secs is None else self.clock() + max_secs
        self.pump(0.0)
        while not done() and not self.stop.is_set():
            if deadline is not None and self.clock() >= deadline:
                break
            self.pump(self.poll_secs)
        return done()

    def settled(self) -> bool:
        """Every pair not given up has a ready trader that acknowledged everything it was sent."""
        return all(tp.given_up or (tp.ready and not tp.outstanding and not tp.backlog) for tp in self.traders.values())

    def start_all(self, stagger_secs: float) -> None:
        """Spawn every trader, ``stagger_secs`` apart (REST budget), and wait until each is ready or given up.

        Without lockstep, a trader that failed its first start is left to its restarts.
        """
        for i, tp in enumerate(self.traders.values()):
            if self.stop.is_set():
                return
            if i and stagger_secs > 0:
                self.wait(lambda: False, max_secs=stagger_secs)
            self.spawn(tp)
        if self.lockstep:
            self.wait(self.settled)
        else:
            self.wait(lambda: all(tp.given_up or tp.ready or tp.restart_at is not None
                                  for tp in self.traders.values()))

    def dispatch(self, ts: str, bars: dict[str, dict]) -> None:
        """Send a timestamp's bars to the traders of the pairs they belong to and wait for the acks.

        Parameters
        ----------
        ts : bar start time, ISO 8601 UTC (echoed in the ``ack``)
        bars : ``{symbol: {"o", "h", "l", "c", "v"}}`` (USD, shares)
        """
        self.pump(0.0)
        sent: list[TraderProc] = []
        for tp in self.traders.values():
            if tp.given_up:
                continue
            mine = {s: b for s, b in bars.items() if s in (tp.pair.y, tp.pair.x)}
            if not mine:
                continue
            msg = {"type": "bars", "t": ts, "bars": mine}
            if tp.ready and tp.backlog:
                self._flush_backlog(tp)
            if tp.ready and not tp.backlog and tp.send(msg):
                tp.outstanding[ts] = (self.clock() + self.ack_timeout_secs, msg)
                sent.append(tp)
            else:
                tp.backlog = (tp.backlog + [msg])[-BACKLOG_MAX:]
        if self.lockstep:
            self.wait(self.settled)
        else:
            self.wait(lambda: all(ts not in tp.outstanding for tp in sent))

    def shutdown(self) -> None:
        """Send ``stop`` to every trader, wait up to ``stop_timeout_secs`` for all, then terminate, then kill."""
        self._stopping = True
        for tp in self.traders.values():
            tp.stopping = True
            tp.send({"type": "stop"})
        live = [tp for tp in self.traders.values() if tp.inc is not None and not tp.inc.dead]
        deadline = self.clock() + self.stop_timeout_secs
        while any(not _exited(tp.inc.proc) for tp in live) and self.clock() < deadline:  # type: ignore[union-attr]
            self.pump(self.poll_secs)
        for tp in live:
            if not _exited(tp.inc.proc):  # type: ignore[union-attr]
                log.warning("trader %s did not stop within %.0f s; terminating it", tp.pair_id,
                            self.stop_timeout_secs)
                _kill_group(tp.inc.proc, signal.SIGTERM)  # type: ignore[union-attr]
        deadline = self.clock() + 3.0
        while any(not _exited(tp.inc.proc) for tp in live) and self.clock() < deadline:  # type: ignore[union-attr]
            self.pump(self.poll_secs)
        for tp in live:
            self._reap(tp)  # SIGKILL for what is still running
            for th in tp.inc.threads:  # type: ignore[union-attr]
                th.join(timeout=2.0)
        self.pump(0.0)


# ----------------------------------------------------------------------------------------------
# giving up: flatten the pair's own legs
# ----------------------------------------------------------------------------------------------
FINAL_STATUSES = ("filled", "canceled", "expired", "rejected", "done_for_day", "replaced")


def _status(order: Any) -> str:
    s = getattr(order, "status", "")
    return str(getattr(s, "value", s)).lower()


def pair_holdings(pair: PairSpec, client: Any, state: Any = None, reported: dict[str, float] | None = None,
                  prefix: str | None = None) -> tuple[dict[str, float], dict]:
    """What one pair holds, from its own records, never from the account-wide position.

    Rule: the trader's stored position (``state.qty_y``, ``state.qty_x``, shares) plus, for each
    order it stored before submission (``state.pending``), the shares the venue filled beyond what
    the store had booked; open orders among them are cancelled first, so nothing fills later.
    Without a readable state, the position the trader last reported (``fill`` events) is used.
    Open orders whose ``client_order_id`` starts with ``prefix`` (the pair's) are cancelled too.

    Parameters
    ----------
    pair : the two legs
    client : alpaca-py ``TradingClient`` (``get_order_by_client_id``, ``cancel_order_by_id``, ``get_orders``)
    state : :class:`pairtrade.live.state.TraderState` or None
    reported : ``{symbol: shares}`` last reported by the trader, used when ``state`` is None
    prefix : ``client_order_id`` prefix of the pair's orders, or None

    Returns
    -------
    holdings : ``{symbol: shares}`` signed (+ long, - short), both legs
    detail : ``{"source", "cancelled": [client_order_id], "late_fills": {symbol: shares}, "errors": [str]}``
    """
    detail: dict[str, Any] = {"source": "state" if state is not None else "reported", "cancelled": [],
                              "late_fills": {}, "errors": []}
    if state is not None:
        hold = {pair.y: float(getattr(state, "qty_y", 0.0) or 0.0), pair.x: float(getattr(state, "qty_x", 0.0) or 0.0)}
    else:
        src = reported or {}
        hold = {pair.y: float(src.get(pair.y, 0.0)), pair.x: float(src.get(pair.x, 0.0))}
    for p in list(getattr(state, "pending", None) or []):
        cid = getattr(p, "client_order_id", None)
        if not cid or getattr(p, "symbol", None) not in hold:
            continue
        try:
            o = client.get_order_by_client_id(cid)
        except Exception as e:  # 404: stored but never reached the venue
            if "not found" not in str(e).lower() and "404" not in str(e):
                detail["errors"].append(f"lookup {cid}: {e}")
            continue
        if _status(o) not in FINAL_STATUSES:
            try:
                client.cancel_order_by_id(o.id)
                detail["cancelled"].append(cid)
                o = client.get_order_by_client_id(cid)
            except Exception as e:
                detail["errors"].append(f"cancel {cid}: {e}")
        sign = 1.0 if float(getattr(p, "qty", 0.0)) > 0 else -1.0
        venue = sign * abs(float(getattr(o, "filled_qty", 0.0) or 0.0))  # alpaca-py: unsigned shares
        booked = sign * abs(float(getattr(p, "filled_qty", 0.0) or 0.0))
        late = venue - booked
        if abs(late) > 1e-9:
            hold[p.symbol] += late
            detail["late_fills"][p.symbol] = detail["late_fills"].get(p.symbol, 0.0) + late
    if prefix:
        try:
            from alpaca.trading.enums import QueryOrderStatus
            from alpaca.trading.requests import GetOrdersRequest

            for o in client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)):
                cid = o.client_order_id or ""
                if cid.startswith(prefix) and cid not in detail["cancelled"]:
                    client.cancel_order_by_id(o.id)
                    detail["cancelled"].append(cid)
        except Exception as e:
            detail["errors"].append(f"open orders: {e}")
    return hold, detail


def flatten_pair(pair: PairSpec, client: Any, holdings: dict[str, float], client_order_prefix: str,
                 before_submit: Callable[[str, str, float], None] | None = None) -> list[dict]:
    """Close ``holdings`` (the pair's own shares) with one market order per leg through alpaca-py.

    Parameters
    ----------
    pair : the two legs
    client : alpaca-py ``TradingClient``
    holdings : ``{symbol: shares}`` signed, as returned by :func:`pair_holdings`
    client_order_prefix : prefix of the ``client_order_id`` (``<run>-<pair>-``); the leg name and
        ``"giveup"`` are appended (at most 48 characters).  After an error the order is looked up by
        this id, so an order that reached the venue is not reported as failed.
    before_submit : ``f(client_order_id, symbol, signed_qty)`` called before each submission (the
        ledger write); if it raises, the order is still submitted (an open position is the greater
        risk) and the error is returned in ``ledger_error``

    Returns
    -------
    list of dict
        Per leg with a position: ``symbol``, ``qty`` (signed shares of the closing order),
        ``client_order_id`` and ``status``, or ``error``; ``ledger_error`` when ``before_submit`` failed.
    """
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    out = []
    for leg, sym in (("y", pair.y), ("x", pair.x)):
        q = -float(holdings.get(sym, 0.0))
        if abs(q) < 1e-9:
            continue
        cid = f"{client_order_prefix}{leg}giveup"[:48]
        rec: dict[str, Any] = {"symbol": sym, "qty": q, "client_order_id": cid}
        if before_submit is not None:
            try:
                before_submit(cid, sym, q)
            except Exception as e:
                rec["ledger_error"] = str(e)
        try:
            o = client.submit_order(MarketOrderRequest(symbol=sym, qty=abs(q), side=OrderSide.BUY if q > 0
                                                        else OrderSide.SELL, time_in_force=TimeInForce.DAY,
                                                        client_order_id=cid))
            rec["status"] = _status(o)
        except Exception as e:
            try:
                rec["status"] = _status(client.get_order_by_client_id(cid))
            except Exception:
                rec["error"] = str(e)
        out.append(rec)
    return out


# ----------------------------------------------------------------------------------------------
# REST timeouts for alpaca-py clients
# ----------------------------------------------------------------------------------------------
