"""The ``quality`` part of ``benchmarks.scale``: what the two-round Dask selection (per
block, then on the union) changes against the in-memory rules, per seed.

The default rule's objective (draw weight times squared gradient-space distance to the
nearest pick, in the exact space) of its Dask and its in-memory (projected) batch over the
mean of the exact rule's batches (full embedding space); BADGE's k-means cost in gradient
space and Core-Set's covering radius of the Dask batch over the exact batch; random
batches as a reference.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from benchmarks.harness.synthetic_pool import make_rows

__all__ = ["gradient_cost", "run_quality_part"]


def gradient_cost(a, e, picks, weights=None):
    """BADGE's k-means cost: sum over the pool of the squared gradient-space distance
    to the nearest pick (factored form, no gradient embedding formed); each row's
    term times its weight when ``weights`` are given (the default rule's objective)."""
    import torch

    from modal_ally._seeding import nearest_centers

    picks = torch.as_tensor(np.asarray(picks))
    d2, _ = nearest_centers(a.double(), e.double(), a[picks].double(), e[picks].double())
    return float(d2.sum() if weights is None else (weights.cpu().double() * d2).sum())


def _reference(args, net):
    """The pool (numpy and Dask), its embeddings and gradient factors, the default
    rule's draw weights, the exact rule's batch per seed and their mean objective."""
    import dask.array as da
    import torch

    from modal_ally._seeding import gradient_factors
    from modal_ally.strategies.ally import (
        draw_weights,
        dual_weighted_selection,
        validate_ally_query,
    )

    X_pool = make_rows(0, args.quality_rows, n_features=args.features)
    pool = da.from_array(X_pool, chunks=-(-args.quality_rows // args.quality_blocks))
    embeddings = torch.as_tensor(net.embed(X_pool))
    labeled = torch.as_tensor(net.train_embeddings_)
    with torch.no_grad():
        a = gradient_factors(torch.softmax(net.module_.head(embeddings), dim=1))

    def query(seed):
        return validate_ally_query(net, X_pool, args.budget, strategy="scale",
                                   random_state=seed, n_clusters=None, max_dual=None,
                                   skip_top_quantile=None, cluster_components=32)

    weights = draw_weights(query(0), net.predict_dual(X_pool).astype(np.float64))
    exact = [dual_weighted_selection(query(seed), n_components=None)[0]
             for seed in range(args.quality_seeds)]
    default_cost = np.mean([gradient_cost(a, embeddings, p, weights) for p in exact])
    return SimpleNamespace(X_pool=X_pool, pool=pool, embeddings=embeddings,
                           labeled=labeled, a=a, weights=weights, exact=exact,
                           default_cost=default_cost)


def _first(result):
    return np.asarray(result[0] if isinstance(result, tuple) else result)


def _seed_row(args, net, ref, seed) -> dict:
    """One seed's batches of every strategy, timed, and their ratios to the exact ones."""
    import torch

    from modal_ally import ally_query_strategy, badge_query_strategy, coreset_query_strategy
    from modal_ally.distributed._select import sq_distances_to_set

    a, embeddings, X_pool, pool = ref.a, ref.embeddings, ref.X_pool, ref.pool

    def radius(picks):
        centers = torch.cat([ref.labeled, embeddings[torch.as_tensor(picks)]])
        return float(sq_distances_to_set(embeddings, centers).max().sqrt())

    random_picks = np.random.RandomState(seed).choice(X_pool.shape[0], args.budget,
                                                      replace=False)
    timings, picks = {}, {}
    for label, strategy, X in (("default memory", ally_query_strategy, X_pool),
                               ("default dask", ally_query_strategy, pool),
                               ("badge exact", badge_query_strategy, X_pool),
                               ("badge dask", badge_query_strategy, pool),
                               ("coreset exact", coreset_query_strategy, X_pool),
                               ("coreset dask", coreset_query_strategy, pool)):
        start = time.perf_counter()
        picks[label] = _first(strategy(net, X, args.budget, random_state=seed))
        timings[label] = time.perf_counter() - start
    exact_cost = gradient_cost(a, embeddings, picks["badge exact"])
    exact_radius = radius(picks["coreset exact"])
    return {
        "seed": seed, "n_rows": X_pool.shape[0], "blocks": args.quality_blocks,
        "budget": args.budget,
        **{f"default_{k}_cost_ratio": round(gradient_cost(
            a, embeddings, p, ref.weights) / ref.default_cost, 4) for k, p in (
            ("exact", ref.exact[seed]), ("memory", picks["default memory"]),
            ("dask", picks["default dask"]), ("random", random_picks))},
        "badge_cost_ratio": round(gradient_cost(a, embeddings, picks["badge dask"])
                                  / exact_cost, 4),
        "badge_random_cost_ratio": round(gradient_cost(a, embeddings, random_picks)
                                         / exact_cost, 4),
        "coreset_radius_ratio": round(radius(picks["coreset dask"]) / exact_radius, 4),
        "coreset_random_radius_ratio": round(radius(random_picks) / exact_radius, 4),
        "coreset_overlap": len(set(picks["coreset dask"]) & set(picks["coreset exact"])),
        **{f"{k.replace(' ', '_')}_s": round(v, 2) for k, v in timings.items()}}


def run_quality_part(args, net) -> list[dict]:
    """One row per seed (``--quality-seeds``), printed as it is done."""
    ref = _reference(args, net)
    rows = []
    for seed in range(args.quality_seeds):
        rows.append(_seed_row(args, net, ref, seed))
        print(rows[-1], flush=True)
    return rows
