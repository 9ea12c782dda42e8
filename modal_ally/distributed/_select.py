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
- **BADGE** and **ALLY's default rule** (k-means++ seeding on gradient embeddings, Ash
  et al., ICLR 2020; ALLY's draws weighted by the shrunk predicted multipliers): every
  block runs the seeding of ``b`` points (exact in distribution,
  :func:`modal_ally._seeding.gradient_seeding`); each pick stands for the block rows
  nearest to it and carries their total draw weight; the union is reduced by the same
  seeding with those weights (the divide-and-conquer coreset of Guha et al.,
  "Clustering data streams", 2003; Ailon et al., "Streaming k-means approximation",
  NeurIPS 2009). The first pick of every round is the row of largest own weight times
  ``|g|^2``, so the batch's first pick is the pool's, as in memory.

Gradient embeddings ``g_i = a_i (outer) z_i`` (``a_i = p_i - onehot(argmax p_i)``) are
never formed; distances use their factored form, and candidates travel as ``(a, z)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._allocator import steady_heap_task
from .._seeding import gradient_factors, gradient_seeding, nearest_centers

_ROWS = 2048


@dataclass
class Picks:
    """Core-Set's picks of a block (or of merged blocks) and what the merge needs."""

    indices: np.ndarray  # pool rows, int64
    vectors: np.ndarray  # embeddings, float32
    weights: np.ndarray  # D^2 to the labeled set
    scores: np.ndarray  # distance of each pick when picked

    @property
    def nbytes(self) -> int:
        return sum(x.nbytes for x in (self.indices, self.vectors, self.weights, self.scores))


@dataclass
class Seeds:
    """Gradient-space picks of a block (or of merged blocks) and what the merge needs."""

    indices: np.ndarray  # pool rows, int64
    factors: np.ndarray  # (m, C) gradient output factors a
    embeddings: np.ndarray  # (m, p) embeddings z (projected for ALLY's default rule)
    mass: np.ndarray  # total draw weight of the rows each pick stands for
    count: np.ndarray  # how many rows each pick stands for
    weight: np.ndarray  # each pick's own draw weight
    duals: np.ndarray  # each pick's predicted multiplier (0 without a dual head)
    d2: np.ndarray  # each pick's D^2 when picked, in the last round

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in self.__dataclass_fields__)


def _rng(seed, index):
    return np.random.RandomState([int(seed), int(index) % (2**32)])


def interpolate(x, xp, fp):
    """Piecewise-linear ``x -> f`` through the points ``(xp, fp)`` (``xp`` sorted), with
    the end segments' slopes continued beyond them."""
    out = np.interp(x, xp, fp)
    if xp.shape[0] < 2 or not xp[-1] > xp[0]:
        return out
    low, high = np.searchsorted(xp, xp[0], "right"), np.searchsorted(xp, xp[-1]) - 1
    below, above = x < xp[0], x > xp[-1]
    out[below] = fp[0] + (fp[low] - fp[0]) / (xp[low] - xp[0]) * (x[below] - xp[0])
    out[above] = fp[-1] + (fp[-1] - fp[high]) / (xp[-1] - xp[high]) * (x[above] - xp[-1])
    return out


@dataclass
class SeedingPlan:
    """What every block of a two-round gradient seeding needs.

    ``calibration`` is ``(scores, weights)`` of a uniform sample of pool rows, sorted by
    score: a row's draw weight is interpolated from its predicted multiplier through
    them (the weights of ALLY's default rule depend on the whole pool's multipliers);
    None: every row weighs 1.
    """

    n_instances: int
    seed: int
    classifier: bool = True
    duals: bool = False
    projection: object = None  # clustering.Projection or None
    calibration: tuple | None = None
    max_dual: float | None = None
    temperature: float = 1.0  # the gradient factors read the probabilities at it

    def weights(self, scores) -> np.ndarray:
        w = np.ones(scores.shape[0])
        if self.calibration is not None:
            w = np.maximum(interpolate(scores, *self.calibration), 0.0)
        if self.max_dual is not None:
            w[scores > self.max_dual] = 0.0
        return w


def _block_features(block, block_net, plan):
    """Gradient factors, (projected) embeddings and predicted multipliers of a block."""
    embeddings = block_net.embed(block)
    n = embeddings.shape[0]
    probs = block_net.probabilities(embeddings) if plan.classifier else None
    scores = block_net.dual(embeddings, head="pool", probs=probs) if plan.duals \
        else np.zeros(n)
    if plan.classifier:  # the class head's one pass, read by the duals too
        a = gradient_factors(probs, plan.temperature)
    else:  # a regressor: every pair of rows at a_i . a_j = 1/2
        a = torch.full((n, 1), float(np.sqrt(0.5)), device=embeddings.device)
    z = embeddings if plan.projection is None else plan.projection(embeddings)
    return a, z, scores


def _reduce(a, z, indices, mass, count, weight, duals, n_picks, rng):
    """Weighted seeding of ``n_picks`` rows; each pick takes the mass of its cell."""
    draw = mass if mass.sum() > 0 else count  # every row guarded: by the rows alone
    local, d2 = gradient_seeding(a, z, n_picks, rng, weights=torch.as_tensor(draw),
                                 first_weights=torch.as_tensor(weight))
    picks = torch.as_tensor(local, device=a.device)
    _, nearest = nearest_centers(a, z, a[picks], z[picks])
    nearest = nearest.cpu().numpy()
    return Seeds(indices[local], a[picks].cpu().numpy(), z[picks].cpu().numpy(),
                 np.bincount(nearest, weights=mass, minlength=n_picks),
                 np.bincount(nearest, weights=count, minlength=n_picks),
                 weight[local], duals[local], d2)


@steady_heap_task
def seeding_block(block, offset, block_net, plan):
    """Seed ``b`` picks of one block; every pick weighted by the rows nearest to it."""
    a, z, scores = _block_features(block, block_net, plan)
    n = a.shape[0]
    w = plan.weights(scores)
    return _reduce(a, z, np.arange(offset, offset + n), w, np.ones(n), w, scores,
                   min(plan.n_instances, n), _rng(plan.seed, offset))


def _union(parts, *fields):
    """The parts' arrays ``fields`` concatenated, rows ordered by pool index."""
    order = np.argsort(np.concatenate([p.indices for p in parts]), kind="stable")
    return [np.concatenate([getattr(p, field) for p in parts])[order] for field in fields]


def merge_seeds(parts, plan):
    """The same seeding on the union of the parts' picks (masses add up)."""
    indices, a, z, mass, count, weight, duals = _union(
        parts, "indices", "factors", "embeddings", "mass", "count", "weight", "duals")
    return _reduce(torch.from_numpy(a), torch.from_numpy(z), indices, mass, count, weight,
                   duals, min(plan.n_instances, indices.shape[0]),
                   _rng(plan.seed, indices[0]))


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


@steady_heap_task
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
    indices, vectors, to_labeled = _union(parts, "indices", "vectors", "weights")
    vectors = torch.from_numpy(vectors)
    # the cover's working values, a copy: each pick must keep its distance to the
    # labeled set for the next level of the merge tree
    min_d2 = torch.tensor(to_labeled, dtype=torch.float64)
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
