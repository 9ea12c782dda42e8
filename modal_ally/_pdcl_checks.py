"""The parameter checks of PDCLNet and PDCLRegressor, run once per fit."""

from __future__ import annotations

import numbers

import numpy as np
import torch

from ._validation import check_choice, check_real
from .data import RowDataset


def check_epsilon(epsilon):
    """``epsilon``: a number >= 0, a 1-d array of them, or "auto"."""
    if isinstance(epsilon, str):
        return check_choice(epsilon, "epsilon", {"auto"})
    if isinstance(epsilon, numbers.Real) and not isinstance(epsilon, bool):
        return check_real(epsilon, "epsilon", low=0)
    values = np.asarray(epsilon)
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.number):
        raise TypeError(
            "epsilon must be a number, a 1-d array with one value per row, "
            f"or 'auto'; got {type(epsilon).__name__}")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("epsilon must be finite and >= 0 for every row")
    return epsilon


def check_pdcl_params(net) -> None:
    """Check the PDCL parameters of ``net``; raise before anything changes."""
    check_epsilon(net.epsilon)
    check_real(net.dual_lr, "dual_lr", low=0)
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
