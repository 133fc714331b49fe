#!/usr/bin/env python
"""Offline optimizer: backtest every pair of pairs.json and write optimized_params.json.

Run ``python optimizer.py --help`` for the options; the work is done by :mod:`pairtrade.backtest.optimize`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pairtrade.backtest.optimize import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
