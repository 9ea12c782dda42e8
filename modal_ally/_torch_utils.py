"""Small torch helpers shared by the whole package; imports nothing else from it.

- :func:`as_tensor`: the one array-to-tensor conversion (a scipy.sparse matrix becomes a
  torch sparse CSR tensor, which ``nn.Linear`` multiplies without densifying it);
- :func:`eval_mode`: the one way to put modules in eval mode and restore them;
- :func:`sq_distances`: the one Euclidean distance kernel, exact where it matters
  (:func:`nearest_sq_distances`: the distance to the nearest of many rows, faster);
- :func:`overflow_safe`: matrices in a precision where that kernel cannot overflow;
- :func:`with_fused_adam`: skorch's optimizer arguments with torch's fused Adam kernel.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import scipy.sparse
import torch

#: Rows per block in the chunked distance computations: a block against a block is at
#: most ``BLOCK_ROWS ** 2`` distances (16 MB in float32), whatever the size of the pool.
BLOCK_ROWS = 2048


def as_tensor(values, device=None, *, dtype=torch.float32, min_float: bool = False):
    """``values`` (numpy array or tensor) as a tensor, without a copy where possible.

    Parameters
    ----------
    values : numpy.ndarray, torch.Tensor or scipy.sparse matrix
        A sparse matrix becomes a sparse CSR tensor (:func:`sparse_csr_tensor`).
    device : torch device or None
        None keeps the tensor where it is (CPU for numpy input).
    dtype : torch.dtype, default float32
        The dtype of the result.
    min_float : bool, default False
        Instead of ``dtype``, keep a float32 or float64 input as it is and make
        anything else float32.
    """
    if scipy.sparse.issparse(values):
        values = sparse_csr_tensor(values)
    elif isinstance(values, np.ndarray):
        values = np.ascontiguousarray(values)
        if values.flags.writeable:
            values = torch.from_numpy(values)
        else:  # a read-only memmap (mode "r"): the package never writes into its input,
            # so torch's one-time warning about non-writable arrays would only alarm
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="The given NumPy array is not "
                                        "writable")
                values = torch.from_numpy(values)
    elif not isinstance(values, torch.Tensor):
        values = torch.as_tensor(np.asarray(values))
    if min_float:
        keep = values.dtype in (torch.float32, torch.float64)
        dtype = values.dtype if keep else torch.float32
    return values.to(device=device, dtype=dtype)


def sparse_csr_tensor(values) -> torch.Tensor:
    """A scipy.sparse matrix as a torch sparse CSR tensor (on the CPU, its dtype kept).

    The CSR arrays are shared with the matrix where they can be (a CSC or COO matrix is
    converted first, and a CSR with duplicate or unsorted column indices is sorted in a
    copy: the caller's matrix is never changed). Never densified.
    """
    values = values.tocsr()
    if not values.has_canonical_format:
        values = values.copy()
        values.sum_duplicates()
    index = torch.int64 if np.dtype(np.int64) in (values.indptr.dtype,
                                                    values.indices.dtype) else torch.int32
    with warnings.catch_warnings():  # torch says once that its CSR support is "beta"
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            as_tensor(values.indptr, dtype=index), as_tensor(values.indices, dtype=index),
            as_tensor(values.data, min_float=True), size=values.shape,
            check_invariants=False)


@contextlib.contextmanager
def torch_threads(n_threads):
    """Run the block with ``n_threads`` torch threads (None: unchanged), then restore."""
    before = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def eval_mode(*modules):
    """Context manager: ``modules`` in eval mode, each restored to its mode afterwards."""
    modes = [module.training for module in modules]
    try:
        for module in modules:
            module.train(False)
        yield modules[0] if len(modules) == 1 else modules
    finally:
        for module, mode in zip(modules, modes):
            module.train(mode)


def row_sq_norms(X):
    """``(X * X).sum(dim=1)`` in blocks of rows: no temporary the size of ``X``."""
    return torch.cat([(part * part).sum(dim=1) for part in X.split(2**14)]) if X.shape[0] \
        else X.new_zeros(0)


def overflow_safe(*matrices):
    """The matrices in a precision where their squared row norms are finite.

    float32 squared norms overflow beyond about 1.8e19 per coordinate, and distances
    built from them become NaN (ties that would repeat picks). Such matrices are
    computed in float64 instead, and divided by their largest magnitude when even
    float64 overflows. Returns the matrices and that divisor (1.0 when unchanged):
    distances computed from them are multiplied back by it.
    """
    def finite_norms(ms):
        return all(bool(torch.isfinite(row_sq_norms(m)).all()) for m in ms)

    if finite_norms(matrices):
        return matrices, 1.0
    matrices = tuple(m.double() for m in matrices)
    if finite_norms(matrices):
        return matrices, 1.0
    scale = max(float(m.abs().max()) for m in matrices if m.numel())
    return tuple(m / scale for m in matrices), scale


def rounding_tolerance(width: int, dtype) -> float:
    """Relative size below which ``|x|^2 + |y|^2 - 2 x.y`` may be rounding noise."""
    return 4.0 * width * torch.finfo(dtype).eps


def _exact_pairs(X, Y, rows, cols):
    """``||X[rows] - Y[cols]||^2`` from the differences (no cancellation)."""
    out = torch.empty(rows.shape[0], dtype=X.dtype, device=X.device)
    for start in range(0, rows.shape[0], BLOCK_ROWS):
        r, c = rows[start:start + BLOCK_ROWS], cols[start:start + BLOCK_ROWS]
        diff = X[r] - Y[c]
        out[start:start + BLOCK_ROWS] = (diff * diff).sum(dim=1)
    return out


def sq_distances(X, Y, *, X_sq=None, Y_sq=None, radius: float = 0.0, exact: bool = True):
    """Squared Euclidean distances between the rows of ``X`` and ``Y``, shape (n, m).

    The fast ``|x|^2 + |y|^2 - 2 x.y`` form loses precision where the distance is
    small against the norms (exact copies can come out ~1e-2 apart). Entries that
    rounding could place on either side of ``radius`` (the distance a caller compares
    with; 0 for "duplicates") are recomputed from the differences, with one tolerance
    (:func:`rounding_tolerance`), so that copies are at distance exactly 0 and the
    comparison with ``radius`` is exact. ``exact=False`` skips that step (k-means
    seeding, where only large distances matter).
    """
    X_sq = (X * X).sum(dim=1) if X_sq is None else X_sq
    Y_sq = (Y * Y).sum(dim=1) if Y_sq is None else Y_sq
    sums = X_sq[:, None] + Y_sq[None, :]
    d2 = sums - 2.0 * (X @ Y.T)
    if exact and d2.numel():
        slack = (rounding_tolerance(X.shape[1], X.dtype) * sums).sqrt_()
        rows, cols = (d2 <= (slack + radius).square_()).nonzero(as_tuple=True)
        if rows.numel():
            d2[rows, cols] = _exact_pairs(X, Y, rows, cols)
    return d2.clamp_min_(0.0)


def min_sq_distances(X, reference, *, radius: float = 0.0):
    """Squared distance of every row of ``X`` to its nearest row of ``reference``.

    Blocks of ``BLOCK_ROWS`` rows on both sides: memory is bounded whatever the sizes.
    """
    out = torch.full((X.shape[0],), float("inf"), dtype=X.dtype, device=X.device)
    X_sq, R_sq = (X * X).sum(dim=1), (reference * reference).sum(dim=1)
    for i in range(0, X.shape[0], BLOCK_ROWS):
        rows = slice(i, i + BLOCK_ROWS)
        for j in range(0, reference.shape[0], BLOCK_ROWS):
            cols = slice(j, j + BLOCK_ROWS)
            block = sq_distances(X[rows], reference[cols], X_sq=X_sq[rows],
                                 Y_sq=R_sq[cols], radius=radius)
            out[rows] = torch.minimum(out[rows], block.min(dim=1).values)
    return out


def nearest_sq_distances(X, reference):
    """Squared distance of every row of ``X`` to its nearest row of ``reference``.

    The same values as :func:`min_sq_distances` (radius 0), faster: per block, only
    ``|y|^2 - 2 x.y`` is formed (one fused matrix product) and ``|x|^2`` added after
    the minimum; rows whose minimum is small enough to be rounding noise are
    recomputed exactly (:func:`min_sq_distances`), so copies are at exactly 0.
    Blocks of ``BLOCK_ROWS`` reference rows and 1 MiB of distances.
    """
    out = torch.full((X.shape[0],), float("inf"), dtype=X.dtype, device=X.device)
    if not reference.shape[0]:
        return out
    X_sq, R_sq = row_sq_norms(X), row_sq_norms(reference)
    tol = rounding_tolerance(X.shape[1], X.dtype)
    nearest_sq = torch.zeros_like(out)
    for j in range(0, reference.shape[0], BLOCK_ROWS):
        R, Rj_sq = reference[j:j + BLOCK_ROWS], R_sq[j:j + BLOCK_ROWS]
        rows = max(64, 2**18 // R.shape[0])
        for i in range(0, X.shape[0], rows):
            best = torch.addmm(Rj_sq, X[i:i + rows], R.T, beta=1.0, alpha=-2.0).min(dim=1)
            values = best.values + X_sq[i:i + rows]
            closer = values < out[i:i + rows]
            out[i:i + rows] = torch.where(closer, values, out[i:i + rows])
            nearest_sq[i:i + rows] = torch.where(closer, Rj_sq[best.indices],
                                                 nearest_sq[i:i + rows])
    unsure = (out <= tol * (X_sq + nearest_sq)).nonzero(as_tuple=True)[0]
    if unsure.numel():
        out[unsure] = min_sq_distances(X[unsure], reference)
    return out.clamp_min_(0.0)


#: Device types on which this torch builds a fused Adam (found at first use).
_FUSED_ADAM: dict = {}
#: Optimizer arguments by which a user has chosen an implementation (left as given).
_IMPLEMENTATION_ARGS = frozenset({"fused", "foreach", "capturable", "differentiable"})


def _fused_adam_runs_on(device_type: str) -> bool:
    """Whether this torch has the fused Adam kernel for ``device_type`` (CPU from torch
    2.4, CUDA from 2.0)."""
    if device_type not in _FUSED_ADAM:
        try:
            torch.optim.Adam([torch.zeros(1, device=device_type, requires_grad=True)],
                             fused=True)
            _FUSED_ADAM[device_type] = True
        except (RuntimeError, TypeError, ValueError):
            _FUSED_ADAM[device_type] = False
    return _FUSED_ADAM[device_type]


def with_fused_adam(optimizer, args, kwargs) -> dict:
    """``kwargs`` with ``fused=True`` for torch's Adam and AdamW where the user chose no
    implementation and every parameter is a float tensor on one device type that has
    the kernel: one call updates every tensor (an eighth to a fifth of a fit's time on
    CPU, docs/scaling.md), where torch's default on CPU loops over the parameters. The
    update is Adam's to rounding, not bit for bit. Other optimizers, and Adam where
    the kernel is missing, get ``kwargs`` as they are.

    ``args`` and ``kwargs``: what skorch's ``get_params_for_optimizer`` returns.
    """
    if optimizer not in (torch.optim.Adam, torch.optim.AdamW) \
            or _IMPLEMENTATION_ARGS & set(kwargs) or not args:
        return kwargs
    params = [p for group in args[0]
              for p in (group["params"] if isinstance(group, dict) else [group])]
    if not params or not all(torch.is_tensor(p) and p.is_floating_point() for p in params):
        return kwargs
    devices = {p.device.type for p in params}
    if len(devices) != 1 or not _fused_adam_runs_on(devices.pop()):
        return kwargs
    return {**kwargs, "fused": True}
