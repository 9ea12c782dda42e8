"""The default callbacks of PDCLNet and PDCLRegressor.

Like skorch's ``train_loss`` (a ``PassthroughScoring``), they are named entries of
the net's default callbacks, so a user can replace or switch them off with
``set_params(callbacks__dual_statistics=None)`` or ``callbacks__dual_head=None``:

- ``dual_statistics`` (:class:`DualStatistics`): per-epoch state of the multipliers
  in ``history``;
- ``dual_head`` (:class:`DualHeadFit`): at the end of training, embed the training
  rows and fit the dual head on the multipliers (Elenter et al., NeurIPS 2022,
  Algorithm 2, line 3). ``epsilon="auto"``'s reference fit switches it off.
"""

from __future__ import annotations

import numpy as np
import torch
from skorch.callbacks import Callback

from ._dual_state import dual_summary
from ._inference import embed

__all__ = ["DualStatistics", "DualHeadFit"]


class DualStatistics(Callback):
    """Record the epoch's dual state in ``history`` (after skorch's ``train_loss``).

    Columns: ``primal_loss`` (mean objective loss over the epoch), ``lagrangian``
    (the same value as skorch's ``train_loss``: the mean minibatch Lagrangian, what
    the primal step descends; kept under this name as an alias), ``lambda_mean``,
    ``lambda_max``, ``active_fraction`` (share of rows with lambda > 0) and
    ``slack_mean`` (mean of ``epsilon_i - l'_i`` over the rows' latest losses:
    negative means the constraints are violated on average).
    """

    def on_epoch_end(self, net, **kwargs):
        state = getattr(net, "dual_state_", None)
        row = net.history[-1]
        if state is None or "train_loss" not in row:
            return
        primal = state.epoch_primal_loss(row)
        net.history.record("primal_loss", primal)
        net.history.record("lagrangian", float(row["train_loss"]))
        for name, value in dual_summary(state.lambdas, state.slack()).items():
            net.history.record(name, value)


class DualHeadFit(Callback):
    """At the end of training, fit the dual head on the training rows' multipliers.

    Stores ``train_embeddings_`` (the backbone embeddings of the rows trained on)
    and fits ``net.dual_head_`` by :func:`modal_ally.dual_head.fit_dual_head`.
    """

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if X is None or not hasattr(net, "lambdas_"):
            return
        embeddings = embed(net, X, as_numpy=False, checked=True)
        net.train_embeddings_ = embeddings.numpy()
        net._fit_dual_head(embeddings, torch.as_tensor(np.asarray(net.lambdas_)))
