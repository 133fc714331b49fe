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
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SCHEMA_VERSION = 2


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
    """Schema of ``pairs.json``.

    Three spellings are read and give the same model (first symbol = ``y``, the dependent leg;
    second = ``x``, the hedge leg):

    * ``{"pairs": [{"y": "XOM", "x": "CVX"}, ...]}`` (the form this project writes);
    * ``{"pairs": [["XOM", "CVX"], ...]}``;
    * ``[["XOM", "CVX"], ["GS", "MS"]]`` (a plain list, as used by other Alpaca pairs daemons).
    """

    pairs: list[PairSpec] = Field(min_length=1)

    @staticmethod
    def normalise(raw: Any) -> Any:
        """Rewrite the list spellings of ``pairs.json`` into ``{"pairs": [{"y": .., "x": ..}, ..]}``.

        Anything else is returned unchanged for the schema to judge.

        Raises
        ------
        ValueError
            ``"pairs.<i>: expected two symbols [Y, X], got ..."`` for an entry that is neither an
            object (or :class:`PairSpec`) nor a list of exactly two strings.
        """
        if isinstance(raw, list):
            raw = {"pairs": raw}
        if not (isinstance(raw, dict) and isinstance(raw.get("pairs"), list)):
            return raw
        entries = []
        for i, e in enumerate(raw["pairs"]):
            if isinstance(e, (dict, PairSpec)):
                entries.append(e)
            elif isinstance(e, (list, tuple)) and len(e) == 2 and all(isinstance(v, str) for v in e):
                entries.append({"y": e[0], "x": e[1]})
            else:
                try:
                    shown = json.dumps(e)
                except TypeError:
                    shown = repr(e)
                raise ValueError(f"pairs.{i}: expected two symbols [Y, X] (or {{\"y\": Y, \"x\": X}}), "
                                 f"got {shown}")
        return {**raw, "pairs": entries}

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, raw: Any) -> Any:
        return cls.normalise(raw)

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

    A market order decided on the close of bar t fills at the *open* of bar t+1 (or its close, see
    ``StrategyParams.execution``), moved against the trader by ``slippage_per_share`` USD (per symbol:
    ``slippage_per_share_by_symbol``, e.g. half the bid-ask spread estimated by the optimizer) plus
    ``slippage_bps`` basis points of the price; a fee of ``fee_bps`` basis points of the filled notional
    (USD) is charged on every fill.  Short positions pay a borrow fee of ``borrow_fee_pct`` % per year
    (per symbol: ``borrow_fee_pct_by_symbol``) on their notional at each close, accrued over the
    calendar time to the next bar, ACT/360 (the backtest; the local exchange charges none).
    """

    slippage_per_share: float = Field(0.01, ge=0, description="USD per share, against the trader")
    slippage_bps: float = Field(0.0, ge=0, description="basis points of the fill price, against the trader")
    fee_bps: float = Field(0.5, ge=0, description="basis points of filled notional (USD)")
    borrow_fee_pct: float = Field(0.0, ge=0, description="annual %, on the notional of short positions")
    slippage_per_share_by_symbol: dict[str, float] = Field(
        default_factory=dict, description="USD per share by symbol (replaces slippage_per_share for it)")
    borrow_fee_pct_by_symbol: dict[str, float] = Field(default_factory=dict, description="annual % by symbol")
    slippage_method: str = Field("fixed", description="how slippage was set: 'fixed' or the half-spread "
                                                      "estimator used ('quotes', 'corwin_schultz', 'roll')")

    def slippage_for(self, symbol: str) -> float:
        """Slippage of ``symbol`` in USD per share (the per-symbol value when given)."""
        return float(self.slippage_per_share_by_symbol.get(symbol, self.slippage_per_share))

    def borrow_rate_for(self, symbol: str) -> float:
        """Annual borrow fee of ``symbol`` as a fraction (3 % -> 0.03)."""
        return float(self.borrow_fee_pct_by_symbol.get(symbol, self.borrow_fee_pct)) / 100.0

    def scaled(self, factor: float) -> "CostModel":
        """The same model with every cost multiplied by ``factor`` (cost sensitivity)."""
        f = float(factor)
        return self.model_copy(update={
            "slippage_per_share": self.slippage_per_share * f, "slippage_bps": self.slippage_bps * f,
            "fee_bps": self.fee_bps * f, "borrow_fee_pct": self.borrow_fee_pct * f,
            "slippage_per_share_by_symbol": {k: v * f for k, v in self.slippage_per_share_by_symbol.items()},
            "borrow_fee_pct_by_symbol": {k: v * f for k, v in self.borrow_fee_pct_by_symbol.items()}})


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
    # ---- spread model (pairtrade.signals.pipeline) ----
    hedge: Literal["kalman", "ols", "rolling_ols"] = Field(
        "kalman", description="hedge ratio: Kalman filter (Chan 2013), static OLS fitted on the training window "
                              "(hedge_beta, hedge_alpha), or OLS over the last ols_window_bars bars")
    prices: Literal["level", "log"] = Field("level", description="spread on raw (USD) or log prices")
    spread: Literal["level", "forecast_error"] = Field(
        "level", description="signal spread: the level spread y - beta_{t-1} x - alpha_{t-1} (kalman: y - beta_{t-1} x) "
                             "or the Kalman one-step forecast error e_t (kalman only)")
    zscore: Literal["rolling", "fixed", "ewm", "forecast_std"] = Field(
        "rolling", description="z-score statistics: rolling window, fixed (zscore_mean, zscore_std from the training "
                               "window), exponentially weighted (zscore_halflife_bars), or e_t / sqrt(Q_t) (Chan's "
                               "+-sqrt(Q) bands; kalman forecast_error only)")
    zscore_halflife_bars: float = Field(78.0, gt=0, description="half-life of the ewm z-score statistics, bars")
    zscore_mean: float | None = Field(None, description="fixed z-score: spread mean of the training window")
    zscore_std: float | None = Field(None, gt=0, description="fixed z-score: spread std (ddof=1) of the training window")
    ols_window_bars: int = Field(390, ge=10, description="rolling_ols: regression window, bars")
    hedge_beta: float | None = Field(None, description="ols: hedge ratio fitted on the training window")
    hedge_alpha: float | None = Field(None, description="ols: intercept fitted on the training window")
    sizing: Literal["beta", "dollar_neutral"] = Field(
        "beta", description="beta-weighted shares (qty_x = N beta_shares) or equal USD notional per leg")
    execution: Literal["next_open", "next_close"] = Field(
        "next_open", description="fill of a decision on bar t's close: bar t+1's open or bar t+1's close")

    @model_validator(mode="after")
    def _ordered(self) -> "StrategyParams":
        if not (self.exit_z < self.entry_z < self.stop_z):
            raise ValueError(
                f"expected exit_z < entry_z < stop_z, got {self.exit_z} / {self.entry_z} / {self.stop_z}"
            )
        if self.spread == "forecast_error" and self.hedge != "kalman":
            raise ValueError(f"spread='forecast_error' needs hedge='kalman', got hedge={self.hedge!r}")
        if self.zscore == "forecast_std" and self.spread != "forecast_error":
            raise ValueError("zscore='forecast_std' (Chan's sqrt(Q) bands) needs spread='forecast_error'")
        if self.zscore == "fixed" and (self.zscore_mean is None or self.zscore_std is None):
            raise ValueError("zscore='fixed' needs zscore_mean and zscore_std (fitted on the training window)")
        if self.hedge == "ols" and (self.hedge_beta is None or self.hedge_alpha is None):
            raise ValueError("hedge='ols' needs hedge_beta and hedge_alpha (fitted on the training window)")
        return self


# --------------------------------------------------------------------------------------------
# optimized_params.json
# --------------------------------------------------------------------------------------------
class PairMetrics(_Frozen):
    """Statistics of one pair (units in the names; Sharpe ratios annualised; p-values in [0, 1]).

    Level statistics are computed on the in-sample log (or level) prices; ``oos_*`` figures are the stitched
    walk-forward out-of-sample returns; ``sharpe``/``trades`` belong to the final in-sample window's choice.
    """

    sharpe: float | None = Field(None, description="in-sample annualised Sharpe ratio of the chosen parameters "
                                                   "on the final walk-forward window")
    trades: int = Field(0, ge=0, description="closed in-sample trades of that choice")
    total_return_pct: float | None = None
    max_drawdown_pct: float | None = None
    adf_pvalue: float | None = Field(None, description="(schema 1) ADF p-value of the Kalman spread; unused")
    coint_pvalue: float | None = Field(None, description="max of the two Engle-Granger p-values")
    coint_pvalue_yx: float | None = Field(None, description="Engle-Granger p-value, y on x")
    coint_pvalue_xy: float | None = Field(None, description="Engle-Granger p-value, x on y")
    johansen_trace: float | None = Field(None, description="Johansen trace statistic, rank 0")
    johansen_crit_95: float | None = Field(None, description="its 95 % critical value")
    hedge_beta_ols: float | None = Field(None, description="static OLS hedge of the in-sample level spread")
    half_life_bars: float | None = Field(None, description="AR(1) half-life of the in-sample level spread, bars")
    hurst: float | None = Field(None, description="R/S Hurst exponent of the in-sample level spread")
    n_trials: int = Field(0, ge=0, description="spread models x threshold combinations searched per window")
    n_trials_effective: float | None = Field(None, description="effectively independent trials (participation "
                                                               "ratio of the trials' correlation eigenvalues)")
    trials_sharpe_std: float | None = Field(None, description="std of the trials' annualised Sharpe ratios")
    walk_forward_windows: int = Field(0, ge=0)
    oos_bars: int = Field(0, ge=0)
    oos_sharpe: float | None = Field(None, description="walk-forward out-of-sample annualised Sharpe ratio")
    oos_return_pct: float | None = None
    oos_max_drawdown_pct: float | None = None
    oos_trades: int = Field(0, ge=0)
    oos_psr: float | None = Field(None, description="probabilistic Sharpe ratio vs 0 (Bailey & Lopez de Prado 2012)")
    oos_dsr: float | None = Field(None, description="deflated Sharpe ratio (Bailey & Lopez de Prado 2014)")
    pbo: float | None = Field(None, description="probability of backtest overfitting by CSCV (Bailey et al. 2017)")
    holdout_sharpe: float | None = Field(None, description="final parameters on the held-out period (the replay)")
    holdout_return_pct: float | None = None
    holdout_trades: int = Field(0, ge=0)
    holdout_pnl_usd: float | None = None
    holdout_bars: int = Field(0, ge=0)
    oos_sharpe_by_cost: dict[str, float | None] = Field(default_factory=dict,
                                                        description="out-of-sample Sharpe at 0.5x, 1x, 2x costs")


class PairParams(_Frozen):
    """One entry of ``optimized_params.json["pairs"]``."""

    y: str
    x: str
    tradable: bool
    reason: str | None = Field(None, description="why not tradable (required when tradable is false)")
    params: StrategyParams | None = None
    metrics: PairMetrics | None = None
    walk_forward: list[dict[str, Any]] = Field(default_factory=list, description="one row per walk-forward window")

    #: thresholds a params file must state: never taken from the :class:`StrategyParams` defaults
    REQUIRED_THRESHOLDS: ClassVar[tuple[str, ...]] = ("entry_z", "exit_z", "stop_z")

    @model_validator(mode="before")
    @classmethod
    def _thresholds_given(cls, data: Any) -> Any:
        """A ``params`` mapping read from a file must give entry_z, exit_z and stop_z (z-score units).

        ``StrategyParams()`` built in code keeps its defaults; only a raw mapping (a JSON file) is checked,
        so a hand-edited file without a threshold is an error, never a silent 2.0 / 0.5 / 4.0.
        """
        if isinstance(data, dict) and isinstance(data.get("params"), dict):
            missing = [k for k in cls.REQUIRED_THRESHOLDS if k not in data["params"]]
            if missing:
                raise ValueError(f"params.{', params.'.join(missing)} missing: a threshold is never defaulted; "
                                 f"expected {', '.join(cls.REQUIRED_THRESHOLDS)} in z-score units as "
                                 f"optimizer.py writes them")
        return data

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

    schema_version: Literal[2]
    generated_at: str
    bar_size: str = Field(description="Alpaca timeframe string, e.g. '5Min' or '1Day'")
    data: DataRange
    costs: CostModel = CostModel()
    selection: dict[str, Any] = Field(default_factory=dict, description="selection and walk-forward settings used")
    pairs: dict[str, PairParams] = Field(default_factory=dict)
    preset: dict[str, Any] | None = Field(None, description="a published example's figures (--preset)")


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
    """Read and validate ``pairs.json`` in any of the spellings of :class:`PairsFile`.

    Returns
    -------
    PairsFile
        The pairs in file order; ``y`` the dependent leg, ``x`` the hedge leg.

    Raises
    ------
    ConfigError
        When the file is missing, not JSON, or does not match ``{"pairs": [{"y": .., "x": ..}, ..]}``,
        ``{"pairs": [[Y, X], ..]}`` or ``[[Y, X], ..]``; the message names the file and the field,
        e.g. ``pairs.1: expected two symbols [Y, X]``.
    """
    path = Path(path)
    raw = _read_json(path)
    try:
        raw = PairsFile.normalise(raw)
    except ValueError as e:
        raise ConfigError(f"{path}: invalid content\n  field {e}") from None
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
