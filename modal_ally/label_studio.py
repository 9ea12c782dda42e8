"""A modAL learner and a Label Studio project: the pool's ALLY priority goes out as
prediction scores, finished annotations come back into ``teach``.

Label Studio's only contract for active learning is the prediction ``score``: a project
whose sampling is "Uncertainty sampling" serves, among the tasks that have a prediction
of the project's ``model_version``, the one with the **lowest** score first. So the
bridge pushes ``score = rank / n_tasks``: 0.0 for the task to label first (the first pick
of the learner's query strategy), up to ``(n - 1) / n`` for the last. The predictions
carry no label (an empty ``result``), so annotators are not shown the model's guess.

With a journal (``journal=``, :mod:`modal_ally.journal`) every annotation is journaled
before it is taught, a task waits for its ``overlap``, annotators who disagree go to the
consensus, and ``push_scores(..., second_opinions=True)`` sends the labeled tasks that
:func:`modal_ally.next_annotations` picks back to one more person.

Needs the official SDK: ``pip install "modal_ally[label-studio]"`` (``label-studio-sdk``).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from ._inference import resolve_pipeline
from ._label_studio_journal import JournaledBridge, open_journal_for
from ._label_studio_sdk import (
    LabelStudioAuthError,
    LabelStudioConnectionError,
    LabelStudioError,
    base_url,
    call_sdk,
    check_api_key,
    connect,
)
from ._label_studio_sdk import field as _field

__all__ = ["LabelStudioBridge", "LabelStudioError", "LabelStudioConnectionError",
           "LabelStudioAuthError", "annotation_order", "connect", "priority_scores"]

#: Data Manager filter: tasks with at least one annotation.
_ANNOTATED = json.dumps({"filters": {"conjunction": "and", "items": [
    {"filter": "filter:tasks:total_annotations", "operator": "greater", "type": "Number",
     "value": 0}]}})
#: Predictions sent per request.
PUSH_CHUNK = 5000
#: The learner attribute that holds what the bridge has taught it (see ``LabelStudioBridge``).
LEDGER_ATTRIBUTE = "label_studio_taught_"


def priority_scores(order):
    """Label Studio scores from a priority order: ``scores[order[r]] = r / n``.

    Label Studio serves the lowest score first, so the first position of ``order`` (the
    most informative task) gets 0.0.
    """
    order = np.asarray(order, dtype=np.int64)
    scores = np.empty(order.shape[0], dtype=np.float64)
    scores[order] = np.arange(order.shape[0]) / max(order.shape[0], 1)
    return scores


def annotation_order(learner, X_pool, n_instances, **query_kwargs):
    """The order in which to label ``X_pool``: the learner's query first, then the rest.

    The first ``n_instances`` positions are ``learner.query(X_pool, n_instances)``'s
    picks, in the order the strategy drew them (ALLY's batch with
    ``ally_query_strategy``); every other row follows by predicted dual variable, highest
    first (ties by the lower index). One query and one ``predict_dual`` pass.

    Returns
    -------
    order : numpy.ndarray of int64, shape (len(X_pool),), a permutation of the rows
    """
    query_idx, _ = learner.query(X_pool, n_instances=n_instances, **query_kwargs)
    return _then_by_dual(learner, X_pool, np.asarray(query_idx, dtype=np.int64).ravel())


def _then_by_dual(learner, X_pool, first):
    """``first``, then every other row of ``X_pool`` by predicted dual variable."""
    net, X_net, _ = resolve_pipeline(learner.estimator, X_pool)
    duals = np.asarray(net.predict_dual(X_net), dtype=np.float64)
    rest = np.setdiff1d(np.arange(duals.shape[0]), first)
    rest = rest[np.lexsort((rest, -duals[rest]))]
    return np.concatenate([first, rest])


def _labels_map(labels):
    if isinstance(labels, dict):
        mapping = {str(choice): label for choice, label in labels.items()}
    else:
        labels = list(labels)
        mapping = {str(label): label for label in labels}
        if len(mapping) != len(labels):
            raise ValueError(f"labels {labels!r} repeat a value once written as text, "
                             "as Label Studio's choices are")
    if not mapping:
        raise ValueError("labels is empty: give the classes, e.g. labels=range(10)")
    return mapping


@dataclass
class PushReport:
    """What :meth:`LabelStudioBridge.push_scores` sent."""

    model_version: str
    task_ids: list = field(default_factory=list)  # in priority order: label the first first
    scores: list = field(default_factory=list)


@dataclass
class PullReport:
    """What :meth:`LabelStudioBridge.pull` taught and what it left out."""

    taught: dict = field(default_factory=dict)      # task id -> label taught now
    conflicts: dict = field(default_factory=dict)   # task id -> the labels that disagree
    unusable: dict = field(default_factory=dict)    # task id -> why (no single choice)
    changed_after_teach: dict = field(default_factory=dict)  # task id -> (taught, now)
    waiting: dict = field(default_factory=dict)     # task id -> (annotators, overlap)
    second_opinions: dict = field(default_factory=dict)  # labeled task id -> new choices


class LabelStudioBridge(JournaledBridge):
    """A modAL ``ActiveLearner`` and a Label Studio project whose tasks are its pool.

    Parameters
    ----------
    learner : modAL ActiveLearner
        Its estimator a fitted PDCL net (or a Pipeline ending in one) for
        :meth:`push_scores`; :meth:`pull` teaches it.
    project : int
        The Label Studio project id.
    X_pool : array-like of shape (n_tasks, ...)
        The features of the pool, one row per task.
    task_ids : sequence of int, shape (n_tasks,)
        The Label Studio task id of each row of ``X_pool`` (unique).
    labels : sequence or dict
        The known classes: a sequence of labels (the choice ``str(label)`` in Label Studio
        is taught as ``label``) or a dict ``{choice value: label}``. An annotation with any
        other choice is an error.
    url, api_key : str
        The server and a personal access token (Label Studio: Account & Settings >
        Personal Access Token; 1.23 and later refuse the legacy tokens by default). Or
        ``client``: a ``label_studio_sdk.LabelStudio`` client.
    from_name : str or None
        The name of the ``Choices`` control to read; None reads every choices result.

    Notes
    -----
    What the bridge has taught is kept on the learner itself, in
    ``learner.label_studio_taught_`` (``{project: {task id: {"choice", "annotations"}}}``, the
    project known by its id and creation time),
    written only after ``teach`` succeeded. The record travels with the model it
    describes: pickle the learner and it remembers; a learner started afresh (or
    restored from before a pull) is taught those annotations again, which it needs,
    instead of losing them. A task is taught once: later annotations of a taught task
    are never taught, and a different label there is reported in
    :class:`PullReport` ``.changed_after_teach``. With ``journal`` (a
    :class:`modal_ally.journal.Journal` keyed by task id, or a file path) the journal is
    the record instead, and later annotations are second opinions taught by consensus.
    """

    def __init__(self, learner, project, X_pool, task_ids, *, labels, url=None, api_key=None,
                 client=None, from_name=None, journal=None):
        task_ids = np.asarray(task_ids)
        if task_ids.ndim != 1 or task_ids.dtype.kind not in "iu":
            raise TypeError(f"task_ids must be a 1-d sequence of integers, got {task_ids!r}"[:200])
        if len(X_pool) != task_ids.shape[0]:
            raise ValueError(f"X_pool has {len(X_pool)} rows but task_ids has "
                             f"{task_ids.shape[0]}: give one task id per row")
        if np.unique(task_ids).shape[0] != task_ids.shape[0]:
            raise ValueError("task_ids repeat a task: give each task one row of X_pool")
        self.learner, self.project, self.X_pool = learner, int(project), X_pool
        self.task_ids, self.labels, self.from_name = task_ids, _labels_map(labels), from_name
        self._row_of = {int(task): row for row, task in enumerate(task_ids)}
        self._project_key, self._model_version = None, None
        if client is None:
            if url is None or api_key is None:
                raise ValueError("give url and api_key (a personal access token), or client")
            self.url = base_url(url)
            client = connect(self.url, check_api_key(api_key), check=False)
        else:
            wrapper = getattr(client, "_client_wrapper", None)
            self.url = str(url or (wrapper.get_base_url() if wrapper else "the server"))
        self.client = client
        self.journal = None if journal is None else open_journal_for(journal, X_pool, task_ids)

    def _call(self, what, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, with the SDK's errors turned into clear ones."""
        return call_sdk(self.url, what, fn, *args, **kwargs)

    # ------------------------------------------------------------------ ledger
    @property
    def _key(self):
        """The project's identity: its id and creation time (read once from the server),
        the same whichever URL reaches it (localhost or 127.0.0.1), and different for a
        project of the same id on another server."""
        if self._project_key is None:
            found = self._call(f"reading project {self.project}", self.client.projects.get,
                               id=self.project)
            self._project_key = f"project {self.project} created {found.created_at}"
        return self._project_key

    @property
    def taught(self) -> dict:
        """``{task id: {"choice": ..., "annotations": [...]}}`` taught to the learner
        (with a journal: ``{task id: {"label": ...}}``, from the journal)."""
        if self.journal is not None:
            return self._journal_taught()
        return dict((getattr(self.learner, LEDGER_ATTRIBUTE, None) or {}).get(self._key, {}))

    def _record(self, entries):
        books = dict(getattr(self.learner, LEDGER_ATTRIBUTE, None) or {})
        books[self._key] = {**books.get(self._key, {}), **entries}
        setattr(self.learner, LEDGER_ATTRIBUTE, books)

    def record_taught(self, task_ids):
        """Record tasks the learner already has (e.g. its initial labeled set came from
        them), so that :meth:`pull` neither teaches them nor calls them missing."""
        if self.journal is not None:
            raise ValueError("with a journal, teach the tasks the learner starts with through "
                             "it (journal.teach(learner, rows, labels)): it is the record")
        self._record({int(task): {"choice": None, "annotations": []} for task in task_ids})

    def _rows(self, rows):
        X = self.X_pool
        if len(rows) == len(X) and np.array_equal(rows, np.arange(len(X))):
            return X  # no copy of a whole pool (a memmap stays on disk)
        return X.iloc[rows] if hasattr(X, "iloc") else X[rows]

    # ------------------------------------------------------------------ push
    def push_scores(self, n_instances, *, model_version=None, set_project_order=True,
                    second_opinions=False, **query_kwargs) -> PushReport:
        """Send the pool's priority to Label Studio as prediction scores.

        Every pool task not yet taught gets one prediction of ``model_version`` (default:
        ``modal_ally-<n labeled>-labels-<UTC time>``, new at every push) with an empty
        result and ``score = rank / n_tasks`` (:func:`annotation_order`,
        :func:`priority_scores`): the learner's query of ``n_instances`` first, scores
        from 0.0. With ``set_project_order`` the project's sampling becomes
        "Uncertainty sampling" and its model version this one, so annotators are served
        the lowest score first. ``query_kwargs`` go to ``learner.query`` (e.g.
        ``random_state``). With ``second_opinions`` (needs a journal) the round's
        ``n_instances`` annotations are split by :func:`modal_ally.next_annotations`
        between new tasks and labeled tasks sent back to one more person
        (:meth:`ask_again`): those come first, then the new ones, then the rest.
        """
        from label_studio_sdk.types import PredictionRequest

        if second_opinions and self.journal is None:
            raise ValueError("second opinions need a journal: LabelStudioBridge(..., "
                             "journal='answers.sqlite')")
        rows, model_version = self._untaught_rows(), model_version or self._new_version()
        if rows.size == 0:
            return PushReport(model_version)
        again = np.zeros(0, dtype=np.int64)
        if second_opinions:
            again, first = self._second_opinion_order(rows, n_instances, query_kwargs)
            order = rows[_then_by_dual(self.learner, self._rows(rows), first)]
        else:
            order = rows[annotation_order(self.learner, self._rows(rows),
                                          min(n_instances, rows.size), **query_kwargs)]
        tasks = self.task_ids[np.concatenate([again, order])]
        scores = np.arange(tasks.size) / tasks.size
        requests = [PredictionRequest(task=int(task), result=[], score=float(score),
                                      model_version=model_version)
                    for task, score in zip(tasks, scores)]
        for start in range(0, len(requests), PUSH_CHUNK):
            self._call("pushing prediction scores", self.client.projects.import_predictions,
                       id=self.project, request=requests[start:start + PUSH_CHUNK])
        self.ask_again(self.task_ids[again])
        if set_project_order:
            self._call("setting the project's sampling and model version",
                       self.client.projects.update, id=self.project,
                       sampling="Uncertainty sampling", model_version=model_version)
        self._model_version = model_version
        return PushReport(model_version, tasks.tolist(), scores.tolist())

    def _untaught_rows(self):
        if self.journal is not None:
            return self.journal.unlabeled()
        taught = self.taught
        return np.array([row for row, task in enumerate(self.task_ids)
                         if int(task) not in taught], dtype=np.int64)

    def _new_version(self):
        y_training = getattr(self.learner, "y_training", None)
        n_labeled = len(self.journal.labeled) if self.journal is not None else \
            0 if y_training is None else len(y_training)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        return f"modal_ally-{n_labeled}-labels-{stamp}"

    # ------------------------------------------------------------------ pull
    def _choice(self, annotation):
        """The one choice an annotation made, or None (none, several, or not choices)."""
        choices = [choice for item in (_field(annotation, "result") or [])
                   if _field(item, "type") == "choices"
                   and self.from_name in (None, _field(item, "from_name"))
                   for choice in (_field(item, "value") or {}).get("choices", [])]
        return choices[0] if len(choices) == 1 else None

    def _sort(self, tasks, report):
        """New labels ``{task: (choice, annotation ids)}`` and the errors of ``tasks``."""
        taught, new, missing, unknown = self.taught, {}, [], []
        for task in tasks:
            task_id = int(_field(task, "id"))
            made = {int(_field(a, "id")): self._choice(a) for a in _field(task, "annotations") or []
                    if not _field(a, "was_cancelled")}
            choices = sorted({choice for choice in made.values() if choice is not None})
            if not made:
                continue
            if not choices:
                report.unusable[task_id] = "no annotation with exactly one choice"
            elif task_id in taught:
                before = taught[task_id]["choice"]
                if before is not None and choices != [before]:
                    report.changed_after_teach[task_id] = (before, choices)
            elif task_id not in self._row_of:
                missing.append(task_id)
            elif [c for c in choices if c not in self.labels]:
                unknown += [(task_id, c) for c in choices if c not in self.labels]
            elif len(choices) > 1:
                report.conflicts[task_id] = choices
            else:
                new[task_id] = (choices[0], sorted(a for a, c in made.items() if c is not None))
        return new, missing, unknown

    def _raise_for(self, missing, unknown):
        problems = []
        if missing:
            problems.append(
                f"tasks {missing[:20]} have annotations but are not in the pool given to the "
                "bridge (X_pool, task_ids): add their features, or call record_taught() for "
                "tasks the learner already has")
        if unknown:
            problems.append(
                "annotations choose labels outside the known classes "
                f"{sorted(self.labels)[:20]}: " + ", ".join(
                    f"task {task} chose {choice!r}" for task, choice in unknown[:20]))
        if problems:
            raise ValueError(f"nothing was taught from Label Studio project {self.project}: "
                             + "; ".join(problems))

    def pull(self) -> PullReport:
        """Read the finished annotations and teach the new ones, in one ``teach``.

        A task is new when it has annotations (not cancelled), is not yet taught, and
        its annotations agree on one choice. Tasks whose annotations disagree, or choose
        nothing usable, are left out and reported (with a warning). An annotation of a
        task missing from the pool or with a label outside ``labels`` raises ValueError
        and teaches nothing; so does a failed ``teach`` (the learner is left as it was).

        With a journal: every annotation (not cancelled, one choice) of a task whose
        distinct annotators reach its ``overlap`` is journaled once, then
        ``Journal.teach`` teaches every journaled answer not yet taught; a task's label is
        the consensus of its answers (disagreements and later answers included). Tasks
        still waiting for their overlap are reported in ``waiting``, labeled tasks that
        got new answers in ``second_opinions``.
        """
        tasks = self._call("reading the annotated tasks", lambda: list(
            self.client.tasks.list(project=self.project, query=_ANNOTATED, fields="all")))
        report = PullReport()
        if self.journal is not None:
            return self._warn_left_out(self._pull_journaled(tasks, report), journaled=True)
        new, missing, unknown = self._sort(tasks, report)
        self._raise_for(missing, unknown)
        if new:
            rows = np.array([self._row_of[task] for task in new], dtype=np.int64)
            y = np.asarray([self.labels[choice] for choice, _ in new.values()])
            self.learner.teach(self._rows(rows), y)
            self._record({task: {"choice": choice, "annotations": ids}
                          for task, (choice, ids) in new.items()})
            report.taught = {task: self.labels[choice] for task, (choice, _) in new.items()}
        return self._warn_left_out(report)

    @staticmethod
    def _warn_left_out(report, journaled=False):
        left = {"have no single choice": report.unusable} if journaled else {
            "disagree": report.conflicts, "have no single choice": report.unusable,
            "changed after they were taught (not taught again)": report.changed_after_teach}
        said = [f"{len(ids)} tasks {why} ({sorted(ids)[:10]})" for why, ids in left.items() if ids]
        if said:
            warnings.warn("Label Studio annotations left out: " + "; ".join(said),
                          UserWarning, stacklevel=3)
        return report
