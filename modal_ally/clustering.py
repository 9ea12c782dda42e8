"""k-means for pool embeddings that stays fast at k = 1000 on 10^5-10^6 points.

Full k-means with k-means++ seeding on 10^5 x 256 at k = 1000 takes about a minute on
two CPU cores, far longer than the pool's forward pass. Three standard reductions keep
the clustering within a small multiple of that pass, on CPU or CUDA:

1. the embeddings are projected on their top ``n_components`` principal components
   (k-means on a PCA projection approximates k-means on the full space: Boutsidis et
   al., 2015; the projection is fitted on a sample);
2. D^2 (k-means++) seeding, drawn in at most 32 batches instead of k sequential
   steps (exact k-means++ up to k = 33), and
   Lloyd iterations run on a random sample of ``max(10 k, 10^4)`` points (mini-batch
   flavour, as scikit-learn's ``MiniBatchKMeans`` ``init_size``);
3. every pool point is then assigned to its nearest center in bounded-memory chunks.

Nothing is quadratic in the pool: the largest intermediate is ``chunk x k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._torch_utils import as_tensor, sq_distances
from ._validation import numpy_random_state

__all__ = ["kmeans", "pca_fit", "sample_rows", "Projection", "fit_projection"]

_ASSIGN_CHUNK = 8192


#: Rows of the sample the PCA projection is fitted on.
PCA_SAMPLE = 20000


def _pca_projection(X, n_components, rng):
    return pca_fit(X[sample_rows(X.shape[0], PCA_SAMPLE, rng, X.device)], n_components)


def pca_fit(sample, n_components):
    """``(mean, components)`` of the top ``n_components`` principal directions of the
    rows of ``sample``; project with ``(X - mean) @ components``."""
    mean = sample.mean(dim=0)
    centered = sample - mean
    cov = centered.T @ centered / max(sample.shape[0] - 1, 1)
    _, vectors = torch.linalg.eigh(cov.double())
    components = vectors[:, -n_components:].flip(1).to(sample.dtype)
    return mean, components


@dataclass(frozen=True)
class Projection:
    """A linear map to a few dimensions: ``(X - mean) @ components`` (no centering when
    ``mean`` is None)."""

    components: torch.Tensor  # (dim, n_components)
    mean: torch.Tensor | None = None
    residual: bool = False  # one more coordinate: the norm of what the map leaves out

    def __call__(self, X):
        components = self.components.to(device=X.device, dtype=X.dtype)
        if self.mean is not None:
            X = X - self.mean.to(device=X.device, dtype=X.dtype)
        projected = X @ components
        if not self.residual:
            return projected
        rest = ((X * X).sum(dim=1) - (projected * projected).sum(dim=1)).clamp_min_(0)
        return torch.cat([projected, rest.sqrt_()[:, None]], dim=1)


def fit_projection(sample, n_components, *, centered, residual=False):
    """The top ``n_components`` principal directions of the rows of ``sample``.

    ``centered=True``: of their covariance (PCA), for Euclidean distances between the
    rows. ``centered=False``: of their second moment, the best rank-``n_components``
    approximation of the inner products ``x_i . x_j`` themselves, which distances in
    gradient-embedding space are built from (they are not translation-invariant). With
    ``residual``, the map adds the norm of the part of each row it leaves out as one
    more coordinate: norms are kept, distances stay lower bounds of the full ones.
    """
    if centered:
        mean, components = pca_fit(sample, n_components)
        return Projection(components, mean, residual)
    X = sample.double()
    _, vectors = torch.linalg.eigh(X.T @ X / max(X.shape[0], 1))
    return Projection(vectors[:, -n_components:].flip(1).to(sample.dtype), None, residual)


def sample_rows(n, size, rng, device):
    """Sorted positions of ``min(size, n)`` rows drawn without replacement (all rows,
    in order, without a draw, when ``size >= n``)."""
    if size >= n:
        return torch.arange(n, device=device)
    return torch.as_tensor(np.sort(rng.choice(n, size, replace=False)), device=device)



def _kmeans_pp(X, k, rng, n_rounds=32):
    """D^2 seeding (k-means++, Arthur & Vassilvitskii 2007), in batches.

    Plain k-means++ takes k sequential steps; here each of ``n_rounds`` rounds draws a
    batch of centers at once with probability proportional to D^2 (the squared distance
    to the nearest center so far), without replacement, by the Gumbel top-m trick
    (Efraimidis & Spirakis 2006), and then updates D^2 with one matrix product. With
    ``n_rounds >= k - 1`` it is exactly k-means++.
    """
    n = X.shape[0]
    rounds = k - 1 if n_rounds is None else min(k - 1, n_rounds)
    first = int(rng.randint(n))
    chosen = [torch.tensor([first], device=X.device)]
    closest = sq_distances(X, X[first:first + 1], exact=False)[:, 0]
    remaining = k - 1
    for r in range(rounds):
        m = -(-remaining // (rounds - r))  # ceil: spread the k - 1 centers over the rounds
        uniform = torch.as_tensor(rng.random_sample(n), device=X.device, dtype=X.dtype)
        gumbel = -torch.log(-torch.log(uniform.clamp_(1e-12, 1 - 1e-7)))
        keys = torch.log(closest) + gumbel  # log(0) = -inf: chosen points never again
        batch = torch.topk(keys, m).indices
        if not bool(torch.isfinite(keys[batch]).all()):  # fewer distinct points than k
            batch = torch.topk(gumbel - (closest <= 0).to(X.dtype) * 1e9, m).indices
        chosen.append(batch)
        closest = torch.minimum(closest, sq_distances(X, X[batch], exact=False).min(dim=1).values)
        closest[batch] = 0
        remaining -= m
    return X[torch.cat(chosen)]


def _assign(X, centers):
    """Nearest center of every row and its squared distance, in chunks.

    The argmin only needs ``|c|^2 - 2 x.c`` (one fused matrix product per chunk);
    ``|x|^2`` is added back for the winning center alone.
    """
    labels = torch.empty(X.shape[0], dtype=torch.long, device=X.device)
    dists = torch.empty(X.shape[0], dtype=X.dtype, device=X.device)
    c_sq = (centers * centers).sum(dim=1)
    for start in range(0, X.shape[0], _ASSIGN_CHUNK):
        block = X[start:start + _ASSIGN_CHUNK]
        best = torch.addmm(c_sq, block, centers.T, beta=1.0, alpha=-2.0).min(dim=1)
        labels[start:start + _ASSIGN_CHUNK] = best.indices
        dists[start:start + _ASSIGN_CHUNK] = (best.values + (block * block).sum(dim=1)
                                              ).clamp_min_(0)
    return labels, dists


def lloyd(sample, centers, *, n_iter=10, tol=1e-3):
    """Lloyd iterations on ``sample`` from ``centers``; an empty cluster keeps its
    center. Stops after ``n_iter`` or when the mean squared center shift falls below
    ``tol`` times the sample's variance."""
    scale = float((sample - sample.mean(dim=0)).pow(2).sum(dim=1).mean()) or 1.0
    for _ in range(n_iter):
        labels, _ = _assign(sample, centers)
        sums = torch.zeros_like(centers).index_add_(0, labels, sample)
        counts = torch.bincount(labels, minlength=centers.shape[0]).to(sample.dtype)
        filled = counts > 0
        updated = centers.clone()
        updated[filled] = sums[filled] / counts[filled, None]
        shift = float((updated - centers).pow(2).sum(dim=1).mean())
        centers = updated
        if shift <= tol * scale:
            break
    return centers


def kmeans(embeddings, n_clusters, *, random_state=None, n_iter=10, n_components=32,
           max_samples=None, seeding_rounds=32, tol=1e-3, device=None):
    """Cluster rows of ``embeddings`` into ``n_clusters`` groups.

    Parameters
    ----------
    embeddings : numpy.ndarray or torch.Tensor of shape (n_samples, dim)
    n_clusters : int
        Number of clusters; clamped to ``n_samples``.
    random_state : int, RandomState, torch.Generator or None
        Seeds the sample, the seeding and the projection.
    n_iter : int, default 10
        At most this many Lloyd iterations on the sample.
    n_components : int or None, default 32
        Dimensions kept by the PCA projection; None clusters in the full space.
    max_samples : int or None
        Size of the sample the centers are fitted on; default ``max(10 k, 10^4)``.
    seeding_rounds : int or None, default 32
        Rounds of batched D^2 seeding: exact k-means++ up to k = 33 clusters, then
        about k / 32 centers per round (at k = 1000 the k-means objective is within
        0.1% of sequential seeding). None is always sequential k-means++.
    tol : float, default 1e-3
        Lloyd stops when the mean squared center shift falls below ``tol`` times the
        sample's variance.
    device : torch device or None
        Where to compute; default: where ``embeddings`` are.

    Returns
    -------
    labels : numpy.ndarray of shape (n_samples,), int64
        The cluster of each row; clusters may be empty.
    sq_distances : numpy.ndarray of shape (n_samples,), float32
        Squared distance of each row to its cluster's center (in the projected space).
    """
    rng = numpy_random_state(random_state)
    X = as_tensor(embeddings, device)
    n = X.shape[0]
    if n == 0:
        raise ValueError("cannot cluster an empty set of embeddings")
    k = int(min(n_clusters, n))
    if k == n:
        return np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.float32)
    if n_components is not None and X.shape[1] > n_components:
        mean, components = _pca_projection(X, n_components, rng)
        X = torch.cat([(X[s:s + _ASSIGN_CHUNK] - mean) @ components
                       for s in range(0, n, _ASSIGN_CHUNK)])
    size = max_samples or max(10 * k, 10_000)
    sample = X[sample_rows(n, size, rng, X.device)]
    centers = lloyd(sample, _kmeans_pp(sample, k, rng, n_rounds=seeding_rounds),
                    n_iter=n_iter, tol=tol)
    labels, dists = _assign(X, centers)
    return labels.cpu().numpy(), dists.float().cpu().numpy()
