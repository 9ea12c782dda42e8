"""Query strategies for modAL, one file each, validated by :func:`validate_query`.

Each file holds a strategy, ``strategy(learner, X_pool, n_instances, **options)``,
next to its pure selection function, which knows nothing of skorch or modAL.
"""

from ._common import Query, validate_query
from .ally import ally_query_strategy, ally_scores, equitable_selection, priority_order
from .badge import badge_query_strategy, kmeans_pp_gradient_selection
from .coreset import coreset_query_strategy, k_center_greedy
from .random_sampling import random_query_strategy
from .redundancy import (
    ally_redundancy_aware_query_strategy,
    median_pairwise_distance,
    select_with_exclusion,
)

__all__ = [
    "Query", "validate_query",
    "ally_query_strategy", "ally_redundancy_aware_query_strategy", "ally_scores",
    "badge_query_strategy", "coreset_query_strategy", "random_query_strategy",
    "priority_order", "equitable_selection", "select_with_exclusion",
    "median_pairwise_distance", "kmeans_pp_gradient_selection", "k_center_greedy",
]
