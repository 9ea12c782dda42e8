"""Planted label noise for the label-audit and noisy-oracle benchmarks (seeded).

Three kinds:

``symmetric``
    A chosen row's label becomes one of the *other* classes, uniformly.
``pairs``
    Class-conditional: a chosen row of class c gets the label of c's confusable partner,
    the class whose centroid (mean of the clean rows) lies nearest c's. Derived from the
    data, the same for every seed; a binary task's partner is the other class.
``replaced``
    Regression: a chosen row's target is replaced by the target of another row of the
    set, drawn uniformly (a value from the marginal, unrelated to the row).

In :func:`corrupt` exactly ``round(rate * n)`` rows, drawn uniformly, are corrupted.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KINDS", "confusable_partners", "corrupt", "flip"]

KINDS = ("symmetric", "pairs", "replaced")


def confusable_partners(X, y, n_classes: int) -> np.ndarray:
    """For every class, the class with the nearest centroid (Euclidean, flattened X)."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y)
    centroids = np.stack([X[y == c].mean(axis=0) if (y == c).any()
                          else np.full(X.shape[1], np.inf) for c in range(n_classes)])
    finite = np.isfinite(centroids).all(axis=1)
    d = ((centroids[:, None, :] - np.where(finite[:, None], centroids, 0)[None]) ** 2).sum(-1)
    d[:, ~finite] = np.inf
    np.fill_diagonal(d, np.inf)
    return d.argmin(axis=1).astype(np.int64)


def flip(y, rows, kind: str, rng, *, n_classes=None, partners=None, pool_targets=None):
    """A copy of ``y`` with ``rows`` corrupted by ``kind`` (see the module docstring)."""
    y = np.asarray(y).copy()
    rows = np.asarray(rows, dtype=np.int64)
    if not rows.size:
        return y
    if kind == "symmetric":
        shift = rng.integers(1, n_classes, size=rows.size)
        y[rows] = (y[rows] + shift) % n_classes
    elif kind == "pairs":
        y[rows] = partners[y[rows]]
    elif kind == "replaced":
        source = np.asarray(y if pool_targets is None else pool_targets)
        y[rows] = source[rng.integers(0, source.shape[0], size=rows.size)]
    else:
        raise ValueError(f"unknown noise kind {kind!r}; choose from {', '.join(KINDS)}")
    return y


def corrupt(X, y, rate: float, kind: str, rng, *, n_classes=None):
    """``(y_noisy, is_corrupted)``: ``round(rate * len(y))`` uniformly drawn rows corrupted."""
    n = len(y)
    rows = np.sort(rng.choice(n, size=int(round(rate * n)), replace=False))
    partners = confusable_partners(X, y, n_classes) if kind == "pairs" else None
    noisy = flip(y, rows, kind, rng, n_classes=n_classes, partners=partners)
    is_corrupted = np.zeros(n, dtype=bool)
    is_corrupted[rows] = True
    return noisy, is_corrupted
