"""Primal-dual constrained learning (PDCL) as a skorch mixin.

One constraint per labeled row, ``l'(f(x_i), y_i) <= epsilon_i``: a primal step on the
minibatch Lagrangian, then a projected dual ascent step on its rows' multipliers
(Elenter et al., NeurIPS 2022, Algorithm 1), kept in a :class:`DualState` for one
``fit``; statistics and the dual-head fit are default callbacks."""

from __future__ import annotations

import inspect
import math
import numbers
import time
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.base import clone
from skorch import NeuralNet
from skorch.callbacks import PrintLog
from skorch.utils import is_dataset, to_device, to_numpy, to_tensor
from torch import nn

from ._dual_heads import DualHeadsMixin
from ._dual_state import DualState, dual_summary
from ._guard import restore_on_error
from ._inference import check_sparse_input, chunk_size_of, embed, iter_chunks
from ._pdcl_checks import check_pdcl_params, per_row_epsilon
from ._split import SplitModule, as_backbone_head
from ._torch_utils import as_tensor, with_fused_adam
from ._validation import (
    as_finite_float32,
    as_numeric,
    check_array,
    is_sparse,
    numpy_random_state,
)
from .callbacks import DualHeadFit, DualStatistics, NonFiniteGuard, QuietPrintLog
from .data import RowDataset, collate_rows
from .modules import MLP, ConditionalDualHead, DualHead

_SKORCH_DEFAULTS = dict(optimizer=torch.optim.Adam, lr=1e-3, max_epochs=50, batch_size=64,
                        train_split=None, verbose=0, dataset=RowDataset,
                        iterator_train__collate_fn=collate_rows,
                        iterator_valid__collate_fn=collate_rows)


def _check_fit_params(net, fit_params):
    """skorch hands fit parameters to the module's forward; ``sample_weight`` (what
    scikit-learn users pass) would fail there with a message about ``forward``."""
    if "sample_weight" in fit_params:
        raise TypeError(
            f"{type(net).__name__}.fit does not take sample_weight: PDCL weighs each "
            "labeled row by its own multiplier (lambdas_); to hold some rows to a "
            "tighter or looser loss bound, pass epsilon as an array or a callable of "
            "(X, y) with one bound per row")


class PDCLMixin(DualHeadsMixin):
    """Primal-dual constrained learning for a skorch net (classifier or regressor).

    Not used alone: see :class:`~modal_ally.PDCLNet` and :class:`~modal_ally.PDCLRegressor`.
    Its ``__init__`` stores its own parameters and passes the rest to skorch.
    """

    _pdcl = True
    _task = "classification"
    # The dual head is trained after PDCL, apart from the primal optimizer: a known
    # prefix routes ``dual_head__*`` parameters to it without registering it among the
    # modules skorch trains and switches between train and eval mode at every batch;
    # as a CUDA-dependent attribute it pickles like ``module_``.
    prefixes_ = NeuralNet.prefixes_ + ["dual_head", "pool_dual_head"]
    cuda_dependent_attributes_ = NeuralNet.cuda_dependent_attributes_ + [
        "dual_head_", "pool_dual_head_"]

    def __init__(self, module=None, *, epsilon, dual_lr=0.05, dual_lr_schedule="constant",
                 constraint_loss=None, auto_epsilon_factor=1.1, dual_head=DualHead,
                 dual_head_epochs=100, dual_head_lr=5e-3, dual_head_batch_size=4096,
                 pool_dual_head=ConditionalDualHead, pool_dual_head_epochs=None,
                 pool_dual_head_batch_size=None, chunk_size=4096, embedding_layer=None,
                 slack_cost=0.1, random_state=None, **kwargs):
        super().__init__(module, **{**_SKORCH_DEFAULTS, **kwargs})
        self.epsilon = epsilon
        self.dual_lr = dual_lr
        self.dual_lr_schedule = dual_lr_schedule
        self.constraint_loss = constraint_loss
        self.auto_epsilon_factor = auto_epsilon_factor
        self.dual_head = dual_head
        self.dual_head_epochs = dual_head_epochs
        self.dual_head_lr = dual_head_lr
        self.dual_head_batch_size = dual_head_batch_size
        self.pool_dual_head = pool_dual_head
        self.pool_dual_head_epochs = pool_dual_head_epochs
        self.pool_dual_head_batch_size = pool_dual_head_batch_size
        self.chunk_size = chunk_size
        self.embedding_layer = embedding_layer
        self.slack_cost = slack_cost
        self.random_state = random_state

    @property
    def _default_callbacks(self):
        callbacks = list(super()._default_callbacks)
        names = [name for name, _ in callbacks]
        at = names.index("print_log") if "print_log" in names else len(callbacks)
        rest = [(name, QuietPrintLog() if name == "print_log" and type(cb) is PrintLog
                 else cb) for name, cb in callbacks[at:]]
        return callbacks[:at] + [("dual_statistics", DualStatistics()),
                                 ("non_finite_guard", NonFiniteGuard()),
                                 ("dual_head", DualHeadFit())] + rest

    def set_params(self, **kwargs):
        """skorch's; ``dual_head_lr`` and its siblings are parameters of their own,
        which skorch would take for ``dual_head__*`` with a missing underscore."""
        own = {key: kwargs.pop(key) for key in
               ("dual_head_epochs", "dual_head_lr", "dual_head_batch_size",
                "pool_dual_head_epochs", "pool_dual_head_batch_size") if key in kwargs}
        super().set_params(**kwargs)
        for key, value in own.items():
            setattr(self, key, value)
        return self

    # ------------------------------------------------------------------ set-up
    def initialize(self):
        check_pdcl_params(self)
        return self._initialize_checked()

    def _initialize_checked(self):
        if self.module in (None, MLP) and getattr(self, "feature_shape_", None) is None \
                and not {"input_dim", "output_dim"} <= set(self.get_params_for("module")):
            # the default MLP is sized from the data: built at the first fit (modAL's
            # DeepActiveLearner calls initialize() before it has seen any data), or
            # now when module__input_dim and module__output_dim are given
            return self
        seed = self._seed()
        if seed is not None:
            torch.manual_seed(seed)
        return super().initialize()

    def get_params_for_optimizer(self, prefix, named_parameters):
        """skorch's, with torch's fused Adam kernel where it runs (``with_fused_adam``)."""
        args, kwargs = super().get_params_for_optimizer(prefix, named_parameters)
        return args, with_fused_adam(self.optimizer, args, kwargs) if prefix == "optimizer" \
            else kwargs

    def initialize_module(self):
        """Build the network (the default MLP sized from the data; a plain module split
        by ``as_backbone_head``); the dual head is built at the end of fit."""
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
        self.module_ = as_backbone_head(self.initialized_instance(module, kwargs),
                                        self.embedding_layer)
        return self

    def initialize_criterion(self):
        kwargs = self.get_params_for("criterion")
        if isinstance(self.criterion, type):
            kwargs.setdefault("reduction", "none")
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    def _seed(self):
        if self.random_state is None:
            return None
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        return int(numpy_random_state(self.random_state).randint(2**31 - 1))

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, **fit_params):
        """Initialize the network and train it by PDCL on all rows of ``X``.

        Every call starts from a fresh network, optimizer and ``lambda = 0`` (unless
        ``warm_start=True``). After training, ``lambdas_`` holds one multiplier per
        row of ``X`` and the dual head is fitted on the training embeddings.
        Invalid input raises before anything is changed.
        """
        _check_fit_params(self, fit_params)
        with restore_on_error(self):  # a failed fit leaves the estimator as it was
            X, y = self._validate_fit_data(X, y, reset=True)
            if not self.warm_start or not self.initialized_:
                self._initialize_checked()
            return self._train(X, y, reset=True, routing="fit", **fit_params)

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Continue training (warm start).

        The multipliers continue from the previous call when ``X`` has as many rows as
        the last fit, and start again at 0 otherwise (a multiplier belongs to a row).
        """
        _check_fit_params(self, fit_params)
        first = not self.initialized_
        with restore_on_error(self):
            X, y = self._validate_fit_data(X, y, reset=first)
            if first:
                self._initialize_checked()
            return self._train(X, y, reset=first, routing="partial_fit", **fit_params)

    def _validate_fit_data(self, X, y, *, reset):
        check_pdcl_params(self)
        if is_dataset(X):
            raise TypeError(f"{type(self).__name__} needs X as a numpy array or a torch "
                            "tensor (one multiplier per row), not a Dataset")
        previous = None if reset else getattr(self, "feature_shape_", None)
        X = as_finite_float32(check_array(X, name="X", n_features=previous), name="X")
        if y is None:
            raise ValueError("y is required: PDCL learns from labeled rows")
        y = to_numpy(y) if torch.is_tensor(y) else np.asarray(as_numeric(y, name="y"))
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
        self._epsilon_rows = None if isinstance(self.epsilon, str) \
            else per_row_epsilon(self.epsilon, X, y)  # a callable is called once a fit
        targets = self._check_targets(y, reset=reset)
        # validated: from here on the estimator may change
        self.feature_shape_ = tuple(X.shape[1:])
        self._set_target_state(targets, reset=reset)
        return X, y

    def _train(self, X, y, *, reset, routing, **fit_params):
        """Set up the multipliers, run skorch's training loop; the callbacks do the rest."""
        n = X.shape[0]
        previous = getattr(self, "lambdas_", None)
        if reset or previous is None or previous.shape[0] != n:
            self.epsilon_ = self._resolve_epsilon(X, y)
            start = np.zeros(n, dtype=np.float32)
        else:
            start = previous
        self.dual_state_ = DualState(start, self.epsilon_, self.device, self.slack_cost)
        if is_sparse(X):  # the module must read sparse rows as they are
            check_sparse_input(self.module_, X, self.device)
        if isinstance(self.module_, SplitModule):  # is the last nn.Linear the head?
            self.module_.check_split(as_tensor(X[:2]).to(self.device))
        super().partial_fit(X, y, _routing_method=routing, **fit_params)
        return self

    def _resolve_epsilon(self, X, y):
        n = X.shape[0]
        if isinstance(self.epsilon, str):  # "auto": an unconstrained reference fit
            start = time.perf_counter()
            reference = clone(self).set_params(epsilon=0.0, dual_lr=0.0,
                                               callbacks__dual_head=None)
            reference.fit(X, y)
            self.auto_epsilon_reference_loss_ = float(
                np.mean(reference.per_sample_loss(X, y)))
            self.auto_epsilon_fit_time_ = time.perf_counter() - start
            value = self.auto_epsilon_factor * self.auto_epsilon_reference_loss_
            return np.full(n, value, dtype=np.float32)
        rows = self.__dict__.pop("_epsilon_rows", None)
        return rows if rows is not None and rows.shape[0] == n \
            else per_row_epsilon(self.epsilon, X, y)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Export ``lambdas_``, ``lambdas_mean_`` and ``constraint_losses_`` (see the
        estimators' Attributes) before the callbacks' ``on_train_end``."""
        state = self.dual_state_
        for name, value in (("lambdas_", state.lambdas), ("lambdas_mean_", state.mean_lambdas()),
                            ("constraint_losses_", state.latest),
                            ("relaxations_", state.relaxations())):
            setattr(self, name, to_numpy(value).astype(np.float32))

    def get_dataset(self, X, y=None):
        if is_dataset(X):
            return super().get_dataset(X, y)
        kwargs = self.get_params_for("dataset")
        if y is None:
            return self.dataset(X, None, **kwargs)
        return self.dataset(X, self._encode_targets(y), with_index=True, **kwargs)

    def infer(self, x, **fit_params):
        if isinstance(x, Mapping) and "sample_index" in x:
            x = x["X"]
        return super().infer(x, **fit_params)

    # ------------------------------------------------------------------ the PDCL step
    def _per_sample_loss(self, y_pred, y_true, *, criterion=None):
        """Per-sample losses of ``criterion`` (default: the net's), shape (n,)."""
        if criterion is not None:
            losses = criterion(y_pred, y_true)
        elif isinstance(self.criterion_, nn.NLLLoss):  # skorch takes the log of probs
            losses = super().get_loss(y_pred, y_true)
        else:
            losses = self.criterion_(y_pred, y_true)
        losses = losses.reshape(losses.shape[0], -1).mean(dim=1) if losses.dim() > 1 \
            else losses
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
        losses = self._per_sample_loss(y_pred, y_true)
        if not (training and isinstance(X, Mapping) and "sample_index" in X):
            return losses.mean()
        state = self.dual_state_
        index = X["sample_index"].to(state.lambdas.device)
        lam, eps = state.gather(index)
        if self.constraint_loss is None:  # l' = l: one product in the graph
            # the dual step reads these values: kept, not computed a second time
            self._step_values = (index, losses.detach(), None)
            penalty = lam.sum() * eps if state.eps_scalar is not None \
                else torch.dot(lam, eps)
            return (torch.dot(1.0 + lam, losses) - penalty) / losses.shape[0]
        constraint = self._per_sample_loss(y_pred, y_true, criterion=self.constraint_loss)
        self._step_values = (index, constraint.detach(), losses.detach())
        return (losses + lam * (constraint - eps)).mean()

    def train_step_single(self, batch, **fit_params):
        """skorch's step, plus the minibatch's constraint values for the dual step."""
        step = super().train_step_single(batch, **fit_params)
        Xi, yi = batch
        values = self.__dict__.pop("_step_values", None)  # what get_loss computed
        if values is not None:
            step["dual"] = values
        elif isinstance(Xi, Mapping) and "sample_index" in Xi:  # a get_loss of one's own
            with torch.no_grad():
                y_pred = step["y_pred"].detach()
                yi = to_tensor(yi, device=y_pred.device)
                losses = self._per_sample_loss(y_pred, yi)
                constraint = losses if self.constraint_loss is None else \
                    self._per_sample_loss(y_pred, yi, criterion=self.constraint_loss)
            step["dual"] = (Xi["sample_index"].to(self.dual_state_.lambdas.device),
                            constraint, None if self.constraint_loss is None else losses)
        return step

    def train_step(self, batch, **fit_params):
        """One primal step (skorch's), then the dual step for this minibatch's rows."""
        step = super().train_step(batch, **fit_params)
        if "dual" in step:
            index, constraint, losses = step["dual"]
            self.dual_state_.step(index, constraint, self._dual_step_size(), losses)
        return step

    def _dual_step_size(self):
        if self.dual_lr_schedule == "constant":
            return self.dual_lr
        epoch = max(len(self.history), 1)
        if callable(self.dual_lr_schedule):
            return float(self.dual_lr_schedule(epoch))
        return self.dual_lr / math.sqrt(epoch)  # "sqrt"

    def dual_summary(self):
        """Statistics of the current multipliers (recorded in ``history`` every epoch)."""
        state = getattr(self, "dual_state_", None)
        if state is not None:
            return dual_summary(state.lambdas, state.slack())
        lam = torch.as_tensor(self.lambdas_)
        return dual_summary(lam, torch.full_like(lam, float("nan")))

    def embed(self, X):
        """Backbone embeddings of ``X``, shape (n_samples, embedding_dim), float32."""
        self.check_is_fitted(["lambdas_"])
        return embed(self, X)

    def per_sample_loss(self, X, y):
        """Per-sample objective loss ``l(f(x_i), y_i)`` in eval mode."""
        X = check_array(X, name="X", n_features=self.feature_shape_)
        y = self._encode_targets(np.asarray(y))
        out, start = [], 0
        for y_pred in self.forward_iter(X, device=self.device):
            y_true = to_tensor(y[start:start + y_pred.shape[0]], device=self.device)
            start += y_pred.shape[0]
            with torch.no_grad():
                out.append(self._per_sample_loss(y_pred, y_true).cpu())
        return torch.cat(out).numpy()

    # ------------------------------------------------------------------ inference
    def forward_iter(self, X, training=False, device="cpu"):
        """skorch's ``forward_iter`` (each batch through ``evaluation_step``) with row
        slices of ``chunk_size`` for arrays, tensors and scipy.sparse matrices instead
        of a DataLoader."""
        X = as_numeric(X)  # lists and DataFrames of numbers as arrays
        if not (isinstance(X, np.ndarray) or torch.is_tensor(X) or is_sparse(X)):
            yield from super().forward_iter(X, training=training, device=device)
            return
        self.check_is_fitted()
        X = check_array(X, name="X", n_features=getattr(self, "feature_shape_", None))
        for block in iter_chunks(X, chunk_size_of(self), self.device):
            yield to_device(self.evaluation_step((block, None), training=training),
                            device=device)

    def __getstate__(self):
        self._settle_dual_head()  # a pickle holds the trained head, not its inputs
        state = super().__getstate__()
        state.pop("dual_state_", None)
        state.pop("_step_values", None)
        return state
