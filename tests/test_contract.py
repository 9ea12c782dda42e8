"""One contract suite for every query strategy (DESIGN 2.2-2.4).

Each strategy must return exactly min(b, |pool|) unique indices, reject bad input with
an error that names the problem, and leave the learner and the estimator exactly as
they were after a failed call.
"""

import numpy as np
import pytest
import torch
from modAL.models import ActiveLearner
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from skorch import NeuralNetClassifier

from modal_ally import MLP, PDCLNet, ally_query_strategy, ally_redundancy_aware_query_strategy
from tests.helpers import STRATEGIES, assert_unchanged, snapshot

NEEDS_PDCL = {"ally", "ally-redundancy"}
NEEDS_NET = {"ally", "ally-redundancy", "badge", "coreset"}


def indices_of(result):
    return np.asarray(result[0] if isinstance(result, tuple) else result)


@pytest.fixture(scope="module")
def learner(digits, fitted_net):
    return ActiveLearner(estimator=fitted_net, query_strategy=ally_query_strategy,
                         X_training=digits["X_train"], y_training=digits["y_train"])


@pytest.fixture(params=sorted(STRATEGIES), ids=str)
def strategy(request):
    return request.param, STRATEGIES[request.param]


def labeled_state(learner):
    return learner.X_training.copy(), learner.y_training.copy()


def assert_learner_unchanged(learner, before):
    np.testing.assert_array_equal(learner.X_training, before[0])
    np.testing.assert_array_equal(learner.y_training, before[1])


@pytest.mark.parametrize("n_instances", [1, 2, 3, 17])
def test_exactly_n_unique_indices(strategy, learner, digits, n_instances):
    name, query = strategy
    chosen = indices_of(query(learner, digits["X_pool"], n_instances=n_instances,
                              random_state=0))
    assert chosen.shape == (n_instances,) and chosen.dtype.kind == "i"
    assert len(set(chosen.tolist())) == n_instances
    assert chosen.min() >= 0 and chosen.max() < len(digits["X_pool"])


def test_default_n_instances_is_one(strategy, learner, digits):
    assert indices_of(strategy[1](learner, digits["X_pool"])).shape == (1,)


def test_deterministic_for_a_random_state(strategy, learner, digits):
    query = strategy[1]
    first = indices_of(query(learner, digits["X_pool"], 25, random_state=5))
    np.testing.assert_array_equal(first, indices_of(query(learner, digits["X_pool"], 25,
                                                         random_state=5)))


def test_tensor_pool(strategy, learner, digits):
    chosen = indices_of(strategy[1](learner, torch.as_tensor(digits["X_pool"]), 4,
                                    random_state=0))
    assert len(set(chosen.tolist())) == 4


def test_numpy_generator_random_state(strategy, learner, digits):
    """A ``numpy.random.Generator`` is accepted like a RandomState: the same generator
    state gives the same batch, and the query advances the caller's generator."""
    query = strategy[1]
    first = indices_of(query(learner, digits["X_pool"], 6,
                             random_state=np.random.default_rng(3)))
    again = indices_of(query(learner, digits["X_pool"], 6,
                             random_state=np.random.default_rng(3)))
    np.testing.assert_array_equal(first, again)
    assert len(set(first.tolist())) == 6


def test_boolean_pool_counts_as_numbers(strategy, learner, digits):
    """A bool pool (one-hot columns from ``pandas.get_dummies`` are bool) is scored as 0
    and 1, as scikit-learn does: the batch of the same pool in float32."""
    query = strategy[1]
    binary = digits["X_pool"] > 0.5
    as_bool = indices_of(query(learner, binary, 5, random_state=0))
    as_float = indices_of(query(learner, binary.astype(np.float32), 5, random_state=0))
    np.testing.assert_array_equal(as_bool, as_float)


def test_more_than_the_pool_returns_the_whole_pool(strategy, learner, digits):
    with pytest.warns(UserWarning, match="larger than the pool"):
        chosen = indices_of(strategy[1](learner, digits["X_pool"][:7], 10, random_state=0))
    assert sorted(chosen.tolist()) == list(range(7))


def test_pool_of_one(strategy, learner, digits):
    assert indices_of(strategy[1](learner, digits["X_pool"][:1], 1)).tolist() == [0]


BAD_POOLS = {
    "nan": (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X),
            ValueError, "NaN"),
    "inf": (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, np.inf, X),
            ValueError, "infinity"),
    "features": (lambda X: X[:, :10], ValueError, "features"),
    "empty": (lambda X: X[:0], ValueError, "empty"),
    "1d": (lambda X: X[0], ValueError, "2 dimensions"),
    "dataframe-like": (lambda X: X.tolist(), None, None),
    "strings": (lambda X: X.astype(str), TypeError, "numeric"),
}


@pytest.mark.parametrize("case", sorted(BAD_POOLS), ids=str)
def test_bad_pool_is_rejected_and_nothing_changes(strategy, learner, digits, case):
    name, query = strategy
    make, error, message = BAD_POOLS[case]
    bad = make(digits["X_pool"].copy())
    before_net, before_learner = snapshot(learner.estimator), labeled_state(learner)
    if error is None:  # a list of rows is accepted as an array
        assert len(indices_of(query(learner, bad, 2, random_state=0))) == 2
    else:
        if name == "random" and case == "features":
            pytest.skip("random sampling needs no features")
        with pytest.raises(error, match=message):
            query(learner, bad, 2)
    assert_unchanged(learner.estimator, before_net)
    assert_learner_unchanged(learner, before_learner)


@pytest.mark.parametrize("n_instances,error", [(0, ValueError), (-3, ValueError),
                                               (2.5, TypeError), (True, TypeError),
                                               ("3", TypeError)])
def test_bad_n_instances(strategy, learner, digits, n_instances, error):
    before = snapshot(learner.estimator)
    with pytest.raises(error, match="n_instances"):
        strategy[1](learner, digits["X_pool"], n_instances=n_instances)
    assert_unchanged(learner.estimator, before)


def test_unfitted_estimator(strategy, digits):
    name, query = strategy
    if name not in NEEDS_NET:
        pytest.skip("random sampling needs no fitted estimator")
    with pytest.raises(NotFittedError, match="not fitted"):
        query(PDCLNet(), digits["X_pool"], 3)


def test_estimator_of_the_wrong_kind(strategy, digits):
    name, query = strategy
    if name not in NEEDS_NET:
        pytest.skip("random sampling works with any estimator")
    forest = LogisticRegression(max_iter=200).fit(digits["X_train"], digits["y_train"])
    with pytest.raises(TypeError, match="PDCLNet" if name in NEEDS_PDCL else "skorch"):
        query(forest, digits["X_pool"], 3)


def test_plain_skorch_net(strategy, digits):
    name, query = strategy
    net = NeuralNetClassifier(MLP, module__input_dim=64, module__output_dim=10,
                              criterion=torch.nn.CrossEntropyLoss, max_epochs=2,
                              train_split=None, verbose=0)
    learner = ActiveLearner(estimator=net, query_strategy=query,
                            X_training=digits["X_train"], y_training=digits["y_train"])
    if name in NEEDS_PDCL:
        with pytest.raises(TypeError, match="PDCLNet or PDCLRegressor"):
            learner.query(digits["X_pool"], n_instances=3)
    else:
        query_idx, _ = learner.query(digits["X_pool"], n_instances=3)
        assert len(set(np.asarray(query_idx).tolist())) == 3


@pytest.mark.parametrize("option,value", [("n_clusters", 0), ("n_clusters", 1.5),
                                          ("max_dual", -1.0), ("skip_top_quantile", 0.0),
                                          ("delta", "far"), ("delta_scale", -1.0)])
def test_unknown_option_values_for_ally(learner, digits, option, value):
    query = ally_redundancy_aware_query_strategy
    before = snapshot(learner.estimator)
    with pytest.raises((ValueError, TypeError), match=option.split("_")[0]):
        query(learner, digits["X_pool"], 3, **{option: value})
    with pytest.raises(TypeError, match="unexpected keyword"):
        ally_query_strategy(learner, digits["X_pool"], 3, no_such_option=1)
    assert_unchanged(learner.estimator, before)


def test_failed_teach_keeps_labels_and_fit(learner, digits):
    before_net, before_learner = snapshot(learner.estimator), labeled_state(learner)
    bad_X = digits["X_pool"][:3].copy()
    bad_X[0, 0] = np.nan
    with pytest.raises(ValueError):
        learner.teach(bad_X, digits["y_pool"][:3])
    with pytest.raises(ValueError):
        learner.teach(digits["X_pool"][:3, :10], digits["y_pool"][:3])
    assert_unchanged(learner.estimator, before_net)
    assert_learner_unchanged(learner, before_learner)


def test_failed_fit_keeps_the_fitted_state(fitted_net, digits):
    before = snapshot(fitted_net)
    X, y = digits["X_train"].copy(), digits["y_train"]
    X[3, 3] = np.inf
    for args, error, message in [((X, y), ValueError, "NaN or infinity"),
                                 ((digits["X_train"], y[:10]), ValueError, "rows"),
                                 ((digits["X_train"], None), ValueError, "y is required")]:
        with pytest.raises(error, match=message):
            fitted_net.fit(*args)
    with pytest.raises(ValueError, match="epsilon"):
        fitted_net.set_params(epsilon=-1.0)
        try:
            fitted_net.fit(digits["X_train"], y)
        finally:
            fitted_net.set_params(epsilon=0.2)
    assert_unchanged(fitted_net, before)


def test_sample_weight_is_refused_by_name_and_nothing_changes(fitted_net, digits):
    """scikit-learn users pass ``sample_weight``; skorch would hand it to the module's
    forward and fail there. The error names it and says what PDCL offers instead."""
    before = snapshot(fitted_net)
    X, y = digits["X_train"], digits["y_train"]
    for fit in (fitted_net.fit, fitted_net.partial_fit):
        with pytest.raises(TypeError, match="does not take sample_weight.*epsilon"):
            fit(X, y, sample_weight=np.ones(len(y)))
    assert_unchanged(fitted_net, before)


def test_boolean_features_fit_and_predict_as_numbers(digits):
    X, y = digits["X_train"] > 0.5, digits["y_train"]
    as_bool = PDCLNet(max_epochs=2, random_state=0).fit(X, y)
    as_float = PDCLNet(max_epochs=2, random_state=0).fit(X.astype(np.float32), y)
    np.testing.assert_allclose(as_bool.predict_proba(X), as_float.predict_proba(X),
                               rtol=1e-5, atol=1e-6)
