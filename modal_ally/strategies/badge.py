"""BADGE (Ash et al., ICLR 2020): k-means++ seeding on gradient embeddings.

Nothing is quadratic in the pool: the selector keeps one running minimum-distance
array over the pool and updates it with the distances to each new center, O(N d)
per pick, in torch on the device of the embeddings (the net's device).

References
----------
.. [1] J. T. Ash, C. Zhang, A. Krishnamurthy, J. Langford, A. Agarwal. "Deep Batch
   Active Learning by Diverse, Uncertain Gradient Lower Bounds". ICLR 2020.
"""

from __future__ import annotations

import numpy as np
import torch
from skorch import NeuralNetRegressor

from .._compat import query_result
from .._inference import chunk_size_of, map_chunks
from .._torch_utils import BLOCK_ROWS, eval_mode, overflow_safe, rounding_tolerance
from .._validation import check_n_instances, check_random_state, clip_n_instances, uniform
from ..distributed import is_dask_collection
from ..distributed._baselines import dask_badge_result
from ._common import as_matrix, embed_pool, validate_query

__all__ = ["badge_query_strategy", "kmeans_pp_gradient_selection"]


def _gradient_factors(probs):
    """``a_i = p_i - onehot(argmax p_i)``: the last layer's gradient embedding is
    ``g_i = a_i (outer) e_i`` for the hypothetical label ``argmax p_i``."""
    a = probs.clone()
    rows = torch.arange(a.shape[0], device=a.device)
    a[rows, a.argmax(dim=1)] -= 1.0
    return a


def _gradient_sq_distances_to(a, e, a_sq, e_sq, g_sq, center: int):
    """``||g_i - g_center||^2`` for every row ``i``, without forming any ``g``.

    ``||g_i - g_j||^2 = |a_i|^2 |e_i|^2 + |a_j|^2 |e_j|^2 - 2 (a_i . a_j)(e_i . e_j)``:
    two matrix-vector products, O(N (C + d)). Entries small enough to be rounding noise
    (the tolerance of :func:`modal_ally._torch_utils.sq_distances`) are recomputed
    from the equivalent difference form
    ``|da|^2 |e_i|^2 + |a_j|^2 |de|^2 + 2 (da . a_j)(e_i . de)`` (``da = a_i - a_j``,
    ``de = e_i - e_j``), so that duplicates of a center are at distance exactly 0.
    """
    a_c, e_c = a[center], e[center]
    sums = g_sq + g_sq[center]
    d2 = sums - 2.0 * (a @ a_c) * (e @ e_c)
    tol = rounding_tolerance(a.shape[1] + e.shape[1], a.dtype)
    unsure = (d2 <= tol * sums).nonzero(as_tuple=True)[0]
    for start in range(0, unsure.shape[0], BLOCK_ROWS):
        rows = unsure[start:start + BLOCK_ROWS]
        da, e_rows = a[rows] - a_c, e[rows]
        de = e_rows - e_c
        d2[rows] = ((da * da).sum(dim=1) * e_sq[rows] + a_sq[center] * (de * de).sum(dim=1)
                    + 2.0 * (da @ a_c) * (e_rows * de).sum(dim=1))
    return d2.clamp_min_(0.0)


def _sample_proportional(weights, rng):
    """An index drawn with probability ``weights / weights.sum()`` (weights >= 0), or
    None when every weight is 0.

    One uniform draw and a search in the float64 cumulative sum: an index of weight 0
    is never returned.
    """
    cumulative = torch.cumsum(weights, dim=0, dtype=torch.float64)
    total = float(cumulative[-1])
    if not total > 0:
        return None
    target = torch.tensor([uniform(rng) * total], dtype=torch.float64,
                          device=weights.device)
    index = int(torch.searchsorted(cumulative, target, right=True)[0])
    if index >= weights.shape[0] or not bool(weights[index] > 0):  # rounding at the top
        index = int((weights > 0).nonzero(as_tuple=True)[0][-1])
    return index


def _select(probs, embeddings, n_instances, rng, weights=None):
    """:func:`kmeans_pp_gradient_selection` on checked tensors.

    ``weights`` (>= 0, one per row; None: all 1) weigh every draw: the first pick
    maximizes ``w |g|^2``, every next one is drawn with probability ``~ w D^2`` (the
    k-means++ seeding of a k-means whose points weigh ``w``); rows of weight 0 come
    only in the fill.
    """
    n = probs.shape[0]
    dtype = torch.promote_types(probs.dtype, embeddings.dtype)
    # |a_i|^2 <= 2: only the embeddings can make the squared norms overflow
    (e,), scale = overflow_safe(embeddings.to(dtype))
    a = _gradient_factors(probs.to(e.dtype))
    a_sq, e_sq = (a * a).sum(dim=1), (e * e).sum(dim=1)
    g_sq = a_sq * e_sq
    priority = g_sq if weights is None else weights.to(dtype) * g_sq

    chosen = torch.zeros(n, dtype=torch.bool, device=a.device)
    first = int(torch.argmax(priority))
    indices, scores = [first], [float(g_sq[first])]
    chosen[first] = True
    min_d2 = _gradient_sq_distances_to(a, e, a_sq, e_sq, g_sq, first)
    min_d2[first] = 0.0
    while len(indices) < n_instances:
        draw = min_d2 if weights is None else weights.to(dtype) * min_d2
        index = _sample_proportional(draw, rng)
        if index is None:  # every remaining sample duplicates a chosen center
            break
        indices.append(index)
        scores.append(float(min_d2[index]))
        chosen[index] = True
        torch.minimum(min_d2, _gradient_sq_distances_to(a, e, a_sq, e_sq, g_sq, index),
                      out=min_d2)
        min_d2[index] = 0.0
    if len(indices) < n_instances:  # the rest is at distance 0 of the chosen centers
        rest = (~chosen).nonzero(as_tuple=True)[0]
        order = torch.sort(priority[rest], descending=True, stable=True).indices
        fill = rest[order[:n_instances - len(indices)]].tolist()
        indices += fill
        scores += [0.0] * len(fill)
    return (np.asarray(indices, dtype=np.int64),
            np.asarray(scores, dtype=np.float64) * scale ** 2)


def kmeans_pp_gradient_selection(probs, embeddings, n_instances, *, random_state=None):
    """BADGE's selection: k-means++ seeding in the space of gradient embeddings.

    The gradient embedding of sample ``i`` is the gradient of the cross-entropy with
    respect to the last linear layer for the hypothetical label ``yhat_i = argmax p_i``,
    ``g_i = (p_i - onehot(yhat_i)) (outer) e_i``, with ``e_i`` the input of that layer.
    The ``N x (C d)`` matrix of the ``g_i`` is never formed: distances come from
    ``||g_i - g_j||^2 = |a_i|^2 |e_i|^2 + |a_j|^2 |e_j|^2 - 2 (a_i . a_j)(e_i . e_j)``,
    ``a_i = p_i - onehot(yhat_i)``, and each pick costs O(N (C + d)) with a running
    minimum-distance array.

    The first center is the sample with the largest gradient norm (as in the reference
    code); every next one is drawn with probability proportional to ``D^2``, its squared
    distance to the nearest chosen center, so a chosen sample (``D^2 = 0``) is never
    drawn again. When every remaining ``D^2`` is 0 (the rest duplicates the chosen
    centers), the batch is filled with the unchosen samples of largest gradient norm
    (ties by the lowest index).

    Parameters
    ----------
    probs : numpy.ndarray or torch.Tensor of shape (n_samples, n_classes)
        Predicted class probabilities of the pool.
    embeddings : numpy.ndarray or torch.Tensor of shape (n_samples, embedding_dim)
        Inputs of the last linear layer for the same samples.
    n_instances : int
        Number of samples to select; larger than the pool selects the whole pool
        (with a warning).
    random_state : int, numpy.random.RandomState, torch.Generator or None
        Seeds the D^2 sampling; None uses numpy's global random state (scikit-learn's
        convention).

    Returns
    -------
    indices : numpy.ndarray of shape (n_instances,), int64
        Unique row positions, in the order they were picked.
    scores : numpy.ndarray of shape (n_instances,), float64
        ``D^2`` of each pick at the time it was picked (the squared gradient norm for
        the first, 0 for the fill).

    Notes
    -----
    Computations run on the device of ``probs`` (CPU for numpy input) in the wider of
    the two input dtypes (float32 at least).
    """
    rng = check_random_state(random_state)
    probs = as_matrix(probs, "probs")
    embeddings = as_matrix(embeddings, "embeddings", device=probs.device)
    if probs.shape[0] != embeddings.shape[0]:
        raise ValueError(f"probs has {probs.shape[0]} rows but embeddings has "
                         f"{embeddings.shape[0]}: they must describe the same samples")
    n_instances = clip_n_instances(check_n_instances(n_instances), probs.shape[0])
    return _select(probs, embeddings, n_instances, rng)


def _class_probabilities(net, embeddings) -> torch.Tensor:
    """Softmax of ``module_.head`` on the embeddings, chunk-wise, on ``net.device``."""
    def probabilities(block):
        logits = module.head(block)
        return torch.softmax(logits.reshape(block.shape[0], -1).float(), dim=1)

    with eval_mode(net.module_) as module:
        return map_chunks(probabilities, embeddings, chunk_size=chunk_size_of(net),
                          device=net.device, out_device=net.device, name=None)


def _check_classifier_with_head(net, strategy):
    if isinstance(net, NeuralNetRegressor) or getattr(net, "_task", None) == "regression":
        raise TypeError(f"{strategy} needs a classifier (class probabilities), got the "
                        f"regressor {type(net).__name__}")
    if not hasattr(net.module_, "head"):
        raise TypeError(f"{strategy} needs the module to expose a `head` submodule (the "
                        f"last linear layer); {type(net.module_).__name__} has none")


def badge_query_strategy(learner, X_pool, n_instances=1, *, random_state=None):
    """BADGE: diverse, uncertain samples by k-means++ on gradient embeddings [1]_.

    Embeds the pool with the net's backbone (eval mode, in chunks), computes the class
    probabilities with its head, and selects by :func:`kmeans_pp_gradient_selection`.
    Works with any fitted skorch classifier whose module follows the backbone/head
    contract (``forward = head(backbone(x))``, ``head`` the last linear layer).

    Parameters
    ----------
    learner : modAL learner or skorch net
        ``learner.estimator`` (or the net itself) is the fitted classifier.
    X_pool : numpy.ndarray (a memmap too) or torch.Tensor
        The unlabeled pool, with the per-sample shape the net was fitted on.
    n_instances : int, default 1
        Batch size; larger than the pool selects the whole pool (with a warning).
    random_state : int, numpy.random.RandomState, torch.Generator or None
        Seeds the k-means++ sampling; None uses numpy's global random state.

    Returns
    -------
    indices : numpy.ndarray of shape (n_instances,)
        Positions in ``X_pool``. With modAL-python 0.4.2.x, the tuple
        ``(indices, scores)``, ``scores`` being the ``D^2`` of each pick.

    References
    ----------
    .. [1] Ash et al., "Deep Batch Active Learning by Diverse, Uncertain Gradient Lower
       Bounds", ICLR 2020.
    """
    query = validate_query(learner, X_pool, n_instances, strategy="badge_query_strategy",
                           check_net=_check_classifier_with_head, random_state=random_state)
    if is_dask_collection(query.X_pool):
        return dask_badge_result(query, kmeans_pp_gradient_selection)
    embeddings = embed_pool(query)
    probs = _class_probabilities(query.net, embeddings)
    indices, scores = _select(probs, embeddings, query.n_instances, query.random_state)
    return query_result(indices, scores)
