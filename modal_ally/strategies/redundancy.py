"""Redundancy-aware ALLY: no queried point within ``delta`` of a labeled one or of
another queried point (paper, Section 5.5: redundant pools fool informativeness-only
methods), with its pure selection function :func:`select_with_exclusion`."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .._compat import query_result
from .._torch_utils import as_tensor, min_sq_distances, sq_distances
from .._validation import numpy_random_state
from ..distributed import is_dask_collection
from ..distributed._ally import dask_ally_result
from .ally import priority_order, ranked_pool, validate_ally_query

__all__ = ["ally_redundancy_aware_query_strategy", "select_with_exclusion",
           "median_pairwise_distance"]


def median_pairwise_distance(embeddings, *, n_pairs=4096, random_state=None):
    """Median Euclidean distance between random pairs of rows (a scale of the data)."""
    rng = numpy_random_state(random_state)
    E = as_tensor(embeddings)
    n = E.shape[0]
    if n < 2:
        return 0.0
    a = torch.as_tensor(rng.randint(n, size=n_pairs), device=E.device)
    b = torch.as_tensor(rng.randint(n, size=n_pairs), device=E.device)
    keep = a != b
    return float(torch.linalg.vector_norm(E[a[keep]] - E[b[keep]], dim=1).median())


def _within(A, B, delta):
    """``(len(A), len(B))`` mask of pairs at distance <= ``delta`` (exact near it)."""
    return sq_distances(A, B, radius=delta) <= delta * delta


def _accept_block(C, kept_emb, n_wanted, delta):
    """Positions of the rows of ``C`` kept in order: outside the delta-balls of
    ``kept_emb`` and of each other; at most ``n_wanted``."""
    free = np.ones(C.shape[0], dtype=bool)
    if kept_emb.shape[0]:
        free = (~_within(C, kept_emb, delta).any(dim=1)).cpu().numpy()
    candidates = np.flatnonzero(free)
    if candidates.shape[0] == 0:
        return candidates
    C = C[torch.as_tensor(candidates, device=C.device)]
    near = _within(C, C, delta).cpu().numpy()
    accepted = []
    for i in range(candidates.shape[0]):
        if len(accepted) >= n_wanted:
            break
        if not near[i, accepted].any():
            accepted.append(i)
    return candidates[accepted]


def select_with_exclusion(order, embeddings, n_instances, delta, *,
                          labeled_embeddings=None, block=512):
    """Walk ``order`` and keep points outside the delta-balls.

    A point is skipped when it lies within ``delta`` of a labeled embedding or of a
    point already kept for this batch. If fewer than ``n_instances`` points survive,
    the batch is filled with skipped points in ``order`` (with a warning), so it always
    has ``min(n_instances, n_samples)`` unique indices. Cost: the pool against the
    labeled set in chunks, then each visited candidate against the kept points.

    Returns
    -------
    selected : numpy.ndarray of int64
    n_excluded_labeled : int
        How many pool points lie within ``delta`` of a labeled embedding.
    """
    order = np.asarray(order, dtype=np.int64)
    E = as_tensor(embeddings)
    # distances are translation-invariant; centering shrinks the norms and with them
    # the rounding of the matrix-product distance formula (see sq_distances)
    center = E.mean(dim=0)
    E = E - center
    n = E.shape[0]
    n_instances = min(n_instances, n)
    blocked = np.zeros(n, dtype=bool)
    if labeled_embeddings is not None and len(labeled_embeddings):
        L = as_tensor(labeled_embeddings, E.device) - center
        blocked = (min_sq_distances(E, L, radius=delta) <= delta * delta).cpu().numpy()
    kept: list[int] = []
    kept_emb = E.new_empty((0, E.shape[1]))
    candidates = order[~blocked[order]]
    for start in range(0, candidates.shape[0], block):
        if len(kept) >= n_instances:
            break
        chunk = candidates[start:start + block]
        rows = torch.as_tensor(chunk, device=E.device)
        accepted = _accept_block(E[rows], kept_emb, n_instances - len(kept), delta)
        kept.extend(chunk[accepted].tolist())
        kept_emb = torch.cat([kept_emb, E[rows[torch.as_tensor(accepted, dtype=torch.long,
                                                               device=E.device)]]])
    if len(kept) < n_instances:
        missing = n_instances - len(kept)
        warnings.warn(
            f"only {len(kept)} pool points lie outside the delta-balls (delta={delta:.4g}) "
            f"of the labeled set and of each other; the batch is filled with {missing} "
            "excluded points of highest priority", UserWarning, stacklevel=3)
        taken = set(kept)
        kept.extend([i for i in order.tolist() if i not in taken][:missing])
    return np.asarray(kept, dtype=np.int64), int(blocked.sum())


def ally_redundancy_aware_query_strategy(learner, X_pool, n_instances=1, *, delta="auto",
                                         delta_scale=0.1, n_clusters=None,
                                         random_state=None, max_dual=None,
                                         skip_top_quantile=None, cluster_components=32):
    """ALLY that never queries near-copies of labeled samples or of each other.

    As :func:`~modal_ally.ally_query_strategy`, but pool points within ``delta``
    (Euclidean, in embedding space) of a labeled sample's embedding, or of a point
    already chosen for this batch, are skipped (paper section 5.5: redundant pools fool
    informativeness-only methods). If fewer than ``n_instances`` points survive, the
    batch is filled in priority order and a warning says so.

    Parameters
    ----------
    delta : float or "auto", default "auto"
        Radius of the excluded balls. "auto" sets ``delta = delta_scale * median
        distance between random pairs of pool embeddings``: points much closer than
        two typical pool samples count as copies.
    delta_scale : float, default 0.1
        Used by ``delta="auto"``.
    n_clusters, random_state, max_dual, skip_top_quantile, cluster_components
        As in :func:`~modal_ally.ally_query_strategy`.

    Returns
    -------
    indices : numpy.ndarray of int64
        As :func:`~modal_ally.ally_query_strategy`.
    """
    query = validate_ally_query(
        learner, X_pool, n_instances, strategy="ally_redundancy_aware_query_strategy",
        random_state=random_state, delta=delta, delta_scale=delta_scale,
        n_clusters=n_clusters, max_dual=max_dual, skip_top_quantile=skip_top_quantile,
        cluster_components=cluster_components)
    if is_dask_collection(query.X_pool):
        return dask_ally_result(query, priority_order, select=select_with_exclusion)
    labeled = getattr(query.net, "train_embeddings_", None)
    embeddings, scores, order = ranked_pool(query, keep_embeddings=True)
    delta = query.options["delta"]
    if delta == "auto":
        delta = query.options["delta_scale"] * median_pairwise_distance(
            embeddings, random_state=query.random_state)
    selected, _ = select_with_exclusion(
        order, embeddings, query.n_instances, float(delta),
        labeled_embeddings=None if labeled is None else torch.as_tensor(labeled))
    return query_result(selected, scores[selected])
