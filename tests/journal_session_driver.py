"""A journaled labeling session, run as a subprocess by tests/test_journal.py.

A PDCL net in a modAL learner (ALLY's query) labels the digits: round 0 teaches the
initial rows; every round after queries ``--batch`` unanswered rows (``random_state`` =
the round) and teaches a simulated annotator's answers (wrong on a fixed tenth of the
rows); every ``--relabel-every``-th round asks a second annotator again about the label
audit's top suspects (``Journal.relabel``). The session goes on from the journal's last
round, so running it again after a kill resumes it.

Printed lines (flushed): ``resumed <json>`` (the rebuilt labeled set), ``ack <json>``
after each durable write (the answers' keys and round), ``picks <json>`` per round, and
``done <json>`` (the final labeled set). ``MODAL_ALLY_KILL_AT=<point>:<n>`` makes the
driver SIGKILL itself at the n-th (from 1) occurrence of a point: ``insert`` (inside the
n-th transaction writing answers, as its first answer is inserted), ``commit`` (as an answers
transaction commits), ``teach-record`` (writing what a teach gave the learner), ``fit``
(inside a fit, at the end of its first epoch).
"""

import argparse
import hashlib
import json
import os
import signal
import sys

import numpy as np
import torch
from sklearn.datasets import load_digits
from skorch.callbacks import Callback

from modal_ally import PDCLNet, ally_query_strategy
from modal_ally.journal import Journal

torch.set_num_threads(1)
_COUNTS = {}


def maybe_die(point):
    """SIGKILL this process at the armed occurrence of ``point``."""
    armed = os.environ.get("MODAL_ALLY_KILL_AT", "")
    if not armed:
        return
    where, n = armed.rsplit(":", 1)
    if where == point:
        _COUNTS[point] = _COUNTS.get(point, 0) + 1
        if _COUNTS[point] == int(n):
            os.kill(os.getpid(), signal.SIGKILL)


class KillInFit(Callback):
    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == 1:
            maybe_die("fit")


def trace(statement):
    text = statement.lstrip().upper()
    if text.startswith("INSERT OR IGNORE INTO ANSWERS") and trace.first_insert:
        trace.first_insert = False  # the n-th batch's first answer (one trace per row)
        maybe_die("insert")
    elif text.startswith("COMMIT") and trace.writing_answers:
        maybe_die("commit")
    elif text.startswith("INSERT INTO TEACHES"):
        maybe_die("teach-record")
    if text.startswith("INSERT INTO BATCHES"):
        trace.writing_answers = trace.first_insert = True
    elif text.startswith(("COMMIT", "ROLLBACK")):
        trace.writing_answers = False


trace.writing_answers = trace.first_insert = False


def say(kind, payload):
    print(kind, json.dumps(payload), flush=True)


def true_and_noisy(y, keys):
    """Annotator "a" is wrong on a fixed tenth of the rows; "b" is always right."""
    wrong = (np.asarray(keys) * 7919) % 10 == 3
    return np.where(wrong, (y[keys] + 1) % 10, y[keys])


def make_learner(kind, max_epochs):
    net = PDCLNet(max_epochs=max_epochs, batch_size=128, random_state=0,
                  callbacks=[("kill_in_fit", KillInFit())])
    if kind == "deep":
        from modAL.models import DeepActiveLearner

        return DeepActiveLearner(estimator=net, query_strategy=ally_query_strategy)
    from modAL.models import ActiveLearner

    return ActiveLearner(estimator=net, query_strategy=ally_query_strategy)


def state(journal):
    return {"round": journal.round, "labeled": journal.labeled.tolist(),
            "labels": journal.labels().tolist()}


def digest(journal, learner, X):
    """The labeled set (rows in order, labels) and the model's predictions, hashed."""
    proba = np.asarray(learner.predict_proba(X[:300]), dtype=np.float32)
    return {"round": journal.round, "n": int(journal.labeled.size),
            "model": hashlib.sha1(proba.tobytes()).hexdigest(),
            "labeled": hashlib.sha1(json.dumps(state(journal)["labeled"]).encode()).hexdigest(),
            "labels": hashlib.sha1(json.dumps(state(journal)["labels"]).encode()).hexdigest()}


def run(args):
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    journal = Journal(args.journal, X)
    journal._conn.set_trace_callback(trace)
    learner = journal.resume(make_learner(args.learner, args.max_epochs))
    say("resumed", digest(journal, learner, X) if journal.fits else {"round": -1})
    for round in range(journal.round + 1, args.rounds + 1):
        if round == 0:
            rows = np.arange(args.initial)
        elif args.relabel_every and round % args.relabel_every == 0:
            journal.relabel(learner, lambda X_rows, idx: y[journal.labeled[idx]],
                            n_instances=args.relabel, annotator_id="b", round=round)
            say("ack", {"round": round, "keys": "relabel"})
            say("taught", digest(journal, learner, X))
            continue
        else:
            rows = journal.query(learner, args.batch, random_state=round)
            say("picks", {"round": round, "rows": rows.tolist()})
        journal.record(rows, true_and_noisy(y, rows), annotator="a", round=round)
        say("ack", {"round": round, "keys": rows.tolist()})
        journal.teach(learner)
        say("taught", digest(journal, learner, X))
    say("done", state(journal))
    journal.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--journal", required=True)
    parser.add_argument("--learner", choices=["active", "deep"], default="active")
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--initial", type=int, default=40)
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--relabel-every", type=int, default=6)
    parser.add_argument("--relabel", type=int, default=8)
    parser.add_argument("--max-epochs", type=int, default=2)
    run(parser.parse_args())
    sys.exit(0)
