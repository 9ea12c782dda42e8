"""The Label Studio bridge with a journal: every annotation journaled, overlaps awaited,
disagreements to the consensus, second opinions asked through per-task overlap.

What was taught comes from the journal (:class:`modal_ally.journal.Journal`, its keys the
task ids): an annotation is written once (its source is ``label-studio <project>
annotation <id>``), then ``Journal.teach`` teaches every journaled answer not yet taught,
so a crash between the two loses nothing and a second pull teaches nothing twice.
"""

from __future__ import annotations

import os

import numpy as np

from .journal import Journal
from .second_opinions import next_annotations

__all__ = ["JournaledBridge", "field"]


def field(obj, name, default=None):
    """A field of an SDK object or of the plain dict the SDK hands back for annotations."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _annotator(annotation):
    who = field(annotation, "completed_by")
    return field(who, "id") if isinstance(who, dict) else who


def open_journal_for(journal, X_pool, task_ids):
    """``journal`` (a :class:`Journal` or a path) bound to the pool keyed by task id."""
    if isinstance(journal, (str, os.PathLike)):
        return Journal(journal, X_pool, keys=task_ids)
    if not isinstance(journal, Journal):
        raise TypeError(f"journal must be a Journal or a file path, got {type(journal).__name__}")
    if list(journal._position) != [str(int(task)) for task in task_ids]:
        raise ValueError("the journal's pool is not the bridge's: open it as "
                         "Journal(path, X_pool, keys=task_ids), the same X_pool and task ids")
    return journal


class JournaledBridge:
    """What :class:`~modal_ally.label_studio.LabelStudioBridge` does with a journal."""

    def _journal_taught(self):
        labeled = self.journal.labeled
        keys = [int(self.task_ids[row]) for row in labeled]
        return {task: {"label": label} for task, label in zip(keys, self.journal.labels().tolist())}

    def _source(self, annotation_id):
        return f"label-studio {self._key} annotation {int(annotation_id)}"

    def _usable(self, task):
        """``{annotation id: (choice, annotator)}`` of the task's annotations with one choice."""
        return {int(field(a, "id")): (self._choice(a), _annotator(a))
                for a in field(task, "annotations") or [] if not field(a, "was_cancelled")}

    def _journal_answers(self, tasks, report):
        """The new annotations of finished tasks, as journal rows; errors collected."""
        known = set(self.journal.table()["source"].dropna())
        labeled = {int(self.task_ids[row]) for row in self.journal.labeled}
        new, missing, unknown = [], [], []
        for task in tasks:
            task_id, made = int(field(task, "id")), self._usable(task)
            usable = {a: cw for a, cw in made.items() if cw[0] is not None}
            if made and not usable:
                report.unusable[task_id] = "no annotation with exactly one choice"
            if not usable:
                continue
            if task_id not in self._row_of:
                missing.append(task_id)
                continue
            unknown += [(task_id, c) for c, _ in usable.values() if c not in self.labels]
            people, overlap = {w for _, w in usable.values()}, int(field(task, "overlap") or 1)
            if len(people) < overlap:
                report.waiting[task_id] = (len(people), overlap)
                continue
            if len({c for c, _ in usable.values()}) > 1:
                report.conflicts[task_id] = sorted({c for c, _ in usable.values()})
            fresh = [(a, c, w) for a, (c, w) in sorted(usable.items())
                     if self._source(a) not in known]
            if fresh and task_id in labeled:
                report.second_opinions[task_id] = [c for _, c, _ in fresh]
            new += [(task_id, a, c, w) for a, c, w in fresh]
        return new, missing, unknown

    def _pull_journaled(self, tasks, report):
        new, missing, unknown = self._journal_answers(tasks, report)
        self._raise_for(missing, unknown)
        if new:
            self.journal.record(
                np.array([self._row_of[t] for t, _, _, _ in new], dtype=np.int64),
                [self.labels[c] for _, _, c, _ in new], annotator=[w for *_, w in new],
                sources=[self._source(a) for _, a, _, _ in new],
                model_version=self._model_version)
        taught = self.journal.teach(self.learner)
        report.taught = {int(task): label for task, label in taught.items()}
        return report

    # ------------------------------------------------------------ second opinions
    def ask_again(self, task_ids):
        """Send labeled tasks back to be labeled by one more person.

        Each task's ``overlap`` becomes its number of distinct annotators plus one (Label
        Studio counts distinct annotators) and it is marked unlabeled, so Label Studio
        serves it again, to someone who has not annotated it, in the order of its
        prediction score; :meth:`pull` waits for that annotation and teaches the
        consensus.
        """
        for task in (int(t) for t in task_ids):
            found = self._call(f"reading task {task}", self.client.tasks.get, id=task)
            people = {_annotator(a) for a in field(found, "annotations") or []
                      if not field(a, "was_cancelled")}
            self._call(f"asking task {task} again", self.client.tasks.update, id=task,
                       overlap=len(people) + 1, is_labeled=False)

    def _second_opinion_order(self, rows, n_instances, query_kwargs):
        """The round's picks by :func:`modal_ally.next_annotations`: the labeled tasks to
        ask again (positions of ``self.task_ids``) and the new ones (positions in
        ``rows``)."""
        pool, positions = next_annotations(self.learner, self._rows(rows), n_instances,
                                           random_state=query_kwargs.get("random_state"))
        again = self.journal.labeled[np.asarray(positions, dtype=np.int64)]
        return again, np.asarray(pool, dtype=np.int64)
