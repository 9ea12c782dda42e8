"""Compatibility names: the selection functions live next to their strategies in
:mod:`modal_ally.strategies` (``ally.py``, ``redundancy.py``)."""

from .strategies.ally import equitable_selection, priority_order
from .strategies.redundancy import median_pairwise_distance, select_with_exclusion

__all__ = ["priority_order", "equitable_selection", "select_with_exclusion",
           "median_pairwise_distance"]
