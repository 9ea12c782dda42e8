"""PyTorch modules following the backbone/head contract.

A module used with modal_ally exposes two submodules, ``backbone`` and ``head``, and
``forward(x) == head(backbone(x))``. ``backbone(x)`` returns the embedding (shape
``(n, embedding_dim)``) that the dual head, the clustering and the baselines work on;
``head`` maps it to logits (classification) or values (regression). Users' modules
follow the same contract.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn


class BackboneHeadModule(nn.Module):
    """Base class: ``forward(x) = head(backbone(x))``."""

    backbone: nn.Module
    head: nn.Module

    def forward(self, X):  # noqa: N803 - skorch passes the input as X
        return self.head(self.backbone(X))


class MLP(BackboneHeadModule):
    """The paper's multilayer perceptron: ``hidden_units`` ReLU layers, then a linear head.

    A torch sparse CSR batch (scipy.sparse rows: text features) goes through as it is:
    the first ``nn.Linear`` multiplies the sparse rows without densifying them.

    Parameters
    ----------
    input_dim : int
        Number of input features (inputs of any trailing shape are flattened).
    output_dim : int
        Number of classes (logits) or regression targets.
    hidden_units : sequence of int, default (256, 256)
        Widths of the hidden layers; the last is the embedding dimension.
    dropout : float, default 0.0
        Dropout after each hidden layer.
    """

    def __init__(self, input_dim: int, output_dim: int,
                 hidden_units: Sequence[int] = (256, 256), dropout: float = 0.0):
        super().__init__()
        if input_dim is None or output_dim is None:
            raise ValueError("MLP needs input_dim and output_dim (PDCLNet sets them "
                             "from the data at the first fit)")
        layers: list[nn.Module] = [nn.Flatten()]
        width = int(input_dim)
        for units in hidden_units:
            layers += [nn.Linear(width, int(units)), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(units)
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Linear(width, int(output_dim))
        self.embedding_dim = width


class ResNet18Embedding(BackboneHeadModule):
    """torchvision's ResNet-18 adapted to 32x32 inputs, with a ``embedding_dim`` embedding.

    The stem is the CIFAR variant (3x3 convolution, stride 1, no max-pool), the
    1000-way classifier is replaced by a linear projection to ``embedding_dim``
    (128 in the paper) followed by ReLU; the head is linear. Weights start random
    (nothing is downloaded).

    Parameters
    ----------
    output_dim : int
        Number of classes.
    in_channels : int, default 3
    embedding_dim : int, default 128
    input_dim : ignored
        Accepted so that PDCLNet's shape inference can be used with this module.
    """

    def __init__(self, output_dim: int, in_channels: int = 3, embedding_dim: int = 128,
                 input_dim=None):
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None, num_classes=1000)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Sequential(nn.Linear(512, embedding_dim), nn.ReLU())
        self.backbone = net
        self.head = nn.Linear(embedding_dim, int(output_dim))
        self.embedding_dim = embedding_dim


class DualHead(nn.Module):
    """``f_omega``: the regression of dual variables on embeddings.

    Hidden widths 64, 32, 16 with ReLU (the paper's). The inputs are standardized by
    the buffers ``input_mean`` and ``input_scale`` (set from the training embeddings
    before the head is trained) and the output is on the scale of the standardized
    multipliers; the estimator maps it back to lambda units and clips it at 0, so the
    predicted dual variable is non-negative.

    ``output_dim > 1`` makes it label-conditional: one output per class, shape
    ``(n, output_dim)`` (see :mod:`modal_ally.dual_head`).
    """

    def __init__(self, input_dim: int, hidden_units: Sequence[int] = (64, 32, 16),
                 output_dim: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        width = int(input_dim)
        for units in hidden_units:
            layers += [nn.Linear(width, int(units)), nn.ReLU()]
            width = int(units)
        layers.append(nn.Linear(width, int(output_dim)))
        self.net = nn.Sequential(*layers)
        self.register_buffer("input_mean", torch.zeros(int(input_dim)))
        self.register_buffer("input_scale", torch.ones(int(input_dim)))

    def set_input_scaling(self, embeddings: torch.Tensor) -> None:
        """Standardize inputs with the mean and standard deviation of ``embeddings``."""
        self.input_mean.copy_(embeddings.mean(dim=0))
        scale = embeddings.std(dim=0) if embeddings.shape[0] > 1 else torch.ones_like(
            self.input_scale)
        self.input_scale.copy_(torch.where(scale > 1e-6, scale, torch.ones_like(scale)))

    #: True while a training loop feeds rows standardized once beforehand
    #: (:meth:`standardized_inputs`); ``forward`` then does not standardize them again.
    _inputs_standardized = False

    def standardize(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The inputs as the first layer reads them, ``(e - input_mean) / input_scale``
        (as given inside :meth:`standardized_inputs`)."""
        if self._inputs_standardized:
            return embeddings
        return (embeddings - self.input_mean) / self.input_scale

    @contextlib.contextmanager
    def standardized_inputs(self):
        """While open, ``forward`` takes rows already passed through :meth:`standardize`:
        a training loop standardizes its rows once instead of every minibatch at every
        epoch (the same values: the standardization is elementwise)."""
        self._inputs_standardized = True
        try:
            yield self
        finally:
            self._inputs_standardized = False

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(embeddings)).squeeze(-1)


class ConditionalDualHead(nn.Module):
    """A label-conditional dual head read through the class's loss.

    ``forward(embeddings, q)`` scores the pair (sample, class c) from the sample's
    embedding and ``q = p_c(x)``, the net's predicted probability of that class: ``q`` of
    shape (n,) gives one value per row, ``q`` of shape (n, n_classes) one per class. The
    head reads the class's cross-entropy ``s = -log q`` (standardized by buffers set
    from the training rows). A labeled row is supervised at its own label;
    an unlabeled row is scored by the expectation over the classes
    (:mod:`modal_ally.dual_head`).

    ``form="mlp"`` (the default): the first layer splits as ``A e + w s``, so the
    embedding's part is computed once per row and every class costs the small layers
    only; ``form="additive"``: ``u(e) + softplus(w) s``, an embedding term plus a term
    that grows with the class's loss (monotone in it by construction; one multiply-add
    per class); ``form="loss"``: the class's loss alone (``b + w s`` into the same
    layers; the embedding is not read); ``form="monotone"``: the same through
    non-negative weights, so the score never decreases with the class's loss.
    docs/label-efficiency.md compares them: the
    additive form ranks the pool more stably where few multipliers are positive, the
    mlp form labels better in the loops. ``slot="logloss"``
    reads ``log(-log q)`` instead. Hidden widths as :class:`DualHead` (the paper's 64, 32, 16).
    """

    def __init__(self, input_dim: int, hidden_units: Sequence[int] = (64, 32, 16),
                 form: str = "mlp", slot: str = "loss"):
        super().__init__()
        widths = [int(u) for u in hidden_units]
        if not widths:
            raise ValueError("ConditionalDualHead needs at least one hidden layer")
        if form not in ("mlp", "additive", "loss", "monotone") \
                or slot not in ("loss", "logloss"):
            raise ValueError("ConditionalDualHead: form must be 'mlp', 'additive', 'loss' "
                             "or 'monotone' and slot 'loss' or 'logloss', got "
                             f"{form!r}, {slot!r}")
        self.form, self.slot = form, slot
        self.embedding_layer = nn.Linear(int(input_dim), widths[0])
        self.slot_layer = nn.Linear(1, 1 if form == "additive" else widths[0], bias=False)
        layers: list[nn.Module] = [nn.ReLU()]
        for width, units in zip(widths, widths[1:] + [1]):
            layers += [nn.Linear(width, units), nn.ReLU()]
        self.rest = nn.Sequential(*layers[:-1])
        self.register_buffer("input_mean", torch.zeros(int(input_dim)))
        self.register_buffer("input_scale", torch.ones(int(input_dim)))
        self.register_buffer("slot_mean", torch.zeros(()))
        self.register_buffer("slot_scale", torch.ones(()))

    set_input_scaling = DualHead.set_input_scaling
    _inputs_standardized = False
    standardize = DualHead.standardize
    standardized_inputs = DualHead.standardized_inputs

    def slot_feature(self, q: torch.Tensor) -> torch.Tensor:
        """The class's loss ``-log q`` (or its log), before standardization."""
        loss = -torch.log(q.clamp_min(1e-12))
        return loss if self.slot == "loss" else torch.log(loss.clamp_min(1e-6))

    def set_slot_scaling(self, q: torch.Tensor) -> None:
        """Standardize the slot input with its mean and standard deviation over ``q``."""
        s = self.slot_feature(q.float())
        self.slot_mean.copy_(s.mean())
        scale = s.std() if s.numel() > 1 else torch.ones(())
        self.slot_scale.copy_(scale if float(scale) > 1e-6 else torch.ones(()))

    def _row_part(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The first layer's embedding term, once per row."""
        if self.form in ("loss", "monotone"):
            return self.embedding_layer.bias.expand(embeddings.shape[0], -1)
        return self.embedding_layer(self.standardize(embeddings))

    def _slot_terms(self, q: torch.Tensor, dtype):
        s = ((self.slot_feature(q) - self.slot_mean) / self.slot_scale).to(dtype)
        weight = self.slot_layer.weight[:, 0]
        if self.form == "monotone":
            weight = nn.functional.softplus(weight)
        return s, weight.to(dtype)

    def _rest(self, z: torch.Tensor) -> torch.Tensor:
        """The hidden layers; with ``form="monotone"`` through non-negative weights
        (softplus of the parameters), so the output never decreases with the loss."""
        if self.form != "monotone":
            return self.rest(z)
        for layer in self.rest:
            z = nn.functional.linear(z, nn.functional.softplus(layer.weight), layer.bias) \
                if isinstance(layer, nn.Linear) else layer(z)
        return z

    def forward(self, embeddings: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        h = self._row_part(embeddings)
        s, weight = self._slot_terms(q, h.dtype)
        if self.form == "additive":
            u = self.rest(h).squeeze(-1)
            w = nn.functional.softplus(weight[0])
            return (u + w * s) if q.dim() == 1 else u[:, None] + w * s
        z = h + s[:, None] * weight if q.dim() == 1 else h[:, None, :] + s[..., None] * weight
        return self._rest(z).squeeze(-1)

    def pair_outputs(self, embeddings: torch.Tensor, rows: torch.Tensor,
                     q: torch.Tensor) -> torch.Tensor:
        """The output for the pairs ``(embeddings[rows[k]], q[k])``, shape (len(rows),):
        ``forward`` for a few (row, class) pairs per row, the row's term computed once
        (what the pool score reads when it leaves out the classes of negligible
        probability; see :func:`modal_ally.dual_head.predict_dual`)."""
        h = self._row_part(embeddings)
        s, weight = self._slot_terms(q, h.dtype)
        if self.form == "additive":
            return self.rest(h).squeeze(-1)[rows] + nn.functional.softplus(weight[0]) * s
        return self._rest(h[rows] + s[:, None] * weight).squeeze(-1)
