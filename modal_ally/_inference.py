"""Chunked, bounded-memory inference over numpy arrays and torch tensors."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from ._coerce import check_option
from ._validation import check_array, check_fitted_net

#: Rows per chunk for pool inference; a chunk of 4096 rows of 32x32x3 float32
#: images is 50 MB, of 256 features 4 MB.
DEFAULT_CHUNK_SIZE = 4096


def iter_chunks(X, chunk_size: int, device) -> Iterator[torch.Tensor]:
    """Yield consecutive row blocks of ``X`` as tensors on ``device``."""
    for start in range(0, X.shape[0], chunk_size):
        block = X[start:start + chunk_size]
        if isinstance(block, np.ndarray):
            block = torch.from_numpy(np.ascontiguousarray(block))
        yield block.to(device, non_blocking=True)


@torch.no_grad()
def map_chunks(fn: Callable[[torch.Tensor], torch.Tensor], X, *, chunk_size: int,
               device, out_device="cpu") -> torch.Tensor:
    """Apply ``fn`` to row blocks of ``X`` and write the results into one tensor.

    The output is allocated once, after the first block: peak memory is the output
    plus one block, not twice the output.
    """
    out = None
    start = 0
    for block in iter_chunks(X, chunk_size, device):
        result = fn(block)
        if out is None:
            out = torch.empty((X.shape[0], *result.shape[1:]), dtype=result.dtype,
                              device=out_device)
        out[start:start + result.shape[0]] = result
        start += result.shape[0]
    return out if out is not None else torch.empty(0)


def chunk_size_of(net) -> int:
    """The net's ``chunk_size`` (checked where it is used: it may be set after fit);
    ``DEFAULT_CHUNK_SIZE`` for nets without one."""
    value = getattr(net, "chunk_size", None)
    if value is None:
        return DEFAULT_CHUNK_SIZE
    return check_option(value, "chunk_size", minimum=1)


def module_in_eval(net):
    """Context manager: the net's module in eval mode, restored afterwards."""
    return _EvalMode(net.module_)


class _EvalMode:
    def __init__(self, module):
        self.module = module

    def __enter__(self):
        self.was_training = self.module.training
        self.module.train(False)
        return self.module

    def __exit__(self, *exc):
        self.module.train(self.was_training)
        return False


def embed(net, X, *, name: str = "X", as_numpy: bool = True, out_device="cpu"):
    """Backbone embeddings of ``X`` for any fitted skorch net whose module has a
    ``backbone`` (eval mode, no gradients, chunks of ``net.chunk_size`` rows).

    Parameters
    ----------
    net : skorch.NeuralNet
        A fitted net following the backbone/head contract.
    X : numpy.ndarray or torch.Tensor
        Samples with the per-sample shape the net was fitted on.

    Returns
    -------
    embeddings : numpy.ndarray of shape (n_samples, embedding_dim), float32
        (a tensor on ``out_device`` when ``as_numpy=False``).
    """
    check_fitted_net(net, strategy="embed")
    X = check_array(X, name=name, n_features=feature_shape_of(net))
    with module_in_eval(net) as module:
        out = map_chunks(module.backbone, X, chunk_size=chunk_size_of(net),
                         device=net.device, out_device="cpu" if as_numpy else out_device)
    out = out.float().reshape(out.shape[0], -1)
    return out.numpy() if as_numpy else out


def feature_shape_of(net):
    """The per-sample input shape a fitted net was trained on, if it recorded it."""
    shape = getattr(net, "feature_shape_", None)
    return tuple(shape) if shape is not None else None
