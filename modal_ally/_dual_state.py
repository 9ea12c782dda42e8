"""The multipliers of one training call: the dual ascent step and its statistics."""

from __future__ import annotations

import torch


def dual_summary(lambdas, slack) -> dict:
    """Statistics of multipliers ``lambdas`` and of the constraints' ``slack``."""
    finite = bool(torch.isfinite(slack).any())
    return {
        "lambda_mean": float(lambdas.mean()),
        "lambda_max": float(lambdas.max()),
        "active_fraction": float((lambdas > 0).float().mean()),
        "slack_mean": float(torch.nanmean(slack)) if finite else float("nan"),
    }


class DualState:
    """The multipliers of the rows of one training call, and their epoch statistics.

    A plain object (not a skorch attribute per value): the dual step writes tensors
    in place at every minibatch.
    """

    def __init__(self, lambdas, epsilon, device, slack_cost=None):
        self.lambdas = torch.as_tensor(lambdas, device=device).clone()
        # resilient constrained learning: relaxing a constraint by u costs
        # slack_cost / 2 * u^2, so the slack at equilibrium is lambda / slack_cost
        self.slack_cost = None if slack_cost is None else float(slack_cost)
        self.epsilon = torch.as_tensor(epsilon, device=device)
        uniform = epsilon.size and bool((epsilon == epsilon[0]).all())
        # a scalar epsilon (the default) needs no per-row gather
        self.eps_scalar = float(epsilon[0]) if uniform else None
        self.latest = torch.full(self.lambdas.shape, float("nan"), device=device)
        self.primal_sum = torch.zeros((), device=device)
        self.primal_rows = 0
        self.lambda_sum = torch.zeros_like(self.lambdas)
        self.epochs = 0

    def gather(self, index):
        """``(lambda_B, epsilon_B)`` of a minibatch (lambda_B a copy)."""
        eps = self.eps_scalar if self.eps_scalar is not None else self.epsilon[index]
        return self.lambdas[index], eps

    @torch.no_grad()
    def step(self, index, constraint, step_size, losses=None):
        """``lambda_B <- max(0, lambda_B + eta (l'_B - eps_B - u_B))`` for the rows
        ``index``, where ``u_B = lambda_B / slack_cost`` are their relaxations (none
        without a slack cost: the paper's hard constraints). The relaxation is taken
        at the new multipliers (a proximal step, stable at any step size): at
        equilibrium ``lambda_i = slack_cost * max(0, l'_i - eps_i)``, bounded."""
        lam, eps = self.gather(index)
        lam.add_(constraint, alpha=step_size).sub_(step_size * eps)
        if self.slack_cost is not None:
            lam.div_(1.0 + step_size / self.slack_cost)
        lam.clamp_(min=0)
        self.lambdas[index] = lam
        self.latest[index] = constraint
        if losses is not None:  # l' != l: the objective needs its own sum
            self.primal_sum += losses.sum()
            self.primal_rows += losses.shape[0]

    def end_epoch(self):
        """Add the end-of-epoch multipliers to the running sum behind :meth:`mean_lambdas`."""
        self.lambda_sum += self.lambdas
        self.epochs += 1

    def mean_lambdas(self):
        """Mean of every row's end-of-epoch multiplier over the epochs so far (the last
        multipliers when no epoch has ended)."""
        return self.lambda_sum / self.epochs if self.epochs else self.lambdas.clone()

    def slack(self):
        return self.epsilon - self.latest

    def relaxations(self):
        """Each row's relaxation ``u_i = lambda_i / slack_cost`` (zeros without one)."""
        if self.slack_cost is None:
            return torch.zeros_like(self.lambdas)
        return self.lambdas / self.slack_cost

    def epoch_primal_loss(self, row) -> float:
        """Mean objective loss of the epoch; resets the running sum."""
        if not self.primal_rows:  # l' = l: every row's latest loss is in ``latest``
            return float(torch.nanmean(self.latest))
        value = float(self.primal_sum) / self.primal_rows
        self.primal_sum.zero_()
        self.primal_rows = 0
        return value
