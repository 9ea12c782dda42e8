"""PDCLNet and PDCLRegressor: scikit-learn/skorch conventions and the method's behaviour."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from torch import nn

from modal_ally import MLP, PDCLNet, PDCLRegressor, ResNet18Embedding
from modal_ally.callbacks import dual_targets

HISTORY_COLUMNS = ("primal_loss", "lagrangian", "lambda_mean", "lambda_max",
                   "active_fraction", "slack_mean")


def test_default_net_learns_digits(fitted_net, digits):
    assert isinstance(fitted_net.module_, MLP)
    assert fitted_net.module_.embedding_dim == 256
    assert fitted_net.score(digits["X_test"], digits["y_test"]) > 0.85


def test_lambdas_one_per_row_and_nonnegative(fitted_net, digits):
    assert fitted_net.lambdas_.shape == (len(digits["X_train"]),)
    assert (fitted_net.lambdas_ >= 0).all()
    assert fitted_net.lambdas_.max() > 0
    assert fitted_net.epsilon_.shape == fitted_net.lambdas_.shape


def test_history_records_dual_state(fitted_net):
    assert len(fitted_net.history) == 30
    for column in HISTORY_COLUMNS:
        values = fitted_net.history[:, column]
        assert len(values) == 30 and np.isfinite(values).all(), column
    last = fitted_net.history[-1]
    assert last["lambda_max"] == pytest.approx(fitted_net.lambdas_.max(), rel=1e-5)
    assert last["active_fraction"] == pytest.approx((fitted_net.lambdas_ > 0).mean())


def test_mean_multipliers_and_last_constraint_losses(digits):
    X, y = digits["X_train"][:200], digits["y_train"][:200]
    net = PDCLNet(max_epochs=4, random_state=0).fit(X, y)
    lambdas = [net.lambdas_]
    for epochs in (1, 2, 3):  # the same seed: the first epochs of the 4-epoch fit
        lambdas.append(PDCLNet(max_epochs=epochs, random_state=0).fit(X, y).lambdas_)
    np.testing.assert_allclose(net.lambdas_mean_, np.mean(lambdas, axis=0), rtol=1e-5)
    assert net.lambdas_mean_.shape == net.constraint_losses_.shape == (200,)
    assert (net.lambdas_mean_ <= net.lambdas_ + 1e-6).mean() > 0.5  # lambda mostly grows
    losses = net.per_sample_loss(X, y)  # eval mode after the last step: close, not equal
    assert np.corrcoef(losses, net.constraint_losses_)[0, 1] > 0.8


def test_random_state_makes_fit_reproducible(digits):
    X, y = digits["X_train"], digits["y_train"]
    a = PDCLNet(max_epochs=3, random_state=7).fit(X, y)
    b = PDCLNet(max_epochs=3, random_state=7).fit(X, y)
    np.testing.assert_array_equal(a.lambdas_, b.lambdas_)
    np.testing.assert_array_equal(a.predict_dual(X), b.predict_dual(X))


def test_every_fit_starts_fresh(digits):
    X, y = digits["X_train"], digits["y_train"]
    net = PDCLNet(max_epochs=3, random_state=1).fit(X, y)
    first = net.lambdas_.copy()
    net.fit(X[:150], y[:150])
    assert net.lambdas_.shape == (150,)
    assert len(net.history) == 3
    net.fit(X, y)  # same seed, same data: the very same run again
    np.testing.assert_array_equal(net.lambdas_, first)


def test_partial_fit_continues_dual_state(digits):
    X, y = digits["X_train"], digits["y_train"]
    net = PDCLNet(max_epochs=2, random_state=0, epsilon=0.05).fit(X, y)
    before = net.lambdas_.copy()
    net.partial_fit(X, y)
    assert len(net.history) == 4
    assert net.lambdas_.shape == before.shape and not np.array_equal(net.lambdas_, before)
    with pytest.raises(ValueError, match="not among the classes"):
        net.partial_fit(X[:5], np.full(5, 99))


def test_labels_need_not_be_0_to_c_minus_1(digits):
    X, y = digits["X_train"], digits["y_train"]
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                       "eight", "nine"])[y]
    net = PDCLNet(max_epochs=5, random_state=0).fit(X, labels)
    assert set(net.predict(X[:20])) <= set(labels)
    assert net.predict_proba(X[:3]).shape == (3, 10)
    present = np.isin(y, [1, 2, 3])  # only 3 of 10 classes labeled so far
    net.fit(X[present], y[present] * 10)
    assert list(net.classes_) == [10, 20, 30]
    assert set(net.predict(X[:30])) <= {10, 20, 30}


def test_epsilon_far_above_every_loss_gives_zero_lambdas(digits):
    with pytest.warns(UserWarning, match="every dual variable is 0"):
        net = PDCLNet(max_epochs=5, epsilon=50.0, random_state=0).fit(
            digits["X_train"], digits["y_train"])
    assert (net.lambdas_ == 0).all()
    np.testing.assert_array_equal(net.predict_dual(digits["X_pool"]), 0)


def test_tight_epsilon_concentrates_lambda_on_hardest_rows(digits):
    X, y = digits["X_train"].copy(), digits["y_train"].copy()
    rng = np.random.RandomState(0)
    flipped = rng.choice(len(y), 20, replace=False)  # mislabeled rows: the hardest
    y[flipped] = (y[flipped] + 1 + rng.randint(9, size=20)) % 10
    net = PDCLNet(max_epochs=30, epsilon=0.2, random_state=0).fit(X, y)
    losses = net.per_sample_loss(X, y)
    top = np.argsort(-net.lambdas_)[:20]
    assert len(set(top) & set(flipped)) >= 14
    clean = np.setdiff1d(np.arange(200), flipped)
    assert net.lambdas_[flipped].mean() > 3 * net.lambdas_[clean].mean()
    assert pearsonr(losses, net.lambdas_)[0] > 0.5


def test_dual_head_predicts_lambda_on_held_out_labeled_rows(digits):
    X, y = digits["X_train"], digits["y_train"]
    net = PDCLNet(max_epochs=30, random_state=0).fit(X, y)
    rng = np.random.RandomState(0)
    held_out = rng.choice(len(X), 50, replace=False)
    kept = np.setdiff1d(np.arange(len(X)), held_out)
    embeddings = torch.as_tensor(net.train_embeddings_)
    targets = dual_targets(net)  # what the heads learn (the mean multipliers with slack)
    net._fit_dual_head(embeddings[kept], torch.as_tensor(targets[kept]))
    predicted = net.predict_dual(X[held_out])
    assert pearsonr(predicted, targets[held_out])[0] > 0.3
    assert (predicted >= 0).all()


def test_dual_head_fits_training_rows(fitted_net, digits):
    predicted = fitted_net.predict_dual(digits["X_train"])
    assert pearsonr(predicted, dual_targets(fitted_net))[0] > 0.9


def test_per_row_epsilon_and_constraint_loss(digits):
    X, y = digits["X_train"], digits["y_train"]
    eps = np.full(len(X), 100.0)
    eps[:50] = 0.0  # only the first 50 rows are constrained
    net = PDCLNet(max_epochs=5, epsilon=eps, random_state=0).fit(X, y)
    assert (net.lambdas_[:50] > 0).all() and (net.lambdas_[50:] == 0).all()

    def zero_one(y_pred, y_true):  # a per-sample secondary loss l'
        return nn.functional.cross_entropy(y_pred, y_true, reduction="none") * 2

    net = PDCLNet(max_epochs=5, constraint_loss=zero_one, random_state=0).fit(X, y)
    assert net.lambdas_.mean() > 0
    with pytest.raises(ValueError, match="per-row epsilon needs one value per row"):
        PDCLNet(epsilon=np.ones(3)).fit(X, y)


def test_auto_epsilon_reports_reference_and_cost(digits):
    X, y = digits["X_train"], digits["y_train"]
    net = PDCLNet(max_epochs=5, epsilon="auto", random_state=0).fit(X, y)
    assert net.auto_epsilon_reference_loss_ > 0
    np.testing.assert_allclose(net.epsilon_, 1.1 * net.auto_epsilon_reference_loss_, rtol=1e-5)
    assert net.auto_epsilon_fit_time_ > 0


def test_dual_lr_schedules(digits):
    X, y = digits["X_train"], digits["y_train"]
    const = PDCLNet(max_epochs=4, epsilon=0.05, random_state=0).fit(X, y)
    sqrt = PDCLNet(max_epochs=4, epsilon=0.05, dual_lr_schedule="sqrt", random_state=0).fit(X, y)
    zero = PDCLNet(max_epochs=4, epsilon=0.05, dual_lr_schedule=lambda epoch: 0.0,
                   random_state=0)
    with pytest.warns(UserWarning, match="every dual variable is 0"):
        zero.fit(X, y)
    assert sqrt.lambdas_.sum() < const.lambdas_.sum()


def test_sklearn_conventions(fitted_net, digits):
    params = PDCLNet(epsilon=0.3, dual_head__hidden_units=(8,)).get_params()
    assert params["epsilon"] == 0.3 and params["dual_head__hidden_units"] == (8,)
    net = PDCLNet()
    assert not hasattr(net, "lambdas_")
    with pytest.raises(NotFittedError):
        net.predict_dual(digits["X_pool"])
    copy = clone(fitted_net)
    assert not hasattr(copy, "lambdas_") and copy.get_params()["max_epochs"] == 30
    restored = pickle.loads(pickle.dumps(fitted_net))
    np.testing.assert_allclose(restored.predict_dual(digits["X_pool"][:50]),
                               fitted_net.predict_dual(digits["X_pool"][:50]))
    np.testing.assert_array_equal(restored.lambdas_, fitted_net.lambdas_)


def test_dual_head_params_are_routed(digits):
    net = PDCLNet(max_epochs=2, dual_head__hidden_units=(8, 4), random_state=0)
    net.fit(digits["X_train"], digits["y_train"])
    widths = [m.out_features for m in net.dual_head_.modules() if isinstance(m, nn.Linear)]
    assert widths == [8, 4, 1]
    assert not any(n.startswith("dual_head") for n, _ in net.get_all_learnable_params())


@pytest.mark.slow
def test_grid_search(digits):
    search = GridSearchCV(PDCLNet(max_epochs=3, random_state=0),
                          {"epsilon": [0.1, 0.5]}, cv=2)
    search.fit(digits["X_train"], digits["y_train"])
    assert search.best_params_["epsilon"] in (0.1, 0.5)


def test_grid_search_clones_and_scores(digits):
    search = GridSearchCV(PDCLNet(max_epochs=1, random_state=0), {"epsilon": [0.1]}, cv=2)
    search.fit(digits["X_train"][:80], digits["y_train"][:80])
    assert search.best_estimator_.lambdas_.shape == (80,)


def test_tensor_input_and_chunking(fitted_net, digits):
    X = digits["X_pool"]
    as_tensor = fitted_net.predict_dual(torch.as_tensor(X))
    np.testing.assert_allclose(as_tensor, fitted_net.predict_dual(X), atol=1e-5)
    small = clone(fitted_net).set_params(chunk_size=7)
    small.__dict__.update({k: v for k, v in fitted_net.__dict__.items() if k.endswith("_")})
    np.testing.assert_allclose(small.predict_dual(X), fitted_net.predict_dual(X), atol=1e-4)
    np.testing.assert_allclose(small.embed(X), fitted_net.embed(X), atol=1e-5)
    np.testing.assert_array_equal(small.predict(X), fitted_net.predict(X))
    proba = fitted_net.predict_proba(torch.as_tensor(X[:10], dtype=torch.float64))
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)


def test_float64_and_warnings_free_fit(digits):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = PDCLNet(max_epochs=1, random_state=0).fit(
            digits["X_train"].astype(np.float64), digits["y_train"])
    assert net.embed(digits["X_pool"][:4]).dtype == np.float32


def test_regressor_standardizes_targets(fitted_regressor, diabetes):
    X, y, X_test, y_test = diabetes
    net = fitted_regressor
    assert net.y_mean_[0] == pytest.approx(y.mean(), rel=1e-5)
    assert net.predict(X_test).shape == (len(X_test),)
    assert abs(net.predict(X).mean() - y.mean()) < 0.25 * y.std()  # user's units
    assert net.score(X_test, y_test) > 0.2
    assert (net.lambdas_ >= 0).all() and net.lambdas_.shape == (len(X),)
    shifted = PDCLRegressor(max_epochs=30, random_state=0).fit(X, 1000 * y + 5)
    # the same standardized targets up to float32 rounding: the same run, up to drift
    assert np.corrcoef(shifted.lambdas_, net.lambdas_)[0, 1] > 0.99
    np.testing.assert_allclose(shifted.lambdas_, net.lambdas_, atol=0.05)
    two = PDCLRegressor(max_epochs=2, random_state=0).fit(X, np.c_[y, -y])
    assert two.predict(X_test).shape == (len(X_test), 2)


def test_cuda_requested_without_cuda_is_a_clear_error(digits):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    net = PDCLNet(device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        net.fit(digits["X_train"], digits["y_train"])
    assert not hasattr(net, "lambdas_")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_fit_and_query(digits):
    net = PDCLNet(max_epochs=3, device="cuda", random_state=0)
    net.fit(digits["X_train"], digits["y_train"])
    assert net.predict_dual(digits["X_pool"]).shape == (len(digits["X_pool"]),)
    assert net.predict_dual(torch.as_tensor(digits["X_pool"]).cuda()).shape[0] == 900


def test_resnet18_backbone_on_32x32_images():
    rng = np.random.RandomState(0)
    X = rng.rand(24, 3, 32, 32).astype(np.float32)
    y = np.arange(24) % 4
    net = PDCLNet(module=ResNet18Embedding, max_epochs=1, batch_size=12, random_state=0)
    net.fit(X, y)
    assert net.embed(X[:5]).shape == (5, 128)
    assert net.module_.head.out_features == 4
    assert net.predict_dual(X).shape == (24,)


def test_user_module_without_backbone_is_split_at_its_last_linear(digits):
    class NoBackbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(64, 10)

        def forward(self, X):
            return self.layer(X)

    net = PDCLNet(module=NoBackbone, max_epochs=1, random_state=0)
    net.fit(digits["X_train"], digits["y_train"])
    # the embedding is the input of the last nn.Linear: here the features themselves
    np.testing.assert_array_equal(net.embed(digits["X_train"][:3]), digits["X_train"][:3])
    assert net.module_.head is net.module_.module.layer


def test_integer_inputs_are_cast(digits):
    X_int = (digits["X_train"] * 16).astype(np.int64)
    net = PDCLNet(max_epochs=2, random_state=0).fit(X_int, digits["y_train"])
    assert net.predict_dual(X_int[:5]).shape == (5,)
    assert net.embed(torch.as_tensor(X_int[:5], dtype=torch.uint8)).shape == (5, 256)


def test_skorch_validation_split_and_callbacks(digits):
    from skorch.callbacks import EarlyStopping
    from skorch.dataset import ValidSplit

    net = PDCLNet(max_epochs=30, train_split=ValidSplit(5, stratified=True),
                  callbacks=[EarlyStopping(patience=2)], random_state=0)
    net.fit(digits["X_train"], digits["y_train"])
    assert np.isfinite(net.history[:, "valid_loss"]).all()
    assert len(net.history) < 30 or net.history[-1, "valid_loss"] > 0
    assert net.lambdas_.shape == (200,)
    # rows held out for validation are never trained on: their multiplier stays 0
    assert (net.lambdas_ == 0).sum() >= 40
