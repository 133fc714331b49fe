#!/usr/bin/env python3
"""Entry point of the daemon: ``python controller.py --help``.  See pairtrade/live/controller.py."""

import sys

from pairtrade.live.controller import main

if __name__ == "__main__":
    sys.exit(main())
