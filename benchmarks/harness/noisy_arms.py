"""The second-opinion policies of the noisy-oracle benchmark (``benchmarks.noisy_oracle``).

Each policy answers, once a round: which labeled rows get another answer, and how many
new pool rows to query. Every arm keeps every answer (:class:`modal_ally.Answers`) and
trains on the consensus, so the arms differ only in what they ask.

- ``none``: no second opinion (the strategies as a modAL user runs them).
- ``audit``: a fixed share of every round (``--audit-fraction``) to the top suspects of
  :func:`modal_ally.rank_label_issues` not asked before (the 0.1 release's ALLY + audit).
- ``ally``: :func:`modal_ally.next_annotations` (the share follows the estimated noise);
  ``ally-ties-counted``: the same with ``plan_second_opinions(count_ties=True)``, which
  counts the third answer a tie needs in a second opinion's cost (a screen);
  ``ally-ties-valued``: ``plan_second_opinions(value_ties=True)``, a tie asked again only
  when its third answer is worth more than a new row (a screen); ``ally-model-prior``
  (also with ties valued): ``relabel(consensus_prior="model")``, 0.3's consensus, ties
  between answers decided by the net's probabilities instead of the row's nearest
  labeled rows (a screen); ``ally-outliers``: the rows flagged by
  ``find_label_issues(threshold="outliers")``, the robust spread of the losses (a screen).
- ``cleanlab``: as many second opinions as the ``ally`` arm of the same seed and setting
  spent that round (the same annotation share), to the rows cleanlab's
  ``find_label_issues`` flags on 5-fold out-of-sample probabilities of the same net,
  ranked by self-confidence, not settled yet (a user pairing modAL with cleanlab).
- ``activelab``: cleanlab's ActiveLab (``multiannotator.get_active_learning_scores``):
  the labeled rows (5-fold out-of-sample probabilities, the answers as an N x M matrix,
  one column per ask) and the pool rows (the net's probabilities) on one scale; the
  ``n`` lowest are asked next, labeled or not.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

#: The policies of :func:`modal_ally.next_annotations`: its screen options, and those of
#: the second opinions' :func:`modal_ally.relabel`.
ALLY_POLICIES = {
    "ally": ({}, {}),
    "ally-ties-counted": ({"count_ties": True}, {}),
    "ally-ties-valued": ({"value_ties": True}, {}),
    "ally-model-prior": ({}, {"consensus_prior": "model"}),
    "ally-ties-valued-model-prior": ({"value_ties": True}, {"consensus_prior": "model"}),
    "ally-outliers": ({"threshold": "outliers"}, {}),
}
#: cleanlab's relabeling; ``cleanlab-neighbors`` decides ties as relabel does by default
#: (the row's nearest labeled rows in the net's embedding), ``cleanlab`` by the net.
CLEANLAB_POLICIES = ("cleanlab", "cleanlab-neighbors")
POLICIES = ("none", "audit", *ALLY_POLICIES, *CLEANLAB_POLICIES, "activelab")
#: ``relabel``'s options of each policy that asks through it: the 0.1 release's audit arm
#: keeps the net deciding ties (0.3's consensus; 0.1 overwrote the first answer).
RELABEL_OPTIONS = {"audit": {"consensus_prior": "model"},
                   **{policy: options[1] for policy, options in ALLY_POLICIES.items()}}


def out_of_sample_proba(estimator, X, y, n_classes, *, folds=5, seed=0):
    """5-fold out-of-sample class probabilities of ``clone(estimator)`` (cleanlab's advice)."""
    proba = np.full((len(y), n_classes), 1.0 / n_classes)
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)
    n_splits = int(min(folds, max(2, counts[counts > 0].min())))
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train, test in splitter.split(X, y):
        net = clone(estimator).fit(X[train], y[train])
        proba[test] = net.predict_proba(X[test])
    return proba


def baseline_prior(learner, policy):
    """``probabilities_of(rows)`` of an unconstrained net's consensus: its probabilities
    (0.3's rule), or for ``cleanlab-neighbors`` :func:`modal_ally.relabeling.neighbor_prior`
    on its backbone's embeddings of the labeled rows."""
    net, X = learner.estimator, learner.X_training

    def model(rows):
        return net.predict_proba(X[rows])

    if policy != "cleanlab-neighbors" or len(X) < 2:
        return model
    from modal_ally._inference import embed
    from modal_ally.relabeling import neighbor_prior

    def neighbors(rows):
        probabilities = model(rows)
        return neighbor_prior(embed(net, X), np.asarray(learner.y_training),
                              np.arange(probabilities.shape[1]), rows, probabilities)

    return neighbors


def _unsettled_rows(answers):
    return ~answers.settled()


def audit_positions(learner, answers, n_audit):
    """The 0.1 release's audit: top suspects asked once only, by its default score (the
    multipliers' mean; a regressor's too: the neighbour scores came later)."""
    from modal_ally import rank_label_issues

    order, _ = rank_label_issues(learner, score="lambda_mean")
    fresh = order[answers.counts()[order] == 1]
    return fresh[:n_audit]


def cleanlab_positions(learner, answers, X, y, n_classes, n_relabel, seed):
    """Rows cleanlab flags (out-of-sample), lowest self-confidence first, unsettled only."""
    from cleanlab.filter import find_label_issues

    if n_relabel <= 0:
        return np.zeros(0, dtype=np.int64)
    proba = out_of_sample_proba(learner.estimator, X, y, n_classes, seed=seed)
    ranked = find_label_issues(np.asarray(y, dtype=np.int64), proba,
                               return_indices_ranked_by="self_confidence")
    ranked = ranked[_unsettled_rows(answers)[ranked]]
    return np.asarray(ranked[:n_relabel], dtype=np.int64)


def answer_matrix(answers):
    """The answers as an N x M float array (one column per ask, NaN where none)."""
    counts = answers.counts()
    matrix = np.full((answers.n_rows, max(int(counts.max()), 1)), np.nan)
    seen = np.zeros(answers.n_rows, dtype=np.int64)
    for row, label in zip(answers.rows, answers.labels):
        matrix[row, seen[row]] = label
        seen[row] += 1
    return matrix


def activelab_split(learner, answers, X, y, X_remaining, n_classes, n_instances, seed):
    """``(pool_picks, positions)``: ActiveLab's ``n_instances`` lowest scores."""
    import pandas as pd
    from cleanlab.multiannotator import get_active_learning_scores

    proba = out_of_sample_proba(learner.estimator, X, y, n_classes, seed=seed)
    proba_pool = learner.estimator.predict_proba(X_remaining)
    matrix = pd.DataFrame(answer_matrix(answers)).astype("Int64")
    labeled, pool = get_active_learning_scores(matrix, proba, proba_pool)
    scores = np.concatenate([labeled, pool])
    order = np.lexsort((np.arange(scores.size), scores))[:n_instances]
    positions = order[order < len(labeled)]
    picks = order[order >= len(labeled)] - len(labeled)
    return picks.astype(np.int64), positions.astype(np.int64)
