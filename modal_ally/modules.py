"""PyTorch modules following the backbone/head contract.

A module used with modal_ally exposes two submodules, ``backbone`` and ``head``, and
``forward(x) == head(backbone(x))``. ``backbone(x)`` returns the embedding (shape
``(n, embedding_dim)``) that the dual head, the clustering and the baselines work on;
``head`` maps it to logits (classification) or values (regression). Users' modules
follow the same contract.
"""

from __future__ import annotations

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
    """

    def __init__(self, input_dim: int, hidden_units: Sequence[int] = (64, 32, 16)):
        super().__init__()
        layers: list[nn.Module] = []
        width = int(input_dim)
        for units in hidden_units:
            layers += [nn.Linear(width, int(units)), nn.ReLU()]
            width = int(units)
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("input_mean", torch.zeros(int(input_dim)))
        self.register_buffer("input_scale", torch.ones(int(input_dim)))

    def set_input_scaling(self, embeddings: torch.Tensor) -> None:
        """Standardize inputs with the mean and standard deviation of ``embeddings``."""
        self.input_mean.copy_(embeddings.mean(dim=0))
        scale = embeddings.std(dim=0) if embeddings.shape[0] > 1 else torch.ones_like(
            self.input_scale)
        self.input_scale.copy_(torch.where(scale > 1e-6, scale, torch.ones_like(scale)))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net((embeddings - self.input_mean) / self.input_scale).squeeze(-1)
