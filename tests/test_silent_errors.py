"""No silent wrong answers (issue 10, items 7-10): non-finite training, overflowing
distances, ill-formed labels and unchecked options all raise an error naming the
problem, and a failed call leaves the estimator as it was."""

import numpy as np
import pytest
import torch

from modal_ally import (
    PDCLNet,
    PDCLRegressor,
    ally_query_strategy,
    ally_redundancy_aware_query_strategy,
    generate_informative,
)
from modal_ally.baselines import k_center_greedy, kmeans_pp_gradient_selection
from tests.helpers import STRATEGIES, assert_unchanged, snapshot


@pytest.fixture(scope="module")
def data(digits):
    """Digits as one array: the first 200 rows are ``fitted_net``'s training set."""
    return (np.concatenate([digits["X_train"], digits["X_pool"]]),
            np.concatenate([digits["y_train"], digits["y_pool"]]))


@pytest.fixture(scope="module")
def net(fitted_net):
    return fitted_net


def indices(result):
    return np.asarray(result[0] if isinstance(result, tuple) else result).ravel()


# ------------------------------------------------------------------ item 7: non-finite
@pytest.mark.parametrize("name, value", [
    ("dual_lr", float("nan")), ("dual_lr", float("inf")), ("lr", float("nan")),
    ("lr", float("inf")), ("dual_head_lr", float("nan")), ("epsilon", float("inf")),
    ("auto_epsilon_factor", float("nan"))])
def test_non_finite_parameters_rejected_before_any_change(net, data, name, value):
    X, y = data
    before = snapshot(net)
    setattr(net, name, value)
    try:
        with pytest.raises(ValueError, match=name):
            net.fit(X[:150], y[:150])
    finally:
        setattr(net, name, PDCLNet().get_params()[name])
    assert_unchanged(net, before)


def test_non_finite_loss_during_fit_raises_and_keeps_the_fitted_state(net, data):
    X, y = data
    before = snapshot(net)
    proba = net.predict_proba(X[200:260])
    huge = X[:150].copy()
    huge[:20] *= 1e30  # finite in float32, but the losses overflow
    with pytest.raises(ValueError, match=r"epoch \d+.*(large|scale|standardize)"):
        net.fit(huge, y[:150])
    assert_unchanged(net, before)
    np.testing.assert_array_equal(net.predict_proba(X[200:260]), proba)
    assert indices(ally_query_strategy(net, X[200:400], n_instances=5,
                                       random_state=0)).tolist() != [0, 1, 2, 3, 4]


def test_non_finite_loss_on_a_first_fit_leaves_it_unfitted(data):
    X, y = data
    huge = X[:100] * 1e30
    net = PDCLNet(max_epochs=2, random_state=0)
    with pytest.raises(ValueError, match="epoch"):
        net.fit(huge, y[:100])
    assert not hasattr(net, "lambdas_")
    with pytest.raises(Exception, match="not fitted|not initialized"):
        net.predict(X[:3])


def test_non_finite_regression_loss_raises(data):
    X, _ = data
    target = np.linspace(0, 1, 100)
    with pytest.raises(ValueError, match="epoch"):
        PDCLRegressor(max_epochs=2, lr=1e30, random_state=0).fit(X[:100] * 1e20, target)


# ------------------------------------------------------------------ item 8: overflow
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_no_strategy_returns_a_repeated_index_on_huge_rows(net, data, name):
    X, _ = data
    pool = X[200:320].astype(np.float64)
    pool[::3] *= 1e30  # squared norms of the embeddings overflow float32
    try:
        idx = indices(STRATEGIES[name](net, pool, n_instances=12, random_state=0))
    except ValueError as exc:  # refusing clearly is allowed, a wrong answer is not
        assert "large" in str(exc) or "overflow" in str(exc), exc
        return
    assert len(idx) == 12 and len(set(idx.tolist())) == 12


def test_k_center_greedy_with_overflowing_squared_norms():
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(50, 8)).astype(np.float32)
    pool[::2] *= 1e30
    labeled = rng.normal(size=(5, 8)).astype(np.float32)
    idx, scores = k_center_greedy(pool, labeled, 20)
    assert len(set(idx.tolist())) == 20
    assert np.isfinite(scores).all()
    # the farthest points come first, as without overflow
    big = set(range(0, 50, 2))
    assert set(idx[:10].tolist()) <= big


def test_badge_selection_with_overflowing_norms():
    rng = np.random.default_rng(1)
    probs = torch.softmax(torch.from_numpy(rng.normal(size=(40, 3))), dim=1).float()
    embeddings = rng.normal(size=(40, 6)).astype(np.float32)
    embeddings[::4] *= 1e25
    idx, scores = kmeans_pp_gradient_selection(probs, embeddings, 15, random_state=0)
    assert len(set(idx.tolist())) == 15
    assert np.isfinite(scores).all()


def test_float64_overflowing_float32_is_named(net, data):
    X, y = data
    pool = X[200:240].astype(np.float64)
    pool[5, 2] = 1e300
    with pytest.raises(ValueError, match="overflow float32"):
        ally_query_strategy(net, pool, n_instances=2)
    with pytest.raises(ValueError, match="overflow float32"):
        PDCLNet(max_epochs=1).fit(pool, y[:40])
    with pytest.raises(ValueError, match="overflow float32"):
        net.predict(pool)


# ------------------------------------------------------------------ item 9: labels
def test_object_labels_with_nan_rejected(data):
    X, _ = data
    y = np.array([0, 1, np.nan, 1] * 10, dtype=object)
    with pytest.raises(ValueError, match="NaN"):
        PDCLNet(max_epochs=1).fit(X[:40], y)


def test_object_labels_with_none_rejected(data):
    X, _ = data
    y = np.array([0, 1, None, 1] * 10, dtype=object)
    with pytest.raises(ValueError, match="None"):
        PDCLNet(max_epochs=1).fit(X[:40], y)


def test_unsortable_mixed_labels_rejected(data):
    X, _ = data
    y = np.array([0, "cat", 1, "dog"] * 10, dtype=object)
    with pytest.raises(TypeError, match="labels"):
        PDCLNet(max_epochs=1).fit(X[:40], y)


def test_object_labels_give_sorted_unique_classes(data):
    X, _ = data
    y = np.array(["b", "a", "c", "a"] * 10, dtype=object)
    net = PDCLNet(max_epochs=1, random_state=0).fit(X[:40], y)
    assert list(net.classes_) == ["a", "b", "c"]
    assert set(net.predict(X[:10])) <= {"a", "b", "c"}


# ------------------------------------------------------------------ item 10: options
@pytest.mark.parametrize("name, value, error", [
    ("chunk_size", -5, ValueError), ("chunk_size", 0, ValueError),
    ("chunk_size", 2.5, TypeError), ("dual_head_batch_size", 0, ValueError),
    ("dual_head_epochs", -1, ValueError), ("dual_head_epochs", 1.5, TypeError)])
def test_options_checked_at_fit(data, name, value, error):
    X, y = data
    with pytest.raises(error, match=name):
        PDCLNet(max_epochs=1, **{name: value}).fit(X[:40], y[:40])


@pytest.mark.parametrize("value, error", [(-5, ValueError), (0, ValueError),
                                          (2.5, TypeError)])
def test_chunk_size_set_after_fit_checked_where_used(net, data, value, error):
    X, _ = data
    net.set_params(chunk_size=value)
    try:  # never a trajectory of uninitialised memory
        with pytest.raises(error, match="chunk_size"):
            generate_informative(net, X[:4], n_steps=2)
        with pytest.raises(error, match="chunk_size"):
            net.predict_dual(X[:4])
        with pytest.raises(error, match="chunk_size"):
            ally_query_strategy(net, X[200:300], n_instances=2)
    finally:
        net.set_params(chunk_size=4096)


@pytest.mark.parametrize("strategy", [ally_query_strategy,
                                      ally_redundancy_aware_query_strategy])
@pytest.mark.parametrize("value, error", [(-3, ValueError), (0, ValueError),
                                          (2.5, TypeError), ("8", TypeError)])
def test_cluster_components_checked(net, data, strategy, value, error):
    X, _ = data
    with pytest.raises(error, match="cluster_components"):
        strategy(net, X[200:300], n_instances=3, cluster_components=value)


def test_dual_head_options_can_be_set_like_any_parameter(data):
    X, y = data
    net = PDCLNet(max_epochs=1, random_state=0)
    net.set_params(dual_head_lr=1e-3, dual_head_epochs=5, dual_head_batch_size=32)
    assert net.fit(X[:40], y[:40]).dual_head_lr == 1e-3
    net.set_params(dual_head_lr=float("nan"))
    with pytest.raises(ValueError, match="dual_head_lr"):
        net.fit(X[:40], y[:40])


def test_a_repeated_index_is_never_handed_to_modal():
    from modal_ally._compat import query_result

    with pytest.raises(RuntimeError, match="more than once"):
        query_result([3, 1, 3], [0.5, 0.4, 0.3])
    assert indices(query_result([3, 1, 2], [0.5, 0.4, 0.3])).tolist() == [3, 1, 2]
