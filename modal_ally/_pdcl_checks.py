"""The parameter checks of PDCLNet and PDCLRegressor, run once per fit, and the
constraint levels ``epsilon_i`` of the rows being fitted.

modAL's ``teach`` appends the new rows to the learner's labeled set and refits on all
of it, so a per-row epsilon array set once has the wrong length from the first
``teach`` on; a callable ``epsilon(X, y)`` is called at every fit with the rows being
fitted and follows the labeled set as it grows.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from ._split import check_embedding_layer
from ._validation import check_choice, check_optional_int, check_real
from .data import RowDataset

_TEACH = ("with modAL, whose teach refits on the grown labeled set, pass a callable "
          "instead: epsilon=lambda X, y: <one value per row of X> (called at every fit), "
          "or a scalar")


def _check_epsilon_values(values, where):
    if values.ndim != 1 or values.dtype == object or not np.issubdtype(values.dtype, np.number) \
            or np.issubdtype(values.dtype, np.complexfloating):
        raise TypeError(f"{where} must be a number, a 1-d array with one value per row, "
                        f"'auto' or a callable (X, y) -> per-row values; got {values.dtype} "
                        f"of shape {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"{where} must be finite and >= 0 for every row")


def check_epsilon(epsilon):
    """``epsilon``: a number >= 0, a 1-d array of them, "auto" or a callable."""
    if isinstance(epsilon, str):
        return check_choice(epsilon, "epsilon", {"auto"})
    if callable(epsilon):
        return epsilon
    if isinstance(epsilon, numbers.Real) and not isinstance(epsilon, bool):
        return check_real(epsilon, "epsilon", low=0)
    _check_epsilon_values(np.asarray(epsilon), "epsilon")
    return epsilon


def per_row_epsilon(epsilon, X, y):
    """``epsilon`` (a number, an array or a callable, not "auto") as one float32 value
    per row of ``X``; a wrong length says how to use a per-row epsilon with modAL."""
    where = "epsilon"
    if callable(epsilon):
        where, epsilon = "the values returned by epsilon(X, y)", epsilon(X, y)
    if isinstance(epsilon, numbers.Real) and not isinstance(epsilon, bool):
        check_real(epsilon, where, low=0)
        return np.full(X.shape[0], float(epsilon), dtype=np.float32)
    values = np.asarray(epsilon)
    _check_epsilon_values(values, where)
    if values.shape[0] != X.shape[0]:
        raise ValueError(f"epsilon has {values.shape[0]} values but X has {X.shape[0]} "
                         f"rows: a per-row epsilon needs one value per row; {_TEACH}")
    return values.astype(np.float32)


def check_pdcl_params(net) -> None:
    """Check the PDCL parameters of ``net``; raise before anything changes."""
    check_epsilon(net.epsilon)
    check_real(net.dual_lr, "dual_lr", low=0)
    check_real(net.slack_cost, "slack_cost", low=0, low_open=True, optional=True,
               hint=" (None: hard constraints, the paper's)")
    check_real(net.lr, "lr", low=0, low_open=True)
    check_real(net.dual_head_lr, "dual_head_lr", low=0, low_open=True)
    check_optional_int(net.chunk_size, "chunk_size")
    check_optional_int(net.dual_head_epochs, "dual_head_epochs", minimum=0)
    check_optional_int(net.dual_head_batch_size, "dual_head_batch_size")
    check_optional_int(net.pool_dual_head_epochs, "pool_dual_head_epochs", minimum=0)
    check_optional_int(net.pool_dual_head_batch_size, "pool_dual_head_batch_size")
    check_embedding_layer(net.embedding_layer)
    pool_head = net.pool_dual_head
    if pool_head is not None and not isinstance(pool_head, torch.nn.Module) and not (
            isinstance(pool_head, type) and issubclass(pool_head, torch.nn.Module)):
        raise TypeError("pool_dual_head must be None (the paper's head scores the pool "
                        "too) or a torch.nn.Module class or instance such as "
                        f"ConditionalDualHead, got {pool_head!r}")
    if not callable(net.dual_lr_schedule):
        check_choice(net.dual_lr_schedule, "dual_lr_schedule", {"constant", "sqrt"})
    if net.constraint_loss is not None and not callable(net.constraint_loss):
        raise TypeError("constraint_loss must be None or a callable "
                        "(y_pred, y_true) -> per-sample losses")
    check_real(net.auto_epsilon_factor, "auto_epsilon_factor", low=1.0, high=10.0,
               hint=" (the paper finds 1.05-1.25 works)")
    if not (isinstance(net.dataset, type) and issubclass(net.dataset, RowDataset)):
        raise TypeError(
            f"{type(net).__name__} keeps one multiplier per training row, so it builds "
            "its datasets with modal_ally.RowDataset (with_index=True); dataset= must "
            f"be RowDataset or a subclass of it, got {net.dataset!r}")
    if net.device is not None and str(net.device).startswith("cuda") \
            and not torch.cuda.is_available():
        raise ValueError(f"device={net.device!r} was requested but CUDA is not "
                         "available on this machine; use device='cpu'")
