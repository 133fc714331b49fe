"""Guards against backtest overfitting: probabilistic and deflated Sharpe ratios, and the probability
of backtest overfitting (PBO) by combinatorially symmetric cross-validation (CSCV).

All Sharpe ratios here are **per period** (per bar of the return series, not annualised) and computed
on returns as given (pass excess returns if a risk-free rate matters).  To convert: annualised Sharpe
ratio ``= SR * sqrt(periods_per_year)``; a variance of per-period Sharpe ratios is an annualised one
divided by ``periods_per_year``.

* :func:`sharpe_ratio` -- ``mean / std`` (``ddof=1``); NaN when undefined.
* :func:`probabilistic_sharpe_ratio`, :func:`psr_from_returns` -- probability that the true Sharpe
  ratio exceeds a benchmark, given track-record length, skewness and kurtosis (Bailey & Lopez de Prado 2012).
* :func:`expected_max_sharpe` -- expected maximum Sharpe ratio of ``N`` independent trials with no skill
  (the "false strategy" benchmark of Bailey & Lopez de Prado 2014).
* :func:`deflated_sharpe_ratio`, :func:`deflated_sharpe_ratio_from_stats` -- PSR against that benchmark.
* :func:`pbo_cscv` -- PBO of a search over ``N`` trials (Bailey, Borwein, Lopez de Prado & Zhu 2017).

NaN policy: every function that takes returns raises ``ValueError`` on NaN or infinite values; drop
or fill them (a flat period is a return of 0) before calling.  A degenerate Sharpe ratio (fewer than
two observations, or a standard deviation of zero or below ``1e-6 * |mean|``, i.e. a constant series up
to rounding) is NaN, never an error.

References
----------
Bailey, D.H. and Lopez de Prado, M. (2012) The Sharpe ratio efficient frontier. Journal of Risk 15(2), 3-44.
Bailey, D.H. and Lopez de Prado, M. (2014) The deflated Sharpe ratio: correcting for selection bias,
backtest overfitting and non-normality. Journal of Portfolio Management 40(5), 94-107.
Bailey, D.H., Borwein, J.M., Lopez de Prado, M. and Zhu, Q.J. (2017) The probability of backtest
overfitting. Journal of Computational Finance 20(4), 39-69.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

__all__ = [
    "EULER_GAMMA",
    "PBOResult",
    "deflated_sharpe_ratio",
    "deflated_sharpe_ratio_from_stats",
    "expected_max_sharpe",
    "pbo_cscv",
    "probabilistic_sharpe_ratio",
    "psr_from_returns",
    "sharpe_ratio",
]

#: Euler-Mascheroni constant (used by :func:`expected_max_sharpe`)
EULER_GAMMA = float(np.euler_gamma)

#: a standard deviation at or below ``_CONST_RTOL * |mean|`` counts as zero (constant series up to
#: rounding): its Sharpe ratio would exceed 1e6 per period
_CONST_RTOL = 1e-6


def _finite_array(x, name: str, ndim: int | tuple[int, ...]) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if a.ndim not in dims:
        want = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{name}: expected a {want} array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"{name}: {bad} NaN or infinite value(s); drop or fill them (a flat period is 0) first")
    return a


def _sharpe_from_moments(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Per-period Sharpe from mean and (ddof=1) variance; NaN where the std is (numerically) zero."""
    mean = np.asarray(mean, dtype=float)
    std = np.sqrt(np.maximum(np.asarray(var, dtype=float), 0.0))
    degenerate = std <= _CONST_RTOL * np.abs(mean)  # also catches std == 0 with mean == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        sr = mean / std
    return np.where(degenerate, np.nan, sr)


def sharpe_ratio(returns) -> float | np.ndarray:
    """Per-period (non-annualised) Sharpe ratio ``mean(r) / std(r, ddof=1)``.

    Parameters
    ----------
    returns : array_like, shape (T,) or (T, N)
        Per-period returns (fractions, or USD P&L per period: the ratio is unit-free).  A 2-D array is
        taken column by column (one trial per column).

    Returns
    -------
    float or ndarray of shape (N,)
        The Sharpe ratio per period; NaN when ``T < 2`` or the standard deviation is zero (or below
        ``1e-6 * |mean|``, a constant series up to rounding).

    Raises
    ------
    ValueError
        ``returns`` is not 1-D/2-D or holds NaN/inf.
    """
    r = _finite_array(returns, "returns", (1, 2))
    n = r.shape[0]
    if n < 2:
        out = np.full(r.shape[1:], np.nan)
    else:
        out = _sharpe_from_moments(r.mean(axis=0), r.var(axis=0, ddof=1))
    return float(out) if r.ndim == 1 else out


def _check_moments(n_obs, skew, kurtosis) -> tuple[int, float, float]:
    if int(n_obs) != n_obs or n_obs < 2:
        raise ValueError(f"n_obs: expected an integer number of returns >= 2, got {n_obs}")
    skew = float(skew)
    kurtosis = float(kurtosis)
    if not (math.isfinite(skew) and math.isfinite(kurtosis)):
        raise ValueError(f"skew, kurtosis: expected finite values, got {skew}, {kurtosis}")
    # Pearson's inequality: any distribution has kurtosis >= 1 + skew**2 (the PSR variance is then >= 0)
    if kurtosis < 1.0 + skew * skew - 1e-9:
        raise ValueError(
            f"kurtosis: expected the non-excess kurtosis (normal = 3) with kurtosis >= 1 + skew**2, "
            f"got kurtosis = {kurtosis}, skew = {skew} (did you pass the excess kurtosis?)"
        )
    return int(n_obs), skew, kurtosis


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """Probabilistic Sharpe ratio PSR(SR*): probability that the true Sharpe ratio exceeds ``sr_benchmark``.

    ``PSR = Phi( (SR - SR*) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2) )`` with ``Phi`` the standard
    normal CDF, ``g3`` the skewness and ``g4`` the non-excess kurtosis of the returns.

    Parameters
    ----------
    sr : float
        Observed per-period (non-annualised) Sharpe ratio.
    sr_benchmark : float
        Benchmark per-period Sharpe ratio SR* (0 asks "is there any skill?").
    n_obs : int
        Number of returns the Sharpe ratio was estimated from (>= 2).
    skew : float, default 0
        Skewness of the returns.
    kurtosis : float, default 3
        **Non-excess** kurtosis of the returns (3 for a normal distribution).

    Returns
    -------
    float
        PSR in [0, 1]; NaN when ``sr`` or ``sr_benchmark`` is NaN.

    Raises
    ------
    ValueError
        ``n_obs < 2``, non-finite moments, or ``kurtosis < 1 + skew**2`` (impossible for any
        distribution; usually an excess kurtosis passed by mistake).

    References
    ----------
    Bailey & Lopez de Prado (2012), The Sharpe ratio efficient frontier, J. of Risk 15(2), eq. for PSR.
    """
    n, g3, g4 = _check_moments(n_obs, skew, kurtosis)
    sr = float(sr)
    sr_benchmark = float(sr_benchmark)
    if math.isnan(sr) or math.isnan(sr_benchmark):
        return float("nan")
    var = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr * sr  # >= (1 - g3 SR / 2)^2 >= 0 by Pearson's inequality
    diff = sr - sr_benchmark
    if var <= 0.0:  # two-point distribution at the boundary: the estimator has no spread
        return 1.0 if diff > 0 else 0.0 if diff < 0 else 0.5
    return float(special.ndtr(diff * math.sqrt(n - 1) / math.sqrt(var)))


def _return_moments(returns) -> tuple[float, int, float, float]:
    r = _finite_array(returns, "returns", 1)
    if r.size < 2:
        raise ValueError(f"returns: expected at least 2 observations, got {r.size}")
    sr = sharpe_ratio(r)
    if np.isnan(sr):
        return sr, r.size, 0.0, 3.0
    g3 = float(stats.skew(r, bias=True))
    g4 = float(stats.kurtosis(r, fisher=False, bias=True))
    return float(sr), int(r.size), g3, g4


def psr_from_returns(returns, sr_benchmark: float = 0.0) -> float:
    """PSR of a return series against ``sr_benchmark`` (per period), from its own sample moments.

    Skewness and kurtosis are the population-style sample moments (``scipy.stats.skew(bias=True)``,
    ``scipy.stats.kurtosis(fisher=False, bias=True)``), which always satisfy Pearson's inequality.

    Parameters
    ----------
    returns : array_like, shape (T,)
        Per-period returns, no NaN.
    sr_benchmark : float, default 0
        Benchmark per-period Sharpe ratio.

    Returns
    -------
    float
        PSR in [0, 1]; NaN when the Sharpe ratio is undefined (constant returns).

    Raises
    ------
    ValueError
        Fewer than 2 returns, NaN/inf in ``returns``.
    """
    sr, n, g3, g4 = _return_moments(returns)
    return probabilistic_sharpe_ratio(sr, sr_benchmark, n, g3, g4)


def expected_max_sharpe(n_trials: int, var_trials: float) -> float:
    """Expected maximum per-period Sharpe ratio of ``n_trials`` independent trials with no skill.

    ``E[max SR] ~= sqrt(V) ((1 - gamma) Z^-1(1 - 1/N) + gamma Z^-1(1 - 1/(N e)))``, gamma the
    Euler-Mascheroni constant, ``Z^-1`` the standard normal quantile; the trials' Sharpe ratios are
    taken as normal with mean 0 and variance ``V``.  An asymptotic (large ``N``) approximation: about
    2 % above the exact value at ``N = 10``, 1 % at ``N = 100``.  ``N = 1`` gives exactly 0.

    Parameters
    ----------
    n_trials : int
        Number of independent trials (strategy configurations) tried, >= 1.
    var_trials : float
        Variance across the trials of their per-period Sharpe ratios (e.g. ``np.var(trial_sharpes,
        ddof=1)``; an annualised variance divided by periods per year).  Under the null of no skill
        and ``T`` returns per trial it is about ``1 / T``.

    Returns
    -------
    float
        Expected maximum per-period Sharpe ratio (the benchmark SR0 of the deflated Sharpe ratio).

    Raises
    ------
    ValueError
        ``n_trials < 1`` or ``var_trials`` negative / not finite.

    References
    ----------
    Bailey & Lopez de Prado (2014), The deflated Sharpe ratio, J. Portfolio Management 40(5), eq. for SR0.
    """
    if int(n_trials) != n_trials or n_trials < 1:
        raise ValueError(f"n_trials: expected an integer >= 1, got {n_trials}")
    var_trials = float(var_trials)
    if not math.isfinite(var_trials) or var_trials < 0:
        raise ValueError(f"var_trials: expected a finite variance >= 0 of the trials' Sharpe ratios, got {var_trials}")
    n = int(n_trials)
    if n == 1:
        return 0.0
    z = (1.0 - EULER_GAMMA) * special.ndtri(1.0 - 1.0 / n) + EULER_GAMMA * special.ndtri(1.0 - 1.0 / (n * math.e))
    return float(math.sqrt(var_trials) * z)


def deflated_sharpe_ratio_from_stats(
    sr: float, n_obs: int, n_trials: int, var_trials: float, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """Deflated Sharpe ratio from statistics: ``PSR(SR0)`` with ``SR0 = expected_max_sharpe(n_trials, var_trials)``.

    Parameters
    ----------
    sr : float
        Per-period Sharpe ratio of the selected (best) trial.
    n_obs : int
        Number of returns of the selected trial (>= 2).
    n_trials : int
        Number of independent trials tried (>= 1).
    var_trials : float
        Variance across all trials of their **per-period** Sharpe ratios (``np.var(trial_sharpes,
        ddof=1)``); annualised variance / periods per year.
    skew, kurtosis : float
        Skewness and **non-excess** kurtosis of the selected trial's returns.

    Returns
    -------
    float
        DSR in [0, 1]: probability that the selected trial's true Sharpe ratio is positive after
        accounting for the selection among ``n_trials``.  Above 0.95 is the paper's significance bar.

    Raises
    ------
    ValueError
        As :func:`probabilistic_sharpe_ratio` and :func:`expected_max_sharpe`.

    References
    ----------
    Bailey & Lopez de Prado (2014), The deflated Sharpe ratio, J. Portfolio Management 40(5).
    """
    sr0 = expected_max_sharpe(n_trials, var_trials)
    return probabilistic_sharpe_ratio(sr, sr0, n_obs, skew, kurtosis)


def deflated_sharpe_ratio(returns, n_trials: int, var_trials: float) -> float:
    """Deflated Sharpe ratio (DSR) of the selected trial's return series.

    Parameters
    ----------
    returns : array_like, shape (T,)
        Per-period returns of the selected (best) trial, no NaN.
    n_trials : int
        Number of independent trials tried to find it (>= 1).
    var_trials : float
        Variance across all trials of their per-period Sharpe ratios, e.g.
        ``np.var(sharpe_ratio(trial_returns), ddof=1)`` for a (T, N) matrix of trial returns.

    Returns
    -------
    float
        DSR in [0, 1]; NaN if the selected returns are constant.

    Raises
    ------
    ValueError
        Fewer than 2 returns, NaN/inf, ``n_trials < 1``, negative ``var_trials``.

    References
    ----------
    Bailey & Lopez de Prado (2014), The deflated Sharpe ratio, J. Portfolio Management 40(5).
    """
    sr, n, g3, g4 = _return_moments(returns)
    return deflated_sharpe_ratio_from_stats(sr, n, n_trials, var_trials, g3, g4)


# ------------------------------------------------------------------------------------------------ PBO


@dataclass(frozen=True)
class PBOResult:
    """Outcome of :func:`pbo_cscv`.

    Attributes
    ----------
    pbo : float
        Probability of backtest overfitting: share of combinations whose logit is <= 0, i.e. whose
        in-sample best trial ranks at or below the out-of-sample median.
    logits : ndarray, shape (C,)
        ``lambda_c = ln(omega_c / (1 - omega_c))`` per combination, ``omega_c = rank / (N + 1)``.
    is_performance, oos_performance : ndarray, shape (C,)
        Metric of the in-sample best trial in-sample and out-of-sample, per combination (for the
        performance-degradation regression; NaN out-of-sample where the metric is undefined).
    best_trial : ndarray of int, shape (C,)
        Column index of the in-sample best trial per combination.
    combinations : ndarray of int, shape (C, S // 2)
        Block indices forming the in-sample set of each combination (the rest are out-of-sample).
    n_splits : int
        Number of blocks S.
    block_size : int
        Rows per block.
    n_dropped : int
        Rows dropped at the start of the sample so that ``T`` divides into ``S`` equal blocks.
    """

    pbo: float
    logits: np.ndarray = field(repr=False)
    is_performance: np.ndarray = field(repr=False)
    oos_performance: np.ndarray = field(repr=False)
    best_trial: np.ndarray = field(repr=False)
    combinations: np.ndarray = field(repr=False)
    n_splits: int = 0
    block_size: int = 0
    n_dropped: int = 0

    @property
    def n_combinations(self) -> int:
        """Number of combinations C evaluated."""
        return int(self.logits.size)

    @property
    def prob_oos_loss(self) -> float:
        """Share of combinations whose in-sample best trial has a negative out-of-sample metric (NaN counts as not a loss)."""
        return float(np.mean(self.oos_performance < 0))

    def degradation(self) -> tuple[float, float]:
        """Least-squares line ``oos = intercept + slope * is`` over combinations (Bailey et al. 2017, fig. "performance degradation").

        Returns
        -------
        (slope, intercept) : tuple of float
            NaN, NaN when fewer than two finite pairs or no spread in-sample.
        """
        ok = np.isfinite(self.is_performance) & np.isfinite(self.oos_performance)
        x, y = self.is_performance[ok], self.oos_performance[ok]
        if x.size < 2 or np.ptp(x) == 0:
            return float("nan"), float("nan")
        fit = stats.linregress(x, y)
        return float(fit.slope), float(fit.intercept)


def _combinations(n_splits: int, max_combinations: int | None, seed: int) -> np.ndarray:
    half = n_splits // 2
    total = math.comb(n_splits, half)
    if max_combinations is None or max_combinations >= total:
        return np.array(list(itertools.combinations(range(n_splits), half)), dtype=np.intp).reshape(total, half)
    rng = np.random.default_rng(seed)
    chosen: set[tuple[int, ...]] = set()
    while len(chosen) < max_combinations:
        chosen.add(tuple(sorted(int(i) for i in rng.choice(n_splits, size=half, replace=False))))
    return np.array(sorted(chosen), dtype=np.intp)


def _block_sharpe(block_mean: np.ndarray, block_m2: np.ndarray, member: np.ndarray, block_size: int) -> np.ndarray:
    """Sharpe ratio per (combination, trial) of the union of the member blocks, from per-block moments.

    Pooled variance (Chan et al. parallel formula): ``M2 = sum M2_b + L sum (m_b - m)^2`` with equal
    block lengths ``L``; block means are centred on their column average to limit cancellation.
    """
    k = member.sum(axis=1, keepdims=True)  # blocks per combination, (C, 1)
    n = k * block_size
    centre = block_mean.mean(axis=0)
    d = block_mean - centre  # (S, N)
    d_mean = (member @ d) / k  # (C, N)
    m2 = member @ block_m2 + block_size * (member @ (d * d) - k * d_mean * d_mean)
    return _sharpe_from_moments(d_mean + centre, m2 / (n - 1))


def pbo_cscv(
    trial_returns,
    n_splits: int = 16,
    metric: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    max_combinations: int | None = None,
    seed: int = 0,
) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV).

    The ``T`` rows are cut into ``S = n_splits`` equal blocks of ``L = T // S`` rows (the first
    ``T - S L`` rows, the oldest, are dropped).  For each combination of ``S / 2`` blocks taken as the
    in-sample set (the other ``S / 2`` blocks, in order, are the out-of-sample set) the trial with the
    best in-sample metric is picked; its out-of-sample rank ``r`` among the ``N`` trials (1 = worst,
    ties averaged) gives ``omega = r / (N + 1)`` and the logit ``lambda = ln(omega / (1 - omega))``.
    PBO is the share of combinations with ``lambda <= 0``.

    Parameters
    ----------
    trial_returns : array_like, shape (T, N)
        Per-period returns (rows: bars in time order; columns: the ``N >= 2`` trials, e.g. parameter
        sets of one strategy over the same bars).  No NaN: fill flat periods with 0.
    n_splits : int, default 16
        Number of blocks S: even, >= 2 and <= T.  C(S, S/2) combinations (12 870 for S = 16).
    metric : callable, optional
        ``metric(rows) -> (N,)`` performance per column of a (rows, N) array, higher is better; NaN
        means undefined.  Default: the per-period Sharpe ratio (:func:`sharpe_ratio`), computed from
        per-block moments (fast).
    max_combinations : int, optional
        Evaluate at most this many distinct combinations, drawn uniformly at random (seeded by
        ``seed``) when C(S, S/2) exceeds it; all combinations otherwise.
    seed : int, default 0
        Seed of the random subset of combinations.

    Returns
    -------
    PBOResult
        PBO, logits, in-/out-of-sample metric of the chosen trials, see :class:`PBOResult`.

    Notes
    -----
    Trials with an undefined metric (NaN, e.g. a constant column whose Sharpe ratio is undefined) are
    never picked in-sample and rank last out-of-sample (ties among them averaged).  Ties in-sample go to
    the lowest column index.

    Raises
    ------
    ValueError
        ``trial_returns`` not 2-D, NaN/inf, fewer than 2 trials; ``n_splits`` odd, < 2 or > T, or
        leaving fewer than 2 rows per half;
        ``max_combinations < 1``; a metric returning the wrong shape; a combination where every trial's
        in-sample metric is undefined.

    References
    ----------
    Bailey, Borwein, Lopez de Prado & Zhu (2017), The probability of backtest overfitting,
    J. Computational Finance 20(4), section on CSCV.
    """
    m = _finite_array(trial_returns, "trial_returns", 2)
    t_rows, n_trials = m.shape
    if n_trials < 2:
        raise ValueError(f"trial_returns: expected at least 2 trials (columns), got {n_trials}")
    if int(n_splits) != n_splits or n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits: expected an even integer >= 2, got {n_splits}")
    n_splits = int(n_splits)
    if t_rows < n_splits:
        raise ValueError(f"trial_returns: expected at least n_splits = {n_splits} rows, got {t_rows}")
    if max_combinations is not None and (int(max_combinations) != max_combinations or max_combinations < 1):
        raise ValueError(f"max_combinations: expected an integer >= 1 or None, got {max_combinations}")

    block_size = t_rows // n_splits
    if block_size * (n_splits // 2) < 2:
        raise ValueError(
            f"trial_returns: {t_rows} rows in {n_splits} blocks leave fewer than 2 rows per half; "
            f"use fewer blocks or more rows"
        )
    n_dropped = t_rows - block_size * n_splits
    m = m[n_dropped:]
    combos = _combinations(n_splits, None if max_combinations is None else int(max_combinations), seed)
    n_comb = combos.shape[0]
    member = np.zeros((n_comb, n_splits))
    member[np.arange(n_comb)[:, None], combos] = 1.0

    if metric is None:
        blocks = m.reshape(n_splits, block_size, n_trials)
        block_mean = blocks.mean(axis=1)
        block_m2 = ((blocks - block_mean[:, None, :]) ** 2).sum(axis=1)
        perf_is = _block_sharpe(block_mean, block_m2, member, block_size)
        perf_oos = _block_sharpe(block_mean, block_m2, 1.0 - member, block_size)
    else:
        row_block = np.arange(m.shape[0]) // block_size
        perf_is = np.empty((n_comb, n_trials))
        perf_oos = np.empty((n_comb, n_trials))
        for c in range(n_comb):
            in_is = member[c][row_block] > 0
            for out, rows in ((perf_is, m[in_is]), (perf_oos, m[~in_is])):
                val = np.asarray(metric(rows), dtype=float)
                if val.shape != (n_trials,):
                    raise ValueError(f"metric: expected an array of shape ({n_trials},), got {val.shape}")
                out[c] = val

    score_is = np.where(np.isnan(perf_is), -np.inf, perf_is)
    if np.any(np.all(np.isneginf(score_is), axis=1)):
        raise ValueError("trial_returns: every trial's in-sample metric is undefined (NaN) in some combination")
    best = np.argmax(score_is, axis=1)
    rows_idx = np.arange(n_comb)
    score_oos = np.where(np.isnan(perf_oos), -np.inf, perf_oos)
    chosen = score_oos[rows_idx, best][:, None]
    rank = np.sum(score_oos < chosen, axis=1) + (np.sum(score_oos == chosen, axis=1) + 1) / 2.0
    omega = rank / (n_trials + 1)
    logits = special.logit(omega)
    return PBOResult(
        pbo=float(np.mean(logits <= 0)),
        logits=logits,
        is_performance=perf_is[rows_idx, best],
        oos_performance=perf_oos[rows_idx, best],
        best_trial=best,
        combinations=combos,
        n_splits=n_splits,
        block_size=block_size,
        n_dropped=n_dropped,
    )
