"""A numerical check of the duality theorem behind ALLY (Elenter et al., NeurIPS 2022, Section 3.2).

On a convex problem, a linear softmax model with cross-entropy and one constraint per
training row,

.. math::

    P^*(\\epsilon) = \\min_\\theta \\; \\frac{1}{n} \\sum_i \\ell_i(\\theta)
    + \\frac{\\alpha}{2} \\|\\theta\\|^2
    \\quad \\text{s.t.} \\quad \\ell_i(\\theta) \\le \\epsilon_i, \\; i = 1..n,

the multipliers that :class:`~modal_ally.PDCLNet` learns by primal-dual iterations
(``lambdas_``) can be compared with the exact KKT multipliers of a constrained solver
(scipy's ``trust-constr`` with analytic gradients and Hessians), and the theorem
(``-lambda*_i / n`` is a subgradient of ``P*`` with respect to ``epsilon_i``) can be
checked by finite differences.

Scaling. PDCL descends the full-batch Lagrangian

.. math::

    L(\\theta, \\lambda) = \\frac{1}{n} \\sum_i \\left[\\ell_i + \\lambda_i
    (\\ell_i - \\epsilon_i)\\right] + \\frac{\\alpha}{2} \\|\\theta\\|^2,

where the :math:`\\alpha` term is the optimizer's ``weight_decay`` (gradient
:math:`\\alpha \\theta`). The exact problem's KKT conditions with constraints
:math:`g_i = \\ell_i - \\epsilon_i \\le 0` (not divided by ``n``) read
:math:`\\nabla f + \\sum_i \\mu_i \\nabla g_i = 0`, :math:`\\mu_i \\ge 0`; comparing with
:math:`\\nabla_\\theta L = \\nabla f + \\sum_i (\\lambda_i / n) \\nabla \\ell_i` gives
:math:`\\mu_i = \\lambda_i / n`. Sensitivity analysis gives
:math:`\\partial P^* / \\partial \\epsilon_i = -\\mu_i = -\\lambda_i / n`, so tightening
:math:`\\epsilon_i` by ``h`` raises the optimum by about :math:`h \\lambda_i / n`.
scipy's ``trust-constr`` reports ``result.v`` with the convention
:math:`\\nabla f + J^\\top v = 0`, so for an upper-bound constraint ``v = mu >= 0``.

Run ``python -m modal_ally.diagnostics.duality`` to print the check. The exact
solver is in :mod:`modal_ally.diagnostics._constrained`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from .._torch_utils import torch_threads
from ..net import PDCLNet
from ._constrained import (
    ConstrainedSolution,
    LinearModule,
    _ce,
    _check_epsilon,
    make_duality_data,
    minimax_loss,
    solve_constrained,
)

__all__ = ["LinearModule", "ConstrainedSolution", "make_duality_data", "minimax_loss",
           "solve_constrained", "fit_pdcl_linear", "duality_check", "format_duality_check"]


# ---------------------------------------------------------------------------- PDCL side
# a full-batch step on a few dozen rows is microseconds of arithmetic: extra OpenMP
# threads only add synchronization, which on a busy machine costs ~20 ms a step
# (fit_pdcl_linear runs under torch_threads(n_threads), default 1)


def fit_pdcl_linear(X, y, epsilon, *, weight_decay: float = 1e-2, max_epochs: int = 1000,
                    lr: float = 0.5, dual_lr: float = 1.0, random_state=0, n_threads=1,
                    **net_params):
    """Train :class:`LinearModule` by PDCL, full batch, plain gradient steps.

    ``PDCLNet(LinearModule, optimizer=torch.optim.SGD, batch_size=n_samples,
    optimizer__weight_decay=weight_decay, ...)``: one primal gradient step on the
    Lagrangian and one projected dual step per epoch (gradient descent-ascent, which
    converges on this strongly convex problem).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    epsilon : float or ndarray of shape (n_samples,)
    weight_decay : float, default 1e-2
        Must equal the one given to :func:`solve_constrained`.
    max_epochs : int, default 1000
    lr, dual_lr : float, default 0.5 and 1.0
        Primal (SGD) and dual step sizes. On the problems of :func:`make_duality_data`
        with random_state 0..19 (default epsilon of :func:`duality_check`) they converge
        within 1000 epochs to multipliers off by at most 2% of the largest exact one
        (most within 0.1%); lr=1.0 diverges on some of them.
    random_state : int, RandomState or None, default 0
    n_threads : int or None, default 1
        torch threads during the fit (restored afterwards); None leaves them alone.
    **net_params
        Further ``PDCLNet`` parameters.

    Returns
    -------
    net : PDCLNet
        Fitted; ``net.lambdas_`` are the multipliers.
    """
    X = np.asarray(X, dtype=np.float32)
    params = {"optimizer": torch.optim.SGD, "lr": lr, "max_epochs": max_epochs,
              "batch_size": X.shape[0], "epsilon": epsilon, "dual_lr": dual_lr,
              "optimizer__weight_decay": weight_decay, "random_state": random_state,
              # the theorem is the hard-constrained problem's: no slack
              "slack_cost": None, "callbacks__print_log": None}
    params.update(net_params)
    net = PDCLNet(LinearModule, **params)
    with torch_threads(n_threads):
        net.fit(X, y)
    return net


def _lambda_drift(net, window: float = 0.1) -> float:
    """Relative change of the mean and max multiplier over the last ``window`` epochs."""
    history = net.history
    k = max(1, int(round(window * len(history))))
    if len(history) <= k:
        return float("nan")
    drift = 0.0
    for key in ("lambda_mean", "lambda_max"):
        now, before = history[-1, key], history[-1 - k, key]
        drift = max(drift, abs(now - before) / max(abs(now), 1e-12))
    return float(drift)


def _pearson(a, b) -> float:
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


# ---------------------------------------------------------------------------- the check
def duality_check(random_state=0, *, n_samples: int = 40, n_features: int = 4,
                  n_classes: int = 3, separation: float = 1.5, epsilon=None,
                  epsilon_fraction: float = 0.1, weight_decay: float = 1e-2,
                  max_epochs: int = 1000, lr: float = 0.5, dual_lr: float = 1.0,
                  n_fd_rows: int = 3, h: float = 1e-3, active_tol: float = 1e-2) -> dict:
    """Compare PDCL's multipliers with the exact ones and check the sensitivity theorem.

    1. Draws a small overlapping classification problem (:func:`make_duality_data`).
    2. Solves the constrained problem exactly (:func:`solve_constrained`) and reads the
       KKT multipliers ``lambda*_i = n * mu_i`` (see the module docstring for the ``n``).
    3. Trains :class:`LinearModule` by PDCL full batch (:func:`fit_pdcl_linear`) on the
       same problem with the same weight decay and reads ``lambdas_``.
    4. For the ``n_fd_rows`` rows with the largest exact multipliers, and one inactive
       row as a control, tightens ``epsilon_i`` by ``h``, re-solves exactly and compares
       ``(P*(eps - h e_i) - P*(eps)) / h`` with ``lambda*_i / n`` and ``lambda_i / n``.

    Parameters
    ----------
    random_state : int, default 0
        Seeds the data and the network's initialization.
    n_samples, n_features, n_classes : int, default 40, 4, 3
    separation : float, default 1.5
        Norm of the class centers (see :func:`make_duality_data`).
    epsilon : float, array of shape (n_samples,) or None, default None
        Constraint levels. None picks the scalar ``e_min + epsilon_fraction *
        (max_i l0_i - e_min)``, ``e_min`` the smallest feasible level
        (:func:`minimax_loss`) and ``l0`` the losses of the unconstrained optimum: strictly
        feasible, and the rows the unconstrained model fits worst are active.
    epsilon_fraction : float, default 0.1
    weight_decay : float, default 1e-2
        The same L2 term in both problems (it makes the optimum unique).
    max_epochs, lr, dual_lr : int, float, float, default 1000, 0.5, 1.0
        PDCL's training (SGD, full batch).
    n_fd_rows : int, default 3
        Active rows to check by finite differences.
    h : float, default 1e-3
        Finite-difference step (nats).
    active_tol : float, default 1e-2
        A row is active when its multiplier exceeds ``active_tol`` times the largest
        exact multiplier (the interior-point solver leaves ~1e-8 on inactive rows).

    Returns
    -------
    report : dict
        ``correlation`` (Pearson, exact vs PDCL multipliers over all rows),
        ``active_agreement`` (share of rows classified alike), ``active_exact``,
        ``active_pdcl`` (row indices), ``same_active_set`` (bool), ``lambda_exact``,
        ``lambda_pdcl`` (arrays), ``max_abs_error``, ``finite_differences`` (a list of
        dicts, one a checked row: ``row``, ``active``, ``lambda_exact``,
        ``lambda_pdcl``, ``fd_slope``, ``exact_over_n``, ``pdcl_over_n``,
        ``rel_error_exact``, ``rel_error_pdcl``), ``epsilon``, ``value_exact`` (``P*``),
        ``value_pdcl`` (the objective at PDCL's parameters), ``param_rel_error``,
        ``lambda_drift`` (relative change of PDCL's mean/max multiplier over the last
        10% of epochs), ``kkt_residual``, ``n_samples``, ``fd_step``.
    """
    _check_arguments(n_samples=n_samples, n_features=n_features, n_classes=n_classes,
                     max_epochs=max_epochs, n_fd_rows=n_fd_rows, h=h,
                     weight_decay=weight_decay, lr=lr, dual_lr=dual_lr,
                     active_tol=active_tol, epsilon_fraction=epsilon_fraction)
    X, y = make_duality_data(n_samples, n_features, n_classes, separation=separation,
                             random_state=random_state)
    # the net stores epsilon in float32: solve the exact problem at the same levels
    eps = _levels(X, y, epsilon, n_classes=n_classes, weight_decay=weight_decay,
                  epsilon_fraction=epsilon_fraction).astype(np.float32)
    exact = solve_constrained(X, y, eps, n_classes=n_classes, weight_decay=weight_decay)
    net = fit_pdcl_linear(X, y, eps, weight_decay=weight_decay, max_epochs=max_epochs,
                          lr=lr, dual_lr=dual_lr, random_state=random_state,
                          classes=np.arange(n_classes))
    lam_pdcl = net.lambdas_.astype(np.float64)
    lam_exact = exact.lambdas
    tol = active_tol * float(lam_exact.max())
    active_exact, active_pdcl = lam_exact > tol, lam_pdcl > tol
    theta_pdcl = np.concatenate([
        net.module_.head.weight.detach().cpu().double().numpy().ravel(),
        net.module_.head.bias.detach().cpu().double().numpy()])
    losses_pdcl = _ce(theta_pdcl, X.astype(np.float64), y, n_classes)[0]
    table = _finite_differences(X, y, eps, exact, lam_pdcl, active_exact, n_fd_rows=n_fd_rows,
                                h=h, n_classes=n_classes, weight_decay=weight_decay)
    return {
        "correlation": _pearson(lam_exact, lam_pdcl),
        "active_agreement": float(np.mean(active_exact == active_pdcl)),
        "same_active_set": bool(np.array_equal(active_exact, active_pdcl)),
        "active_exact": np.flatnonzero(active_exact).tolist(),
        "active_pdcl": np.flatnonzero(active_pdcl).tolist(),
        "lambda_exact": lam_exact,
        "lambda_pdcl": lam_pdcl,
        "max_abs_error": float(np.abs(lam_exact - lam_pdcl).max()),
        "finite_differences": table,
        "epsilon": eps,
        "value_exact": exact.value,
        "value_pdcl": float(losses_pdcl.mean() + 0.5 * weight_decay * theta_pdcl @ theta_pdcl),
        "param_rel_error": float(np.linalg.norm(theta_pdcl - exact.theta)
                                 / np.linalg.norm(exact.theta)),
        "lambda_drift": _lambda_drift(net),
        "kkt_residual": exact.kkt_residual,
        "n_samples": X.shape[0],
        "fd_step": float(h),
    }


def _check_arguments(*, epsilon_fraction, **values):
    """The scalar arguments of :func:`duality_check`, checked before any work."""
    for name in ("n_samples", "n_features", "n_classes", "max_epochs", "n_fd_rows"):
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if values["n_classes"] < 2:
        raise ValueError(f"n_classes must be >= 2, got {values['n_classes']}")
    for name in ("h", "weight_decay", "lr", "dual_lr", "active_tol"):
        value = values[name]
        if not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if not 0 < epsilon_fraction < 1:
        raise ValueError(f"epsilon_fraction must be in (0, 1), got {epsilon_fraction!r}")


def _levels(X, y, epsilon, *, n_classes, weight_decay, epsilon_fraction):
    """The constraint levels: the given ones (if strictly feasible) or derived ones."""
    n = X.shape[0]
    if epsilon is None:
        e_min = minimax_loss(X, y, n_classes=n_classes)
        free = solve_constrained(X, y, None, n_classes=n_classes, weight_decay=weight_decay)
        epsilon = e_min + epsilon_fraction * (float(free.losses.max()) - e_min)
    else:
        worst = minimax_loss(X, y, epsilon=_check_epsilon(epsilon, n), n_classes=n_classes)
        if worst >= 0:
            raise ValueError(
                "the constraints are not strictly feasible at this epsilon (no linear model "
                f"gets every loss below its level; the best largest violation is {worst:.3g}):"
                " raise epsilon, or pass None to derive it from the data")
    return _check_epsilon(epsilon, n)


def _finite_differences(X, y, eps, exact, lam_pdcl, active_exact, *, n_fd_rows, h,
                        n_classes, weight_decay):
    """Tighten ``epsilon_i`` by ``h`` for the most active rows and one inactive control
    row; compare the slope of ``P*`` with ``lambda_i / n`` (exact and PDCL)."""
    n, lam_exact = X.shape[0], exact.lambdas
    rows = list(np.argsort(-lam_exact, kind="stable")[:min(n_fd_rows, int(active_exact.sum()))])
    inactive = np.flatnonzero(~active_exact)
    if inactive.size:  # control: the inactive row with the most slack
        rows.append(int(inactive[np.argmax(eps[inactive] - exact.losses[inactive])]))
    table = []
    for row in rows:
        tight = eps.astype(np.float64)
        tight[row] -= h
        moved = solve_constrained(X, y, tight, n_classes=n_classes,
                                  weight_decay=weight_decay, x0=exact.theta)
        slope = (moved.value - exact.value) / h
        entry = {"row": int(row), "active": bool(active_exact[row]),
                 "lambda_exact": float(lam_exact[row]), "lambda_pdcl": float(lam_pdcl[row]),
                 "fd_slope": float(slope), "exact_over_n": float(lam_exact[row] / n),
                 "pdcl_over_n": float(lam_pdcl[row] / n)}
        for key, ref in (("rel_error_exact", "exact_over_n"), ("rel_error_pdcl", "pdcl_over_n")):
            # an inactive row's slope is 0 (up to the solver's accuracy): no relative error
            entry[key] = abs(slope - entry[ref]) / entry[ref] if entry["active"] \
                and entry[ref] > 0 else float("nan")
        table.append(entry)
    return table


def format_duality_check(report: dict) -> str:
    """A readable summary of a :func:`duality_check` report.

    Parameters
    ----------
    report : dict
        The output of :func:`duality_check`.

    Returns
    -------
    text : str
    """
    eps = np.unique(report["epsilon"])
    lines = [
        f"rows: {report['n_samples']}, epsilon: "
        + (f"{eps[0]:.4f}" if eps.size == 1 else f"per row ({eps.min():.3f}..{eps.max():.3f})"),
        f"exact P* = {report['value_exact']:.6f}, PDCL objective = {report['value_pdcl']:.6f}, "
        f"parameter relative error = {report['param_rel_error']:.2e}",
        f"Pearson correlation (exact vs PDCL multipliers, all rows): "
        f"{report['correlation']:.5f}",
        f"active rows: exact {report['active_exact']}, PDCL {report['active_pdcl']} "
        f"(agreement {report['active_agreement']:.3f})",
        f"largest |lambda* - lambda_PDCL| = {report['max_abs_error']:.2e}, "
        f"PDCL lambda drift over the last 10% of epochs = {report['lambda_drift']:.2e}, "
        f"KKT residual = {report['kkt_residual']:.1e}",
        "",
        f"finite differences, h = {report['fd_step']:g}: "
        "(P*(eps - h e_i) - P*(eps)) / h vs lambda_i / n",
        f"{'row':>4} {'active':>6} {'lambda*':>9} {'lambda_PDCL':>11} {'FD slope':>10} "
        f"{'lambda*/n':>10} {'PDCL/n':>10} {'rel.err*':>9} {'rel.err':>8}",
    ]
    for e in report["finite_differences"]:
        lines.append(
            f"{e['row']:>4} {str(e['active']):>6} {e['lambda_exact']:>9.4f} "
            f"{e['lambda_pdcl']:>11.4f} {e['fd_slope']:>10.6f} {e['exact_over_n']:>10.6f} "
            f"{e['pdcl_over_n']:>10.6f} {e['rel_error_exact']:>9.4f} {e['rel_error_pdcl']:>8.4f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_duality_check(duality_check(random_state=0)))
