"""Baseline query strategies: BADGE, Core-Set (k-center greedy) and random sampling.

Each strategy is a modAL query strategy, ``strategy(learner, X_pool, n_instances)``,
and each selection rule is also a plain function of embeddings that knows nothing of
skorch or modAL (:func:`kmeans_pp_gradient_selection`, :func:`k_center_greedy`), so it
can be tested and reused alone.

Nothing is quadratic in the pool: the selectors keep one running minimum-distance
array over the pool and update it with the distances to each new center, O(N d) per
pick, in torch on the device of the embeddings (the net's device in the strategies).

References
----------
.. [1] J. T. Ash, C. Zhang, A. Krishnamurthy, J. Langford, A. Agarwal. "Deep Batch
   Active Learning by Diverse, Uncertain Gradient Lower Bounds". ICLR 2020.
.. [2] O. Sener, S. Savarese. "Active Learning for Convolutional Neural Networks: A
   Core-Set Approach". ICLR 2018.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils import check_random_state
from skorch import NeuralNetRegressor

from ._compat import query_result
from ._inference import chunk_size_of, embed, feature_shape_of, map_chunks, module_in_eval
from ._validation import (
    check_array,
    check_fitted_net,
    check_n_instances,
    clip_n_instances,
    get_estimator,
    n_rows,
)
from .distributed import check_dask_pool, dask_query_result, is_dask_collection

__all__ = [
    "badge_query_strategy",
    "coreset_query_strategy",
    "random_query_strategy",
    "kmeans_pp_gradient_selection",
    "k_center_greedy",
]

#: Rows per block in the selectors' distance computations: a block of pool rows
#: against a block of labeled rows is at most ``_BLOCK_ROWS ** 2`` distances (16 MB
#: in float32), whatever the size of the pool.
_BLOCK_ROWS = 2048


# ---------------------------------------------------------------------------- helpers
def _check_random_state(random_state):
    """A ``torch.Generator`` as is, anything else through scikit-learn's check."""
    if isinstance(random_state, torch.Generator):
        return random_state
    return check_random_state(random_state)


def _uniform(rng) -> float:
    """One draw from U[0, 1)."""
    if isinstance(rng, torch.Generator):
        return float(torch.rand((), generator=rng, device=rng.device))
    return float(rng.random_sample())


def _randint(rng, high: int) -> int:
    """One draw from {0, ..., high - 1}."""
    if isinstance(rng, torch.Generator):
        return int(torch.randint(high, (), generator=rng, device=rng.device))
    return int(rng.randint(high))


def _as_matrix(X, name: str, *, device=None, allow_empty: bool = False) -> torch.Tensor:
    """``X`` (numpy or torch, 2-d, finite) as a floating tensor on ``device``."""
    if isinstance(X, np.ndarray):
        X = torch.from_numpy(np.ascontiguousarray(X))
    elif not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, "
                        f"got {type(X).__name__}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-dimensional (n_samples, n_dims), "
                         f"got shape {tuple(X.shape)}")
    if X.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if not X.is_floating_point() or X.dtype in (torch.float16, torch.bfloat16):
        X = X.float()
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"{name} contains NaN or infinity")
    return X if device is None else X.to(device)


def _tolerance(width: int, dtype) -> float:
    """Relative size below which ``|x|^2 + |y|^2 - 2 x.y`` may be rounding noise."""
    return 4.0 * width * torch.finfo(dtype).eps


def _exact_pair_sq_distances(X, Y, rows, cols):
    """``||X[rows] - Y[cols]||^2`` from the differences (no cancellation)."""
    out = torch.empty(rows.shape[0], dtype=X.dtype, device=X.device)
    for start in range(0, rows.shape[0], _BLOCK_ROWS):
        r, c = rows[start:start + _BLOCK_ROWS], cols[start:start + _BLOCK_ROWS]
        diff = X[r] - Y[c]
        out[start:start + _BLOCK_ROWS] = (diff * diff).sum(dim=1)
    return out


def _block_sq_distances(X, Y, X_sq, Y_sq):
    """Squared Euclidean distances between the rows of ``X`` and ``Y``, shape (n, m).

    The fast ``|x|^2 + |y|^2 - 2 x.y`` form, with the entries small enough to be
    rounding noise recomputed from the differences, so that exact duplicates are at
    distance exactly 0.
    """
    sums = X_sq[:, None] + Y_sq[None, :]
    d2 = sums - 2.0 * (X @ Y.T)
    rows, cols = (d2 <= _tolerance(X.shape[1], X.dtype) * sums).nonzero(as_tuple=True)
    if rows.numel():
        d2[rows, cols] = _exact_pair_sq_distances(X, Y, rows, cols)
    return d2.clamp_min_(0.0)


def _sq_distances_to(X, X_sq, center: int):
    """Squared distances of every row of ``X`` to row ``center``, shape (n,), O(n d)."""
    return _block_sq_distances(X, X[center:center + 1], X_sq, X_sq[center:center + 1])[:, 0]


# ---------------------------------------------------------------------------- BADGE
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
    are recomputed from the equivalent difference form
    ``|da|^2 |e_i|^2 + |a_j|^2 |de|^2 + 2 (da . a_j)(e_i . de)`` (``da = a_i - a_j``,
    ``de = e_i - e_j``), so that duplicates of a center are at distance exactly 0.
    """
    a_c, e_c = a[center], e[center]
    sums = g_sq + g_sq[center]
    d2 = sums - 2.0 * (a @ a_c) * (e @ e_c)
    tol = _tolerance(a.shape[1] + e.shape[1], a.dtype)
    unsure = (d2 <= tol * sums).nonzero(as_tuple=True)[0]
    for start in range(0, unsure.shape[0], _BLOCK_ROWS):
        rows = unsure[start:start + _BLOCK_ROWS]
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
    target = torch.tensor([_uniform(rng) * total], dtype=torch.float64,
                          device=weights.device)
    index = int(torch.searchsorted(cumulative, target, right=True)[0])
    if index >= weights.shape[0] or not bool(weights[index] > 0):  # rounding at the top
        index = int((weights > 0).nonzero(as_tuple=True)[0][-1])
    return index


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
    rng = _check_random_state(random_state)
    probs = _as_matrix(probs, "probs")
    embeddings = _as_matrix(embeddings, "embeddings", device=probs.device)
    if probs.shape[0] != embeddings.shape[0]:
        raise ValueError(f"probs has {probs.shape[0]} rows but embeddings has "
                         f"{embeddings.shape[0]}: they must describe the same samples")
    n = probs.shape[0]
    n_instances = clip_n_instances(check_n_instances(n_instances), n)
    dtype = torch.promote_types(probs.dtype, embeddings.dtype)
    a, e = _gradient_factors(probs.to(dtype)), embeddings.to(dtype)
    a_sq, e_sq = (a * a).sum(dim=1), (e * e).sum(dim=1)
    g_sq = a_sq * e_sq

    chosen = torch.zeros(n, dtype=torch.bool, device=a.device)
    first = int(torch.argmax(g_sq))
    indices, scores = [first], [float(g_sq[first])]
    chosen[first] = True
    min_d2 = _gradient_sq_distances_to(a, e, a_sq, e_sq, g_sq, first)
    min_d2[first] = 0.0
    while len(indices) < n_instances:
        index = _sample_proportional(min_d2, rng)
        if index is None:  # every remaining sample duplicates a chosen center
            break
        indices.append(index)
        scores.append(float(min_d2[index]))
        chosen[index] = True
        torch.minimum(min_d2, _gradient_sq_distances_to(a, e, a_sq, e_sq, g_sq, index), out=min_d2)
        min_d2[index] = 0.0
    if len(indices) < n_instances:  # the rest is at distance 0 of the chosen centers
        rest = (~chosen).nonzero(as_tuple=True)[0]
        order = torch.sort(g_sq[rest], descending=True, stable=True).indices
        fill = rest[order[:n_instances - len(indices)]].tolist()
        indices += fill
        scores += [0.0] * len(fill)
    return np.asarray(indices, dtype=np.int64), np.asarray(scores, dtype=np.float64)


# ---------------------------------------------------------------------------- Core-Set
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
    rng = _check_random_state(random_state)
    pool = _as_matrix(pool_embeddings, "pool_embeddings")
    labeled = _as_matrix(labeled_embeddings, "labeled_embeddings", device=pool.device,
                         allow_empty=True)
    if labeled.shape[1] != pool.shape[1]:
        raise ValueError(f"labeled_embeddings have {labeled.shape[1]} dimensions but "
                         f"pool_embeddings have {pool.shape[1]}")
    n = pool.shape[0]
    n_instances = clip_n_instances(check_n_instances(n_instances), n)
    dtype = torch.promote_types(pool.dtype, labeled.dtype)
    pool, labeled = pool.to(dtype), labeled.to(dtype)
    pool_sq = (pool * pool).sum(dim=1)

    min_d2 = torch.full((n,), float("inf"), dtype=dtype, device=pool.device)
    if labeled.shape[0]:
        labeled_sq = (labeled * labeled).sum(dim=1)
        for i in range(0, n, _BLOCK_ROWS):
            rows = slice(i, i + _BLOCK_ROWS)
            for j in range(0, labeled.shape[0], _BLOCK_ROWS):
                cols = slice(j, j + _BLOCK_ROWS)
                block = _block_sq_distances(pool[rows], labeled[cols], pool_sq[rows],
                                            labeled_sq[cols])
                min_d2[rows] = torch.minimum(min_d2[rows], block.min(dim=1).values)

    indices, scores = [], []
    for pick in range(n_instances):
        if pick == 0 and not labeled.shape[0]:
            index = _randint(rng, n)
        else:
            index = int(torch.argmax(min_d2))  # the first of equal maxima
        indices.append(index)
        scores.append(float(min_d2[index].sqrt()))
        torch.minimum(min_d2, _sq_distances_to(pool, pool_sq, index), out=min_d2)
        min_d2[index] = -1.0  # below every distance: never the farthest again
    return np.asarray(indices, dtype=np.int64), np.asarray(scores, dtype=np.float64)


# ---------------------------------------------------------------------------- strategies
def _expected_feature_shape(learner, estimator):
    """The per-sample shape the pool must have: the net's, else the labeled set's."""
    shape = feature_shape_of(estimator)
    if shape is None:
        X_training = getattr(learner, "X_training", None) if learner is not estimator \
            else None
        if getattr(X_training, "ndim", 0) >= 2:
            shape = tuple(X_training.shape[1:])
    return shape


def _check_pool(X_pool, shape):
    if is_dask_collection(X_pool):
        return check_dask_pool(X_pool, n_features=shape)
    return check_array(X_pool, name="X_pool", n_features=shape)


def _embed_pool(net, X_pool, *, shape_known: bool) -> torch.Tensor:
    """Eval-mode backbone embeddings of the pool, on ``net.device``."""
    try:
        embeddings = embed(net, X_pool, name="X_pool", as_numpy=False)
    except RuntimeError as exc:
        if shape_known or isinstance(exc, torch.cuda.OutOfMemoryError):
            raise
        raise ValueError(
            f"X_pool (per-sample shape {tuple(X_pool.shape[1:])}) could not be passed "
            f"through the network; does it have the features the net was fitted on? "
            f"({exc})") from exc
    return embeddings.to(net.device)


def _class_probabilities(net, embeddings) -> torch.Tensor:
    """Softmax of ``module_.head`` on the embeddings, chunk-wise, on ``net.device``."""
    def probabilities(block):
        logits = module.head(block)
        return torch.softmax(logits.reshape(block.shape[0], -1).float(), dim=1)

    with module_in_eval(net) as module:
        return map_chunks(probabilities, embeddings, chunk_size=chunk_size_of(net),
                          device=net.device, out_device=net.device)


def _labeled_embeddings(learner, net, strategy: str) -> torch.Tensor:
    """Embeddings of the labeled set (CPU tensor).

    The estimator's ``train_embeddings_`` (PDCLNet keeps those of its training rows,
    also under modAL's DeepActiveLearner) when they cover the learner's labeled set;
    else the learner's ``X_training`` (modAL's ActiveLearner), embedded now.
    """
    stored = getattr(net, "train_embeddings_", None)
    X_training = getattr(learner, "X_training", None) if learner is not net else None
    if stored is not None and (X_training is None or len(X_training) == len(stored)):
        return torch.as_tensor(np.asarray(stored))
    if X_training is not None:
        return embed(net, X_training, name="X_training", as_numpy=False)
    raise ValueError(
        f"{strategy} needs the embeddings of the labeled set, but the estimator "
        f"{type(net).__name__} keeps no `train_embeddings_` (PDCLNet and PDCLRegressor "
        "do) and the learner keeps no `X_training` (modAL's DeepActiveLearner): use a "
        "PDCLNet, or an ActiveLearner built with X_training and y_training")


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
    X_pool : numpy.ndarray or torch.Tensor
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
    strategy = "badge_query_strategy"
    net = get_estimator(learner)
    check_fitted_net(net, strategy=strategy)
    if isinstance(net, NeuralNetRegressor) or getattr(net, "_task", None) == "regression":
        raise TypeError(f"{strategy} needs a classifier (class probabilities), got the "
                        f"regressor {type(net).__name__}")
    if not hasattr(net.module_, "head"):
        raise TypeError(f"{strategy} needs the module to expose a `head` submodule (the "
                        f"last linear layer); {type(net.module_).__name__} has none")
    shape = _expected_feature_shape(learner, net)
    X_pool = _check_pool(X_pool, shape)
    n_instances = check_n_instances(n_instances)
    rng = _check_random_state(random_state)
    n_instances = clip_n_instances(n_instances, n_rows(X_pool))
    if is_dask_collection(X_pool):
        from ._dask_baselines import dask_badge_query

        indices, scores = dask_badge_query(net, X_pool, n_instances, rng=rng,
                                           select=kmeans_pp_gradient_selection)
        return dask_query_result(X_pool, indices, scores)

    embeddings = _embed_pool(net, X_pool, shape_known=shape is not None)
    probs = _class_probabilities(net, embeddings)
    indices, scores = kmeans_pp_gradient_selection(probs, embeddings, n_instances,
                                                    random_state=rng)
    return query_result(indices, scores)


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
    X_pool : numpy.ndarray or torch.Tensor
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
    net = get_estimator(learner)
    check_fitted_net(net, strategy=strategy)
    shape = _expected_feature_shape(learner, net)
    X_pool = _check_pool(X_pool, shape)
    n_instances = check_n_instances(n_instances)
    rng = _check_random_state(random_state)
    labeled = _labeled_embeddings(learner, net, strategy)
    n_instances = clip_n_instances(n_instances, n_rows(X_pool))
    if is_dask_collection(X_pool):
        from ._dask_baselines import dask_coreset_query

        indices, scores = dask_coreset_query(net, X_pool, n_instances, labeled=labeled,
                                             rng=rng, select=k_center_greedy)
        return dask_query_result(X_pool, indices, scores)

    embeddings = _embed_pool(net, X_pool, shape_known=shape is not None)
    indices, scores = k_center_greedy(embeddings, labeled, n_instances, random_state=rng)
    return query_result(indices, scores)


def random_query_strategy(learner, X_pool, n_instances=1, *, random_state=None):
    """Uniform sampling without replacement: the baseline every strategy must beat.

    Works with any estimator (fitted or not): only ``X_pool`` and ``n_instances`` are
    checked (the pool's per-sample shape against the net's or the labeled set's, when
    known).

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
    estimator = get_estimator(learner)
    X_pool = _check_pool(X_pool, _expected_feature_shape(learner, estimator))
    n_instances = check_n_instances(n_instances)
    rng = _check_random_state(random_state)
    n_pool = n_rows(X_pool)
    n_instances = clip_n_instances(n_instances, n_pool)
    if is_dask_collection(X_pool):
        from ._dask_baselines import dask_random_query

        indices, scores = dask_random_query(X_pool, n_instances, rng=rng)
        return dask_query_result(X_pool, indices, scores)
    if isinstance(rng, torch.Generator):
        indices = torch.randperm(n_pool, generator=rng, device=rng.device)[:n_instances]
        indices = indices.cpu().numpy()
    else:
        indices = rng.choice(n_pool, size=n_instances, replace=False)
    return query_result(indices, np.zeros(n_instances))
