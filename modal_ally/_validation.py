"""Input checks shared by the estimators and the query strategies.

This module imports nothing else from the package. Every public entry point checks
its input before it changes anything, so a failed call leaves the learner and the
estimator exactly as they were. Arrays are checked in two steps: :func:`check_array`
looks at the type, shape and dtype once per call (no copy, no pass over the values),
and :func:`as_finite_float32` converts and checks the values of one chunk at a time.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import scipy.sparse
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state as _sklearn_random_state

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_tensor(X) -> bool:
    return isinstance(X, torch.Tensor)


def is_sparse(X) -> bool:
    """Whether ``X`` is a scipy.sparse matrix or array (what scikit-learn's text
    vectorizers return)."""
    return scipy.sparse.issparse(X)


def is_dask_collection(X) -> bool:
    """Whether ``X`` is a Dask array (duck-typed: dask is not imported)."""
    return callable(getattr(type(X), "__dask_graph__", None)) and hasattr(X, "chunks")


def n_rows(X) -> int:
    return int(X.shape[0])


def _is_dataframe(X) -> bool:
    return type(X).__name__ == "DataFrame" and hasattr(X, "dtypes") and hasattr(X, "columns")


_NULLABLE_NUMBERS = {"boolean", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16",
                     "UInt32", "UInt64", "Float32", "Float64"}


def as_numeric(X, *, name: str = "X"):
    """``X`` as a numpy array or a tensor, as scikit-learn reads it (arrays and
    tensors as they are, never copied).

    Lists and tuples of rows become arrays; a pandas DataFrame (or Series) of numbers
    becomes its values, nullable columns with missing values as NaN (which the value
    check then reports). Anything else is returned unchanged for the caller to refuse.

    Raises
    ------
    TypeError
        If a DataFrame has non-numeric columns (they are named).
    """
    if isinstance(X, np.ndarray) or is_tensor(X):
        return X
    if _is_dataframe(X):
        bad = [column for column, dtype in zip(X.columns, X.dtypes)
               if getattr(dtype, "kind", "O") not in "biuf"
               and str(dtype) not in _NULLABLE_NUMBERS]
        if bad:
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise TypeError(
                f"{name} is a DataFrame with non-numeric columns "
                f"{', '.join(repr(c) for c in bad[:10])}{more}: encode them as numbers "
                "(e.g. one-hot with pandas.get_dummies) or drop them")
        return X.to_numpy(dtype=np.float64, na_value=np.nan)
    if type(X).__name__ == "Series" and hasattr(X, "to_numpy"):
        return X.to_numpy()
    if isinstance(X, (list, tuple)):
        try:
            return np.asarray(X)
        except ValueError as exc:
            raise TypeError(f"{name} could not be read as a rectangular array of numbers "
                            f"({exc})") from exc
    return X


def check_class_labels(y):
    """Sorted unique class labels of a 1-d ``y``, with a clear error for bad labels.

    Raises
    ------
    ValueError
        If a label is missing (None or NaN): a missing label is not a class.
    TypeError
        If the labels cannot be sorted (e.g. numbers mixed with strings).
    """
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity: every row needs a label")
    if y.dtype != object:
        return np.unique(y)
    missing = [i for i, label in enumerate(y) if label is None
               or (isinstance(label, numbers.Real) and label != label)]
    if missing:
        kind = "None" if y[missing[0]] is None else "NaN"
        raise ValueError(
            f"y contains missing labels ({kind}) in {len(missing)} rows, the first at row "
            f"{missing[0]}: every row needs a label; drop the unlabeled rows")
    try:
        return np.unique(y)
    except TypeError as exc:
        kinds = sorted({type(label).__name__ for label in y})
        raise TypeError(f"the labels in y cannot be sorted: they mix types {kinds}; use "
                        "one type for all labels (e.g. y.astype(str))") from exc


def check_array(X, *, name: str = "X", n_features: tuple | None = None,
                allow_empty: bool = False):
    """Check the type, shape and dtype of ``X`` without reading its values.

    Parameters
    ----------
    X : numpy.ndarray (a memmap too), torch.Tensor, scipy.sparse matrix, list of rows,
        DataFrame of numbers or Dask array
        Rows of samples; any trailing shape (tabular or image data). A sparse matrix
        in CSR or CSC format is kept as it is (other formats become CSR: a copy of the
        stored values, never a dense array). A Dask array is
        computed here (a labeled set, or rows queried from a Dask pool, which modAL
        0.4.2.x stacks onto the labeled set); query strategies never pass their Dask
        pools here.
    name : str
        How the error messages name the array (``"X_pool"``, ``"X"``...).
    n_features : tuple or None
        The per-sample shape ``X.shape[1:]`` the estimator was fitted on.
    allow_empty : bool
        Whether zero rows are accepted.

    Returns
    -------
    X : numpy.ndarray, torch.Tensor or scipy.sparse matrix
        ``X`` itself (lists and DataFrames as a numpy array): never copied, so that a
        memory-mapped pool stays on disk. :func:`as_finite_float32` converts it, one
        chunk at a time.
    """
    if is_dask_collection(X):
        X = np.asarray(X)
    if is_sparse(X):
        if X.ndim == 2 and X.format not in ("csr", "csc"):
            X = X.tocsr()  # COO, LIL, DOK...: rows cannot be sliced; a copy of the values
    else:
        X = as_numeric(X, name=name)
    if not (isinstance(X, np.ndarray) or is_tensor(X) or is_sparse(X)):
        raise TypeError(
            f"{name} must be a numpy array or a torch tensor (or a scipy.sparse matrix, "
            f"a list of rows, or a pandas DataFrame of numbers), got {type(X).__name__}")
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
    # booleans count as numbers (0 and 1), as in scikit-learn: one-hot columns from
    # pandas.get_dummies are bool
    if is_tensor(X):
        if X.dtype in (torch.complex64, torch.complex128):
            raise TypeError(f"{name} must be numeric, got dtype {X.dtype}")
    elif X.dtype == object or not (np.issubdtype(X.dtype, np.number)
                                   or X.dtype == np.bool_) \
            or np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"{name} must be numeric, got dtype {X.dtype}")
    return X


def as_finite_float32(block, *, name: str = "X"):
    """One chunk of a checked array as float32, with its values checked.

    The only place where the package looks for NaN and infinity: a value that is
    finite in the input dtype but too large for float32 (``1e300`` in float64) is
    reported as overflowing float32, not as NaN.

    Parameters
    ----------
    block : numpy.ndarray, torch.Tensor or scipy.sparse matrix
        Rows of an array that passed :func:`check_array`.
    name : str
        How the error message names the array.

    Returns
    -------
    block : numpy.ndarray, torch.Tensor or scipy.sparse CSR matrix, float32
        Integer input such as uint8 images is cast, not rescaled. A sparse block
        comes back in CSR format (a CSC block converted: the chunk's values only), its
        stored values checked and converted; the implicit zeros are never materialized.
    """
    if is_sparse(block):
        block = block.tocsr()
        data = as_finite_float32(block.data, name=name)
        if data is block.data:
            return block
        return scipy.sparse.csr_matrix((data, block.indices, block.indptr),
                                       shape=block.shape)
    if is_tensor(block):
        if block.is_floating_point() and not bool(torch.isfinite(block).all()):
            raise ValueError(f"{name} contains NaN or infinity")
        converted = block if block.dtype == torch.float32 else block.float()
        if block.is_floating_point() and not bool(torch.isfinite(converted).all()):
            raise ValueError(f"{name} has values that overflow float32 "
                             f"(|x| > {_FLOAT32_MAX:.3g})")
        return converted
    if np.issubdtype(block.dtype, np.floating) and not np.isfinite(block).all():
        raise ValueError(f"{name} contains NaN or infinity")
    if block.dtype == np.float32:
        return np.asarray(block)
    if np.issubdtype(block.dtype, np.floating) and block.size \
            and float(np.abs(block).max()) > _FLOAT32_MAX:
        raise ValueError(f"{name} has values that overflow float32 "
                         f"(|x| > {_FLOAT32_MAX:.3g})")
    return block.astype(np.float32)


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
            "returning the whole pool", UserWarning, stacklevel=4)
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


def check_real(value, name: str, *, low=None, high=None, low_open=False, high_open=False,
               optional=False, hint: str = ""):
    """Check a finite real scalar in ``[low, high]`` (or the open ends); None if allowed."""
    if value is None and optional:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = (f"{'(' if low_open else '['}{'-inf' if low is None else low}, "
                  f"{'inf' if high is None else high}{')' if high_open else ']'}")
        raise ValueError(f"{name} must be a finite number in {bounds}"
                         f"{' or None' if optional else ''}, got {value!r}{hint}")
    return value


def check_choice(value, name: str, choices):
    if value not in choices:
        raise ValueError(f"unknown {name}={value!r}; expected one of {sorted(choices)}")
    return value


def check_random_state(random_state):
    """``random_state`` as a ``numpy.random.RandomState`` or a ``torch.Generator``.

    Every function of the package takes ``None`` (numpy's global state), an int, a
    ``RandomState``, a ``numpy.random.Generator`` or a ``torch.Generator``;
    :func:`numpy_random_state` gives code that draws with numpy a ``RandomState`` for
    any of them.
    """
    if isinstance(random_state, torch.Generator):
        return random_state
    if isinstance(random_state, np.random.Generator):
        # a RandomState on the Generator's own bit generator: the draws advance the
        # caller's Generator, as they advance a RandomState passed in
        return np.random.RandomState(random_state.bit_generator)
    try:
        return _sklearn_random_state(random_state)
    except ValueError as exc:
        raise ValueError(
            "random_state must be None, an int, a numpy RandomState or Generator or a "
            f"torch.Generator, got {random_state!r}") from exc


def numpy_random_state(random_state) -> np.random.RandomState:
    """A ``RandomState`` for any accepted ``random_state`` (a generator seeds one)."""
    rng = check_random_state(random_state)
    if isinstance(rng, torch.Generator):
        seed = int(torch.randint(2**31 - 1, (), generator=rng, device=rng.device))
        return np.random.RandomState(seed)
    return rng


def uniform(rng) -> float:
    """One draw from U[0, 1) (``rng`` from :func:`check_random_state`)."""
    if isinstance(rng, torch.Generator):
        return float(torch.rand((), generator=rng, device=rng.device))
    return float(rng.random_sample())


def randint(rng, high: int) -> int:
    """One draw from {0, ..., high - 1} (``rng`` from :func:`check_random_state`)."""
    if isinstance(rng, torch.Generator):
        return int(torch.randint(high, (), generator=rng, device=rng.device))
    return int(rng.randint(high))


def get_estimator(learner):
    """The network behind a modAL learner (or a bare estimator)."""
    return getattr(learner, "estimator", learner)


def check_fitted_net(net, *, require_backbone: bool = True, require_pdcl: bool = False,
                     strategy: str = "this strategy"):
    """Check that ``net`` is a fitted skorch net whose module has a ``backbone``.

    ``require_pdcl`` asks for a primal-dual trained net: a class that sets
    ``_pdcl = True`` (PDCLNet and PDCLRegressor) and has been fitted.
    """
    from skorch import NeuralNet

    if require_pdcl and not getattr(type(net), "_pdcl", False):
        raise TypeError(pdcl_needed_message(net, strategy))
    if not isinstance(net, NeuralNet):
        raise TypeError(
            f"{strategy} needs a skorch net as the learner's estimator, "
            f"got {type(net).__name__}")
    if require_pdcl and getattr(net, "initialized_", False) and hasattr(net, "module_"):
        net.check_is_fitted(["lambdas_"])  # a net built or loaded without a dual state
    if not getattr(net, "initialized_", False) or not hasattr(net, "module_") \
            or (require_pdcl and not hasattr(net, "lambdas_")):
        raise NotFittedError(
            f"This {type(net).__name__} is not fitted yet: call fit (or build the "
            "ActiveLearner with X_training and y_training) before querying")
    if require_backbone and not hasattr(net.module_, "backbone"):
        raise TypeError(
            f"{strategy} needs the module to expose a `backbone` submodule "
            f"(forward = head(backbone(x))); {type(net.module_).__name__} has none: use "
            f"PDCLNet(module={type(net.module_).__name__}, ...), which splits a plain "
            "module at the input of its last nn.Linear")
    return net


def pdcl_needed_message(net, strategy: str) -> str:
    """The error for a strategy that needs dual variables but got another estimator."""
    from skorch import NeuralNet, NeuralNetRegressor

    got = type(net).__name__
    if not isinstance(net, NeuralNet):
        return (f"{strategy} needs a learner whose estimator is a PDCLNet or PDCLRegressor "
                f"(primal-dual trained), or a Pipeline ending in one, got {got}; e.g. "
                "PDCLNet(module=YourModule, ...)")
    module = getattr(net, "module", None)
    module = module.__name__ if isinstance(module, type) else type(module).__name__
    kind = "PDCLRegressor" if isinstance(net, NeuralNetRegressor) else "PDCLNet"
    return (f"{strategy} needs a PDCLNet or PDCLRegressor (the dual variables of "
            f"primal-dual training), which a plain skorch {got} does not learn: replace "
            f"it with {kind}(module={module}, ...) with the same skorch arguments "
            "(criterion, optimizer, lr, max_epochs, batch_size, device, module__*); "
            f"{kind} is a skorch {got} too, and your module is used as it is")
