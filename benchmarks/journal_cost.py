"""What journaling the answers costs per round, beside the fit's time.

    python -m benchmarks.journal_cost --rounds 20 --batch 50 --threads 1

A modAL ``ActiveLearner`` with a PDCL net (ALLY's query) labels the digits for
``--rounds`` rounds of ``--batch`` answers, once through a :class:`modal_ally.journal.Journal`
per ``--synchronous`` mode (FULL, the journal's default, and NORMAL for comparison) and
once with plain modAL ``teach`` (no journal), the same picks in every arm. Per round:
the seconds of the durable write of the answers (``Journal.record``: one transaction,
one fsync under FULL), of the journal's bookkeeping in ``Journal.teach`` (everything
but the fit), of the fit itself, and of modAL's ``teach`` without a journal; and at the
end the seconds :meth:`Journal.resume` takes to rebuild the learner (one fit) and the
file's size. Writes ``journal_cost.csv`` (one row per arm and round) and ``.md`` to
``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness.reporting import markdown_table, write_atomic, write_csv

FIELDS = ("arm", "round", "labeled", "record_s", "bookkeeping_s", "fit_s", "teach_s")


def _learner(max_epochs, fit_seconds):
    from modAL.models import ActiveLearner

    from modal_ally import PDCLNet, ally_query_strategy

    net = PDCLNet(max_epochs=max_epochs, random_state=0)
    fit = net.fit

    def timed_fit(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fit(*args, **kwargs)
        finally:
            fit_seconds.append(time.perf_counter() - start)

    net.fit = timed_fit
    return ActiveLearner(estimator=net, query_strategy=ally_query_strategy)


def journaled_arm(X, y, picks, args, synchronous, folder):
    from modal_ally.journal import Journal

    path, fits, rows = Path(folder) / f"journal-{synchronous}.sqlite", [], []
    journal = Journal(path, X)
    journal._conn.execute(f"PRAGMA synchronous = {synchronous}")
    learner = _learner(args.max_epochs, fits)
    for round, chosen in enumerate(picks):
        start = time.perf_counter()
        journal.record(chosen, y[chosen], annotator="bench", round=round)
        recorded = time.perf_counter()
        journal.teach(learner)
        taught = time.perf_counter()
        rows.append({"arm": f"journal ({synchronous})", "round": round,
                     "labeled": len(learner.y_training), "record_s": recorded - start,
                     "bookkeeping_s": taught - recorded - fits[-1], "fit_s": fits[-1],
                     "teach_s": taught - start})
    journal.close()
    start = time.perf_counter()
    with Journal(path, X) as again:
        again.resume(_learner(args.max_epochs, []))
    return rows, time.perf_counter() - start, os.path.getsize(path)


def plain_arm(X, y, picks, args):
    fits, rows = [], []
    learner = _learner(args.max_epochs, fits)
    for round, chosen in enumerate(picks):
        start = time.perf_counter()
        learner.teach(X[chosen], y[chosen])
        rows.append({"arm": "modAL teach (no journal)", "round": round,
                     "labeled": len(learner.y_training), "record_s": 0.0,
                     "bookkeeping_s": time.perf_counter() - start - fits[-1],
                     "fit_s": fits[-1], "teach_s": time.perf_counter() - start})
    return rows


def the_picks(X, y, args):
    """The rows of each round: one journaled-free session's ALLY queries."""
    learner = _learner(args.max_epochs, [])
    rest, picks = np.arange(len(X)), [np.arange(args.batch)]
    learner.teach(X[picks[0]], y[picks[0]])
    rest = rest[args.batch:]
    for round in range(1, args.rounds):
        idx, _ = learner.query(X[rest], n_instances=args.batch, random_state=round)
        picks.append(rest[np.asarray(idx)])
        rest = np.setdiff1d(rest, picks[-1])
        learner.teach(X[picks[-1]], y[picks[-1]])
    return picks


def _summary(rows, extras):
    out = []
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = [r for r in rows if r["arm"] == arm]
        resume, size = extras.get(arm, (None, None))
        share = np.median([(r["record_s"] + r["bookkeeping_s"]) / r["fit_s"] for r in mine])
        out.append([arm, len(mine)] + [f"{1000 * np.median([r[k] for r in mine]):.2f}"
                                       for k in ("record_s", "bookkeeping_s", "fit_s")]
                   + [f"{100 * share:.2f}", "" if resume is None else f"{resume:.2f}",
                      "" if size is None else f"{size / 1024:.0f}"])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="docs/results/journal_cost")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    picks = the_picks(X, y, args)
    rows, extras = plain_arm(X, y, picks, args), {}
    with tempfile.TemporaryDirectory(dir=args.out if os.path.isdir(args.out) else None) as tmp:
        for synchronous in ("FULL", "NORMAL"):
            arm, resume_s, size = journaled_arm(X, y, picks, args, synchronous, tmp)
            rows += arm
            extras[arm[0]["arm"]] = (resume_s, size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "journal_cost.csv", FIELDS, rows)
    table = "\n".join(markdown_table(
        ["arm", "rounds", "write of the answers (ms, median)", "other bookkeeping (ms)",
         "fit (ms)", "journal / fit (%)", "resume (s)", "file (KiB)"], _summary(rows, extras)))
    command = " ".join(sys.argv[1:] if argv is None else argv)
    write_atomic(out / "journal_cost.md",
                 f"# What journaling costs per round (digits, {args.batch} answers a round, "
                 f"PDCLNet max_epochs={args.max_epochs}, torch threads {args.threads})\n\n"
                 f"Command: `python -m benchmarks.journal_cost {command}`\n\n{table}\n\n"
                 "Medians over the rounds. 'other bookkeeping' is the journal's teach less "
                 "the fit (for plain modAL: its teach less the fit). Resume: rebuilding "
                 "the learner from the journal (one fit on every labeled row).\n")
    return rows


if __name__ == "__main__":
    main()
