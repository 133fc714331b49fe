"""The one place that decides whether kernels are compiled by numba.

Every numeric kernel is written as plain Python/NumPy and compiled with :func:`njit` from this
module (the pattern of the ``arch`` package).  Setting the environment variable
``PAIRTRADE_DISABLE_NUMBA=1`` before import makes :func:`njit` return the plain Python function,
so tests can compare the compiled and interpreted kernels.
"""

from __future__ import annotations

import os

NUMBA_DISABLED: bool = os.environ.get("PAIRTRADE_DISABLE_NUMBA", "0").strip().lower() in {"1", "true", "yes"}

if NUMBA_DISABLED:  # pragma: no cover - exercised by the PAIRTRADE_DISABLE_NUMBA test run

    def njit(func=None, **kwargs):
        """Return the function unchanged (numba disabled)."""
        if func is None:
            return lambda f: f
        return func

else:
    import numba

    def njit(func=None, **kwargs):
        """``numba.njit`` with ``cache=True`` unless told otherwise."""
        kwargs.setdefault("cache", True)
        if func is None:
            return lambda f: numba.njit(**kwargs)(f)
        return numba.njit(**kwargs)(func)
