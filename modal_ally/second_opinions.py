"""One priority for a round's annotations: a new pool row, or another answer on a labeled row.

modAL's ``query`` only indexes the pool. :func:`next_annotations` splits a round's
``n_instances`` annotations between second opinions on labeled rows and new pool rows, by
what each is expected to be worth in correct labels:

- a new row adds a label that is right with probability ``1 - r`` (+1) and wrong with
  probability ``r`` (a wrong label costs about as much as a right one gains: -1), so it is
  worth ``1 - 2 r``; ``r``, the annotators' error rate, is estimated by the share of the
  rows answered once that the label audit flags (:func:`~modal_ally.find_label_issues`:
  the rows whose average training loss, read back from their multipliers, exceeds the
  median row's by ``ln 2``);
- another answer on a flagged row is worth ``2 w (1 - r)``: with probability ``w`` the row
  is wrong, and a right answer turns a wrong label (-1) into a right one (+1). ``w``, the
  share of flagged rows that are really wrong, is learned from the answers themselves: a
  second answer disagrees with the first with probability ``d = w + (1 - w) r``, so the
  observed disagreement rate ``d`` gives ``w = (d - r) / (1 - r)`` (``d`` starts from a
  Beta(3, 1) prior: the audit's flags are trusted until the answers say otherwise);
- a row whose answers are tied gets another answer first (its label rests on the tie-breaker
  alone, the prior of :func:`~modal_ally.relabel`).

A second answer that disagrees costs a third, so a second opinion takes ``1 + d``
annotations on average. ``plan_second_opinions(count_ties=True)`` divides its value by
that; measured on digits (docs/label-audit.md, "second opinions") it changed AULC by
-0.0009 on average over six noise settings (-0.0079 with the panel of annotators), so
the default does not. ``plan_second_opinions(value_ties=True)`` asks a tie again only
when its third answer is worth more than a new row: -0.0003 on average over eight digits
settings with relabel's default consensus (-0.0007 with the net's), not the default
either (both screens: docs/label-audit.md).

On clean labels few rows are flagged and the second answers agree with the first, so
``w`` falls and the second-opinion share falls to about none; under noise the flagged
rows' second answers disagree and the share follows the noise.
"""

from __future__ import annotations

import inspect
import numbers

import numpy as np

from .answers import synced_answers
from .label_audit import audit_of, find_label_issues, label_issue_scores

__all__ = ["SecondOpinionPlan", "next_annotations", "plan_second_opinions"]

#: Beta prior (agreements, disagreements) of how often a flagged row's second answer
#: disagrees with its first, before any row has been asked twice.
PRIOR_DISAGREEMENT = (3.0, 1.0)


class SecondOpinionPlan:
    """The decision of one round (see :func:`plan_second_opinions`).

    Attributes
    ----------
    positions : numpy.ndarray of int64
        Labeled rows to ask again, most urgent first.
    error_rate : float
        ``r``: the estimated share of wrong answers.
    wrong_share : float
        ``w``: the estimated share of flagged rows that are wrong.
    value_new, value_second : float
        What a new row and a second opinion on a flagged row are worth.
    """

    def __init__(self, positions, error_rate, wrong_share, value_new, value_second):
        self.positions = np.asarray(positions, dtype=np.int64)
        self.error_rate = float(error_rate)
        self.wrong_share = float(wrong_share)
        self.value_new = float(value_new)
        self.value_second = float(value_second)

    def __repr__(self):
        return (f"SecondOpinionPlan({self.positions.size} rows, error_rate="
                f"{self.error_rate:.3f}, wrong_share={self.wrong_share:.3f})")


def _first_two_disagree(answers, tolerance):
    """``(asked, disagreed)``: rows with two answers or more, and how many of them have a
    second answer that differs from the first (by more than ``tolerance``, regression)."""
    order = np.argsort(answers.rows, kind="stable")
    rows = answers.rows[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    counts = np.diff(np.r_[starts, rows.size])
    first = order[starts[counts > 1]]
    second = order[starts[counts > 1] + 1]
    a, b = answers.labels[first], answers.labels[second]
    if answers.classification:
        differ = a != b
    else:
        gap = np.abs(a.astype(np.float64) - b.astype(np.float64))
        differ = gap.reshape(gap.shape[0], -1).max(axis=1, initial=0.0) > tolerance \
            if gap.size else np.zeros(0, dtype=bool)
    return int(first.size), int(np.sum(differ))


def _unsettled(answers, tolerance):
    """Rows with several answers and no majority (regression: two that disagree)."""
    counts = answers.counts()
    if answers.classification:
        return (counts >= 2) & ~answers.settled()
    out = np.zeros(answers.n_rows, dtype=bool)
    for row in np.flatnonzero(counts == 2):
        values = answers.labels[answers.rows == row].astype(np.float64)
        out[row] = np.abs(values[0] - values[1]).max() > tolerance
    return out


def plan_second_opinions(answers, is_issue, scores, n_instances, *, tolerance=0.0,
                         count_ties=False, value_ties=False):
    """Which labeled rows to ask again this round (at most ``n_instances``).

    Parameters
    ----------
    answers : modal_ally.answers.Answers
        Every answer of the labeled set.
    is_issue : array of bool, shape (n_rows,)
        The label audit's flags (:func:`~modal_ally.find_label_issues`).
    scores : array of float, shape (n_rows,)
        The audit's suspicion scores (the order among the rows asked).
    n_instances : int
        The round's annotations.
    tolerance : float
        Regression: two answers further apart than this disagree.
    count_ties : bool, default False
        Count the third answer a disagreeing second answer needs in a second opinion's
        cost: its value per annotation is divided by ``1 + d`` (a screen, not the
        default: see the module's docstring).
    value_ties : bool, default False
        Ask a tied row again only when its third answer is worth more than a new row
        (a screen, not the default): a tie left by a flagged row's second answer is
        the first answer wrong and the second right with probability
        ``c = w q / (w q + (1 - w) r)`` (``q = 1 - r``), and a third answer turns the
        likelier label's ``max(c, 1 - c)`` into about ``q``: worth
        ``2 q (1 - max(c, 1 - c))``.

    Returns
    -------
    SecondOpinionPlan
    """
    counts = answers.counts()
    is_issue = np.asarray(is_issue, dtype=bool)
    single = counts == 1
    error_rate = float(is_issue[single].mean()) if single.any() else 0.0
    error_rate = min(error_rate, 0.49)
    asked, disagreed = _first_two_disagree(answers, tolerance)
    agree0, disagree0 = PRIOR_DISAGREEMENT
    d = (agree0 + disagreed) / (agree0 + disagree0 + asked)
    wrong = float(np.clip((d - error_rate) / (1.0 - error_rate), 0.0, 1.0))
    value_new, value_second = 1.0 - 2.0 * error_rate, 2.0 * wrong * (1.0 - error_rate)
    if count_ties:
        value_second /= 1.0 + d
    tied = _unsettled(answers, tolerance)
    if value_ties and _tie_value(error_rate, wrong) <= value_new:
        tied = np.zeros_like(tied)
    flagged = is_issue & single if value_second > value_new else np.zeros_like(is_issue)
    scores = np.asarray(scores, dtype=np.float64)
    ranked = []
    for mask in (tied, flagged):
        rows = np.flatnonzero(mask)
        ranked.append(rows[np.lexsort((rows, -scores[rows]))])
    positions = np.concatenate(ranked)[:int(n_instances)]
    return SecondOpinionPlan(positions, error_rate, wrong, value_new, value_second)


def _tie_value(error_rate, wrong):
    """What a third answer on a tied row is worth (``plan_second_opinions(value_ties=)``)."""
    right = 1.0 - error_rate
    first_wrong = wrong * right / max(wrong * right + (1.0 - wrong) * error_rate, 1e-12)
    return 2.0 * right * (1.0 - max(first_wrong, 1.0 - first_wrong))


def _check_n_instances(n_instances):
    if isinstance(n_instances, bool) or not isinstance(n_instances, numbers.Integral) \
            or n_instances < 1:
        raise ValueError(f"n_instances must be an integer >= 1, got {n_instances!r}")
    return int(n_instances)


def _query_pool(learner, X_pool, n_instances, random_state):
    """The learner's own strategy on the pool; its indices. ``random_state`` goes only to a
    strategy that names it: modAL's uncertainty strategies pass their ``**kwargs`` on to
    ``predict_proba``, which takes none."""
    strategy = learner.query_strategy
    kwargs = {"n_instances": n_instances}
    try:
        accepted = inspect.signature(strategy).parameters
    except (TypeError, ValueError):
        accepted = {}
    if "random_state" in accepted:
        kwargs["random_state"] = random_state
    result = strategy(learner, X_pool, **kwargs)
    indices = result[0] if isinstance(result, tuple) else result
    return np.asarray(indices, dtype=np.int64).ravel()


def next_annotations(learner, X_pool, n_instances=10, *, random_state=None):
    """A round's annotations: new pool rows and second opinions on labeled rows.

    Parameters
    ----------
    learner : modAL learner with a PDCL net (or a Pipeline ending in one), fitted
        Its ``query_strategy`` picks the new rows. The labeled set is
        ``learner.X_training``/``y_training`` (modAL's ``ActiveLearner``), or the rows of
        the net's last fit (``DeepActiveLearner``).
    X_pool : array-like
        The unlabeled pool.
    n_instances : int, default 10
        Annotations to spend this round (new rows and second opinions together).
    random_state : int, RandomState, Generator or None
        Passed to the query strategy where it takes one.

    Returns
    -------
    pool_indices : numpy.ndarray of int64
        Rows of ``X_pool`` to label (``learner.teach`` them).
    labeled_positions : numpy.ndarray of int64
        Positions in the labeled set to ask again, as :func:`~modal_ally.rank_label_issues`
        gives them (``relabel(learner, annotator, n_instances=len(positions),
        indices=positions)``). Together ``n_instances`` long (less only when the pool
        runs out).
    """
    return _next_annotations(learner, X_pool, n_instances, random_state=random_state)


def _next_annotations(learner, X_pool, n_instances, *, random_state=None, **options):
    """:func:`next_annotations`, with :func:`plan_second_opinions`' screen ``options``
    (``count_ties``, ``value_ties``) and ``threshold``, the flags' rule
    (:func:`~modal_ally.find_label_issues`)."""
    threshold = options.pop("threshold", "auto")
    n_instances = _check_n_instances(n_instances)
    audit = audit_of(learner, what="next_annotations")
    y = audit.y if audit.y is not None else getattr(audit.net, "train_targets_", None)
    answers = synced_answers(learner, y=y, classification=audit.classification)
    tolerance = 0.0 if audit.classification else float(np.std(np.asarray(y, dtype=float)))
    plan = plan_second_opinions(answers, find_label_issues(learner, y=y, threshold=threshold),
                                label_issue_scores(audit), n_instances, tolerance=tolerance,
                                **options)
    remaining = n_instances - plan.positions.size
    pool = _query_pool(learner, X_pool, remaining, random_state) \
        if remaining > 0 else np.zeros(0, dtype=np.int64)
    return pool, plan.positions
