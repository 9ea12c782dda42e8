"""What leaving out the improbable classes costs the pool dual head's scores.

    python -m benchmarks.research.pool_head_cost --data-dir ../shared/data

The default rule weighs every pool row by the pool head's expectation
``sum_c p_c max(0, lambda_hat(x, c))`` over the net's predicted class probabilities.
Evaluating the head on every (row, class) pair costs ``C`` small MLPs per row; the
package evaluates it on the classes of probability at least
``modal_ally.dual_head.MIN_CLASS_PROBABILITY`` (and each row's most probable class)
only. For each task (``--tasks``: digits, the 26-class task, MNIST with a pool of
20,000), labeled size (``--labeled``) and seed, a PDCLNet is fitted on random rows
(the same nets as ``benchmarks.research.projection_quality``) and the pool is scored with every
threshold of ``--thresholds`` (0 is every class, the reference). Reported: the share of
(row, class) pairs evaluated, the largest relative change of any row's score and of
any row's draw weight (the shrunk score the draws read: a pick's probability changes by
at most about twice that factor), the Spearman correlation with the reference scores,
and the seconds the head took (one thread). Writes ``pool_head_cost.csv`` and ``.md``
to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness.reporting import markdown_table, write_atomic, write_csv
from benchmarks.research.projection_quality import _fitted

TASKS = ("digits", "manyclass", "mnist")
FIELDS = ("task", "labeled", "seed", "classes", "pool", "threshold", "pairs_share",
          "max_rel_score_change", "max_rel_weight_change", "spearman", "head_seconds")


def _scores(net, embeddings, probs, threshold):
    from modal_ally.dual_head import predict_dual

    head, scaling = net._pool_reader()
    start = time.perf_counter()
    scores = predict_dual(head, embeddings, scaling, chunk_size=4096, device=net.device,
                          probs=probs, min_probability=threshold)
    return scores.double(), time.perf_counter() - start


def measure(task, n_labeled, seed, thresholds, data_dir) -> list[dict]:
    from scipy.stats import spearmanr

    from modal_ally.strategies.ally import shrunk_duals

    net, X_pool, _ = _fitted(task, n_labeled, seed, data_dir)
    embeddings = torch.as_tensor(net.embed(X_pool))
    probs = net._class_probabilities(embeddings)
    reference, _ = _scores(net, embeddings, probs, 0.0)
    ref_weights = shrunk_duals(reference)
    rows = []
    for threshold in thresholds:
        scores, seconds = _scores(net, embeddings, probs, threshold)
        weights = shrunk_duals(scores)
        kept = (probs >= threshold).sum() if threshold > 0 else probs.numel()
        positive = reference > 0
        rows.append({
            "task": task, "labeled": n_labeled, "seed": seed, "classes": probs.shape[1],
            "pool": len(X_pool), "threshold": threshold,
            "pairs_share": float(kept) / probs.numel(),
            "max_rel_score_change": float(((scores - reference).abs()[positive]
                                           / reference[positive]).max())
            if bool(positive.any()) else 0.0,
            "max_rel_weight_change": float(((weights - ref_weights).abs()
                                            / ref_weights.clamp_min(1e-300)).max()),
            "spearman": float(spearmanr(scores.numpy(), reference.numpy())[0]),
            "head_seconds": seconds})
        print({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in rows[-1].items()},
              flush=True)
    return rows


def _summary(rows):
    """Per task, labeled size and threshold: the worst seed of each column."""
    groups = {}
    for row in rows:
        groups.setdefault((row["task"], row["labeled"], row["threshold"]), []).append(row)
    out = []
    for (task, labeled, threshold), group in groups.items():
        out.append([task, labeled, f"{threshold:g}", len(group),
                    f"{np.mean([r['pairs_share'] for r in group]):.3f}",
                    f"{max(r['max_rel_score_change'] for r in group):.2e}",
                    f"{max(r['max_rel_weight_change'] for r in group):.2e}",
                    f"{min(r['spearman'] for r in group):.6f}",
                    f"{np.mean([r['head_seconds'] for r in group]):.3f}"])
    return out


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--labeled", default="100,1000")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--thresholds", default="0,1e-6,1e-5,1e-4,1e-3")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="docs/results/speed/pool_head")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    thresholds = [float(x) for x in args.thresholds.split(",")]
    rows = []
    for task in args.tasks.split(","):
        for n_labeled in (int(x) for x in args.labeled.split(",")):
            for seed in range(args.seeds):
                rows += measure(task, n_labeled, seed, thresholds, args.data_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "pool_head_cost.csv", FIELDS, rows)
    table = "\n".join(markdown_table(
        ["task", "labeled", "threshold", "seeds", "pairs evaluated (share)",
         "max relative score change", "max relative weight change",
         "Spearman with every class (lowest seed)", "head seconds"], _summary(rows)))
    command = " ".join(sys.argv[1:] if argv is None else argv)
    write_atomic(out / "pool_head_cost.md",
                 f"# The pool head on the probable classes only ({args.seeds} seeds, "
                 f"torch threads {args.threads})\n\nCommand: `python -m "
                 f"benchmarks.research.pool_head_cost {command}`\n\n{table}\n")
    return rows


if __name__ == "__main__":
    main()
