"""modal_ally: ALLY (Active Learning via Lagrangian dualitY) for modAL."""

from .modules import MLP, BackboneHeadModule, DualHead, ResNet18Embedding
from .net import PDCLNet, PDCLRegressor
from .strategies import ally_query_strategy, ally_redundancy_aware_query_strategy, ally_scores

__all__ = ["MLP", "BackboneHeadModule", "DualHead", "ResNet18Embedding", "PDCLNet",
           "PDCLRegressor", "ally_query_strategy",
           "ally_redundancy_aware_query_strategy", "ally_scores"]
__version__ = "0.1.0"
