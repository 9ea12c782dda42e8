"""The dual step with restarts (``python -m benchmarks.research.dual_head --dual-update
restart``): multipliers that track the current violation instead of the whole history."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from modal_ally import _pdcl
from modal_ally._dual_state import DualState

__all__ = ["DUAL_UPDATES", "RestartDualState", "dual_update_of"]


class RestartDualState(DualState):
    """The dual step with restarts: a row's multiplier is set to 0 whenever its
    constraint is met (``l'_i <= epsilon_i``), so at the end of training it holds the
    violation accumulated since the row was last feasible (the issue's "multipliers that
    track the current violation"), instead of the whole history."""

    @torch.no_grad()
    def step(self, index, constraint, step_size, losses=None):
        super().step(index, constraint, step_size, losses)
        eps = self.eps_scalar if self.eps_scalar is not None else self.epsilon[index]
        feasible = constraint <= eps
        if bool(feasible.any()):
            self.lambdas[torch.as_tensor(index)[feasible]] = 0.0


#: How the nets' multipliers are updated (``--dual-update``): the package's projected
#: dual ascent, or with restarts when feasible.
DUAL_UPDATES = {"ascent": DualState, "restart": RestartDualState}


@contextmanager
def dual_update_of(name):
    """PDCL fits inside use the dual step ``DUAL_UPDATES[name]`` (the package's after)."""
    original = _pdcl.DualState
    _pdcl.DualState = DUAL_UPDATES[name]
    try:
        yield
    finally:
        _pdcl.DualState = original
