"""What scikit-learn accepts, turned into what the networks take.

Inputs may be numpy arrays (memmaps included), torch tensors, lists of rows, or pandas
DataFrames whose columns are all numbers; labels may be any sortable values. The
functions here only convert and explain; the finiteness checks and the float32 cast
stay where the rows are read (see ``check_array``).
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

__all__ = ["as_numeric", "check_class_labels", "check_option", "overflow_error"]

#: The largest finite float32: float64 values above it become inf when cast.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_dataframe(X) -> bool:
    return type(X).__name__ == "DataFrame" and hasattr(X, "dtypes") and hasattr(X, "columns")


def _is_series(X) -> bool:
    return type(X).__name__ == "Series" and hasattr(X, "dtype") and hasattr(X, "to_numpy")


def _numeric_dtype(dtype) -> bool:
    kind = getattr(dtype, "kind", "O")
    return kind in "biuf" or str(dtype) in {"boolean"} or (
        kind == "O" and str(dtype) in {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16",
                                       "UInt32", "UInt64", "Float32", "Float64"})


def as_numeric(X, *, name: str = "X"):
    """``X`` as a numpy array or torch tensor, without copying arrays and tensors.

    Lists and tuples of rows become arrays; a pandas DataFrame of numbers becomes its
    values (nullable integer columns with missing values become NaN, which the
    finiteness check then reports). Anything else is returned unchanged for the caller
    to refuse.

    Raises
    ------
    TypeError
        If a DataFrame has non-numeric columns (they are named), or a list cannot be
        read as a rectangular array of numbers.
    """
    if isinstance(X, np.ndarray) or isinstance(X, torch.Tensor):
        return X
    if _is_dataframe(X):
        bad = [column for column, dtype in zip(X.columns, X.dtypes)
               if not _numeric_dtype(dtype)]
        if bad:
            shown = ", ".join(repr(column) for column in bad[:10])
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise TypeError(
                f"{name} is a DataFrame with non-numeric columns {shown}{more}: encode "
                "them as numbers (e.g. one-hot with pandas.get_dummies) or drop them")
        return X.to_numpy(dtype=np.float64, na_value=np.nan)
    if _is_series(X):
        return X.to_numpy()
    if isinstance(X, (list, tuple)):
        try:
            return np.asarray(X)
        except ValueError as exc:
            raise TypeError(f"{name} could not be read as a rectangular array of numbers "
                            f"({exc})") from exc
    return X


def overflow_error(X, name: str):
    """A ``ValueError`` naming the problem with a non-float32-finite float array."""
    values = np.asarray(X)
    finite = np.isfinite(values)
    if not finite.all():
        return ValueError(f"{name} contains NaN or infinity")
    largest = float(np.abs(values).max())
    return ValueError(
        f"{name} overflows float32: it holds values up to {largest:.3g} in magnitude, "
        f"above float32's largest {FLOAT32_MAX:.3g}, and the networks compute in float32; "
        "rescale the features (e.g. sklearn.preprocessing.StandardScaler)")


def check_class_labels(y):
    """Sorted unique class labels of ``y`` (1-d), with a clear error for bad labels.

    Raises
    ------
    ValueError
        If a label is None or NaN (missing labels are not a class).
    TypeError
        If the labels cannot be sorted (e.g. numbers mixed with strings).
    """
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity: every row needs a label")
    if y.dtype == object:
        missing = [i for i, label in enumerate(y) if label is None or (
            isinstance(label, numbers.Real) and label != label)]
        if missing:
            label = y[missing[0]]
            raise ValueError(
                f"y contains missing labels ({'None' if label is None else 'NaN'}) at "
                f"{len(missing)} rows, the first at row {missing[0]}: every row needs a "
                "label; drop the unlabeled rows")
        try:
            labels = np.unique(y)
        except TypeError as exc:
            kinds = sorted({type(label).__name__ for label in y})
            raise TypeError(
                f"the labels in y cannot be sorted: they mix types {kinds}; use one type "
                "for all labels (e.g. y.astype(str))") from exc
        return labels
    return np.unique(y)


def check_option(value, name: str, *, kind: str = "int", minimum=None, allow_none=False,
                 exclusive=False):
    """Check one numeric option where it is set or first used.

    Parameters
    ----------
    value : object
        The option's value.
    name : str
        Its name in the error messages.
    kind : {"int", "real"}
        An integer (bools refused) or a finite real number.
    minimum : number or None
        Lower bound (``>=``, or ``>`` when ``exclusive``).
    allow_none : bool
        Whether None is accepted (and returned).

    Returns
    -------
    int, float or None
    """
    if value is None and allow_none:
        return None
    expected = "an integer" if kind == "int" else "a finite number"
    if allow_none:
        expected += " or None"
    abstract = numbers.Integral if kind == "int" else numbers.Real
    if isinstance(value, bool) or not isinstance(value, abstract):
        raise TypeError(f"{name} must be {expected}, got {value!r}")
    value = int(value) if kind == "int" else float(value)
    if kind == "real" and not np.isfinite(value):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        raise ValueError(f"{name} must be {'>' if exclusive else '>='} {minimum}, "
                         f"got {value!r}")
    return value
