"""Core-Set (Sener and Savarese, ICLR 2018): greedy k-center cover of the pool.

References
----------
.. [1] O. Sener, S. Savarese. "Active Learning for Convolutional Neural Networks: A
   Core-Set Approach". ICLR 2018.
"""

from __future__ import annotations

import numpy as np
import torch

from .._compat import query_result
from .._torch_utils import min_sq_distances, overflow_safe, sq_distances
from .._validation import check_n_instances, check_random_state, clip_n_instances, randint
from ..distributed import is_dask_collection
from ..distributed._baselines import dask_coreset_result
from ._common import as_matrix, embed_pool, labeled_embeddings, validate_query

__all__ = ["coreset_query_strategy", "k_center_greedy"]


def _select(pool, labeled, n_instances, rng):
    """:func:`k_center_greedy` on checked tensors."""
    dtype = torch.promote_types(pool.dtype, labeled.dtype)
    (pool, labeled), scale = overflow_safe(pool.to(dtype), labeled.to(dtype))
    dtype, n = pool.dtype, pool.shape[0]
    pool_sq = (pool * pool).sum(dim=1)
    if labeled.shape[0]:
        min_d2 = min_sq_distances(pool, labeled)
    else:
        min_d2 = torch.full((n,), float("inf"), dtype=dtype, device=pool.device)
    indices, scores = [], []
    for pick in range(n_instances):
        if pick == 0 and not labeled.shape[0]:
            index = randint(rng, n)
        else:
            index = int(torch.argmax(min_d2))  # the first of equal maxima
        indices.append(index)
        scores.append(float(min_d2[index].sqrt()) * scale)
        to_pick = sq_distances(pool, pool[index:index + 1], X_sq=pool_sq,
                               Y_sq=pool_sq[index:index + 1])[:, 0]
        torch.minimum(min_d2, to_pick, out=min_d2)
        min_d2[index] = -1.0  # below every distance: never the farthest again
    return np.asarray(indices, dtype=np.int64), np.asarray(scores, dtype=np.float64)


def k_center_greedy(pool_embeddings, labeled_embeddings, n_instances, *, random_state=None):
    """Core-Set's selection: greedy k-center cover of the pool around the labeled set.

    Keeps the distance of every pool sample to its nearest center (labeled samples and
    the samples picked so far), starting from the labeled set in blocks of pool x
    labeled rows; each pick takes the farthest sample (ties by the lowest index) and
    updates the array with the distances to it, O(N d) per pick.

    Parameters
    ----------
    pool_embeddings : numpy.ndarray or torch.Tensor of shape (n_samples, embedding_dim)
    labeled_embeddings : numpy.ndarray or torch.Tensor of shape (n_labeled, embedding_dim)
        May have 0 rows: then the first pick is drawn at random.
    n_instances : int
        Number of samples to select; larger than the pool selects the whole pool
        (with a warning).
    random_state : int, numpy.random.RandomState, torch.Generator or None
        Seeds the first pick when the labeled set is empty (nothing else is random).

    Returns
    -------
    indices : numpy.ndarray of shape (n_instances,), int64
        Unique row positions in the pool, in the order they were picked.
    scores : numpy.ndarray of shape (n_instances,), float64
        Euclidean distance of each pick to its nearest center at the time it was
        picked (``inf`` for a first pick with an empty labeled set).

    Notes
    -----
    Computations run on the device of ``pool_embeddings`` (CPU for numpy input) in the
    wider of the two input dtypes (float32 at least).
    """
    rng = check_random_state(random_state)
    pool = as_matrix(pool_embeddings, "pool_embeddings")
    labeled = as_matrix(labeled_embeddings, "labeled_embeddings", device=pool.device,
                        allow_empty=True)
    if labeled.shape[1] != pool.shape[1]:
        raise ValueError(f"labeled_embeddings have {labeled.shape[1]} dimensions but "
                         f"pool_embeddings have {pool.shape[1]}")
    n_instances = clip_n_instances(check_n_instances(n_instances), pool.shape[0])
    return _select(pool, labeled, n_instances, rng)


def coreset_query_strategy(learner, X_pool, n_instances=1, *, random_state=None):
    """Core-Set: greedy k-center cover of the pool around the labeled set [1]_.

    Embeds the pool with the net's backbone and selects by :func:`k_center_greedy`
    from the labeled set's embeddings: the estimator's ``train_embeddings_`` (PDCLNet)
    when they cover the learner's labeled set, else the learner's ``X_training``
    embedded now. A plain skorch net under a learner without ``X_training`` (modAL's
    DeepActiveLearner) raises ``ValueError``.

    Parameters
    ----------
    learner : modAL learner or skorch net
        ``learner.estimator`` (or the net itself) is the fitted net (classifier or
        regressor) with a ``backbone``.
    X_pool : numpy.ndarray (a memmap too) or torch.Tensor
        The unlabeled pool, with the per-sample shape the net was fitted on.
    n_instances : int, default 1
        Batch size; larger than the pool selects the whole pool (with a warning).
    random_state : int, numpy.random.RandomState, torch.Generator or None
        Seeds the first pick when the labeled set is empty.

    Returns
    -------
    indices : numpy.ndarray of shape (n_instances,)
        Positions in ``X_pool``. With modAL-python 0.4.2.x, the tuple
        ``(indices, scores)``, ``scores`` being each pick's distance to its nearest
        center.

    References
    ----------
    .. [1] Sener and Savarese, "Active Learning for Convolutional Neural Networks: A
       Core-Set Approach", ICLR 2018.
    """
    strategy = "coreset_query_strategy"
    query = validate_query(learner, X_pool, n_instances, strategy=strategy,
                           random_state=random_state)
    labeled = labeled_embeddings(query, strategy)
    if is_dask_collection(query.X_pool):
        return dask_coreset_result(query, labeled, k_center_greedy)
    embeddings = embed_pool(query)
    indices, scores = _select(embeddings, labeled.to(embeddings.device),
                              query.n_instances, query.random_state)
    return query_result(indices, scores)
