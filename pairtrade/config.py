"""Configuration: schemas of ``pairs.json`` and ``optimized_params.json``, strategy and cost settings.

All models are frozen pydantic models that reject unknown fields, so a typo in a config file is an
error that names the file and the field, never a silently ignored setting.

Errors
------
:class:`ConfigError` (a ``ValueError``) is raised for every malformed file; its message names the
file, the field path and what was expected.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SCHEMA_VERSION = 1


class ConfigError(ValueError):
    """A configuration file or value is malformed; the message names file, field and expectation."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------------------------
# pairs.json
# --------------------------------------------------------------------------------------------
class PairSpec(_Frozen):
    """One pair: ``y`` is the dependent leg, ``x`` the hedge leg; spread = y - beta * x - alpha."""

    y: str = Field(description="dependent leg symbol, e.g. 'XOM'")
    x: str = Field(description="hedge leg symbol, e.g. 'CVX'")

    @field_validator("y", "x")
    @classmethod
    def _symbol(cls, v: str) -> str:
        v = v.strip().upper()
        if not v or len(v) > 15 or any(c.isspace() for c in v):
            raise ValueError(f"expected a ticker symbol such as 'XOM', got {v!r}")
        return v

    @model_validator(mode="after")
    def _distinct(self) -> "PairSpec":
        if self.y == self.x:
            raise ValueError(f"the two legs must differ, got {self.y!r} twice")
        return self

    @property
    def pair_id(self) -> str:
        """Identifier used in file names, params keys and client_order_ids, e.g. 'XOM-CVX'."""
        return f"{self.y}-{self.x}"


class PairsFile(_Frozen):
    """Schema of ``pairs.json``: ``{"pairs": [{"y": "XOM", "x": "CVX"}, ...]}``."""

    pairs: list[PairSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "PairsFile":
        seen: set[str] = set()
        for p in self.pairs:
            if p.pair_id in seen:
                raise ValueError(f"pair {p.pair_id} is listed twice")
            seen.add(p.pair_id)
        return self


# --------------------------------------------------------------------------------------------
# strategy and costs
# --------------------------------------------------------------------------------------------
class CostModel(_Frozen):
    """The one fill model shared by backtest and local exchange.

    A market order decided on the close of bar t fills at the *open* of bar t+1, moved against the
    trader by ``slippage_per_share`` USD; a fee of ``fee_bps`` basis points of the filled notional
    (USD) is charged on every fill.
    """

    slippage_per_share: float = Field(0.01, ge=0, description="USD per share, against the trader")
    fee_bps: float = Field(0.5, ge=0, description="basis points of filled notional (USD)")


class StrategyParams(_Frozen):
    """Parameters of the pair state machine (flat / long spread / short spread).

    Units: z-scores are in standard deviations of the spread; windows are in bars; money in USD.
    """

    entry_z: float = Field(2.0, gt=0, description="enter when |z| >= entry_z")
    exit_z: float = Field(0.5, ge=0, description="exit when z crosses back inside +-exit_z")
    stop_z: float = Field(4.0, gt=0, description="stop out when |z| >= stop_z")
    dollar_stop_usd: float = Field(1000.0, gt=0, description="stop when open PnL <= -dollar_stop_usd")
    zscore_window_bars: int = Field(78, ge=5, description="rolling window of the spread z-score")
    hurst_window_bars: int = Field(100, ge=20, description="window of the Hurst exponent gate")
    hurst_max: float = Field(1.0, gt=0, description="enter only when Hurst < hurst_max (1.0 disables)")
    adf_window_bars: int = Field(390, ge=30, description="window of the rolling ADF gate")
    adf_pvalue_max: float = Field(1.0, gt=0, le=1, description="enter only when ADF p <= this (1.0 disables)")
    kalman_delta: float = Field(1e-4, gt=0, lt=1, description="Chan (2013) delta; V_w = delta/(1-delta) I")
    kalman_ve: float = Field(1e-3, gt=0, description="Chan (2013) V_e, observation noise variance")
    warmup_bars: int = Field(390, ge=0, description="bars before the first decision")
    max_notional_usd: float = Field(10_000.0, gt=0, description="cap of gross notional per leg (USD)")
    risk_per_trade_usd: float = Field(200.0, gt=0, description="volatility-scaled size: USD per 1 std of spread")

    @model_validator(mode="after")
    def _ordered(self) -> "StrategyParams":
        if not (self.exit_z < self.entry_z < self.stop_z):
            raise ValueError(
                f"expected exit_z < entry_z < stop_z, got {self.exit_z} / {self.entry_z} / {self.stop_z}"
            )
        return self


# --------------------------------------------------------------------------------------------
# optimized_params.json
# --------------------------------------------------------------------------------------------
class PairMetrics(_Frozen):
    """In-sample statistics of the chosen parameters."""

    sharpe: float | None = Field(None, description="annualised Sharpe ratio of bar returns")
    trades: int = Field(0, ge=0)
    total_return_pct: float | None = None
    max_drawdown_pct: float | None = None
    adf_pvalue: float | None = Field(None, description="ADF p-value of the in-sample Kalman spread")
    half_life_bars: float | None = None


class PairParams(_Frozen):
    """One entry of ``optimized_params.json["pairs"]``."""

    y: str
    x: str
    tradable: bool
    reason: str | None = Field(None, description="why not tradable (required when tradable is false)")
    params: StrategyParams | None = None
    metrics: PairMetrics | None = None

    @model_validator(mode="after")
    def _reason(self) -> "PairParams":
        if not self.tradable and not self.reason:
            raise ValueError("a pair with tradable=false needs a 'reason'")
        if self.tradable and self.params is None:
            raise ValueError("a tradable pair needs 'params'")
        return self


class DataRange(_Frozen):
    source: str
    start: str = Field(description="ISO 8601 UTC of the first bar used")
    end: str = Field(description="ISO 8601 UTC of the last bar used")


class ParamsFile(_Frozen):
    """Schema of ``optimized_params.json``."""

    schema_version: Literal[1]
    generated_at: str
    bar_size: str = Field(description="Alpaca timeframe string, e.g. '5Min' or '1Day'")
    data: DataRange
    costs: CostModel = CostModel()
    pairs: dict[str, PairParams]


# --------------------------------------------------------------------------------------------
# loading and atomic writing
# --------------------------------------------------------------------------------------------
def _format_validation(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  field {loc}: {e['msg']}")
    return f"{path}: invalid content\n" + "\n".join(lines)


def _read_json(path: Path) -> Any:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def load_pairs(path: str | Path) -> PairsFile:
    """Read and validate ``pairs.json``.

    Raises
    ------
    ConfigError
        When the file is missing, not JSON, or does not match ``{"pairs": [{"y": .., "x": ..}, ..]}``.
    """
    path = Path(path)
    raw = _read_json(path)
    try:
        return PairsFile.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_validation(path, e)) from None


def load_params(path: str | Path) -> ParamsFile:
    """Read and validate ``optimized_params.json``.

    Raises
    ------
    ConfigError
        When the file is missing, not JSON, or does not match :class:`ParamsFile`.
    """
    path = Path(path)
    raw = _read_json(path)
    try:
        return ParamsFile.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_validation(path, e)) from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Serialise ``obj`` (pydantic model or JSON-able object) and write it atomically."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
