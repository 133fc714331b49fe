"""``python -m pairtrade.exchange``: run the local paper exchange standalone, as a venue of its own.

Examples
--------
``python -m pairtrade.exchange --data ../shared/data/us_equities_5min_...csv.gz --symbols XOM,CVX
--start 2025-06-02 --port 8765`` then drive it with ``curl -X POST localhost:8765/_local/advance?n=1``
or pass ``--speed 5`` (bars per second).

A venue that outlives its clients: ``--state FILE`` keeps the account (cash, positions, orders,
fills) and the replay clock in SQLite, written on every change of account state; restarted with
the same ``--state`` (and the same data and options) it resumes where it stopped.  The daemon
connects to it with ``controller.py --exchange-url http://127.0.0.1:PORT`` and drives the
lockstep replay over ``POST /_local/advance``; a controller killed with -9 and started again
continues on the same account and clock::

    python -m pairtrade.exchange --data DATA --params optimized_params.json --regular-hours \\
        --start 2025-12-01T14:30 --port 8765 --state runs/exchange.sqlite
    python controller.py --exchange-url http://127.0.0.1:8765 --params optimized_params.json

Exit status 2 for bad options, data, or a state file of another replay (no traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from pathlib import Path

from pairtrade.config import ConfigError, CostModel
from pairtrade.data.bars import DataError, embedded_bars, load_bars, parse_utc, regular_hours
from pairtrade.exchange.server import LocalExchange
from pairtrade.exchange.store import StateMismatch
from pairtrade.live.secrets import LOCAL_KEY, LOCAL_SECRET


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pairtrade.exchange",
                                description="Local Alpaca-compatible paper exchange replaying recorded bars.")
    p.add_argument("--data", help="bars file (CSV/CSV.gz, long or wide layout); default: embedded SPX/COMP daily")
    p.add_argument("--price-column", default=None, help="price column of --data (e.g. 'Adj Close'), as given to "
                                                        "optimizer.py and controller.py")
    p.add_argument("--symbols", help="comma-separated subset of symbols to replay")
    p.add_argument("--regular-hours", action="store_true",
                   help="replay only bars inside regular XNYS sessions (what controller.py replays in process)")
    p.add_argument("--port", type=int, default=8765, help="TCP port on 127.0.0.1 (0 = any free port)")
    p.add_argument("--start", help="replay start, ISO 8601 (naive = UTC); earlier bars are history")
    p.add_argument("--end", help="replay end, ISO 8601 (naive = UTC)")
    p.add_argument("--speed", type=float, help="bars per second (default: lockstep, POST /_local/advance)")
    p.add_argument("--cash", type=float, default=100_000.0, help="starting cash, USD")
    p.add_argument("--params", default=None,
                   help="optimized_params.json: take the cost model (slippage, fees) from it, as controller.py's "
                        "in-process exchange does")
    p.add_argument("--slippage", type=float, default=None,
                   help=f"USD per share (default {CostModel().slippage_per_share}, or the --params file's)")
    p.add_argument("--fee-bps", type=float, default=None,
                   help=f"basis points of notional (default {CostModel().fee_bps}, or the --params file's)")
    p.add_argument("--state", default=None,
                   help="SQLite file holding the account and the replay clock; resumed when it exists "
                        "(default: in memory, lost at exit)")
    p.add_argument("--sync", choices=["normal", "full"], default="normal",
                   help="state durability: normal survives a kill of this process, full also a power loss "
                        "(one fsync per change)")
    p.add_argument("--key", default=LOCAL_KEY, help="API key id clients must send (default: the one controller.py "
                                                    "and trader.py send to a local exchange)")
    p.add_argument("--secret", default=LOCAL_SECRET, help="API secret clients must send (never printed)")
    p.add_argument("--rate-limit", type=int, default=200, help="requests per minute (0 disables)")
    return p


def _costs(args: argparse.Namespace) -> CostModel:
    base = CostModel()
    if args.params:
        from pairtrade.config import load_params
        base = load_params(args.params).costs
    upd = {}
    if args.slippage is not None:
        upd["slippage_per_share"] = args.slippage
    if args.fee_bps is not None:
        upd["fee_bps"] = args.fee_bps
    return base.model_copy(update=upd) if upd else base


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    symbols = [s.strip().upper() for s in args.symbols.split(",")] if args.symbols else None
    try:
        start = parse_utc(args.start, "--start") if args.start else None
        end = parse_utc(args.end, "--end") if args.end else None
        costs = _costs(args)
        if args.data:
            barset = load_bars(str(Path(args.data).resolve()), symbols=symbols, price_column=args.price_column)
        else:
            barset = embedded_bars()
            if symbols:
                barset = type(barset)({s: barset.require(s) for s in symbols}, barset.source, barset.bar_size)
        if args.regular_hours:
            barset = dataclasses.replace(barset, bars={s: regular_hours(df, barset.bar_size)
                                                       for s, df in barset.bars.items()})
        ex = LocalExchange(barset, start=start, end=end, cash=args.cash, costs=costs,
                           key=args.key, secret=args.secret, rate_limit_per_min=args.rate_limit or None,
                           speed=args.speed, port=args.port, state=args.state, sync=args.sync,
                           regular_hours=args.regular_hours)
    except (DataError, ConfigError, StateMismatch, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        ex.start()
    except OSError as e:
        ex.close_state()
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {e}", file=sys.stderr)
        return 2
    print(ex.describe(), flush=True)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        ex.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
