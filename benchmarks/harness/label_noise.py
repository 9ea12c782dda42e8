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


#: The simulated annotators of the ``panel`` setting: their error rates (symmetric noise).
PANEL = (0.05, 0.15, 0.35)


class Oracle:
    """Simulated annotators: every ask of a pool row is a fresh, seeded answer.

    ``setting`` is ``"<kind>:<rate>"`` (one annotator who errs with probability ``rate``,
    ``kind`` ``symmetric`` or ``pairs`` for a classifier, ``replaced`` for a regressor) or
    ``"panel"`` (the annotators of :data:`PANEL`: the k-th ask of row i goes to annotator
    ``(i + k) mod 3``, so a second opinion comes from another person). The k-th answer
    of a row is the same in every arm of a seed (paired), and independent of the others.
    """

    def __init__(self, X_pool, y_pool, setting, seed, *, n_classes=None):
        self.y = np.asarray(y_pool)
        self.setting, self.seed, self.n_classes = setting, int(seed), n_classes
        if setting == "panel":
            self.kind, self.rates = "symmetric", np.asarray(PANEL)
        else:
            kind, rate = setting.split(":")
            if kind not in KINDS:
                raise ValueError(f"unknown noise kind {kind!r}; choose from {', '.join(KINDS)}")
            self.kind, self.rates = kind, np.asarray([float(rate)])
        self.partners = confusable_partners(X_pool, self.y, n_classes) \
            if self.kind == "pairs" else None
        self._answers = []

    @property
    def rate(self) -> float:
        """The mean error rate of an answer."""
        return float(self.rates.mean())

    def _ask(self, k):
        while len(self._answers) <= k:
            i = len(self._answers)
            rng = np.random.default_rng([self.seed, i, 0x0EAC1E, *map(int, self.rates * 1000),
                                         KINDS.index(self.kind)])
            who = (np.arange(self.y.shape[0]) + i) % self.rates.size
            wrong = rng.random(self.y.shape[0]) < self.rates[who]
            rows = np.flatnonzero(wrong)
            answers = flip(self.y, rows, self.kind, rng, n_classes=self.n_classes,
                           partners=self.partners)
            self._answers.append((answers, who))
        return self._answers[k]

    def answer(self, rows, asked):
        """``(labels, annotators)``: the answer to ask number ``asked[j]`` (0: the first)
        of pool row ``rows[j]``, and who gave it (``"a<j>"``)."""
        rows, asked = np.asarray(rows, dtype=np.int64), np.asarray(asked, dtype=np.int64)
        labels = np.empty(rows.shape[0], dtype=self.y.dtype)
        who = np.empty(rows.shape[0], dtype=object)
        for k in np.unique(asked):
            at = asked == k
            answers, annotators = self._ask(int(k))
            labels[at] = answers[rows[at]]
            who[at] = [f"a{int(j)}" for j in annotators[rows[at]]]
        return labels, who
