"""The result object, the shared round bookkeeping and input helpers of the criteria."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.base import is_classifier, is_regressor

__all__ = ["StopDecision", "StoppingCriterion"]


@dataclass(frozen=True)
class StopDecision:
    """What a stopping criterion answered in one round, with its evidence.

    Attributes
    ----------
    criterion : str
        The criterion's name.
    stop : bool
        Whether to stop labeling now.
    statistic : float
        The value the criterion compared with its threshold this round (NaN when it
        cannot be computed yet, e.g. the first round of a criterion that compares two
        successive models).
    threshold : float
        The threshold it was compared with.
    round : int
        The round: 0 for the first call after ``reset`` (or construction), then 1, 2, ...
    n_labeled : int or None
        Labels spent when the statistic was computed (None when unknown).
    n_evaluated : int
        Rows the statistic was computed on (pool, stop set or labeled set).
    evaluated_on : str
        What those rows were: ``"pool"``, ``"stop set"``, ``"labeled set"`` or
        ``"labels"``.
    streak : int
        Consecutive rounds, this one included, in which the threshold was met.
    details : dict
        Criterion-specific numbers behind the statistic.
    """

    criterion: str
    stop: bool
    statistic: float
    threshold: float
    round: int
    n_labeled: int | None
    n_evaluated: int
    evaluated_on: str
    streak: int
    details: dict = field(default_factory=dict)

    def as_dict(self, prefix=""):
        """A flat dict (details included), keys prefixed with ``prefix``: a table row."""
        flat = {key: value for key, value in asdict(self).items() if key != "details"}
        flat.update(self.details)
        return {f"{prefix}{key}": value for key, value in flat.items()}


class StoppingCriterion:
    """Base class: call :meth:`check` once per round; it keeps its own state.

    A subclass sets ``name`` and implements ``_statistic(learner, X_pool, n_labeled)``,
    returning ``(statistic, n_evaluated, evaluated_on, details)``, and ``_met(statistic)``.
    The base class counts rounds and the streak of rounds that met the threshold, and
    answers ``stop`` once the streak reaches ``patience``. A call that raises changes
    nothing.

    Attributes
    ----------
    round_ : int
        Number of successful calls since construction or the last :meth:`reset`.
    streak_ : int
        Consecutive rounds (up to the last one) that met the threshold.
    history_ : list of StopDecision
        Every decision since construction or the last :meth:`reset`.
    """

    name = "criterion"

    def __init__(self, *, threshold, patience):
        self.threshold = threshold
        self.patience = patience
        self.reset()

    def reset(self):
        """Forget every round seen (call it before a new active-learning run)."""
        self.round_ = 0
        self.streak_ = 0
        self.history_ = []
        self._reset_state()
        return self

    def _reset_state(self):
        """Subclasses clear the state they keep across rounds."""

    def check(self, learner, X_pool=None, *, n_labeled=None):
        """Compute this round's statistic and decide whether to stop.

        Call it once per round, after the learner was (re)fitted on the current labels.

        Parameters
        ----------
        learner : modAL learner or fitted estimator
            A modAL ``ActiveLearner``/``DeepActiveLearner`` (or committee), or the
            estimator itself.
        X_pool : array-like or None
            The current unlabeled pool (what the criteria that need one evaluate).
        n_labeled : int or None
            Labels spent so far; None reads it from ``learner.y_training``, or from the
            multipliers of a PDCL net.

        Returns
        -------
        decision : StopDecision
        """
        n_labeled = labels_spent(learner, n_labeled)
        statistic, n_evaluated, evaluated_on, details = self._statistic(
            learner, X_pool, n_labeled)
        statistic = float(statistic)
        met = not math.isnan(statistic) and bool(self._met(statistic))
        streak = self.streak_ + 1 if met else 0
        decision = StopDecision(
            criterion=self.name, stop=streak >= self.patience, statistic=statistic,
            threshold=float(self.threshold), round=self.round_, n_labeled=n_labeled,
            n_evaluated=int(n_evaluated), evaluated_on=evaluated_on, streak=streak,
            details=dict(details))
        self._commit()
        self.round_ += 1
        self.streak_ = streak
        self.history_.append(decision)
        return decision

    __call__ = check

    def _commit(self):
        """Subclasses store what ``_statistic`` prepared for the next round."""

    def __repr__(self):
        params = ", ".join(f"{key}={getattr(self, key)!r}" for key in self._param_names)
        return f"{type(self).__name__}({params})"

    _param_names = ("threshold", "patience")


# ----------------------------------------------------------------------------- checks
def check_number(value, name, *, low=None, high=None, low_open=False, high_open=False):
    """A finite real number within the bounds, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        bounds = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be in {bounds}, got {value!r}")
    return float(value)


def check_count(value, name, *, minimum=1, allow_none=False):
    """An int >= ``minimum`` (or None when allowed), else a ValueError naming ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}"
                         f"{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, "
                         f"got {value!r}")
    return value


def check_rows(X, name):
    """``X`` must be a non-empty 2-d-or-more array-like; returns its number of rows."""
    if X is None:
        raise ValueError(f"{name} is required by this criterion (the unlabeled rows it "
                         "evaluates); pass it as the second argument of check()")
    shape = getattr(X, "shape", None)
    n = int(shape[0]) if shape is not None and len(shape) else len(X)
    if n == 0:
        raise ValueError(f"{name} is empty")
    return n


# ----------------------------------------------------------------------------- learners
def estimator_of(learner):
    """The estimator inside a modAL learner (``learner.estimator``), or ``learner``."""
    return getattr(learner, "estimator", learner)


def final_step(learner):
    """``(preprocess, estimator)``: the last step of a Pipeline and a function applying
    the steps before it; an identity for a plain estimator."""
    estimator = estimator_of(learner)
    steps = getattr(estimator, "steps", None)
    if steps and hasattr(estimator, "__getitem__"):
        head = estimator[:-1]
        return head.transform, steps[-1][1]
    return (lambda X: X), estimator


def task_of(learner, task):
    """"classification" or "regression" ("auto": from scikit-learn's estimator type)."""
    if task != "auto":
        return task
    _, estimator = final_step(learner)
    if hasattr(estimator, "__sklearn_tags__"):
        if is_classifier(estimator):
            return "classification"
        if is_regressor(estimator):
            return "regression"
        return None
    kind = getattr(estimator, "_estimator_type", None)  # estimators outside scikit-learn
    return {"classifier": "classification", "regressor": "regression"}.get(kind)


def labels_spent(learner, n_labeled):
    """Labels spent: given, ``len(learner.y_training)``, or the PDCL multipliers' count."""
    if n_labeled is not None:
        return check_count(n_labeled, "n_labeled", minimum=0)
    y_training = getattr(learner, "y_training", None)
    if y_training is not None:
        return int(len(y_training))
    lambdas = getattr(final_step(learner)[1], "lambdas_", None)
    return None if lambdas is None else int(np.shape(lambdas)[0])


def subsample_rows(X, size, random_state):
    """At most ``size`` rows of ``X`` (a seeded subset in the original order)."""
    n = check_rows(X, "X_pool")
    if size is None or n <= size:
        return X
    rows = np.sort(np.random.default_rng(random_state).choice(n, size=size, replace=False))
    return X[rows]
