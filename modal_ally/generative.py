"""Generative mode: move inputs towards what the model finds informative.

The fitted dual head ``f_omega`` predicts, for any input, the multiplier its constraint
would get: how hard the sample is for the constrained model. Gradient ascent on the
input of ``f_omega(backbone(x))`` therefore turns pool samples into samples the model
finds more informative (the paper's Figure 1: digits drift towards ambiguous shapes).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from ._inference import chunk_size_of, iter_chunks
from ._torch_utils import eval_mode
from ._validation import check_array, check_fitted_net, get_estimator, is_sparse, is_tensor
from .dual_head import dual_values

__all__ = ["GenerativeResult", "generate_informative"]


@dataclass
class GenerativeResult:
    """The output of :func:`generate_informative`.

    Attributes
    ----------
    trajectory : ndarray of shape (n_steps + 1, n_samples, *feature_shape), float32
        ``trajectory[0]`` are the starting rows, ``trajectory[k]`` the inputs after
        ``k`` steps (projected into the bounds).
    dual : ndarray of shape (n_steps + 1, n_samples), float32
        Predicted dual variable of the paper's dual head (lambda units, clipped at 0:
        ``predict_dual_from_embeddings(embed(x), head="paper")``) of each input of the
        trajectory.
    """

    trajectory: np.ndarray
    dual: np.ndarray

    @property
    def final(self) -> np.ndarray:
        """The generated samples: ``trajectory[-1]``."""
        return self.trajectory[-1]

    @property
    def dual_gain(self) -> np.ndarray:
        """``dual[-1] - dual[0]``: how much more informative each sample became."""
        return self.dual[-1] - self.dual[0]


def _check_bounds(bounds, feature_shape):
    if bounds is None:
        return None
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise ValueError("bounds must be None or a (low, high) pair of numbers or arrays "
                         f"broadcastable to one sample {tuple(feature_shape)}, got {bounds!r}")
    out = []
    for name, value in zip(("low", "high"), bounds):
        if is_tensor(value):
            value = value.detach().cpu().numpy()
        try:
            value = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"bounds {name} must be numeric, got {value!r}") from exc
        try:
            value = np.broadcast_to(value, tuple(feature_shape))
        except ValueError as exc:
            raise ValueError(f"bounds {name} of shape {value.shape} does not broadcast to "
                             f"one sample of shape {tuple(feature_shape)}") from exc
        if np.isnan(value).any():
            raise ValueError(f"bounds {name} contains NaN")
        out.append(value)
    low, high = out
    if (low > high).any():
        raise ValueError("bounds must have low <= high everywhere")
    return low, high


def _check_options(n_steps, step_size, normalize_gradient):
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral):
        raise TypeError(f"n_steps must be an integer, got {n_steps!r}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if isinstance(step_size, bool) or not isinstance(step_size, numbers.Real) \
            or not math.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size must be a finite number > 0, got {step_size!r}")
    if not isinstance(normalize_gradient, (bool, np.bool_)):
        raise TypeError(f"normalize_gradient must be True or False, got {normalize_gradient!r}")


def _enumerate_chunks(X, chunk_size, device):
    """``(first row, float32 tensor)`` of each chunk of ``X`` (values checked)."""
    for index, block in enumerate(iter_chunks(X, chunk_size, device)):
        yield index * chunk_size, block


def _ascend(predicted, x, n_steps, step_size, normalize_gradient, box):
    """Yield ``(inputs, clipped prediction)`` as numpy arrays for ``n_steps + 1`` points."""
    x = x.detach().clone()
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    for k in range(n_steps + 1):
        x.requires_grad_(True)
        value = predicted(x)
        yield x.detach().cpu().numpy(), value.detach().clamp_min(0).cpu().numpy()
        if k == n_steps:
            return
        # gradient with respect to the inputs only: no parameter .grad
        (grad,) = torch.autograd.grad(value.sum(), x)
        x = x.detach()
        if normalize_gradient:
            norms = grad.reshape(grad.shape[0], -1).norm(dim=1)
            grad = grad / torch.where(norms > 0, norms, 1.0).reshape(shape)
        x = x + step_size * grad
        if box is not None:
            x = torch.maximum(torch.minimum(x, box[1]), box[0])


def generate_informative(estimator, X, *, n_steps: int = 50, step_size: float = 0.01,
                         bounds=None, normalize_gradient: bool = True) -> GenerativeResult:
    """Gradient ascent on the inputs to raise their predicted dual variable.

    Starting from the rows of ``X``, takes ``n_steps`` steps
    ``x <- project(x + step_size * g)`` with ``g`` the gradient with respect to ``x`` of
    the predicted multiplier ``f_omega(backbone(x))`` of the paper's dual head
    (``dual_head_``, as in the paper's Figure 1; the backbone and the head in eval mode),
    divided by its norm per sample when ``normalize_gradient``. The ascent
    follows the dual head's output before the clip at 0 (the clip has no gradient below
    0); the values reported are clipped at 0. The estimator is not
    changed: its modules' train/eval modes are restored and no parameter gradient is
    computed.

    Parameters
    ----------
    estimator : PDCLNet, PDCLRegressor, or a modAL learner wrapping one
        Fitted, with a fitted dual head (some training multiplier > 0).
    X : numpy.ndarray or torch.Tensor of shape (n_samples, *feature_shape)
        Starting points, with the per-sample shape the estimator was fitted on.
    n_steps : int, default 50
        Number of ascent steps (>= 1).
    step_size : float, default 0.01
        Length of each step (> 0): the Euclidean norm of the per-sample update when
        ``normalize_gradient``, the gradient multiplier otherwise.
    bounds : (low, high) or None, default None
        Box the inputs are projected into after every step (``trajectory[0]`` is ``X``
        as given); ``low`` and ``high`` are numbers or arrays broadcastable to one sample
        (e.g. ``(0, 1)`` for images scaled to [0, 1]). None leaves the inputs free.
    normalize_gradient : bool, default True
        Step along the per-sample unit gradient direction. A sample whose gradient is 0
        (e.g. dead ReLUs) does not move.

    Notes
    -----
    Rows are processed in chunks of the estimator's ``chunk_size``; the returned
    trajectory holds ``(n_steps + 1) * n_samples`` inputs, so the mode is meant for a
    few samples at a time.

    Returns
    -------
    result : GenerativeResult
        ``trajectory`` of shape (n_steps + 1, n_samples, *feature_shape) and ``dual`` of
        shape (n_steps + 1, n_samples), both float32 numpy arrays.

    Raises
    ------
    TypeError
        If the estimator is not a PDCL net, or an option has the wrong type.
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    ValueError
        If the dual head was not fitted (every training multiplier was 0), ``X`` has
        the wrong shape or non-finite values, or an option is out of range.
    """
    net = check_fitted_net(get_estimator(estimator), require_pdcl=True,
                           strategy="generate_informative")
    if not getattr(net, "dual_head_fitted_", False):
        raise ValueError(
            "the estimator's dual head is not fitted: every training multiplier was 0 "
            "(epsilon is above every per-sample loss), so there is no informativeness to "
            "ascend; lower epsilon and refit")
    X = check_array(X, name="X", n_features=net.feature_shape_)
    if is_sparse(X):
        raise TypeError(
            "generate_informative moves every input along its gradient, which makes it "
            "dense (the trajectory has shape (n_steps + 1, n_samples, n_features)): pass "
            "the few starting rows dense, e.g. X[rows].toarray()")
    _check_options(n_steps, step_size, normalize_gradient)
    box = _check_bounds(bounds, net.feature_shape_)

    device = torch.device(net.device if net.device is not None else "cpu")
    box = None if box is None else tuple(torch.tensor(np.array(b), device=device)
                                         for b in box)
    n = X.shape[0]
    trajectory = np.empty((n_steps + 1, *X.shape), dtype=np.float32)
    dual = np.empty((n_steps + 1, n), dtype=np.float32)
    scaling = net.dual_scaling_
    with eval_mode(net.module_, net.dual_head_) as (module, head), torch.enable_grad():
        def predicted(inputs):  # lambda units, before the clip at 0
            embeddings = module.backbone(inputs).reshape(inputs.shape[0], -1)
            return dual_values(head, embeddings, scaling)

        # rows are independent in eval mode: one chunk at a time
        for start, x in _enumerate_chunks(X, chunk_size_of(net), device):
            rows = slice(start, start + x.shape[0])
            steps = _ascend(predicted, x, n_steps, step_size, normalize_gradient, box)
            for k, (inputs, value) in enumerate(steps):
                trajectory[k, rows] = inputs
                dual[k, rows] = value
    return GenerativeResult(trajectory=trajectory, dual=dual)
