"""The exact side of the duality check: a linear softmax model under one loss
constraint per row, solved by scipy's ``trust-constr`` with analytic gradients and
Hessians (see :mod:`modal_ally.diagnostics.duality` for the scaling of the multipliers).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import NonlinearConstraint, OptimizeResult, minimize
from scipy.special import log_softmax
from sklearn.utils import check_random_state
from torch import nn

from ..modules import BackboneHeadModule

__all__ = ["LinearModule", "ConstrainedSolution", "make_duality_data", "minimax_loss",
           "solve_constrained"]


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
