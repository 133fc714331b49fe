"""Hurst exponent of a series of levels: classical rescaled range (R/S), its Anis-Lloyd-Peters
corrected variant, a streaming window, and the simulated null distribution used to calibrate gates.

Estimator (:func:`hurst_rs`) -- identical to ``hurst.compute_Hc(x, kind="random_walk",
simplified=False)`` of the ``hurst`` package 0.0.5:

* window sizes ``w = int(10 ** k)`` for ``k`` in ``numpy.arange(log10(min_window), log10(max_window), 0.25)``
  plus ``w = n`` (``max_window`` defaults to ``n - 1``); e.g. ``n = 100`` gives 10, 17, 31, 56, 100;
* for each ``w``, the series is cut into ``n // w`` non-overlapping chunks of ``w`` levels starting at 0;
  for each chunk the ``w - 1`` increments are taken, ``Z = cumsum(inc - (x_end - x_start) / (w - 1))``,
  ``R = max Z - min Z``, ``S = std(inc, ddof=1)``; chunks with ``R == 0`` or ``S == 0`` are skipped; the
  chunk values are averaged;
* ``H`` is the least-squares slope of ``log10(mean R/S)`` on ``log10(w)``.

``simplified=True`` reproduces the package's default "simplified" R/S (``R = max - min`` of the levels).

At short windows R/S is biased upwards (for a Gaussian random walk of 390 levels the median is
0.578 and the 95th percentile 0.682; of 100 levels 0.612 and 0.782).  :func:`hurst_alp` removes most
of this bias with the Anis-Lloyd (1976) expected R/S (Peters 1994 form): ``H = 0.5 +
slope(log10(R/S) - log10(E[R/S]))``.  For gates, prefer quantiles of the null
distribution (:func:`hurst_null_quantile`) to fixed thresholds.

References
----------
Hurst, H.E. (1951) Long-term storage capacity of reservoirs. Trans. ASCE 116, 770-799.
Anis, A.A. and Lloyd, E.H. (1976) The expected value of the adjusted rescaled Hurst range of
independent normal summands. Biometrika 63, 111-116.
Peters, E.E. (1994) Fractal Market Analysis. Wiley.
Weron, R. (2002) Estimating long-range dependence: finite sample properties and confidence
intervals. Physica A 312, 285-299.
"""

from __future__ import annotations

import math
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from pairtrade._numba import njit
from pairtrade.signals.adf import RingWindow, as_float_array

#: seed and number of random walks of the null distribution (changing either changes the cache key)
NULL_SEED = 20240607
NULL_SIMS = 20000
_NULL_VERSION = 2
_ESTIMATORS = ("rs", "alp")
#: default quantile of a calibrated gate: enter only when H < the q-quantile of the random-walk null,
#: i.e. only 5 % of pure random walks of the same length would pass (see :func:`hurst_gate`)
DEFAULT_HURST_GATE_Q = 0.05


@lru_cache(maxsize=256)
def _window_sizes_cached(n: int, min_window: int, max_window: int) -> tuple[int, ...]:
    sizes = [int(10**v) for v in np.arange(math.log10(min_window), math.log10(max_window), 0.25)]
    sizes.append(n)
    return tuple(sizes)


def window_sizes(n: int, min_window: int = 10, max_window: int | None = None) -> np.ndarray:
    """Window sizes (in levels) used for a series of ``n`` levels, as ``hurst.compute_Hc``.

    Raises
    ------
    ValueError
        ``n < min_window + 2`` or ``min_window < 3`` (fewer than two distinct sizes / no increments).
    """
    n = int(n)
    min_window = int(min_window)
    if min_window < 3:
        raise ValueError(f"min_window: expected at least 3 levels, got {min_window}")
    max_window = int(max_window or n - 1)
    if n < min_window + 2 or max_window <= min_window or max_window > n:
        raise ValueError(
            f"series: expected at least min_window + 2 = {min_window + 2} levels and "
            f"min_window < max_window <= n, got n = {n}, min_window = {min_window}, max_window = {max_window}"
        )
    return np.array(_window_sizes_cached(n, min_window, max_window), dtype=np.int64)


def expected_rs(w: int) -> float:
    """Anis-Lloyd (1976) expected R/S of ``w`` Gaussian random-walk levels (``m = w - 1`` increments).

    ``E[R/S]_m = G * sum_{i=1}^{m-1} sqrt((m - i)/i)`` with ``G = Gamma((m-1)/2) / (sqrt(pi)
    Gamma(m/2))`` for ``m <= 340`` and ``G = 1/sqrt(m pi / 2)`` above (Peters 1994), for S with
    ddof=0; multiplied by ``sqrt((m - 1)/m)`` because S here uses ddof=1.  Peters' extra factor
    ``(m - 1/2)/m`` is *not* applied: simulation shows the formula above is already exact (e.g.
    m = 9: 2.829 formula vs 2.829 simulated for ddof=0), and the factor would bias H downwards
    (``tests/test_signals_hurst.py`` checks the expectation against simulation).
    """
    m = int(w) - 1
    if m < 2:
        raise ValueError(f"w: expected at least 3 levels, got {w}")
    i = np.arange(1, m)
    ssum = float(np.sum(np.sqrt((m - i) / i)))
    if m <= 340:
        g = math.exp(math.lgamma((m - 1) / 2.0) - math.lgamma(m / 2.0)) / math.sqrt(math.pi)
    else:
        g = 1.0 / math.sqrt(m * math.pi / 2.0)
    return g * ssum * math.sqrt((m - 1) / m)


@lru_cache(maxsize=256)
def _log_ers(sizes: tuple[int, ...]) -> np.ndarray:
    return np.array([math.log10(expected_rs(w)) for w in sizes])


@njit
def _chunk_rs(s, start, w, simplified):
    """R/S of the chunk ``s[start:start+w]`` (levels); 0 when R or S is 0 (skipped)."""
    m = w - 1
    mean_inc = (s[start + w - 1] - s[start]) / m
    tot = 0.0
    for i in range(m):
        tot += s[start + i + 1] - s[start + i]
    mu = tot / m
    ss = 0.0
    for i in range(m):
        dv = (s[start + i + 1] - s[start + i]) - mu
        ss += dv * dv
    sd = math.sqrt(ss / (m - 1)) if m > 1 else 0.0
    if simplified:
        hi = s[start]
        lo = s[start]
        for i in range(1, w):
            v = s[start + i]
            if v > hi:
                hi = v
            if v < lo:
                lo = v
        r = hi - lo
    else:
        z = 0.0
        hi = -math.inf
        lo = math.inf
        for i in range(m):
            z += (s[start + i + 1] - s[start + i]) - mean_inc
            if z > hi:
                hi = z
            if z < lo:
                lo = z
        r = hi - lo
    if r == 0.0 or sd == 0.0:
        return 0.0
    return r / sd


@njit
def hurst_kernel(s, sizes, simplified, log_ers, corrected):
    """Hurst exponent of the levels ``s`` for window ``sizes``; NaN when a size has no usable chunk.

    ``corrected`` subtracts ``log_ers`` (log10 expected R/S per size) and adds 0.5 (Anis-Lloyd-Peters).
    """
    n = s.shape[0]
    k = sizes.shape[0]
    lx = np.empty(k)
    ly = np.empty(k)
    for j in range(k):
        w = sizes[j]
        acc = 0.0
        cnt = 0
        start = 0
        while start + w <= n:
            rs = _chunk_rs(s, start, w, simplified)
            if rs != 0.0:
                acc += rs
                cnt += 1
            start += w
        if cnt == 0:
            return math.nan
        lx[j] = math.log10(w)
        ly[j] = math.log10(acc / cnt)
        if corrected:
            ly[j] -= log_ers[j]
    mx = 0.0
    my = 0.0
    for j in range(k):
        mx += lx[j]
        my += ly[j]
    mx /= k
    my /= k
    sxy = 0.0
    sxx = 0.0
    for j in range(k):
        sxy += (lx[j] - mx) * (ly[j] - my)
        sxx += (lx[j] - mx) * (lx[j] - mx)
    h = sxy / sxx
    if corrected:
        h += 0.5
    return h


def _hurst(x, min_window, max_window, simplified, corrected) -> float:
    a = as_float_array(x, "x", 1)
    sizes = window_sizes(a.shape[0], min_window, max_window)
    if a.max() == a.min():
        raise ValueError("x: expected a non-constant series, got a constant one (R/S undefined)")
    log_ers = _log_ers(tuple(int(v) for v in sizes)) if corrected else np.zeros(sizes.shape[0])
    h = hurst_kernel(a, sizes, bool(simplified), log_ers, bool(corrected))
    if math.isnan(h):
        raise ValueError("x: some window size has only flat chunks (R or S = 0); R/S undefined")
    return float(h)


def hurst_rs(x, min_window: int = 10, max_window: int | None = None, simplified: bool = False) -> float:
    """Classical rescaled-range Hurst exponent of the levels ``x`` (see module docstring).

    Equals ``hurst.compute_Hc(x, kind="random_walk", min_window, max_window, simplified)[0]``
    (that function needs ``n >= 100``; this one accepts ``n >= min_window + 2``).

    Parameters
    ----------
    x : array_like, shape (n,)
        Levels (e.g. spread, USD); increments are taken inside.
    min_window, max_window : int
        Smallest and (exclusive) largest window size in levels; ``max_window`` defaults to ``n - 1``.
    simplified : bool
        Use the package's simplified R/S (range of the levels) instead of the classical one.

    Returns
    -------
    float
        H (about 0.5 random walk, < 0.5 mean reverting, > 0.5 trending; biased upwards at short n).

    Raises
    ------
    ValueError
        Non-finite values, too short, constant series, or a window size whose chunks are all flat.
    """
    return _hurst(x, min_window, max_window, simplified, False)


def hurst_alp(x, min_window: int = 10, max_window: int | None = None) -> float:
    """Anis-Lloyd corrected R/S Hurst exponent (lower small-sample bias than :func:`hurst_rs`).

    ``H = 0.5 + slope of log10(R/S_w) - log10(E[R/S]_w)`` on ``log10(w)`` with the same windows and
    chunks as :func:`hurst_rs` and ``E[R/S]`` from :func:`expected_rs` (Anis and Lloyd 1976, Peters
    1994, Weron 2002).  Raises like :func:`hurst_rs`.
    """
    return _hurst(x, min_window, max_window, False, True)


class RollingHurst(RingWindow):
    """Hurst exponent over the last ``window`` levels, one level at a time.

    ``O(window)`` work per update (about 2 microseconds at 100 levels); the value equals
    :func:`hurst_rs` (or :func:`hurst_alp` when ``estimator="alp"``) of the same window.  NaN while
    fewer than ``window`` levels were seen or when the window is flat (documented value).
    """

    def __init__(self, window: int, estimator: str = "rs", min_window: int = 10):
        if estimator not in _ESTIMATORS:
            raise ValueError(f"estimator: expected 'rs' or 'alp', got {estimator!r}")
        super().__init__(window)
        self.sizes = window_sizes(self.window, min_window)
        self.corrected = estimator == "alp"
        self.log_ers = _log_ers(tuple(int(v) for v in self.sizes)) if self.corrected else np.zeros(self.sizes.shape[0])

    def update(self, value: float) -> float:
        """Append a level; H of the last ``window`` levels (NaN while filling)."""
        w = self._push_value(value)
        if w is None:
            return math.nan
        return float(hurst_kernel(w, self.sizes, False, self.log_ers, self.corrected))


# ----------------------------------------------------------------------------------------------
# null distribution (Gaussian random walk) for calibrated gates
# ----------------------------------------------------------------------------------------------
@njit
def _null_kernel(incs, sizes, log_ers, corrected, out):
    """H of each row's random walk ``cumsum([0, incs])``; ``incs`` shape (m, window - 1)."""
    m, k = incs.shape
    s = np.empty(k + 1)
    for r in range(m):
        s[0] = 0.0
        for i in range(k):
            s[i + 1] = s[i] + incs[r, i]
        out[r] = hurst_kernel(s, sizes, False, log_ers, corrected)


def cache_dir() -> Path:
    """Directory of on-disk caches: ``$PAIRTRADE_CACHE_DIR`` or ``~/.cache/pairtrade``."""
    env = os.environ.get("PAIRTRADE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pairtrade"


_NULL_MEMO: dict[tuple, np.ndarray] = {}


def hurst_null_distribution(
    window: int, estimator: str = "rs", n_sims: int = NULL_SIMS, seed: int = NULL_SEED, use_disk: bool = True
) -> np.ndarray:
    """Sorted Hurst exponents of ``n_sims`` Gaussian random walks of ``window`` levels.

    Simulated once with ``numpy.random.default_rng(seed)``, then memoised in-process and cached on
    disk as ``hurst_null_{estimator}_w{window}_n{n_sims}_s{seed}_v2.npy`` under :func:`cache_dir`
    (written atomically; an unreadable cache file is recomputed).  20,000 walks of 390 levels take
    about 0.5 s.

    Raises
    ------
    ValueError
        Unknown estimator or a window too short for :func:`window_sizes`.
    """
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator: expected 'rs' or 'alp', got {estimator!r}")
    window = int(window)
    sizes = window_sizes(window)
    key = (estimator, window, int(n_sims), int(seed))
    hit = _NULL_MEMO.get(key)
    if hit is not None:
        return hit
    path = cache_dir() / f"hurst_null_{estimator}_w{window}_n{n_sims}_s{seed}_v{_NULL_VERSION}.npy"
    arr = None
    if use_disk and path.exists():
        try:
            arr = np.load(path)
            if arr.shape != (n_sims,):
                arr = None
        except (OSError, ValueError):
            arr = None
    if arr is None:
        rng = np.random.default_rng(seed)
        incs = rng.standard_normal((int(n_sims), window - 1))
        corrected = estimator == "alp"
        log_ers = _log_ers(tuple(int(v) for v in sizes)) if corrected else np.zeros(sizes.shape[0])
        arr = np.empty(int(n_sims))
        _null_kernel(incs, sizes, log_ers, corrected, arr)
        arr.sort()
        if use_disk:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, arr)
                os.replace(tmp, path)
            except OSError:
                pass  # a read-only home is not an error: the in-process memo still works
    arr.setflags(write=False)
    _NULL_MEMO[key] = arr
    return arr


def hurst_null_quantile(window: int, q: float, estimator: str = "rs") -> float:
    """``q``-quantile (linear interpolation) of the random-walk null distribution of the estimator.

    Use it to express a Hurst gate as a level: ``hurst < hurst_null_quantile(100, 0.05)`` admits
    only 5 % of random walks.

    Raises
    ------
    ValueError
        ``q`` outside [0, 1] or as :func:`hurst_null_distribution`.
    """
    if not (0.0 <= q <= 1.0):
        raise ValueError(f"q: expected a probability in [0, 1], got {q}")
    return float(np.quantile(hurst_null_distribution(window, estimator), q))


def hurst_gate(window: int, q: float = DEFAULT_HURST_GATE_Q, estimator: str = "rs") -> float:
    """Calibrated gate level: a spread passes when its Hurst exponent is below this value.

    Equal to :func:`hurst_null_quantile` ``(window, q, estimator)``; with the default ``q = 0.05`` a
    Gaussian random walk of ``window`` levels passes with probability 5 %, whatever the window (a
    fixed level such as 0.8 admits ~96 % of 100-bar random walks because R/S is biased upwards at
    short windows).
    """
    return hurst_null_quantile(window, q, estimator)
