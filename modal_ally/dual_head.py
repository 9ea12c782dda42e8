"""The dual head ``f_omega``: fit and predict as plain functions.

After primal-dual training, a small regression head learns to predict each labeled
row's multiplier from the frozen backbone's embedding (Elenter et al., NeurIPS 2022,
Algorithm 2, line 3). Its inputs are standardized by the head's own buffers and its
targets by ``(lambda - mean) / scale``; :func:`dual_values` maps the output back to
lambda units. The estimator (``PDCLNet``), the query strategies and the generative
mode all go through these functions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ._inference import map_chunks

__all__ = ["DualScaling", "fit_dual_head", "dual_values", "predict_dual"]


@dataclass(frozen=True)
class DualScaling:
    """How the head's output maps to lambda units: ``output * scale + mean``."""

    mean: float
    scale: float
    fitted: bool


def fit_dual_head(head: nn.Module, embeddings: torch.Tensor, targets: torch.Tensor, *,
                  epochs: int, lr: float, batch_size: int, seed: int = 0,
                  device=None) -> DualScaling:
    """Regress the multipliers ``targets`` on ``embeddings``; train ``head`` in place.

    Every row is used (Adam, shuffled minibatches of ``batch_size`` rows, the whole
    set at once when it fits); inputs and targets are standardized. When every
    multiplier is 0 there is nothing to learn: the head is left untrained, a warning
    says so, and the returned scaling has ``fitted=False``.

    Returns
    -------
    scaling : DualScaling
    """
    targets = targets.float()
    mean = float(targets.mean())
    std = float(targets.std()) if targets.numel() > 1 else 0.0
    scaling = DualScaling(mean=mean, scale=std if std > 0 else 1.0,
                          fitted=float(targets.max()) > 0)
    if not scaling.fitted:
        warnings.warn(
            "every dual variable is 0: epsilon is above every per-sample loss, so no "
            "training row is informative for the constraints; predict_dual returns 0 "
            "and the ALLY strategies fall back to diversity alone (lower epsilon to "
            "get an informativeness signal)", UserWarning, stacklevel=5)
        return scaling
    inputs = embeddings.to(device)
    scaled = ((targets - scaling.mean) / scaling.scale).to(device)
    head.set_input_scaling(inputs)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    n = inputs.shape[0]
    batch = min(int(batch_size), n)
    generator = torch.Generator().manual_seed(seed)
    head.train(True)
    for _ in range(int(epochs)):
        order = torch.randperm(n, generator=generator).to(device) if batch < n else None
        for start in range(0, n, batch):
            rows = order[start:start + batch] if order is not None else slice(None)
            loss = nn.functional.mse_loss(head(inputs[rows]), scaled[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    head.train(False)
    return scaling


def dual_values(head: nn.Module, embeddings: torch.Tensor, scaling: DualScaling):
    """The head's prediction in lambda units, before the clip at 0 (differentiable)."""
    return head(embeddings).reshape(-1) * scaling.scale + scaling.mean


@torch.no_grad()
def predict_dual(head: nn.Module, embeddings, scaling: DualScaling, *, chunk_size: int,
                 device) -> torch.Tensor:
    """Predicted multipliers (>= 0, lambda units) of embeddings, in chunks.

    Returns a CPU float tensor of shape (n_samples,); zeros when the head was not
    fitted (every training multiplier was 0).
    """
    if not scaling.fitted:
        return torch.zeros(embeddings.shape[0])
    head.train(False)
    out = map_chunks(lambda block: dual_values(head, block, scaling), embeddings,
                     chunk_size=chunk_size, device=device, name=None)
    return out.float().clamp_min(0)
