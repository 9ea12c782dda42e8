"""ALLY query strategies for modAL (Elenter et al., NeurIPS 2022, Algorithm 2).

Use them as any modAL strategy::

    learner = ActiveLearner(estimator=PDCLNet(), query_strategy=ally_query_strategy,
                            X_training=X0, y_training=y0)
    query_idx, _ = learner.query(X_pool, n_instances=200)
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch

from ._compat import query_result
from ._inference import embed
from ._validation import (
    check_array,
    check_fitted_net,
    check_n_instances,
    check_optional_int,
    clip_n_instances,
    get_estimator,
)
from .clustering import kmeans
from .distributed import check_dask_pool, dask_query_result, is_dask_collection
from .selection import median_pairwise_distance, priority_order, select_with_exclusion

__all__ = ["ally_query_strategy", "ally_redundancy_aware_query_strategy", "ally_scores"]


def _check_guard(max_dual, skip_top_quantile):
    if max_dual is not None:
        if not isinstance(max_dual, numbers.Real) or not max_dual > 0:
            raise ValueError(f"max_dual must be a number > 0 or None, got {max_dual!r}")
    if skip_top_quantile is not None:
        if not isinstance(skip_top_quantile, numbers.Real) or not 0 < skip_top_quantile < 1:
            raise ValueError("skip_top_quantile must be in (0, 1) or None, got "
                             f"{skip_top_quantile!r}")


def _outliers(scores, max_dual, skip_top_quantile):
    """Mask of pool points the outlier guard skips (DESIGN 1.6)."""
    skip = np.zeros(scores.shape[0], dtype=bool)
    if max_dual is not None:
        skip |= scores > max_dual
    if skip_top_quantile is not None:
        n_top = int(np.floor(skip_top_quantile * scores.shape[0]))
        if n_top:
            top = np.lexsort((np.arange(scores.shape[0]), -scores))[:n_top]
            skip[top] = True
    return skip


def _prepare(learner, X_pool, n_instances, n_clusters, max_dual, skip_top_quantile, name):
    """Validate everything before any work; return the net, the pool and the budget."""
    net = check_fitted_net(get_estimator(learner), require_pdcl=True, strategy=name)
    if is_dask_collection(X_pool):
        X_pool = check_dask_pool(X_pool, n_features=net.feature_shape_)
        if skip_top_quantile is not None:
            raise ValueError("skip_top_quantile needs the whole pool's scores; with a Dask "
                             "pool use max_dual")
    else:
        X_pool = check_array(X_pool, name="X_pool", n_features=net.feature_shape_)
    n_instances = check_n_instances(n_instances)
    n_clusters = check_optional_int(n_clusters, "n_clusters")
    _check_guard(max_dual, skip_top_quantile)
    return net, X_pool, clip_n_instances(n_instances, X_pool.shape[0]), n_clusters


def ally_scores(net, X_pool):
    """Pool embeddings (on the net's device) and predicted dual variables (numpy).

    One backbone pass over the pool; the dual head runs on the embeddings.
    """
    embeddings = embed(net, X_pool, name="X_pool", as_numpy=False, out_device=net.device)
    scores = net.predict_dual_from_embeddings(embeddings).numpy().astype(np.float64)
    return embeddings, scores


def _ranked_pool(net, X_pool, n_instances, n_clusters, random_state, max_dual,
                 skip_top_quantile, cluster_components):
    embeddings, scores = ally_scores(net, X_pool)
    k = n_clusters or n_instances
    labels, sq_dist = kmeans(embeddings, k, random_state=random_state,
                             n_components=cluster_components)
    ranking = scores
    if not getattr(net, "dual_head_fitted_", False):
        warnings.warn(
            "every dual variable of the last fit was 0, so predicted lambdas carry no "
            "information: selecting by diversity alone (the point nearest each cluster "
            "center first)", UserWarning, stacklevel=3)
        ranking = -sq_dist.astype(np.float64)
    order = priority_order(ranking, labels, n_instances)
    skip = _outliers(scores, max_dual, skip_top_quantile)
    if skip.any():
        kept = order[~skip[order]]
        if kept.shape[0] < n_instances:
            warnings.warn(
                f"the outlier guard leaves {kept.shape[0]} candidates for {n_instances} "
                "queries; the batch is filled with guarded points", UserWarning, stacklevel=3)
        order = np.concatenate([kept, order[skip[order]]])
    return embeddings, scores, order


def ally_query_strategy(learner, X_pool, n_instances=1, *, n_clusters=None,
                        random_state=None, max_dual=None, skip_top_quantile=None,
                        cluster_components=32):
    """ALLY: the most informative samples by predicted dual variable, spread over clusters.

    Embeds the pool with the frozen backbone, predicts each sample's dual variable with
    the dual head, clusters the embeddings into ``n_clusters`` groups and takes the
    ``n_instances // n_clusters`` highest predicted lambdas of every cluster; leftover
    budget goes to the next highest lambdas of the other clusters.

    Parameters
    ----------
    learner : modAL learner or PDCLNet/PDCLRegressor
        Its ``estimator`` must be a fitted PDCL net.
    X_pool : numpy.ndarray or torch.Tensor
        The unlabeled pool.
    n_instances : int, default 1
        Batch size b.
    n_clusters : int or None, default None
        k; None uses k = b (the paper's setting; larger k is more diverse). k = 1 is
        plain top-b by predicted lambda.
    random_state : int, RandomState or None
        Seeds the clustering; a fixed value makes the query deterministic.
    max_dual : float or None
        Outlier guard: skip pool points whose predicted lambda exceeds this value.
    skip_top_quantile : float in (0, 1) or None
        Outlier guard: skip this top fraction of the pool by predicted lambda
        (possible outliers or mislabeled look-alikes). Skipped points are used only
        if nothing else is left.
    cluster_components : int or None, default 32
        PCA dimensions the clustering works in (None: the full embedding).

    Returns
    -------
    indices : numpy.ndarray of int64, shape (min(n_instances, len(X_pool)),)
        Unique positions in ``X_pool``. With modAL 0.4.2.x, ``(indices, scores)``
        where scores are the predicted lambdas of the picks.
    """
    net, X_pool, n_instances, n_clusters = _prepare(
        learner, X_pool, n_instances, n_clusters, max_dual, skip_top_quantile,
        "ally_query_strategy")
    if is_dask_collection(X_pool):
        from ._dask_ally import dask_ally_query

        indices, scores = dask_ally_query(
            net, X_pool, n_instances, n_clusters=n_clusters, random_state=random_state,
            max_dual=max_dual, cluster_components=cluster_components)
        return dask_query_result(X_pool, indices, scores)
    _, scores, order = _ranked_pool(net, X_pool, n_instances, n_clusters, random_state,
                                    max_dual, skip_top_quantile, cluster_components)
    selected = order[:n_instances]
    return query_result(selected, scores[selected])


def ally_redundancy_aware_query_strategy(learner, X_pool, n_instances=1, *, delta="auto",
                                         delta_scale=0.1, n_clusters=None,
                                         random_state=None, max_dual=None,
                                         skip_top_quantile=None, cluster_components=32):
    """ALLY that never queries near-copies of labeled samples or of each other.

    As :func:`ally_query_strategy`, but pool points within ``delta`` (Euclidean, in
    embedding space) of a labeled sample's embedding, or of a point already chosen for
    this batch, are skipped (paper section 5.5: redundant pools fool
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
        As in :func:`ally_query_strategy`.

    Returns
    -------
    indices : numpy.ndarray of int64
        As :func:`ally_query_strategy`.
    """
    net, X_pool, n_instances, n_clusters = _prepare(
        learner, X_pool, n_instances, n_clusters, max_dual, skip_top_quantile,
        "ally_redundancy_aware_query_strategy")
    if isinstance(delta, str):
        if delta != "auto":
            raise ValueError(f"delta must be a number >= 0 or 'auto', got {delta!r}")
        if not isinstance(delta_scale, numbers.Real) or not delta_scale > 0:
            raise ValueError(f"delta_scale must be a number > 0, got {delta_scale!r}")
    elif not isinstance(delta, numbers.Real) or not delta >= 0:
        raise ValueError(f"delta must be a number >= 0 or 'auto', got {delta!r}")
    if is_dask_collection(X_pool):
        from ._dask_ally import dask_ally_query

        indices, scores = dask_ally_query(
            net, X_pool, n_instances, n_clusters=n_clusters, random_state=random_state,
            max_dual=max_dual, cluster_components=cluster_components, delta=delta,
            delta_scale=delta_scale)
        return dask_query_result(X_pool, indices, scores)
    labeled = getattr(net, "train_embeddings_", None)
    embeddings, scores, order = _ranked_pool(
        net, X_pool, n_instances, n_clusters, random_state, max_dual, skip_top_quantile,
        cluster_components)
    if delta == "auto":
        delta = delta_scale * median_pairwise_distance(embeddings, random_state=random_state)
    selected, _ = select_with_exclusion(
        order, embeddings, n_instances, float(delta),
        labeled_embeddings=None if labeled is None else torch.as_tensor(labeled))
    return query_result(selected, scores[selected])
