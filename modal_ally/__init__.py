"""modal_ally: ALLY (Active Learning via Lagrangian dualitY) for modAL."""

from .modules import MLP, BackboneHeadModule, DualHead, ResNet18Embedding
from .net import PDCLNet, PDCLRegressor

__all__ = ["MLP", "BackboneHeadModule", "DualHead", "ResNet18Embedding", "PDCLNet",
           "PDCLRegressor"]
__version__ = "0.1.0"
