"""ALLY strategies: behaviour beyond shapes."""

import numpy as np
import pytest
from modAL.models import ActiveLearner

from modal_ally import PDCLNet, ally_query_strategy, ally_redundancy_aware_query_strategy
from modal_ally._compat import modal_returns_scores
from tests.helpers import mislabeled_setup


def indices_of(result):
    return result[0] if isinstance(result, tuple) else result


def test_returns_unique_indices_deterministically(fitted_net, digits):
    X_pool = digits["X_pool"]
    first = indices_of(ally_query_strategy(fitted_net, X_pool, 50, random_state=3))
    again = indices_of(ally_query_strategy(fitted_net, X_pool, 50, random_state=3))
    np.testing.assert_array_equal(first, again)
    assert len(set(first)) == 50 and first.min() >= 0 and first.max() < len(X_pool)


def test_no_diversity_is_top_b_by_predicted_lambda(fitted_net, digits):
    X_pool = digits["X_pool"]
    chosen = indices_of(ally_query_strategy(fitted_net, X_pool, 30, method="paper",
                                               n_clusters=1))
    dual = fitted_net.predict_dual(X_pool)
    np.testing.assert_array_equal(np.sort(chosen), np.sort(np.argsort(-dual, kind="stable")[:30]))


def test_diversity_spreads_the_batch(fitted_net, digits):
    X_pool = digits["X_pool"]
    top = indices_of(ally_query_strategy(fitted_net, X_pool, 40, method="paper", n_clusters=1))
    spread = indices_of(ally_query_strategy(fitted_net, X_pool, 40, method="paper",
                                            random_state=0))
    labels_top = len(set(digits["y_pool"][top]))
    labels_spread = len(set(digits["y_pool"][spread]))
    assert labels_spread >= labels_top
    dual = fitted_net.predict_dual(X_pool)
    assert dual[spread].mean() <= dual[top].mean()  # diversity costs informativeness


def test_scores_for_modal_042(fitted_net, digits, monkeypatch):
    monkeypatch.setattr("modal_ally._compat.modal_returns_scores", lambda: True)
    indices, scores = ally_query_strategy(fitted_net, digits["X_pool"], 5, random_state=0)
    # the default rule returns the pool head's lambda_hat of its picks
    np.testing.assert_allclose(
        scores, fitted_net.predict_dual(digits["X_pool"], head="pool")[indices], atol=1e-5)
    monkeypatch.undo()
    assert isinstance(ally_query_strategy(fitted_net, digits["X_pool"], 5), tuple) \
        == modal_returns_scores()


def test_all_zero_lambdas_fall_back_to_diversity(digits):
    with pytest.warns(UserWarning, match="every dual variable is 0"):
        net = PDCLNet(max_epochs=3, epsilon=100.0, random_state=0).fit(
            digits["X_train"], digits["y_train"])
    with pytest.warns(UserWarning, match="diversity alone"):
        chosen = indices_of(ally_query_strategy(net, digits["X_pool"], 20, random_state=0))
    assert len(set(chosen)) == 20
    assert len(set(digits["y_pool"][chosen])) >= 6  # representatives, not the first rows


def test_redundancy_aware_never_queries_copies(fitted_net, digits):
    X_pool = np.repeat(digits["X_pool"][:200], 4, axis=0)  # every sample four times
    plain = indices_of(ally_query_strategy(fitted_net, X_pool, 40, method="paper",
                                           n_clusters=5, random_state=0))
    aware = indices_of(ally_redundancy_aware_query_strategy(
        fitted_net, X_pool, 40, n_clusters=5, random_state=0))
    assert len(set(plain // 4)) < 40  # informativeness alone picks copies
    assert len(set(aware // 4)) == 40
    X_with_labeled = np.concatenate([digits["X_train"][:20], digits["X_pool"][:50]])
    aware = indices_of(ally_redundancy_aware_query_strategy(
        fitted_net, X_with_labeled, 30, delta=1e-2, random_state=0))
    assert aware.min() >= 20  # copies of labeled rows are never queried


def test_redundancy_aware_validates_delta(fitted_net, digits):
    for bad in (-1.0, "big"):
        with pytest.raises(ValueError, match="delta"):
            ally_redundancy_aware_query_strategy(fitted_net, digits["X_pool"], 5, delta=bad)


def test_outlier_guard_avoids_mislabeled_points(digits):
    # the pool holds near-copies of the mislabeled training rows: the largest lambdas
    net, X_pool, is_outlier = mislabeled_setup(digits)
    plain = indices_of(ally_query_strategy(net, X_pool, 20, method="paper", n_clusters=1))
    # the dual head generalizes smoothly: the near-copies rank among the top ~15%
    guarded = indices_of(ally_query_strategy(net, X_pool, 20, method="paper", n_clusters=1,
                                             skip_top_quantile=0.15))
    assert is_outlier[plain].sum() >= 8
    assert is_outlier[guarded].sum() <= 2
    capped = indices_of(ally_query_strategy(net, X_pool, 20, method="paper", n_clusters=1,
                                            max_dual=float(np.quantile(
                                                net.predict_dual(X_pool), 0.85))))
    assert is_outlier[capped].sum() <= 2
    with pytest.raises(ValueError, match="skip_top_quantile"):
        ally_query_strategy(net, X_pool, 5, skip_top_quantile=1.5)


def test_modal_loop_improves_accuracy(digits):
    learner = ActiveLearner(estimator=PDCLNet(max_epochs=20, random_state=0),
                            query_strategy=ally_query_strategy,
                            X_training=digits["X_train"][:60], y_training=digits["y_train"][:60])
    before = learner.score(digits["X_test"], digits["y_test"])
    remaining = np.arange(len(digits["X_pool"]))
    for _ in range(2):
        query_idx, query_X = learner.query(digits["X_pool"][remaining], n_instances=60,
                                           random_state=0)
        picked = remaining[query_idx]
        learner.teach(query_X, digits["y_pool"][picked])
        remaining = np.setdiff1d(remaining, picked)
    assert len(learner.y_training) == 180
    assert learner.score(digits["X_test"], digits["y_test"]) > before


def test_ally_with_a_regressor(fitted_regressor, diabetes):
    _, _, X_pool, _ = diabetes
    chosen = indices_of(ally_query_strategy(fitted_regressor, X_pool, 10, random_state=0))
    assert len(set(chosen)) == 10
    chosen = indices_of(ally_redundancy_aware_query_strategy(fitted_regressor, X_pool, 10,
                                                             random_state=0))
    assert len(set(chosen)) == 10


def test_more_clusters_than_queries_is_top_b(fitted_net, digits):
    # every cluster's quota b // k is 0 for k > b: the order is the plain score order
    X_pool = digits["X_pool"]
    top = indices_of(ally_query_strategy(fitted_net, X_pool, 10, method="paper", n_clusters=1))
    many = indices_of(ally_query_strategy(fitted_net, X_pool, 10, method="paper",
                                          n_clusters=25, random_state=0))
    np.testing.assert_array_equal(np.sort(many), np.sort(top))
