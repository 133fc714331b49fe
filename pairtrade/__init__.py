"""pairtrade: a pairs-trading engine for Alpaca (paper by default) with a local Alpaca-compatible exchange."""

__version__ = "0.1.0"
