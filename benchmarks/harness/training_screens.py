"""Screen estimators: PDCL training that gives a row it cannot fit less weight.

The default resilient constraints bound each multiplier by its violation, ``lambda_i =
slack_cost * max(0, l'_i - epsilon_i)`` at equilibrium, so a wrong label (a large loss)
still weighs ``1 + lambda_i`` against a fitted row's 1. The issue's other two levers, not
measured in the loops before:

- :class:`CappedMultiplierNet`: every multiplier capped at ``slack_cost * ln 2``, what a row
  violating its bound by the audit's margin (``ln 2``) holds; a row above it weighs no
  more than that (a cap is a slack cost that only bites above the cap);
- :class:`SuspectsReleasedNet`: the rows the label audit flagged after a fit
  (``average_losses`` above ``auto_threshold``) keep no constraint in the later fits
  (their multiplier stays 0: weight 1, as in an unconstrained net), until their label
  changes (a second opinion).

Run by ``python -m benchmarks.noisy_oracle --arms ...`` (``SCREEN_ARMS``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from modal_ally import PDCLNet
from modal_ally.label_audit import auto_threshold, average_losses

__all__ = ["CappedMultiplierNet", "SuspectsReleasedNet"]


class CappedMultiplierNet(PDCLNet):
    """:class:`~modal_ally.PDCLNet` whose multipliers stay at or below ``slack_cost * ln 2``."""

    def train_step(self, batch, **fit_params):
        step = super().train_step(batch, **fit_params)
        if self.slack_cost is not None:
            self.dual_state_.lambdas.clamp_(max=self.slack_cost * math.log(2.0))
        return step


class SuspectsReleasedNet(PDCLNet):
    """:class:`~modal_ally.PDCLNet` that drops the constraints of the rows its earlier fits
    flagged (positions in the training set, which a modAL learner only appends to)."""

    def fit(self, X, y, **fit_params):
        # the released rows are read before the fit (it clears the history they come
        # from); a failed fit puts the previous ones back, as PDCLNet restores the rest
        before = getattr(self, "released_", None)
        self.released_ = torch.as_tensor(self._released_rows(np.asarray(y)),
                                         dtype=torch.int64)
        try:
            super().fit(X, y, **fit_params)
        except BaseException:
            if before is None:
                del self.released_
            else:
                self.released_ = before
            raise
        self.fit_labels_ = np.asarray(y).copy()
        return self

    def _released_rows(self, y):
        """Rows flagged by the last fit or released before, whose label is unchanged."""
        previous = getattr(self, "fit_labels_", None)
        if previous is None or not hasattr(self, "lambdas_mean_") or y.shape[0] < previous.shape[0]:
            return np.zeros(0, dtype=np.int64)
        losses = average_losses(self)
        flagged = losses > auto_threshold(losses, self)
        flagged[self.released_.numpy()] = True
        flagged &= y[:previous.shape[0]] == previous
        return np.flatnonzero(flagged)

    def train_step(self, batch, **fit_params):
        step = super().train_step(batch, **fit_params)
        if self.released_.numel():
            self.dual_state_.lambdas[self.released_.to(self.dual_state_.lambdas.device)] = 0.0
        return step
