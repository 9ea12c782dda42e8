"""Label audit: the rows of the labeled set most likely mislabeled, from the multipliers.

Every PDCL fit ends with one multiplier per labeled row (Elenter et al., NeurIPS 2022).
A row whose constraint ``l'(f(x_i), y_i) <= epsilon_i`` the net cannot satisfy, a wrong
label or an outlier, keeps a large multiplier; the multipliers are exact (no prediction,
no extrapolation) and the fit is the one an active-learning loop makes anyway, so the
audit costs no extra fit. The default ranking mixes them with each label's agreement with
its nearest labeled rows' in the fit's embedding and in the input space
(:data:`DEFAULT_SCORE`). cleanlab's confident learning (Northcutt et al., JAIR 2021) asks
for out-of-sample probabilities instead, K extra fits of cross-validation.

- :func:`rank_label_issues`: the labeled rows, most suspect first, with their scores;
- :func:`find_label_issues`: a boolean mask of the flagged rows (a threshold derived from
  the scores themselves, see the function);
- :func:`relabel`: send the top suspects back to an annotator, replace their labels in
  the learner and refit, all or nothing; the previous labels are returned.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.pipeline import Pipeline

from ._neighbors import label_distances, numeric_rows, standardized_rows
from ._validation import check_choice, check_fitted_net, get_estimator, is_sparse

__all__ = ["SCORES", "DEFAULT_SCORE", "LabelAudit", "label_issue_scores",
           "neighbor_scores", "rank_label_issues", "find_label_issues"]

#: The scores a label audit can rank by (higher: more suspect). All come from the
#: attributes of the last fit; none needs another fit or a pass over the data.
SCORES = ("lambda", "lambda_mean", "loss", "lambda_mean_class", "lambda_mean+loss",
          "neighbors", "lambda_mean+neighbors", "input_neighbors",
          "lambda_mean+neighbors+inputs")
#: The score :func:`rank_label_issues` uses unless told otherwise: ``"auto"`` is
#: ``"lambda_mean+neighbors+inputs"`` where the labeled rows are known as numbers (a
#: learner's ``X_training``, or ``X=``) and the fit kept their embeddings; else
#: ``"lambda_mean"`` for a classifier and ``"lambda_mean+neighbors"`` for a regressor (see
#: docs/label-audit.md for how each was chosen).
DEFAULT_SCORE = "auto"
#: Neighbours each row is compared with by the ``"neighbors"`` scores.
N_NEIGHBORS = 10


@dataclass(frozen=True)
class LabelAudit:
    """What an audit works on: the learner, its PDCL net and the labeled set.

    Attributes
    ----------
    learner : the modAL learner or the estimator given
    estimator : the learner's estimator (a Pipeline, or the net itself)
    net : the fitted PDCLNet or PDCLRegressor
    X, y : the rows and labels of the last fit, where known (modAL's ``ActiveLearner``
        keeps them in ``X_training``/``y_training``), else None
    """

    learner: object
    estimator: object
    net: object
    X: object = None
    y: object = None

    @property
    def n_rows(self) -> int:
        return int(np.asarray(self.net.lambdas_).shape[0])

    @property
    def classification(self) -> bool:
        return getattr(self.net, "_task", "classification") == "classification"


def audit_of(learner_or_estimator, *, what: str, X=None, y=None) -> LabelAudit:
    """Check a learner (or an estimator) once and return its :class:`LabelAudit`.

    Raises TypeError for an estimator that is not a PDCL net (or a Pipeline ending in
    one), NotFittedError for an unfitted one, ValueError when the learner's labeled set
    is not the set the net was last fitted on.
    """
    estimator = get_estimator(learner_or_estimator)
    net = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    check_fitted_net(net, require_backbone=False, require_pdcl=True, strategy=what)
    n = int(np.asarray(net.lambdas_).shape[0])
    if learner_or_estimator is not estimator and X is None:
        X = getattr(learner_or_estimator, "X_training", None)
        y = getattr(learner_or_estimator, "y_training", None) if X is not None else y
    for name, value in (("X", X), ("y", y)):
        rows = None if value is None else (
            value.shape[0] if is_sparse(value) else len(value))
        if rows is not None and rows != n:
            raise ValueError(
                f"{what}: the labeled set has {rows} rows ({name}) but the estimator "
                f"was last fitted on {n}: the multipliers belong to the rows of the last fit "
                "(refit on the labeled set first, e.g. learner.teach without only_new or "
                "bootstrap)")
    return LabelAudit(learner_or_estimator, estimator, net, X, y)


def _ranks(values) -> np.ndarray:
    """Ranks scaled to (0, 1] (ties share their mean rank)."""
    from scipy.stats import rankdata

    return rankdata(values) / max(len(values), 1)


def _class_normalized(values, y) -> np.ndarray:
    """``values`` divided by the mean over the rows with the same given label."""
    y = np.asarray(y)
    out = np.asarray(values, dtype=np.float64).copy()
    _, groups = np.unique(y, return_inverse=True)
    means = np.bincount(groups, weights=out) / np.bincount(groups)
    scale = means[groups]
    np.divide(out, scale, out=out, where=scale > 0)
    return out


def resolved_score(audit: LabelAudit, score: str) -> str:
    """The concrete score ``score`` stands for (``"auto"``: by the kind of task)."""
    check_choice(score, "score", ("auto", *SCORES))
    if score != "auto":
        return score
    embeddings = getattr(audit.net, "train_embeddings_", None)
    if numeric_rows(audit.X) and embeddings is not None and len(embeddings) == audit.n_rows:
        return "lambda_mean+neighbors+inputs"
    return "lambda_mean" if audit.classification else "lambda_mean+neighbors"


def _labels_of(audit: LabelAudit, score: str) -> np.ndarray:
    """The labels (targets) of the last fit: the learner's, else those the net kept."""
    y = audit.y if audit.y is not None else getattr(audit.net, "train_targets_", None)
    if y is None:
        raise ValueError(f"score={score!r} needs the labels of the last fit: pass y= (an "
                         "ActiveLearner gives its y_training)")
    return np.asarray(y)


def neighbor_scores(audit: LabelAudit, *, space: str = "embeddings") -> np.ndarray:
    """How far each row's label is from its neighbours' (no fit, no pass over the data).

    The neighbours are the :data:`N_NEIGHBORS` nearest labeled rows in the embedding
    space of the last fit (``train_embeddings_``), or with ``space="inputs"`` in the
    input space standardized per feature, which the fit cannot bend. A regressor:
    ``|y_i - median of the neighbours' targets|`` in units of the targets' standard
    deviation, an estimate of the row's target that the row itself cannot sway (the net,
    weighing each row's loss by ``1 + lambda_i``, fits a wrong target hardest, which
    hides it from the multipliers). A classifier: the share of the neighbours whose
    label differs (:func:`~modal_ally._neighbors.label_distances`).
    """
    y = _labels_of(audit, "neighbors")
    check_choice(space, "space", ("embeddings", "inputs"))
    if space == "inputs":
        if not numeric_rows(audit.X):
            raise ValueError("score='input_neighbors' needs the labeled rows as a dense "
                             "numeric array: a learner's X_training, or pass X=")
        embeddings = standardized_rows(audit.X, audit.n_rows)
    else:
        embeddings = getattr(audit.net, "train_embeddings_", None)
    if embeddings is None or len(embeddings) != len(y):
        raise ValueError("score='neighbors' needs the embeddings of the last fit's rows "
                         "(train_embeddings_, kept by PDCL nets fitted with their default "
                         "dual-head callback)")
    return label_distances(embeddings, y, classification=audit.classification,
                           k=N_NEIGHBORS)


def label_issue_scores(audit: LabelAudit, score: str = DEFAULT_SCORE) -> np.ndarray:
    """One suspicion score per row of the last fit (higher: more likely mislabeled).

    Parameters
    ----------
    audit : LabelAudit
        From :func:`audit_of`.
    score : "auto" or one of :data:`SCORES`
        ``"lambda"``: the last multipliers (``lambdas_``); ``"lambda_mean"``: each row's
        end-of-epoch multiplier averaged over the epochs (``lambdas_mean_``), which
        weighs how long a row stayed violated, not only where it ended;
        ``"loss"``: the constraint loss at the row's last training step
        (``constraint_losses_``); ``"lambda_mean_class"``: ``lambda_mean`` divided by
        its mean over the rows of the same given label (classification; needs the
        labels: the learner's ``y_training``); ``"lambda_mean+loss"``: the mean of the
        two scores' ranks; ``"neighbors"``: the distance of the row's label from its
        nearest labeled rows' in the embedding space (:func:`neighbor_scores`);
        ``"lambda_mean+neighbors"``: the mean of the ranks of those two;
        ``"input_neighbors"``: the same distance in the standardized input space (needs
        the rows: the learner's ``X_training``); ``"lambda_mean+neighbors+inputs"``: the
        mean of the ranks of the three; ``"auto"``: see :data:`DEFAULT_SCORE`.

    Returns
    -------
    scores : numpy.ndarray of shape (n_rows,), float64
    """
    score = resolved_score(audit, score)
    net = audit.net
    if score in ("neighbors", "input_neighbors"):
        return neighbor_scores(audit, space="inputs" if score == "input_neighbors"
                               else "embeddings")
    if score.startswith("lambda_mean+neighbors"):
        parts = [label_issue_scores(audit, "lambda_mean"), neighbor_scores(audit)]
        if score.endswith("+inputs"):
            parts.append(neighbor_scores(audit, space="inputs"))
        return sum(_ranks(part) for part in parts) / len(parts)
    if score == "lambda":
        values = net.lambdas_
    elif score == "loss":
        values = net.constraint_losses_
    else:
        values = net.lambdas_mean_
    values = np.asarray(values, dtype=np.float64)
    if score == "lambda_mean+loss":
        values = 0.5 * (_ranks(values) + _ranks(np.asarray(net.constraint_losses_)))
    elif score == "lambda_mean_class" and audit.classification:
        if audit.y is None:
            raise ValueError("score='lambda_mean_class' needs the labels of the last fit: "
                             "pass y= (an ActiveLearner gives its y_training)")
        values = _class_normalized(values, audit.y)
    if not np.isfinite(values).all():
        raise ValueError("the fit's multipliers or losses are not finite: the last fit "
                         "diverged, so there is nothing to rank")
    return values


def _check_top(top, n):
    if top is None:
        return n
    if isinstance(top, bool) or not isinstance(top, numbers.Integral):
        raise TypeError(f"top must be a positive integer or None, got {top!r}")
    if top < 1:
        raise ValueError(f"top must be >= 1 (or None for every row), got {top}")
    if top > n:
        warnings.warn(f"top={top} is larger than the labeled set ({n} rows): returning "
                      "every row", UserWarning, stacklevel=3)
    return min(int(top), n)


def rank_label_issues(learner_or_estimator, *, top=None, score=DEFAULT_SCORE, y=None,
                      X=None):
    """Rows of the labeled set most likely mislabeled, most suspect first.

    Reads the multipliers of the last PDCL fit: no extra fit and no pass over the data.

    Parameters
    ----------
    learner_or_estimator : modAL learner, PDCLNet, PDCLRegressor or Pipeline ending in one
        Fitted. Positions refer to ``learner.X_training`` for modAL's ``ActiveLearner``,
        else to the rows of the estimator's last ``fit`` (modAL's ``DeepActiveLearner``,
        a bare estimator).
    top : int or None, default None
        How many rows to return (None: every row).
    score : "auto" or one of :data:`SCORES`, default :data:`DEFAULT_SCORE`
        What the rows are ranked by (see :func:`label_issue_scores`).
    y, X : array-like or None
        The labels and rows of the last fit, for a score that needs them when the
        learner keeps none (``"lambda_mean_class"``, ``"input_neighbors"`` with a bare
        estimator).

    Returns
    -------
    indices : numpy.ndarray of int64, shape (top,)
        Positions in the labeled set, most suspect first (ties: the lower position).
    scores : numpy.ndarray of float64, shape (top,)
        The score of each, decreasing.
    """
    audit = audit_of(learner_or_estimator, what="rank_label_issues", X=X, y=y)
    top = _check_top(top, audit.n_rows)
    values = label_issue_scores(audit, score)
    order = np.lexsort((np.arange(values.shape[0]), -values))[:top]
    return order.astype(np.int64), values[order]


def _dual_gain(net) -> float:
    """``K`` in ``lambda_mean_i ~ K (l_i - epsilon_i)``: the mean over the epochs of the
    multiplier that a row visited once per epoch, whose loss stays at ``l_i``, holds at
    the end of each epoch, per unit of ``l_i - epsilon_i``. Without a slack cost it gains
    ``eta_s (l_i - epsilon_i)`` at epoch s; with one it also gives up the share
    ``eta_s / slack_cost`` (the proximal step of the dual update), so it settles at
    ``slack_cost (l_i - epsilon_i)``."""
    epochs = max(len(net.history), 1)
    steps = np.arange(1, epochs + 1, dtype=np.float64)
    schedule = net.dual_lr_schedule
    if schedule == "constant":
        eta = np.full(epochs, float(net.dual_lr))
    elif schedule == "sqrt":
        eta = float(net.dual_lr) / np.sqrt(steps)
    else:
        eta = np.array([float(schedule(int(s))) for s in steps])
    cost = getattr(net, "slack_cost", None)
    lam, total = 0.0, 0.0
    for step in eta:
        lam = (lam + step) / (1.0 + (step / cost if cost is not None else 0.0))
        total += lam
    return total / epochs


def average_losses(learner_or_estimator) -> np.ndarray:
    """Each row's training loss averaged over the epochs, read back from its multipliers.

    ``epsilon_i + lambda_mean_i / K`` (:func:`_dual_gain`): exact for a row whose loss
    stays constant over training; a row that is fitted late and released (its multiplier
    decays back toward 0) gets less, so the estimate errs toward clean.
    """
    net = audit_of(learner_or_estimator, what="average_losses").net
    gain = _dual_gain(net)
    if not gain > 0:
        raise ValueError("the last fit made no dual step (dual_lr = 0): its multipliers "
                         "say nothing about the rows")
    return np.asarray(net.epsilon_, dtype=np.float64) + \
        np.asarray(net.lambdas_mean_, dtype=np.float64) / gain


def auto_threshold(losses, net) -> float:
    """The average loss above which :func:`find_label_issues` flags a row: the median
    row's plus ``ln 2`` for a classifier (the net gave the row's label, on geometric
    average over the training, less than half the odds it gave the typical row's), plus
    ``1`` for a regressor (a squared error larger than the typical row's by the target
    variance: the targets are standardized)."""
    margin = float(np.log(2.0)) if getattr(net, "_task", "") == "classification" else 1.0
    return float(np.median(losses)) + margin


def outlier_threshold(losses, net) -> float:
    """The average loss above which ``find_label_issues(threshold="outliers")`` flags a
    row: the median row's plus the smaller of :func:`auto_threshold`'s margin and three
    robust standard deviations of the losses (``3 x 1.4826 x`` their median absolute
    deviation, Hampel's outlier rule). A net that fits the wrong labels of a small
    labeled set quickly compresses every average loss, so a fixed margin in loss units
    finds few of them (300 MNIST rows at 10-30 % noise: ``ln 2`` flags 8-17 % of the
    wrong rows, this rule 20-73 %; ``benchmarks/research/noisy_fits.py``); the robust
    spread scales with the set's own losses."""
    median = float(np.median(losses))
    spread = 3.0 * 1.4826 * float(np.median(np.abs(losses - median)))
    return median + min(auto_threshold(losses, net) - median, spread)


def find_label_issues(learner_or_estimator, *, threshold="auto", score=DEFAULT_SCORE,
                      y=None, X=None):
    """Boolean mask of the labeled rows flagged as likely mislabeled.

    In the style of cleanlab's ``find_label_issues``, from the one fit already made.

    Parameters
    ----------
    learner_or_estimator : modAL learner, PDCLNet, PDCLRegressor or Pipeline ending in one
        Fitted (see :func:`rank_label_issues` for what the positions refer to).
    threshold : "auto", "outliers" or float, default "auto"
        "auto": flag the rows whose average training loss, read back from their
        multipliers (:func:`average_losses`), exceeds the median row's by ``ln 2`` for a
        classifier, by the target variance for a regressor (:func:`auto_threshold`;
        it assumes fewer than half the labels are wrong); for a regressor ranked by
        ``"neighbors"`` or ``"lambda_mean+neighbors(+inputs)"`` (the default), the rows whose
        squared distance to their neighbours' median target exceeds the median row's by
        the target variance (:func:`neighbor_scores`).
        "outliers": a classifier's rows whose average loss exceeds the median row's by
        the smaller of ``ln 2`` and three robust standard deviations of the losses
        (:func:`outlier_threshold`; more flags where a net fits wrong labels fast, MNIST;
        a regressor: as "auto"). Not :func:`~modal_ally.next_annotations`' rule: it
        repaired two to five times the wrong labels on MNIST without a clear gain in the loops
        (docs/label-audit.md, "Flags by the losses' spread").
        A number: flag the rows whose ``score`` is at or above it.
    score : "auto" or one of :data:`SCORES`, default :data:`DEFAULT_SCORE`
    y, X : array-like or None
        As in :func:`rank_label_issues`.

    Returns
    -------
    is_issue : numpy.ndarray of bool, shape (n_rows,)
    """
    audit = audit_of(learner_or_estimator, what="find_label_issues", X=X, y=y)
    if isinstance(threshold, str):
        check_choice(threshold, "threshold", ("auto", "outliers"))
        if resolved_score(audit, score).startswith(("neighbors", "lambda_mean+neighbors")) \
                and not audit.classification:
            # the same rule on the squared distance to the neighbours' median target
            squared = neighbor_scores(audit) ** 2
            return squared > float(np.median(squared)) + 1.0
        losses = average_losses(audit.learner)
        rule = outlier_threshold if threshold == "outliers" and audit.classification \
            else auto_threshold
        return losses > rule(losses, audit.net)
    values = label_issue_scores(audit, score)
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) \
            or np.isnan(threshold):
        raise ValueError(f"threshold must be 'auto', 'outliers' or a number, got {threshold!r}")
    return values >= float(threshold)
