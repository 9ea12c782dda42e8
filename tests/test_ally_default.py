"""ALLY's default rule (lambda-weighted k-means++ in gradient space) against the paper's."""

import numpy as np
import pytest
import torch

from modal_ally import ally_query_strategy
from modal_ally.strategies import kmeans_pp_gradient_selection
from modal_ally.strategies.ally import dual_weighted_selection, validate_ally_query
from modal_ally.strategies.badge import _class_probabilities
from tests.helpers import mislabeled_setup


def indices_of(result):
    return result[0] if isinstance(result, tuple) else result


def _query(net, X_pool, n, seed, **options):
    options = {"n_clusters": None, "max_dual": None, "skip_top_quantile": None,
               "cluster_components": 32, **options}
    return validate_ally_query(net, X_pool, n, strategy="test", random_state=seed, **options)


def test_default_is_deterministic_and_differs_from_the_paper(fitted_net, digits):
    X_pool = digits["X_pool"]
    first = indices_of(ally_query_strategy(fitted_net, X_pool, 40, random_state=5))
    again = indices_of(ally_query_strategy(fitted_net, X_pool, 40, random_state=5))
    other = indices_of(ally_query_strategy(fitted_net, X_pool, 40, random_state=6))
    paper = indices_of(ally_query_strategy(fitted_net, X_pool, 40, method="paper",
                                           random_state=5))
    np.testing.assert_array_equal(first, again)
    assert len(set(first)) == 40 and not np.array_equal(np.sort(first), np.sort(other))
    assert not np.array_equal(np.sort(first), np.sort(paper))


def test_without_weights_it_is_badge_on_the_same_net(fitted_net, digits):
    X_pool = digits["X_pool"]
    selected, _ = dual_weighted_selection(_query(fitted_net, X_pool, 30, 2), weighted=False)
    embeddings = torch.as_tensor(fitted_net.embed(X_pool)).double()
    probs = _class_probabilities(fitted_net, embeddings.float()).double()
    badge, _ = kmeans_pp_gradient_selection(probs, embeddings, 30, random_state=2)
    np.testing.assert_array_equal(selected, badge)


def test_the_duals_steer_the_draws(fitted_net, digits):
    X_pool = digits["X_pool"]
    dual = fitted_net.predict_dual(X_pool, head="pool")  # what the default rule reads
    weighted, unweighted = [], []
    for seed in range(5):
        with_duals, _ = dual_weighted_selection(_query(fitted_net, X_pool, 40, seed))
        without, _ = dual_weighted_selection(_query(fitted_net, X_pool, 40, seed),
                                             weighted=False)
        weighted.append(dual[with_duals].mean())
        unweighted.append(dual[without].mean())
    assert np.mean(weighted) > np.mean(unweighted)
    # the first pick maximizes lambda_hat * |g|^2, not |g|^2 alone
    first = indices_of(ally_query_strategy(fitted_net, X_pool, 1, random_state=0))[0]
    assert dual[first] >= np.quantile(dual, 0.5)


def test_default_outlier_guard_never_draws_guarded_points(digits):
    net, X_pool, _ = mislabeled_setup(digits)
    dual = net.predict_dual(X_pool, head="pool")  # what the default rule reads
    guarded = indices_of(ally_query_strategy(net, X_pool, 20, random_state=0,
                                             skip_top_quantile=0.15))
    skipped = np.argsort(-dual, kind="stable")[:int(0.15 * len(X_pool))]
    assert not set(guarded) & set(skipped)
    capped = indices_of(ally_query_strategy(net, X_pool, 20, random_state=0,
                                            max_dual=float(np.quantile(dual, 0.5))))
    assert (dual[capped] <= np.quantile(dual, 0.5) + 1e-6).all()


def test_method_and_n_clusters_are_checked(fitted_net, digits):
    X_pool = digits["X_pool"]
    with pytest.raises(ValueError, match="method"):
        ally_query_strategy(fitted_net, X_pool, 5, method="fast")
    with pytest.raises(ValueError, match="n_clusters applies to method='paper'"):
        ally_query_strategy(fitted_net, X_pool, 5, n_clusters=3)
    assert len(indices_of(ally_query_strategy(fitted_net, X_pool, 5, method="paper",
                                              n_clusters=3, random_state=0))) == 5


def test_default_on_a_regressor_is_weighted_kmeanspp_on_embeddings(fitted_regressor,
                                                                   diabetes):
    _, _, X_pool, _ = diabetes
    chosen = indices_of(ally_query_strategy(fitted_regressor, X_pool, 12, random_state=1))
    assert len(set(chosen)) == 12
    again = indices_of(ally_query_strategy(fitted_regressor, X_pool, 12, random_state=1))
    np.testing.assert_array_equal(chosen, again)
    # the whole pool can be taken (the fill after every D^2 is 0)
    everything = indices_of(ally_query_strategy(fitted_regressor, X_pool[:15], 15,
                                                random_state=1))
    assert sorted(everything) == list(range(15))


def test_shrunk_duals_keep_every_point_drawable():
    from modal_ally.strategies.ally import shrunk_duals

    scores = torch.tensor([0.0, 0.0, 1.0, 3.0])
    weights = shrunk_duals(scores)
    assert weights.dtype == torch.float64
    np.testing.assert_allclose(weights.numpy(), [1.0, 1.0, 2.0, 4.0])  # + mean 1.0
    assert shrunk_duals(torch.zeros(3)).eq(0).all()  # no information: the caller's case
    assert shrunk_duals(torch.zeros(0)).numel() == 0


def test_points_the_dual_head_scores_zero_are_still_drawn(fitted_net, digits, monkeypatch):
    X_pool = digits["X_pool"]
    n = len(X_pool)
    zeroed = np.arange(n) % 2 == 0  # half the pool predicted lambda 0, the rest 1
    fake = torch.as_tensor(np.where(zeroed, 0.0, 1.0), dtype=torch.float32)
    monkeypatch.setattr(type(fitted_net), "predict_dual_from_embeddings",
                        lambda self, e, head="pool": fake[:e.shape[0]].clone())
    picks = np.concatenate([dual_weighted_selection(_query(fitted_net, X_pool, 40, s))[0]
                            for s in range(5)])
    from_zeroed = zeroed[picks].mean()
    # weights 0.5 and 1.5: drawable, at a third of the others' rate (up to D^2)
    assert 0.05 < from_zeroed < 0.45
