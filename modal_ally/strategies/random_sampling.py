"""Random sampling: the baseline every strategy must beat."""

from __future__ import annotations

import numpy as np
import torch

from .._compat import query_result
from ..distributed import is_dask_collection
from ..distributed._baselines import dask_random_result
from ._common import check_pool_values, validate_query

__all__ = ["random_query_strategy"]


def random_query_strategy(learner, X_pool, n_instances=1, *, random_state=None):
    """Uniform sampling without replacement: the baseline every strategy must beat.

    Works with any estimator (fitted or not): only ``X_pool`` and ``n_instances`` are
    checked (the pool's per-sample shape against the net's or the labeled set's, when
    known), and the pool's values for NaN and infinity (chunk by chunk).

    Parameters
    ----------
    learner : modAL learner or estimator
    X_pool : numpy.ndarray or torch.Tensor
        The unlabeled pool.
    n_instances : int, default 1
        Batch size; larger than the pool selects the whole pool (with a warning).
    random_state : int, numpy.random.RandomState, torch.Generator or None
        Seeds the draw; None uses numpy's global random state.

    Returns
    -------
    indices : numpy.ndarray of shape (n_instances,)
        Positions in ``X_pool``. With modAL-python 0.4.2.x, the tuple
        ``(indices, scores)`` with ``scores`` all 0.
    """
    query = validate_query(learner, X_pool, n_instances, strategy="random_query_strategy",
                           require_net=False, random_state=random_state)
    if is_dask_collection(query.X_pool):
        return dask_random_result(query)
    check_pool_values(query)
    rng, n_pool = query.random_state, int(query.X_pool.shape[0])
    if isinstance(rng, torch.Generator):
        indices = torch.randperm(n_pool, generator=rng, device=rng.device)
        indices = indices[:query.n_instances].cpu().numpy()
    else:
        indices = rng.choice(n_pool, size=query.n_instances, replace=False)
    return query_result(indices, np.zeros(query.n_instances))
