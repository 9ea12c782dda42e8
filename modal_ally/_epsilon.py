"""The constraint levels ``epsilon_i`` of PDCL, including a per-row epsilon that
survives modAL's ``teach``.

modAL's ``teach`` appends the new rows to the learner's labeled set and refits on all
of it, so a per-row array set once has the wrong length from the first ``teach`` on.
A callable ``epsilon(X, y)`` is called at every fit with the rows being fitted and
returns their levels: it follows the labeled set as it grows.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["check_epsilon", "per_row_epsilon"]

_HOW = ("with modAL, whose teach refits on the grown labeled set, pass a callable "
        "instead: epsilon=lambda X, y: <one value per row of X> (called at every fit), "
        "or a scalar")


def check_epsilon(epsilon):
    """Check the ``epsilon`` parameter itself (before any data is seen)."""
    if isinstance(epsilon, str):
        if epsilon != "auto":
            raise ValueError(f"unknown epsilon={epsilon!r}; expected a number, 'auto', a "
                             "per-row array or a callable (X, y) -> per-row values")
        return
    if callable(epsilon):
        return
    if isinstance(epsilon, numbers.Real) and not isinstance(epsilon, bool):
        if not math.isfinite(epsilon) or epsilon < 0:
            raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
        return
    _check_values(np.asarray(epsilon), "epsilon")


def _check_values(values, where):
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.number) \
            or np.issubdtype(values.dtype, np.complexfloating):
        raise TypeError(
            f"{where} must be a number, a 1-d array with one value per row, 'auto' or a "
            f"callable (X, y) -> per-row values; got {values.dtype} of shape {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"{where} must be finite and >= 0 for every row")


def per_row_epsilon(epsilon, X, y):
    """``epsilon`` (number, array or callable) as one float32 value per row of ``X``.

    Raises
    ------
    ValueError
        If an array (given or returned by the callable) does not have one value per
        row; the message explains how to use a per-row epsilon with modAL's ``teach``.
    """
    n = X.shape[0]
    where = "epsilon"
    if callable(epsilon):
        where = "the values returned by epsilon(X, y)"
        epsilon = epsilon(X, y)
        if isinstance(epsilon, numbers.Real) and not isinstance(epsilon, bool):
            epsilon = float(epsilon)
            if not math.isfinite(epsilon) or epsilon < 0:
                raise ValueError(f"{where} must be finite and >= 0 for every row, "
                                 f"got {epsilon!r}")
            return np.full(n, epsilon, dtype=np.float32)
    elif isinstance(epsilon, numbers.Real):
        return np.full(n, float(epsilon), dtype=np.float32)
    values = np.asarray(epsilon)
    if values.ndim == 0 or values.dtype == object or values.dtype.kind in "US":
        raise TypeError(f"{where} must be a number or a 1-d array with one value per row, "
                        f"got {type(epsilon).__name__}")
    _check_values(values, where)
    if values.shape[0] != n:
        raise ValueError(
            f"epsilon has {values.shape[0]} values but X has {n} rows: a per-row epsilon "
            f"needs one value per row; {_HOW}")
    return values.astype(np.float32)
