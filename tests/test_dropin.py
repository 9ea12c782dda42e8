"""Drop-in for existing modAL projects (issue 10, items 1-6).

The modAL scenarios run through tests/dropin_driver.py on both modAL releases (0.4.1
from the venv, 0.4.2.1 from .venv/modal-0.4.2.1, as in test_modal_compat.py); the rest
checks the same behaviour in-process through the public API.
"""

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from modAL.models import ActiveLearner
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from modal_ally import PDCLNet, ally_query_strategy, badge_query_strategy
from tests.dropin_driver import ModalStyleNet
from tests.helpers import MODAL_0421, run_driver

STRATEGY_NAMES = ["ally", "ally-redundancy", "badge", "coreset", "random"]


@pytest.fixture(scope="module", params=["0.4.1", "0.4.2.1"])
def report(request):
    if request.param == "0.4.2.1":
        if not (MODAL_0421 / "modAL").is_dir():
            pytest.fail(f"modAL-python 0.4.2.1 is missing from {MODAL_0421}: run `make test`")
        result = run_driver("dropin_driver.py", MODAL_0421)
        assert str(MODAL_0421) in result["modal_file"]
    else:
        result = run_driver("dropin_driver.py")
    result["release"] = request.param
    return result


def scenario(report, name):
    run = report[name]
    assert run["ok"], f"{name} on modAL {report['release']}: {run.get('traceback')}"
    return run


def assert_unique(indices, n, n_pool=200):
    assert len(indices) == n and len(set(indices)) == n
    assert all(0 <= i < n_pool for i in indices)


# ------------------------------------------------------------------ item 1: own module
def test_modal_user_module_runs_unmodified(report):
    run = scenario(report, "own_module")
    assert_unique(run["indices"], 3)
    assert run["n_labeled"] == run["lambdas"] == 63


def test_modal_pytorch_example_model_is_split_at_its_last_linear():
    rng = np.random.default_rng(0)
    X = rng.random((24, 1, 28, 28), dtype=np.float32)
    y = np.arange(24) % 10
    net = PDCLNet(ModalStyleNet, criterion=nn.CrossEntropyLoss,
                  optimizer=torch.optim.Adam, train_split=None, max_epochs=1,
                  batch_size=12, random_state=0)
    learner = ActiveLearner(estimator=net, query_strategy=ally_query_strategy,
                            X_training=X[:16], y_training=y[:16])
    idx = np.asarray(learner.query(X[16:], n_instances=2)[0]).ravel()
    assert len(set(idx.tolist())) == 2
    assert net.embed(X[:3]).shape == (3, 128)  # the input of the last nn.Linear
    assert net.predict_dual(X[:3]).shape == (3,)
    # the user's module and its state_dict stay usable as they are
    fresh = ModalStyleNet()
    assert set(net.module_.state_dict()) == set(fresh.state_dict())
    fresh.load_state_dict(net.module_.state_dict())
    fresh.eval()
    with torch.no_grad():
        expected = torch.softmax(fresh(torch.from_numpy(X[:4])), dim=1).numpy()
    np.testing.assert_allclose(net.predict_proba(X[:4]), expected, rtol=1e-4, atol=1e-6)


class TwoStage(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(64, 24), nn.ReLU())
        self.middle = nn.Linear(24, 12)
        self.out = nn.Linear(12, 10)

    def forward(self, x):
        return self.out(torch.relu(self.middle(self.features(x))))


@pytest.fixture(scope="module")
def digits_small():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


def test_embedding_layer_names_where_the_embedding_is(digits_small):
    X, y = digits_small
    net = PDCLNet(TwoStage, embedding_layer="features", max_epochs=1, random_state=0)
    net.fit(X[:100], y[:100])
    module = net.module_
    with torch.no_grad():
        expected = module.features(torch.from_numpy(X[:5])).numpy()
    np.testing.assert_allclose(net.embed(X[:5]), expected, rtol=1e-5)
    default = PDCLNet(TwoStage, max_epochs=1, random_state=0).fit(X[:100], y[:100])
    assert default.embed(X[:5]).shape == (5, 12)


def test_embedding_layer_unknown_name_is_a_clear_error(digits_small):
    X, y = digits_small
    net = PDCLNet(TwoStage, embedding_layer="nope", max_epochs=1)
    with pytest.raises(ValueError, match="embedding_layer='nope'.*features"):
        net.fit(X[:50], y[:50])


class NoLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 10, 64)

    def forward(self, x):
        return self.conv(x.unsqueeze(1)).squeeze(-1)


def test_module_without_linear_asks_for_embedding_layer(digits_small):
    X, y = digits_small
    with pytest.raises(TypeError, match="embedding_layer"):
        PDCLNet(NoLinear, max_epochs=1).fit(X[:50], y[:50])


class ScaledOutput(nn.Module):
    """The last nn.Linear is not the end of forward: its output is doubled."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 16), nn.ReLU())
        self.last = nn.Linear(16, 10)

    def forward(self, x):
        return 2.0 * self.last(self.body(x))


def test_badge_refuses_a_head_that_is_not_the_end_of_forward(digits_small):
    X, y = digits_small
    net = PDCLNet(ScaledOutput, max_epochs=1, random_state=0).fit(X[:60], y[:60])
    assert net.embed(X[:2]).shape == (2, 16)  # ALLY only needs the embedding
    with pytest.raises(TypeError, match="head"):
        badge_query_strategy(net, X[60:100], n_instances=2)


# ------------------------------------------------------------------ item 2: DeepActiveLearner
def test_deep_active_learner_with_a_user_module(report):
    if report["release"] == "0.4.1":
        assert "deep_own_module" not in report  # 0.4.1 has no DeepActiveLearner
        return
    run = scenario(report, "deep_own_module")
    assert_unique(run["indices"], 3)
    assert run["lambdas"] == 60


def test_initialize_before_data_for_every_module():
    for module in (TwoStage, ModalStyleNet, None):
        net = PDCLNet(module)
        net.initialize()  # what DeepActiveLearner.__init__ does, before any data


# ------------------------------------------------------------------ item 3: own skorch net
def test_plain_skorch_net_error_names_the_fix(report):
    run = report["own_skorch_net"]
    assert not run["ok"]
    assert "PDCLNet(module=ModalStyleNet" in run["error"], run["error"]
    assert "same" in run["error"] and "skorch" in run["error"]


# ------------------------------------------------------------------ item 4: pandas, lists
def test_pandas_and_list_pools_through_modal(report):
    run = scenario(report, "pandas_and_lists")
    for key in ("ally", "uncertainty", "list"):
        assert_unique(run[key], 3)
    assert 0 <= run["score_list"] <= 1
    assert run["score_frame"] == pytest.approx(run["score_list"])
    assert run["n_labeled"] == 66


def test_every_entry_point_accepts_what_sklearn_accepts(digits_small):
    pd = pytest.importorskip("pandas")
    X, y = digits_small
    frame = pd.DataFrame(X[:200], columns=[f"p{i}" for i in range(64)])
    net = PDCLNet(max_epochs=2, random_state=0).fit(frame, pd.Series(y[:200]))
    reference = net.predict_proba(X[200:260])
    for variant in (X[200:260].tolist(), pd.DataFrame(X[200:260]),
                    torch.from_numpy(X[200:260]), X[200:260].astype(np.float64)):
        np.testing.assert_allclose(net.predict_proba(variant), reference, rtol=1e-5)
    assert net.score(X[200:260].tolist(), y[200:260].tolist()) == \
        pytest.approx(net.score(X[200:260], y[200:260]))
    idx = ally_query_strategy(net, pd.DataFrame(X[200:400]), n_instances=4, random_state=0)
    idx = np.asarray(idx[0] if isinstance(idx, tuple) else idx)
    assert len(set(idx.tolist())) == 4


def test_memmap_pool(tmp_path, digits_small):
    X, y = digits_small
    net = PDCLNet(max_epochs=2, random_state=0).fit(X[:100], y[:100])
    path = tmp_path / "pool.dat"
    pool = np.memmap(path, dtype=np.float64, mode="w+", shape=(300, 64))
    pool[:] = X[100:400]
    pool.flush()
    pool = np.memmap(path, dtype=np.float64, mode="r", shape=(300, 64))
    for strategy in (ally_query_strategy, badge_query_strategy):
        idx = strategy(net, pool, n_instances=3, random_state=0)
        idx = np.asarray(idx[0] if isinstance(idx, tuple) else idx)
        assert len(set(idx.tolist())) == 3
    np.testing.assert_allclose(net.predict_proba(pool), net.predict_proba(X[100:400]),
                               rtol=1e-5)


def test_non_numeric_dataframe_columns_are_named(digits_small):
    pd = pytest.importorskip("pandas")
    X, y = digits_small
    frame = pd.DataFrame(X[:50], columns=[f"p{i}" for i in range(64)])
    frame["city"] = "Paris"
    frame["when"] = pd.Timestamp("2024-01-01")
    with pytest.raises(TypeError, match=r"non-numeric columns.*'city'.*'when'"):
        PDCLNet(max_epochs=1).fit(frame, y[:50])


# ------------------------------------------------------------------ item 5: Pipelines
@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_pipeline_with_every_strategy(report, name):
    run = scenario(report, f"pipeline-{name}")
    assert_unique(run["indices"], 3)
    assert run["indices"] == run["direct"]  # the pool went through the scaler
    assert run["n_labeled"] == 63


def test_pipeline_pool_checked_against_the_raw_features(digits_small):
    X, y = digits_small
    pipe = make_pipeline(StandardScaler(), PDCLNet(max_epochs=1, random_state=0))
    learner = ActiveLearner(estimator=pipe, query_strategy=ally_query_strategy,
                            X_training=X[:80], y_training=y[:80])
    with pytest.raises(ValueError, match="X_pool"):
        learner.query(X[80:200, :10], n_instances=2)
    bad = X[80:200].copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        learner.query(bad, n_instances=2)


# ------------------------------------------------------------------ item 6: per-row epsilon
def test_callable_epsilon_survives_teach(report):
    run = scenario(report, "epsilon_teach")
    assert run["epsilon_rows"] == 63
    assert run["epsilon_matches"]


def test_wrong_length_epsilon_error_explains_teach(report):
    run = report["epsilon_array_teach"]
    assert not run["ok"]
    assert "epsilon has 60 values but X has 63 rows" in run["error"]
    assert "callable" in run["error"] and "teach" in run["error"]


def test_callable_epsilon_checked_like_an_array(digits_small):
    X, y = digits_small
    for bad, error in ((lambda X, y: np.full(len(y) - 1, 0.2), "one value per row"),
                       (lambda X, y: np.full(len(y), -1.0), "finite and >= 0"),
                       (lambda X, y: np.full(len(y), np.nan), "finite and >= 0"),
                       (lambda X, y: "high", "epsilon")):
        with pytest.raises((ValueError, TypeError), match=error):
            PDCLNet(epsilon=bad, max_epochs=1).fit(X[:40], y[:40])
    net = PDCLNet(epsilon=lambda X, y: 0.5, max_epochs=1, random_state=0).fit(X[:40], y[:40])
    np.testing.assert_allclose(net.epsilon_, 0.5)
    assert callable(clone(net).epsilon)


MNIST_RAW = Path("/work/shared/data/MNIST/raw")


def read_idx(path, header):
    with gzip.open(path, "rb") as infile:
        return np.frombuffer(infile.read(), dtype=np.uint8, offset=header)


@pytest.mark.slow
@pytest.mark.skipif(not (MNIST_RAW / "train-images-idx3-ubyte.gz").exists(),
                    reason=f"MNIST IDX files not found in {MNIST_RAW}")
def test_modal_pytorch_example_converted_on_mnist():
    """modAL's PyTorch example loop (its model, its skorch arguments, its ActiveLearner
    loop on MNIST) with only the estimator class and the query strategy changed."""
    images = read_idx(MNIST_RAW / "train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
    labels = read_idx(MNIST_RAW / "train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    X = images[:1700].astype(np.float32) / 255
    y = labels[:1700]
    X_initial, y_initial = X[:200], y[:200]
    X_pool, y_pool = X[200:1200], y[200:1200]
    classifier = PDCLNet(ModalStyleNet, criterion=nn.CrossEntropyLoss,
                         optimizer=torch.optim.Adam, train_split=None, verbose=0,
                         max_epochs=3, random_state=0)
    learner = ActiveLearner(estimator=classifier, query_strategy=ally_query_strategy,
                            X_training=X_initial, y_training=y_initial)
    for _ in range(2):
        query_idx, _ = learner.query(X_pool, n_instances=50)
        assert len(set(np.asarray(query_idx).tolist())) == 50
        learner.teach(X=X_pool[query_idx], y=y_pool[query_idx])
        X_pool = np.delete(X_pool, query_idx, axis=0)
        y_pool = np.delete(y_pool, query_idx, axis=0)
    assert len(learner.y_training) == 300
    assert learner.estimator.embed(X[:2]).shape == (2, 128)
    assert learner.score(X[1200:], y[1200:]) > 0.6
