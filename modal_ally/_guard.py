"""No half-fitted estimator and no silently diverged training.

:class:`NonFiniteGuard` is a skorch callback that stops a fit whose loss or Lagrange
multipliers stop being finite, naming the epoch and the likely cause (every
multiplier NaN would otherwise rank the pool by noise). :func:`restore_on_error` puts
the estimator back as it was before a ``fit`` that raised.
"""

from __future__ import annotations

import contextlib
import copy
import math

import numpy as np
import torch
from skorch.callbacks import Callback

__all__ = ["NonFiniteGuard", "TrainingDivergedError", "restore_on_error"]

#: Inputs above this magnitude are the first suspect when training diverges.
_LARGE_INPUT = 1e6

#: History columns that must stay finite: skorch's loss and PDCL's dual statistics.
_WATCHED = ("train_loss", "primal_loss", "lagrangian", "lambda_max")


class TrainingDivergedError(ValueError):
    """Raised when the loss or a multiplier becomes NaN or infinite during ``fit``."""


def _max_abs(X) -> float:
    if isinstance(X, torch.Tensor):
        return float(X.detach().abs().max()) if X.numel() else 0.0
    if isinstance(X, np.ndarray) and X.size and np.issubdtype(X.dtype, np.number):
        return float(np.abs(X).max())
    return 0.0


class NonFiniteGuard(Callback):
    """Raise :class:`TrainingDivergedError` at the end of the first epoch whose loss or
    multipliers are not finite.

    The message names the epoch, the non-finite quantities and the likely cause:
    inputs of very large magnitude (standardize them) or too large a step size
    (``lr``, ``dual_lr``).
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.input_scale_ = _max_abs(X)

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        bad = [key for key in _WATCHED
               if key in row and isinstance(row[key], (int, float))
               and not math.isfinite(row[key])]
        if not bad:
            return
        scale = getattr(self, "input_scale_", 0.0)
        if scale > _LARGE_INPUT:
            cause = (f"the inputs hold values up to {scale:.3g} in magnitude: standardize "
                     "them (e.g. make_pipeline(StandardScaler(), PDCLNet()))")
        else:
            cause = (f"the step sizes may be too large (lr={getattr(net, 'lr', None)!r}, "
                     f"dual_lr={getattr(net, 'dual_lr', None)!r}), or the targets too "
                     "large: lower them")
        raise TrainingDivergedError(
            f"training diverged at epoch {row.get('epoch', len(net.history))}: "
            f"{', '.join(bad)} became NaN or infinite. Likely cause: {cause}. The "
            "estimator was left as it was before this fit")


def _module_states(net) -> dict:
    """Copies of the parameters of the modules a fit trains in place: those the user
    passed as instances (skorch re-uses them; a module class is built anew)."""
    states = {}
    for param, name in (("module", "module_"), ("dual_head", "dual_head_")):
        module = net.__dict__.get(name)
        if isinstance(getattr(net, param, None), torch.nn.Module) \
                and isinstance(module, torch.nn.Module):
            states[name] = (module, copy.deepcopy(module.state_dict()))
    return states


@contextlib.contextmanager
def restore_on_error(net):
    """On an exception, put ``net`` back as it was on entry, then re-raise.

    skorch's ``initialize`` replaces most fitted attributes with new objects, so the
    previous ones are kept by reference; the history is cleared in place and modules
    passed as instances are re-used and trained in place, so those are copied first.
    """
    saved = dict(net.__dict__)
    states = _module_states(net)
    history = net.__dict__.get("history_")
    rows = list(history) if history is not None else None  # skorch clears it in place
    try:
        yield
    except BaseException:
        net.__dict__.clear()
        net.__dict__.update(saved)
        for module, state in states.values():
            module.load_state_dict(state)
        if history is not None:
            history[:] = rows
        raise
