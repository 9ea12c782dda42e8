"""modal_ally: ALLY (Active Learning via Lagrangian dualitY) for modAL."""

from .data import RowDataset
from .generative import GenerativeResult, generate_informative
from .label_audit import find_label_issues, rank_label_issues
from .modules import MLP, BackboneHeadModule, DualHead, ResNet18Embedding
from .net import PDCLNet, PDCLRegressor
from .relabeling import relabel
from .stopping import (
    DualCriterion,
    LabelBudget,
    MaxConfidence,
    OverallUncertainty,
    StabilizingPredictions,
)
from .strategies import (
    ally_query_strategy,
    ally_redundancy_aware_query_strategy,
    ally_scores,
    badge_query_strategy,
    coreset_query_strategy,
    random_query_strategy,
)

__all__ = [
    "BackboneHeadModule", "DualHead", "MLP", "PDCLNet", "PDCLRegressor", "ResNet18Embedding",
    "RowDataset",
    "ally_query_strategy", "ally_redundancy_aware_query_strategy", "ally_scores",
    "badge_query_strategy", "coreset_query_strategy", "random_query_strategy",
    "GenerativeResult", "generate_informative",
    "find_label_issues", "rank_label_issues", "relabel",
    "DualCriterion", "LabelBudget", "MaxConfidence", "OverallUncertainty", "StabilizingPredictions",
]
__version__ = "0.1.0"
