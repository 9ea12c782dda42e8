"""PDCLNet and PDCLRegressor: skorch estimators trained by primal-dual constrained learning.

``PDCLNet`` and ``PDCLRegressor`` train a network on the labeled rows under one
constraint per row, ``l'(f(x_i), y_i) <= epsilon_i``, by alternating a primal optimizer
step on the empirical Lagrangian of each minibatch with a projected dual ascent step on
that minibatch's multipliers (Elenter et al., NeurIPS 2022, Algorithm 1). At the end of
every fit a small regression head (``dual_head_``) learns to predict the multipliers from
the frozen backbone's embeddings, so that the query strategies can estimate how
informative an unlabeled sample is. The training logic is :class:`PDCLMixin`
(``modal_ally._pdcl``); this module holds what differs between classification and
regression: the targets.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.utils import to_numpy
from torch import nn

from ._pdcl import PDCLMixin
from ._persistence import PersistenceMixin
from ._validation import check_class_labels

__all__ = ["PDCLNet", "PDCLRegressor"]


def _as_array(y):
    return to_numpy(y) if torch.is_tensor(y) else np.asarray(y)


_PDCL_DOC = """
    Parameters
    ----------
    module : torch.nn.Module class or instance, default None
        Any module. One with ``backbone`` and ``head`` submodules
        (``forward(x) = head(backbone(x))``) is used as such; any other is used as
        it is, its embedding taken at the input of its last ``nn.Linear`` (or at
        ``embedding_layer``), and ``module_.module`` is the module itself. None
        builds :class:`modal_ally.MLP` (two hidden layers of 256, ReLU) from the
        data's shape at the first fit, or at ``initialize()`` when
        ``module__input_dim`` and ``module__output_dim`` are given; a class taking
        ``input_dim``/``output_dim`` gets them from the data too.
    epsilon : float, array of shape (n_rows,), callable or "auto", default {eps}
        Constraint level ``l'(f(x_i), y_i) <= epsilon_i``{eps_unit}. A callable
        ``epsilon(X, y)`` returns the levels of the rows being fitted, at every fit:
        a per-row epsilon that follows modAL's ``teach``. "auto" first trains the
        same network without constraints (one extra fit: it doubles the fit time)
        and sets ``epsilon = auto_epsilon_factor * mean loss``.
    dual_lr : float, default {dual_lr}
        Dual step size ``eta_d``.{dual_lr_note}
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
        Training of the paper's dual head: Adam over every row, in shuffled minibatches
        of ``dual_head_batch_size`` (full batch when the labeled set fits in one). It is
        trained when first read (``method="paper"``, ``predict_dual``, the dual stopping
        criterion, a pickle or ``save_params``), bit for bit as at the end of ``fit``:
        the default rule never reads it, so a loop on the default rule never pays for it.
    pool_dual_head_epochs, pool_dual_head_batch_size : int or None, default None, None
        Training of the pool head (``dual_head_lr`` too); None: the paper's head's
        setting (100 epochs, full batch). Fewer passes fit faster but label worse: 10
        epochs of 256 rows take a fifth of a 1,000-row fit's time off the 26-class task
        and cost 0.0039 AULC on MNIST (b = 200, worse on 4 of 5 seeds;
        docs/scaling.md, "The fit's cost").
    pool_dual_head : torch.nn.Module class or None, default ConditionalDualHead
        The head that scores unlabeled rows (``predict_dual``, the default query
        rule): label-conditional, it predicts the multiplier of a (row, class) pair
        from the embedding and the class's cross-entropy ``-log p_c(x)``, supervised
        at each labeled row's own label, and scores a pool row by the expectation over
        the net's predicted classes, ``sum_c p_c(x) lambda_hat(x, c)``.
        ``pool_dual_head__*`` parameters are routed to it. None (and any regressor,
        which has no classes) scores the pool with the paper's head ``dual_head``,
        which ``method="paper"`` always reads.
    chunk_size : int, default 4096
        Rows per chunk for inference (``predict``, ``embed``, ``predict_dual``).
    embedding_layer : str or None, default None
        For a module without ``backbone``: the name (as in ``named_modules()``) of
        the submodule whose output is the embedding; None takes the input of the
        last ``nn.Linear``.
    slack_cost : float or None, default 0.1
        Resilient constraints (Hounie, Ribeiro and Chamon, NeurIPS 2023): relaxing a
        row's constraint by ``u_i`` costs ``slack_cost / 2 * u_i ** 2``, so a row the
        net cannot satisfy (a wrong label) buys slack instead of weight: its multiplier
        settles at ``slack_cost * max(0, l'_i - epsilon_i)`` instead of growing for as
        long as the row stays violated, and the primal step no longer fits it hardest.
        Without label noise it changes nothing measurable; at 20 % noise it recovers
        what hard constraints lose to an unconstrained net (docs/label-audit.md).
        The multipliers still rank the rows by how long and how far they were violated
        (the label audit reads them). None: hard constraints, the paper's.
    random_state : int, RandomState or None
        Seeds the initialization and the shuffling so a fit is reproducible.
    criterion, optimizer, lr, max_epochs, batch_size, train_split, device, ...
        skorch's parameters. ``train_split`` defaults to None: every labeled row
        is trained on and gets a multiplier (no validation rows are held out). The
        optimizer, Adam by default, runs torch's fused kernel (``optimizer__fused=True``)
        where this torch has it for the parameters' device and no implementation is
        chosen (``optimizer__foreach`` or ``optimizer__fused`` keep the user's choice):
        Adam's update to rounding, an eighth to a fifth of a fit's time less on CPU
        (docs/scaling.md).

    Attributes
    ----------
    lambdas_ : ndarray of shape (n_rows,)
        The multiplier of each row of the X given to the last ``fit``.
    lambdas_mean_ : ndarray of shape (n_rows,)
        Each row's end-of-epoch multiplier averaged over the epochs of the last fit.
    constraint_losses_ : ndarray of shape (n_rows,)
        Each row's constraint loss ``l'_i`` at its last training step.
    relaxations_ : ndarray of shape (n_rows,)
        Each row's relaxation ``u_i = lambda_i / slack_cost`` at the end of training
        (zeros with ``slack_cost=None``).
    epsilon_ : ndarray of shape (n_rows,)
        The constraint level used for each row.
    train_embeddings_ : ndarray of shape (n_rows, embedding_dim)
        Backbone embeddings of the training rows (what strategies need of the
        labeled set, also with modAL's DeepActiveLearner).
    train_targets_ : ndarray of shape (n_rows,) or (n_rows, n_outputs)
        The training rows' labels or targets as the net was given them (what the label
        audit's ``"neighbors"`` score compares when the learner keeps none).
    dual_head_ : torch.nn.Module
        The fitted dual regression head (the paper's).
    pool_dual_head_ : torch.nn.Module
        The fitted head that scores the pool (``dual_head_`` itself when
        ``pool_dual_head`` is None or for a regressor).
    feature_shape_ : tuple
        Per-sample shape of the training inputs.
    history : skorch History
        Per epoch, besides skorch's columns: primal_loss, lagrangian, lambda_mean,
        lambda_max, active_fraction, slack_mean.
    dual_heads_ : DualHeadsState
        The dual heads and the fitted state a query reads, for skorch's persistence:
        ``save_params(f_params=..., f_dual_heads=...)`` and the same keywords to
        ``load_params`` (and ``Checkpoint``/``LoadInitState``); see docs/persistence.md.
        Pickle works too; skops cannot load these nets safely (skorch keeps the modules
        as a pickled blob that skops does not check).
"""


class PDCLNet(PersistenceMixin, PDCLMixin, NeuralNetClassifier):
    __doc__ = """Neural-network classifier trained by primal-dual constrained learning.

    A skorch ``NeuralNetClassifier``: skorch's parameters and methods work as usual.
    Labels may be any sortable values; ``predict`` returns them (``classes_``), and
    ``predict_proba`` has one column per class in ``classes_``.
    """ + _PDCL_DOC.format(eps="0.2", eps_unit=" (nats of cross-entropy)", dual_lr="0.05",
                         dual_lr_note="")

    _target_state = ("classes_inferred_",)

    def __init__(self, module=None, *, criterion=nn.CrossEntropyLoss, epsilon=0.2,
                 **kwargs):
        super().__init__(module, criterion=criterion, epsilon=epsilon, **kwargs)

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
        y = _as_array(y)
        return np.searchsorted(np.asarray(self.classes_), y).astype(np.int64)

    def predict(self, X):
        """Class labels (values of ``classes_``) of the rows of ``X``."""
        proba = self.predict_proba(X)  # first: it says so if the net is not fitted
        if self.classes is None and not hasattr(self, "classes_inferred_"):
            raise NotFittedError(
                f"This {type(self).__name__} does not know its classes: fit it, pass "
                "classes=, or load them with load_params(f_dual_heads=...)")
        return np.asarray(self.classes_)[proba.argmax(axis=1)]


class PDCLRegressor(PersistenceMixin, PDCLMixin, NeuralNetRegressor):
    __doc__ = """Neural-network regressor trained by primal-dual constrained learning.

    Targets are standardized inside the estimator (``y_mean_``, ``y_scale_``), so that
    ``epsilon`` is on the scale of the target variance; ``predict`` returns values in
    the user's units, shaped like the ``y`` given to ``fit``.
    """ + _PDCL_DOC.format(
        eps="0.1", eps_unit=" (MSE on standardized targets: 0.1 of the target variance)",
        dual_lr="0.005", dual_lr_note=(
            " Smaller than the classifier's 0.05: the primal minimizes\n"
            "        ``mean((1 + lambda_i) l_i)``, and on noisy targets large multipliers\n"
            "        fit the noise. On Parkinsons and diabetes, against an unconstrained net\n"
            "        on the same rows, the test MSE is 7-16 % higher at 0.05 and -2 to +5 % at\n"
            "        0.005, while the predicted multipliers rank the pool's losses no worse\n"
            "        (``python -m benchmarks.research.dual_step``; ALLY's selection reads only\n"
            "        that ranking)."))

    _task = "regression"
    _target_state = ("y_ndim_", "n_outputs_", "y_mean_", "y_scale_")

    def __init__(self, module=None, *, criterion=nn.MSELoss, epsilon=0.1, dual_lr=0.005,
                 **kwargs):
        super().__init__(module, criterion=criterion, epsilon=epsilon, dual_lr=dual_lr,
                         **kwargs)

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
        y = _as_array(y)
        y = y.reshape(y.shape[0], -1).astype(np.float32)
        return (y - self.y_mean_) / self.y_scale_

    def predict(self, X):
        """Predictions in the units of the ``y`` given to ``fit``."""
        out = self.predict_proba(X)  # first: it says so if the net is not fitted
        if not hasattr(self, "y_mean_"):
            raise NotFittedError(
                f"This {type(self).__name__} does not know its targets' standardization: "
                "fit it, or load it with load_params(f_dual_heads=...)")
        out = out.reshape(-1, self.n_outputs_)
        out = out * self.y_scale_ + self.y_mean_
        return out.ravel() if self.y_ndim_ == 1 else out
