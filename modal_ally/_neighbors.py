"""The neighbour search of the label audit's ``"neighbors"`` scores (modal_ally.label_audit).

How far each labeled row's label is from its nearest labeled rows', in the embedding
space of the last fit or in the input space.
"""

from __future__ import annotations

import numpy as np

from ._validation import is_dask_collection, is_sparse

#: Rows per block of the neighbour search (a block x n matrix of distances).
_NEIGHBOR_BLOCK = 1024
#: Input features above this many are randomly projected to it before the search in the
#: input space, so that it costs ``O(n^2 MAX_INPUT_DIMS)`` at most for n labeled rows.
MAX_INPUT_DIMS = 1024


def nearest_rows(embeddings, k: int, *, rows=None) -> np.ndarray:
    """The ``k`` nearest other rows of every row (Euclidean), shape (n, k), or of the
    rows ``rows`` only, shape (len(rows), k); exact, in blocks of rows (``O(n^2 d)`` work
    at most, ``_NEIGHBOR_BLOCK x n`` distances at a time)."""
    import torch

    from ._torch_utils import sq_distances

    E = torch.as_tensor(np.asarray(embeddings), dtype=torch.float64)
    sq = (E * E).sum(dim=1)
    rows = np.arange(E.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    out = np.empty((rows.size, k), dtype=np.int64)
    for start in range(0, rows.size, _NEIGHBOR_BLOCK):
        block = torch.as_tensor(rows[start:start + _NEIGHBOR_BLOCK])
        d2 = sq_distances(E[block], E, X_sq=sq[block], Y_sq=sq)  # copies at exactly 0
        d2[torch.arange(block.shape[0]), block] = np.inf
        out[start:start + block.shape[0]] = d2.topk(k, dim=1, largest=False).indices.numpy()
    return out


def numeric_rows(X) -> bool:
    """Whether ``X`` is a dense array of numbers (not None, sparse, Dask or text)."""
    if X is None or is_sparse(X) or is_dask_collection(X):
        return False
    try:
        np.asarray(X[:1], dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def standardized_rows(X, n_rows: int) -> np.ndarray:
    """``X`` flattened to ``(n_rows, -1)``, each feature standardized (a constant feature
    stays at 0), in float64; above :data:`MAX_INPUT_DIMS` features randomly projected
    to that many (a sparse random projection, Li, Hastie and Church, KDD 2006, seeded:
    distances kept to a few per cent), a block of rows at a time. ValueError for NaN or
    infinite values."""
    X = np.asarray(X).reshape(n_rows, -1)
    mean = X.mean(axis=0, dtype=np.float64)
    if not np.isfinite(mean).all():
        raise ValueError("the labeled rows (X) hold NaN or infinite values")
    scale = X.std(axis=0, dtype=np.float64)
    scale[~(scale > 0)] = 1.0
    projection = None
    if X.shape[1] > MAX_INPUT_DIMS:
        from sklearn.random_projection import SparseRandomProjection

        projection = SparseRandomProjection(MAX_INPUT_DIMS, dense_output=True,
                                            random_state=0).fit(X[:1])
    out = np.empty((n_rows, min(X.shape[1], MAX_INPUT_DIMS)))
    for start in range(0, n_rows, _NEIGHBOR_BLOCK):
        block = (np.asarray(X[start:start + _NEIGHBOR_BLOCK], dtype=np.float64) - mean) / scale
        out[start:start + _NEIGHBOR_BLOCK] = block if projection is None \
            else projection.transform(block)
    return out


def label_distances(space, y, *, classification: bool, k: int) -> np.ndarray:
    """Each row's label against its ``k`` nearest rows' in ``space`` (n x d).

    A classifier: the share of the neighbours whose label differs. A regressor:
    ``|y_i - median of the neighbours' targets|`` in units of the targets' standard
    deviation (the norm over the outputs), an estimate of the row's target that the row
    itself cannot sway.
    """
    y = np.asarray(y)
    n = len(y)
    if n < 2:
        return np.zeros(n)
    nearest = nearest_rows(space, min(k, n - 1))
    y = y.reshape(n, -1)
    if classification:
        return (y[nearest] != y[:, None, :]).any(axis=2).mean(axis=1).astype(np.float64)
    y = y.astype(np.float64)
    scale = y.std(axis=0)
    scale[~(scale > 0)] = 1.0
    gap = (y - np.median(y[nearest], axis=1)) / scale  # per output, in its std
    return np.sqrt((gap * gap).sum(axis=1))


#: Neighbours of the ``"neighbors"`` consensus prior.
PRIOR_NEIGHBORS = 10


def neighbor_prior(embeddings, labels, classes, rows, model_probabilities):
    """The ``"neighbors"`` consensus prior of ``rows`` (:func:`modal_ally.relabel`, the
    journal): the share of each of ``classes`` among the labels of each row's
    :data:`PRIOR_NEIGHBORS` nearest other rows of ``embeddings`` (one per labeled row,
    ``labels`` theirs), the model's probabilities of the rows counted as one more
    neighbour; shape (len(rows), n_classes)."""
    classes, labels = np.asarray(classes), np.asarray(labels)
    k = min(PRIOR_NEIGHBORS, len(labels) - 1)
    near = nearest_rows(embeddings, k, rows=rows)
    counts = np.zeros((len(rows), classes.size))
    np.add.at(counts, (np.repeat(np.arange(len(rows)), k),
                       np.searchsorted(classes, labels[near].ravel())), 1.0)
    return (counts + np.asarray(model_probabilities)) / (k + 1.0)
