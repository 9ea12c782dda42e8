"""The estimators of the benchmarks: PDCL nets for ALLY, plain nets for the baselines.

ALLY arms train :class:`modal_ally.PDCLNet` (:class:`modal_ally.PDCLRegressor` for
regression). Every other strategy trains the same module *without* constraints: a plain
skorch net (:class:`PlainNetClassifier` / :class:`PlainNetRegressor`) with the same
optimizer, learning rate, batch size, epochs, whole-batch fetching and seeding, so that the
fit times in the tables compare the methods and not two code paths.

A ``PDCLNet(epsilon=0, dual_lr=0)`` would train the very same network (every multiplier
stays 0: the Lagrangian is the mean loss; the tests check that both nets predict the same
to 1e-5) but costs 16-24 % more per fit on digits (per-row bookkeeping of the dual step,
the dual-head pass after training), which the fit-time columns would charge to the
baselines; the plain skorch nets are kept for that reason.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier, NeuralNetRegressor
from torch import nn

from benchmarks.harness.registry import Arm

__all__ = ["BATCH_SIZE", "LEARNING_RATE", "PREDICT_BATCH_SIZE", "PlainNetClassifier",
           "PlainNetRegressor", "build_estimator", "module_for"]

#: Batch size and learning rate of every net (the paper's; Adam).
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
#: Rows per chunk when a plain net predicts (training batches stay BATCH_SIZE).
PREDICT_BATCH_SIZE = 4096


class _SeededNetMixin:
    """Seeds torch at every (re)initialization, as PDCLNet does with ``random_state``."""

    def initialize(self):
        if self.random_state is not None:
            torch.manual_seed(int(self.random_state))
        return super().initialize()


class PlainNetClassifier(_SeededNetMixin, NeuralNetClassifier):
    """skorch's ``NeuralNetClassifier`` with a ``random_state`` (the unconstrained baseline).

    Parameters
    ----------
    module : torch.nn.Module class or instance
    random_state : int or None, default None
        ``torch.manual_seed(random_state)`` before every initialization (every ``fit``),
        so a fit on the same data is reproducible.
    **kwargs
        skorch's parameters.
    """

    def __init__(self, module, *, random_state=None, **kwargs):
        super().__init__(module, **kwargs)
        self.random_state = random_state


class PlainNetRegressor(_SeededNetMixin, NeuralNetRegressor):
    """skorch's ``NeuralNetRegressor`` on standardized targets, with a ``random_state``.

    ``fit`` standardizes ``y`` as :class:`modal_ally.PDCLRegressor` does (scikit-learn's
    :class:`~sklearn.preprocessing.StandardScaler`: mean and population standard
    deviation of the fitted targets, a zero scale replaced by 1; attributes ``y_mean_``,
    ``y_scale_``) and trains on the standardized values, shaped ``(n, n_targets)`` as
    ``MSELoss`` needs; ``predict`` maps back to the user's units and shape. The net itself
    (not a ``TransformedTargetRegressor`` around it) is the learner's estimator, so
    strategies reach ``module_.backbone`` as with PDCL nets.

    Parameters
    ----------
    module : torch.nn.Module class or instance
    random_state : int or None, default None
        As in :class:`PlainNetClassifier`.
    **kwargs
        skorch's parameters.
    """

    def __init__(self, module, *, random_state=None, **kwargs):
        super().__init__(module, **kwargs)
        self.random_state = random_state

    def fit(self, X, y, **fit_params):
        y = np.asarray(y, dtype=np.float64)
        y2 = y.reshape(y.shape[0], -1)
        scaler = StandardScaler().fit(y2)
        self.y_ndim_ = y.ndim
        self.y_mean_ = scaler.mean_.astype(np.float32)
        self.y_scale_ = scaler.scale_.astype(np.float32)
        scaled = ((y2.astype(np.float32) - self.y_mean_) / self.y_scale_).astype(np.float32)
        return super().fit(X, scaled, **fit_params)

    def predict(self, X):
        """Predictions in the units (and 1-d/2-d shape) of the ``y`` given to ``fit``."""
        out = np.asarray(super().predict(X)).reshape(-1, self.y_mean_.shape[0])
        out = out * self.y_scale_ + self.y_mean_
        return out.ravel() if self.y_ndim_ == 1 else out


def module_for(data):
    """The module class and its ``module__*`` parameters, sized from the data.

    ``data.module == "mlp"``: :class:`modal_ally.MLP` (two hidden layers of 256, ReLU)
    with ``input_dim = prod(feature_shape)``; ``"cnn"``:
    :class:`benchmarks.harness.modules.SmallCNN`; ``"resnet18"``:
    :class:`modal_ally.ResNet18Embedding` with ``in_channels = feature_shape[0]``.
    ``output_dim`` is the number of classes, or 1 for regression.
    """
    from modal_ally import MLP, ResNet18Embedding

    output_dim = int(data.n_classes) if data.task == "classification" else 1
    if data.module == "cnn":
        from benchmarks.harness.modules import SmallCNN

        return SmallCNN, {"output_dim": output_dim, "in_channels": int(data.feature_shape[0])}
    if data.module == "resnet18":
        return ResNet18Embedding, {"output_dim": output_dim,
                                   "in_channels": int(data.feature_shape[0])}
    return MLP, {"input_dim": int(np.prod(data.feature_shape)), "output_dim": output_dim}


def _common_params(data, *, epochs, seed, device):
    module, module_kwargs = module_for(data)
    params = dict(module=module, optimizer=torch.optim.Adam, lr=LEARNING_RATE,
                  max_epochs=int(epochs), batch_size=BATCH_SIZE, train_split=None,
                  verbose=0, device=device, random_state=int(seed),
                  **{f"module__{key}": value for key, value in module_kwargs.items()})
    if data.task == "classification":
        params["classes"] = list(range(int(data.n_classes)))
    return params


def build_estimator(arm_or_strategy, data, *, epochs: int, seed: int, device: str = "cpu",
                    **params):
    """A fresh, unfitted estimator for one arm and one seed.

    ALLY arms get :class:`modal_ally.PDCLNet` (:class:`modal_ally.PDCLRegressor` for
    regression); every other strategy gets the same module trained without constraints:
    :class:`PlainNetClassifier` (CrossEntropyLoss) or :class:`PlainNetRegressor`
    (MSELoss, standardized targets). Both use Adam with lr 1e-3, batch size 64,
    ``max_epochs=epochs``, ``train_split=None``, ``verbose=0``, torch seeded with ``seed``
    at every fit, and whole-batch fetching (``dataset=RowDataset`` with
    ``collate_rows``, what PDCL nets use by default). Classifiers are told all
    ``n_classes`` classes, so that an initial set missing a class still has one output
    per class.

    Parameters
    ----------
    arm_or_strategy : Arm or str
    data : benchmarks.harness.datasets.ActiveLearningData
        Anything with ``task``, ``n_classes``, ``module`` and ``feature_shape``.
    epochs, seed : int
    device : str
    **params
        Further estimator parameters; they override the arm's ``estimator_params``.
    """
    from modal_ally import PDCLNet, PDCLRegressor
    from modal_ally.data import RowDataset, collate_rows

    arm = arm_or_strategy if isinstance(arm_or_strategy, Arm) else Arm(
        str(arm_or_strategy), str(arm_or_strategy))
    classification = data.task == "classification"
    common = _common_params(data, epochs=epochs, seed=seed, device=device)
    module = common.pop("module")
    overrides = {**dict(arm.estimator_params), **params}
    if arm.spec.pdcl or "pdcl_class" in overrides:  # a screen may name its own subclass
        cls = overrides.pop("pdcl_class", None) or (
            PDCLNet if classification else PDCLRegressor)
        return cls(module, **{**common, **overrides})
    fast_batches = dict(dataset=RowDataset, iterator_train__collate_fn=collate_rows,
                        iterator_valid__collate_fn=collate_rows,
                        iterator_valid__batch_size=PREDICT_BATCH_SIZE)
    cls, criterion = ((PlainNetClassifier, nn.CrossEntropyLoss) if classification
                      else (PlainNetRegressor, nn.MSELoss))
    return cls(module, criterion=criterion, **{**common, **fast_batches, **overrides})
