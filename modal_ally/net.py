"""Primal-dual constrained learning (PDCL) on top of skorch.

``PDCLNet`` and ``PDCLRegressor`` train a network on the labeled rows under one
constraint per row, ``l'(f(x_i), y_i) <= epsilon_i``, by alternating a primal optimizer
step on the empirical Lagrangian of each minibatch with a projected dual ascent step on
that minibatch's multipliers (Elenter et al., NeurIPS 2022, Algorithm 1). At the end of
every fit a small regression head (``dual_head_``) learns to predict the multipliers from
the frozen backbone's embeddings, so that the query strategies can estimate how
informative an unlabeled sample is.
"""

from __future__ import annotations

import inspect
import math
import numbers
import time
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import check_random_state
from skorch import NeuralNet, NeuralNetClassifier, NeuralNetRegressor
from skorch.utils import is_dataset, to_device, to_tensor
from torch import nn

from ._coerce import as_numeric, check_class_labels, check_option
from ._epsilon import check_epsilon, per_row_epsilon
from ._guard import NonFiniteGuard, restore_on_error
from ._inference import chunk_size_of, embed, iter_chunks, map_chunks, module_in_eval
from ._split import SplitModule, as_backbone_head, check_embedding_layer
from ._validation import check_array, check_choice, is_tensor
from .data import RowDataset, collate_rows
from .modules import MLP, DualHead

__all__ = ["PDCLMixin", "PDCLNet", "PDCLRegressor"]


class PDCLMixin:
    """Primal-dual constrained learning for a skorch net (classifier or regressor).

    Not used alone: see :class:`PDCLNet` and :class:`PDCLRegressor`.
    """

    _task = "classification"

    def _pdcl_init(self, *, epsilon, dual_lr, dual_lr_schedule, constraint_loss,
                   auto_epsilon_factor, dual_head, dual_head_epochs, dual_head_lr,
                   dual_head_batch_size, chunk_size, embedding_layer, random_state):
        self.embedding_layer = embedding_layer
        self.epsilon = epsilon
        self.dual_lr = dual_lr
        self.dual_lr_schedule = dual_lr_schedule
        self.constraint_loss = constraint_loss
        self.auto_epsilon_factor = auto_epsilon_factor
        self.dual_head = dual_head
        self.dual_head_epochs = dual_head_epochs
        self.dual_head_lr = dual_head_lr
        self.dual_head_batch_size = dual_head_batch_size
        self.chunk_size = chunk_size
        self.random_state = random_state

    # The dual head is trained after PDCL, apart from the primal optimizer: a known
    # prefix routes ``dual_head__*`` parameters to it without registering it among the
    # modules skorch trains and switches between train and eval mode at every batch;
    # as a CUDA-dependent attribute it pickles like ``module_``.
    prefixes_ = NeuralNet.prefixes_ + ["dual_head"]
    cuda_dependent_attributes_ = NeuralNet.cuda_dependent_attributes_ + ["dual_head_"]

    # ------------------------------------------------------------------ set-up
    def initialize(self):
        self._check_params()
        if self.module in (None, MLP) and getattr(self, "feature_shape_", None) is None:
            # the default MLP is sized from the data: built at the first fit (modAL's
            # DeepActiveLearner calls initialize() before it has seen any data)
            return self
        seed = self._seed()
        if seed is not None:
            torch.manual_seed(seed)
        self._dual_reset_pending = True
        return super().initialize()

    def initialize_module(self):
        """Build the network (the default MLP sized from the data) and the dual head."""
        kwargs = self.get_params_for("module")
        module = MLP if self.module is None else self.module
        shape = getattr(self, "feature_shape_", None)
        if isinstance(module, type) and shape is not None:
            accepted = inspect.signature(module).parameters
            inferred = {"input_dim": int(np.prod(shape)), "output_dim": self._n_outputs()}
            if len(shape) == 3 and "in_channels" in accepted:
                inferred["in_channels"] = int(shape[0])
            for key, value in inferred.items():
                if key in accepted and key not in kwargs:
                    kwargs[key] = value
        # a plain module is split at the input of its last nn.Linear (or at
        # embedding_layer); the dual head is built at the end of fit, from the size of
        # the embeddings it sees
        self.module_ = as_backbone_head(self.initialized_instance(module, kwargs),
                                        self.embedding_layer)
        return self

    def _build_dual_head(self, embedding_dim):
        kwargs = self.get_params_for("dual_head")
        kwargs.setdefault("input_dim", int(embedding_dim))
        return self.initialized_instance(self.dual_head, kwargs).to(self.device)

    def initialize_criterion(self):
        kwargs = self.get_params_for("criterion")
        if isinstance(self.criterion, type):
            kwargs.setdefault("reduction", "none")
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    def _check_params(self):
        check_epsilon(self.epsilon)
        for name, minimum, exclusive in (("lr", 0, True), ("dual_lr", 0, False),
                                         ("dual_head_lr", 0, True)):
            try:
                check_option(getattr(self, name), name, kind="real", minimum=minimum,
                             exclusive=exclusive)
            except TypeError as exc:  # e.g. a string: still a bad value
                raise ValueError(str(exc)) from None
        check_option(self.chunk_size, "chunk_size", minimum=1)
        check_option(self.dual_head_epochs, "dual_head_epochs", minimum=0)
        check_option(self.dual_head_batch_size, "dual_head_batch_size", minimum=1)
        check_embedding_layer(self.embedding_layer)
        if not callable(self.dual_lr_schedule):
            check_choice(self.dual_lr_schedule, "dual_lr_schedule", {"constant", "sqrt"})
        if self.constraint_loss is not None and not callable(self.constraint_loss):
            raise TypeError("constraint_loss must be None or a callable "
                            "(y_pred, y_true) -> per-sample losses")
        if not isinstance(self.auto_epsilon_factor, numbers.Real) \
                or not (1.0 <= float(self.auto_epsilon_factor) <= 10.0):
            raise ValueError("auto_epsilon_factor must be in [1, 10], got "
                             f"{self.auto_epsilon_factor!r} (the paper finds 1.05-1.25 works)")
        if self.device is not None and str(self.device).startswith("cuda") \
                and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} was requested but CUDA is not "
                             "available on this machine; use device='cpu'")

    def _seed(self):
        if self.random_state is None:
            return None
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(2**31 - 1))

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, **fit_params):
        """Initialize the network and train it by PDCL on all rows of ``X``.

        Every call starts from a fresh network, optimizer and ``lambda = 0`` (unless
        ``warm_start=True``). After training, ``lambdas_`` holds one multiplier per
        row of ``X`` and the dual head is fitted on the training embeddings.
        Invalid input raises before anything is changed.
        """
        with restore_on_error(self):
            X, y = self._validate_fit_data(X, y, reset=True)
            self._validated = True
            try:
                return super().fit(X, y, **fit_params)
            finally:
                self._validated = False

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Continue training (warm start).

        The multipliers continue from the previous call when ``X`` has as many rows as
        the last fit, and start again at 0 otherwise (a multiplier belongs to a row).
        """
        with restore_on_error(self):
            if not getattr(self, "_validated", False):
                X, y = self._validate_fit_data(X, y, reset=not self.initialized_)
            super().partial_fit(X, y, classes=classes, **fit_params)
            self._finalize_dual(X)
        return self

    def set_params(self, **kwargs):
        """skorch's ``set_params``; ``dual_head_lr`` and its siblings are parameters of
        their own, which skorch would take for ``dual_head__*`` with a missing ``_``."""
        own = {key: kwargs.pop(key) for key in
               ("dual_head_epochs", "dual_head_lr", "dual_head_batch_size") if key in kwargs}
        super().set_params(**kwargs)
        for key, value in own.items():
            setattr(self, key, value)
        return self

    @property
    def _default_callbacks(self):
        return [*super()._default_callbacks, ("non_finite_guard", NonFiniteGuard())]

    def _validate_fit_data(self, X, y, *, reset):
        self._check_params()
        if is_dataset(X):
            raise TypeError(f"{type(self).__name__} needs X as a numpy array or a torch "
                            "tensor (one multiplier per row), not a Dataset")
        previous = None if reset else getattr(self, "feature_shape_", None)
        X = check_array(X, name="X", n_features=previous)
        if y is None:
            raise ValueError("y is required: PDCL learns from labeled rows")
        y = y.detach().cpu().numpy() if is_tensor(y) else np.asarray(as_numeric(y, name="y"))
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
        epsilon_rows = None if isinstance(self.epsilon, str) else \
            per_row_epsilon(self.epsilon, X, y)
        targets = self._check_targets(y, reset=reset)
        self._epsilon_rows = epsilon_rows
        # validated: from here on the estimator may change
        self.feature_shape_ = tuple(X.shape[1:])
        self._set_target_state(targets, reset=reset)
        return X, y

    def check_data(self, X, y=None):
        super().check_data(X, y)
        if isinstance(self.module_, SplitModule) and hasattr(X, "shape"):
            # which part of a plain module is the head: checked on two real rows
            sample = X[:2] if is_tensor(X) else torch.from_numpy(np.ascontiguousarray(X[:2]))
            self.module_.check_split(sample.to(self.device))
        n = X.shape[0]
        reset = getattr(self, "_dual_reset_pending", True) or \
            getattr(self, "lambdas_", np.empty(0)).shape[0] != n
        if reset:
            self.epsilon_ = self._resolve_epsilon(X, y)
            start = np.zeros(n, dtype=np.float32)
        else:
            start = self.lambdas_
        self._dual_reset_pending = False
        self._lambda_t = torch.as_tensor(start, device=self.device).clone()
        self._eps_t = torch.as_tensor(self.epsilon_, device=self.device)
        uniform = self.epsilon_.size and bool((self.epsilon_ == self.epsilon_[0]).all())
        self._eps_scalar = float(self.epsilon_[0]) if uniform else None
        self._lprime_t = torch.full((n,), float("nan"), device=self.device)
        self._primal_sum = torch.zeros((), device=self.device)
        # a slot filled by get_loss and emptied by train_step (assigning attributes of a
        # skorch net goes through its __setattr__, which costs more than the dual step)
        self._pending_dual = [None]

    def _resolve_epsilon(self, X, y):
        n = X.shape[0]
        if isinstance(self.epsilon, str):  # "auto"
            start = time.perf_counter()
            reference = clone(self).set_params(epsilon=0.0, dual_lr=0.0)
            reference._skip_dual_head = True
            reference.fit(X, y)
            self.auto_epsilon_reference_loss_ = float(
                np.mean(reference.per_sample_loss(X, y)))
            self.auto_epsilon_fit_time_ = time.perf_counter() - start
            value = self.auto_epsilon_factor * self.auto_epsilon_reference_loss_
            return np.full(n, value, dtype=np.float32)
        rows = self.__dict__.pop("_epsilon_rows", None)
        if rows is None or rows.shape[0] != n:  # validated for these rows by fit
            rows = per_row_epsilon(self.epsilon, X, y)
        return rows

    def get_dataset(self, X, y=None):
        if y is None or is_dataset(X):
            return super().get_dataset(X, y)
        return RowDataset(X, self._encode_targets(y), with_index=True)

    def infer(self, x, **fit_params):
        if isinstance(x, Mapping) and "sample_index" in x:
            x = x["X"]
        return super().infer(x, **fit_params)

    def _per_sample(self, losses, y_pred):
        losses = losses.reshape(losses.shape[0], -1).mean(dim=1) if losses.dim() > 1 else losses
        if losses.dim() != 1 or losses.shape[0] != y_pred.shape[0]:
            raise ValueError(
                "the criterion must return one loss per sample: use reduction='none' "
                f"(got a loss of shape {tuple(losses.shape)})")
        return losses

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Per-sample objective ``l``; in training, the minibatch Lagrangian
        ``mean(l_i + lambda_i * (l'_i - epsilon_i))``."""
        if not torch.is_tensor(y_true) or y_true.device != y_pred.device:
            y_true = to_tensor(y_true, device=self.device)
        if isinstance(self.criterion_, nn.NLLLoss):  # skorch takes the log of probabilities
            losses = super().get_loss(y_pred, y_true, X=X, training=training)
        else:
            losses = self.criterion_(y_pred, y_true)
        losses = self._per_sample(losses, y_pred)
        if not (training and isinstance(X, Mapping) and "sample_index" in X):
            return losses.mean()
        index = X["sample_index"].to(self._lambda_t.device, non_blocking=True)
        lam = self._lambda_t[index]  # a copy: the dual step may update it in place
        # a scalar epsilon (the default) needs no per-row gather
        eps = self._eps_scalar if self._eps_scalar is not None else self._eps_t[index]
        if self.constraint_loss is None:
            # l' = l: the same Lagrangian with one product in the graph
            constraint = losses
            penalty = lam.sum() * eps if self._eps_scalar is not None else torch.dot(lam, eps)
            lagrangian = (torch.dot(1.0 + lam, losses) - penalty) / losses.shape[0]
        else:
            constraint = self._per_sample(self.constraint_loss(y_pred, y_true), y_pred)
            lagrangian = (losses + lam * (constraint - eps)).mean()
        self._pending_dual[0] = (index, lam, eps, constraint.detach(),
                                 None if self.constraint_loss is None else losses.detach())
        return lagrangian

    def train_step(self, batch, **fit_params):
        """One primal step (skorch's), then the dual step for this minibatch's rows."""
        step = super().train_step(batch, **fit_params)
        pending = self._pending_dual[0]
        if pending is not None:
            index, lam, eps, constraint, losses = pending
            self._pending_dual[0] = None
            with torch.no_grad():
                step_size = self._dual_step_size()
                # lambda_B <- max(0, lambda_B + eta (l'_B - eps_B)), on the gathered copy
                lam.add_(constraint, alpha=step_size).sub_(step_size * eps).clamp_(min=0)
                self._lambda_t[index] = lam
                self._lprime_t[index] = constraint
                if losses is not None:  # l' != l: the objective needs its own sum
                    self._primal_sum += losses.sum()
        return step

    def on_epoch_end(self, net, **kwargs):
        """Write the epoch's dual state to ``history``.

        Columns: ``primal_loss`` (mean objective loss), ``lagrangian`` (mean minibatch
        Lagrangian, what the primal step descends), ``lambda_mean``, ``lambda_max``,
        ``active_fraction`` (share of rows with lambda > 0) and ``slack_mean`` (mean of
        ``epsilon_i - l'_i`` over the rows' latest losses: negative means the
        constraints are violated on average).
        """
        super().on_epoch_end(net, **kwargs)
        primal = getattr(self, "_primal_sum", None)
        batches = [b for b in self.history[-1]["batches"] if "train_loss" in b]
        if primal is None or not batches:
            return
        sizes = np.array([b["train_batch_size"] for b in batches], dtype=float)
        lagrangian = np.array([b["train_loss"] for b in batches], dtype=float)
        if self.constraint_loss is None:
            # l' = l: every row's loss of this epoch is in _lprime_t
            primal_loss = float(torch.nanmean(self._lprime_t))
        else:
            primal_loss = float(primal) / sizes.sum()
        self.history.record("primal_loss", primal_loss)
        self.history.record("lagrangian", float(lagrangian @ sizes / sizes.sum()))
        primal.zero_()
        for name, value in self.dual_summary().items():
            self.history.record(name, value)

    def _dual_step_size(self):
        if self.dual_lr_schedule == "constant":
            return self.dual_lr
        epoch = max(len(self.history), 1)
        if callable(self.dual_lr_schedule):
            return float(self.dual_lr_schedule(epoch))
        if self.dual_lr_schedule == "sqrt":
            return self.dual_lr / math.sqrt(epoch)
        return self.dual_lr

    def dual_summary(self):
        """Statistics of the current multipliers (recorded in ``history`` every epoch)."""
        lam = self._lambda_t if hasattr(self, "_lambda_t") else torch.as_tensor(self.lambdas_)
        slack = self._eps_t - self._lprime_t if hasattr(self, "_lprime_t") \
            else torch.full_like(lam, float("nan"))
        return {
            "lambda_mean": float(lam.mean()),
            "lambda_max": float(lam.max()),
            "active_fraction": float((lam > 0).float().mean()),
            "slack_mean": float(torch.nanmean(slack)) if bool(torch.isfinite(slack).any())
            else float("nan"),
        }

    # ------------------------------------------------------------------ dual head
    def _finalize_dual(self, X):
        self.lambdas_ = self._lambda_t.detach().cpu().numpy().astype(np.float32)
        if getattr(self, "_skip_dual_head", False):
            return
        embeddings = embed(self, X, as_numpy=False)
        if not bool(torch.isfinite(embeddings).all()):
            raise ValueError(
                "the backbone's embeddings of the training rows are NaN or infinite: the "
                "inputs are too large for the network (standardize them) or the training "
                "diverged; the estimator was left as it was before this fit")
        self.train_embeddings_ = embeddings.numpy()
        self._fit_dual_head(embeddings, torch.as_tensor(self.lambdas_))

    def _fit_dual_head(self, embeddings, targets):
        """Regress the multipliers on the frozen training embeddings.

        Every row is used (shuffled minibatches of ``dual_head_batch_size`` rows, the
        whole set at once when it fits); inputs and targets are standardized.
        """
        self.dual_head_ = self._build_dual_head(embeddings.shape[1])
        targets = targets.float()
        self.dual_target_mean_ = float(targets.mean())
        std = float(targets.std()) if targets.numel() > 1 else 0.0
        self.dual_target_scale_ = std if std > 0 else 1.0
        if float(targets.max()) <= 0:
            self.dual_head_fitted_ = False
            warnings.warn(
                "every dual variable is 0: epsilon is above every per-sample loss, so no "
                "training row is informative for the constraints; predict_dual returns 0 "
                "and the ALLY strategies fall back to diversity alone (lower epsilon to "
                "get an informativeness signal)", UserWarning, stacklevel=4)
            return
        inputs = embeddings.to(self.device)
        scaled = ((targets - self.dual_target_mean_) / self.dual_target_scale_).to(self.device)
        self.dual_head_.set_input_scaling(inputs)
        optimizer = torch.optim.Adam(self.dual_head_.parameters(), lr=self.dual_head_lr)
        n = inputs.shape[0]
        batch = min(int(self.dual_head_batch_size), n)
        generator = torch.Generator().manual_seed(self._seed() or 0)
        self.dual_head_.train(True)
        for _ in range(int(self.dual_head_epochs)):
            order = torch.randperm(n, generator=generator).to(self.device) if batch < n \
                else None
            for start in range(0, n, batch):
                rows = order[start:start + batch] if order is not None else slice(None)
                loss = nn.functional.mse_loss(self.dual_head_(inputs[rows]), scaled[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.dual_head_.train(False)
        self.dual_head_fitted_ = True

    @torch.no_grad()
    def predict_dual_from_embeddings(self, embeddings):
        """Predicted multipliers (>= 0, lambda units) for embeddings (numpy or tensor).

        Returns a CPU float tensor of shape (n_samples,); zeros when every training
        multiplier was 0.
        """
        self.check_is_fitted(["lambdas_"])
        n = embeddings.shape[0]
        if not getattr(self, "dual_head_fitted_", False):
            return torch.zeros(n)
        self.dual_head_.train(False)
        out = map_chunks(self.dual_head_, embeddings, chunk_size=chunk_size_of(self),
                         device=self.device)
        return (out.float() * self.dual_target_scale_ + self.dual_target_mean_).clamp_min(0)

    def embed(self, X):
        """Backbone embeddings of ``X``, shape (n_samples, embedding_dim), float32."""
        self.check_is_fitted(["lambdas_"])
        return embed(self, X)

    def predict_dual(self, X):
        """Predicted dual variable (informativeness) of each row of ``X``.

        One backbone pass and one dual-head pass per chunk of ``chunk_size`` rows.

        Returns
        -------
        scores : numpy.ndarray of shape (n_samples,), float32, >= 0
        """
        self.check_is_fitted(["lambdas_"])
        X = check_array(X, name="X", n_features=self.feature_shape_)
        parts = []
        with module_in_eval(self) as module:
            for block in iter_chunks(X, chunk_size_of(self), self.device):
                with torch.no_grad():
                    parts.append(self.predict_dual_from_embeddings(
                        module.backbone(block).reshape(block.shape[0], -1)))
        return torch.cat(parts).numpy().astype(np.float32)

    def per_sample_loss(self, X, y):
        """Per-sample objective loss ``l(f(x_i), y_i)`` in eval mode."""
        X = check_array(X, name="X", n_features=self.feature_shape_)
        y = self._encode_targets(np.asarray(y))
        out = []
        for y_pred, start in zip(self.forward_iter(X, device=self.device),
                                 range(0, X.shape[0], chunk_size_of(self))):
            y_true = to_tensor(y[start:start + y_pred.shape[0]], device=self.device)
            with torch.no_grad():
                losses = super().get_loss(y_pred, y_true)
            out.append(self._per_sample(losses, y_pred).cpu())
        return torch.cat(out).numpy()

    # ------------------------------------------------------------------ inference
    def forward_iter(self, X, training=False, device="cpu"):
        """skorch's ``forward_iter`` with a fast path for arrays and tensors: row
        slices of ``chunk_size`` instead of a per-sample DataLoader."""
        X = as_numeric(X)  # lists and DataFrames of numbers as arrays
        if not (isinstance(X, np.ndarray) or is_tensor(X)):
            yield from super().forward_iter(X, training=training, device=device)
            return
        self.check_is_fitted()
        X = check_array(X, name="X", n_features=getattr(self, "feature_shape_", None))
        for block in iter_chunks(X, chunk_size_of(self), self.device):
            with torch.set_grad_enabled(training):
                self._set_training(training)
                y_pred = self.infer(block)
            yield to_device(y_pred, device=device)

    def __getstate__(self):
        state = super().__getstate__()
        for key in ("_lambda_t", "_eps_t", "_lprime_t", "_pending_dual", "_primal_sum"):
            state.pop(key, None)
        return state


def _with_row_batches(kwargs):
    """Default to whole-batch fetching (``RowDataset``) unless the user chose otherwise."""
    kwargs = dict(kwargs)
    kwargs.setdefault("iterator_train__collate_fn", collate_rows)
    kwargs.setdefault("iterator_valid__collate_fn", collate_rows)
    return kwargs


_PDCL_DOC = """
    Parameters
    ----------
    module : torch.nn.Module class or instance, default None
        A module with ``backbone`` and ``head`` submodules,
        ``forward(x) = head(backbone(x))``. None builds :class:`modal_ally.MLP`
        (two hidden layers of 256, ReLU) from the data's shape at the first fit;
        a class taking ``input_dim``/``output_dim`` gets them from the data too.
    epsilon : float, array of shape (n_rows,), or "auto", default {eps}
        Constraint level ``l'(f(x_i), y_i) <= epsilon_i``{eps_unit}. "auto" first
        trains the same network without constraints (one extra fit: it doubles the
        fit time) and sets ``epsilon = auto_epsilon_factor * mean loss``.
    dual_lr : float, default 0.05
        Dual step size ``eta_d``.
    dual_lr_schedule : "constant", "sqrt" or callable, default "constant"
        "sqrt" uses ``dual_lr / sqrt(epoch)``; a callable maps the epoch (from 1)
        to the step size.
    constraint_loss : callable or None, default None
        ``l'(y_pred, y_true) -> per-sample losses``; None uses the criterion.
    auto_epsilon_factor : float, default 1.1
        Multiplier of the unconstrained loss for ``epsilon="auto"`` (the paper's
        ablation finds 1.05-1.25 works).
    dual_head : torch.nn.Module class, default DualHead
        The regression of multipliers on embeddings; ``dual_head__hidden_units``
        and other ``dual_head__*`` parameters are routed to it.
    dual_head_epochs, dual_head_lr, dual_head_batch_size : int, float, int, default 100, 5e-3, 4096
        Training of the dual head: Adam over every row, in shuffled minibatches of
        ``dual_head_batch_size`` (full batch when the labeled set fits in one).
    chunk_size : int, default 4096
        Rows per chunk for inference (``predict``, ``embed``, ``predict_dual``).
    random_state : int, RandomState or None
        Seeds the initialization and the shuffling so a fit is reproducible.
    criterion, optimizer, lr, max_epochs, batch_size, train_split, device, ...
        skorch's parameters. ``train_split`` defaults to None: every labeled row
        is trained on and gets a multiplier (no validation rows are held out).

    Attributes
    ----------
    lambdas_ : ndarray of shape (n_rows,)
        The multiplier of each row of the X given to the last ``fit``.
    epsilon_ : ndarray of shape (n_rows,)
        The constraint level used for each row.
    train_embeddings_ : ndarray of shape (n_rows, embedding_dim)
        Backbone embeddings of the training rows (what strategies need of the
        labeled set, also with modAL's DeepActiveLearner).
    dual_head_ : torch.nn.Module
        The fitted dual regression head.
    feature_shape_ : tuple
        Per-sample shape of the training inputs.
    history : skorch History
        Per epoch, besides skorch's columns: primal_loss, lagrangian, lambda_mean,
        lambda_max, active_fraction, slack_mean.
"""


class PDCLNet(PDCLMixin, NeuralNetClassifier):
    __doc__ = """Neural-network classifier trained by primal-dual constrained learning.

    A skorch ``NeuralNetClassifier``: skorch's parameters and methods work as usual.
    Labels may be any sortable values; ``predict`` returns them (``classes_``), and
    ``predict_proba`` has one column per class in ``classes_``.
    """ + _PDCL_DOC.format(eps="0.2", eps_unit=" (nats of cross-entropy)")

    def __init__(self, module=None, *, criterion=nn.CrossEntropyLoss,
                 optimizer=torch.optim.Adam, lr=1e-3, max_epochs=50, batch_size=64,
                 train_split=None, verbose=0, epsilon=0.2, dual_lr=0.05,
                 dual_lr_schedule="constant", constraint_loss=None,
                 auto_epsilon_factor=1.1, dual_head=DualHead, dual_head_epochs=100,
                 dual_head_lr=5e-3, dual_head_batch_size=4096, chunk_size=4096,
                 embedding_layer=None, random_state=None, **kwargs):
        super().__init__(module, criterion=criterion, optimizer=optimizer, lr=lr,
                         max_epochs=max_epochs, batch_size=batch_size,
                         train_split=train_split, verbose=verbose,
                         **_with_row_batches(kwargs))
        self._pdcl_init(epsilon=epsilon, dual_lr=dual_lr,
                        dual_lr_schedule=dual_lr_schedule, constraint_loss=constraint_loss,
                        auto_epsilon_factor=auto_epsilon_factor, dual_head=dual_head,
                        dual_head_epochs=dual_head_epochs, dual_head_lr=dual_head_lr,
                        dual_head_batch_size=dual_head_batch_size, chunk_size=chunk_size,
                        embedding_layer=embedding_layer, random_state=random_state)

    def _check_targets(self, y, *, reset):
        if y.ndim != 1:
            raise ValueError(f"y must be 1-dimensional (one label per row), got shape {y.shape}")
        labels = check_class_labels(y)
        known = self.classes if self.classes is not None else (
            None if reset else getattr(self, "classes_inferred_", None))
        if known is not None:
            unknown = np.setdiff1d(labels, np.asarray(known))
            if unknown.size:
                raise ValueError(
                    f"y contains labels {unknown.tolist()} not among the classes "
                    f"{np.asarray(known).tolist()} the net was set up for; call fit "
                    "(not partial_fit) or pass classes=")
        return labels

    def _set_target_state(self, labels, *, reset):
        if reset or not hasattr(self, "classes_inferred_"):
            self.classes_inferred_ = labels

    def check_data(self, X, y=None):
        # the classes were settled when the data was validated (a partial_fit on a
        # subset of the classes must not shrink them)
        classes = self.classes_inferred_
        super().check_data(X, y)
        self.classes_inferred_ = classes

    def _n_outputs(self):
        return len(self.classes_)

    def _encode_targets(self, y):
        y = y.detach().cpu().numpy() if is_tensor(y) else np.asarray(y)
        return np.searchsorted(np.asarray(self.classes_), y).astype(np.int64)

    def predict(self, X):
        """Class labels (values of ``classes_``) of the rows of ``X``."""
        proba = self.predict_proba(X)  # first: says so if the net is not fitted
        return np.asarray(self.classes_)[proba.argmax(axis=1)]


class PDCLRegressor(PDCLMixin, NeuralNetRegressor):
    __doc__ = """Neural-network regressor trained by primal-dual constrained learning.

    Targets are standardized inside the estimator (``y_mean_``, ``y_scale_``), so that
    ``epsilon`` is on the scale of the target variance; ``predict`` returns values in
    the user's units, shaped like the ``y`` given to ``fit``.
    """ + _PDCL_DOC.format(eps="0.1", eps_unit=" (MSE on standardized targets: 0.1 of "
                           "the target variance)")

    _task = "regression"

    def __init__(self, module=None, *, criterion=nn.MSELoss, optimizer=torch.optim.Adam,
                 lr=1e-3, max_epochs=50, batch_size=64, train_split=None, verbose=0,
                 epsilon=0.1, dual_lr=0.05, dual_lr_schedule="constant",
                 constraint_loss=None, auto_epsilon_factor=1.1, dual_head=DualHead,
                 dual_head_epochs=100, dual_head_lr=5e-3, dual_head_batch_size=4096,
                 chunk_size=4096, embedding_layer=None, random_state=None, **kwargs):
        super().__init__(module, criterion=criterion, optimizer=optimizer, lr=lr,
                         max_epochs=max_epochs, batch_size=batch_size,
                         train_split=train_split, verbose=verbose,
                         **_with_row_batches(kwargs))
        self._pdcl_init(epsilon=epsilon, dual_lr=dual_lr,
                        dual_lr_schedule=dual_lr_schedule, constraint_loss=constraint_loss,
                        auto_epsilon_factor=auto_epsilon_factor, dual_head=dual_head,
                        dual_head_epochs=dual_head_epochs, dual_head_lr=dual_head_lr,
                        dual_head_batch_size=dual_head_batch_size, chunk_size=chunk_size,
                        embedding_layer=embedding_layer, random_state=random_state)

    def _check_targets(self, y, *, reset):
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1- or 2-dimensional, got shape {y.shape}")
        if not np.issubdtype(y.dtype, np.number):
            raise TypeError(f"y must be numeric for regression, got dtype {y.dtype}")
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinity")
        width = 1 if y.ndim == 1 else y.shape[1]
        if not reset and width != getattr(self, "n_outputs_", width):
            raise ValueError(f"y has {width} targets but the net was fitted with "
                             f"{self.n_outputs_}")
        return y

    def _set_target_state(self, y, *, reset):
        if reset or not hasattr(self, "y_mean_"):
            y2 = y.reshape(y.shape[0], -1)
            self.y_ndim_ = y.ndim
            self.n_outputs_ = y2.shape[1]
            self.y_mean_ = y2.mean(axis=0).astype(np.float32)
            scale = y2.std(axis=0)
            self.y_scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)

    def _n_outputs(self):
        return self.n_outputs_

    def _encode_targets(self, y):
        y = y.detach().cpu().numpy() if is_tensor(y) else np.asarray(y)
        y = y.reshape(y.shape[0], -1).astype(np.float32)
        return (y - self.y_mean_) / self.y_scale_

    def predict(self, X):
        """Predictions in the units of the ``y`` given to ``fit``."""
        out = self.predict_proba(X).reshape(-1, self.n_outputs_)
        out = out * self.y_scale_ + self.y_mean_
        return out.ravel() if self.y_ndim_ == 1 else out
