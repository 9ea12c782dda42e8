"""Cheaper dual heads? ``python -m benchmarks.fit_cost --heads SEEDS``: the dual heads of
one fitted PDCLNet trained again by each candidate schedule, their cost and how the pool
head's ranking of unlabeled rows changes (``docs/results/fit_cost/heads``)."""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks.harness.reporting import markdown_table

__all__ = ["HEAD_CANDIDATES", "HEAD_FIELDS", "head_candidates", "heads_report"]

#: ``(epochs, lr, batch_size)`` of the dual heads' training: the default first.
HEAD_CANDIDATES = ((100, 5e-3, 4096), (30, 5e-3, 4096), (30, 1.5e-2, 4096),
                   (20, 2.5e-2, 4096), (10, 5e-2, 4096), (10, 5e-3, 256), (5, 5e-3, 256),
                   (5, 1e-2, 256), (3, 5e-3, 64))
HEAD_FIELDS = ("dataset", "n_rows", "seed", "head_epochs", "head_lr", "head_batch_size",
               "paper_head_s", "pool_head_s", "rho_default", "rho_loss")


def _spearman(a, b):
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def head_candidates(data, n_rows, seed, *, epochs, candidates=HEAD_CANDIDATES,
                    pool_rows=5000):
    """The dual heads of one fitted PDCLNet trained again by each candidate schedule
    (from the same initial weights: torch seeded alike), their cost, and how the pool
    head ranks ``pool_rows`` unlabeled rows against the first candidate's (the default
    schedule: ``rho_default``) and against the rows' true loss (``rho_loss``). The
    last row, ``head_epochs`` negative, is the default schedule from other initial
    weights: how far two heads trained alike agree."""
    from modal_ally import PDCLNet

    order = np.random.default_rng(seed).permutation(data.X_pool.shape[0])
    labeled, pool = order[:n_rows], order[n_rows:n_rows + pool_rows]
    y = data.y_pool[labeled]
    net, seen = PDCLNet(max_epochs=epochs, random_state=seed), {}
    fit_head = net._fit_dual_head  # the targets the fit trains its heads on: kept
    net._fit_dual_head = lambda e, t: (seen.update(embeddings=e, targets=t), fit_head(e, t))
    net.fit(data.X_pool[labeled], y)
    del net._fit_dual_head
    embeddings, targets = seen["embeddings"], seen["targets"]
    loss = net.per_sample_loss(data.X_pool[pool], data.y_pool[pool])
    out, default = [], None
    for init, (head_epochs, lr, batch) in [(seed, c) for c in candidates] + [
            (seed + 1, candidates[0])]:
        net.set_params(dual_head_epochs=head_epochs, dual_head_lr=lr,
                       dual_head_batch_size=batch)
        torch.manual_seed(init)
        start = time.perf_counter()
        net._fit_dual_head(embeddings, targets)
        middle = time.perf_counter()
        net._fit_pool_dual_head(embeddings, targets, y)
        end = time.perf_counter()
        scores = net.predict_dual(data.X_pool[pool], head="pool")
        default = scores if default is None else default
        out.append(dict(dataset=data.name, n_rows=n_rows, seed=seed,
                        head_epochs=head_epochs if init == seed else -head_epochs,
                        head_lr=lr, head_batch_size=batch, paper_head_s=middle - start,
                        pool_head_s=end - middle, rho_default=_spearman(scores, default),
                        rho_loss=_spearman(scores, loss)))
    return out


def heads_report(rows) -> str:
    """Mean over seeds of each candidate's cost and ranking, per data set and size."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    keys = ["dataset", "n_rows", "head_epochs", "head_lr", "head_batch_size"]
    means = frame.groupby(keys, sort=False).mean(numeric_only=True).reset_index()
    lines = ["## Cheaper dual heads? (both heads re-trained on the same fit; mean over "
             f"{frame['seed'].nunique()} seeds; the pool head's ranking of unlabeled rows)",
             ""]
    lines += markdown_table(
        ["data", "rows", "epochs", "lr", "batch", "both heads s", "Spearman with the "
         "default schedule's pool scores", "Spearman with the pool's loss"],
        [[r.dataset, f"{r.n_rows:,}", r.head_epochs if r.head_epochs > 0 else
          f"{-r.head_epochs} (other initial weights)", r.head_lr, r.head_batch_size,
          f"{r.paper_head_s + r.pool_head_s:.3f}", f"{r.rho_default:.4f}",
          f"{r.rho_loss:.3f}"] for r in means.itertuples()])
    return "\n".join(lines) + "\n"
