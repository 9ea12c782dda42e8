"""A dataset that fetches a whole minibatch with one fancy index.

skorch's default ``Dataset`` indexes one row at a time and collates the rows, which
costs more than the forward and backward pass of a small network. ``RowDataset``
implements ``__getitems__`` (torch's batched fetch), and :func:`collate_rows` passes
the ready batch through. PDCLNet uses both by default; a plain skorch net gets the
same speed with ``dataset=RowDataset, iterator_train__collate_fn=collate_rows,
iterator_valid__collate_fn=collate_rows``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import torch
from torch.utils.data import Dataset
from torch.utils.data._utils.collate import default_collate

from ._torch_utils import as_tensor

__all__ = ["RowDataset", "collate_rows"]


def _n_rows(X):
    return X.shape[0] if scipy.sparse.issparse(X) else len(X)  # len() refuses sparse


class _Batch(tuple):
    """A minibatch already assembled by ``RowDataset.__getitems__``."""


def _take(values, rows):
    if isinstance(values, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(values[rows]))
    if scipy.sparse.issparse(values):  # the minibatch's rows only, as a sparse tensor
        return as_tensor(values[rows])
    return values[torch.as_tensor(rows, device=values.device)]


class RowDataset(Dataset):
    """Rows of ``X`` (numpy array, tensor or scipy.sparse matrix) and ``y``.

    A sparse ``X`` (CSR: a CSC matrix would be scanned whole for every minibatch) gives
    each minibatch as a float32 torch sparse CSR tensor of its rows (scikit-learn's
    vectorizers emit float64), never densified.

    Parameters
    ----------
    X : numpy.ndarray, torch.Tensor or scipy.sparse matrix
    y : numpy.ndarray, torch.Tensor or None
    with_index : bool, default False
        Whether each sample's ``X`` is ``{"X": x, "sample_index": i}`` (the row number
        survives shuffling and splitting: PDCL keeps one multiplier per row).
    """

    def __init__(self, X, y=None, with_index: bool = False):
        if y is not None and len(y) != _n_rows(X):
            raise ValueError(f"X has {_n_rows(X)} rows but y has {len(y)}")
        self.X = X
        self.y = y
        self.with_index = with_index

    def __len__(self):
        return _n_rows(self.X)

    def __getitems__(self, indices):
        rows = np.asarray(indices, dtype=np.int64)
        Xb = _take(self.X, rows)
        if self.with_index:
            Xb = {"X": Xb, "sample_index": torch.from_numpy(rows)}
        yb = _take(self.y, rows) if self.y is not None else torch.zeros(len(rows))
        return _Batch((Xb, yb))

    def __getitem__(self, i):
        Xb, yb = self.__getitems__([i])
        if self.with_index:
            return {"X": Xb["X"][0], "sample_index": Xb["sample_index"][0]}, yb[0]
        return Xb[0], yb[0]


def collate_rows(batch):
    """Collate function: pass a ``RowDataset`` batch through, collate anything else."""
    if isinstance(batch, _Batch):
        return tuple(batch)
    return default_collate(batch)
