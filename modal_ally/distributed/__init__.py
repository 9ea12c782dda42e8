"""Query strategies on Dask array pools: one pass over the blocks, summaries back.

A ``dask.array.Array`` pool chunked along rows (from zarr, HDF5, memmaps...) is never
gathered: the fitted net is shipped to every worker once, each block is embedded,
scored and clustered where it lives, and only a small summary per block comes back
(the candidates of the equitable selection of ALLY, Elenter et al., NeurIPS 2022).
Without a ``distributed.Client`` the work runs on dask's default scheduler on this
machine; with one, on its cluster. Nothing here starts a cluster.

Dask is an optional dependency (``pip install modal_ally[dask]``): this module imports
it only when a pool is a Dask array.
"""

from __future__ import annotations

import copy
import sys

import numpy as np
import torch

from .._compat import modal_returns_scores, query_result
from .._validation import check_array, is_dask_collection
from ..clustering import _assign, _kmeans_pp, _pca_projection, lloyd, sample_rows

__all__ = ["is_dask_collection", "check_dask_pool", "require_dask", "current_client"]

EXTRA = "pip install modal_ally[dask]"
#: Summaries merged per task of the tree reduction.
FAN_IN = 8


def require_dask():
    """Import ``dask.array``, or raise an ImportError naming the extra to install."""
    try:
        import dask
        import dask.array  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"X_pool is a Dask array, but dask[array] cannot be imported ({exc}); install "
            f"modal_ally's dask extra: {EXTRA}") from exc
    return dask


def check_dask_pool(X_pool, *, n_features=None, name="X_pool"):
    """Check a Dask array pool without computing it; rechunk it along rows only.

    The dtype, the number of dimensions and the per-sample shape are checked as for a
    numpy pool (same messages); NaN and infinity are checked per chunk while the pool
    is processed.
    """
    require_dask()
    import dask.array as da

    if not isinstance(X_pool, da.Array):
        raise TypeError(f"{name} must be a dask.array.Array, got {type(X_pool).__name__}")
    if any(np.isnan(size) for size in X_pool.shape):
        raise ValueError(f"{name} has unknown chunk sizes {X_pool.shape}: call "
                         f"{name}.compute_chunk_sizes() first")
    check_array(np.empty((0, *X_pool.shape[1:]), dtype=X_pool.dtype), name=name,
                n_features=n_features, allow_empty=True)
    if X_pool.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if any(len(chunks) > 1 for chunks in X_pool.chunks[1:]):
        X_pool = X_pool.rechunk({axis: -1 for axis in range(1, X_pool.ndim)})
    return X_pool


# ----------------------------------------------------------------------- plumbing
def current_client():
    """The default ``distributed.Client`` if the user made one, else None (no import)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        return distributed.default_client()
    except ValueError:
        return None


def ship(obj):
    """Send ``obj`` to the workers once: scattered to every worker with a Client, one
    graph key shared by every task without one."""
    dask = require_dask()
    client = current_client()
    if client is not None:
        return client.scatter(obj, broadcast=True, hash=False)
    return dask.delayed(obj, pure=True, traverse=False)


def compute(*objects):
    """Run task graphs on the current scheduler; everything the client receives
    passes here."""
    dask = require_dask()
    return dask.compute(*objects)


def block_tasks(function, X_pool, *args):
    """One delayed ``function(block, offset, *args)`` per block of rows."""
    dask = require_dask()
    task = dask.delayed(function, pure=True)
    offsets = np.r_[0, np.cumsum(X_pool.chunks[0])[:-1]].tolist()
    return [task(block, int(offset), *args)
            for block, offset in zip(X_pool.to_delayed().ravel(), offsets)]


def tree_reduce(parts, merge, *args, fan_in=FAN_IN):
    """Merge summaries ``fan_in`` at a time until one is left (on the workers)."""
    dask = require_dask()
    task = dask.delayed(merge, pure=True)
    while len(parts) > 1:
        parts = [task(parts[i:i + fan_in], *args) for i in range(0, len(parts), fan_in)]
    return parts[0]


def _take(block, offset, rows):
    return np.take(block, rows, axis=0)  # a copy: the block itself can go


def fetch_rows(X_pool, rows):
    """The pool rows at positions ``rows`` (any order), as numpy; only they travel."""
    dask = require_dask()
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    wanted = rows[order]
    bounds = np.r_[0, np.cumsum(X_pool.chunks[0])]
    task = dask.delayed(_take, pure=True)
    parts = []
    for block, lo, hi in zip(X_pool.to_delayed().ravel(), bounds[:-1], bounds[1:]):
        inside = wanted[(wanted >= lo) & (wanted < hi)]
        if inside.shape[0]:
            parts.append(task(block, int(lo), inside - lo))
    values = np.concatenate(compute(*parts)) if parts else \
        np.empty((0, *X_pool.shape[1:]), dtype=X_pool.dtype)
    out = np.empty_like(values)
    out[order] = values
    return out


class LazyEmbeddings:
    """The pool's embeddings as the clustering sees them, computed for requested rows.

    Indexing with row positions embeds those rows (fetched from the pool) on the
    client; rows asked for before are cached. ``prefetch`` gets many rows in one read.
    """

    def __init__(self, X_pool, block_net, dim):
        self.X_pool, self.block_net = X_pool, block_net
        self.shape = (int(X_pool.shape[0]), int(dim))
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self._rows = np.empty(0, dtype=np.int64)
        self._values = torch.empty((0, dim))

    def float(self):
        return self

    def prefetch(self, rows):
        rows = np.setdiff1d(np.asarray(rows, dtype=np.int64), self._rows)
        if rows.shape[0]:
            values = self.block_net.embed(fetch_rows(self.X_pool, rows)).cpu()
            merged = np.concatenate([self._rows, rows])
            order = np.argsort(merged, kind="stable")
            self._rows = merged[order]
            self._values = torch.cat([self._values, values])[torch.as_tensor(order)]

    def __getitem__(self, rows):
        rows = np.asarray(torch.as_tensor(rows).cpu(), dtype=np.int64)
        self.prefetch(np.unique(rows))
        return self._values[torch.as_tensor(np.searchsorted(self._rows, rows))]

    def mean(self):
        return self._values.mean(dim=0)


def embedding_dim(block_net, feature_shape):
    """Width of the backbone's output, from a forward pass of two zero samples."""
    with torch.no_grad():
        probe = torch.zeros((2, *feature_shape), device=block_net.placed())
        return int(block_net.module.backbone(probe).reshape(2, -1).shape[1])


# ----------------------------------------------------------------------- clustering
def fit_clustering(embeddings, n_clusters, rng, n_components):
    """The centers ``clustering.kmeans`` would fit, from sampled rows of a lazy pool.

    The same random draws in the same order (projection sample, center sample,
    seeding) on the same rows give the same centers; both samples are fetched in one
    read. Returns ``(centers, mean, components, n_nonempty)``, the last being how many
    centers the sample itself uses.
    """
    n, dim = embeddings.shape
    project = n_components is not None and dim > n_components
    size = max(10 * n_clusters, 10_000)
    probe = copy.deepcopy(rng)
    wanted = [sample_rows(n, 20000, probe, "cpu")] if project else []
    wanted.append(sample_rows(n, size, probe, "cpu"))
    embeddings.prefetch(torch.unique(torch.cat(wanted)).numpy())
    mean = components = None
    if project:
        mean, components = _pca_projection(embeddings, n_components, rng)
    sample = embeddings[sample_rows(n, size, rng, "cpu")]
    if project:
        sample = (sample - mean) @ components
    centers = lloyd(sample, _kmeans_pp(sample, n_clusters, rng, n_rounds=32))
    n_nonempty = int(torch.unique(_assign(sample, centers)[0]).shape[0])
    return centers, mean, components, n_nonempty


def dask_query_result(X_pool, indices, scores):
    """A strategy's answer on a Dask pool, shaped for the installed modAL.

    modAL 0.4.2.x takes ``(indices, scores)`` and indexes the pool itself (a lazy Dask
    array of the rows). modAL 0.4.1 cannot index a Dask array (its ``retrieve_rows``
    raises TypeError), but hands a tuple back as it is (with a DeprecationWarning): the
    answer is ``(indices, rows)``, the rows computed as numpy.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if modal_returns_scores():
        return query_result(indices, scores)
    return indices, fetch_rows(X_pool, indices)
