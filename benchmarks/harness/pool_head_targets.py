"""Screen estimators: the pool head trained without the label audit's suspects' weight.

Under label noise a wrong label keeps a large multiplier, and the pool head (what the
default rule reads) learns from it that pool rows which look like it are informative.
These PDCL nets change only what the pool head is trained on (the paper's head, the
training and the multipliers are the package's):

- :class:`ClippedPoolHeadNet`: every target clipped at the multiplier of a row whose
  average training loss sits at the audit's threshold (``auto_threshold``): a suspect
  still counts as a hard row, no more;
- :class:`DroppedPoolHeadNet`: the rows the audit flags left out of the pool head's
  training.

Run by ``python -m benchmarks.noisy_oracle --arms ...`` (``SCREEN_ARMS``).
"""

from __future__ import annotations

import numpy as np
import torch

from modal_ally import PDCLNet
from modal_ally.label_audit import _dual_gain, auto_threshold, average_losses

__all__ = ["ClippedPoolHeadNet", "DroppedPoolHeadNet"]


class _AuditedPoolHead:
    """The pool head's training rows and targets as the audit sees them (``suspects``:
    ``"clip"`` or ``"drop"``)."""

    suspects = "clip"

    def _fit_pool_dual_head(self, embeddings, targets, y):
        losses = average_losses(self)
        threshold = auto_threshold(losses, self)
        epsilon = np.broadcast_to(np.asarray(self.epsilon_, dtype=np.float64), losses.shape)
        if self.suspects == "clip":
            cap = _dual_gain(self) * np.maximum(threshold - epsilon, 0.0)
            targets = torch.minimum(targets, torch.as_tensor(cap, dtype=targets.dtype))
        else:
            keep = losses <= threshold
            if 2 <= keep.sum() < keep.size:
                rows = torch.as_tensor(np.flatnonzero(keep))
                embeddings, targets = embeddings[rows], targets[rows]
                y = np.asarray(y)[keep]
        return super()._fit_pool_dual_head(embeddings, targets, y)


class ClippedPoolHeadNet(_AuditedPoolHead, PDCLNet):
    """:class:`~modal_ally.PDCLNet` whose pool head reads clipped multipliers."""

    suspects = "clip"


class DroppedPoolHeadNet(_AuditedPoolHead, PDCLNet):
    """:class:`~modal_ally.PDCLNet` whose pool head leaves the audit's suspects out."""

    suspects = "drop"
