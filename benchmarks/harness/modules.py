"""Benchmark-only modules that follow modal_ally's backbone/head contract."""

from __future__ import annotations

from torch import nn

from modal_ally import BackboneHeadModule


class SmallCNN(BackboneHeadModule):
    """A small convolutional net for 28x28 grey images (MNIST), fast on a CPU.

    ``backbone``: two 3x3 convolutions (16 and 32 channels, ReLU, 2x2 max pooling each),
    flattened to 32 x 7 x 7 and mapped to an ``embedding_dim`` embedding (ReLU); ``head``:
    a linear layer to the logits. About 0.2 M parameters.

    Parameters
    ----------
    output_dim : int
        Number of classes.
    in_channels : int, default 1
    embedding_dim : int, default 128
    """

    def __init__(self, output_dim: int, in_channels: int = 1, embedding_dim: int = 128):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(int(in_channels), 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, int(embedding_dim)), nn.ReLU())
        self.head = nn.Linear(int(embedding_dim), int(output_dim))
        self.embedding_dim = int(embedding_dim)
