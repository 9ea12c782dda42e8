"""Where the paper's ALLY loses (issue 7, "Diagnosis"): measurements on labeled sets.

For every task, seed, labeled-set size ``n`` (a uniform draw from the pool, as the
initial set of the loops) and training budget, a PDCLNet (the paper's defaults:
epsilon 0.2, dual_lr 0.05, MLP 2x256 or the small CNN) is fitted and the rest of the pool
is scored. The benchmark knows every label, so each score is compared with what the pool
points are worth to the current model, their true loss ``l(f(x), y)``:

- Spearman correlation with the true loss of: the predicted multiplier ``lambda_hat``
  (the pool's label-conditional dual head, what the default rule reads), the paper's
  head's (``lambda_hat_paper``, what ``method="paper"`` reads), ``1 - margin``, the
  entropy, BADGE's gradient norm ``|p - onehot(yhat)| |e|``;
- the dual state at the end of training: the share of active constraints
  (``lambda > 0``) and the mean multiplier; the share of the pool whose predicted
  multiplier is 0 (a draw weighted by ``lambda_hat`` alone never reaches it);
- test accuracy;
- one batch of b = 100 drawn by the paper's rule (k-means with k = b, argmax
  ``lambda_hat`` per cluster), by the default (k-means++ in gradient space, draws
  weighted by the shrunk duals), by BADGE and at random: how many classes it covers
  (normalized entropy of its class histogram), its mean true loss, and for the paper's
  rule how far its picks are from their cluster center (percentile among the cluster's
  members: 100 = the farthest).

Budgets: ``epochs50`` (the paper's 50 epochs: 100 optimizer steps at n = 100) and
``steps500`` (at least 500 optimizer steps: ``max(50, ceil(500 / batches per epoch))``
epochs).

Writes ``diagnosis.csv`` (one row per fit), ``diagnosis.md`` (means over seeds) and
``diagnosis.png`` to ``--out`` (default ``docs/results/diagnosis``).

Example::

    python -m benchmarks.research.diagnose --data-dir ../shared/data --seeds 3
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from benchmarks.harness.datasets import load_dataset
from benchmarks.harness.estimators import BATCH_SIZE, build_estimator
from benchmarks.harness.loop import initial_indices
from benchmarks.harness.metrics import evaluate
from benchmarks.harness.registry import parse_names
from benchmarks.research.ally_candidates import ally_scores
from modal_ally.clustering import kmeans
from modal_ally.strategies import kmeans_pp_gradient_selection, priority_order
from modal_ally.strategies.ally import dual_weighted_selection, validate_ally_query
from modal_ally.strategies.badge import _class_probabilities

TASKS = {"manyclass": dict(max_pool=5000), "digits": {},
         "mnist": dict(max_pool=5000, max_test=5000)}
SIZES = (100, 300, 900)
BUDGETS = ("epochs50", "steps500")
BATCH = 100


def _epochs(budget, n):
    if budget == "epochs50":
        return 50
    return max(50, math.ceil(500 / math.ceil(n / BATCH_SIZE)))


def _class_entropy(labels, n_classes):
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum() / np.log(n_classes))


def _spearman(a, b):
    return float(spearmanr(a, b).statistic)


def _batches(net, X_rest, embeddings, scores, probs, rng_seed):
    """Indices into X_rest of one batch per rule (``scores``: the paper head's)."""
    labels, sq_dist = kmeans(embeddings, BATCH, random_state=rng_seed, n_components=32)
    paper = priority_order(scores, labels, BATCH)[:BATCH]
    query = validate_ally_query(net, X_rest, BATCH, strategy="diagnose", random_state=rng_seed,
                                n_clusters=None, max_dual=None, skip_top_quantile=None,
                                cluster_components=32)
    default, _ = dual_weighted_selection(query)
    badge, _ = kmeans_pp_gradient_selection(probs, embeddings, BATCH, random_state=rng_seed)
    rand = np.random.default_rng(rng_seed).choice(len(X_rest), BATCH, replace=False)
    # distance percentile of each paper pick inside its cluster
    pct = []
    for i in paper:
        members = np.flatnonzero(labels == labels[i])
        pct.append(100.0 * (sq_dist[members] < sq_dist[i]).mean())
    return {"paper": paper, "default": default, "badge": badge, "random": rand}, \
        float(np.mean(pct))


def measure(data, seed, n, budget):
    labeled = initial_indices(data.n_pool, n, seed)
    rest = np.setdiff1d(np.arange(data.n_pool), labeled)
    epochs = _epochs(budget, n)
    net = build_estimator("ally", data, epochs=epochs, seed=seed)
    start = time.perf_counter()
    net.fit(data.X_pool[labeled], data.y_pool[labeled])
    fit_s = time.perf_counter() - start
    X_rest, y_rest = data.X_pool[rest], data.y_pool[rest]
    embeddings, scores = ally_scores(net, X_rest)
    embeddings = torch.as_tensor(embeddings)
    probs = _class_probabilities(net, embeddings)
    p = probs.cpu().double().numpy()
    loss = net.per_sample_loss(X_rest, y_rest)
    top2 = np.sort(p, axis=1)[:, -2:]
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)
    a = p.copy()
    a[np.arange(len(a)), a.argmax(axis=1)] -= 1
    grad_norm = np.linalg.norm(a, axis=1) * embeddings.norm(dim=1).cpu().numpy()
    paper_scores = net.predict_dual_from_embeddings(embeddings, head="paper").numpy()
    row = {"task": data.name, "seed": seed, "n_labels": n, "budget": budget, "epochs": epochs,
           "steps": epochs * math.ceil(n / BATCH_SIZE), "fit_s": fit_s,
           "test_acc": evaluate(net, data.X_test, data.y_test, data.task),
           "active_fraction": float((net.lambdas_ > 0).mean()),
           "lambda_mean": float(net.lambdas_.mean()),
           "train_spearman_head": _spearman(
               net.predict_dual_from_embeddings(net.train_embeddings_).numpy(), net.lambdas_),
           "rho_lambda": _spearman(scores, loss),
           "rho_lambda_paper": _spearman(paper_scores, loss),
           # pool rows a draw ~ lambda_hat * D^2 can never reach
           "pool_zero_fraction": float((scores <= 1e-6).mean()),
           "rho_margin": _spearman(top2[:, 0] - top2[:, 1], loss),
           "rho_entropy": _spearman(entropy, loss), "rho_gradnorm": _spearman(grad_norm, loss)}
    batches, pct = _batches(net, X_rest, embeddings, paper_scores, probs, seed)
    row["paper_pick_distance_pct"] = pct
    for rule, idx in batches.items():
        row[f"class_entropy_{rule}"] = _class_entropy(y_rest[idx], data.n_classes)
        row[f"batch_loss_{rule}"] = float(loss[idx].mean())
    return row


def plot(frame, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(frame["task"]))
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.2 * len(tasks), 7), squeeze=False)
    for j, task in enumerate(tasks):
        sub = frame[(frame.task == task) & (frame.budget == "epochs50")]
        mean = sub.groupby("n_labels").mean(numeric_only=True)
        ax = axes[0, j]
        for col, label in (("rho_lambda", "lambda_hat (ALLY, pool head)"),
                           ("rho_lambda_paper", "lambda_hat (paper's head)"),
                           ("rho_margin", "1 - margin"),
                           ("rho_entropy", "entropy"), ("rho_gradnorm", "BADGE grad norm")):
            ax.plot(mean.index, mean[col], marker="o", label=label)
        steps = frame[(frame.task == task) & (frame.budget == "steps500")]
        ax.plot(steps.groupby("n_labels").mean(numeric_only=True)["rho_lambda"],
                ls="--", marker="x", color="C0", label="lambda_hat, >= 500 steps")
        ax.set_title(f"{task}: Spearman with true pool loss")
        ax.set_xlabel("labeled samples")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax = axes[1, j]
        for rule in ("paper", "default", "badge", "random"):
            ax.plot(mean.index, mean[f"class_entropy_{rule}"], marker="o", label=rule)
        ax.plot(mean.index, mean["active_fraction"], ls=":", color="k",
                label="active fraction")
        ax.set_title(f"{task}: class entropy of a b=100 batch")
        ax.set_xlabel("labeled samples")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize="small")
    axes[1, 0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.research.diagnose",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="folder with MNIST/raw (mnist)")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="docs/results/diagnosis")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    start = time.perf_counter()
    for task in parse_names(args.tasks):
        data = load_dataset(task, data_dir=args.data_dir, random_state=0, **TASKS[task])
        for seed in range(args.seeds):
            for n in SIZES:
                for budget in BUDGETS:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        rows.append(measure(data, seed, n, budget))
                    print({k: (round(v, 3) if isinstance(v, float) else v)
                           for k, v in rows[-1].items()}, flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "diagnosis.csv", index=False, float_format="%.5g")
    summary = frame.groupby(["task", "budget", "n_labels"]).mean(numeric_only=True)
    summary = summary.drop(columns=["seed"]).round(3)
    (out / "diagnosis.md").write_text(
        f"# ALLY diagnosis ({args.seeds} seeds, means; "
        "`python -m benchmarks.research.diagnose`)\n\n"
        + summary.reset_index().to_markdown(index=False) + "\n")
    plot(frame, out / "diagnosis.png")
    print(f"wall {time.perf_counter() - start:.0f} s, torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
