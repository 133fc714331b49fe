#!/usr/bin/env python3
"""One pair's trader: ``python trader.py Y X`` (normally started by controller.py).  See pairtrade/live/trader.py."""

import sys

from pairtrade.live.trader import main

if __name__ == "__main__":
    sys.exit(main())
