"""Shared fixtures: the path of ../shared/data, skipped (or failing in CI) when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Property-based tests draw the same examples on every run, so CI results are reproducible.
settings.register_profile("pairtrade", derandomize=True)
settings.load_profile("pairtrade")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PAIRTRADE_SHARED_DATA", ROOT.parent / "shared" / "data"))
REQUIRE = os.environ.get("PAIRTRADE_REQUIRE_SHARED_DATA", "0") == "1"

EQUITIES_5MIN = "us_equities_5min_ibkr_15sym_2025-05-12_to_2025-12-31.csv.gz"
CHAN_ETF = "chan_inputData_ETF_close_EWA_EWC_IGE_GLD_GDX_USO_SPY_2006-04-26_to_2012-04-09.csv"
KO_PEP = "ko_pep_daily_1977-01-03_to_2008-01-18.csv"


def shared_file(name: str) -> Path:
    """Path of a file in ../shared/data; skip the test when absent (fail when CI requires it)."""
    path = SHARED_DATA / name
    if not path.exists():
        if REQUIRE:
            pytest.fail(f"PAIRTRADE_REQUIRE_SHARED_DATA=1 but {path} is missing")
        pytest.skip(f"shared data file {path} not present (a user's clone has no ../shared/data)")
    return path


@pytest.fixture
def equities_5min() -> Path:
    return shared_file(EQUITIES_5MIN)


@pytest.fixture
def chan_etf() -> Path:
    return shared_file(CHAN_ETF)


@pytest.fixture
def ko_pep() -> Path:
    return shared_file(KO_PEP)
