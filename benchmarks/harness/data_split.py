"""What every data set of the benchmarks comes as: :class:`ActiveLearningData`, a pool
and a held-out test set as float32 numpy arrays, and the seeded subsampling of
``max_pool`` / ``max_test`` (``benchmarks.harness.datasets``, ``data_files``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ActiveLearningData", "make_data", "subsample"]


@dataclass
class ActiveLearningData:
    """A pool/test split ready for an active-learning benchmark.

    Attributes
    ----------
    name : str
        The data-set name, one of :data:`DATASETS`.
    task : str
        ``"classification"`` or ``"regression"``.
    X_pool : numpy.ndarray
        float32, shape ``(n_pool, *feature_shape)``: the candidates a strategy queries from.
    y_pool : numpy.ndarray
        The pool's labels: int64 in ``0 .. n_classes - 1`` (classification) or float32
        (regression).
    X_test : numpy.ndarray
        float32, shape ``(n_test, *feature_shape)``.
    y_test : numpy.ndarray
        The test labels, same dtype as ``y_pool``.
    n_classes : int or None
        Number of classes; ``None`` for regression.
    module : str
        Which backbone the benchmark should use: ``"mlp"``, ``"resnet18"`` or ``"cnn"``
        (:class:`benchmarks.harness.modules.SmallCNN`).
    feature_shape : tuple
        ``X_pool.shape[1:]``.
    """

    name: str
    task: str
    X_pool: np.ndarray
    y_pool: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None
    module: str
    feature_shape: tuple

    def __post_init__(self):
        if self.task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {self.task!r}")
        if self.module not in ("mlp", "resnet18", "cnn"):
            raise ValueError(f"module must be 'mlp', 'resnet18' or 'cnn', got {self.module!r}")
        if (self.n_classes is None) != (self.task == "regression"):
            raise ValueError("n_classes must be None exactly when task is 'regression'")
        self.feature_shape = tuple(int(d) for d in self.feature_shape)
        for split in ("pool", "test"):
            X, y = getattr(self, f"X_{split}"), getattr(self, f"y_{split}")
            if tuple(X.shape[1:]) != self.feature_shape:
                raise ValueError(f"X_{split} has per-sample shape {tuple(X.shape[1:])}, "
                                 f"expected feature_shape {self.feature_shape}")
            if len(X) != len(y):
                raise ValueError(f"X_{split} has {len(X)} rows but y_{split} has {len(y)}")

    @property
    def n_pool(self) -> int:
        """Number of pool rows."""
        return int(self.X_pool.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test rows."""
        return int(self.X_test.shape[0])


def subsample(n, limit, rng):
    """Row indices of a seeded random subset of at most ``limit`` of ``n`` rows, sorted."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


def make_data(name, task, X_pool, y_pool, X_test, y_test, n_classes, module):
    label_dtype = np.int64 if task == "classification" else np.float32
    X_pool = np.ascontiguousarray(X_pool, dtype=np.float32)
    X_test = np.ascontiguousarray(X_test, dtype=np.float32)
    return ActiveLearningData(
        name=name, task=task, X_pool=X_pool, y_pool=np.asarray(y_pool, dtype=label_dtype),
        X_test=X_test, y_test=np.asarray(y_test, dtype=label_dtype), n_classes=n_classes,
        module=module, feature_shape=X_pool.shape[1:])
