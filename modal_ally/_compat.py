"""What the installed modAL expects a query strategy to return.

- modAL-python 0.4.1: the strategy returns the indices; ``BaseLearner.query`` adds the
  rows (a tuple triggers a DeprecationWarning and is handed back as is).
- modAL-python 0.4.2 and 0.4.2.1: ``query`` unpacks ``(indices, scores)``; a bare array
  makes it call the strategy twice (a bare ``except``), and a bare 2-element array is
  silently unpacked into one index.

The release is detected once, from the signature of ``BaseLearner.query``
(0.4.2 added ``return_metrics``), which also works for a modAL installed without
package metadata (vendored, or into a target folder).
"""

from __future__ import annotations

import functools
import inspect

import numpy as np


@functools.cache
def modal_returns_scores() -> bool:
    """True when the installed modAL unpacks ``(indices, scores)`` from strategies."""
    try:
        from modAL.models.base import BaseLearner
    except ImportError:  # modAL absent: strategies are called directly
        return False
    return "return_metrics" in inspect.signature(BaseLearner.query).parameters


def query_result(indices, scores):
    """Format a strategy's answer for the installed modAL.

    Parameters
    ----------
    indices : array of int, shape (n_instances,)
        Positions in the pool, in the order the strategy picked them.
    scores : array of float, shape (n_instances,)
        The strategy's score of each picked sample.

    Raises
    ------
    RuntimeError
        If an index repeats: a strategy must never ask for a sample twice, so a
        repeat is a defect to report, never an answer to hand to modAL.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if np.unique(indices).size != indices.size:
        raise RuntimeError(
            f"the strategy selected a pool index more than once ({indices.tolist()[:20]}); "
            "this is a bug in modal_ally: please report it with the pool that caused it")
    if modal_returns_scores():
        return indices, np.asarray(scores, dtype=np.float64)
    return indices
