"""Stopping criteria for modAL loops: "stop labeling now?" once per round, with evidence.

Each criterion keeps its own state across rounds, pickles, and starts over with
``reset()``::

    criteria = [StabilizingPredictions(), DualCriterion(n_instances=100)]
    for round_ in range(50):
        decisions = [criterion.check(learner, X_pool) for criterion in criteria]
        if any(decision.stop for decision in decisions):
            break
        query_idx, _ = learner.query(X_pool, n_instances=100)
        ...
"""

from ._base import StopDecision, StoppingCriterion
from .criteria import (
    LabelBudget,
    MaxConfidence,
    OverallUncertainty,
    StabilizingPredictions,
    cohen_kappa,
    normalized_entropy,
    prediction_agreement,
)
from .dual import DualCriterion

__all__ = ["DualCriterion", "LabelBudget", "MaxConfidence", "OverallUncertainty",
           "StabilizingPredictions", "StopDecision", "StoppingCriterion", "cohen_kappa",
           "normalized_entropy", "prediction_agreement"]
