"""Input checks shared by the estimators and the query strategies.

Every public entry point validates before it changes anything, so a failed call
leaves the learner and the estimator exactly as they were.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch
from sklearn.exceptions import NotFittedError

from ._coerce import FLOAT32_MAX, as_numeric, overflow_error


def is_tensor(X) -> bool:
    return isinstance(X, torch.Tensor)


def n_rows(X) -> int:
    return int(X.shape[0])


def check_array(X, *, name: str = "X", n_features: tuple | None = None,
                allow_empty: bool = False):
    """Check that ``X`` is a finite numpy array or torch tensor.

    Parameters
    ----------
    X : numpy.ndarray, torch.Tensor, list of rows or pandas DataFrame of numbers
        Rows of samples; any trailing shape (tabular or image data).
    name : str
        How the error messages name the array (``"X_pool"``, ``"X"``...).
    n_features : tuple or None
        The per-sample shape ``X.shape[1:]`` the estimator was fitted on.
    allow_empty : bool
        Whether zero rows are accepted.

    Returns
    -------
    X : numpy.ndarray or torch.Tensor
        Always float32 (the dtype of the networks): integer input such as uint8
        images is cast, not rescaled.
    """
    X = as_numeric(X, name=name)
    if not (isinstance(X, np.ndarray) or is_tensor(X)):
        raise TypeError(
            f"{name} must be a numpy array or a torch tensor (or a list of rows, or a "
            f"pandas DataFrame of numbers), got {type(X).__name__}")
    if X.ndim < 2:
        raise ValueError(
            f"{name} must have at least 2 dimensions (n_samples, n_features...), "
            f"got shape {tuple(X.shape)}; reshape a single sample with X.reshape(1, -1)")
    if X.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if n_features is not None and tuple(X.shape[1:]) != tuple(n_features):
        raise ValueError(
            f"{name} has {tuple(X.shape[1:])} features per sample, but the estimator "
            f"was fitted with {tuple(n_features)}")
    if is_tensor(X):
        if X.dtype in (torch.bool, torch.complex64, torch.complex128):
            raise TypeError(f"{name} must be numeric, got dtype {X.dtype}")
        if X.is_floating_point() and not bool(torch.isfinite(X).all()):
            raise ValueError(f"{name} contains NaN or infinity")
        if X.dtype == torch.float64 and X.numel() \
                and max(float(X.max()), -float(X.min())) > FLOAT32_MAX:
            raise overflow_error(X.cpu().numpy(), name)
        return X if X.dtype == torch.float32 else X.float()
    if X.dtype == object or not np.issubdtype(X.dtype, np.number) \
            or np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"{name} must be numeric, got dtype {X.dtype}")
    if np.issubdtype(X.dtype, np.floating) and not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinity")
    if np.issubdtype(X.dtype, np.floating) and X.dtype.itemsize > 4 and X.size \
            and max(float(X.max()), -float(X.min())) > FLOAT32_MAX:
        raise overflow_error(X, name)
    return X if X.dtype == np.float32 else X.astype(np.float32)


def check_n_instances(n_instances) -> int:
    if isinstance(n_instances, bool) or not isinstance(n_instances, numbers.Integral):
        raise TypeError(f"n_instances must be an integer, got {n_instances!r}")
    if n_instances < 1:
        raise ValueError(f"n_instances must be >= 1, got {n_instances}")
    return int(n_instances)


def clip_n_instances(n_instances: int, n_pool: int) -> int:
    """Return ``min(n_instances, n_pool)``, warning when the pool is the limit."""
    if n_instances > n_pool:
        warnings.warn(
            f"n_instances={n_instances} is larger than the pool ({n_pool} samples): "
            "returning the whole pool", UserWarning, stacklevel=3)
        return n_pool
    return n_instances


def check_optional_int(value, name: str, *, minimum: int = 1):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer or None, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_choice(value, name: str, choices):
    if value not in choices:
        raise ValueError(f"unknown {name}={value!r}; expected one of {sorted(choices)}")
    return value


def get_estimator(learner):
    """The network behind a modAL learner (or a bare estimator)."""
    return getattr(learner, "estimator", learner)


def pdcl_needed_message(net, strategy: str) -> str:
    """The error for a strategy that needs dual variables but got another estimator."""
    from skorch import NeuralNet, NeuralNetRegressor

    got = type(net).__name__
    if isinstance(net, NeuralNet):
        module = getattr(net, "module", None)
        module = module.__name__ if isinstance(module, type) else type(module).__name__
        kind = "PDCLRegressor" if isinstance(net, NeuralNetRegressor) else "PDCLNet"
        return (
            f"{strategy} needs a PDCLNet or PDCLRegressor (the dual variables of "
            f"primal-dual training), which a plain skorch {got} does not learn: "
            f"replace it with {kind}(module={module}, ...) "
            f"with the same skorch arguments (criterion, optimizer, lr, max_epochs, "
            f"batch_size, device, module__*); {kind} is a skorch {got} too, and your "
            "module is used as it is")
    return (f"{strategy} needs a learner whose estimator is a PDCLNet or PDCLRegressor "
            f"(primal-dual trained), or a Pipeline ending in one, got {got}; e.g. "
            "PDCLNet(module=YourModule, ...)")


def check_fitted_net(net, *, require_backbone: bool = True, require_pdcl: bool = False,
                     strategy: str = "this strategy"):
    """Check that ``net`` is a fitted skorch net whose module has a ``backbone``."""
    from skorch import NeuralNet

    from .net import PDCLMixin

    if require_pdcl and not isinstance(net, PDCLMixin):
        raise TypeError(pdcl_needed_message(net, strategy))
    if not isinstance(net, NeuralNet):
        raise TypeError(
            f"{strategy} needs a skorch net as the learner's estimator, "
            f"got {type(net).__name__}")
    if not getattr(net, "initialized_", False) or not hasattr(net, "module_"):
        raise NotFittedError(
            f"This {type(net).__name__} is not fitted yet: call fit (or build the "
            "ActiveLearner with X_training and y_training) before querying")
    if require_pdcl and not hasattr(net, "lambdas_"):
        raise NotFittedError(
            f"This {type(net).__name__} is not fitted yet: call fit before querying")
    if require_backbone and not hasattr(net.module_, "backbone"):
        raise TypeError(
            f"{strategy} needs the module to expose a `backbone` submodule "
            f"(forward = head(backbone(x))); {type(net.module_).__name__} has none: use "
            f"PDCLNet(module={type(net.module_).__name__}, ...), which splits a plain module "
            "at the input of its last nn.Linear")
    return net
