"""ALLY and redundancy-aware ALLY on a Dask array pool (client side).

The paper's rule (Elenter et al., NeurIPS 2022, Algorithm 2) and the redundancy-aware
variant give the same indices as the in-memory strategies for the same data and
``random_state``: the cluster centers are fitted on the client from the same sampled
rows with the same random draws, every block applies the same assignment and the same
equitable rule, and the summaries keep every candidate the rule could pick. Passes over
the pool: one, plus one more in the rare cases a block-level bound proves too small
(then with a larger bound).

The default rule (weighted k-means++ seeding in gradient space) is sequential over the
whole pool; it runs in two rounds (:mod:`modal_ally.distributed._select`): per block,
then on the union of the blocks' picks, in the same projected space as in memory
(fitted on the same sampled rows) and with draw weights calibrated on those rows.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch

from ..clustering import fit_projection, sample_rows
from . import (
    LazyEmbeddings,
    block_tasks,
    compute,
    dask_query_result,
    embedding_dim,
    fit_clustering,
    ship,
    tree_reduce,
)
from ._baselines import dask_seeding, seed_of
from ._pool import AllyPlan, BlockNet, ally_block, equitable_order, merge_candidates
from ._select import SeedingPlan

__all__ = ["dask_ally_query", "dask_ally_result", "dask_default_query",
           "dask_default_result"]


def _plan(net, embeddings, n_instances, n_clusters, rng, cluster_components, priority):
    """Fit the clustering on sampled rows; the plan every block follows."""
    n = embeddings.shape[0]
    k = int(min(n_clusters or n_instances, n))
    fitted = bool(getattr(net, "dual_head_fitted_", False))
    if k == n:  # every row its own cluster, as clustering.kmeans does
        return AllyPlan(priority, n_instances, n_instances, n_instances, k, None, None,
                        None, fitted)
    centers, mean, components, n_nonempty = fit_clustering(embeddings, k, rng,
                                                           cluster_components)
    quota = n_instances // max(n_nonempty, 1)
    return AllyPlan(priority, n_instances, quota, n_instances, k, centers, mean,
                    components, fitted)


def _run(X_pool, block_net, plan):
    """One pass over the pool; the merged candidates of every block."""
    net_key, plan_key = ship(block_net), ship(plan)
    parts = block_tasks(ally_block, X_pool, net_key, plan_key)
    (root,) = compute(tree_reduce(parts, merge_candidates, plan_key))
    return root


def _final_order(root, n_instances, n_pool, priority):
    """The equitable order of the candidates with the exact quota, guarded ones last."""
    if root.counts is None:
        quota = n_instances // n_pool
    else:
        quota = n_instances // max(int(np.count_nonzero(root.counts)), 1)
    order, _ = equitable_order(root.records, quota, priority)
    skip = root.records["skip"][order]
    return quota, np.concatenate([order[~skip], order[skip]])


def _auto_delta(embeddings, rng, delta_scale, n_pairs=4096):
    """``delta_scale`` times the median distance of random pairs of pool embeddings:
    the same pairs (same draws of ``rng``) as in memory, fetched in one read."""
    n = embeddings.shape[0]
    if n < 2:
        return 0.0
    probe = copy.deepcopy(rng)
    embeddings.prefetch(np.unique(np.r_[probe.randint(n, size=n_pairs),
                                        probe.randint(n, size=n_pairs)]))
    first, second = rng.randint(n, size=n_pairs), rng.randint(n, size=n_pairs)
    keep = first != second
    gaps = embeddings[first[keep]] - embeddings[second[keep]]
    return delta_scale * float(torch.linalg.vector_norm(gaps, dim=1).median())


def _walk(root, order, plan, labeled, select):
    """Redundancy-aware selection over the candidates; None if a block kept too few.

    Blocks keep ``plan.depth`` candidates per category besides the quota points; past
    the last candidate of a category that may have been cut, points of the pool may be
    missing, so a walk that goes there (or runs out) needs a deeper pass.
    """
    records = root.records
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        picked, _ = select(order, root.embeddings, plan.n_instances, plan.delta,
                           labeled_embeddings=labeled)
    filled = [w for w in caught if "delta-balls" in str(w.message)]
    position = np.empty(records.shape[0], dtype=np.int64)
    position[order] = np.arange(order.shape[0])
    free = ~records["blocked"][order]
    boundary = order.shape[0]
    for guarded in (False, True):
        category = free & (records["skip"][order] == guarded)
        if int(category.sum()) >= plan.depth:
            boundary = min(boundary, int(np.flatnonzero(category)[-1]))
    if boundary < order.shape[0] and (filled or int(position[picked].max()) > boundary):
        return None
    for w in filled:
        warnings.warn(w.message, w.category, stacklevel=4)
    return picked


def dask_ally_query(net, X_pool, n_instances, *, rng, priority, n_clusters=None,
                    max_dual=None, cluster_components=32, delta=None, delta_scale=0.1,
                    select=None):
    """Indices and predicted lambdas of an ALLY batch from a Dask array pool.

    Arguments are checked by the caller (see :func:`modal_ally.ally_query_strategy`);
    ``rng`` is a ``numpy.random.RandomState``, ``priority`` the equitable rule
    (``priority_order``). ``delta=None`` is plain ALLY; a number or "auto" is the
    redundancy-aware variant, ``select`` its walk (``select_with_exclusion``).

    Returns
    -------
    indices : numpy.ndarray of int64
    scores : numpy.ndarray of float64
    """
    block_net = BlockNet.from_net(net)
    embeddings = LazyEmbeddings(X_pool, block_net,
                                embedding_dim(block_net, X_pool.shape[1:]))
    plan = _plan(net, embeddings, n_instances, n_clusters, rng, cluster_components,
                 priority)
    plan.max_dual = None if max_dual is None else float(max_dual)
    labeled = getattr(net, "train_embeddings_", None)
    if delta is not None:
        _add_exclusion(plan, embeddings, labeled, rng, delta, delta_scale)
    while True:
        root = _run(X_pool, block_net, plan)
        quota, order = _final_order(root, n_instances, X_pool.shape[0], priority)
        if quota > plan.quota:  # the sample used fewer clusters than the pool
            plan.quota = quota
            continue
        if delta is None:
            picked = order[:n_instances]
            break
        picked = _walk(root, order, plan, None if labeled is None
                       else torch.as_tensor(labeled), select)
        if picked is not None:
            break
        plan.depth *= 4
    _warn_guard(root, n_instances, X_pool.shape[0])
    records = root.records[picked]
    return records["index"].astype(np.int64), records["score"]


def _add_exclusion(plan, embeddings, labeled, rng, delta, delta_scale):
    """Set the redundancy-aware part of the plan (delta, the labeled embeddings)."""
    if delta == "auto":
        delta = _auto_delta(embeddings, rng, delta_scale)
    plan.delta, plan.keep_embeddings, plan.depth = float(delta), True, 4 * plan.n_instances
    if labeled is not None and len(labeled):
        plan.center = embeddings.mean()
        plan.labeled = torch.as_tensor(labeled).float() - plan.center


def _warn_guard(root, n_instances, n_pool):
    kept = n_pool - root.n_skipped
    if root.n_skipped and kept < n_instances:
        warnings.warn(
            f"the outlier guard leaves {kept} candidates for {n_instances} queries; the "
            "batch is filled with guarded points", UserWarning, stacklevel=4)


def dask_ally_result(query, priority, *, select=None):
    """A validated ALLY query (``strategies._common.Query``) on a Dask pool, answered in
    the shape the installed modAL expects; ``select`` makes it redundancy-aware."""
    options = query.options
    indices, scores = dask_ally_query(
        query.net, query.X_pool, query.n_instances, rng=query.random_state,
        priority=priority, n_clusters=options["n_clusters"], max_dual=options["max_dual"],
        cluster_components=options["cluster_components"],
        delta=options.get("delta") if select is not None else None,
        delta_scale=options.get("delta_scale", 0.1), select=select)
    return dask_query_result(query.X_pool, indices, scores)


def dask_default_query(net, X_pool, n_instances, *, rng, weights_of, n_components,
                       sample_size, max_dual=None, temperature=1.0):
    """Indices and predicted lambdas of a batch of ALLY's default rule, Dask pool.

    The client reads ``sample_size`` random pool rows (the rows, and the draws of
    ``rng``, of the in-memory rule's projection sample), fits the same projection on
    their embeddings, and calibrates the draw weights on them: ``weights_of`` (the
    weight transform, e.g. ``shrunk_duals``; None: every row weighs 1) of the sample's
    predicted multipliers, interpolated for every other row. Then one pass of the
    two-round seeding over the blocks, the gradient factors reading the class
    probabilities at ``temperature``.
    """
    block_net = BlockNet.from_net(net)
    n, width = int(X_pool.shape[0]), embedding_dim(block_net, X_pool.shape[1:])
    rows = sample_rows(n, sample_size, rng, "cpu").numpy()
    sample = LazyEmbeddings(X_pool, block_net, width)[rows]
    projection = None
    if n_components is not None and width > n_components:
        projection = fit_projection(sample, n_components, centered=False)
    calibration = None
    if weights_of is not None:
        scores = np.sort(block_net.dual(sample, head="pool"))
        calibration = (scores, weights_of(torch.as_tensor(scores)).cpu().numpy())
    plan = SeedingPlan(n_instances, seed_of(rng),
                       classifier=getattr(net, "_task", "classification") != "regression",
                       duals=True, projection=projection, calibration=calibration,
                       max_dual=None if max_dual is None else float(max_dual),
                       temperature=float(temperature))
    root = dask_seeding(block_net, X_pool, plan)
    return root.indices, root.duals


def dask_default_result(query, weights_of, n_components, sample_size, temperature=1.0):
    """A validated query of ALLY's default rule on a Dask pool, in modAL's shape."""
    indices, scores = dask_default_query(
        query.net, query.X_pool, query.n_instances, rng=query.random_state,
        weights_of=weights_of, n_components=n_components, sample_size=sample_size,
        max_dual=query.options["max_dual"], temperature=temperature)
    return dask_query_result(query.X_pool, indices, scores)
