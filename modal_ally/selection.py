"""Selectors: pure numpy/torch functions that turn scores and clusters into a batch.

They know nothing of skorch or modAL (modAL's ``multi_argmax`` plays the same role).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["priority_order", "equitable_selection", "select_with_exclusion",
           "median_pairwise_distance"]


def priority_order(scores, labels, n_instances):
    """Order of the pool under ALLY's equitable rule (DESIGN 1.3).

    Every cluster's ``n_instances // n_clusters`` highest-scoring points come first (by
    score), then every other point by score. The first ``n_instances`` entries are the
    equitable selection: each cluster gives its quota, and the leftover budget
    (remainder, clusters smaller than their quota, empty clusters) goes to the next
    highest-scoring points of the other clusters. Ties break by the lower index.

    Parameters
    ----------
    scores : array of shape (n_samples,)
    labels : array of int, shape (n_samples,)
        Cluster of each point.
    n_instances : int

    Returns
    -------
    order : numpy.ndarray of int64, shape (n_samples,)
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    n = scores.shape[0]
    by_score = np.lexsort((np.arange(n), -scores))
    n_clusters = np.unique(labels).shape[0] if n else 1
    quota = n_instances // max(n_clusters, 1)
    cluster_of = labels[by_score]
    grouped = np.argsort(cluster_of, kind="stable")
    sorted_clusters = cluster_of[grouped]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_clusters)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, dtype=np.int64)
    rank[grouped] = np.arange(n) - run_start
    later = rank >= quota
    return by_score[np.argsort(later, kind="stable")]


def equitable_selection(scores, labels, n_instances):
    """The first ``min(n_instances, n_samples)`` points of :func:`priority_order`.

    With a single cluster this is the plain top-``n_instances`` by score.
    """
    return priority_order(scores, labels, n_instances)[:n_instances]


def _as_tensor(values, device=None):
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(np.ascontiguousarray(values))
    return values.to(device=device, dtype=torch.float32) if device is not None \
        else values.float()


def median_pairwise_distance(embeddings, *, n_pairs=4096, random_state=None):
    """Median Euclidean distance between random pairs of rows (a scale of the data)."""
    rng = np.random.RandomState(random_state) if not isinstance(
        random_state, np.random.RandomState) else random_state
    E = _as_tensor(embeddings)
    n = E.shape[0]
    if n < 2:
        return 0.0
    a = torch.as_tensor(rng.randint(n, size=n_pairs), device=E.device)
    b = torch.as_tensor(rng.randint(n, size=n_pairs), device=E.device)
    keep = a != b
    return float(torch.linalg.vector_norm(E[a[keep]] - E[b[keep]], dim=1).median())


_EPS32 = float(torch.finfo(torch.float32).eps)


def _distances(A, B, delta):
    """Euclidean distances ``(len(A), len(B))``, exact wherever they are near ``delta``.

    ``torch.cdist`` uses ``|a|^2 + |b|^2 - 2 a.b`` on larger inputs: its rounding error
    in d^2 grows with the norms and the square root amplifies it near 0 (exact copies
    can come out ~1e-2 apart). Entries that could lie on either side of ``delta`` (the
    approximate value is at most ``delta`` plus a bound on that error) are recomputed
    from the differences, so copies are at distance exactly 0.
    """
    D = torch.cdist(A, B)
    if D.numel() == 0:
        return D
    norms = float((A * A).sum(dim=1).max()) + float((B * B).sum(dim=1).max())
    near = D <= delta + (8.0 * _EPS32 * norms) ** 0.5
    if bool(near.any()):
        i, j = near.nonzero(as_tuple=True)
        D[i, j] = torch.linalg.vector_norm(A[i] - B[j], dim=1)
    return D


def _min_distance_to(E, reference, delta, chunk=4096):
    """Distance of every row of ``E`` to its nearest row of ``reference`` (chunked)."""
    out = torch.empty(E.shape[0], device=E.device)
    for start in range(0, E.shape[0], chunk):
        out[start:start + chunk] = _distances(E[start:start + chunk], reference,
                                              delta).min(dim=1).values
    return out


def select_with_exclusion(order, embeddings, n_instances, delta, *,
                          labeled_embeddings=None, block=512):
    """Walk ``order`` and keep points outside the delta-balls (DESIGN 1.4).

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
    E = _as_tensor(embeddings)
    # distances are translation-invariant; centering shrinks the norms and with them
    # the rounding of the matrix-product distance formula (see _distances)
    center = E.mean(dim=0)
    E = E - center
    n = E.shape[0]
    n_instances = min(n_instances, n)
    blocked = torch.zeros(n, dtype=torch.bool, device=E.device)
    if labeled_embeddings is not None and len(labeled_embeddings):
        L = _as_tensor(labeled_embeddings, E.device) - center
        blocked = _min_distance_to(E, L, delta) <= delta
    n_near_labeled = int(blocked.sum())
    blocked_np = blocked.cpu().numpy()
    kept: list[int] = []
    kept_emb = E.new_empty((0, E.shape[1]))
    candidates = order[~blocked_np[order]]
    for start in range(0, candidates.shape[0], block):
        if len(kept) >= n_instances:
            break
        chunk = candidates[start:start + block]
        C = E[torch.as_tensor(chunk, device=E.device)]
        if kept_emb.shape[0]:
            free = (_distances(C, kept_emb, delta).min(dim=1).values > delta).cpu().numpy()
            chunk, C = chunk[free], C[torch.as_tensor(free, device=E.device)]
        if chunk.shape[0] == 0:
            continue
        near = (_distances(C, C, delta) <= delta).cpu().numpy()
        accepted = []
        for i in range(chunk.shape[0]):
            if len(kept) + len(accepted) >= n_instances:
                break
            if not any(near[i, j] for j in accepted):
                accepted.append(i)
        kept.extend(chunk[accepted].tolist())
        kept_emb = torch.cat([kept_emb, C[torch.as_tensor(accepted, device=E.device)]])
    if len(kept) < n_instances:
        missing = n_instances - len(kept)
        warnings.warn(
            f"only {len(kept)} pool points lie outside the delta-balls (delta={delta:.4g}) "
            f"of the labeled set and of each other; the batch is filled with {missing} "
            "excluded points of highest priority", UserWarning, stacklevel=3)
        taken = set(kept)
        kept.extend([i for i in order.tolist() if i not in taken][:missing])
    return np.asarray(kept, dtype=np.int64), n_near_labeled
