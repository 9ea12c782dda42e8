"""BADGE and Core-Set on blocks of a Dask pool: select per block, then on the union.

Both exact selections are sequential over the whole pool (each pick depends on every
distance so far), so the Dask path runs them in two rounds, as distributed clustering
does:

- **Core-Set** (greedy k-center, Sener & Savarese, ICLR 2018): every block runs the
  exact greedy selection of ``b`` points around the labeled set; the union of the
  blocks' picks is reduced by the same greedy rule. Two rounds of greedy k-center
  cover within 4 times the optimal radius (Malkomes et al., "Fast distributed
  k-center clustering with outliers on massive data", NeurIPS 2015); each further
  level of the merge tree adds a factor 2 to that bound.
- **BADGE** (k-means++ on gradient embeddings, Ash et al., ICLR 2020): every block runs
  the exact k-means++ seeding of ``b`` points; each pick is weighted by the number of
  block points nearest to it, and the union is reduced by weighted k-means++ seeding
  (the divide-and-conquer coreset of Guha et al., "Clustering data streams", 2003;
  Ailon et al., "Streaming k-means approximation", NeurIPS 2009).

Gradient embeddings ``g_i = a_i (outer) e_i`` (``a_i = p_i - onehot(argmax p_i)``) are
never formed; distances use their factored form, and candidates travel as ``(a, e)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_ROWS = 2048


@dataclass
class Picks:
    """Selected pool rows of a block (or of merged blocks) and what the merge needs."""

    indices: np.ndarray  # pool rows, int64
    vectors: np.ndarray  # embeddings e (Core-Set) or [a | e] (BADGE), float32
    weights: np.ndarray  # BADGE: block points each pick stands for; Core-Set: D^2 to labeled
    scores: np.ndarray  # D^2 (BADGE) or distance (Core-Set) of each pick when picked

    @property
    def nbytes(self) -> int:
        return sum(x.nbytes for x in (self.indices, self.vectors, self.weights, self.scores))


def gradient_factors(probs) -> torch.Tensor:
    """``a_i = p_i - onehot(argmax p_i)``: BADGE's gradient embedding is ``a_i e_i^T``."""
    a = probs.clone()
    a[torch.arange(a.shape[0]), a.argmax(dim=1)] -= 1.0
    return a


def gradient_sq_distances(a, e, a_c, e_c):
    """``||a_i e_i^T - a_c e_c^T||^2`` for every row ``i``, exact (0 for duplicates)."""
    da, de = a - a_c, e - e_c
    return ((da * da).sum(dim=1) * (e * e).sum(dim=1) + (a_c @ a_c) * (de * de).sum(dim=1)
            + 2.0 * (da @ a_c) * (e * de).sum(dim=1)).clamp_min_(0.0)


def nearest_gradient_center(a, e, centers_a, centers_e):
    """Index of the nearest center of every row in gradient space, in row blocks."""
    c_sq = (centers_a * centers_a).sum(dim=1) * (centers_e * centers_e).sum(dim=1)
    out = []
    for s in range(0, a.shape[0], _ROWS):
        cross = (a[s:s + _ROWS] @ centers_a.T) * (e[s:s + _ROWS] @ centers_e.T)
        out.append((c_sq[None, :] - 2.0 * cross).argmin(dim=1))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def _rng(seed, index):
    return np.random.RandomState([int(seed), int(index) % (2**32)])


def badge_block(block, offset, block_net, n_instances, seed, select):
    """Exact BADGE seeding (``select``) on one block; picks weighted by their cells."""
    embeddings = block_net.embed(block)
    probs = block_net.probabilities(embeddings)
    m = min(n_instances, embeddings.shape[0])
    local, scores = select(probs, embeddings, m, random_state=_rng(seed, offset))
    a = gradient_factors(probs)
    picks = torch.as_tensor(local, device=a.device)
    nearest = nearest_gradient_center(a, embeddings, a[picks], embeddings[picks])
    weights = torch.bincount(nearest, minlength=m).cpu().numpy().astype(np.float64)
    vectors = torch.cat([a[picks], embeddings[picks]], dim=1).cpu().numpy()
    return Picks(local + offset, vectors, weights, scores)


def weighted_gradient_seeding(a, e, weights, n_instances, rng):
    """k-means++ seeding of weighted points in gradient space.

    The first pick has the largest gradient norm (the lowest row among ties); every
    next one is drawn with probability proportional to ``weight * D^2``. When every
    remaining ``D^2`` is 0 the rest is filled by gradient norm.
    """
    g_sq = (a * a).sum(dim=1) * (e * e).sum(dim=1)
    first = int(torch.argmax(g_sq))
    picks, scores = [first], [float(g_sq[first])]
    min_d2 = gradient_sq_distances(a, e, a[first], e[first])
    min_d2[first] = 0.0
    w = torch.as_tensor(weights, dtype=torch.float64, device=a.device)
    while len(picks) < n_instances:
        cumulative = torch.cumsum(w * min_d2.double(), dim=0)
        total = float(cumulative[-1])
        if not total > 0:
            break
        target = torch.tensor([rng.random_sample() * total], dtype=torch.float64,
                              device=a.device)
        index = min(int(torch.searchsorted(cumulative, target, right=True)[0]),
                    a.shape[0] - 1)
        if not bool(min_d2[index] > 0):  # rounding at the top of the sum
            index = int((min_d2 > 0).nonzero(as_tuple=True)[0][-1])
        picks.append(index)
        scores.append(float(min_d2[index]))
        torch.minimum(min_d2, gradient_sq_distances(a, e, a[index], e[index]), out=min_d2)
        min_d2[index] = 0.0
    if len(picks) < n_instances:
        rest = np.setdiff1d(np.arange(a.shape[0]), picks)
        fill = rest[np.argsort(-g_sq[rest].cpu().numpy(), kind="stable")]
        fill = fill[:n_instances - len(picks)].tolist()
        picks, scores = picks + fill, scores + [0.0] * len(fill)
    return np.asarray(picks, dtype=np.int64), np.asarray(scores, dtype=np.float64)


def _union(parts):
    indices = np.concatenate([p.indices for p in parts])
    order = np.argsort(indices, kind="stable")
    vectors = torch.from_numpy(np.concatenate([p.vectors for p in parts])[order])
    return indices[order], vectors, np.concatenate([p.weights for p in parts])[order]


def merge_badge(parts, n_instances, seed, n_classes):
    """Weighted k-means++ on the union of the parts' picks (weights add up)."""
    indices, vectors, weights = _union(parts)
    a, e = vectors[:, :n_classes], vectors[:, n_classes:]
    picks, scores = weighted_gradient_seeding(a, e, weights, min(n_instances, len(indices)),
                                              _rng(seed, indices[0]))
    nearest = nearest_gradient_center(a, e, a[picks], e[picks]).numpy()
    merged = np.bincount(nearest, weights=weights, minlength=picks.shape[0])
    return Picks(indices[picks], vectors[picks].numpy(), merged, scores)


def sq_distances_to_set(X, reference, *, rows=128, cols=512):
    """Squared distance of every row of ``X`` to its nearest row of ``reference``, from
    the differences (exact; ``rows x cols x dim`` floats at a time)."""
    out = torch.full((X.shape[0],), float("inf"), dtype=torch.float64)
    for s in range(0, reference.shape[0], cols):
        ref = reference[s:s + cols]
        for r in range(0, X.shape[0], rows):
            diff = X[r:r + rows, None, :] - ref[None, :, :]
            nearest = (diff * diff).sum(dim=2).min(dim=1).values.double().cpu()
            out[r:r + rows] = torch.minimum(out[r:r + rows], nearest)
    return out


def coreset_block(block, offset, block_net, labeled, n_instances, select):
    """Exact greedy k-center (``select``) on one block, around the labeled set."""
    embeddings = block_net.embed(block)
    m = min(n_instances, embeddings.shape[0])
    local, scores = select(embeddings, labeled.to(embeddings.device), m)
    vectors = embeddings[torch.as_tensor(local, device=embeddings.device)].cpu()
    to_labeled = sq_distances_to_set(vectors, labeled.cpu()).numpy()
    return Picks(local + offset, vectors.numpy(), to_labeled, scores)


def merge_coreset(parts, n_instances):
    """Greedy k-center on the union of the parts' picks, around the labeled set."""
    indices, vectors, to_labeled = _union(parts)
    min_d2 = torch.as_tensor(to_labeled)
    picks, scores = [], []
    for _ in range(min(n_instances, indices.shape[0])):
        index = int(torch.argmax(min_d2))
        picks.append(index)
        scores.append(float(min_d2[index].sqrt()))
        diff = vectors - vectors[index]
        torch.minimum(min_d2, (diff * diff).sum(dim=1).double(), out=min_d2)
        min_d2[index] = -1.0
    picks = np.asarray(picks, dtype=np.int64)
    return Picks(indices[picks], vectors[picks].numpy(), to_labeled[picks], np.asarray(scores))
