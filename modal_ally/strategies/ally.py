"""ALLY (Elenter et al., NeurIPS 2022): its selection rules on the predicted duals.

Two rules read the dual head's predicted multipliers ``lambda_hat`` of the pool:

- ``method="default"``: lambda-weighted k-means++ seeding in BADGE's gradient-embedding
  space (Ash et al., ICLR 2020), the class probabilities read at ``DRAW_TEMPERATURE``:
  every draw has probability ``~ (lambda_hat + mean(lambda_hat)) * D^2``;
- ``method="paper"``: the paper's Algorithm 2, k-means on the embeddings (k = b) and
  the highest ``lambda_hat`` of every cluster (the equitable rule).

Use it as any modAL strategy::

    learner = ActiveLearner(estimator=PDCLNet(), query_strategy=ally_query_strategy,
                            X_training=X0, y_training=y0)
    query_idx, _ = learner.query(X_pool, n_instances=200)
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import torch

from .._compat import query_result
from .._seeding import gradient_seeding
from .._validation import check_choice, numpy_random_state
from ..clustering import PCA_SAMPLE, kmeans
from ..distributed import is_dask_collection
from ..distributed._ally import dask_ally_result, dask_default_result
from ._common import Query, validate_query
from ._stream import N_COMPONENTS, PROJECTION_SAMPLE, STREAM_ABOVE_BYTES, pool_features

__all__ = ["ally_query_strategy", "ally_scores", "priority_order", "equitable_selection",
           "dual_weighted_selection", "draw_weights", "shrunk_duals", "draw_temperature",
           "DRAW_TEMPERATURE"]

#: The values of ``ally_query_strategy(method=...)``.
METHODS = ("default", "paper")
#: The temperature at which the default rule's gradient factors read the class
#: probabilities (``ally_query_strategy(temperature=None)``): ``p ** 4`` renormalized.
#: A net trained on wrong labels is less sure of every pool row (docs/label-audit.md,
#: "ALLY's draw at a lower temperature"); sharpened, the uncertain rows stand out again.
DRAW_TEMPERATURE = 0.25

#: The paper's rule keeps the pool's embeddings up to ``STREAM_ABOVE_BYTES`` (float32)
#: and their PCA projection only above (``ranked_pool``); the default rule always works
#: in the ``N_COMPONENTS``-dimensional projection of ``dual_weighted_selection``.


def priority_order(scores, labels, n_instances):
    """Order of the pool under ALLY's equitable rule (paper, Algorithm 2).

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


def _outliers(scores, max_dual, skip_top_quantile):
    """Mask of pool points the outlier guard skips (the paper's concluding remarks: the
    largest multipliers may belong to outliers or mislabeled samples)."""
    skip = np.zeros(scores.shape[0], dtype=bool)
    if max_dual is not None:
        skip |= scores > max_dual
    if skip_top_quantile is not None:
        n_top = int(np.floor(skip_top_quantile * scores.shape[0]))
        if n_top:
            top = np.lexsort((np.arange(scores.shape[0]), -scores))[:n_top]
            skip[top] = True
    return skip


def pool_scores(query: Query, head="pool"):
    """Pool embeddings (on the net's device) and predicted dual variables (float64) of
    the net's ``head`` ("pool": the default rule's; "paper": the paper's rule's)."""
    features = pool_features(query, n_components=None, duals=head)
    return features.embeddings, features.scores.numpy().astype(np.float64)


def ally_scores(learner, X_pool, *, head="paper"):
    """Predicted dual variable of every pool sample, and the pool's embeddings.

    One backbone pass over the pool (in chunks); the dual head runs on the embeddings:
    ``head="paper"`` the paper's head (as ``predict_dual``), ``"pool"`` the
    label-conditional head the default rule reads.

    Parameters
    ----------
    learner : modAL learner or PDCLNet/PDCLRegressor
        Its ``estimator`` must be a fitted PDCL net.
    X_pool : numpy.ndarray or torch.Tensor

    Returns
    -------
    embeddings : numpy.ndarray of shape (n_samples, embedding_dim), float32
    scores : numpy.ndarray of shape (n_samples,), float64, >= 0
    """
    query = validate_query(learner, X_pool, 1, strategy="ally_scores", require_pdcl=True)
    embeddings, scores = pool_scores(query, head=head)
    return embeddings.cpu().numpy(), scores


def ranked_pool(query: Query, *, keep_embeddings: bool = False):
    """Embeddings (None unless ``keep_embeddings``), predicted lambdas and ALLY's
    priority order of the pool."""
    options, n_instances = query.options, query.n_instances
    k = options["n_clusters"] or n_instances
    n_components = options["cluster_components"]
    full = keep_embeddings or n_components is None or k >= query.X_pool.shape[0]
    # above STREAM_ABOVE_BYTES, one pass keeps the embeddings' PCA projection only,
    # fitted on the rows kmeans would sample (so the clustering is the same)
    features = pool_features(query, n_components=None if full else n_components,
                             centered=True, duals="paper",
                             exact_below_bytes=STREAM_ABOVE_BYTES, sample_size=PCA_SAMPLE)
    scores = features.scores.numpy().astype(np.float64)
    embeddings = features.embeddings if features.projection is None else None
    labels, sq_dist = kmeans(features.embeddings, k, random_state=query.random_state,
                             n_components=n_components if embeddings is not None else None)
    ranking = scores
    if not getattr(query.net, "dual_head_fitted_", False):
        _no_dual_information_warning("the point nearest each cluster center first")
        ranking = -sq_dist.astype(np.float64)
    order = priority_order(ranking, labels, n_instances)
    skip = _outliers(scores, options["max_dual"], options["skip_top_quantile"])
    if skip.any():
        kept = order[~skip[order]]
        if kept.shape[0] < n_instances:
            warnings.warn(
                f"the outlier guard leaves {kept.shape[0]} candidates for {n_instances} "
                "queries; the batch is filled with guarded points", UserWarning, stacklevel=3)
        order = np.concatenate([kept, order[skip[order]]])
    return embeddings, scores, order


def _dual_information(net) -> bool:
    """Whether the dual head learned anything; if not, the default rule draws by the
    gradient space alone (said in a warning)."""
    if getattr(net, "dual_head_fitted_", False):
        return True
    _no_dual_information_warning("BADGE's k-means++ on gradient embeddings", stacklevel=5)
    return False


def _no_dual_information_warning(what, stacklevel=4):
    warnings.warn(
        "every dual variable of the last fit was 0, so predicted lambdas carry no "
        f"information: selecting by diversity alone ({what})", UserWarning,
        stacklevel=stacklevel)


def shrunk_duals(scores):
    """The default rule's draw weights: ``lambda_hat + mean(lambda_hat)`` over the pool.

    The predicted multipliers shrunk toward their pool mean. A point the dual head scores
    0 keeps the weight ``mean(lambda_hat)``; one at the mean weighs twice that. The
    dual head generalizes from few labeled rows to the pool noisily (docs/label-efficiency.md's
    diagnosis): plain ``lambda_hat`` weights gave a quarter to a third of an MNIST pool
    (at 300-900 labels) weight 0, so the draw could never reach them. Shrunk, the duals
    tilt every draw and exclude nothing (the outlier guard still can).

    Parameters
    ----------
    scores : torch.Tensor of shape (n_samples,), >= 0

    Returns
    -------
    torch.Tensor of shape (n_samples,), float64
    """
    scores = scores.to(torch.float64)
    return scores + scores.mean() if scores.numel() else scores


def draw_weights(query: Query, scores, *, weighted=True) -> torch.Tensor:
    """The default rule's draw weights of the pool (float64, on the net's device).

    :func:`shrunk_duals` of the predicted multipliers ``scores``; 0 for the points the
    outlier guard skips; all 1 with ``weighted=False``, when the dual head saw only
    zeros (with a warning) and when the guard skips every point.
    """
    weights = shrunk_duals(torch.as_tensor(scores, dtype=torch.float64)).to(query.net.device)
    if not (weighted and _dual_information(query.net)):
        weights = torch.ones_like(weights)
    skip = _outliers(scores, query.options["max_dual"], query.options["skip_top_quantile"])
    if skip.any():
        weights[torch.as_tensor(skip, device=weights.device)] = 0.0
    if not bool((weights > 0).any()):
        weights = torch.ones_like(weights)  # every point guarded: plain k-means++
    return weights


def draw_temperature(query: Query) -> float:
    """The query's ``temperature`` option, :data:`DRAW_TEMPERATURE` where it is None."""
    temperature = query.options.get("temperature")
    return DRAW_TEMPERATURE if temperature is None else float(temperature)


def dual_weighted_selection(query: Query, *, weighted=True, n_components=N_COMPONENTS,
                            residual=False):
    """The default rule: k-means++ seeding in gradient-embedding space, ``~ w D^2``.

    ``w`` are the :func:`draw_weights` (the predicted multipliers shrunk toward their
    pool mean, :func:`shrunk_duals`). The space is BADGE's gradient embedding
    ``(p - onehot(argmax p)) (outer) z`` for a classifier (``p`` at the query's
    :func:`draw_temperature`), and for a regressor ``z``
    itself (every sample gets the same output factor), ``z`` the projection of the
    backbone embedding on its ``n_components`` uncentered principal directions (fitted
    on a sample of pool rows; None: the embedding itself, the exact rule; ``residual``
    adds the norm of what the projection leaves out). One streamed
    pass keeps ``N x (C + n_components + 1)`` values; the draws are exact in
    distribution (:func:`modal_ally._seeding.gradient_seeding`).
    Returns the picks (in the order drawn) and the predicted lambdas of the pool.
    """
    features = pool_features(query, n_components=n_components, factors=True, duals=True,
                             residual=residual, temperature=draw_temperature(query))
    scores = features.scores.numpy().astype(np.float64)
    weights = draw_weights(query, scores, weighted=weighted)
    selected, _ = gradient_seeding(features.factors, features.embeddings,
                                   query.n_instances, query.random_state, weights=weights)
    return selected, scores


def validate_ally_query(learner, X_pool, n_instances, *, strategy, random_state, **options):
    """:func:`validate_query` for the ALLY strategies (a numpy random state)."""
    query = validate_query(learner, X_pool, n_instances, strategy=strategy,
                           require_pdcl=True, random_state=random_state, **options)
    return replace(query, random_state=numpy_random_state(query.random_state))


def ally_query_strategy(learner, X_pool, n_instances=1, *, method="default",
                        n_clusters=None, random_state=None, max_dual=None,
                        skip_top_quantile=None, cluster_components=32, temperature=None):
    """ALLY: informative samples by predicted dual variable, spread over the pool.

    Embeds the pool with the frozen backbone and predicts each sample's dual variable
    ``lambda_hat`` with the dual head (Elenter et al., NeurIPS 2022). Then:

    - ``method="default"``: lambda-weighted k-means++ seeding. With the weight
      ``w = lambda_hat + mean(lambda_hat)`` (the predicted multiplier shrunk toward its
      pool mean, :func:`shrunk_duals`), the first pick maximizes ``w * |g|^2``; every
      next one is drawn with probability proportional to ``w * D^2``, ``D`` its distance
      to the nearest pick, in BADGE's gradient-embedding space
      ``g = (p - onehot(argmax p)) (outer) e`` (Ash et al., ICLR 2020; for a regressor,
      the backbone embedding ``e``), the class probabilities ``p`` read at
      ``temperature`` (below). The batch seeds a k-means in which every pool point
      weighs its predicted multiplier: informative (by the duals), uncertain (by the
      gradient norm) and diverse at once; a point the dual head scores 0 can still be
      drawn. On held-out benchmarks it saves more labels than the paper's rule (see
      docs/label-efficiency.md, which also lists where it does not win). The
      embedding enters by its projection on 32 principal directions (uncentered,
      fitted on 10,000 sampled pool rows): one streamed pass keeps ``N x (C + 33)``
      values, never the ``N x d`` embeddings, and the draws are exact in distribution
      in that space (docs/scaling.md: its cost and its quality against the full space).
    - ``method="paper"``: the paper's Algorithm 2, exactly: k-means on the embeddings
      into ``n_clusters`` groups, the ``n_instances // n_clusters`` highest predicted
      lambdas of every cluster; leftover budget goes to the next highest lambdas of
      the other clusters.

    Parameters
    ----------
    learner : modAL learner or PDCLNet/PDCLRegressor
        Its ``estimator`` must be a fitted PDCL net.
    X_pool : numpy.ndarray (a memmap too), torch.Tensor or dask.array.Array
        The unlabeled pool; read chunk by chunk, never converted whole. A Dask array
        (chunked along rows) is processed block by block where it lives: with
        ``method="paper"`` the result is the numpy array's; the default rule draws in
        two rounds there, per block and on the union of the blocks' picks (see
        :mod:`modal_ally.distributed` and docs/scaling.md).
    n_instances : int, default 1
        Batch size b.
    method : {"default", "paper"}, default "default"
        The selection rule (above). ``"paper"`` is the published ALLY.
    n_clusters : int or None, default None
        ``method="paper"`` only: k; None uses k = b (the paper's setting). Every cluster
        gives its ``b // k`` highest predicted lambdas, so a larger k up to b is more
        diverse; k = 1, and any k > b (a quota of 0), is plain top-b by predicted lambda.
    random_state : int, RandomState, torch.Generator or None
        Seeds the draws (the clustering for ``"paper"``); a fixed value makes the query
        deterministic.
    max_dual : float or None
        Outlier guard: skip pool points whose predicted lambda exceeds this value.
    skip_top_quantile : float in (0, 1) or None
        Outlier guard: skip this top fraction of the pool by predicted lambda
        (possible outliers or mislabeled look-alikes). Skipped points are used only
        if nothing else is left.
    cluster_components : int or None, default 32
        ``method="paper"`` only: PCA dimensions the clustering works in (None: the
        full embedding).
    temperature : float > 0 or None, default None
        ``method="default"`` only: the gradient embeddings read the class probabilities
        at this temperature, ``p ** (1 / temperature)`` renormalized. None:
        :data:`DRAW_TEMPERATURE` (0.25). A net trained on wrong labels is less sure of
        every pool row, which evens out ``|p - onehot|`` over the pool; sharpened, the
        draw still favours the uncertain rows (docs/label-audit.md). 1 reads ``p`` as
        BADGE does.

    Returns
    -------
    indices : numpy.ndarray of int64, shape (min(n_instances, len(X_pool)),)
        Unique positions in ``X_pool``. With modAL 0.4.2.x, ``(indices, scores)``
        where scores are the predicted lambdas of the picks.
    """
    check_choice(method, "method", METHODS)
    if method == "default" and n_clusters is not None:
        raise ValueError("n_clusters applies to method='paper' only (the default rule "
                         "draws b seeds, no clusters)")
    if method == "paper" and temperature is not None:
        raise ValueError("temperature applies to method='default' only (the paper's rule "
                         "reads no class probabilities)")
    query = validate_ally_query(
        learner, X_pool, n_instances, strategy="ally_query_strategy",
        random_state=random_state, n_clusters=n_clusters, max_dual=max_dual,
        skip_top_quantile=skip_top_quantile, cluster_components=cluster_components,
        temperature=temperature)
    if is_dask_collection(query.X_pool):
        if method == "default":
            weights_of = shrunk_duals if _dual_information(query.net) else None
            return dask_default_result(query, weights_of, N_COMPONENTS, PROJECTION_SAMPLE,
                                       draw_temperature(query))
        return dask_ally_result(query, priority_order)
    if method == "default":
        selected, scores = dual_weighted_selection(query)
    else:
        _, scores, order = ranked_pool(query)
        selected = order[:query.n_instances]
    return query_result(selected, scores[selected])
