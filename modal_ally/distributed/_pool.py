"""What a Dask worker runs on one block of the pool: the shipped net and the ALLY block step.

Nothing here imports dask: these are plain functions of numpy blocks, called by the
task graph that :mod:`modal_ally.distributed` builds (one task per block of rows). A
block returns a small summary, never its embeddings: the candidates the equitable
selection of ALLY (Elenter et al., NeurIPS 2022, Algorithm 2) could pick from it and
the size of each cluster in it.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass

import numpy as np
import torch

from .._allocator import steady_heap_task
from .._inference import DEFAULT_CHUNK_SIZE, iter_chunks
from .._torch_utils import min_sq_distances
from ..clustering import _assign
from ..dual_head import DualScaling, predict_dual

#: One candidate of the equitable selection: its pool row, the value it is ranked by
#: (predicted lambda, or minus the distance to its center when the dual head learned
#: nothing), its predicted lambda, its cluster, whether the outlier guard skips it and
#: whether it lies within delta of a labeled sample (redundancy-aware ALLY).
CANDIDATE = np.dtype([("index", "i8"), ("rank", "f8"), ("score", "f8"), ("label", "i8"),
                      ("skip", "?"), ("blocked", "?")])

_PROJECT_CHUNK = 8192


class BlockNet:
    """The part of a fitted net that scores a block: backbone, head and dual heads
    (the paper's, and the pool's label-conditional head, which reads the head's class
    probabilities).

    Pickles as its modules' state and their (importable) classes, without the skorch
    history, optimizer or training data. On a worker it moves itself once to that
    worker's device: the net's device when the worker has it, the CPU otherwise.
    """

    #: How many BlockNets this process has unpickled (a worker should do it once a query).
    unpickled = 0

    def __init__(self, module, dual_head, *, dual_mean, dual_scale, chunk_size, device,
                 pool_dual_head=None, pool_scaling=None, classifier=True):
        self.module = module
        self.dual_head = dual_head
        self.dual_mean = dual_mean
        self.dual_scale = dual_scale
        self.pool_dual_head = pool_dual_head
        self.pool_scaling = pool_scaling
        self.classifier = classifier
        self.chunk_size = chunk_size
        self.device = str(device)
        self._placed = None
        self._lock = threading.Lock()

    @classmethod
    def from_net(cls, net):
        """Copy what scoring needs out of a fitted skorch net (the net is not changed)."""
        fitted = bool(getattr(net, "dual_head_fitted_", False))
        module = copy.deepcopy(net.module_).to("cpu").train(False)
        dual_head = copy.deepcopy(net.dual_head_).to("cpu").train(False) if fitted else None
        pool_head, pool_scaling = None, None
        if fitted and getattr(net, "pool_dual_head_", None) is not None \
                and net.pool_dual_head_ is not net.dual_head_:
            pool_head = copy.deepcopy(net.pool_dual_head_).to("cpu").train(False)
            pool_scaling = net.pool_dual_scaling_
        return cls(module, dual_head,
                   dual_mean=float(getattr(net, "dual_target_mean_", 0.0)),
                   dual_scale=float(getattr(net, "dual_target_scale_", 1.0)),
                   chunk_size=int(getattr(net, "chunk_size", None) or DEFAULT_CHUNK_SIZE),
                   device=net.device, pool_dual_head=pool_head, pool_scaling=pool_scaling,
                   classifier=getattr(net, "_task", "classification") != "regression")

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_placed"], state["_lock"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
        type(self).unpickled += 1

    def placed(self) -> torch.device:
        """The device this process runs the net on (modules moved there once)."""
        with self._lock:
            if self._placed is None:
                device = torch.device(self.device)
                if device.type == "cuda" and not torch.cuda.is_available():
                    device = torch.device("cpu")
                self.module.to(device)
                for head in (self.dual_head, self.pool_dual_head):
                    if head is not None:
                        head.to(device)
                self._placed = device
            return self._placed

    @torch.no_grad()
    def embed(self, block, *, name="X_pool") -> torch.Tensor:
        """Backbone embeddings of a numpy block, float32, on :meth:`placed`."""
        device = self.placed()
        out, start = None, 0
        for chunk in iter_chunks(block, self.chunk_size, device, name=name):
            part = self.module.backbone(chunk).float()
            part = part.reshape(part.shape[0], -1)
            if out is None:  # filled chunk by chunk: no list of parts and no copy of it
                out = part.new_empty((block.shape[0], part.shape[1]))
            out[start:start + part.shape[0]] = part
            start += part.shape[0]
        return out if out is not None else torch.empty((0, 0), device=device)

    @torch.no_grad()
    def dual(self, embeddings, head="paper", probs=None) -> np.ndarray:
        """Predicted dual variables (float64, >= 0; zeros when the head learned nothing),
        by :func:`modal_ally.dual_head.predict_dual` as the net computes them:
        ``head="paper"`` the paper's head, ``"pool"`` the pool's (the paper's where the
        net has no other); ``probs``: the embeddings' class probabilities where the
        caller has them (:meth:`probabilities`)."""
        if self.dual_head is None:
            return np.zeros(embeddings.shape[0])
        module, scaling = self.dual_head, DualScaling(self.dual_mean, self.dual_scale, True)
        if head == "pool" and self.pool_dual_head is not None:
            module, scaling = self.pool_dual_head, self.pool_scaling
        scores = predict_dual(module, embeddings, scaling, chunk_size=self.chunk_size,
                              device=embeddings.device,
                              classifier=self.probabilities if self.classifier else None,
                              probs=probs if self.classifier else None)
        return scores.numpy().astype(np.float64)

    @torch.no_grad()
    def probabilities(self, embeddings) -> torch.Tensor:
        """Softmax of the head on embeddings (BADGE), chunk by chunk."""
        parts = [torch.softmax(self.module.head(e).reshape(e.shape[0], -1).float(), dim=1)
                 for e in embeddings.split(self.chunk_size)]
        return torch.cat(parts)


@dataclass
class AllyPlan:
    """What every block needs to know: the clustering and the selection's parameters.

    ``quota`` is an upper bound of the per-cluster quota of the equitable selection
    (the exact quota depends on how many clusters are non-empty over the whole pool,
    known only at the end); ``depth`` is how many further candidates each block keeps
    per category (more for the redundancy-aware walk, which skips some).
    """

    priority: object  # the equitable rule: priority_order(scores, labels, n_instances)
    n_instances: int
    quota: int
    depth: int
    n_clusters: int
    centers: torch.Tensor | None  # None: every row is its own cluster (k = pool size)
    mean: torch.Tensor | None  # PCA projection (None: the full embedding)
    components: torch.Tensor | None
    dual_fitted: bool
    max_dual: float | None = None
    delta: float | None = None
    labeled: torch.Tensor | None = None  # labeled embeddings, minus ``center``
    center: torch.Tensor | None = None
    keep_embeddings: bool = False

    def assign(self, embeddings, offset):
        """Cluster labels and squared distances to the centers (as ``clustering.kmeans``)."""
        n = embeddings.shape[0]
        if self.centers is None:
            return np.arange(offset, offset + n), np.zeros(n, dtype=np.float32)
        X = embeddings
        if self.components is not None:
            mean, comps = self.mean.to(X.device), self.components.to(X.device)
            X = torch.cat([(X[s:s + _PROJECT_CHUNK] - mean) @ comps
                           for s in range(0, n, _PROJECT_CHUNK)])
        labels, dists = _assign(X, self.centers.to(X.device))
        return labels.cpu().numpy(), dists.float().cpu().numpy()

    def near_labeled(self, embeddings) -> np.ndarray:
        """Rows within ``delta`` of a labeled embedding."""
        if self.delta is None or self.labeled is None or not len(self.labeled):
            return np.zeros(embeddings.shape[0], dtype=bool)
        E = embeddings - self.center.to(embeddings.device)
        L = self.labeled.to(embeddings.device)
        d2 = min_sq_distances(E, L, radius=self.delta)
        return (d2 <= self.delta * self.delta).cpu().numpy()


@dataclass
class Candidates:
    """A block's (or a group of blocks') summary for the equitable selection."""

    records: np.ndarray  # CANDIDATE, sorted by index
    embeddings: np.ndarray | None  # rows aligned with ``records`` (redundancy-aware)
    counts: np.ndarray | None  # points per cluster (None when k = pool size)
    n_skipped: int = 0  # points the outlier guard skips

    @property
    def nbytes(self) -> int:
        extra = 0 if self.embeddings is None else self.embeddings.nbytes
        return self.records.nbytes + extra + (0 if self.counts is None else self.counts.nbytes)


def equitable_order(records, quota, priority):
    """Positions of ``records`` in the order of the equitable rule ``priority`` with
    this quota, and how many of them are quota points (the head of the order)."""
    labels, inverse = np.unique(records["label"], return_inverse=True)
    order = priority(records["rank"], inverse, quota * labels.shape[0])
    n_quota = int(np.minimum(np.bincount(inverse, minlength=labels.shape[0]), quota).sum())
    return order, n_quota


def keep_candidates(records, plan):
    """Positions (sorted) of the records a summary must keep.

    Every cluster's ``plan.quota`` best, then the best ``plan.depth`` others of each
    category (guarded or not, outside the labeled delta-balls) and the best
    ``n_instances`` others whether guarded or not. Keeping these from every part and
    applying the rule again to their union keeps the same records as applying it to
    the whole pool, so the rule runs per block and again on merged summaries.
    """
    order, n_quota = equitable_order(records, plan.quota, plan.priority)
    keep = np.zeros(records.shape[0], dtype=bool)
    keep[order[:n_quota]] = True
    rest = order[n_quota:]
    skip, blocked = records["skip"][rest], records["blocked"][rest]
    for mask, depth in ((~skip & ~blocked, plan.depth), (skip & ~blocked, plan.depth),
                        (~skip, plan.n_instances), (skip, plan.n_instances)):
        keep[rest[mask][:depth]] = True
    return np.flatnonzero(keep)


@steady_heap_task
def ally_block(block, offset, block_net, plan):
    """Score one block of the pool and keep its candidates (the only thing returned)."""
    embeddings = block_net.embed(block)
    scores = block_net.dual(embeddings)
    labels, sq_dist = plan.assign(embeddings, offset)
    n = scores.shape[0]
    records = np.empty(n, dtype=CANDIDATE)
    records["index"] = np.arange(offset, offset + n)
    records["rank"] = scores if plan.dual_fitted else -sq_dist.astype(np.float64)
    records["score"] = scores
    records["label"] = labels
    records["skip"] = scores > plan.max_dual if plan.max_dual is not None else False
    records["blocked"] = plan.near_labeled(embeddings)
    counts = None if plan.centers is None else np.bincount(labels, minlength=plan.n_clusters)
    keep = np.arange(n) if plan.centers is None else keep_candidates(records, plan)
    kept_embeddings = None
    if plan.keep_embeddings:
        kept_embeddings = embeddings[torch.as_tensor(keep, device=embeddings.device)]
        kept_embeddings = kept_embeddings.cpu().numpy()
    return Candidates(records[keep], kept_embeddings, counts, int(records["skip"].sum()))


def merge_candidates(parts, plan):
    """One summary of several: the union, reduced by the same rule."""
    records = np.concatenate([p.records for p in parts])
    order = np.argsort(records["index"], kind="stable")
    records = records[order]
    embeddings = None
    if plan.keep_embeddings:
        embeddings = np.concatenate([p.embeddings for p in parts])[order]
    counts = None
    if plan.centers is not None:
        counts = np.sum([p.counts for p in parts], axis=0)
        keep = keep_candidates(records, plan)
        records = records[keep]
        embeddings = None if embeddings is None else embeddings[keep]
    return Candidates(records, embeddings, counts, sum(p.n_skipped for p in parts))
