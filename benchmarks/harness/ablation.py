"""The ablation of ALLY's default rule: the same selection with every draw weight 1.

:func:`ally_exact` draws as the package's default rule draws (``dual_weighted_selection``)
with the options the screens vary: ``n_components=None`` (the full embedding space, no
projection), ``residual`` and ``weighted=False`` (every ``lambda_hat`` replaced by 1; with
``n_components=32`` the ablation arm ``ally-nolambda`` of the label-efficiency tables).
"""

from __future__ import annotations

from modal_ally._compat import query_result
from modal_ally.strategies.ally import validate_ally_query

__all__ = ["ally_exact", "default_query"]


def default_query(learner, X_pool, n_instances, random_state, strategy):
    """The validated query of the default rule (no outlier guard, no clusters)."""
    return validate_ally_query(learner, X_pool, n_instances, strategy=strategy,
                               random_state=random_state, n_clusters=None, max_dual=None,
                               skip_top_quantile=None, cluster_components=32)


def ally_exact(learner, X_pool, n_instances=1, *, random_state=None, n_components=None,
               residual=False, weighted=True):
    """The default rule in the full embedding space (no projection): the package's
    ``dual_weighted_selection`` with ``n_components=None``, the reference the default's
    projection is measured against; other ``n_components`` (and ``residual``, the norm
    of what the projection leaves out as one more coordinate) for its variants.
    ``weighted=False``: every draw weight 1, the default rule without the dual variables
    (with ``n_components=32``, the ablation of the shipped default)."""
    from modal_ally.strategies.ally import dual_weighted_selection

    query = default_query(learner, X_pool, n_instances, random_state, "ally_exact")
    selected, scores = dual_weighted_selection(query, n_components=n_components,
                                               residual=residual, weighted=weighted)
    return query_result(selected, scores[selected])
