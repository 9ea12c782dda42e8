"""modal_ally: ALLY (Active Learning via Lagrangian dualitY) for modAL."""

from .answers import Answers, answers_of
from .data import RowDataset
from .generative import GenerativeResult, generate_informative
from .label_audit import find_label_issues, rank_label_issues
from .modal_patches import apply_at_import as _apply_modal_patches
from .modules import MLP, BackboneHeadModule, ConditionalDualHead, DualHead, ResNet18Embedding
from .net import PDCLNet, PDCLRegressor
from .relabeling import relabel
from .second_opinions import next_annotations
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
    "BackboneHeadModule", "ConditionalDualHead", "DualHead", "MLP", "PDCLNet", "PDCLRegressor",
    "ResNet18Embedding",
    "RowDataset",
    "ally_query_strategy", "ally_redundancy_aware_query_strategy", "ally_scores",
    "badge_query_strategy", "coreset_query_strategy", "random_query_strategy",
    "GenerativeResult", "generate_informative",
    "find_label_issues", "rank_label_issues", "relabel",
    "Answers", "answers_of", "next_annotations",
    "DualCriterion", "LabelBudget", "MaxConfidence", "OverallUncertainty", "StabilizingPredictions",
]
__version__ = "0.1.0"

# modAL 0.4.1/0.4.2.1 on scikit-learn >= 1.8 and pandas >= 2, and an atomic teach
_apply_modal_patches()
