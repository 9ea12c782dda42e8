"""BADGE (Ash et al., ICLR 2020): k-means++ seeding on gradient embeddings.

Nothing is quadratic in the pool: the selector keeps one minimum-distance array over
the pool, refreshed in blocks, and draws exactly as sequential k-means++ seeding
(:func:`modal_ally._seeding.gradient_seeding`), in torch on the device of the
embeddings (the net's device). The strategy keeps the pool's embeddings up to
``STREAM_ABOVE_BYTES`` and, above, their 32-dimensional projection only (an
approximation of BADGE's space; see docs/scaling.md).

References
----------
.. [1] J. T. Ash, C. Zhang, A. Krishnamurthy, J. Langford, A. Agarwal. "Deep Batch
   Active Learning by Diverse, Uncertain Gradient Lower Bounds". ICLR 2020.
"""

from __future__ import annotations

import torch
from skorch import NeuralNetRegressor

from .._compat import query_result
from .._inference import chunk_size_of, map_chunks
from .._seeding import gradient_factors, gradient_seeding
from .._torch_utils import eval_mode
from .._validation import check_n_instances, check_random_state, clip_n_instances
from ..distributed import is_dask_collection
from ..distributed._baselines import dask_badge_result
from ._common import as_matrix, validate_query
from ._stream import N_COMPONENTS, STREAM_ABOVE_BYTES, pool_features

__all__ = ["badge_query_strategy", "kmeans_pp_gradient_selection"]


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
    drawn again. The draws are those of sequential k-means++ in distribution; the
    random numbers are used differently (stale distances and rejection, see
    :func:`modal_ally._seeding.gradient_seeding`). When every remaining ``D^2`` is 0
    (the rest duplicates the chosen centers), the batch is filled with the unchosen
    samples of largest gradient norm (ties by the lowest index).

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
    dtype = torch.promote_types(probs.dtype, embeddings.dtype)
    return gradient_seeding(gradient_factors(probs.to(dtype)), embeddings.to(dtype),
                            n_instances, rng)


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
    contract (``forward = head(backbone(x))``, ``head`` the last linear layer). Up to
    256 MiB of pool embeddings (``STREAM_ABOVE_BYTES``) the draws are exact in
    distribution in BADGE's space; above, one streamed pass keeps the gradient factors
    and a 32-dimensional uncentered projection of the embeddings only, and the draws
    are made in that space (an approximation measured in docs/scaling.md).

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
        return dask_badge_result(query)
    features = pool_features(query, n_components=N_COMPONENTS, factors=True,
                             exact_below_bytes=STREAM_ABOVE_BYTES)
    indices, scores = gradient_seeding(features.factors, features.embeddings,
                                       query.n_instances, query.random_state)
    return query_result(indices, scores)
