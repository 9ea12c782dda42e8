"""BADGE, Core-Set and random sampling on a Dask array pool (client side).

One pass over the pool: every block returns its own ``b`` picks (see
:mod:`modal_ally.distributed._select` for the two-round selections and their guarantees), and
a tree of merge tasks on the workers reduces them to one batch.
"""

from __future__ import annotations

import numpy as np
import torch

from .._allocator import steady_heap_task
from .._validation import as_finite_float32
from . import block_tasks, compute, dask_query_result, fetch_rows, ship, tree_reduce
from ._pool import BlockNet
from ._select import SeedingPlan, coreset_block, merge_coreset, merge_seeds, seeding_block

__all__ = ["dask_badge_query", "dask_coreset_query", "dask_random_query",
           "dask_badge_result", "dask_coreset_result", "dask_random_result", "dask_seeding",
           "seed_of"]


def seed_of(rng) -> int:
    """One integer seed from a RandomState or a torch.Generator."""
    if isinstance(rng, torch.Generator):
        return int(torch.randint(2**31 - 1, (), generator=rng, device=rng.device))
    return int(rng.randint(2**31 - 1))


def dask_badge_query(net, X_pool, n_instances, *, rng):
    """BADGE by seeding per block and weighted k-means++ on the union.

    Returns the indices and each pick's ``D^2`` in the last round.
    """
    plan = SeedingPlan(n_instances, seed_of(rng))
    root = dask_seeding(BlockNet.from_net(net), X_pool, plan)
    return root.indices, root.d2


def dask_seeding(block_net, X_pool, plan):
    """The two-round gradient seeding of ``plan`` over the blocks (one pass)."""
    parts = block_tasks(seeding_block, X_pool, ship(block_net), ship(plan))
    (root,) = compute(tree_reduce(parts, merge_seeds, plan))
    return root


def dask_coreset_query(net, X_pool, n_instances, *, labeled, rng, select):
    """Core-Set by exact greedy k-center per block and again on the union.

    ``labeled`` are the labeled set's embeddings (a CPU tensor, possibly empty: then
    the first pick is drawn at random, as in memory); ``select`` is the exact greedy
    selection, ``select(pool_embeddings, labeled_embeddings, n)``.
    """
    block_net = BlockNet.from_net(net)
    labeled = torch.as_tensor(labeled).float().cpu()
    first = []
    if not labeled.shape[0]:
        n = int(X_pool.shape[0])
        first = [int(rng.randint(n)) if not isinstance(rng, torch.Generator)
                 else int(torch.randint(n, (), generator=rng, device=rng.device))]
        labeled = block_net.embed(fetch_rows(X_pool, first)).cpu()
        n_instances -= 1
    if n_instances == 0:
        return np.asarray(first, dtype=np.int64), np.asarray([np.inf])
    parts = block_tasks(coreset_block, X_pool, ship(block_net), ship(labeled), n_instances,
                        select)
    (root,) = compute(tree_reduce(parts, merge_coreset, n_instances))
    indices = np.concatenate([np.asarray(first, dtype=np.int64), root.indices])
    return indices, np.concatenate([[np.inf] * len(first), root.scores])


@steady_heap_task
def _check_block(block, offset, chunk_size):
    """Read one block chunk by chunk and check it (NaN, infinity); its row count."""
    for start in range(0, block.shape[0], chunk_size):
        as_finite_float32(block[start:start + chunk_size], name="X_pool")
    return int(block.shape[0])


def dask_random_query(X_pool, n_instances, *, rng, chunk_size=4096):
    """Uniform sampling without replacement, as in memory, after checking every block."""
    compute(*block_tasks(_check_block, X_pool, chunk_size))
    n_pool = int(X_pool.shape[0])
    if isinstance(rng, torch.Generator):
        indices = torch.randperm(n_pool, generator=rng, device=rng.device)[:n_instances]
        return indices.cpu().numpy().astype(np.int64), np.zeros(n_instances)
    return rng.choice(n_pool, size=n_instances, replace=False), np.zeros(n_instances)


# The strategies' entry points: a validated query (``strategies._common.Query``) on a
# Dask pool, answered in the shape the installed modAL expects.
def dask_badge_result(query):
    indices, scores = dask_badge_query(query.net, query.X_pool, query.n_instances,
                                       rng=query.random_state)
    return dask_query_result(query.X_pool, indices, scores)


def dask_coreset_result(query, labeled, select):
    indices, scores = dask_coreset_query(query.net, query.X_pool, query.n_instances,
                                         labeled=labeled, rng=query.random_state,
                                         select=select)
    return dask_query_result(query.X_pool, indices, scores)


def dask_random_result(query):
    indices, scores = dask_random_query(query.X_pool, query.n_instances,
                                        rng=query.random_state)
    return dask_query_result(query.X_pool, indices, scores)
