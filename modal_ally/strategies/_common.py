"""What every query strategy does first: :func:`validate_query`.

A strategy checks the learner, the pool and its options exactly once, here, and gets
back what it needs; the pool's values are checked later, chunk by chunk, while it is
embedded (:func:`embed_pool`).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .._inference import (
    DEFAULT_CHUNK_SIZE,
    embed,
    feature_shape_of,
    network_errors,
    resolve_pipeline,
)
from .._torch_utils import as_tensor
from .._validation import (
    as_finite_float32,
    check_array,
    check_fitted_net,
    check_n_instances,
    check_optional_int,
    check_random_state,
    check_real,
    clip_n_instances,
    get_estimator,
)
from ..distributed import check_dask_pool, is_dask_collection


def _check_delta(delta):
    if isinstance(delta, str):
        if delta != "auto":
            raise ValueError(f"delta must be a number >= 0 or 'auto', got {delta!r}")
        return delta
    if not isinstance(delta, numbers.Real) or isinstance(delta, bool) or not delta >= 0:
        raise ValueError(f"delta must be a number >= 0 or 'auto', got {delta!r}")
    return float(delta)


#: The strategies' options and their checks (each names its option in its errors).
OPTION_CHECKS: dict[str, Callable] = {
    "n_clusters": lambda v: check_optional_int(v, "n_clusters"),
    "cluster_components": lambda v: check_optional_int(v, "cluster_components"),
    "max_dual": lambda v: check_real(v, "max_dual", low=0, low_open=True, optional=True),
    "skip_top_quantile": lambda v: check_real(v, "skip_top_quantile", low=0, high=1,
                                              low_open=True, high_open=True,
                                              optional=True),
    "delta": _check_delta,
    "delta_scale": lambda v: check_real(v, "delta_scale", low=0, low_open=True),
    "temperature": lambda v: check_real(v, "temperature", low=0, low_open=True,
                                        optional=True),
}


@dataclass(frozen=True)
class Query:
    """A validated query: what the strategy works with.

    Attributes
    ----------
    learner : the modAL learner (or the bare estimator) given to the strategy
    net : the estimator behind it
    X_pool : the pool, type and shape checked, not converted (see ``embed_pool``)
    n_instances : the batch size, clipped to the pool's size
    random_state : numpy.random.RandomState or torch.Generator
    options : the strategy's checked options
    shape_known : whether the pool's per-sample shape was checked against the net's
    transform : a Pipeline's preprocessing (``transform(X, name)``), or None
    """

    learner: object
    net: object
    X_pool: object
    n_instances: int
    random_state: object
    options: dict = field(default_factory=dict)
    shape_known: bool = True
    transform: object = None


def expected_feature_shape(learner, estimator):
    """The per-sample shape the pool must have: the net's, else the labeled set's."""
    shape = feature_shape_of(estimator)
    if shape is None:
        X_training = getattr(learner, "X_training", None) if learner is not estimator \
            else None
        if getattr(X_training, "ndim", 0) >= 2:
            shape = tuple(X_training.shape[1:])
    return shape


def validate_query(learner, X_pool, n_instances, *, strategy: str, require_net=True,
                   require_pdcl=False, check_net=None, random_state=None,
                   **options) -> Query:
    """Check the learner, the pool and the options once; return a :class:`Query`.

    Parameters
    ----------
    learner : modAL learner or estimator
    X_pool : array-like or dask.array.Array
        Checked for type, shape and dtype (not for values: see :func:`embed_pool`);
        with a Pipeline estimator, first passed through its preprocessing steps; a
        Dask array is checked without being computed.
    n_instances : int
    strategy : str
        The strategy's name, for the error messages.
    require_net : bool
        The estimator must be a fitted skorch net with a ``backbone``.
    require_pdcl : bool
        The estimator must be a fitted PDCLNet or PDCLRegressor.
    check_net : callable or None
        A further check of the net (e.g. BADGE needs a classifier with a ``head``).
    random_state : None, int, RandomState or torch.Generator
    **options
        The strategy's options, checked by :data:`OPTION_CHECKS`.
    """
    net, X_pool, transform = resolve_pipeline(get_estimator(learner), X_pool)
    if require_net or require_pdcl:
        check_fitted_net(net, require_pdcl=require_pdcl, strategy=strategy)
        if check_net is not None:
            check_net(net, strategy)
    shape = expected_feature_shape(learner if transform is None else net, net)
    if is_dask_collection(X_pool):  # checked without computing it (dtype, shape, chunks)
        X_pool = check_dask_pool(X_pool, n_features=shape)
    else:
        X_pool = check_array(X_pool, name="X_pool", n_features=shape)
    n_instances = check_n_instances(n_instances)
    checked = {name: OPTION_CHECKS[name](value) for name, value in options.items()}
    if checked.get("skip_top_quantile") is not None and is_dask_collection(X_pool):
        raise ValueError("skip_top_quantile needs the scores of the whole pool at once; "
                         "with a Dask pool use max_dual (an upper bound on the predicted "
                         "lambda) instead")
    rng = check_random_state(random_state)
    return Query(learner=learner, net=net, X_pool=X_pool,
                 n_instances=clip_n_instances(n_instances, int(X_pool.shape[0])),
                 random_state=rng, options=checked, shape_known=shape is not None,
                 transform=transform)


def check_pool_values(query: Query, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
    """Check the pool's values for NaN/inf chunk by chunk, for a strategy that never
    embeds it (random sampling): a bad pool fails the same way for every strategy."""
    X_pool = query.X_pool
    for start in range(0, X_pool.shape[0], chunk_size):
        as_finite_float32(X_pool[start:start + chunk_size], name="X_pool")


def embed_pool(query: Query, *, out_device=None) -> torch.Tensor:
    """Eval-mode backbone embeddings of the pool (values checked chunk by chunk)."""
    net = query.net
    with network_errors(query.X_pool, shape_known=query.shape_known):
        return embed(net, query.X_pool, name="X_pool", as_numpy=False,
                     out_device=net.device if out_device is None else out_device,
                     checked=True)


def labeled_embeddings(query: Query, strategy: str) -> torch.Tensor:
    """Embeddings of the labeled set (CPU tensor).

    The estimator's ``train_embeddings_`` (PDCLNet keeps those of its training rows,
    also under modAL's DeepActiveLearner) when they cover the learner's labeled set;
    else the learner's ``X_training`` (modAL's ActiveLearner), embedded now.
    """
    learner, net = query.learner, query.net
    stored = getattr(net, "train_embeddings_", None)
    X_training = getattr(learner, "X_training", None) if learner is not net else None
    if stored is not None and (X_training is None or _n_rows(X_training) == len(stored)):
        return torch.as_tensor(np.asarray(stored))
    if X_training is not None:
        if query.transform is not None:
            X_training = query.transform(X_training, "X_training")
        return embed(net, X_training, name="X_training", as_numpy=False)
    raise ValueError(
        f"{strategy} needs the embeddings of the labeled set, but the estimator "
        f"{type(net).__name__} keeps no `train_embeddings_` (PDCLNet and PDCLRegressor "
        "do) and the learner keeps no `X_training` (modAL's DeepActiveLearner): use a "
        "PDCLNet, or an ActiveLearner built with X_training and y_training")


def _n_rows(X) -> int:
    """Rows of a labeled set: its ``shape[0]`` where it has one (``len`` refuses a
    scipy.sparse matrix), else its length (a list of texts)."""
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) else len(X)


def as_matrix(X, name: str, *, device=None, allow_empty: bool = False) -> torch.Tensor:
    """The input of a pure selection function: 2-d, finite, float32 or float64."""
    if not isinstance(X, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, "
                        f"got {type(X).__name__}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-dimensional (n_samples, n_dims), "
                         f"got shape {tuple(X.shape)}")
    if X.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: it has 0 rows")
    X = as_tensor(X, device, min_float=True)
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"{name} contains NaN or infinity")
    return X
