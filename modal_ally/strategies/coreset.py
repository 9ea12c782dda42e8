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
from .._torch_utils import nearest_sq_distances, overflow_safe, sq_distances
from .._validation import check_n_instances, check_random_state, clip_n_instances, randint
from ..distributed import is_dask_collection
from ..distributed._baselines import dask_coreset_result
from ._common import as_matrix, labeled_embeddings, validate_query
from ._stream import N_COMPONENTS, STREAM_ABOVE_BYTES, pool_features

__all__ = ["coreset_query_strategy", "k_center_greedy"]


#: Rows added to the candidates at a time, and refresh thresholds (see ``_Cover``).
CANDIDATE_ROWS = 256
MIN_PENDING = 16
MAX_CANDIDATES = 16 * CANDIDATE_ROWS


class _Cover:
    """Greedy k-center with lazily updated distances: the same picks as updating every
    row's distance after every pick, reading the pool ``O(log b)`` times instead of ``b``.

    ``bound`` holds each row's squared distance to its nearest center as of the last
    refresh: an upper bound of the true one. The farthest row is found among the rows
    of largest bound (``candidates``, kept exact against the centers picked since the
    refresh): once the best exact value among them is at least the next bound, no other
    row can be farther. All rows are refreshed, in blocks, when the recent centers are
    half of all centers or the candidates many.
    """

    def __init__(self, pool, min_d2):
        self.pool, self.bound = pool, min_d2
        self.chosen = torch.zeros(pool.shape[0], dtype=torch.bool, device=pool.device)
        self.recent = []
        self._reset()

    def _reset(self):
        self.order = torch.sort(self.bound, descending=True, stable=True).indices
        self.cursor = 0
        self.rows = torch.empty(0, dtype=torch.long, device=self.pool.device)
        self.values = torch.empty(0, dtype=self.pool.dtype, device=self.pool.device)

    def _to_recent(self, rows):
        """Squared distances of ``rows`` to their nearest recent center (exact at 0)."""
        recent = self.pool[torch.as_tensor(self.recent, device=self.pool.device)]
        return sq_distances(self.pool[rows], recent).min(dim=1).values

    def farthest(self):
        """The row farthest from every center (the lowest of equal ones), and its
        squared distance."""
        n = self.pool.shape[0]
        while self.cursor < n:
            best = float(self.values.max()) if self.values.numel() else -np.inf
            if float(self.bound[self.order[self.cursor]]) < best:
                break
            rows = self.order[self.cursor:self.cursor + CANDIDATE_ROWS]
            self.cursor += rows.shape[0]
            values = self.bound[rows].clone()
            if self.recent:
                values = torch.minimum(values, self._to_recent(rows))
            values[self.chosen[rows]] = -1.0
            self.rows, self.values = torch.cat([self.rows, rows]), torch.cat([self.values,
                                                                              values])
        top = self.values.max()
        index = int(self.rows[self.values == top].min())
        return index, float(top)

    def add(self, index: int):
        """Make row ``index`` a center."""
        self.chosen[index] = True
        self.recent.append(index)
        if self.rows.numel():
            to_new = sq_distances(self.pool[self.rows], self.pool[index:index + 1])[:, 0]
            torch.minimum(self.values, to_new, out=self.values)
            self.values[self.rows == index] = -1.0
        if len(self.recent) >= max(MIN_PENDING, int(self.chosen.sum()) // 2) \
                or self.rows.numel() > MAX_CANDIDATES:
            self.refresh()

    def refresh(self):
        """Every row's distance against the recent centers."""
        recent = self.pool[torch.as_tensor(self.recent, device=self.pool.device)]
        torch.minimum(self.bound, nearest_sq_distances(self.pool, recent), out=self.bound)
        self.bound[self.chosen] = -1.0  # below every distance: never the farthest
        self.recent = []
        self._reset()


def _select(pool, labeled, n_instances, rng):
    """:func:`k_center_greedy` on checked tensors."""
    dtype = torch.promote_types(pool.dtype, labeled.dtype)
    (pool, labeled), scale = overflow_safe(pool.to(dtype), labeled.to(dtype))
    n = pool.shape[0]
    cover = _Cover(pool, nearest_sq_distances(pool, labeled))
    indices, scores = [], []
    for pick in range(n_instances):
        if pick == 0 and not labeled.shape[0]:
            index, d2 = randint(rng, n), float("inf")
        else:
            index, d2 = cover.farthest()
        indices.append(index)
        scores.append(float(np.sqrt(max(d2, 0.0))) * scale)
        cover.add(index)
        if pick == 0 and not labeled.shape[0]:
            cover.refresh()  # every bound was infinite
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
    DeepActiveLearner) raises ``ValueError``. Up to 256 MiB of pool embeddings
    (``STREAM_ABOVE_BYTES``: 262,144 rows of 256 floats) the greedy is exact; above,
    one streamed pass keeps the embeddings' 32-dimensional PCA projection only (fitted
    on 10,000 sampled rows) and the greedy covers in that space, an approximation
    measured in docs/scaling.md.

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
    features = pool_features(query, n_components=N_COMPONENTS, centered=True,
                             exact_below_bytes=STREAM_ABOVE_BYTES)
    labeled = labeled.to(features.embeddings.device)
    if features.projection is not None:
        labeled = features.projection(labeled.float())
    indices, scores = _select(features.embeddings, labeled, query.n_instances,
                              query.random_state)
    return query_result(indices, scores)
