"""State transitions, gates, sizing and the live wrapper of the strategy kernel, on hand-made z paths."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairtrade.config import StrategyParams
from pairtrade.strategy import kernel as K

P = StrategyParams(entry_z=2.0, exit_z=0.5, stop_z=4.0, dollar_stop_usd=500.0, warmup_bars=0,
                   max_notional_usd=10_000.0, risk_per_trade_usd=200.0, hurst_max=0.5, adf_pvalue_max=0.05)


def run_path(zs, params=P, hurst=0.3, adf=0.01, beta=1.0, std=1.0, close_y=100.0, close_x=100.0,
             bars_seen=0):
    """Feed a z path to the kernel, report fills at the decision closes; returns [(ty, tx, reason)]."""
    state = K.new_state(bars_seen)
    pv = K.params_to_vector(params)
    n = len(zs)

    def arr(v):
        return np.broadcast_to(np.asarray(v, dtype=float), (n,))

    hs, ads, bs, ss, cy, cx = map(arr, (hurst, adf, beta, std, close_y, close_x))
    out = []
    for i, z in enumerate(zs):
        ty, tx, r = K.strategy_step(state, float(z), hs[i], ads[i], bs[i], ss[i], cy[i], cx[i], pv)
        if r in (K.ENTRY_LONG, K.ENTRY_SHORT):
            K.strategy_sync(state, ty, tx, cy[i], cx[i])
        out.append((ty, tx, int(r)))
    return out


def reasons(out):
    return [r for _, _, r in out]


def test_entry_long_and_exit_when_z_crosses_back():
    out = run_path([0.0, -1.9, -2.1, -1.5, -0.6, -0.4, 0.0])
    assert reasons(out) == [K.HOLD, K.HOLD, K.ENTRY_LONG, K.HOLD, K.HOLD, K.EXIT, K.HOLD]
    ty, tx, _ = out[2]
    assert ty > 0 and tx < 0  # long spread: long y, short beta * x
    assert out[3][:2] == (ty, tx)  # holding keeps the target
    assert out[5][:2] == (0.0, 0.0)


def test_entry_short_and_exit():
    out = run_path([2.5, 1.0, 0.6, 0.5])
    assert reasons(out) == [K.ENTRY_SHORT, K.HOLD, K.HOLD, K.EXIT]
    assert out[0][0] < 0 and out[0][1] > 0


def test_no_entry_beyond_stop_threshold():
    assert reasons(run_path([4.0, -4.5, 10.0])) == [K.HOLD] * 3


def test_z_stop_then_no_reentry_until_z_back_inside_entry_band():
    zs = [-2.5, -3.0, -4.1, -3.0, -2.5, -1.9, -2.2]
    r = reasons(run_path(zs))
    assert r[0] == K.ENTRY_LONG
    assert r[2] == K.Z_STOP
    assert r[3:6] == [K.HOLD, K.HOLD, K.HOLD]  # |z| >= entry_z but locked out; -1.9 clears the lockout
    assert r[6] == K.ENTRY_LONG


def test_short_z_stop():
    r = reasons(run_path([2.5, 4.0, 3.0]))
    assert r == [K.ENTRY_SHORT, K.Z_STOP, K.HOLD]


def test_dollar_stop_uses_open_pnl_in_usd_and_locks_out():
    # beta 1, std 1 -> N = min(100, 100, 200) = 100 shares each leg; y falls 5.01 USD -> loss 501 USD
    cy = [100.0, 99.0, 94.99, 95.0, 95.0, 95.0]
    out = run_path([-2.5, -2.6, -2.6, -2.5, -1.0, -2.5], close_y=cy)
    assert out[0][:2] == (100.0, -100.0)
    assert reasons(out) == [K.ENTRY_LONG, K.HOLD, K.DOLLAR_STOP, K.HOLD, K.HOLD, K.ENTRY_LONG]


def test_dollar_stop_measured_from_reported_fill_prices():
    s = K.PairStrategy(P)
    snap = SimpleNamespace(zscore=-2.5, hurst=0.3, adf_pvalue=0.01, beta=1.0, spread_std=1.0)
    d = s.on_bar(snap, 100.0, 100.0)
    assert d.reason == K.ENTRY_LONG and d.reason_name == "entry_long" and d.is_change
    # the broker filled y much higher than the decision close: 100 shares bought at 104
    s.on_fill(d.target_qty_y, d.target_qty_x, 104.0, 100.0)
    d2 = s.on_bar(SimpleNamespace(**{**snap.__dict__, "zscore": -2.4}), 99.0, 100.0)
    assert d2.reason == K.DOLLAR_STOP  # (99 - 104) * 100 = -500 <= -500


def test_nan_z_holds_position_and_blocks_entry():
    r = reasons(run_path([math.nan, -2.5, math.nan, math.nan, 0.0]))
    assert r == [K.HOLD, K.ENTRY_LONG, K.HOLD, K.HOLD, K.EXIT]


@pytest.mark.parametrize("kw", [dict(hurst=0.5), dict(hurst=0.7), dict(adf=0.06), dict(hurst=math.nan),
                                dict(adf=math.nan), dict(beta=math.nan), dict(std=math.nan)])
def test_gates_and_nan_signals_block_entry(kw):
    assert reasons(run_path([-2.5, 3.0], **kw)) == [K.HOLD, K.HOLD]


def test_gates_pass_just_inside_thresholds():
    assert reasons(run_path([-2.5], hurst=0.4999, adf=0.05))[0] == K.ENTRY_LONG


def test_hurst_max_one_disables_the_hurst_threshold_but_not_the_nan_rule():
    p = StrategyParams(**{**P.model_dump(), "hurst_max": 1.0})
    assert reasons(run_path([-2.5], params=p, hurst=1.3)) == [K.ENTRY_LONG]
    assert reasons(run_path([-2.5], params=p, hurst=math.nan)) == [K.HOLD]


def test_warmup_counts_bars_seen():
    p = StrategyParams(**{**P.model_dump(), "warmup_bars": 3})
    assert reasons(run_path([-2.5, -2.5, -2.5], params=p)) == [K.HOLD, K.HOLD, K.ENTRY_LONG]
    assert reasons(run_path([-2.5], params=p, bars_seen=5)) == [K.ENTRY_LONG]


def test_exit_and_gates_do_not_apply_to_open_positions():
    # gates only block entries; a held position is exited by z, not by the gate turning off
    out = run_path([-2.5, -2.5, -0.4], hurst=[0.3, 0.9, 0.9])
    assert reasons(out) == [K.ENTRY_LONG, K.HOLD, K.EXIT]


# ------------------------------------------------------------------------------------------
# sizing
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("beta,std,cy,cx,exp", [
    (1.5, 4.0, 100.0, 50.0, (50.0, 75.0)),      # risk binds: 200/4 = 50 units
    (1.5, 0.1, 100.0, 50.0, (100.0, 150.0)),    # y notional binds: 10000/100
    (2.0, 0.1, 50.0, 100.0, (50.0, 100.0)),     # x notional binds: 10000/(2*100) = 50
    (0.25, 3.2, 100.0, 100.0, (62.0, 16.0)),    # N = 62.5: floor 62, round_half_up(15.625) = 16
    (0.5, 8.0, 100.0, 100.0, (25.0, 13.0)),     # N*beta = 12.5 rounds half up to 13
    (-0.5, 8.0, 100.0, 100.0, (25.0, -12.0)),   # negative beta keeps its sign (-12.5 -> -12)
])
def test_position_size(beta, std, cy, cx, exp):
    pv = K.params_to_vector(P)
    assert K.position_size(beta, std, cy, cx, pv) == exp


def test_sizing_signs_and_notional_caps_on_entry():
    out = run_path([-2.5], beta=0.8, std=0.5, close_y=120.0, close_x=80.0)
    ty, tx, r = out[0]
    n = min(10_000 / 120.0, 10_000 / (0.8 * 80.0), 200 / 0.5)
    assert r == K.ENTRY_LONG and ty == math.floor(n) and tx == -math.floor(n * 0.8 + 0.5)
    assert abs(ty) * 120.0 <= 10_000 and abs(tx) * 80.0 <= 10_000 + 80.0  # x rounding adds at most a share
    out = run_path([2.5], beta=0.8, std=0.5, close_y=120.0, close_x=80.0)
    assert out[0][:2] == (-ty, -tx)


def test_no_entry_when_size_rounds_to_zero():
    assert reasons(run_path([-2.5], close_y=20_000.0)) == [K.HOLD]          # floor(N) = 0 shares
    assert reasons(run_path([-2.5], beta=0.001)) == [K.HOLD]                # x leg rounds to 0
    assert reasons(run_path([-2.5], std=0.0)) == [K.HOLD]


# ------------------------------------------------------------------------------------------
# params vector, wrapper, sync
# ------------------------------------------------------------------------------------------
def test_params_to_vector_layout():
    v = K.params_to_vector(P)
    assert v.shape == (K.PARAMS_SIZE,) and v.dtype == np.float64
    assert v[K.P_ENTRY_Z] == 2.0 and v[K.P_EXIT_Z] == 0.5 and v[K.P_STOP_Z] == 4.0
    assert v[K.P_DOLLAR_STOP_USD] == 500.0 and v[K.P_HURST_MAX] == 0.5 and v[K.P_ADF_PVALUE_MAX] == 0.05
    assert v[K.P_WARMUP_BARS] == 0 and v[K.P_MAX_NOTIONAL_USD] == 10_000 and v[K.P_RISK_PER_TRADE_USD] == 200


def test_wrapper_matches_kernel_and_state_round_trips():
    rng = np.random.default_rng(1)
    zs = np.cumsum(rng.normal(0, 0.7, 300))
    zs = np.clip(zs - np.convolve(zs, np.ones(10) / 10, mode="same"), -6, 6)
    expected = run_path(zs)
    s = K.PairStrategy(P)
    got = []
    for i, z in enumerate(zs):
        d = s.on_bar(SimpleNamespace(zscore=z, hurst=0.3, adf_pvalue=0.01, beta=1.0, spread_std=1.0), 100.0, 100.0)
        if d.reason in (K.ENTRY_LONG, K.ENTRY_SHORT):
            s.on_fill(d.target_qty_y, d.target_qty_x, 100.0, 100.0)
        got.append((d.target_qty_y, d.target_qty_x, d.reason))
        if i == 150:  # persist and resume mid-way
            s = K.PairStrategy(P, state=s.state.tolist())
    assert got == expected
    assert any(r != K.HOLD for _, _, r in got)


def test_sync_position_adopts_broker_position():
    s = K.PairStrategy(P)
    s.sync_position(-30, 45, 100.0, 60.0)
    assert s.side == -1 and s.qty == (-30.0, 45.0)
    snap = SimpleNamespace(zscore=0.4, hurst=0.3, adf_pvalue=0.01, beta=1.5, spread_std=1.0)
    assert s.on_bar(snap, 100.0, 60.0).reason == K.EXIT
    s.sync_position(0, 0, math.nan, math.nan)
    assert s.side == 0
    with pytest.raises(ValueError):
        K.PairStrategy(P, state=[0.0, 1.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-8, 8, allow_nan=False), min_size=1, max_size=80),
       st.floats(0.2, 3.0), st.floats(0.0, 1.5))
def test_invariants_on_random_paths(zs, entry, exit_frac):
    exit_z = entry * exit_frac / 1.5 * 0.99
    p = StrategyParams(**{**P.model_dump(), "entry_z": entry, "exit_z": exit_z, "stop_z": entry * 2})
    out = run_path(zs, params=p)
    side = 0
    locked = False
    for z, (ty, tx, r) in zip(zs, out):
        new_side = int(np.sign(ty))
        if r == K.HOLD:
            assert new_side == side
        elif r in (K.ENTRY_LONG, K.ENTRY_SHORT):
            assert side == 0 and not locked and entry <= abs(z) < 2 * entry
            assert new_side == (1 if r == K.ENTRY_LONG else -1) and np.sign(tx) == -new_side
        else:
            assert side != 0 and ty == 0 and tx == 0
            locked = r in (K.Z_STOP, K.DOLLAR_STOP)
        if locked and side == 0 and r == K.HOLD and abs(z) < entry:
            locked = False
        side = new_side
