"""skorch's persistence for PDCL nets: save_params/load_params with f_dual_heads,
Checkpoint, TrainEndCheckpoint and LoadInitState, initialize() with the sizes given, and
clear errors for a net whose weights came without their dual state."""

import io
import pickle

import numpy as np
import pytest
import torch
from modAL.models import ActiveLearner
from sklearn.exceptions import NotFittedError
from skorch import NeuralNetClassifier
from skorch.callbacks import Checkpoint, LoadInitState, TrainEndCheckpoint

from modal_ally import (
    MLP,
    PDCLNet,
    PDCLRegressor,
    ally_query_strategy,
    badge_query_strategy,
    coreset_query_strategy,
    rank_label_issues,
)

STRATEGIES = {
    "ally-default": lambda net, X: ally_query_strategy(net, X, 12, random_state=0),
    "ally-paper": lambda net, X: ally_query_strategy(net, X, 12, method="paper",
                                                     random_state=0),
    "badge": lambda net, X: badge_query_strategy(net, X, 12, random_state=0),
    "coreset": lambda net, X: coreset_query_strategy(net, X, 12, random_state=0),
}
REGRESSION_STRATEGIES = ("ally-default", "ally-paper", "coreset")


def as_indices(result):
    """A strategy's or a learner's indices (modAL 0.4.2.x also returns scores)."""
    return np.asarray(result[0] if isinstance(result, tuple) else result)


def picks(strategy, net, X_pool):
    return np.asarray(as_indices(STRATEGIES[strategy](net, X_pool)))


def save(net, directory, **extra):
    files = {"f_params": directory / "params.pt", "f_optimizer": directory / "opt.pt",
             "f_history": directory / "history.json",
             "f_dual_heads": directory / "dual_heads.pt", **extra}
    net.save_params(**{key: value for key, value in files.items() if value is not None})
    return {key: value for key, value in files.items() if value is not None}


def loaded(net_class, files, **params):
    net = net_class(**params).initialize()
    net.load_params(**files)
    return net


def small_net(**params):
    return PDCLNet(**{"max_epochs": 3, "random_state": 0, "dual_head_epochs": 20,
                      "batch_size": 256, **params})


# --------------------------------------------------------------------- initialize()
@pytest.mark.parametrize("net_class, output_dim", [(PDCLNet, 10), (PDCLRegressor, 1)])
def test_initialize_with_sizes_builds_before_any_fit(net_class, output_dim):
    net = net_class(module__input_dim=64, module__output_dim=output_dim).initialize()
    assert net.initialized_
    assert isinstance(net.module_.backbone, torch.nn.Module)
    assert isinstance(net.optimizer_, torch.optim.Adam)
    assert net.criterion_.reduction == "none"
    assert net.predict_proba(np.zeros((3, 64), np.float32)).shape == (3, output_dim)


def test_initialize_without_sizes_still_waits_for_the_data(digits):
    """modAL's DeepActiveLearner calls initialize() before it has seen data."""
    net = PDCLNet(max_epochs=2, random_state=0).initialize()
    assert not net.initialized_ and not hasattr(net, "module_")
    net.fit(digits["X_train"], digits["y_train"])
    linear = [m for m in net.module_.backbone.modules() if isinstance(m, torch.nn.Linear)]
    assert linear[0].in_features == 64


def test_a_net_initialized_with_sizes_fits_and_partial_fits(digits):
    X, y = digits["X_train"], digits["y_train"]
    net = small_net(module__input_dim=64, module__output_dim=10).initialize()
    net.partial_fit(X, y)  # DeepActiveLearner's teach
    assert net.lambdas_.shape == (len(X),)
    assert picks("ally-default", net, digits["X_pool"]).shape == (12,)


def test_initialize_on_a_fitted_net_drops_its_stale_dual_state(digits):
    net = small_net().fit(digits["X_train"], digits["y_train"])
    net.initialize()  # new weights: the heads were fitted on the old embeddings
    with pytest.raises(NotFittedError, match="initialize\\(\\) built a new network"):
        picks("ally-default", net, digits["X_pool"])


# --------------------------------------------------------------------- save, load, query
@pytest.fixture(scope="module")
def saved_classifier(fitted_net, tmp_path_factory):
    return save(fitted_net, tmp_path_factory.mktemp("classifier"))


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_save_load_query_gives_the_same_picks(fitted_net, saved_classifier, digits,
                                              strategy):
    net = loaded(PDCLNet, saved_classifier, module__input_dim=64, module__output_dim=10)
    assert np.array_equal(picks(strategy, net, digits["X_pool"]),
                          picks(strategy, fitted_net, digits["X_pool"]))


def test_save_load_keeps_what_a_query_and_the_audit_read(fitted_net, saved_classifier,
                                                         digits):
    net = loaded(PDCLNet, saved_classifier, module__input_dim=64, module__output_dim=10)
    X_pool = digits["X_pool"]
    for name in ("lambdas_", "lambdas_mean_", "constraint_losses_", "epsilon_",
                 "train_embeddings_", "train_targets_", "classes_"):
        assert np.array_equal(getattr(net, name), getattr(fitted_net, name)), name
    assert net.feature_shape_ == fitted_net.feature_shape_
    for head in ("paper", "pool"):
        assert np.array_equal(net.predict_dual(X_pool, head=head),
                              fitted_net.predict_dual(X_pool, head=head))
    assert np.array_equal(net.predict(X_pool), fitted_net.predict(X_pool))
    for got, expected in zip(rank_label_issues(net, top=20),
                             rank_label_issues(fitted_net, top=20)):
        assert np.array_equal(got, expected)
    assert len(net.history) == len(fitted_net.history)
    assert net.pool_dual_head_ is not net.dual_head_  # the classifier's two heads


def test_save_load_regressor(fitted_regressor, diabetes, tmp_path):
    X, y, X_pool, _ = diabetes
    files = save(fitted_regressor, tmp_path)
    net = loaded(PDCLRegressor, files, module__input_dim=10, module__output_dim=1)
    assert np.array_equal(net.predict(X_pool), fitted_regressor.predict(X_pool))
    assert net.predict(X_pool).ndim == 1  # y's shape and units: y_mean_, y_scale_, y_ndim_
    assert net.pool_dual_head_ is net.dual_head_  # a regressor has one head
    for strategy in REGRESSION_STRATEGIES:
        assert np.array_equal(picks(strategy, net, X_pool),
                              picks(strategy, fitted_regressor, X_pool)), strategy
    assert np.array_equal(rank_label_issues(net)[0], rank_label_issues(fitted_regressor)[0])


def test_string_labels_survive_save_and_load(digits):
    letters = np.array(list("abcdefghij"))
    net = small_net().fit(digits["X_train"], letters[digits["y_train"]])
    buffers = {"f_params": io.BytesIO(), "f_dual_heads": io.BytesIO()}
    net.save_params(**buffers)
    for buffer in buffers.values():
        buffer.seek(0)
    new = loaded(PDCLNet, buffers, module__input_dim=64, module__output_dim=10)
    assert np.array_equal(new.predict(digits["X_pool"]), net.predict(digits["X_pool"]))
    assert np.array_equal(new.train_targets_, net.train_targets_)


def test_a_loaded_net_pickles_and_fits_again(fitted_net, saved_classifier, digits):
    net = loaded(PDCLNet, saved_classifier, module__input_dim=64, module__output_dim=10)
    again = pickle.loads(pickle.dumps(net))
    assert np.array_equal(picks("ally-default", again, digits["X_pool"]),
                          picks("ally-default", fitted_net, digits["X_pool"]))
    net.set_params(max_epochs=2).fit(digits["X_pool"][:50], digits["y_pool"][:50])
    assert net.lambdas_.shape == (50,)


class PlainModule(torch.nn.Module):
    """modAL's PyTorch example's shape: no backbone/head, sizes fixed by the user."""

    def __init__(self, hidden=32):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(),
                                          torch.nn.Linear(hidden, 10))

    def forward(self, x):
        return self.layers(x)


def test_a_user_module_initializes_before_any_fit_and_round_trips(digits, tmp_path):
    net = small_net(module=PlainModule).initialize()
    assert net.initialized_  # needs no size from the data
    net.fit(digits["X_train"], digits["y_train"])
    files = save(net, tmp_path)
    new = loaded(PDCLNet, files, module=PlainModule)
    for strategy in STRATEGIES:
        assert np.array_equal(picks(strategy, new, digits["X_pool"]),
                              picks(strategy, net, digits["X_pool"])), strategy


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_saved_on_cuda_loads_on_cuda_and_on_cpu(digits, tmp_path):
    net = small_net(device="cuda").fit(digits["X_train"], digits["y_train"])
    files = save(net, tmp_path)
    on_cuda = loaded(PDCLNet, files, module__input_dim=64, module__output_dim=10,
                     device="cuda")
    assert np.array_equal(picks("ally-default", on_cuda, digits["X_pool"]),
                          picks("ally-default", net, digits["X_pool"]))
    on_cpu = loaded(PDCLNet, files, module__input_dim=64, module__output_dim=10)
    assert all(p.device.type == "cpu" for p in on_cpu.pool_dual_head_.parameters())
    assert np.allclose(on_cpu.predict_dual(digits["X_pool"]),
                       net.predict_dual(digits["X_pool"]), rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------------- clear errors
def test_params_without_the_dual_heads_cannot_query(saved_classifier, digits):
    net = loaded(PDCLNet, {"f_params": saved_classifier["f_params"]},
                 module__input_dim=64, module__output_dim=10)
    net.predict_proba(digits["X_pool"])  # the network itself works, as in skorch
    for strategy in ("ally-default", "ally-paper"):
        with pytest.raises(NotFittedError, match="without its dual heads file"):
            picks(strategy, net, digits["X_pool"])
    with pytest.raises(NotFittedError, match="without its dual heads file"):
        rank_label_issues(net)
    with pytest.raises(ValueError, match="keeps no `train_embeddings_`"):
        picks("coreset", net, digits["X_pool"])
    with pytest.raises(NotFittedError, match="does not know its classes"):
        net.predict(digits["X_pool"])


def test_a_plain_skorch_params_file_cannot_query(digits, tmp_path):
    plain = NeuralNetClassifier(MLP, module__input_dim=64, module__output_dim=10,
                                criterion=torch.nn.CrossEntropyLoss, max_epochs=2,
                                train_split=None)
    plain.fit(digits["X_train"], digits["y_train"].astype(np.int64))
    plain.save_params(f_params=tmp_path / "plain.pt")
    net = loaded(PDCLNet, {"f_params": tmp_path / "plain.pt"}, module__input_dim=64,
                 module__output_dim=10, classes=list(range(10)))
    assert np.allclose(net.predict_proba(digits["X_pool"]),
                       plain.predict_proba(digits["X_pool"]), atol=1e-6)
    with pytest.raises(NotFittedError, match="f_dual_heads"):
        picks("ally-default", net, digits["X_pool"])
    with pytest.raises(ValueError, match="not a dual heads file"):
        net.load_params(f_dual_heads=tmp_path / "plain.pt")


def test_new_weights_under_a_fitted_net_drop_its_dual_state(digits, tmp_path):
    first = small_net().fit(digits["X_train"], digits["y_train"])
    other = small_net(random_state=1).fit(digits["X_train"], digits["y_train"])
    other.save_params(f_params=tmp_path / "other.pt", f_dual_heads=tmp_path / "other_dual.pt")
    first.save_params(f_params=tmp_path / "first.pt")
    before = picks("ally-default", first, digits["X_pool"])
    first.load_params(f_params=tmp_path / "first.pt")  # the same weights: nothing stale
    assert np.array_equal(picks("ally-default", first, digits["X_pool"]), before)
    first.load_params(f_params=tmp_path / "other.pt")
    with pytest.raises(NotFittedError, match="replaced the network's weights"):
        picks("ally-default", first, digits["X_pool"])
    first.load_params(f_dual_heads=tmp_path / "other_dual.pt")  # now consistent again
    assert np.array_equal(picks("ally-default", first, digits["X_pool"]),
                          picks("ally-default", other, digits["X_pool"]))
    first.load_params(f_params=tmp_path / "first.pt", f_dual_heads=tmp_path / "other_dual.pt")
    with pytest.raises(NotFittedError, match="other network weights"):
        picks("ally-default", first, digits["X_pool"])


def test_a_dual_heads_file_of_the_wrong_kind_or_shape_is_refused(fitted_net, saved_classifier):
    regressor = PDCLRegressor(module__input_dim=64, module__output_dim=10).initialize()
    with pytest.raises(ValueError, match="saved by a PDCLNet"):
        regressor.load_params(f_dual_heads=saved_classifier["f_dual_heads"])
    net = PDCLNet(module__input_dim=64, module__output_dim=10,
                  dual_head__hidden_units=(8,)).initialize()
    before = dict(net.__dict__)
    with pytest.raises(ValueError, match="does not fit this net's dual_head"):
        net.load_params(f_dual_heads=saved_classifier["f_dual_heads"])
    assert net.__dict__.keys() == before.keys()  # nothing half-loaded
    unfitted = PDCLNet(module__input_dim=64, module__output_dim=10).initialize()
    with pytest.raises(NotFittedError, match="no dual state to save"):
        unfitted.save_params(f_dual_heads=io.BytesIO())
    with pytest.raises(NotFittedError, match="call initialize\\(\\) first"):
        PDCLNet().load_params(f_dual_heads=saved_classifier["f_dual_heads"])


# --------------------------------------------------------------------- callbacks
def _with_checkpoints(directory, max_epochs, **params):
    extra = {"f_dual_heads": "dual_heads.pt"}
    checkpoint = Checkpoint(monitor=None, dirname=str(directory / "every_epoch"), **extra)
    end = TrainEndCheckpoint(dirname=str(directory / "end"), **extra)
    return small_net(max_epochs=max_epochs, callbacks=[checkpoint, end,
                                                       LoadInitState(checkpoint)],
                     **params), checkpoint, end


def test_checkpoint_and_load_init_state_resume_the_multipliers(digits, tmp_path):
    X, y = digits["X_train"], digits["y_train"]
    whole = small_net(max_epochs=6).fit(X, y)
    first, _, _ = _with_checkpoints(tmp_path, 3)
    first.fit(X, y)
    # without f_dual_heads the weights, optimizer and history resume, the multipliers
    # start again at 0: a different training
    plain = Checkpoint(monitor=None, dirname=str(tmp_path / "every_epoch"))
    restarted = small_net(callbacks=[LoadInitState(plain)]).fit(X, y)
    assert len(restarted.history) == 6
    assert not np.allclose(restarted.lambdas_, whole.lambdas_, rtol=1e-4, atol=1e-5)
    resumed, checkpoint, end = _with_checkpoints(tmp_path, 3)
    resumed.fit(X, y)  # LoadInitState: weights, optimizer, history and multipliers
    assert len(resumed.history) == 6
    assert np.allclose(resumed.lambdas_, whole.lambdas_, rtol=1e-4, atol=1e-5)
    assert np.allclose(resumed.lambdas_mean_, whole.lambdas_mean_, rtol=1e-4, atol=1e-5)

    # the end-of-training checkpoint answers queries as the net does
    new = PDCLNet(module__input_dim=64, module__output_dim=10).initialize()
    new.load_params(checkpoint=end.checkpoint_)
    assert np.array_equal(picks("ally-default", new, digits["X_pool"]),
                          picks("ally-default", resumed, digits["X_pool"]))
    # an epoch's checkpoint precedes the heads of those weights: it resumes, not queries
    new.load_params(checkpoint=checkpoint)
    with pytest.raises(NotFittedError, match="saved during training"):
        picks("ally-default", new, digits["X_pool"])


def test_load_init_state_refuses_multipliers_of_other_rows(digits, tmp_path):
    net, _, _ = _with_checkpoints(tmp_path, 2)
    net.fit(digits["X_train"], digits["y_train"])
    again, _, _ = _with_checkpoints(tmp_path, 2)
    with pytest.raises(ValueError, match="multipliers of 200 rows and this fit has 100"):
        again.fit(digits["X_train"][:100], digits["y_train"][:100])


# --------------------------------------------------------------------- modAL
def test_active_learner_round_trip(digits, tmp_path):
    X0, y0 = digits["X_train"][:100], digits["y_train"][:100]
    learner = ActiveLearner(estimator=small_net(), query_strategy=ally_query_strategy,
                            X_training=X0, y_training=y0)
    files = save(learner.estimator, tmp_path)
    restored = ActiveLearner(
        estimator=loaded(PDCLNet, files, module__input_dim=64, module__output_dim=10,
                         max_epochs=3, random_state=0, dual_head_epochs=20,
                         batch_size=256),
        query_strategy=ally_query_strategy)
    expected = as_indices(learner.query(digits["X_pool"], n_instances=8, random_state=0))
    got = as_indices(restored.query(digits["X_pool"], n_instances=8, random_state=0))
    assert np.array_equal(got, expected)
    restored.teach(digits["X_pool"][got], digits["y_pool"][got])
    assert restored.estimator.lambdas_.shape == (8,)
