"""Overfitting guards (PSR, expected maximum Sharpe, DSR, PBO by CSCV) against published figures,
closed forms, numerical integration and simulations with a known truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from pairtrade.research.overfitting import (
    PBOResult,
    deflated_sharpe_ratio,
    deflated_sharpe_ratio_from_stats,
    expected_max_sharpe,
    pbo_cscv,
    probabilistic_sharpe_ratio,
    psr_from_returns,
    sharpe_ratio,
)

# ------------------------------------------------------------------------------------------ Sharpe


def test_sharpe_ratio_is_mean_over_sample_std():
    rng = np.random.default_rng(1)
    x = rng.normal(0.001, 0.01, size=(300, 4))
    for j in range(4):
        col = x[:, j]
        assert sharpe_ratio(col) == pytest.approx(np.mean(col) / np.std(col, ddof=1), rel=1e-12)
    np.testing.assert_allclose(sharpe_ratio(x), x.mean(0) / x.std(0, ddof=1), rtol=1e-12)


def test_sharpe_ratio_degenerate_is_nan():
    assert math.isnan(sharpe_ratio([0.01]))
    assert math.isnan(sharpe_ratio(np.zeros(50)))
    assert math.isnan(sharpe_ratio(np.full(7, 0.1)))  # constant up to rounding of the mean
    out = sharpe_ratio(np.column_stack([np.zeros(10), np.arange(10.0)]))
    assert math.isnan(out[0]) and out[1] == pytest.approx(4.5 / np.std(np.arange(10.0), ddof=1))
    with pytest.raises(ValueError, match="returns"):
        sharpe_ratio([0.1, np.nan, 0.2])


# ------------------------------------------------------------------------------------------ PSR


@pytest.mark.parametrize("sr, sr_star, n", [(0.1, 0.0, 250), (0.05, 0.02, 1000), (-0.03, 0.0, 60), (0.3, 0.35, 24)])
def test_psr_normal_returns_equals_lo_closed_form(sr, sr_star, n):
    # skew 0, kurtosis 3: the SR estimator's variance is (1 + SR^2 / 2) / (n - 1) (Lo 2002)
    expected = stats.norm.cdf((sr - sr_star) * math.sqrt(n - 1) / math.sqrt(1 + sr * sr / 2))
    assert probabilistic_sharpe_ratio(sr, sr_star, n) == pytest.approx(expected, rel=1e-12)
    assert probabilistic_sharpe_ratio(sr, sr_star, n, 0.0, 3.0) == pytest.approx(expected, rel=1e-12)


def test_psr_at_true_sharpe_is_uniform_for_normal_returns():
    # true per-period SR 0.1, 250 returns: PSR(true SR) is ~U(0, 1), so it exceeds 0.95 in ~5 % of samples
    rng = np.random.default_rng(20240501)
    reps, n, sr = 2000, 250, 0.1
    x = rng.standard_normal((n, reps)) + sr
    p = np.array([psr_from_returns(x[:, i], sr) for i in range(reps)])
    assert 0.03 <= np.mean(p > 0.95) <= 0.07
    assert 0.03 <= np.mean(p < 0.05) <= 0.07
    assert np.mean(p) == pytest.approx(0.5, abs=0.02)
    assert stats.kstest(p, "uniform").pvalue > 1e-3


def test_psr_skew_and_kurtosis_terms_match_simulation():
    # negatively skewed returns r = sr - (E - 1), E ~ Exp(1): mean sr, std 1, skew -2, kurtosis 9
    rng = np.random.default_rng(77)
    reps, n, sr = 3000, 500, 0.15
    r = sr - (rng.exponential(size=(n, reps)) - 1.0)
    srh = sharpe_ratio(r)
    # the estimator's variance: (1 - g3 SR + (g4 - 1) / 4 SR^2) / (n - 1) with the true moments
    assert np.var(srh) * (n - 1) == pytest.approx(1 + 2 * sr + 2 * sr * sr, rel=0.12)
    g3 = stats.skew(r, axis=0)
    g4 = stats.kurtosis(r, axis=0, fisher=False)
    psr = np.array([probabilistic_sharpe_ratio(srh[i], sr, n, g3[i], g4[i]) for i in range(reps)])
    naive = np.array([probabilistic_sharpe_ratio(srh[i], sr, n) for i in range(reps)])
    assert 0.03 <= np.mean(psr > 0.95) <= 0.07  # nominal 5 % false positives
    # ignoring the negative skew overstates significance (~9 % false positives)
    assert np.mean(naive > 0.95) > np.mean(psr > 0.95) + 0.02


def test_psr_from_returns_uses_sample_moments():
    rng = np.random.default_rng(3)
    x = rng.standard_t(5, size=400) * 0.01 + 0.001
    sr = np.mean(x) / np.std(x, ddof=1)
    g3 = stats.skew(x)
    g4 = stats.kurtosis(x, fisher=False)
    z = (sr - 0.02) * math.sqrt(399) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr * sr)
    assert psr_from_returns(x, 0.02) == pytest.approx(stats.norm.cdf(z), rel=1e-12)
    assert math.isnan(psr_from_returns(np.zeros(20)))


def test_psr_validation():
    with pytest.raises(ValueError, match="n_obs"):
        probabilistic_sharpe_ratio(0.1, 0.0, 1)
    with pytest.raises(ValueError, match="kurtosis"):
        probabilistic_sharpe_ratio(0.1, 0.0, 100, skew=-1.0, kurtosis=0.5)  # excess kurtosis passed
    with pytest.raises(ValueError, match="returns"):
        psr_from_returns([0.1])


# -------------------------------------------------------------------------- expected maximum Sharpe


def _exact_expected_max_std_normal(n: int) -> float:
    f = lambda x: x * n * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1)  # noqa: E731
    return integrate.quad(f, -12, 12, limit=200)[0]


# the approximation is ~2.3 % / 0.9 % / 0.3 % above the exact value at N = 10 / 100 / 1000
@pytest.mark.parametrize("n_trials, rel", [(10, 0.04), (100, 0.02), (1000, 0.01)])
def test_expected_max_sharpe_against_simulation_and_integral(n_trials, rel):
    v = 0.004  # variance of the trials' per-period Sharpe ratios
    rng = np.random.default_rng(n_trials)
    reps = 5000
    sim = rng.normal(0.0, math.sqrt(v), size=(reps, n_trials)).max(axis=1).mean()
    formula = expected_max_sharpe(n_trials, v)
    assert formula == pytest.approx(sim, rel=rel)
    assert formula == pytest.approx(math.sqrt(v) * _exact_expected_max_std_normal(n_trials), rel=rel)


def test_expected_max_sharpe_of_sample_sharpe_ratios():
    # 100 null strategies of 250 iid returns each: their sample Sharpe ratios scatter with variance ~1/250
    rng = np.random.default_rng(11)
    reps, t, n_trials = 400, 250, 100
    maxima, variances = [], []
    for _ in range(reps):
        srs = sharpe_ratio(rng.standard_normal((t, n_trials)))
        maxima.append(srs.max())
        variances.append(np.var(srs, ddof=1))
    assert expected_max_sharpe(n_trials, np.mean(variances)) == pytest.approx(np.mean(maxima), rel=0.03)


def test_expected_max_sharpe_edge_cases():
    assert expected_max_sharpe(1, 0.5) == 0.0
    assert expected_max_sharpe(50, 0.0) == 0.0
    assert expected_max_sharpe(50, 4.0) == pytest.approx(2 * expected_max_sharpe(50, 1.0))
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(0, 1.0)
    with pytest.raises(ValueError, match="var_trials"):
        expected_max_sharpe(10, -1.0)


# ------------------------------------------------------------------------------------------- DSR


def test_dsr_numerical_example_of_the_paper():
    # Bailey & Lopez de Prado (2014), numerical example: N = 100 trials, variance of the annualised
    # Sharpe ratios 1/2, best annualised SR 2.5 over 5 years of daily returns (T = 1250, 250 a year),
    # skewness -3, kurtosis 10  ->  SR0 = 0.1132 (per day), DSR = 0.9004
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe_ratio_from_stats(2.5 / math.sqrt(250), 1250, 100, 0.5 / 250, skew=-3.0, kurtosis=10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_dsr_controls_false_positives_of_the_best_null_strategy():
    # best of 50 strategies with no skill: raw PSR(0) of the winner looks significant most of the time,
    # the DSR (deflated by the 50 trials and their Sharpe dispersion) rarely does
    rng = np.random.default_rng(2014)
    reps, t, n_trials = 300, 500, 50
    dsr_hits = psr_hits = 0
    for _ in range(reps):
        x = rng.standard_normal((t, n_trials)) * 0.01
        srs = sharpe_ratio(x)
        best = x[:, int(np.argmax(srs))]
        dsr_hits += deflated_sharpe_ratio(best, n_trials, np.var(srs, ddof=1)) > 0.95
        psr_hits += psr_from_returns(best) > 0.95
    assert dsr_hits / reps <= 0.10
    assert psr_hits / reps >= 0.5


def test_dsr_detects_a_real_edge_and_uses_sample_moments():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1000, 30)) * 0.01
    x[:, 7] += 0.002  # true per-period SR 0.2
    srs = sharpe_ratio(x)
    assert int(np.argmax(srs)) == 7
    v = np.var(srs, ddof=1)
    dsr = deflated_sharpe_ratio(x[:, 7], 30, v)
    assert dsr > 0.95
    expected = deflated_sharpe_ratio_from_stats(
        srs[7], 1000, 30, v, stats.skew(x[:, 7]), stats.kurtosis(x[:, 7], fisher=False)
    )
    assert dsr == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="n_trials"):
        deflated_sharpe_ratio(x[:, 7], 0, v)


# ------------------------------------------------------------------------------------------- PBO


def test_pbo_pure_noise_averages_one_half():
    # for iid trials the IS winner's OOS rank is uniform in every combination, so E[PBO] = 1/2 exactly
    # (ranks 1..10 of 20 give logit < 0); one data set's PBO is noisy (sd ~0.2 here), the mean of 400 is not
    pbos = [pbo_cscv(np.random.default_rng(1000 + s).standard_normal((240, 20)), n_splits=6).pbo for s in range(400)]
    assert np.mean(pbos) == pytest.approx(0.5, abs=0.04)


def test_pbo_pure_noise_is_near_one_half():
    # a single fixed-seed data set: its PBO has sd ~0.16 across seeds at this size, so 0.3..0.7 is a loose band
    rng = np.random.default_rng(1)
    res = pbo_cscv(rng.standard_normal((1000, 50)), n_splits=16)
    assert isinstance(res, PBOResult)
    assert res.n_combinations == special.comb(16, 8, exact=True) == 12870
    assert res.block_size == 62 and res.n_dropped == 1000 - 62 * 16
    assert 0.3 <= res.pbo <= 0.7
    assert res.logits.shape == res.is_performance.shape == res.oos_performance.shape == (12870,)
    # every in-sample set has S/2 distinct blocks and each set appears with its complement
    combos = {tuple(c) for c in res.combinations}
    assert len(combos) == 12870
    assert all(tuple(sorted(set(range(16)) - set(c))) in combos for c in list(combos)[:200])


def test_pbo_real_edge_is_near_zero():
    rng = np.random.default_rng(43)
    x = rng.standard_normal((1000, 50))
    x[:, 3] += 0.2  # the same drift in every block
    res = pbo_cscv(x, n_splits=16)
    assert res.pbo <= 0.05
    assert np.mean(res.best_trial == 3) > 0.95
    assert np.median(res.logits) == pytest.approx(math.log(50), rel=1e-12)  # ranked first of 50 OOS
    assert res.prob_oos_loss <= 0.05


def test_pbo_hand_computed_two_block_case():
    # S = 2: the two combinations are (block 0 IS, block 1 OOS) and the reverse.  Trial 0 is best in
    # block 0 and worst in block 1, trial 1 the opposite, trial 2 in between: the IS winner always
    # ranks 1st of 3 OOS -> omega = 1/4, logit = ln(1/3), PBO = 1
    rng = np.random.default_rng(0)
    base = rng.standard_normal(50) * 0.1
    half = np.column_stack([base + 0.5, base - 0.5, base])
    x = np.vstack([half, half[:, [1, 0, 2]]])
    res = pbo_cscv(x, n_splits=2)
    assert res.n_combinations == 2
    assert res.pbo == 1.0
    np.testing.assert_allclose(res.logits, math.log(1 / 3), rtol=1e-12)
    np.testing.assert_array_equal(np.sort(res.best_trial), [0, 1])


def test_pbo_drops_remainder_rows_at_the_start():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((16 * 20, 12))
    junk = rng.standard_normal((7, 12)) * 100 + 50  # would dominate any block it entered
    a = pbo_cscv(x, n_splits=16)
    b = pbo_cscv(np.vstack([junk, x]), n_splits=16)
    assert b.n_dropped == 7 and a.n_dropped == 0
    np.testing.assert_array_equal(a.logits, b.logits)
    np.testing.assert_array_equal(a.best_trial, b.best_trial)


def test_pbo_constant_trials_never_win_and_rank_last():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((400, 10))
    ref = pbo_cscv(x, n_splits=8)
    with_flat = pbo_cscv(np.column_stack([x, np.zeros(400), np.full(400, 0.01)]), n_splits=8)
    np.testing.assert_array_equal(with_flat.best_trial, ref.best_trial)
    # the two constant columns sit below every trial OOS: rank + 2 among N + 2 trials
    rank = special.expit(ref.logits) * 11
    np.testing.assert_allclose(special.expit(with_flat.logits) * 13, rank + 2, rtol=1e-9)
    with pytest.raises(ValueError, match="undefined"):
        pbo_cscv(np.column_stack([np.zeros(100), np.ones(100)]), n_splits=4)


def test_pbo_custom_metric_matches_fast_sharpe_path():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((205, 8)) + rng.normal(0, 0.05, 8)
    fast = pbo_cscv(x, n_splits=6)
    slow = pbo_cscv(x, n_splits=6, metric=lambda rows: rows.mean(0) / rows.std(0, ddof=1))
    np.testing.assert_allclose(slow.is_performance, fast.is_performance, rtol=1e-10)
    np.testing.assert_allclose(slow.oos_performance, fast.oos_performance, rtol=1e-10)
    np.testing.assert_array_equal(slow.logits, fast.logits)
    assert slow.pbo == fast.pbo
    with pytest.raises(ValueError, match="metric"):
        pbo_cscv(x, n_splits=6, metric=lambda rows: rows.mean())


def test_pbo_capped_random_combinations():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((400, 6))
    a = pbo_cscv(x, n_splits=20, max_combinations=150, seed=1)
    b = pbo_cscv(x, n_splits=20, max_combinations=150, seed=1)
    c = pbo_cscv(x, n_splits=20, max_combinations=150, seed=2)
    assert a.n_combinations == 150 and a.combinations.shape == (150, 10)
    assert len({tuple(r) for r in a.combinations}) == 150
    assert all(len(set(r)) == 10 and max(r) < 20 for r in a.combinations)
    np.testing.assert_array_equal(a.combinations, b.combinations)
    assert not np.array_equal(a.combinations, c.combinations)
    assert pbo_cscv(x, n_splits=6, max_combinations=10**6).n_combinations == special.comb(6, 3, exact=True)


def test_pbo_degradation_is_least_squares_fit():
    rng = np.random.default_rng(13)
    res = pbo_cscv(rng.standard_normal((480, 20)), n_splits=8)
    slope, intercept = res.degradation()
    ref = np.polyfit(res.is_performance, res.oos_performance, 1)
    assert slope == pytest.approx(ref[0], rel=1e-9) and intercept == pytest.approx(ref[1], rel=1e-9)


@pytest.mark.parametrize(
    "data, kwargs, match",
    [
        (np.zeros(100), {}, "2-D"),
        (np.ones((100, 1)), {}, "at least 2 trials"),
        (np.ones((100, 3)), {"n_splits": 5}, "n_splits"),
        (np.ones((100, 3)), {"n_splits": 0}, "n_splits"),
        (np.ones((10, 3)), {"n_splits": 16}, "at least n_splits"),
        (np.ones((3, 3)), {"n_splits": 2}, "fewer than 2 rows"),
        (np.vstack([np.ones((1, 3)) * np.nan, np.ones((99, 3))]), {}, "NaN"),
        (np.ones((100, 3)), {"n_splits": 4, "max_combinations": 0}, "max_combinations"),
    ],
)
def test_pbo_validation(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pbo_cscv(data, **kwargs)
