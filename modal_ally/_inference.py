"""Chunked, bounded-memory inference over numpy arrays (memmaps too) and tensors.

The pool is never converted whole: :func:`iter_chunks` reads consecutive row blocks,
converts each to float32 and checks its values (:func:`~._validation.as_finite_float32`)
just before it goes through the network, so memory above the pool's own storage is
one chunk plus the outputs. A scipy.sparse pool (CSR, or CSC converted one chunk at a
time) goes through as torch sparse CSR chunks, never densified: the network's first
layer multiplies them as they are (:func:`check_sparse_input`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

from ._torch_utils import as_tensor, eval_mode
from ._validation import as_finite_float32, check_array, check_fitted_net, check_optional_int

#: Rows per chunk for pool inference; a chunk of 4096 rows of 32x32x3 float32
#: images is 50 MB, of 256 features 4 MB.
DEFAULT_CHUNK_SIZE = 4096


def iter_chunks(X, chunk_size: int, device, *, name: str | None = "X",
                start: int = 0) -> Iterator[torch.Tensor]:
    """Yield consecutive row blocks of ``X`` as float32 tensors on ``device``.

    Each block is converted and checked for NaN/inf on its own (``name`` is how the
    error names the array; None skips the check, for values already checked).
    The dask helper calls it on each block of a dask array.
    """
    release = _page_release(X)
    for begin in range(start, X.shape[0], chunk_size):
        block = X[begin:begin + chunk_size]
        if name is not None:
            block = as_finite_float32(block, name=name)
        yield as_tensor(block).to(device, non_blocking=True)
        if release is not None:
            release(begin, min(begin + chunk_size, X.shape[0]))


def _page_release(X):
    """For a memory-mapped numpy array (``np.memmap``, ``np.load(mmap_mode=...)``): a
    function that unmaps the whole pages of rows ``[begin, end)`` from this process
    (``madvise(MADV_DONTNEED)``) once a pass has read them, so that the pool's pages do
    not accumulate in the resident set; they stay in the kernel's page cache, and a later
    read maps them again with the file's contents. None where that does not apply: not a
    memmap, a copy-on-write one (``mode="c"``: dropping its pages would drop the changes
    made in memory), rows that are not contiguous, no ``madvise`` on this platform."""
    import mmap

    handle = getattr(X, "_mmap", None)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if handle is None or advice is None or not hasattr(handle, "madvise") \
            or getattr(X, "mode", "c") not in ("r", "r+", "w+") or X.ndim < 1 \
            or not X.flags.c_contiguous or not X.shape[0]:
        return None
    try:
        base = np.frombuffer(handle, dtype=np.uint8).ctypes.data
    except (TypeError, ValueError):  # a closed mapping
        return None
    first, row_bytes, size = X.ctypes.data - base, X.strides[0], len(handle)
    page = mmap.PAGESIZE

    def release(begin, end):
        lo = -(-(first + begin * row_bytes) // page) * page  # whole pages only
        hi = min((first + end * row_bytes) // page * page, size)
        if hi > lo:
            try:
                handle.madvise(advice, lo, hi - lo)
            except (OSError, ValueError):  # the mapping went away: nothing to release
                pass
    return release


@torch.no_grad()
def map_chunks(fn: Callable[[torch.Tensor], torch.Tensor], X, *, chunk_size: int,
               device, out_device="cpu", name: str | None = "X") -> torch.Tensor:
    """Apply ``fn`` to row blocks of ``X`` and write the results into one tensor.

    The output is allocated once, after the first block: peak memory is the output
    plus one block, not twice the output.
    """
    out = None
    start = 0
    for block in iter_chunks(X, chunk_size, device, name=name):
        result = fn(block)
        if out is None:
            out = torch.empty((X.shape[0], *result.shape[1:]), dtype=result.dtype,
                              device=out_device)
        out[start:start + result.shape[0]] = result
        start += result.shape[0]
    return out if out is not None else torch.empty(0)


@torch.no_grad()
def check_sparse_input(module, X, device, *, name: str = "X") -> None:
    """Check that ``module`` reads the rows of a scipy.sparse ``X`` as a torch sparse
    tensor, on its first two rows (eval mode; the mode is restored).

    Raises
    ------
    TypeError
        If the module's forward cannot take a sparse tensor, or its embedding is sparse
        (a module split at its only ``nn.Linear``: the embedding would be ``X`` itself,
        as wide as the vocabulary). The message says what to do.
    """
    sample = as_tensor(as_finite_float32(X[:2], name=name)).to(device)
    kind = type(getattr(module, "module", module)).__name__
    with eval_mode(module):
        try:
            module(sample)
        except (RuntimeError, NotImplementedError, TypeError) as exc:
            raise TypeError(
                f"{name} is a scipy.sparse matrix ({X.shape[1]} columns), which the net "
                f"passes to its module as a torch sparse CSR tensor, and {kind} cannot take "
                f"one ({type(exc).__name__}: {str(exc)[:200]}): use a module whose first "
                "layer is an nn.Linear (as the default MLP) or that multiplies sparse "
                "input itself (torch.sparse.mm), or pass narrow data dense "
                f"({name}.toarray())") from exc
        try:
            embeddings = module.backbone(sample)
        except (RuntimeError, NotImplementedError) as exc:
            embeddings = exc
    if not torch.is_tensor(embeddings) or embeddings.layout != torch.strided:
        raise TypeError(
            f"{kind}'s embedding of the sparse {name} is sparse: its embedding is its "
            f"input itself ({X.shape[1]} columns, the vocabulary's width), with no layer "
            "before its last nn.Linear; give it a hidden layer (the default MLP has two) "
            "or name the embedding with embedding_layer='name'")


@contextlib.contextmanager
def network_errors(X, *, shape_known: bool, name: str = "X_pool"):
    """Turn the network's RuntimeError on ``X`` into a ValueError a user can act on.

    Only where the per-sample shape of ``X`` could not be checked against the net's
    (the net did not record it): then a failing forward pass most likely means the
    wrong features. CUDA running out of memory is left as it is.
    """
    try:
        yield
    except RuntimeError as exc:
        if shape_known or isinstance(exc, torch.cuda.OutOfMemoryError):
            raise
        raise ValueError(
            f"{name} (per-sample shape {tuple(X.shape[1:])}) could not be passed through "
            f"the network; does it have the features the net was fitted on? ({exc})"
        ) from exc


def chunk_size_of(net) -> int:
    """The net's ``chunk_size``, checked where it is used (it may be set after fit)."""
    value = getattr(net, "chunk_size", None)
    return DEFAULT_CHUNK_SIZE if value is None else check_optional_int(value, "chunk_size")


def feature_shape_of(net):
    """The per-sample input shape a fitted net was trained on, if it recorded it."""
    shape = getattr(net, "feature_shape_", None)
    return tuple(shape) if shape is not None else None


def embed(net, X, *, name: str = "X", as_numpy: bool = True, out_device="cpu",
          checked: bool = False):
    """Backbone embeddings of ``X`` for any fitted skorch net whose module has a
    ``backbone`` (eval mode, no gradients, chunks of ``net.chunk_size`` rows).

    Parameters
    ----------
    net : skorch.NeuralNet
        A fitted net following the backbone/head contract.
    X : numpy.ndarray (a memmap too) or torch.Tensor
        Samples with the per-sample shape the net was fitted on; read chunk by chunk.
    name : str
        How error messages name ``X``.
    as_numpy : bool, default True
        Return a numpy array (else a tensor on ``out_device``).
    checked : bool, default False
        The caller has already checked the net and the shape of ``X``.

    Returns
    -------
    embeddings : numpy.ndarray of shape (n_samples, embedding_dim), float32
        (a tensor on ``out_device`` when ``as_numpy=False``).
    """
    if not checked:
        check_fitted_net(net, strategy="embed")
        X = check_array(X, name=name, n_features=feature_shape_of(net))
    with eval_mode(net.module_) as module:
        out = map_chunks(module.backbone, X, chunk_size=chunk_size_of(net),
                         device=net.device, out_device="cpu" if as_numpy else out_device,
                         name=name)
    out = out.float().reshape(out.shape[0], -1)
    return out.numpy() if as_numpy else out


def resolve_pipeline(estimator, X_pool):
    """The net at the end of a scikit-learn Pipeline, the pool passed through the
    pipeline's other steps, and that transformation (None without a Pipeline).

    modAL's own strategies call ``learner.predict_proba`` and so accept
    ``make_pipeline(StandardScaler(), PDCLNet())``; these strategies need the net
    itself, so they query it with the pool as it sees it.
    """
    if not isinstance(estimator, Pipeline):
        return estimator, X_pool, None
    if len(estimator.steps) == 1:
        return estimator.steps[-1][1], X_pool, None
    preprocessing = estimator[:-1]

    def transform(X, name="X_pool"):
        try:
            return preprocessing.transform(X)
        except NotFittedError:
            raise
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{name} could not be passed through the pipeline's "
                            f"preprocessing steps: {exc}") from exc

    return estimator.steps[-1][1], transform(X_pool), transform
