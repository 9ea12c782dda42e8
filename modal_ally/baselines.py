"""Compatibility names: the baseline strategies live in :mod:`modal_ally.strategies`
(``badge.py``, ``coreset.py``, ``random_sampling.py``)."""

from .strategies.badge import badge_query_strategy, kmeans_pp_gradient_selection
from .strategies.coreset import coreset_query_strategy, k_center_greedy
from .strategies.random_sampling import random_query_strategy

__all__ = ["badge_query_strategy", "coreset_query_strategy", "random_query_strategy",
           "kmeans_pp_gradient_selection", "k_center_greedy"]
