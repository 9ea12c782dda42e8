"""What a small labeled set with wrong labels does to one fit: the audit's flags, and the picks.

For each task, symmetric noise rate and seed, ``--size`` random pool rows get an oracle's
answers (a share ``rate`` of them another class, ``benchmarks.harness.label_noise.flip``)
and the default PDCL net (the loops' network, ``build_estimator``) is fitted on them, as
in a round of ``benchmarks.noisy_oracle``. Recorded per fit:

- the audit: the wrong rows; the default score's AUROC and precision among its top k (k the
  wrong rows' count); how many rows ``find_label_issues`` flags with ``threshold="auto"``
  and ``"outliers"``, and their precision and recall;
- the picks: the pool's mean top probability; the coefficient of variation of
  ``|p - onehot(argmax p)|``, the output factor of the gradient embedding that carries the
  uncertainty in BADGE's draw and ALLY's (``factor_cv``; ``sharp_factor_cv`` with ``p``
  at the default draw's temperature, ``DRAW_TEMPERATURE``); of the ``--batch`` picks of
  ALLY's default, of the same draw at temperature 1 (``ally-t1``, the 0.4 default) and of
  BADGE, how many are among the ``--batch`` rows of smallest margin and their mean
  margin percentile (0: the most uncertain row of the pool).

Example::

    python -m benchmarks.research.noisy_fits --datasets digits,mnist \
        --data-dir ../shared/data --seeds 5 --threads 1 --out docs/results/noisy_fits
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.harness.cli import parse_int_list
from modal_ally._torch_utils import torch_threads

__all__ = ["one_fit", "main"]

#: Pool rows every task is cut to (MNIST's pool as in the noisy-oracle tables).
MAX_POOL = 5000


def _flags(learner, wrong):
    """The audit's figures for one fit (see the module docstring)."""
    from sklearn.metrics import roc_auc_score

    from modal_ally import find_label_issues, rank_label_issues

    order, scores = rank_label_issues(learner)
    values = np.empty(len(order))
    values[order] = scores
    k = int(wrong.sum())
    out = {"wrong": k, "auroc": float(roc_auc_score(wrong, values)) if 0 < k < len(wrong)
           else float("nan"), "top_k_precision": float(wrong[order[:k]].mean()) if k else
           float("nan")}
    for threshold in ("auto", "outliers"):
        flagged = find_label_issues(learner, threshold=threshold)
        hit = int((flagged & wrong).sum())
        out[f"flagged:{threshold}"] = int(flagged.sum())
        out[f"precision:{threshold}"] = hit / max(int(flagged.sum()), 1)
        out[f"recall:{threshold}"] = hit / k if k else float("nan")
    return out


def _picks(learner, X_rest, batch, seed):
    """The pool's flattening and how far ALLY's and BADGE's picks follow the margin."""
    import functools

    import torch

    from modal_ally import ally_query_strategy, badge_query_strategy
    from modal_ally._seeding import gradient_factors
    from modal_ally.strategies.ally import DRAW_TEMPERATURE

    proba = learner.predict_proba(X_rest)
    top = np.sort(proba, axis=1)
    margin = top[:, -1] - top[:, -2]
    factor = np.linalg.norm(proba - np.eye(proba.shape[1])[proba.argmax(axis=1)], axis=1)
    percentile = np.argsort(np.argsort(margin, kind="stable"), kind="stable") / len(margin)
    smallest = set(np.argsort(margin, kind="stable")[:batch].tolist())
    sharp = gradient_factors(torch.as_tensor(proba), DRAW_TEMPERATURE).norm(dim=1).numpy()
    out = {"pool_top_probability": float(top[:, -1].mean()),
           "factor_cv": float(factor.std() / max(factor.mean(), 1e-12)),
           "sharp_factor_cv": float(sharp.std() / max(sharp.mean(), 1e-12))}
    for name, strategy in (("ally", ally_query_strategy),
                           ("ally-t1", functools.partial(ally_query_strategy, temperature=1.0)),
                           ("badge", badge_query_strategy)):
        result = strategy(learner, X_rest, n_instances=batch, random_state=seed)
        picks = np.asarray(result[0] if isinstance(result, tuple) else result).ravel()
        out[f"{name}:among_smallest_margins"] = len(smallest & set(picks.tolist()))
        out[f"{name}:margin_percentile"] = float(percentile[picks].mean())
    return out


def one_fit(data, rate, seed, *, size, batch, epochs):
    """One row of ``rows.jsonl``."""
    from modAL.models import ActiveLearner

    from benchmarks.harness.estimators import build_estimator
    from benchmarks.harness.label_noise import flip
    from modal_ally import ally_query_strategy

    rng = np.random.default_rng([int(seed), int(round(rate * 1000)), 0x0F175])
    rows = rng.choice(len(data.y_pool), size, replace=False)
    rest = np.setdiff1d(np.arange(len(data.y_pool)), rows)
    y_true = np.asarray(data.y_pool)[rows]
    y = flip(y_true, np.flatnonzero(rng.random(size) < rate), "symmetric", rng,
             n_classes=data.n_classes)
    learner = ActiveLearner(build_estimator("ally", data, epochs=epochs, seed=seed),
                            ally_query_strategy, X_training=data.X_pool[rows], y_training=y)
    row = {"dataset": data.name, "rate": rate, "seed": seed, "size": size, "batch": batch,
           "epochs": epochs}
    row.update(_flags(learner, y != y_true))
    row.update(_picks(learner, data.X_pool[rest], batch, seed))
    return row


COLUMNS = ("wrong", "auroc", "top_k_precision", "flagged:auto", "recall:auto",
           "precision:auto", "flagged:outliers", "recall:outliers", "precision:outliers",
           "pool_top_probability", "factor_cv", "sharp_factor_cv",
           "ally:among_smallest_margins", "ally:margin_percentile",
           "ally-t1:among_smallest_margins", "ally-t1:margin_percentile",
           "badge:among_smallest_margins", "badge:margin_percentile")


def _summary(rows):
    lines = ["| task | rate | seeds | " + " | ".join(COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(COLUMNS)]
    for name in dict.fromkeys(r["dataset"] for r in rows):
        for rate in sorted({r["rate"] for r in rows if r["dataset"] == name}):
            these = [r for r in rows if r["dataset"] == name and r["rate"] == rate]
            cells = [f"{np.nanmean([r[c] for r in these]):.3f}" if rate > 0 or c in
                     ("flagged:auto", "flagged:outliers", "pool_top_probability",
                      "factor_cv", "sharp_factor_cv") or c.startswith(("ally", "badge"))
                     else "—"
                     for c in COLUMNS]
            lines.append(f"| {name} | {rate:g} | {len(these)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    from benchmarks.harness.datasets import load_dataset

    parser = argparse.ArgumentParser(prog="python -m benchmarks.research.noisy_fits",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="digits,mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rates", default="0,10,20,30", help="noise rates in percent")
    parser.add_argument("--size", type=int, default=300, help="labeled rows")
    parser.add_argument("--batch", type=int, default=100, help="picks of each strategy")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="results/noisy_fits")
    args = parser.parse_args(argv)
    rates = [r / 100 for r in parse_int_list(args.rates, name="--rates", minimum=0)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with torch_threads(args.threads):
        for name in args.datasets.split(","):
            data = load_dataset(name, data_dir=args.data_dir, max_pool=MAX_POOL)
            for rate in rates:
                for seed in range(args.seeds):
                    rows.append(one_fit(data, rate, seed, size=args.size, batch=args.batch,
                                        epochs=args.epochs))
                    print(json.dumps(rows[-1]), flush=True)
    (out / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "summary.md").write_text(
        f"`python -m benchmarks.research.noisy_fits --datasets {args.datasets}"
        + (f" --data-dir {args.data_dir}" if args.data_dir else "")
        + f" --seeds {args.seeds} --rates {args.rates} --size {args.size} "
        f"--batch {args.batch} --epochs {args.epochs} --threads {args.threads} --out "
        f"{args.out}`\n\n" + _summary(rows))
    return rows


if __name__ == "__main__":
    main()
