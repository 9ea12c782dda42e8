"""The dual heads of a PDCL net: the paper's and the pool's (a mixin of PDCLMixin).

``dual_head_`` is the paper's regression of the multipliers on the embeddings (Elenter et
al., NeurIPS 2022, Algorithm 2), what ``method="paper"`` reads; ``pool_dual_head_`` is
the label-conditional head the default query rule reads (:mod:`modal_ally.dual_head`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ._inference import chunk_size_of, iter_chunks
from ._torch_utils import eval_mode
from ._validation import check_array, check_choice
from .dual_head import DualScaling, fit_dual_head, predict_dual

__all__ = ["DualHeadsMixin"]

#: Where a fit leaves the paper's head's training until the head is first read: the
#: head, the training rows' embeddings and targets and the fit's settings.
_PENDING = "_dual_head_pending"


class DualHeadsMixin:
    """Fitting and reading the dual heads (used by :class:`~modal_ally._pdcl.PDCLMixin`)."""

    def _build_dual_head(self, embedding_dim, prefix="dual_head"):
        kwargs = self.get_params_for(prefix)
        kwargs.setdefault("input_dim", int(embedding_dim))
        return self.initialized_instance(getattr(self, prefix), kwargs).to(self.device)

    # ------------------------------------------------------------------ dual head
    def _fit_dual_head(self, embeddings, targets):
        """Build the paper's head (``dual_head_``) and set its scaling; train it at its
        first use (see :attr:`dual_head_`).

        The paper's head is what ``method="paper"``, the redundancy-aware rule, the
        generative mode, the dual stopping criterion and ``predict_dual`` read; the
        default rule reads the pool head only, so a loop on the default rule never
        pays for this head. Trained when first read, it is the head an immediate
        training gives, bit for bit: the same initial weights (built here, from the same
        random stream), rows, targets, settings and seed.
        """
        if isinstance(self.dual_head, torch.nn.Module):  # an instance trains in place:
            self._settle_dual_head()                     # finish the last fit's first
        self.dual_head_ = self._build_dual_head(embeddings.shape[1])
        settings = dict(epochs=self.dual_head_epochs, lr=self.dual_head_lr,
                        batch_size=self.dual_head_batch_size, seed=self._seed() or 0,
                        device=self.device)
        # no epochs: the targets' scaling (and the warning when every one is 0) now
        scaling = fit_dual_head(self.dual_head_, embeddings, targets,
                                **{**settings, "epochs": 0})
        self.dual_target_mean_, self.dual_target_scale_ = scaling.mean, scaling.scale
        self.dual_head_fitted_ = scaling.fitted
        if scaling.fitted and settings["epochs"]:
            self.__dict__[_PENDING] = (self.__dict__["dual_head_"], embeddings, targets,
                                       settings)

    @property
    def dual_head_(self):
        """The paper's dual head, trained on the last fit's rows at its first read."""
        if "dual_head_" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__} has no dual_head_ before a fit")
        self._settle_dual_head()
        return self.__dict__["dual_head_"]

    @dual_head_.setter
    def dual_head_(self, module):
        self.__dict__.pop(_PENDING, None)
        self.__dict__["dual_head_"] = module

    def _settle_dual_head(self):
        """Train the paper's head now if its training is still due."""
        pending = self.__dict__.pop(_PENDING, None)
        if pending is None or pending[0] is not self.__dict__.get("dual_head_"):
            return
        head, embeddings, targets, settings = pending
        with torch.enable_grad():  # a read under no_grad (predict_dual) trains it too
            fit_dual_head(head, embeddings, targets, **settings)

    def _fit_pool_dual_head(self, embeddings, targets, y):
        """Fit the pool's dual head (``pool_dual_head_``, what ``predict_dual`` and the
        default rule read): a label-conditional head on the rows' labels and predicted
        class probabilities, trained by ``pool_dual_head_epochs`` epochs of
        ``pool_dual_head_batch_size`` rows (None: the paper's head's settings). Without
        one (``pool_dual_head=None``, or a regressor: no classes to condition on) the
        paper's head serves the pool too."""
        if self.pool_dual_head is None or self._class_probabilities(embeddings[:1]) is None:
            self.pool_dual_head_, self.pool_dual_scaling_ = self.dual_head_, self.dual_scaling_
            return
        labels = torch.as_tensor(self._encode_targets(y))
        probs = self._class_probabilities(embeddings)
        epochs, batch = self.pool_dual_head_epochs, self.pool_dual_head_batch_size
        with warnings.catch_warnings():  # the paper's head has said it already
            warnings.simplefilter("ignore")
            self.pool_dual_head_ = self._build_dual_head(embeddings.shape[1],
                                                         "pool_dual_head")
            self.pool_dual_scaling_ = fit_dual_head(
                self.pool_dual_head_, embeddings, targets,
                epochs=self.dual_head_epochs if epochs is None else epochs,
                lr=self.dual_head_lr,
                batch_size=self.dual_head_batch_size if batch is None else batch,
                seed=self._seed() or 0, device=self.device, labels=labels, probs=probs,
                conditional="loss")

    def _class_probabilities(self, embeddings):
        """Softmax of the net's head on embeddings (None for a regressor, and for a
        module split where its last layer is not the end of ``forward``)."""
        if getattr(self, "_task", "classification") == "regression" \
                or getattr(self.module_, "head", None) is None:
            return None  # no classes, or a module whose embedding does not end in its head
        with torch.no_grad(), eval_mode(self.module_) as module:
            block = torch.as_tensor(embeddings).to(self.device)
            logits = module.head(block)
            return torch.softmax(logits.reshape(block.shape[0], -1).float(), dim=1)

    @property
    def dual_scaling_(self) -> DualScaling:
        """How the dual head's output maps to lambda units."""
        return DualScaling(mean=float(self.dual_target_mean_),
                           scale=float(self.dual_target_scale_),
                           fitted=bool(getattr(self, "dual_head_fitted_", False)))

    def predict_dual_from_embeddings(self, embeddings, *, head="pool", probs=None):
        """Predicted multipliers (>= 0, lambda units) for embeddings (numpy or tensor).

        ``head="pool"`` (the default: what the default query rule reads): the
        label-conditional head, each embedding scored by the expectation of its
        per-class multiplier under the net's predicted class probabilities;
        ``head="paper"``: the paper's head (``method="paper"``, :meth:`predict_dual`).
        ``probs``: the embeddings' class probabilities under the net's head, where the
        caller has them already (else computed here). Returns a CPU float tensor of
        shape (n_samples,); zeros when every training multiplier was 0.
        """
        self.check_is_fitted(["lambdas_"])
        check_choice(head, "head", ("pool", "paper"))
        if not getattr(self, "dual_head_fitted_", False):
            return torch.zeros(embeddings.shape[0])
        module, scaling = (self.dual_head_, self.dual_scaling_) if head == "paper" \
            else self._pool_reader()
        return predict_dual(module, embeddings, scaling, chunk_size=chunk_size_of(self),
                            device=self.device, classifier=self._class_probabilities,
                            probs=probs)

    def _pool_reader(self):
        """The pool's head and its scaling (the paper's where none was fitted apart:
        a net fitted before the pool head existed, or ``callbacks__dual_head=None``)."""
        head = getattr(self, "pool_dual_head_", None)
        if head is None:
            return self.dual_head_, self.dual_scaling_
        return head, self.pool_dual_scaling_

    def predict_dual(self, X, *, head="paper"):
        """Predicted dual variable (informativeness) of each row of ``X``.

        ``head="paper"`` (the default, what it always returned): the paper's head, as
        ``method="paper"`` and the dual stopping criterion read it; ``head="pool"``: the
        label-conditional pool head the default query rule reads (see
        :meth:`predict_dual_from_embeddings`). One backbone pass and one dual-head pass
        per chunk of ``chunk_size`` rows.

        Returns
        -------
        scores : numpy.ndarray of shape (n_samples,), float32, >= 0
        """
        self.check_is_fitted(["lambdas_"])
        check_choice(head, "head", ("pool", "paper"))
        X = check_array(X, name="X", n_features=self.feature_shape_)
        parts = []
        with torch.no_grad(), eval_mode(self.module_) as module:
            for block in iter_chunks(X, chunk_size_of(self), self.device):
                parts.append(self.predict_dual_from_embeddings(
                    module.backbone(block).reshape(block.shape[0], -1), head=head))
        return torch.cat(parts).numpy().astype(np.float32)
