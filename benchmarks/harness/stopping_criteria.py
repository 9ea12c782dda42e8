"""Every stopping criterion of :mod:`modal_ally.stopping`, checked after each round's fit
of the benchmarks' loop: :class:`StoppingObserver` (``benchmarks.stopping``, and
``benchmarks.learning_curves --stopping``)."""

from __future__ import annotations

from modal_ally.stopping import (
    DualCriterion,
    LabelBudget,
    MaxConfidence,
    OverallUncertainty,
    StabilizingPredictions,
)

__all__ = ["CLASSIFICATION_ONLY", "StoppingObserver", "make_criteria"]

CLASSIFICATION_ONLY = ("overall_uncertainty", "max_confidence")


def make_criteria(task, *, budget, n_pool):
    """Fresh criteria for one run, by column name (defaults of :mod:`modal_ally.stopping`)."""
    criteria = {"stabilizing_predictions": StabilizingPredictions(),
                "overall_uncertainty": OverallUncertainty(),
                "max_confidence": MaxConfidence(),
                "dual_top_b": DualCriterion(budget),
                "dual_pool_mean": DualCriterion(None),
                "label_budget_half": LabelBudget(max(1, n_pool // 2))}
    if task != "classification":
        for name in CLASSIFICATION_ONLY:
            del criteria[name]
    return criteria


class StoppingObserver:
    """A loop observer: every criterion's statistic and decision after each round's fit.

    ``observer(learner, X_pool_remaining, n_labels) -> dict`` (the hook of
    :func:`benchmarks.harness.loop.run_active_learning`); a new learner starts new criteria
    (:func:`make_criteria`). Columns ``<name>_statistic`` and ``<name>_stop``; None where
    a criterion does not apply (the dual criteria on a net trained without constraints)
    or has nothing to look at (an empty pool after the last round).

    Parameters
    ----------
    task : str
    budget : int
        Labels per round (the dual criterion's ``n_instances``).
    n_pool : int
    """

    def __init__(self, task, *, budget, n_pool):
        self.task, self.budget, self.n_pool = task, int(budget), int(n_pool)
        self._learner, self._criteria = None, {}

    def __call__(self, learner, X_pool_remaining, n_labels):
        if learner is not self._learner:
            self._learner = learner
            self._criteria = make_criteria(self.task, budget=self.budget, n_pool=self.n_pool)
        pdcl = callable(getattr(learner.estimator, "predict_dual", None))
        empty = X_pool_remaining.shape[0] == 0
        row = {}
        for name, criterion in self._criteria.items():
            decision = None
            pool_free = isinstance(criterion, LabelBudget) or getattr(
                criterion, "stop_set_", None) is not None
            if (pdcl or not name.startswith("dual")) and (pool_free or not empty):
                decision = criterion.check(learner, None if empty else X_pool_remaining,
                                           n_labeled=n_labels)
            row[f"{name}_statistic"] = None if decision is None else decision.statistic
            row[f"{name}_stop"] = None if decision is None else decision.stop
        return row
