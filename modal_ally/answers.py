"""Every answer kept: the answers given for each labeled row, and the consensus label.

A labeled row may be answered more than once (several annotators, or the same one asked
again). :class:`Answers` keeps every answer, with its annotator (where known), time and
round, and derives the label the net trains on, the row's consensus:

- classification: a weighted vote among the labels the row was given, each annotator's
  vote weighing ``log(q_j (K - 1) / (1 - q_j))`` (the log-likelihood ratio of an
  annotator who is right with probability ``q_j`` and otherwise picks one of the other
  ``K - 1`` classes at random; Dawid and Skene 1979, the one-coin model), the log of a
  prior probability of each label added (so it decides ties between equal votes, as the
  model does in CROWDLAB, Goh et al. 2022; :func:`~modal_ally.relabel` and the journal
  pass the labels of the row's nearest labeled rows, with the model's probabilities
  counted as one more neighbour). Only labels someone gave can win: a row answered once
  keeps its answer. ``q_j`` is each annotator's agreement with the consensus on the rows
  that have more than one answer, smoothed toward :data:`PRIOR_ACCURACY`;
- regression: the median of the answers (their mean for two).

:func:`answers_of` gives a modAL learner's answers, kept on the learner and synced with
its ``y_training`` (rows taught by ``teach`` join with their label as first answer), so
that :func:`~modal_ally.relabel` adds an answer instead of overwriting one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["Answers", "PRIOR_ACCURACY", "answers_of", "synced_answers"]

#: Prior mean of an annotator's accuracy (Beta prior of strength :data:`PRIOR_STRENGTH`),
#: before their answers can be compared with others'.
PRIOR_ACCURACY = 0.8
PRIOR_STRENGTH = 4.0
#: Attribute of the learner (or estimator) that holds its :class:`Answers`.
ATTRIBUTE = "answers_"


def _as_labels(values, n):
    labels = np.asarray(values)
    if labels.ndim == 0 or labels.shape[0] != n:
        raise ValueError(f"expected {n} answers, got an array of shape {labels.shape}")
    return labels


@dataclass(frozen=True)
class Answers:
    """Every answer given for the rows of a labeled set (immutable: adding returns a new one).

    Attributes
    ----------
    rows : numpy.ndarray of int64
        The position in the labeled set each answer is for.
    labels : numpy.ndarray
        The answers, in the order given.
    annotators : numpy.ndarray of object
        Who gave each answer (None where unknown).
    times : numpy.ndarray of float64
        When (seconds since the epoch).
    rounds : numpy.ndarray of int64
        The round each answer was given in (-1 where unknown).
    classification : bool
        Whether the answers are class labels (else regression targets).
    """

    rows: np.ndarray
    labels: np.ndarray
    annotators: np.ndarray
    times: np.ndarray
    rounds: np.ndarray
    classification: bool = True
    _n_rows: int = field(default=0, repr=False)

    @classmethod
    def from_labels(cls, y, *, classification=True, annotator=None, round=-1):
        """One answer per row of ``y`` (the labels a labeled set starts with)."""
        return cls.empty(classification=classification).add(
            np.arange(len(y)), y, annotator=annotator, round=round)

    @classmethod
    def empty(cls, *, classification=True):
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, object),
                   np.zeros(0, np.float64), np.zeros(0, np.int64), bool(classification), 0)

    @property
    def n_rows(self) -> int:
        """Rows of the labeled set known to the log (at least one more than the last row)."""
        return self._n_rows

    def add(self, rows, labels, *, annotator=None, round=-1, when=None):
        """A new :class:`Answers` with one more answer for each of ``rows``.

        ``rows`` may name rows past the end (new labeled rows); ``annotator`` is one id
        for all, or one per row.
        """
        rows = np.asarray(rows, dtype=np.int64).ravel()
        labels = _as_labels(labels, rows.shape[0])
        if rows.size and rows.min() < 0:
            raise ValueError("answer rows must be positions >= 0 in the labeled set")
        who = np.empty(rows.shape[0], dtype=object)
        if isinstance(annotator, (list, tuple, np.ndarray)):
            who[:] = _as_labels(np.asarray(annotator, dtype=object), rows.shape[0])
        else:
            who[:] = [annotator] * rows.shape[0]
        stamp = time.time() if when is None else float(when)
        return replace(
            self, rows=np.concatenate([self.rows, rows]),
            labels=np.concatenate([self.labels, labels]) if self.rows.size
            else np.array(labels, copy=True),
            annotators=np.concatenate([self.annotators, who]),
            times=np.concatenate([self.times, np.full(rows.shape[0], stamp)]),
            rounds=np.concatenate([self.rounds, np.full(rows.shape[0], int(round))]),
            _n_rows=max(self._n_rows, int(rows.max()) + 1 if rows.size else 0))

    def of_row(self, row) -> list[dict]:
        """Every answer of one row, oldest first: dicts of label, annotator, time, round."""
        at = np.flatnonzero(self.rows == int(row))
        return [{"label": self.labels[i].item() if hasattr(self.labels[i], "item")
                 else self.labels[i], "annotator": self.annotators[i],
                 "time": float(self.times[i]), "round": int(self.rounds[i])} for i in at]

    def counts(self) -> np.ndarray:
        """How many answers each row has, shape (n_rows,)."""
        return np.bincount(self.rows, minlength=self._n_rows)

    def table(self):
        """Every answer as a pandas DataFrame (row, label, annotator, time, round)."""
        import pandas as pd

        return pd.DataFrame({"row": self.rows, "label": self.labels,
                             "annotator": self.annotators, "time": self.times,
                             "round": self.rounds})

    # ---------------------------------------------------------------- consensus
    def annotator_accuracy(self, consensus=None) -> dict:
        """Each annotator's estimated accuracy: agreement with the consensus on rows
        with several answers, smoothed toward :data:`PRIOR_ACCURACY`."""
        consensus = self.consensus() if consensus is None else consensus
        names, code = _annotator_codes(self.annotators)
        return dict(zip(names, _accuracies(self, consensus, code, len(names))))

    def consensus(self, probabilities=None, *, classes=None, iterations=3):
        """The consensus label of every row, shape (n_rows,).

        Parameters
        ----------
        probabilities : array of shape (n_rows, n_classes) or None
            The model's class probabilities of the rows (columns in ``classes``' order),
            the prior that decides between labels with equal votes; None: uniform.
        classes : array or None
            The classes (the net's ``classes_``); None: the labels given.
        iterations : int
            Rounds of re-estimating the annotators' accuracies from the consensus.
        """
        if not self.classification:
            return self._median_targets()
        return _vote(self, probabilities, classes, iterations)

    def revised(self, probabilities_of=None, *, classes=None):
        """``(rows, labels)``: the consensus of every row with more than one answer, the
        rows whose label an added answer can change.

        ``probabilities_of(rows)`` returns the model's class probabilities of those rows
        (columns in ``classes``' order), which decide between equal votes; None, and
        for regression targets, is not called.
        """
        rows = np.flatnonzero(self.counts() > 1)
        if not rows.size:
            return rows, self.labels[:0]
        if not self.classification or probabilities_of is None:
            return rows, self.consensus(classes=classes)[rows]
        probabilities = np.zeros((self._n_rows, len(classes)))
        probabilities[rows] = probabilities_of(rows)
        return rows, self.consensus(probabilities, classes=classes)[rows]

    def _median_targets(self):
        values = self.labels.astype(np.float64).reshape(self.labels.shape[0], -1)
        out = np.full((self._n_rows, values.shape[1]), np.nan)
        order = np.argsort(self.rows, kind="stable")
        starts = np.searchsorted(self.rows[order], np.arange(self._n_rows))
        ends = np.searchsorted(self.rows[order], np.arange(self._n_rows), side="right")
        for row in np.flatnonzero(ends > starts):
            out[row] = np.median(values[order[starts[row]:ends[row]]], axis=0)
        return out[:, 0] if self.labels.ndim == 1 else out

    def settled(self) -> np.ndarray:
        """Rows whose consensus is backed by a strict majority of at least two answers
        (classification; a regression row with two answers or more)."""
        counts = self.counts()
        if not self.classification:
            return counts >= 2
        out = np.zeros(self._n_rows, dtype=bool)
        for row in np.flatnonzero(counts >= 2):
            _, votes = np.unique(self.labels[self.rows == row], return_counts=True)
            votes = np.sort(votes)[::-1]
            out[row] = votes.size == 1 or votes[0] > votes[1]
        return out


def _annotator_codes(annotators):
    """``(names, code)``: the annotators in first-seen order, and each answer's index
    into them."""
    index = {}
    code = np.array([index.setdefault(who, len(index)) for who in annotators],
                    dtype=np.int64)
    return list(index), code


def _accuracies(answers, consensus, code, n_annotators):
    """Per annotator code: agreement with ``consensus`` on the rows with several answers
    (none counted for regression targets), smoothed toward :data:`PRIOR_ACCURACY`."""
    shared = answers.counts()[answers.rows] > 1
    if not answers.classification:
        shared = np.zeros_like(shared)
    agree = shared & (answers.labels == consensus[answers.rows])
    return (np.bincount(code[agree], minlength=n_annotators)
            + PRIOR_STRENGTH * PRIOR_ACCURACY) / (
        np.bincount(code[shared], minlength=n_annotators) + PRIOR_STRENGTH)


def _vote(answers, probabilities, classes, iterations):
    """Weighted votes among the labels each row was given (see :class:`Answers`)."""
    classes = np.unique(answers.labels) if classes is None else np.asarray(classes)
    code = np.searchsorted(classes, answers.labels)
    if (code >= classes.size).any() or (classes[np.minimum(code, classes.size - 1)]
                                        != answers.labels).any():
        raise ValueError("an answer is not one of the classes: "
                         f"{sorted(set(answers.labels.tolist()) - set(classes.tolist()))[:5]}")
    n, k = answers.n_rows, max(classes.size, 2)
    prior = np.zeros((n, classes.size)) if probabilities is None else \
        np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-6, 1.0))
    if prior.shape != (n, classes.size):
        raise ValueError(f"probabilities must have shape ({n}, {classes.size}), "
                         f"got {prior.shape}")
    given = np.zeros((n, classes.size), dtype=bool)
    given[answers.rows, code] = True
    names, who = _annotator_codes(answers.annotators)
    accuracy = np.full(len(names), PRIOR_ACCURACY)
    rounds = max(int(iterations), 1)
    for iteration in range(rounds):
        weight = accuracy[who]
        log_odds = np.log(weight * (k - 1) / np.maximum(1.0 - weight, 1e-6))
        votes = np.zeros((n, classes.size))
        np.add.at(votes, (answers.rows, code), log_odds)
        labels = classes[np.where(given, votes + prior, -np.inf).argmax(axis=1)]
        if iteration + 1 < rounds:  # the accuracies this consensus implies
            accuracy = _accuracies(answers, labels, who, len(names))
    return labels


def synced_answers(learner, *, y=None, classification=True) -> Answers:
    """The :class:`Answers` kept on ``learner``, with the rows of ``y`` (default:
    ``learner.y_training``) it does not know yet joined with their label as one answer
    (annotator None): modAL's ``teach`` appends rows without telling anyone. The learner
    is not changed (see :func:`answers_of`)."""
    y = getattr(learner, "y_training", None) if y is None else y
    answers = learner.__dict__.get(ATTRIBUTE)
    if answers is None:
        answers = Answers.empty(classification=classification)
    if y is not None:
        y = y.to_numpy() if hasattr(y, "to_numpy") else np.asarray(y)
        if len(y) < answers.n_rows:
            raise ValueError(f"the labeled set has {len(y)} rows but the learner's answers "
                             f"name {answers.n_rows}: rows were removed from the labeled "
                             "set, so its answers no longer line up")
        if len(y) > answers.n_rows:
            new = np.arange(answers.n_rows, len(y))
            answers = answers.add(new, y[new])
    return answers


def answers_of(learner, *, y=None, classification=True) -> Answers:
    """Every answer given for ``learner``'s labeled rows (:func:`synced_answers`), kept
    on the learner as ``learner.answers_``: read every row's answers with
    ``answers_of(learner).of_row(i)`` or ``.table()``, their consensus with
    ``.consensus()``."""
    answers = synced_answers(learner, y=y, classification=classification)
    learner.__dict__[ATTRIBUTE] = answers
    return answers
