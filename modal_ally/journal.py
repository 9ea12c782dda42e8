"""A labeling session nothing can lose: every answer journaled before a learner is taught it.

A :class:`Journal` binds an SQLite file (see :mod:`modal_ally._journal_db`) to the user's
pool. Every answer is committed before ``teach`` sees it; a failed ``teach`` keeps the
answers, recorded as not taught; after a crash :meth:`Journal.resume` rebuilds the
learner: the same labeled rows in the same order, the same labels, round and answers
(``learner.answers_``). A row's label is the consensus of its answers
(:meth:`modal_ally.answers.Answers.consensus`, the model's probabilities breaking ties);
the labels each teach gave are journaled too, so a rebuild reproduces them exactly.
Model version: the number of successful teaches journaled when an answer was written
(the fits the model that asked had been through), unless given.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
from sklearn.base import is_regressor

from ._journal_db import (
    JournalError,
    JournalFileError,
    JournalWriteError,
    append_batch,
    append_teach,
    encode,
    open_journal,
    read_since,
)
from ._journal_fit import consensus_prior, fit, labels_array, pool_keys, unchanged_on_error
from .answers import ATTRIBUTE, Answers
from .relabeling import _take
from .relabeling import relabel as _relabel

__all__ = ["Journal", "JournalError", "JournalFileError", "JournalWriteError"]

#: The learner attribute counting the labeled rows a journal gave it.
COUNT_ATTRIBUTE = "journal_labeled_"


class Journal:
    """Every answer of a labeling session, in an SQLite file, before a learner is taught it.

    Parameters
    ----------
    path : str or path-like
        The journal's file: created if missing, else opened and checked (SQLite's
        ``quick_check``, the schema version); a file that fails is never written to.
    X_pool : array-like of shape (n_rows, ...)
        The whole pool the answers are about (the initial labeled rows included).
    keys : sequence of int or str, optional
        The key of each row of ``X_pool`` (your ids for the rows); default: the row
        positions. A journal naming keys missing from ``keys`` is refused.

    Notes
    -----
    One process teaches the learner; other processes may :meth:`record` answers into the
    same file at the same time (SQLite serializes the writers; none is lost or doubled),
    and the teaching process teaches them at its next :meth:`teach`.
    """

    def __init__(self, path, X_pool, *, keys=None):
        encoded = pool_keys(X_pool, keys)
        self.path, self.X_pool = str(path), X_pool
        self._position = {key: i for i, key in enumerate(encoded)}
        self._conn = open_journal(self.path)
        self._records, self._status, self._order, self._label = [], {}, [], {}
        self._last, self._fits, self._round = (0, 0), 0, -1
        try:
            self._sync()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ reading
    def _sync(self):
        """Read what this or another process wrote since the last read."""
        answers, teaches = read_since(self._conn, *self._last)
        unknown = sorted({a[2] for a in answers} - self._position.keys())
        if unknown:
            raise JournalFileError(
                f"the journal {self.path} has answers for keys that are not in this pool "
                f"({', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}): it belongs "
                "to another pool, or keys= is missing or different")
        self._records += answers
        for _, batches, taught, labels, _ in teaches:
            for batch in json.loads(batches):
                self._status[batch] = "taught" if taught else "failed"
            if taught:
                self._fits += 1
                for key, label in json.loads(labels):
                    if key not in self._label:
                        self._order.append(key)
                    self._label[key] = label
        if answers:
            self._round = max(self._round, max(a[6] for a in answers))
        self._last = (self._records[-1][0] if self._records else self._last[0],
                      teaches[-1][0] if teaches else self._last[1])

    @property
    def round(self) -> int:
        """The last round journaled (-1: none yet)."""
        self._sync()
        return self._round

    @property
    def fits(self) -> int:
        """How many teaches were journaled as successful (the default model version)."""
        self._sync()
        return self._fits

    def _pending(self, retry_failed=False):
        wanted = {None, "failed"} if retry_failed else {None}
        return sorted({r[1] for r in self._records if self._status.get(r[1]) in wanted})

    @property
    def labeled(self) -> np.ndarray:
        """Positions in ``X_pool`` of the labeled set the journal taught, in its order."""
        self._sync()
        return np.array([self._position[k] for k in self._order], dtype=np.int64)

    def unlabeled(self) -> np.ndarray:
        """Positions in ``X_pool`` of the rows nobody has answered yet."""
        self._sync()
        answered = np.zeros(len(self._position), dtype=bool)
        answered[[self._position[r[2]] for r in self._records]] = True
        return np.flatnonzero(~answered)

    def labels(self) -> np.ndarray:
        """The labels of :attr:`labeled` (consensus labels where rows have several answers)."""
        self._sync()
        return labels_array([json.loads(self._label[k]) for k in self._order])

    def table(self):
        """Every answer as a pandas DataFrame: key, position (in ``X_pool``), label,
        annotator, time, round, model_version, source, batch and status (taught, pending
        or failed)."""
        import pandas as pd

        self._sync()
        columns = ["id", "batch", "key", "label", "annotator", "time", "round",
                   "model_version", "source"]
        decoded = [r[:2] + tuple(None if v is None else json.loads(v) for v in r[2:5]) + r[5:]
                   for r in self._records]
        out = pd.DataFrame(decoded, columns=columns).set_index("id")
        out["position"] = [self._position[r[2]] for r in self._records]
        out["status"] = [self._status.get(b, "pending") for b in out["batch"]]
        return out

    def answers(self, *, classification=True) -> Answers:
        """Every taught answer, rows being positions in the labeled set (:attr:`labeled`)."""
        self._sync()
        return self._answers(self._order, (), classification)

    def _answers(self, order, extra, classification):
        """The answers of the taught batches and of ``extra``, rows in ``order``."""
        row, extra = {key: i for i, key in enumerate(order)}, set(extra)
        answers = Answers.empty(classification=classification)
        batches = {}
        for r in self._records:
            if self._status.get(r[1]) == "taught" or r[1] in extra:
                batches.setdefault(r[1], []).append(r)
        for batch in sorted(batches):
            rs = batches[batch]
            answers = answers.add(
                [row[r[2]] for r in rs], labels_array([json.loads(r[3]) for r in rs]),
                annotator=[None if r[4] is None else json.loads(r[4]) for r in rs],
                round=rs[0][6], when=rs[0][5])
        return answers

    # ------------------------------------------------------------ writing
    def record(self, rows, y, *, annotator=None, round=None, model_version=None,
               sources=None, kind="answers") -> int:
        """Write answers to the journal (committed when this returns); teach nothing.

        Parameters
        ----------
        rows : array of int
            Positions in ``X_pool`` of the rows answered (a row already labeled gets a
            second opinion).
        y : array-like
            The answers, one per row (ints, floats or strings; JSON keeps them exact).
        annotator : int, str, sequence of them, or None
            Who answered (one for all, or one per row).
        round : int or None
            The round; default: the last round journaled plus one.
        model_version : str or None
            The model that asked; default: the number of teaches journaled so far.
        sources : sequence of str or None
            A unique id of each answer where it comes from elsewhere (e.g. a Label
            Studio annotation): an answer whose source is journaled already is skipped.

        Returns
        -------
        int
            How many answers were written.
        """
        self._sync()
        rows = np.asarray(rows)
        if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
            raise TypeError("rows must be a 1-d array of integer positions in X_pool")
        if rows.size and (rows.min() < 0 or rows.max() >= len(self._position)):
            raise ValueError(f"rows must lie in [0, {len(self._position)}), the rows of X_pool")
        labels = list(np.asarray(y, dtype=object)) if not hasattr(y, "tolist") else y.tolist()
        who = list(annotator) if isinstance(annotator, (list, tuple, np.ndarray)) \
            else [annotator] * rows.size
        if len(labels) != rows.size or len(who) != rows.size or \
                (sources is not None and len(sources) != rows.size):
            raise ValueError(f"{rows.size} rows need as many answers, annotators and "
                             f"sources; got {len(labels)}, {len(who)} and "
                             f"{'none' if sources is None else len(sources)}")
        if any(label is None for label in labels):
            raise ValueError("an answer is missing (None): every row given needs an answer")
        keys = list(self._position)
        entries = [{"key": keys[int(i)], "label": encode(label),
                    "annotator": None if a is None else encode(a),
                    "round": self._round + 1 if round is None else int(round),
                    "model_version": str(self._fits if model_version is None else model_version),
                    "source": None if sources is None else str(sources[j])}
                   for j, (i, label, a) in enumerate(zip(rows, labels, who))]
        if not entries:
            return 0
        _, written = append_batch(self._conn, self.path, kind, entries)
        self._sync()
        return written

    # ------------------------------------------------------------ teaching
    def _check_learner(self, learner):
        given = learner.__dict__.get(COUNT_ATTRIBUTE, 0)
        y = getattr(learner, "y_training", None)
        if hasattr(learner, "X_training") and (0 if y is None else len(y)) != given:
            raise ValueError(
                f"the learner has {len(y)} labeled rows but the journal gave it {given}: "
                "start it with no labeled set and teach the initial rows through the "
                "journal, or rebuild it with journal.resume(learner)")
        if given != len(self._order):
            raise ValueError(
                f"the journal {self.path} has taught {len(self._order)} labeled rows but "
                f"this learner was given {given}: rebuild it with journal.resume(learner)")

    def _plan(self, learner, batches):
        """The labeled set after teaching ``batches``: its keys, their labels (JSON
        text), and the (key, label) pairs that are new or changed."""
        new, batches = {}, set(batches)
        for r in self._records:
            if r[1] in batches and r[2] not in self._label:
                new.setdefault(r[2], None)
        order = self._order + list(new)
        answers = self._answers(order, batches, not is_regressor(learner.estimator))
        if answers.counts().max() == 1:  # one answer a row: it is the label
            labels = answers.labels[np.argsort(answers.rows, kind="stable")]
        else:
            probabilities, classes = consensus_prior(
                learner, _take(self.X_pool, [self._position[k] for k in order]), answers)
            labels = answers.consensus(probabilities, classes=classes)
        consensus = [encode(v) for v in labels]
        return order, consensus, [(k, v) for k, v in zip(order, consensus)
                                  if self._label.get(k) != v]

    def teach(self, learner, rows=None, y=None, *, annotator=None, round=None,
              model_version=None, retry_failed=False) -> dict:
        """Journal answers (committed first), then teach the learner every untaught one.

        The learner is refitted on its whole labeled set: new rows are appended (in the
        order answered), rows with several answers get their consensus label. A
        ``DeepActiveLearner`` keeps no labeled set: it is refitted from the journal's
        (``teach(..., warm_start=False)``). If the fit fails, the learner is left as it
        was, the answers stay in the journal marked as not taught, and the error is
        raised; ``retry_failed=True`` teaches them again.

        Parameters
        ----------
        learner : modAL ActiveLearner or DeepActiveLearner
            Given every labeled row by this journal (see :meth:`resume`).
        rows, y, annotator, round, model_version
            New answers, as in :meth:`record` (or None: teach what others recorded).
        retry_failed : bool, default False
            Teach again the answers of teaches that failed.

        Returns
        -------
        dict
            ``{key: label}`` of the rows whose label the learner was given now.
        """
        if rows is not None:
            self.record(rows, y, annotator=annotator, round=round, model_version=model_version)
        self._sync()
        self._check_learner(learner)
        batches = self._pending(retry_failed)
        if not batches:
            return {}
        order, consensus, given = self._plan(learner, batches)
        n_old = len(self._order) if hasattr(learner, "X_training") else 0
        y_all = labels_array([json.loads(v) for v in consensus])
        changed = any(k in self._label for k, _ in given)
        with self._teaching(learner, batches):
            fit(learner, _take(self.X_pool, [self._position[k] for k in order[n_old:]]),
                y_all[n_old:], y_all[:n_old] if changed and n_old else None)
            append_teach(self._conn, self.path, batches, True, given)
        return {json.loads(k): json.loads(v) for k, v in given}

    @contextlib.contextmanager
    def _teaching(self, learner, batches):
        """Teach ``batches`` inside: on an error the learner is put back and the
        batches recorded as not taught (unless the journal itself could not be written);
        on success the learner gets its answers (``answers_``)."""
        try:
            with unchanged_on_error(learner):
                yield
        except Exception as exc:
            if batches and not isinstance(exc, JournalWriteError):
                append_teach(self._conn, self.path, batches, False, [],
                             error=f"{type(exc).__name__}: {exc}"[:2000])
            self._sync()
            raise
        self._sync()
        self._attach(learner)

    def _attach(self, learner):
        learner.__dict__[ATTRIBUTE] = self._answers(
            self._order, (), not is_regressor(learner.estimator))
        learner.__dict__[COUNT_ATTRIBUTE] = len(self._order)

    def resume(self, learner):
        """Rebuild ``learner`` from the journal and the pool, then teach what was
        journaled but not taught (a crash inside ``teach``). Returns the learner.

        ``learner`` is a new modAL learner with no labeled set (as the session created
        it, before its first teach). It gets the journal's labeled rows in their order,
        their labels (consensus labels as taught), every answer (``learner.answers_``),
        and one fit; :attr:`round` is the last round journaled.
        """
        self._sync()
        y = getattr(learner, "y_training", None)
        if (y is not None and len(y)) or learner.__dict__.get(COUNT_ATTRIBUTE):
            raise ValueError("resume rebuilds a learner from the journal: give a new one "
                             "with no labeled set (no X_training / y_training)")
        if self._order:
            with unchanged_on_error(learner):
                fit(learner, _take(self.X_pool, self.labeled), self.labels(), None)
            self._attach(learner)
        self.teach(learner)
        return learner

    def relabel(self, learner, annotator, *, annotator_id=None, round=None, **kwargs):
        """:func:`modal_ally.relabel` with every answer journaled before the refit.

        ``annotator(X_rows, indices)`` is called as by :func:`~modal_ally.relabel`; its
        answers are second opinions of labeled rows. ``kwargs`` go to
        :func:`~modal_ally.relabel` (``n_instances``, ``indices``, ``score``); ``X`` and
        ``y`` of a ``DeepActiveLearner`` come from the journal. Returns its result.
        """
        self.teach(learner)
        order, batches = list(self._order), []
        round = self._round + 1 if round is None else int(round)

        def journaled(X_rows, indices):
            answers, before = annotator(X_rows, indices), self._last[0]
            self.record(np.array([self._position[order[i]] for i in indices]), answers,
                        annotator=annotator_id, round=round, kind="relabel")
            batches.extend(sorted({r[1] for r in self._records if r[0] > before}))
            return answers

        if not hasattr(learner, "X_training"):
            kwargs.setdefault("X", _take(self.X_pool, self.labeled))
            kwargs.setdefault("y", self.labels())
        with self._teaching(learner, batches):
            result = _relabel(learner, journaled, annotator_id=annotator_id, round=round,
                              **kwargs)
            y = learner.y_training if hasattr(learner, "X_training") else result.y
            y = [encode(v) for v in (y.to_numpy() if hasattr(y, "to_numpy") else y)]
            append_teach(self._conn, self.path, batches, True,
                         [(k, v) for k, v in zip(order, y) if self._label[k] != v])
        return result

    def query(self, learner, n_instances=1, **query_kwargs) -> np.ndarray:
        """``learner.query`` over the rows nobody has answered; their positions in ``X_pool``."""
        rest = self.unlabeled()
        if rest.size == 0:
            raise ValueError("every row of X_pool has an answer: nothing left to query")
        picked = learner.query(_take(self.X_pool, rest), n_instances=min(n_instances, rest.size),
                               **query_kwargs)[0]
        return rest[np.asarray(picked, dtype=np.int64).ravel()]

    def close(self):
        """Close the file (every acknowledged answer is in it already)."""
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
