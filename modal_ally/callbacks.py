"""The default callbacks of PDCLNet and PDCLRegressor.

Like skorch's ``train_loss`` (a ``PassthroughScoring``), they are named entries of
the net's default callbacks, so a user can replace or switch them off with
``set_params(callbacks__dual_statistics=None)`` or ``callbacks__dual_head=None``:

- ``dual_statistics`` (:class:`DualStatistics`): per-epoch state of the multipliers
  in ``history``;
- ``dual_head`` (:class:`DualHeadFit`): at the end of training, embed the training
  rows and fit the dual head on the multipliers (Elenter et al., NeurIPS 2022,
  Algorithm 2, line 3). ``epsilon="auto"``'s reference fit switches it off;
- ``non_finite_guard`` (:class:`NonFiniteGuard`): stop a fit whose loss or
  multipliers stop being finite (every multiplier NaN would otherwise rank the pool
  by noise), naming the epoch and the likely cause.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from skorch.callbacks import Callback, PrintLog

from ._dual_state import dual_summary
from ._inference import embed
from ._validation import is_sparse

__all__ = ["DualStatistics", "DualHeadFit", "NonFiniteGuard", "QuietPrintLog",
           "TrainingDivergedError"]

#: Inputs above this magnitude are the first suspect when training diverges.
_LARGE_INPUT = 1e6


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
        state.end_epoch()
        primal = state.epoch_primal_loss(row)
        net.history.record("primal_loss", primal)
        net.history.record("lagrangian", float(row["train_loss"]))
        for name, value in dual_summary(state.lambdas, state.slack()).items():
            net.history.record(name, value)


class DualHeadFit(Callback):
    """At the end of training, fit the dual head on the training rows' multipliers.

    Stores ``train_embeddings_`` (the backbone embeddings of the rows trained on) and
    ``train_targets_`` (their labels or targets, as the net was given them), and fits, by
    :func:`modal_ally.dual_head.fit_dual_head`, the pool's label-conditional head
    ``net.pool_dual_head_``; the paper's head ``net.dual_head_`` is built here and
    trained at its first read (bit for bit as if trained here).
    """

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if X is None or not hasattr(net, "lambdas_"):
            return
        embeddings = embed(net, X, as_numpy=False, checked=True)
        if not bool(torch.isfinite(embeddings).all()):
            raise TrainingDivergedError(
                "the backbone's embeddings of the training rows are NaN or infinite: the "
                "inputs are too large for the network (standardize them) or the training "
                "diverged; the estimator was left as it was before this fit")
        net.train_embeddings_ = embeddings.numpy()
        net.train_targets_ = None if y is None else np.array(
            y.cpu() if isinstance(y, torch.Tensor) else y)
        targets = torch.as_tensor(np.asarray(dual_targets(net)))
        net._fit_dual_head(embeddings, targets)
        net._fit_pool_dual_head(embeddings, targets, y)


def dual_targets(net):
    """The multipliers the dual heads learn: with hard constraints the last ones
    (``lambdas_``, the paper's: a multiplier integrates its row's violation over the
    training); with a slack cost their mean over the epochs (``lambdas_mean_``), because
    such a multiplier settles at ``slack_cost * max(0, l_i - epsilon_i)`` and so tracks
    only the last epochs (on clean digits 3 % of the last ones are nonzero, every mean
    one is); the mean integrates the violation as the hard multiplier does (a hard fit's
    last and mean multipliers rank the rows alike, Spearman 0.99)."""
    if getattr(net, "slack_cost", None) is None:
        return net.lambdas_
    return net.lambdas_mean_


class TrainingDivergedError(ValueError):
    """The loss, a multiplier or an embedding became NaN or infinite during ``fit``."""


class NonFiniteGuard(Callback):
    """Raise :class:`TrainingDivergedError` at the end of the first epoch whose loss or
    multipliers are not finite (after ``dual_statistics`` has recorded them).

    The message names the epoch, the non-finite quantities and the likely cause:
    inputs of very large magnitude (standardize them) or too large a step size
    (``lr``, ``dual_lr``). The estimator's ``fit`` then puts it back as it was.
    """

    watched = ("train_loss", "primal_loss", "lagrangian", "lambda_max")

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.input_scale_ = 0.0
        if (isinstance(X, (np.ndarray, torch.Tensor)) or is_sparse(X)) and X.shape[0]:
            self.input_scale_ = max(float(X.max()), -float(X.min()))

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        bad = [key for key in self.watched if isinstance(row.get(key), (float, np.floating))
               and not math.isfinite(row[key])]
        if not bad:
            return
        if getattr(self, "input_scale_", 0.0) > _LARGE_INPUT:
            cause = (f"the inputs hold values up to {self.input_scale_:.3g} in magnitude: "
                     "standardize them (e.g. make_pipeline(StandardScaler(), PDCLNet()))")
        else:
            cause = (f"the step sizes may be too large (lr={net.lr!r}, "
                     f"dual_lr={getattr(net, 'dual_lr', None)!r}), or the targets too "
                     "large: lower them")
        raise TrainingDivergedError(
            f"training diverged at epoch {row.get('epoch', len(net.history))}: "
            f"{', '.join(bad)} became NaN or infinite. Likely cause: {cause}. The "
            "estimator was left as it was before this fit")


class QuietPrintLog(PrintLog):
    """skorch's ``PrintLog`` (the default ``print_log``), which skips formatting the
    epoch's table when nothing would be shown: ``verbose=0`` and the sink is ``print``.

    skorch's formats the row of every epoch and then drops it at ``verbose=0``; with
    the dual statistics' six columns that is about 1.5 ms an epoch, a few per cent of a
    small net's fit (``benchmarks/fit_cost.py``). Any other sink, or ``verbose > 0``,
    gets skorch's behaviour unchanged.
    """

    def on_epoch_end(self, net, **kwargs):
        if self.sink is print and not net.verbose:
            return
        super().on_epoch_end(net, **kwargs)
