"""Established stopping criteria: stabilizing predictions, uncertainty, a label budget.

References
----------
.. [BV09] Bloodgood, M. and Vijay-Shanker, K. "A method for stopping active learning
   based on stabilizing predictions and the need for user-adjustable stopping."
   CoNLL 2009.
.. [ZWH08] Zhu, J., Wang, H. and Hovy, E. "Multi-criteria-based strategy to stop active
   learning for data annotation." COLING 2008.
"""

from __future__ import annotations

import numpy as np

from ._base import (
    StoppingCriterion,
    check_choice,
    check_count,
    check_number,
    check_rows,
    subsample_rows,
    task_of,
)

__all__ = ["LabelBudget", "MaxConfidence", "OverallUncertainty", "StabilizingPredictions",
           "cohen_kappa", "prediction_agreement"]


def cohen_kappa(a, b):
    """Cohen's kappa between two label vectors (1.0 when both are the same constant).

    ``(p_o - p_e) / (1 - p_e)``, with ``p_o`` the share of equal labels and ``p_e`` the
    agreement expected from the two label distributions.
    """
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"kappa needs two non-empty label vectors of one length, got "
                         f"{a.shape} and {b.shape}")
    _, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    n_labels = int(codes.max()) + 1
    p_a = np.bincount(codes[:a.size], minlength=n_labels) / a.size
    p_b = np.bincount(codes[a.size:], minlength=n_labels) / a.size
    p_o = float(np.mean(a == b))
    p_e = float(p_a @ p_b)
    if p_e >= 1.0:  # both constant and equal: perfect agreement
        return 1.0
    return (p_o - p_e) / (1.0 - p_e)


def prediction_agreement(current, previous):
    """Agreement of regression predictions: ``1 - ||p_t - p_{t-1}||^2 / ||p_{t-1} - mean||^2``.

    The coefficient of determination of the new predictions against the old ones:
    1 when nothing changed, 0 when the change is as large as the old predictions'
    spread. Constant old predictions give 1 if unchanged, else 0.
    """
    current = np.asarray(current, dtype=np.float64).ravel()
    previous = np.asarray(previous, dtype=np.float64).ravel()
    change = float(np.sum((current - previous) ** 2))
    spread = float(np.sum((previous - previous.mean()) ** 2))
    if spread == 0.0:
        return 1.0 if change == 0.0 else 0.0
    return 1.0 - change / spread


class StabilizingPredictions(StoppingCriterion):
    """Stop when successive models agree on a fixed stop set [BV09]_.

    Each round the learner predicts a fixed set of unlabeled rows (the stop set); the
    statistic is Cohen's kappa between this round's and the last round's predictions
    (classification) or :func:`prediction_agreement` (regression: one minus the change
    of the predictions relative to their spread). Stop once it has been
    ``>= threshold`` for ``patience`` consecutive rounds (the paper: 0.99, 3). Works with
    any learner that has ``predict``.

    Parameters
    ----------
    X_stop : array-like or None, default None
        The stop set. None takes the ``X_pool`` of the first call (at most
        ``stop_set_size`` rows of it, a seeded subset) and keeps it until :meth:`reset`.
    threshold : float in (0, 1], default 0.99
    patience : int >= 1, default 3
    task : {"auto", "classification", "regression"}, default "auto"
        "auto" uses scikit-learn's estimator type, else the predictions' dtype.
    stop_set_size : int or None, default 2000
    random_state : int, default 0
        Seeds the subset drawn for the stop set.
    """

    name = "stabilizing_predictions"
    _param_names = ("threshold", "patience", "task", "stop_set_size")

    def __init__(self, X_stop=None, *, threshold=0.99, patience=3, task="auto",
                 stop_set_size=2000, random_state=0):
        check_number(threshold, "threshold", low=0, high=1, low_open=True)
        check_count(patience, "patience")
        check_choice(task, "task", ("auto", "classification", "regression"))
        check_count(stop_set_size, "stop_set_size", allow_none=True)
        check_count(random_state, "random_state", minimum=0)
        if X_stop is not None:
            check_rows(X_stop, "X_stop")
        self.X_stop = X_stop
        self.task = task
        self.stop_set_size = stop_set_size
        self.random_state = random_state
        super().__init__(threshold=threshold, patience=patience)

    def _reset_state(self):
        self.stop_set_ = self.X_stop
        self.previous_predictions_ = None
        self._pending = None

    def _statistic(self, learner, X_pool, n_labeled):
        stop_set = self.stop_set_
        if stop_set is None:
            stop_set = subsample_rows(X_pool, self.stop_set_size, self.random_state)
        predictions = np.asarray(learner.predict(stop_set))
        task = task_of(learner, self.task) or (
            "regression" if predictions.dtype.kind in "fc" else "classification")
        previous = self.previous_predictions_
        if previous is not None and previous.shape != predictions.shape:
            raise ValueError(f"the stop set's predictions changed shape ({previous.shape} -> "
                             f"{predictions.shape}); call reset() before a new run")
        self._pending = (stop_set, predictions)
        if previous is None:
            statistic = np.nan
        elif task == "classification":
            statistic = cohen_kappa(predictions, previous)
        else:
            statistic = prediction_agreement(predictions, previous)
        details = {"agreement": "kappa" if task == "classification" else "r2"}
        return statistic, predictions.shape[0], "stop set", details

    def _commit(self):
        self.stop_set_, self.previous_predictions_ = self._pending
        self._pending = None

    def _met(self, statistic):
        return statistic >= self.threshold


def normalized_entropy(proba):
    """Entropy of each row of class probabilities divided by ``log(n_classes)``, in [0, 1]."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2:
        raise ValueError(f"predict_proba must return a 2-d array, got shape {proba.shape}")
    if proba.shape[1] < 2:
        return np.zeros(proba.shape[0])
    terms = np.where(proba > 0, proba * np.log(np.where(proba > 0, proba, 1.0)), 0.0)
    return np.clip(-terms.sum(axis=1) / np.log(proba.shape[1]), 0.0, 1.0)


class _UncertaintyCriterion(StoppingCriterion):
    """Normalized prediction entropy on the pool or a stop set [ZWH08]_."""

    _param_names = ("threshold", "patience")

    def __init__(self, X_stop=None, *, threshold, patience=1):
        check_number(threshold, "threshold", low=0, high=1)
        check_count(patience, "patience")
        if X_stop is not None:
            check_rows(X_stop, "X_stop")
        self.X_stop = X_stop
        super().__init__(threshold=threshold, patience=patience)

    def _statistic(self, learner, X_pool, n_labeled):
        X = self.X_stop if self.X_stop is not None else X_pool
        check_rows(X, "X_pool")
        if not hasattr(learner, "predict_proba") or \
                not callable(getattr(learner, "predict_proba", None)):
            raise TypeError(f"{type(self).__name__} needs class probabilities: the learner "
                            "has no predict_proba (a classifier is required)")
        if task_of(learner, "auto") == "regression":
            raise TypeError(f"{type(self).__name__} needs a classifier; for regression use "
                            "StabilizingPredictions or DualCriterion")
        uncertainty = normalized_entropy(learner.predict_proba(X))
        where = "stop set" if self.X_stop is not None else "pool"
        return float(self._reduce(uncertainty)), uncertainty.shape[0], where, {}

    def _met(self, statistic):
        return statistic <= self.threshold


class OverallUncertainty(_UncertaintyCriterion):
    """Stop when the mean uncertainty of the unlabeled rows is low [ZWH08]_.

    The statistic is the mean normalized prediction entropy (entropy / log of the number
    of classes, in [0, 1]) over the pool (or the stop set); stop once it is
    ``<= threshold`` for ``patience`` consecutive rounds. Classifiers only.

    Parameters
    ----------
    X_stop : array-like or None, default None
        Evaluate on this fixed set instead of each round's ``X_pool``.
    threshold : float in [0, 1], default 0.05
    patience : int >= 1, default 1
    """

    name = "overall_uncertainty"
    _reduce = staticmethod(np.mean)

    def __init__(self, X_stop=None, *, threshold=0.05, patience=1):
        super().__init__(X_stop, threshold=threshold, patience=patience)


class MaxConfidence(_UncertaintyCriterion):
    """Stop when even the most uncertain unlabeled row is confidently predicted [ZWH08]_.

    The statistic is the largest normalized prediction entropy over the pool (or the
    stop set): under uncertainty sampling, the entropy of the next row to be queried.
    Stop once it is ``<= threshold`` for ``patience`` consecutive rounds. Classifiers
    only; a strict criterion (one ambiguous row keeps it from stopping).

    Parameters
    ----------
    X_stop : array-like or None, default None
        A fixed stop set; None evaluates each round's ``X_pool`` (the paper's setting).
    threshold : float in [0, 1], default 0.25
        Largest normalized entropy allowed.
    patience : int >= 1, default 1
    """

    def __init__(self, X_stop=None, *, threshold=0.25, patience=1):
        super().__init__(X_stop, threshold=threshold, patience=patience)

    name = "max_confidence"
    _reduce = staticmethod(np.max)  # the least confident row decides


class LabelBudget(StoppingCriterion):
    """Stop once ``max_labels`` labels have been spent.

    Parameters
    ----------
    max_labels : int >= 1
    """

    name = "label_budget"
    _param_names = ("max_labels",)

    def __init__(self, max_labels):
        self.max_labels = check_count(max_labels, "max_labels")
        super().__init__(threshold=self.max_labels, patience=1)

    def _statistic(self, learner, X_pool, n_labeled):
        if n_labeled is None:
            raise ValueError("LabelBudget cannot tell how many labels were spent: pass "
                             "n_labeled= to check() (the learner has no y_training)")
        return n_labeled, n_labeled, "labels", {}

    def _met(self, statistic):
        return statistic >= self.max_labels
