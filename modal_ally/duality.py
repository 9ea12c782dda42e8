"""A numerical check of the duality theorem behind ALLY (DESIGN 1.1, paper Section 3.2).

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

Run ``python -m modal_ally.duality`` to print the check.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import NonlinearConstraint, OptimizeResult, minimize
from scipy.special import log_softmax
from sklearn.utils import check_random_state
from torch import nn

from .modules import BackboneHeadModule
from .net import PDCLNet

__all__ = ["LinearModule", "ConstrainedSolution", "make_duality_data", "minimax_loss",
           "solve_constrained", "fit_pdcl_linear", "duality_check", "format_duality_check"]


class LinearModule(BackboneHeadModule):
    """A linear (softmax-regression) model following the backbone/head contract.

    ``backbone`` only flattens the input, ``head`` is ``nn.Linear(input_dim,
    output_dim)``: the cross-entropy training problem is convex in the parameters.

    Parameters
    ----------
    input_dim : int
        Number of input features (inputs of any trailing shape are flattened).
    output_dim : int
        Number of classes (logits) or regression targets.
    """

    def __init__(self, input_dim: int, output_dim: int):
        super().__init__()
        if input_dim is None or output_dim is None:
            raise ValueError("LinearModule needs input_dim and output_dim (PDCLNet sets "
                             "them from the data at the first fit)")
        self.backbone = nn.Flatten()
        self.head = nn.Linear(int(input_dim), int(output_dim))
        self.embedding_dim = int(input_dim)


@dataclass
class ConstrainedSolution:
    """The exact solution of the constrained problem (see :func:`solve_constrained`).

    Attributes
    ----------
    coef : ndarray of shape (n_classes, n_features)
        Weights, laid out like ``nn.Linear.weight``.
    intercept : ndarray of shape (n_classes,)
        Biases, like ``nn.Linear.bias``.
    value : float
        The optimal value ``P*``: mean cross-entropy plus ``weight_decay / 2 * ||theta||^2``.
    losses : ndarray of shape (n_samples,)
        Per-row cross-entropy at the optimum.
    multipliers : ndarray of shape (n_samples,)
        KKT multipliers ``mu_i >= 0`` of the constraints ``l_i - eps_i <= 0`` (the
        interior-point solver's tiny positive values on inactive rows are kept).
    lambdas : ndarray of shape (n_samples,)
        ``n * multipliers``: the multipliers on PDCL's scale, comparable with
        ``PDCLNet.lambdas_``.
    kkt_residual : float
        ``max |grad f + sum_i mu_i grad g_i|`` at the solution.
    max_violation : float
        ``max(0, max_i (l_i - eps_i))``.
    result : scipy.optimize.OptimizeResult
        The solver's full output.
    """

    coef: np.ndarray
    intercept: np.ndarray
    value: float
    losses: np.ndarray
    multipliers: np.ndarray
    lambdas: np.ndarray
    kkt_residual: float
    max_violation: float
    result: OptimizeResult = field(repr=False)

    @property
    def theta(self) -> np.ndarray:
        """All parameters as one vector: ``coef.ravel()`` then ``intercept``."""
        return np.concatenate([self.coef.ravel(), self.intercept])


# ---------------------------------------------------------------------------- data
def make_duality_data(n_samples: int = 40, n_features: int = 4, n_classes: int = 3, *,
                      separation: float = 1.5, random_state=0):
    """Gaussian classes that overlap: a small, convex, non-separable test problem.

    Class centers are random directions scaled to norm ``separation``; each row is its
    class center plus standard normal noise, so rows near other classes are hard.

    Parameters
    ----------
    n_samples, n_features, n_classes : int
    separation : float, default 1.5
        Norm of the class centers (in units of the noise's standard deviation).
    random_state : int, RandomState or None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float32
    y : ndarray of shape (n_samples,), int64, labels ``0..n_classes-1`` in turn
    """
    rng = check_random_state(random_state)
    centers = rng.normal(size=(n_classes, n_features))
    centers *= separation / np.linalg.norm(centers, axis=1, keepdims=True)
    y = np.arange(n_samples) % n_classes
    X = centers[y] + rng.normal(size=(n_samples, n_features))
    return X.astype(np.float32), y.astype(np.int64)


# ---------------------------------------------------------------------------- exact solver
def _split(theta, n_features, n_classes):
    coef = theta[:n_classes * n_features].reshape(n_classes, n_features)
    return coef, theta[n_classes * n_features:]


def _ce(theta, X, y, n_classes):
    """Per-row cross-entropy, its Jacobian (n, m) and the class probabilities."""
    n, d = X.shape
    coef, intercept = _split(theta, d, n_classes)
    logp = log_softmax(X @ coef.T + intercept, axis=1)
    losses = -logp[np.arange(n), y]
    probs = np.exp(logp)
    dz = probs.copy()
    dz[np.arange(n), y] -= 1.0
    jac = np.concatenate([(dz[:, :, None] * X[:, None, :]).reshape(n, -1), dz], axis=1)
    return losses, jac, probs


def _ce_hessian(probs, X, weights):
    """``sum_i weights_i * Hessian(l_i)`` in the parameter layout of :func:`_ce`."""
    n, d = X.shape
    n_classes = probs.shape[1]
    Xa = np.concatenate([X, np.ones((n, 1))], axis=1)
    wp = weights[:, None] * probs
    # block (c, c') of class pairs: sum_i w_i (p_ic [c == c'] - p_ic p_ic') x~_i x~_i^T
    blocks = -np.einsum("ic,ie,ij,ik->cjek", wp, probs, Xa, Xa)
    diag = np.einsum("ic,ij,ik->cjk", wp, Xa, Xa)
    for c in range(n_classes):
        blocks[c, :, c, :] += diag[c]
    order = np.array([[c * d + j for j in range(d)] + [n_classes * d + c]
                      for c in range(n_classes)]).ravel()
    m = n_classes * (d + 1)
    hess = np.empty((m, m))
    hess[np.ix_(order, order)] = blocks.reshape(m, m)
    return hess


def _check_problem(X, y, n_classes):
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a non-empty 2-d array, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinity")
    if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold one integer label per row of X, got shape {y.shape} "
                         f"and dtype {y.dtype}")
    n_classes = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"y must hold labels in 0..{n_classes - 1}")
    return X, y.astype(np.int64), n_classes


def _check_epsilon(epsilon, n):
    eps = np.asarray(epsilon, dtype=np.float64)
    if eps.ndim > 1 or (eps.ndim == 1 and eps.shape[0] != n):
        raise ValueError(f"epsilon must be a number or hold one value per row ({n}), got "
                         f"shape {eps.shape}")
    if not np.isfinite(eps).all() or (eps < 0).any():
        raise ValueError("epsilon must be finite and >= 0")
    return np.broadcast_to(eps, (n,)).copy()


def solve_constrained(X, y, epsilon, *, n_classes=None, weight_decay: float = 1e-2,
                      x0=None, gtol: float = 1e-13, barrier_tol: float = 1e-14,
                      maxiter: int = 3000):
    """Solve the per-row constrained softmax regression exactly.

    ``minimize (1/n) sum_i l_i(theta) + weight_decay / 2 * ||theta||^2 subject to
    l_i(theta) <= epsilon_i``, ``l_i`` the cross-entropy of row ``i`` under the linear
    model ``logits = X @ coef.T + intercept`` (the weight decay covers the intercept too,
    as ``optimizer__weight_decay`` does in torch). Solved by scipy's ``trust-constr``
    with analytic gradients, constraint Jacobians and Hessians.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
        Integer labels ``0..n_classes-1``.
    epsilon : float, array-like of shape (n_samples,) or None
        Constraint levels; None solves the unconstrained problem.
    n_classes : int or None
        Defaults to ``max(y) + 1``.
    weight_decay : float, default 1e-2
        L2 penalty ``alpha`` (> 0 makes the optimum unique: softmax logits are
        invariant to adding the same vector to every class).
    x0 : array-like or None
        Starting parameters (layout of :attr:`ConstrainedSolution.theta`); zeros by default.
    gtol, barrier_tol, maxiter : float, float, int
        Passed to ``trust-constr``. The interior-point iterate keeps a slack of about
        ``barrier parameter / mu_i`` on active rows; a small ``barrier_tol`` makes that
        negligible, which finite differences of ``P*`` need.

    Returns
    -------
    solution : ConstrainedSolution
    """
    X, y, n_classes = _check_problem(X, y, n_classes)
    n, d = X.shape
    m = n_classes * (d + 1)
    alpha = float(weight_decay)
    theta0 = np.zeros(m) if x0 is None else np.asarray(x0, dtype=np.float64).copy()

    def objective(theta):
        losses, jac, _ = _ce(theta, X, y, n_classes)
        return losses.mean() + 0.5 * alpha * theta @ theta, jac.mean(axis=0) + alpha * theta

    def objective_hess(theta):
        _, _, probs = _ce(theta, X, y, n_classes)
        return _ce_hessian(probs, X, np.full(n, 1.0 / n)) + alpha * np.eye(m)

    constraints = []
    eps = None
    if epsilon is not None:
        eps = _check_epsilon(epsilon, n)
        constraints.append(NonlinearConstraint(
            lambda t: _ce(t, X, y, n_classes)[0] - eps, -np.inf, 0.0,
            jac=lambda t: _ce(t, X, y, n_classes)[1],
            hess=lambda t, v: _ce_hessian(_ce(t, X, y, n_classes)[2], X, np.asarray(v))))
    with warnings.catch_warnings():
        # the barrier subproblems can be rank-deficient; scipy falls back to an SVD
        warnings.filterwarnings("ignore", message="Singular Jacobian matrix")
        result = minimize(objective, theta0, jac=True, hess=objective_hess,
                          method="trust-constr", constraints=constraints,
                          options={"gtol": gtol, "xtol": 1e-14, "barrier_tol": barrier_tol,
                                   "maxiter": maxiter})
    theta = result.x
    losses, jac, _ = _ce(theta, X, y, n_classes)
    mu = np.clip(result.v[0], 0.0, None) if constraints else np.zeros(n)
    grad = jac.mean(axis=0) + alpha * theta + jac.T @ mu
    coef, intercept = _split(theta, d, n_classes)
    violation = 0.0 if eps is None else max(0.0, float(np.max(losses - eps)))
    return ConstrainedSolution(
        coef=coef.copy(), intercept=intercept.copy(),
        value=float(losses.mean() + 0.5 * alpha * theta @ theta), losses=losses,
        multipliers=mu, lambdas=n * mu, kkt_residual=float(np.abs(grad).max()),
        max_violation=violation, result=result)


def minimax_loss(X, y, *, epsilon=None, n_classes=None, maxiter: int = 1000) -> float:
    """The smallest achievable largest loss (or largest constraint violation).

    ``min_theta max_i (l_i(theta) - epsilon_i)`` (no weight decay: it does not change
    feasibility), solved as ``min t s.t. l_i(theta) - epsilon_i <= t``. With the
    default ``epsilon=None`` (zeros) this is the smallest scalar epsilon for which
    every constraint can hold; with given levels, the constraints are strictly feasible
    (Slater's condition, which bounds the multipliers) exactly when the value is < 0.
    The interior-point solution is feasible, so the value returned is an upper bound
    of the infimum (which is not attained when the classes are linearly separable).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    epsilon : float, array-like of shape (n_samples,) or None
    n_classes : int or None
    maxiter : int, default 1000

    Returns
    -------
    value : float
    """
    X, y, n_classes = _check_problem(X, y, n_classes)
    n, d = X.shape
    m = n_classes * (d + 1)
    eps = np.zeros(n) if epsilon is None else _check_epsilon(epsilon, n)

    def fun(z):
        return _ce(z[:m], X, y, n_classes)[0] - eps - z[m]

    def jac(z):
        return np.concatenate([_ce(z[:m], X, y, n_classes)[1], -np.ones((n, 1))], axis=1)

    def hess(z, v):
        out = np.zeros((m + 1, m + 1))
        out[:m, :m] = _ce_hessian(_ce(z[:m], X, y, n_classes)[2], X, np.asarray(v))
        return out

    start = np.r_[np.zeros(m), math.log(n_classes) - eps.min() + 1.0]
    gradient = np.r_[np.zeros(m), 1.0]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Singular Jacobian matrix")
        result = minimize(lambda z: (z[m], gradient), start, jac=True,
                          hess=lambda z: np.zeros((m + 1, m + 1)), method="trust-constr",
                          constraints=[NonlinearConstraint(fun, -np.inf, 0.0, jac=jac,
                                                           hess=hess)],
                          options={"gtol": 1e-9, "xtol": 1e-12, "maxiter": maxiter})
    return float(np.max(_ce(result.x[:m], X, y, n_classes)[0] - eps))


# ---------------------------------------------------------------------------- PDCL side
@contextlib.contextmanager
def _torch_threads(n_threads):
    # a full-batch step on a few dozen rows is microseconds of arithmetic: extra
    # OpenMP threads only add synchronization, which on a busy machine costs ~20 ms
    # a step
    previous = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
              "callbacks__print_log": None}
    params.update(net_params)
    net = PDCLNet(LinearModule, **params)
    with _torch_threads(n_threads):
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
    for name, value in (("n_samples", n_samples), ("n_features", n_features),
                        ("n_classes", n_classes), ("max_epochs", max_epochs),
                        ("n_fd_rows", n_fd_rows)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    for name, value in (("h", h), ("weight_decay", weight_decay), ("lr", lr),
                        ("dual_lr", dual_lr), ("active_tol", active_tol)):
        if not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if not 0 < epsilon_fraction < 1:
        raise ValueError(f"epsilon_fraction must be in (0, 1), got {epsilon_fraction!r}")

    X, y = make_duality_data(n_samples, n_features, n_classes, separation=separation,
                             random_state=random_state)
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
    # the net stores epsilon in float32: solve the exact problem at the same levels
    eps = _check_epsilon(epsilon, n).astype(np.float32)
    exact = solve_constrained(X, y, eps, n_classes=n_classes, weight_decay=weight_decay)

    net = fit_pdcl_linear(X, y, eps, weight_decay=weight_decay, max_epochs=max_epochs,
                          lr=lr, dual_lr=dual_lr, random_state=random_state,
                          classes=np.arange(n_classes))
    lam_pdcl = net.lambdas_.astype(np.float64)
    lam_exact = exact.lambdas
    tol = active_tol * float(lam_exact.max())
    active_exact = lam_exact > tol
    active_pdcl = lam_pdcl > tol
    theta_pdcl = np.concatenate([
        net.module_.head.weight.detach().cpu().double().numpy().ravel(),
        net.module_.head.bias.detach().cpu().double().numpy()])
    losses_pdcl = _ce(theta_pdcl, X.astype(np.float64), y, n_classes)[0]

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
        "n_samples": n,
        "fd_step": float(h),
    }


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
