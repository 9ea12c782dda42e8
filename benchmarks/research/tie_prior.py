"""Who should decide a tie between two answers: the net that fitted the first, or the neighbours?

For each seed and symmetric noise rate, ``--size`` random digits rows are labeled by an
oracle that errs at that rate; the default PDCL net is fitted on them; the rows the label
audit flags (``find_label_issues``) get a second answer from the same oracle (a fresh
draw), given through :func:`modal_ally.relabel` once with each ``consensus_prior``. On the
rows whose two answers disagree (a tie), the table gives how often the consensus is the
true label, and how often the first and the second answer are.

Example::

    python -m benchmarks.research.tie_prior --seeds 5 --threads 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.harness.cli import parse_int_list
from benchmarks.harness.label_noise import flip
from modal_ally._torch_utils import torch_threads

__all__ = ["ties", "main"]

PRIORS = ("model", "neighbors")


def _answers(y_true, rate, rng):
    """One oracle answer per row: each wrong with probability ``rate`` (another class)."""
    return flip(y_true, np.flatnonzero(rng.random(len(y_true)) < rate), "symmetric", rng,
                n_classes=10)


def ties(seed, rate, *, size, epochs):
    """One row of the table: the ties of one seed and noise rate, and who got them right."""
    from modAL.models import ActiveLearner
    from sklearn.datasets import load_digits

    from modal_ally import PDCLNet, ally_query_strategy, find_label_issues, relabel

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(y), size, replace=False)
    X, y_true = (X[rows] / 16.0).astype(np.float32), y[rows]
    first = _answers(y_true, rate, rng)
    second = _answers(y_true, rate, rng)
    row = {"seed": seed, "rate": rate, "size": size, "epochs": epochs}
    for prior in PRIORS:
        learner = ActiveLearner(PDCLNet(max_epochs=epochs, random_state=seed),
                                ally_query_strategy, X_training=X, y_training=first)
        flagged = np.flatnonzero(find_label_issues(learner))
        relabel(learner, lambda X_rows, p: second[p], indices=flagged, consensus_prior=prior)
        tied = flagged[second[flagged] != first[flagged]]
        consensus = np.asarray(learner.y_training)[tied]
        row.update(flagged=int(flagged.size), ties=int(tied.size),
                   first_right=float(np.mean(first[tied] == y_true[tied])),
                   second_right=float(np.mean(second[tied] == y_true[tied])))
        row[f"right:{prior}"] = float(np.mean(consensus == y_true[tied]))
    return row


def _cell(rows, key):
    values = np.array([r[key] for r in rows])
    return f"{values.mean():.3f} ({values.min():.2f}-{values.max():.2f})"


def _summary(rows):
    lines = ["| rate | seeds | ties (mean) | first answer right | second answer right | "
             "consensus right, net's prior | consensus right, neighbours' prior |",
             "|---|---|---|---|---|---|---|"]
    for rate in sorted({r["rate"] for r in rows}):
        these = [r for r in rows if r["rate"] == rate]
        lines.append(f"| {rate:g} | {len(these)} | {np.mean([r['ties'] for r in these]):.1f} "
                     f"| {_cell(these, 'first_right')} | {_cell(these, 'second_right')} "
                     f"| {_cell(these, 'right:model')} | {_cell(these, 'right:neighbors')} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.research.tie_prior",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rates", default="10,20,30", help="noise rates in percent")
    parser.add_argument("--size", type=int, default=600, help="labeled rows")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="results/tie_prior")
    args = parser.parse_args(argv)
    rates = [r / 100 for r in parse_int_list(args.rates, name="--rates")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with torch_threads(args.threads):
        for rate in rates:
            for seed in range(args.seeds):
                rows.append(ties(seed, rate, size=args.size, epochs=args.epochs))
                print(json.dumps(rows[-1]), flush=True)
    (out / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "summary.md").write_text(
        f"`python -m benchmarks.research.tie_prior --seeds {args.seeds} --rates {args.rates} "
        f"--size {args.size} --epochs {args.epochs} --threads {args.threads} --out {args.out}`\n\n"
        + _summary(rows))
    return rows


if __name__ == "__main__":
    main()
