"""The query strategies a benchmark can run, by name, and the arms (curves) built on them.

An *arm* (:class:`Arm`) is one curve of a benchmark: a strategy plus, optionally,
estimator and query parameters (``benchmarks/epsilon_ablation.py`` runs one arm per
epsilon).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field

__all__ = ["ALL_STRATEGIES", "STRATEGIES", "Arm", "StrategySpec", "arms_from_names",
           "parse_names", "resolve_strategies"]


@dataclass(frozen=True)
class StrategySpec:
    """How a benchmark runs one query strategy.

    Attributes
    ----------
    name : str
        The command-line name.
    target : str
        ``"module:function"`` of the modAL query strategy (imported when first used).
    pdcl : bool
        Whether the learner's estimator is a PDCL net (ALLY) or the plain net.
    needs_proba : bool
        Whether the strategy needs class probabilities (classification only).
    accepts_random_state : bool
        Whether ``random_state`` is passed to the strategy at every query.
    """

    name: str
    target: str
    pdcl: bool = False
    needs_proba: bool = False
    accepts_random_state: bool = False

    def load(self) -> Callable:
        """The query strategy function."""
        module, function = self.target.split(":")
        return getattr(importlib.import_module(module), function)


STRATEGIES: dict[str, StrategySpec] = {spec.name: spec for spec in (
    StrategySpec("ally", "modal_ally:ally_query_strategy", pdcl=True,
                 accepts_random_state=True),
    StrategySpec("ally-redundancy", "modal_ally:ally_redundancy_aware_query_strategy",
                 pdcl=True, accepts_random_state=True),
    StrategySpec("random", "modal_ally:random_query_strategy", accepts_random_state=True),
    StrategySpec("uncertainty", "modAL.uncertainty:uncertainty_sampling", needs_proba=True),
    StrategySpec("margin", "modAL.uncertainty:margin_sampling", needs_proba=True),
    StrategySpec("entropy", "modAL.uncertainty:entropy_sampling", needs_proba=True),
    StrategySpec("ranked-batch", "modAL.batch:uncertainty_batch_sampling", needs_proba=True),
    StrategySpec("badge", "modal_ally:badge_query_strategy", needs_proba=True,
                 accepts_random_state=True),
    StrategySpec("coreset", "modal_ally:coreset_query_strategy", accepts_random_state=True),
)}
ALL_STRATEGIES = tuple(STRATEGIES)


def parse_names(text: str) -> list[str]:
    """Split a comma-separated list, dropping blanks and repeats (order kept)."""
    names = []
    for part in str(text).split(","):
        part = part.strip()
        if part and part not in names:
            names.append(part)
    return names


def resolve_strategies(text: str, task: str) -> tuple[list[str], list[str]]:
    """The strategies to run for a task, and notes about those left out.

    Parameters
    ----------
    text : str
        ``"all"`` or a comma-separated list of names from :data:`STRATEGIES`.
    task : str
        ``"classification"`` or ``"regression"``.

    Returns
    -------
    names : list of str
    notes : list of str
        One line per strategy that ``"all"`` skipped (regression has no class
        probabilities).

    Raises
    ------
    ValueError
        An unknown name, or a strategy that needs class probabilities explicitly
        requested on a regression task.
    """
    requested = parse_names(text)
    if requested == ["all"]:
        names, explicit = list(ALL_STRATEGIES), False
    else:
        unknown = [name for name in requested if name not in STRATEGIES]
        if unknown or not requested:
            raise ValueError(f"unknown strategies {unknown or [text]}; choose from "
                             f"{', '.join(ALL_STRATEGIES)} or 'all'")
        names, explicit = requested, True
    if task != "regression":
        return names, []
    refused = [name for name in names if STRATEGIES[name].needs_proba]
    if refused and explicit:
        raise ValueError(
            f"strategies {', '.join(refused)} need class probabilities and cannot run on "
            "a regression task; use ally, ally-redundancy, random or coreset")
    notes = [f"skipping {name}: it needs class probabilities (regression task)"
             for name in refused]
    return [name for name in names if name not in refused], notes


@dataclass(frozen=True)
class Arm:
    """One curve of a benchmark: a strategy with optional parameter overrides.

    Attributes
    ----------
    name : str
        The label in the tables and the plot (and the key in the state file).
    strategy : str
        A key of :data:`STRATEGIES`.
    estimator_params : dict
        Overrides for the estimator (for example ``{"epsilon": 0.5}`` for ALLY).
    query_params : dict
        Extra keyword arguments for every query.
    """

    name: str
    strategy: str
    estimator_params: Mapping = field(default_factory=dict)
    query_params: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"arm {self.name!r}: unknown strategy {self.strategy!r}; "
                             f"choose from {', '.join(ALL_STRATEGIES)}")

    @property
    def spec(self) -> StrategySpec:
        """The :class:`StrategySpec` of the arm's strategy."""
        return STRATEGIES[self.strategy]

    def describe(self) -> dict:
        """A JSON-able description (what must match when a run is resumed)."""
        return json.loads(json.dumps(asdict(self), default=repr, sort_keys=True))


def arms_from_names(names: Iterable[str]) -> list[Arm]:
    """One default arm per strategy name."""
    return [Arm(name, name) for name in names]
