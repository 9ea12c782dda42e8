"""Relabeling in the loop: ask an annotator again about labeled rows, all or nothing.

modAL has no API for a second answer. :func:`relabel` adds the annotator's answers to the
rows' answers (:mod:`modal_ally.answers`: every answer is kept), sets each answered row's
label to its consensus in the learner's labeled set (``y_training`` of an
``ActiveLearner``, modAL 0.4.1 and 0.4.2.x alike) or, for a ``DeepActiveLearner`` or a
bare estimator, in a copy of the ``y`` the caller passes, and refits. Any failure (the
annotator raising or answering badly, the refit diverging) leaves the learner and its
estimator exactly as they were.
"""

from __future__ import annotations

import contextlib
import numbers
from dataclasses import dataclass

import numpy as np
from sklearn.pipeline import Pipeline

from ._guard import restore_on_error
from ._neighbors import PRIOR_NEIGHBORS, neighbor_prior  # noqa: F401 - public here too
from ._validation import check_choice
from .answers import answers_of
from .label_audit import DEFAULT_SCORE, audit_of, rank_label_issues

__all__ = ["Relabeling", "relabel"]


@dataclass(frozen=True)
class Relabeling:
    """What :func:`relabel` did.

    Attributes
    ----------
    indices : numpy.ndarray of int64
        Positions in the labeled set sent to the annotator, most suspect first.
    scores : numpy.ndarray of float64 or None
        Their suspicion scores (None when the caller chose the rows).
    previous : numpy.ndarray
        Their labels before (the consensus the net was trained on).
    labels : numpy.ndarray
        The annotator's answers, added to the rows' answers.
    y : the whole new label vector (what the estimator was refitted on): each row's
        consensus of all its answers
    answers : modal_ally.answers.Answers
        Every answer of every labeled row, these included (also kept on the learner:
        :func:`modal_ally.answers.answers_of`).
    """

    indices: np.ndarray
    scores: np.ndarray | None
    previous: np.ndarray
    labels: np.ndarray
    y: object
    answers: object = None

    @property
    def consensus(self) -> np.ndarray:
        """The labels the rows ``indices`` have now (their consensus)."""
        y = self.y.to_numpy() if hasattr(self.y, "to_numpy") else np.asarray(self.y)
        return y[self.indices]

    @property
    def changed(self) -> np.ndarray:
        """Boolean mask over ``indices``: the rows whose label the annotator changed."""
        old, new = self.previous, self.labels
        if old.ndim > 1:
            return ~np.all(old == new, axis=tuple(range(1, old.ndim)))
        return old != new


def _take(X, rows):
    """Rows of a numpy array, tensor, DataFrame or list."""
    if hasattr(X, "iloc"):
        return X.iloc[rows]
    if isinstance(X, (list, tuple)):
        return [X[i] for i in rows]
    return X[rows]


def _check_indices(indices, n):
    indices = np.asarray(indices)
    if indices.ndim != 1 or not (indices.size == 0 or np.issubdtype(indices.dtype, np.integer)):
        raise TypeError("indices must be a 1-d array of integer positions in the labeled set")
    if indices.size == 0:
        raise ValueError("indices is empty: give at least one row to relabel")
    if indices.min() < 0 or indices.max() >= n:
        raise ValueError(f"indices must lie in [0, {n}), the labeled set's rows; got "
                         f"{indices.min()}..{indices.max()}")
    if np.unique(indices).size != indices.size:
        raise ValueError("indices repeats a row: each row is relabeled once")
    return indices.astype(np.int64)


def _check_answers(answers, previous, classification):
    """The annotator's labels as an array shaped like ``previous``, checked."""
    try:
        labels = np.asarray(answers)
    except Exception as exc:  # noqa: BLE001 - named in the error
        raise ValueError(f"the annotator's answer could not be read as labels: {exc}") from exc
    if labels.shape != previous.shape:
        raise ValueError(f"the annotator returned labels of shape {labels.shape} for "
                         f"{previous.shape[0]} rows (expected {previous.shape})")
    bad = labels.dtype == object and any(v is None for v in labels.ravel())
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        bad = True
    if bad:
        raise ValueError("the annotator returned a missing label (None, NaN or inf); "
                         "every row sent must get a label")
    if not classification and not np.issubdtype(labels.dtype, np.number):
        raise TypeError(f"a regressor needs numeric targets, the annotator returned "
                        f"dtype {labels.dtype}")
    return labels


def _new_labels(y, indices, labels):
    """A new label vector (``y`` itself is never written to): numpy, or a pandas copy."""
    if hasattr(y, "iloc"):
        y_new = y.copy()
        y_new.iloc[indices] = labels
        return y_new
    y = np.asarray(y)
    dtype = np.result_type(y, labels) if y.dtype != object else object
    y_new = np.array(y, dtype=dtype, copy=True)
    y_new[indices] = labels
    return y_new


@contextlib.contextmanager
def _all_or_nothing(learner, estimator, net):
    """On an exception: the learner's attributes, the pipeline's steps and the net as on
    entry (the net through :func:`restore_on_error`, which also restores its modules)."""
    objects = [learner] if learner is not estimator else []
    if isinstance(estimator, Pipeline):
        objects += [estimator] + [step for _, step in estimator.steps[:-1]
                                  if hasattr(step, "__dict__")]
    saved = [(obj, dict(obj.__dict__)) for obj in objects]
    with restore_on_error(net):
        try:
            yield
        except BaseException:
            for obj, state in saved:
                obj.__dict__.clear()
                obj.__dict__.update(state)
            raise


#: The values of ``relabel(consensus_prior=...)``.
CONSENSUS_PRIORS = ("model", "neighbors")


def _prior_of(audit, consensus_prior):
    """``probabilities_of(rows)`` for :meth:`Answers.revised` (see :func:`relabel`)."""
    def model(rows):
        return audit.estimator.predict_proba(_take(audit.X, rows))

    embeddings = getattr(audit.net, "train_embeddings_", None)
    if consensus_prior == "model" or embeddings is None or len(embeddings) != audit.n_rows \
            or audit.n_rows < 2:
        return model
    y = audit.y.to_numpy() if hasattr(audit.y, "to_numpy") else np.asarray(audit.y)
    return lambda rows: neighbor_prior(embeddings, y, audit.net.classes_, rows, model(rows))


def _refit(audit, X, y_new):
    learner = audit.learner
    if learner is not audit.estimator and getattr(learner, "X_training", None) is not None:
        learner.y_training = y_new
        if callable(getattr(learner, "_fit_to_known", None)):  # modAL 0.4.1 and 0.4.2.x
            learner._fit_to_known()
            return
    audit.estimator.fit(X, y_new)


def relabel(learner, annotator, *, n_instances=10, indices=None, X=None, y=None,
            score=DEFAULT_SCORE, annotator_id=None, round=-1, consensus_prior="neighbors"):
    """Ask ``annotator`` again about the top label suspects, add the answers, refit.

    Each answer is added to the row's answers (none is overwritten); the row's label
    becomes the consensus of all its answers (:class:`modal_ally.answers.Answers`: a
    weighted vote, the row's nearest labeled rows deciding ties; ``consensus_prior``).

    Atomic: if the annotator raises or answers badly, or the refit fails, the learner and
    its estimator are left exactly as they were and the error is raised.

    Parameters
    ----------
    learner : modAL learner, PDCLNet, PDCLRegressor or Pipeline ending in one
        Fitted. modAL's ``ActiveLearner`` (0.4.1 and 0.4.2.x): its ``y_training`` is
        replaced by a new array and the estimator refitted on ``X_training``. A
        ``DeepActiveLearner`` or a bare estimator keeps no labeled set: pass ``X`` and
        ``y``, the rows and labels of its last fit.
    annotator : callable
        ``annotator(X_rows, indices) -> labels``: the rows to look at again (in the
        labeled set's type) and their positions; returns one label per row.
    n_instances : int, default 10
        How many of the top suspects (:func:`rank_label_issues`) to send.
    indices : array of int or None
        Send these positions instead (``n_instances`` is then ignored).
    X, y : array-like or None
        The labeled set, for learners that keep none (see ``learner``).
    score : str
        What the suspects are ranked by (see :func:`rank_label_issues`).
    annotator_id : hashable or None
        Who answers (recorded with every answer; None: unknown).
    round : int, default -1
        The round the answers are given in (recorded; -1: unknown).
    consensus_prior : {"neighbors", "model"}, default "neighbors"
        What decides between labels with equal votes: the labels of the row's 10 nearest
        labeled rows in the fit's embedding (the row's own label left out; the net's
        probabilities count as one more neighbour, so they decide between equal counts),
        or the net's class probabilities of the row alone (0.3's rule). The net has
        fitted the row's first answer, so its own probabilities lean toward it: on
        digits at 10-30 % noise, a tie between a flagged row's first answer and a
        disagreeing second one went the right way 48-54 % of the time by the net's
        probabilities and 69-84 % by the neighbours' labels
        (``benchmarks/research/tie_prior.py``; docs/label-audit.md). Without the fit's
        embeddings (``train_embeddings_``) the net's probabilities decide.

    Returns
    -------
    Relabeling
        The positions, their scores, the previous labels, the answers, the new labels
        and every answer of the labeled set.
    """
    check_choice(consensus_prior, "consensus_prior", CONSENSUS_PRIORS)
    if (X is not None or y is not None) and getattr(learner, "X_training", None) is not None:
        raise ValueError("this learner keeps its labeled set (X_training, y_training): "
                         "relabel replaces labels there; do not pass X= or y=")
    audit = audit_of(learner, what="relabel", X=X, y=y)
    if audit.X is None or audit.y is None:
        raise ValueError("relabel needs the labeled set: modAL's ActiveLearner keeps it "
                         "(X_training, y_training); for a DeepActiveLearner or a bare "
                         "estimator pass X= and y=, the rows and labels of its last fit")
    scores = None
    if indices is None:
        if isinstance(n_instances, bool) or not isinstance(n_instances, numbers.Integral) \
                or n_instances < 1:
            raise ValueError(f"n_instances must be an integer >= 1, got {n_instances!r}")
        indices, scores = rank_label_issues(learner, top=min(int(n_instances), audit.n_rows),
                                            score=score, y=audit.y)
    indices = _check_indices(indices, audit.n_rows)
    previous = np.array(_take(np.asarray(audit.y) if not hasattr(audit.y, "iloc")
                              else audit.y.to_numpy(), indices), copy=True)
    with _all_or_nothing(audit.learner, audit.estimator, audit.net):
        answers = answers_of(audit.learner, y=audit.y, classification=audit.classification)
        labels = _check_answers(annotator(_take(audit.X, indices), indices.copy()),
                                previous, audit.classification)
        answers = answers.add(indices, labels, annotator=annotator_id, round=round)
        rows, consensus = answers.revised(
            _prior_of(audit, consensus_prior),
            classes=audit.net.classes_ if audit.classification else None)
        y_new = _new_labels(audit.y, rows, consensus.astype(previous.dtype, copy=False)
                            if previous.dtype != object else consensus)
        _refit(audit, audit.X, y_new)
        audit.learner.__dict__["answers_"] = answers
    return Relabeling(indices, scores, previous, labels, y_new, answers)
