"""What the dual step size costs the predictor: PDCL nets against unconstrained nets.

For each data set, seed and labeled-set size, one random labeled set is drawn; on it the
unconstrained net (the baselines' net) and PDCL nets with each ``dual_lr`` are trained
(the same module, optimizer, epochs and torch seed: only the multipliers differ). The
table gives the test metric of each, its ratio to the unconstrained net's, and how well
the dual head's predicted multipliers on the rest of the pool rank the true per-sample
loss there (Spearman). ALLY's selection reads only that ranking; the primal objective
``mean((1 + lambda_i) l_i)`` reads the multipliers' size.

Example::

    python -m benchmarks.research.dual_step --datasets parkinsons,diabetes --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from benchmarks.harness.datasets import load_dataset
from benchmarks.harness.estimators import build_estimator
from benchmarks.harness.metrics import evaluate, metric_info
from benchmarks.harness.registry import Arm, parse_names
from benchmarks.harness.reporting import write_csv
from modal_ally._torch_utils import torch_threads

__all__ = ["compare", "main"]


def _dual_ranking(net, data, rest):
    """Spearman correlation of predicted lambda with the true loss on the unlabeled rows."""
    from modal_ally.strategies import ally_scores

    _, scores = ally_scores(net, data.X_pool[rest])
    loss = net.per_sample_loss(data.X_pool[rest], data.y_pool[rest])
    return float(spearmanr(scores, loss)[0]) if np.ptp(scores) > 0 else float("nan")


def compare(data, *, sizes, seeds, dual_lrs, epochs=50):
    """Rows of (size, seed, net, dual_lr, metric, ratio to unconstrained, Spearman)."""
    rows = []
    for seed in seeds:
        rng = np.random.RandomState(seed)
        for size in sizes:
            labeled = rng.choice(data.n_pool, size, replace=False)
            rest = np.setdiff1d(np.arange(data.n_pool), labeled)
            plain = build_estimator("random", data, epochs=epochs, seed=seed)
            plain.fit(data.X_pool[labeled], data.y_pool[labeled])
            reference = evaluate(plain, data.X_test, data.y_test, data.task)
            rows.append({"n_labels": size, "seed": seed, "net": "unconstrained",
                         "dual_lr": 0.0, "metric": reference, "ratio": 1.0,
                         "spearman": float("nan")})
            for dual_lr in dual_lrs:
                net = build_estimator(Arm("ally", "ally"), data, epochs=epochs, seed=seed,
                                      dual_lr=dual_lr)
                net.fit(data.X_pool[labeled], data.y_pool[labeled])
                metric = evaluate(net, data.X_test, data.y_test, data.task)
                rows.append({"n_labels": size, "seed": seed, "net": "PDCL",
                             "dual_lr": dual_lr, "metric": metric,
                             "ratio": metric / reference,
                             "spearman": _dual_ranking(net, data, rest)})
    return rows


def summarize(rows, dataset, task):
    """Markdown: per size and net, the mean metric, mean ratio and mean Spearman."""
    metric, higher = metric_info(task)
    lines = [f"### {dataset}", "",
             f"| labels | net | dual_lr | test {metric} | ratio to unconstrained "
             "(mean, min-max) | Spearman(lambda_hat, pool loss) |", "|---|---|---|---|---|---|"]
    for size in sorted({r["n_labels"] for r in rows}):
        for net, dual_lr in dict.fromkeys((r["net"], r["dual_lr"]) for r in rows):
            group = [r for r in rows if r["n_labels"] == size and r["net"] == net
                     and r["dual_lr"] == dual_lr]
            ratio = np.array([r["ratio"] for r in group])
            rho = np.array([r["spearman"] for r in group])
            lines.append(
                f"| {size} | {net} | {dual_lr if net == 'PDCL' else '-'} | "
                f"{np.mean([r['metric'] for r in group]):.4g} | {ratio.mean():.3f} "
                f"({ratio.min():.3f}-{ratio.max():.3f}) | "
                + ("-" if np.isnan(rho).all() else f"{np.nanmean(rho):.2f}") + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.research.dual_step",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="parkinsons,diabetes")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--sizes", default="100,300,600,900")
    parser.add_argument("--dual-lrs", default="0.05,0.02,0.01,0.005")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="results/dual_step")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start, parts, everything = time.perf_counter(), [], []
    with torch_threads(args.threads):
        for name in parse_names(args.datasets):
            data = load_dataset(name, data_dir=args.data_dir, random_state=0)
            sizes = [s for s in map(int, parse_names(args.sizes)) if s < data.n_pool]
            rows = compare(data, sizes=sizes, seeds=range(args.seeds),
                           dual_lrs=[float(v) for v in parse_names(args.dual_lrs)],
                           epochs=args.epochs)
            everything += [{"dataset": name, **row} for row in rows]
            parts.append(summarize(rows, name, data.task))
    seconds = time.perf_counter() - start
    header = (f"# PDCL nets against unconstrained nets on the same labeled sets\n\n"
              f"`python -m benchmarks.research.dual_step --datasets {args.datasets} --sizes "
              f"{args.sizes} --dual-lrs {args.dual_lrs} --seeds {args.seeds}`: "
              f"{args.seeds} seeds, {args.epochs} epochs, torch {torch.__version__}, "
              f"{args.threads} thread(s), {seconds:.0f} s.\n\n")
    markdown = header + "\n".join(parts)
    (out / "dual_step.md").write_text(markdown)
    write_csv(out / "dual_step.csv", list(everything[0]), everything)
    print(markdown)
    return everything


if __name__ == "__main__":
    main()
