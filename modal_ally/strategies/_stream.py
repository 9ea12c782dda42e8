"""One streamed pass over the pool: what a selection keeps of it, never the embeddings.

The pool is read chunk by chunk (:func:`~modal_ally._inference.iter_chunks`: each chunk
converted to float32 and checked for NaN and infinity just before it is used). Every
chunk is embedded by the backbone and reduced at once to what a selection needs:

- its embeddings, or their projection on ``n_components`` principal directions fitted
  on the embeddings of a random sample of pool rows read first (when every pool row
  is in that sample, on all of them, from the same pass);
- the output factors ``a = p - onehot(argmax p)`` of BADGE's gradient embeddings
  ``g = a (outer) e`` (Ash et al., ICLR 2020), from the net's ``head`` (ALLY's default
  rule reads ``p`` sharpened, at a temperature below 1);
- the dual head's predicted multipliers (``net.predict_dual_from_embeddings``).

Memory: ``N x (C + n_components + 1)`` values instead of the ``N x d`` embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._inference import chunk_size_of, embed, iter_chunks, network_errors
from .._seeding import gradient_factors
from .._torch_utils import as_tensor, eval_mode
from .._validation import numpy_random_state
from ..clustering import Projection, fit_projection, sample_rows

__all__ = ["PoolFeatures", "pool_features", "N_COMPONENTS", "PROJECTION_SAMPLE",
           "STREAM_ABOVE_BYTES"]

#: Dimensions of the projection the default ALLY rule works in (BADGE and Core-Set too,
#: on pools above ``STREAM_ABOVE_BYTES`` of embeddings).
N_COMPONENTS = 32
#: Pool rows the projection is fitted on.
PROJECTION_SAMPLE = 10_000
#: Above this many bytes of float32 embeddings, BADGE, Core-Set and the paper's rule keep
#: a projection of the embeddings only.
STREAM_ABOVE_BYTES = 256 * 2**20
#: A regressor's gradient factor: every pair of rows at ``a_i . a_j = 1/2``, so that the
#: gradient space is the embedding space scaled by ``1/sqrt(2)``.
REGRESSION_FACTOR = float(np.sqrt(0.5))


@dataclass
class PoolFeatures:
    """What the pass kept of the pool (tensors on the net's device, scores on the CPU)."""

    embeddings: torch.Tensor  # (n, n_components) projected, or (n, d)
    factors: torch.Tensor | None  # (n, C) gradient output factors; (n, 1) for a regressor
    scores: torch.Tensor | None  # (n,) predicted multipliers, float32
    projection: Projection | None  # None: the embeddings themselves


def embedding_width(net, X_pool) -> int:
    """Width of the backbone's output, from the pool's first row."""
    first = X_pool[:1]  # a copy for numpy: a read-only memmap slice cannot back a tensor
    first = np.array(first) if isinstance(first, np.ndarray) else first
    with torch.no_grad(), eval_mode(net.module_) as module:
        return int(module.backbone(as_tensor(first).to(net.device))[0].numel())


def _sampled_projection(query, n_components, centered, sample_size, residual):
    """The projection fitted on the embeddings of ``sample_size`` random pool rows.

    The rows' values are checked in the pass that follows (each row exactly once); a
    sample that embeds to non-finite values gets a null projection, and that pass
    raises on the bad chunk.
    """
    net, X_pool = query.net, query.X_pool
    rng = query.random_state
    rng = rng if isinstance(rng, np.random.RandomState) else numpy_random_state(rng)
    rows = sample_rows(X_pool.shape[0], sample_size, rng, "cpu")
    sampled = X_pool[rows] if torch.is_tensor(X_pool) else X_pool[rows.numpy()]
    sample = embed(net, sampled, name=None, as_numpy=False, out_device=net.device,
                   checked=True)
    if not bool(torch.isfinite(sample).all()):
        return Projection(torch.zeros((sample.shape[1], n_components),
                                      device=sample.device))
    return fit_projection(sample, n_components, centered=centered, residual=residual)


def _stream(query, projection, *, factors, duals, temperature=1.0) -> PoolFeatures:
    """The pass: every chunk embedded, projected, scored; only the results kept."""
    net, X_pool = query.net, query.X_pool
    n = X_pool.shape[0]
    classifier = getattr(net, "_task", "classification") != "regression"
    kept, start = {}, 0
    with torch.no_grad(), eval_mode(net.module_) as module:
        for block in iter_chunks(X_pool, chunk_size_of(net), net.device, name="X_pool"):
            embeddings = module.backbone(block).reshape(block.shape[0], -1).float()
            values = {"embeddings": embeddings if projection is None
                      else projection(embeddings)}
            probs = None
            if factors and classifier:  # the class head's pass, read by the duals too
                logits = module.head(embeddings).reshape(block.shape[0], -1).float()
                probs = torch.softmax(logits, dim=1)
                values["factors"] = gradient_factors(probs, temperature)
            if duals:
                values["scores"] = net.predict_dual_from_embeddings(
                    embeddings, head="pool" if duals is True else duals,
                    probs=probs).float()
            for name, value in values.items():
                if name not in kept:
                    kept[name] = torch.empty((n, *value.shape[1:]), dtype=value.dtype,
                                             device=value.device)
                kept[name][start:start + block.shape[0]] = value
            start += block.shape[0]
    if factors and not classifier:
        kept["factors"] = torch.full((n, 1), REGRESSION_FACTOR, device=net.device)
    return PoolFeatures(kept["embeddings"], kept.get("factors"), kept.get("scores"),
                        projection)


def pool_features(query, *, n_components, centered=False, factors=False, duals=False,
                  exact_below_bytes=None, sample_size=None, residual=False,
                  temperature=1.0) -> PoolFeatures:
    """One pass over a validated query's pool (``strategies._common.Query``).

    Parameters
    ----------
    n_components : int or None
        Width of the projection; None (or an embedding no wider) keeps the embeddings.
    centered : bool
        PCA (for Euclidean distances between embeddings) or the uncentered principal
        directions (for gradient-embedding distances); see
        :func:`~modal_ally.clustering.fit_projection`.
    factors : bool
        Keep the gradient output factors.
    temperature : float
        The factors read the class probabilities at this temperature
        (:func:`~modal_ally._seeding.gradient_factors`); the duals read them as they are.
    duals : bool or {"pool", "paper"}
        Keep the predicted multipliers of the net's pool head (True or "pool", what the
        default rule reads) or of the paper's head ("paper", the paper's rule).
    exact_below_bytes : int or None
        Keep the embeddings themselves when they take at most this many bytes.
    sample_size : int or None
        Rows the projection is fitted on (drawn with ``query.random_state`` when the
        pool has more); None: ``PROJECTION_SAMPLE``.
    residual : bool
        The projection keeps each embedding's norm in one more coordinate.
    """
    X_pool, n = query.X_pool, query.X_pool.shape[0]
    sample_size = PROJECTION_SAMPLE if sample_size is None else sample_size
    with network_errors(X_pool, shape_known=query.shape_known):
        width = embedding_width(query.net, X_pool) if n_components is not None else 0
        project = width > (n_components or 0) and (
            exact_below_bytes is None or n * width * 4 > exact_below_bytes)
        projection = None
        if project and n > sample_size:
            projection = _sampled_projection(query, n_components, centered, sample_size,
                                             residual)
        features = _stream(query, projection, factors=factors, duals=duals,
                           temperature=temperature)
    if not all(bool(torch.isfinite(part).all()) for part in features.embeddings.split(2**16)):
        raise ValueError("the network's embeddings of X_pool are not finite (NaN or "
                         "infinity) although X_pool's values are")
    if project and projection is None:  # the sample is the whole pool: fit on it all
        features.projection = fit_projection(features.embeddings, n_components,
                                             centered=centered, residual=residual)
        features.embeddings = torch.cat([features.projection(part) for part in
                                         features.embeddings.split(8192)])
    return features
