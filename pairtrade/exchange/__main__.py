"""``python -m pairtrade.exchange``: run the local paper exchange standalone.

Examples
--------
``python -m pairtrade.exchange --data ../shared/data/us_equities_5min_...csv.gz --symbols XOM,CVX
--start 2025-06-02 --port 8765`` then drive it with ``curl -X POST localhost:8765/_local/advance?n=1``
or pass ``--speed 5`` (bars per second).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from pairtrade.config import CostModel
from pairtrade.data.bars import DataError, embedded_bars, load_bars
from pairtrade.exchange.server import LocalExchange


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pairtrade.exchange",
                                description="Local Alpaca-compatible paper exchange replaying recorded bars.")
    p.add_argument("--data", help="bars file (CSV/CSV.gz, long or wide layout); default: embedded SPX/COMP daily")
    p.add_argument("--symbols", help="comma-separated subset of symbols to replay")
    p.add_argument("--port", type=int, default=8765, help="TCP port on 127.0.0.1 (0 = any free port)")
    p.add_argument("--start", help="replay start, ISO 8601 (naive = UTC); earlier bars are history")
    p.add_argument("--end", help="replay end, ISO 8601 (naive = UTC)")
    p.add_argument("--speed", type=float, help="bars per second (default: lockstep, POST /_local/advance)")
    p.add_argument("--cash", type=float, default=100_000.0, help="starting cash, USD")
    p.add_argument("--slippage", type=float, default=CostModel().slippage_per_share, help="USD per share")
    p.add_argument("--fee-bps", type=float, default=CostModel().fee_bps, help="basis points of notional")
    p.add_argument("--key", default="local", help="API key id clients must send")
    p.add_argument("--secret", default="local", help="API secret clients must send (never printed)")
    p.add_argument("--rate-limit", type=int, default=200, help="requests per minute (0 disables)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    symbols = [s.strip().upper() for s in args.symbols.split(",")] if args.symbols else None
    try:
        if args.data:
            barset = load_bars(args.data, symbols=symbols)
        else:
            barset = embedded_bars()
            if symbols:
                barset = type(barset)({s: barset.require(s) for s in symbols}, barset.source, barset.bar_size)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ex = LocalExchange(barset, start=args.start, end=args.end, cash=args.cash,
                       costs=CostModel(slippage_per_share=args.slippage, fee_bps=args.fee_bps),
                       key=args.key, secret=args.secret, rate_limit_per_min=args.rate_limit or None,
                       speed=args.speed, port=args.port)
    try:
        ex.start()
    except OSError as e:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {e}", file=sys.stderr)
        return 2
    print(ex.describe(), flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        ex.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
