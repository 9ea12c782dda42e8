"""What the active-learning benchmark scripts share.

- the strategies by name (:data:`STRATEGIES`) and which task each one supports;
- the estimators: :class:`modal_ally.PDCLNet` / :class:`modal_ally.PDCLRegressor` for the
  ALLY strategies, and for every other strategy the same module trained *without*
  constraints (:class:`PlainNetClassifier` / :class:`PlainNetRegressor`), with the same
  optimizer, learning rate, batch size, epochs, fast batches and seeding;
- the active-learning loop through a real ``modAL.models.ActiveLearner``, with a state
  file that makes a run resumable after every finished round (:func:`run_active_learning`);
- the summaries (area under the learning curve, final metric, labels needed to reach 97 %
  of the final metric), the CSV/Markdown tables and the plot (:func:`write_report`).

An *arm* (:class:`Arm`) is one curve of a benchmark: a strategy plus, optionally, estimator
and query parameters (``benchmarks/epsilon_ablation.py`` runs one arm per epsilon).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from torch import nn

__all__ = [
    "ALL_STRATEGIES", "ROW_FIELDS", "STRATEGIES", "SUMMARY_FIELDS", "Arm",
    "PlainNetClassifier", "PlainNetRegressor", "SettingsError", "StrategySpec",
    "add_loop_arguments", "arms_from_names", "build_estimator", "check_loop_arguments",
    "evaluate", "initial_indices", "labels_to_reach", "learning_curve_area",
    "load_benchmark_data", "loop_config", "metric_info", "module_for", "parse_int_list",
    "parse_names", "plot_curves", "query_random_state", "read_rows", "resolve_strategies",
    "run_active_learning", "summarize", "summary_markdown", "write_report",
]

#: Targets reached "97 % of the final metric" (the paper's labels-needed measure).
TARGET_FRACTION = 0.97
#: Batch size and learning rate of every net (the paper's; Adam).
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
#: Rows per chunk when a plain net predicts (training batches stay BATCH_SIZE).
PREDICT_BATCH_SIZE = 4096
STATE_FILE = "state.json"
STATE_VERSION = 1

ROW_FIELDS = ("strategy", "seed", "round", "n_labels", "metric", "fit_s", "query_s")
SUMMARY_FIELDS = (
    "strategy", "metric_name", "n_seeds", "last_round", "final_n_labels",
    "aulc_mean", "aulc_std", "final_mean", "final_std",
    "labels_to_97_mean", "labels_to_97_std",
    "labels_to_97_best_mean", "labels_to_97_best_std", "labels_to_97_best_reached",
    "fit_s_mean", "query_s_mean",
)


class SettingsError(ValueError):
    """Settings that cannot run: a state file written with other settings, an initial
    set as large as the pool. Scripts turn it into a command-line error."""


# ============================================================================ strategies
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
        import importlib

        module, function = self.target.split(":")
        return getattr(importlib.import_module(module), function)


STRATEGIES: dict[str, StrategySpec] = {spec.name: spec for spec in (
    StrategySpec("ally", "modal_ally:ally_query_strategy", pdcl=True,
                 accepts_random_state=True),
    StrategySpec("ally-redundancy", "modal_ally:ally_redundancy_aware_query_strategy",
                 pdcl=True, accepts_random_state=True),
    StrategySpec("random", "modal_ally.baselines:random_query_strategy",
                 accepts_random_state=True),
    StrategySpec("uncertainty", "modAL.uncertainty:uncertainty_sampling", needs_proba=True),
    StrategySpec("margin", "modAL.uncertainty:margin_sampling", needs_proba=True),
    StrategySpec("entropy", "modAL.uncertainty:entropy_sampling", needs_proba=True),
    StrategySpec("ranked-batch", "modAL.batch:uncertainty_batch_sampling", needs_proba=True),
    StrategySpec("badge", "modal_ally.baselines:badge_query_strategy", needs_proba=True,
                 accepts_random_state=True),
    StrategySpec("coreset", "modal_ally.baselines:coreset_query_strategy",
                 accepts_random_state=True),
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


def parse_int_list(text: str, *, name: str, minimum: int = 1) -> list[int]:
    """Parse ``"1,2,3"`` into ints >= ``minimum`` (``1e4``-style values are accepted)."""
    values = []
    for part in parse_names(text):
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"{name}: {part!r} is not a number") from None
        if not value.is_integer() or value < minimum:
            raise ValueError(f"{name}: {part!r} must be an integer >= {minimum}")
        values.append(int(value))
    if not values:
        raise ValueError(f"{name}: give at least one value")
    return values


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

    def describe(self) -> dict:
        """A JSON-able description (what must match when a run is resumed)."""
        return json.loads(json.dumps(asdict(self), default=repr, sort_keys=True))


def arms_from_names(names: Iterable[str]) -> list[Arm]:
    """One default arm per strategy name."""
    return [Arm(name, name) for name in names]


# ============================================================================ estimators
class _SeededNetMixin:
    """Seeds torch at every (re)initialization, as PDCLNet does with ``random_state``."""

    def initialize(self):
        if self.random_state is not None:
            torch.manual_seed(int(self.random_state))
        return super().initialize()


class PlainNetClassifier(_SeededNetMixin, NeuralNetClassifier):
    """skorch's ``NeuralNetClassifier`` with a ``random_state`` (the unconstrained baseline).

    Parameters
    ----------
    module : torch.nn.Module class or instance
    random_state : int or None, default None
        ``torch.manual_seed(random_state)`` before every initialization (every ``fit``),
        so a fit on the same data is reproducible.
    **kwargs
        skorch's parameters.
    """

    def __init__(self, module, *, random_state=None, **kwargs):
        super().__init__(module, **kwargs)
        self.random_state = random_state


class PlainNetRegressor(_SeededNetMixin, NeuralNetRegressor):
    """skorch's ``NeuralNetRegressor`` on standardized targets, with a ``random_state``.

    ``fit`` standardizes ``y`` exactly as :class:`modal_ally.PDCLRegressor` does (mean and
    population standard deviation of the fitted targets, a zero scale replaced by 1;
    attributes ``y_mean_``, ``y_scale_``) and trains on the standardized values, shaped
    ``(n, n_targets)`` as ``MSELoss`` needs; ``predict`` maps back to the user's units and
    shape. The net itself (not a ``TransformedTargetRegressor`` around it) is the
    learner's estimator, so strategies reach ``module_.backbone`` as with PDCL nets.

    Parameters
    ----------
    module : torch.nn.Module class or instance
    random_state : int or None, default None
        As in :class:`PlainNetClassifier`.
    **kwargs
        skorch's parameters.
    """

    def __init__(self, module, *, random_state=None, **kwargs):
        super().__init__(module, **kwargs)
        self.random_state = random_state

    def fit(self, X, y, **fit_params):
        y = np.asarray(y, dtype=np.float64)
        y2 = y.reshape(y.shape[0], -1)
        self.y_ndim_ = y.ndim
        self.y_mean_ = y2.mean(axis=0).astype(np.float32)
        scale = y2.std(axis=0)
        self.y_scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)
        scaled = ((y2 - self.y_mean_) / self.y_scale_).astype(np.float32)
        return super().fit(X, scaled, **fit_params)

    def predict(self, X):
        """Predictions in the units (and 1-d/2-d shape) of the ``y`` given to ``fit``."""
        out = np.asarray(super().predict(X)).reshape(-1, self.y_mean_.shape[0])
        out = out * self.y_scale_ + self.y_mean_
        return out.ravel() if self.y_ndim_ == 1 else out


def module_for(data):
    """The module class and its ``module__*`` parameters, sized from the data.

    ``data.module == "mlp"``: :class:`modal_ally.MLP` (two hidden layers of 256, ReLU)
    with ``input_dim = prod(feature_shape)``; ``"cnn"``: :class:`benchmarks.modules.SmallCNN`;
    ``"resnet18"``:
    :class:`modal_ally.ResNet18Embedding` with ``in_channels = feature_shape[0]``.
    ``output_dim`` is the number of classes, or 1 for regression.
    """
    from modal_ally import MLP, ResNet18Embedding

    output_dim = int(data.n_classes) if data.task == "classification" else 1
    if data.module == "cnn":
        from benchmarks.modules import SmallCNN

        return SmallCNN, {"output_dim": output_dim, "in_channels": int(data.feature_shape[0])}
    if data.module == "resnet18":
        return ResNet18Embedding, {"output_dim": output_dim,
                                   "in_channels": int(data.feature_shape[0])}
    return MLP, {"input_dim": int(np.prod(data.feature_shape)), "output_dim": output_dim}


def build_estimator(arm_or_strategy, data, *, epochs: int, seed: int, device: str = "cpu",
                    **params):
    """A fresh, unfitted estimator for one arm and one seed.

    ALLY arms get :class:`modal_ally.PDCLNet` (:class:`modal_ally.PDCLRegressor` for
    regression); every other strategy gets the same module trained without constraints:
    :class:`PlainNetClassifier` (CrossEntropyLoss) or :class:`PlainNetRegressor`
    (MSELoss, standardized targets). Both use Adam with lr 1e-3, batch size 64,
    ``max_epochs=epochs``, ``train_split=None``, ``verbose=0``, torch seeded with ``seed``
    at every fit, and whole-batch fetching (``dataset=RowDataset`` with
    ``collate_rows``, what PDCL nets use by default). Classifiers are told all
    ``n_classes`` classes, so that an initial set missing a class still has one output
    per class.

    Parameters
    ----------
    arm_or_strategy : Arm or str
    data : benchmarks.datasets.ActiveLearningData
    epochs, seed : int
    device : str
    **params
        Further estimator parameters; they override the arm's ``estimator_params``.
    """
    from modal_ally import PDCLNet, PDCLRegressor
    from modal_ally.data import RowDataset, collate_rows

    arm = arm_or_strategy if isinstance(arm_or_strategy, Arm) else Arm(
        str(arm_or_strategy), str(arm_or_strategy))
    spec = STRATEGIES[arm.strategy]
    module, module_kwargs = module_for(data)
    classification = data.task == "classification"
    common = dict(optimizer=torch.optim.Adam, lr=LEARNING_RATE, max_epochs=int(epochs),
                  batch_size=BATCH_SIZE, train_split=None, verbose=0, device=device,
                  random_state=int(seed),
                  **{f"module__{key}": value for key, value in module_kwargs.items()})
    if classification:
        common["classes"] = list(range(int(data.n_classes)))
    overrides = {**dict(arm.estimator_params), **params}
    if spec.pdcl:
        cls = PDCLNet if classification else PDCLRegressor
        return cls(module, **{**common, **overrides})
    fast_batches = dict(dataset=RowDataset, iterator_train__collate_fn=collate_rows,
                        iterator_valid__collate_fn=collate_rows,
                        iterator_valid__batch_size=PREDICT_BATCH_SIZE)
    if classification:
        return PlainNetClassifier(module, criterion=nn.CrossEntropyLoss,
                                  **{**common, **fast_batches, **overrides})
    return PlainNetRegressor(module, criterion=nn.MSELoss,
                             **{**common, **fast_batches, **overrides})


def metric_info(task: str) -> tuple[str, bool]:
    """``(metric name, higher is better)``: test accuracy, or test MSE for regression."""
    return ("accuracy", True) if task == "classification" else ("mse", False)


def evaluate(estimator, X_test, y_test, task: str) -> float:
    """Test accuracy (classification) or mean squared error in the target's units."""
    y_pred = np.asarray(estimator.predict(X_test))
    if task == "classification":
        return float(np.mean(y_pred == np.asarray(y_test)))
    diff = y_pred.astype(np.float64).ravel() - np.asarray(y_test, dtype=np.float64).ravel()
    return float(np.mean(diff * diff))


def initial_indices(n_pool: int, n_initial: int, seed: int) -> np.ndarray:
    """The initial labeled set of a seed: a plain uniform draw of pool rows, sorted.

    Not stratified, as in the paper; the same for every strategy of a seed.
    """
    rng = np.random.default_rng([int(seed), 0x1A11])
    return np.sort(rng.choice(int(n_pool), size=int(n_initial), replace=False)).astype(np.int64)


def query_random_state(seed: int, round_: int) -> int:
    """The ``random_state`` given to the query of round ``round_`` of seed ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(round_)]).generate_state(1)[0])


# ============================================================================ data / CLI
def add_loop_arguments(parser, *, dataset="digits", initial=100, budget=100, rounds=5,
                       seeds=5, epochs=50):
    """Add the flags every learning-curve benchmark shares to an argparse parser."""
    from benchmarks.datasets import DATASETS

    parser.add_argument("--dataset", default=dataset, choices=DATASETS,
                        help="data set (default: %(default)s)")
    parser.add_argument("--initial", type=int, default=initial,
                        help="size of the random initial labeled set (default: %(default)s)")
    parser.add_argument("--budget", type=int, default=budget,
                        help="labels queried per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=rounds,
                        help="query rounds after the initial fit (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=seeds,
                        help="number of seeds, 0..n-1 (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=epochs,
                        help="training epochs of every fit (default: %(default)s)")
    parser.add_argument("--out", default=None, help="output directory")
    parser.add_argument("--data-dir", default=None,
                        help="directory of the torchvision data sets (mnist, cifar10, svhn)")
    parser.add_argument("--redundancy", type=int, default=1,
                        help="copies of each pool row for digits-redundant (default: 1)")
    parser.add_argument("--max-pool", type=int, default=None,
                        help="keep at most this many pool rows (seeded subset)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def check_loop_arguments(parser, args):
    """Reject out-of-range loop flags with ``parser.error``."""
    for name, minimum in (("initial", 1), ("budget", 1), ("rounds", 0), ("seeds", 1),
                          ("epochs", 1), ("redundancy", 1)):
        if getattr(args, name) < minimum:
            parser.error(f"--{name} must be >= {minimum}, got {getattr(args, name)}")
    if args.max_pool is not None and args.max_pool < 1:
        parser.error(f"--max-pool must be >= 1, got {args.max_pool}")
    if str(args.device).startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device} was requested but CUDA is not available")


def load_benchmark_data(args):
    """Load ``args.dataset`` (fixed split, ``random_state=0``: the same for every seed)."""
    from benchmarks.datasets import load_dataset

    return load_dataset(args.dataset, data_dir=args.data_dir, redundancy=args.redundancy,
                        max_pool=args.max_pool, random_state=0)


def loop_config(args, **extra) -> dict:
    """The settings a resumed run must share with the run that wrote the state."""
    config = {"dataset": args.dataset, "redundancy": args.redundancy,
              "max_pool": args.max_pool, "data_random_state": 0, "initial": args.initial,
              "budget": args.budget, "epochs": args.epochs, "batch_size": BATCH_SIZE,
              "lr": LEARNING_RATE}
    config.update(extra)
    return config


# ============================================================================ state
def _load_state(path: Path, config: dict) -> dict:
    if not path.exists():
        return {"version": STATE_VERSION, "config": config, "runs": {}}
    with open(path) as handle:
        state = json.load(handle)
    if state.get("version") != STATE_VERSION:
        raise SettingsError(f"{path} was written by another version of the benchmarks; "
                         "use another --out")
    old = state.get("config", {})
    differ = {key: (old.get(key), value) for key, value in config.items()
              if old.get(key) != value}
    if differ:
        detail = ", ".join(f"{key}: {a!r} there, {b!r} now" for key, (a, b) in differ.items())
        raise SettingsError(f"cannot resume from {path}: its settings differ ({detail}); use "
                         "the same settings or another --out")
    return state


def _save_state(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(state, handle)
    os.replace(tmp, path)


def _run_key(arm_name: str, seed: int) -> str:
    return f"{arm_name}|seed={int(seed)}"


def _number(value):
    return None if value is None or not math.isfinite(value) else float(value)


# ============================================================================ loop
def run_active_learning(data, arms: Sequence[Arm], seeds: Sequence[int], *, initial: int,
                        budget: int, rounds: int, epochs: int, out_dir, config: dict,
                        device: str = "cpu", progress: bool = True,
                        log: Callable[[str], None] = print) -> list[dict]:
    """Run (or resume) every arm for every seed and return the rows of the requested rounds.

    For each (arm, seed): a ``modAL.models.ActiveLearner`` is built on the seed's initial
    labeled set (:func:`initial_indices`, the same for every arm), which fits the
    estimator (round 0). Each following round queries ``budget`` rows of the remaining
    pool with ``learner.query(X_remaining, n_instances=budget)`` and adds them with
    ``learner.teach`` (a refit from scratch on every labeled row). After every finished
    round the labeled pool indices and the rows so far are written to
    ``out_dir/state.json`` (atomically); a later call with the same ``out_dir`` skips
    what is done and continues an unfinished (arm, seed) from its last finished round,
    refitting the estimator on the saved labeled set first.

    Parameters
    ----------
    data : benchmarks.datasets.ActiveLearningData
    arms : sequence of Arm
    seeds : sequence of int
    initial, budget, rounds, epochs : int
        Initial labeled set size, labels per round, query rounds, epochs per fit.
    out_dir : str or Path
    config : dict
        Settings the state file must match to be resumed (see :func:`loop_config`).
    device : str
    progress : bool
        Show a tqdm progress bar over (arm, seed, round).
    log : callable
        Where notes go (pool exhausted, resumed runs).

    Returns
    -------
    rows : list of dict
        Keys :data:`ROW_FIELDS`, for the requested arms, seeds and rounds ``0..rounds``;
        ``query_s`` is None for round 0. ``strategy`` holds the arm's name.
    """
    from modAL.models import ActiveLearner
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / STATE_FILE
    state = _load_state(state_path, config)
    n_pool = int(data.X_pool.shape[0])
    if not 1 <= initial < n_pool:
        raise SettingsError(f"the initial labeled set ({initial}) must be smaller than the "
                         f"pool ({n_pool} rows)")
    for arm in arms:
        for seed in seeds:
            run = state["runs"].get(_run_key(arm.name, seed))
            if run is not None and run["arm"] != arm.describe():
                raise SettingsError(f"cannot resume from {state_path}: arm {arm.name!r} was "
                                 f"run as {run['arm']}, now {arm.describe()}; use another "
                                 "--out")

    def finished(run):
        if run is None:
            return 0
        return rounds + 1 if run.get("exhausted") else run["rounds_done"] + 1

    total = len(arms) * len(seeds) * (rounds + 1)
    done = sum(min(finished(state["runs"].get(_run_key(arm.name, seed))), rounds + 1)
               for arm in arms for seed in seeds)
    bar = tqdm(total=total, initial=done, disable=not progress, desc="rounds",
               dynamic_ncols=True)
    try:
        for arm in arms:
            spec = STRATEGIES[arm.strategy]
            strategy = spec.load()
            for seed in seeds:
                key = _run_key(arm.name, seed)
                run = state["runs"].get(key)
                if run is not None and (run["rounds_done"] >= rounds or run.get("exhausted")):
                    continue
                bar.set_postfix_str(f"{arm.name} seed={seed}")
                estimator = build_estimator(arm, data, epochs=epochs, seed=seed,
                                            device=device)
                if run is None:
                    labeled = [int(i) for i in initial_indices(n_pool, initial, seed)]
                    start = time.perf_counter()
                    learner = ActiveLearner(estimator=estimator, query_strategy=strategy,
                                            X_training=data.X_pool[labeled],
                                            y_training=data.y_pool[labeled])
                    fit_s = time.perf_counter() - start
                    metric = evaluate(learner.estimator, data.X_test, data.y_test, data.task)
                    run = {"arm": arm.describe(), "seed": int(seed), "labeled": labeled,
                           "rounds_done": 0, "exhausted": False,
                           "rows": [_row(arm.name, seed, 0, len(labeled), metric, fit_s,
                                         None)]}
                    state["runs"][key] = run
                    _save_state(state_path, state)
                    bar.update(1)
                else:
                    labeled = [int(i) for i in run["labeled"]]
                    log(f"resuming {arm.name} seed={seed} after round {run['rounds_done']} "
                        f"({len(labeled)} labels): refitting on the saved labeled set")
                    learner = ActiveLearner(estimator=estimator, query_strategy=strategy,
                                            X_training=data.X_pool[labeled],
                                            y_training=data.y_pool[labeled])
                for round_ in range(run["rounds_done"] + 1, rounds + 1):
                    is_labeled = np.zeros(n_pool, dtype=bool)
                    is_labeled[labeled] = True
                    remaining = np.flatnonzero(~is_labeled)
                    if remaining.size == 0:
                        log(f"{arm.name} seed={seed}: the pool is exhausted after round "
                            f"{round_ - 1} ({len(labeled)} labels); stopping this curve")
                        run["exhausted"] = True
                        _save_state(state_path, state)
                        bar.update(rounds + 1 - round_)
                        break
                    n_query = min(int(budget), int(remaining.size))
                    query_kwargs = dict(arm.query_params)
                    if spec.accepts_random_state:
                        query_kwargs.setdefault("random_state", query_random_state(seed, round_))
                    start = time.perf_counter()
                    picked = learner.query(data.X_pool[remaining], n_instances=n_query,
                                           **query_kwargs)[0]
                    query_s = time.perf_counter() - start
                    new = remaining[_check_picked(picked, remaining.size, n_query, arm.name)]
                    start = time.perf_counter()
                    learner.teach(data.X_pool[new], data.y_pool[new])
                    fit_s = time.perf_counter() - start
                    metric = evaluate(learner.estimator, data.X_test, data.y_test, data.task)
                    labeled.extend(int(i) for i in new)
                    run["labeled"] = labeled
                    run["rounds_done"] = round_
                    run["rows"].append(_row(arm.name, seed, round_, len(labeled), metric,
                                            fit_s, query_s))
                    _save_state(state_path, state)
                    bar.update(1)
    finally:
        bar.close()
    rows = []
    for arm in arms:
        for seed in seeds:
            run = state["runs"].get(_run_key(arm.name, seed), {"rows": []})
            rows += [dict(row) for row in run["rows"] if row["round"] <= rounds]
    return rows


def _row(name, seed, round_, n_labels, metric, fit_s, query_s):
    return {"strategy": name, "seed": int(seed), "round": int(round_),
            "n_labels": int(n_labels), "metric": float(metric), "fit_s": _number(fit_s),
            "query_s": _number(query_s)}


def _check_picked(picked, n_remaining, n_query, name):
    picked = np.asarray(picked).astype(np.int64).ravel()
    if picked.size != n_query or np.unique(picked).size != picked.size \
            or picked.min() < 0 or picked.max() >= n_remaining:
        raise RuntimeError(f"strategy {name} returned {picked.size} indices "
                           f"({np.unique(picked).size} unique) for {n_query} queries from a "
                           f"pool of {n_remaining}")
    return picked


# ============================================================================ summaries
def learning_curve_area(n_labels, metric) -> float:
    """Area under the curve (trapezoid over n_labels) divided by the label range.

    A mean metric over the labeling budget; a one-point curve gives its metric.
    """
    n = np.asarray(n_labels, dtype=np.float64)
    m = np.asarray(metric, dtype=np.float64)
    if n.size == 1 or n[-1] == n[0]:
        return float(m.mean())
    trapezoid = getattr(np, "trapezoid", None) or np.trapz
    return float(trapezoid(m, n) / (n[-1] - n[0]))


def labels_to_reach(n_labels, metric, target, *, higher_is_better=True) -> float:
    """The first n_labels whose metric reaches ``target`` (NaN if none does)."""
    m = np.asarray(metric, dtype=np.float64)
    hit = m >= target if higher_is_better else m <= target
    return float(np.asarray(n_labels)[np.argmax(hit)]) if hit.any() else float("nan")


def _target(final, higher_is_better, fraction=TARGET_FRACTION):
    return fraction * final if higher_is_better else final / fraction


def _mean_std(values):
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def _curves(rows):
    """{strategy: {seed: (n_labels, metric)}} in round order, strategies in first-seen order."""
    curves: dict[str, dict[int, list]] = {}
    for row in sorted(rows, key=lambda r: (r["seed"], r["round"])):
        curves.setdefault(row["strategy"], {}).setdefault(row["seed"], []).append(row)
    order = list(dict.fromkeys(row["strategy"] for row in rows))
    return {name: {seed: (np.array([r["n_labels"] for r in curve], dtype=float),
                          np.array([r["metric"] for r in curve], dtype=float))
                   for seed, curve in sorted(curves[name].items())} for name in order}


def summarize(rows, task: str) -> list[dict]:
    """Per strategy, mean and standard deviation over seeds of the curve's summaries.

    - ``aulc``: :func:`learning_curve_area` (a mean metric over the labeling budget);
    - ``final``: the metric after the last round;
    - ``labels_to_97``: per seed, the first n_labels whose metric reaches 97 % of the final
      metric *of the same curve* (the paper's measure; for MSE, lower is better, the first
      n_labels with ``mse <= final / 0.97``);
    - ``labels_to_97_best``: the same against one common target, 97 % of the best
      strategy's mean final metric (comparable across strategies: a strategy with a poor
      final metric reaches its own 97 % early); seeds that never reach it are left out of
      the mean, and ``labels_to_97_best_reached`` counts those that do;
    - ``fit_s_mean``, ``query_s_mean``: mean seconds per fit and per query.

    Standard deviations are over seeds (ddof=1; 0 for one seed).
    """
    metric_name, higher = metric_info(task)
    curves = _curves(rows)
    finals = {name: _mean_std([m[-1] for _, m in per_seed.values()])[0]
              for name, per_seed in curves.items()}
    best = (max if higher else min)(finals.values()) if finals else float("nan")
    best_target = _target(best, higher)
    summary = []
    for name, per_seed in curves.items():
        own = [labels_to_reach(n, m, _target(m[-1], higher), higher_is_better=higher)
               for n, m in per_seed.values()]
        common = [labels_to_reach(n, m, best_target, higher_is_better=higher)
                  for n, m in per_seed.values()]
        aulc = _mean_std([learning_curve_area(n, m) for n, m in per_seed.values()])
        final = _mean_std([m[-1] for _, m in per_seed.values()])
        own_stats, common_stats = _mean_std(own), _mean_std(common)
        strategy_rows = [r for r in rows if r["strategy"] == name]
        fit_s = _mean_std([r["fit_s"] for r in strategy_rows])[0]
        query_s = _mean_std([r["query_s"] for r in strategy_rows])[0]
        summary.append({
            "strategy": name, "metric_name": metric_name, "n_seeds": len(per_seed),
            "last_round": max(r["round"] for r in strategy_rows),
            "final_n_labels": int(max(n[-1] for n, _ in per_seed.values())),
            "aulc_mean": aulc[0], "aulc_std": aulc[1],
            "final_mean": final[0], "final_std": final[1],
            "labels_to_97_mean": own_stats[0], "labels_to_97_std": own_stats[1],
            "labels_to_97_best_mean": common_stats[0], "labels_to_97_best_std": common_stats[1],
            "labels_to_97_best_reached": int(np.isfinite(common).sum()),
            "fit_s_mean": fit_s, "query_s_mean": query_s,
        })
    return summary


def format_cell(value, digits=4):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _write_csv(path, fields, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _csv_value(row.get(key)) for key in fields})


def _csv_value(value):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return format(value, ".10g") if isinstance(value, float) else value


def summary_markdown(summary, *, task: str, title: str) -> str:
    """The summary as a Markdown document: a header of definitions and one table."""
    metric_name, higher = metric_info(task)
    better = "higher" if higher else "lower"
    reach = ("metric >= 0.97 x final" if higher else "mse <= final / 0.97")
    lines = [
        f"# {title}", "",
        f"Metric: test {metric_name} ({better} is better); mean ± std over seeds (ddof=1).",
        "- **AULC**: area under the learning curve (trapezoid over n_labels) divided by the "
        "label range, i.e. the mean metric over the labeling budget.",
        f"- **labels to 97%**: per seed, the first n_labels with {reach}, *final* being the "
        "last metric of the same curve (the paper's measure; it rewards reaching a plateau "
        "early, whatever its height).",
        f"- **labels to 97% of best**: the same against one common target, {reach} with "
        "*final* the best strategy's mean final metric; `k/n` seeds reached it, the mean "
        "is over those.",
        "- **fit s / query s**: mean seconds per fit and per query.", "",
        f"| strategy | seeds | AULC | final {metric_name} | labels to 97% | "
        "labels to 97% of best | fit s | query s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary:
        reached = f"{row['labels_to_97_best_reached']}/{row['n_seeds']}"
        best = ("—" if not row["labels_to_97_best_reached"] else
                f"{row['labels_to_97_best_mean']:.0f} ± {row['labels_to_97_best_std']:.0f}")
        lines.append(
            f"| {row['strategy']} | {row['n_seeds']} | "
            f"{row['aulc_mean']:.4f} ± {row['aulc_std']:.4f} | "
            f"{row['final_mean']:.4f} ± {row['final_std']:.4f} | "
            f"{row['labels_to_97_mean']:.0f} ± {row['labels_to_97_std']:.0f} | "
            f"{best} ({reached}) | {format_cell(row['fit_s_mean'], 2)} | "
            f"{format_cell(row['query_s_mean'], 3)} |")
    return "\n".join(lines) + "\n"


def plot_curves(rows, path, *, task: str, title: str) -> None:
    """Mean metric against n_labels per strategy, with a ± std band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric_name, _ = metric_info(task)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, per_seed in _curves(rows).items():
        length = min(len(n) for n, _ in per_seed.values())
        n_labels = np.mean([n[:length] for n, _ in per_seed.values()], axis=0)
        values = np.array([m[:length] for _, m in per_seed.values()])
        mean = values.mean(axis=0)
        std = values.std(axis=0, ddof=1) if values.shape[0] > 1 else np.zeros_like(mean)
        line, = ax.plot(n_labels, mean, marker="o", markersize=3, label=name)
        ax.fill_between(n_labels, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("number of labels")
    ax.set_ylabel(f"test {metric_name}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(rows, out_dir, *, task: str, title: str, plot_name="learning_curves.png"):
    """Write ``rounds.csv``, ``summary.csv``, ``summary.md`` and the plot into ``out_dir``.

    Returns
    -------
    paths : dict
        ``{"rounds": ..., "summary_csv": ..., "summary_md": ..., "plot": ...}``.
    summary : list of dict
        As :func:`summarize`.
    markdown : str
        The content of ``summary.md``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"rounds": out_dir / "rounds.csv", "summary_csv": out_dir / "summary.csv",
             "summary_md": out_dir / "summary.md", "plot": out_dir / plot_name}
    ordered = sorted(rows, key=lambda r: (_first_seen(rows)[r["strategy"]], r["seed"],
                                          r["round"]))
    _write_csv(paths["rounds"], ROW_FIELDS, ordered)
    summary = summarize(rows, task)
    _write_csv(paths["summary_csv"], SUMMARY_FIELDS, summary)
    markdown = summary_markdown(summary, task=task, title=title)
    paths["summary_md"].write_text(markdown)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plot_curves(rows, paths["plot"], task=task, title=title)
    return paths, summary, markdown


def run_benchmark(parser, args, data, arms, out_dir, *, title: str,
                  print_report: bool = True) -> dict:
    """Run (or resume) the loop for ``arms`` and write the report: the shared ``main``.

    Settings errors end through ``parser.error``; modAL 0.4.1's ``force_all_finite``
    FutureWarning is silenced. Returns ``rows``, ``summary`` and ``paths``.
    """
    with warnings.catch_warnings():
        # modAL 0.4.1 passes force_all_finite, renamed by scikit-learn 1.6
        warnings.filterwarnings("ignore", message=".*force_all_finite.*",
                                category=FutureWarning)
        try:
            rows = run_active_learning(
                data, arms, list(range(args.seeds)), initial=args.initial,
                budget=args.budget, rounds=args.rounds, epochs=args.epochs, out_dir=out_dir,
                config=loop_config(args), device=args.device, progress=not args.no_progress)
        except SettingsError as exc:
            parser.error(str(exc))
    paths, summary, markdown = write_report(rows, out_dir, task=data.task, title=title)
    if print_report:
        print()
        print(markdown)
        print(f"rounds:  {paths['rounds']}")
        print(f"summary: {paths['summary_csv']} and {paths['summary_md']}")
        print(f"plot:    {paths['plot']}", flush=True)
    return {"rows": rows, "summary": summary, "paths": paths}


def _first_seen(rows):
    return {name: i for i, name in enumerate(dict.fromkeys(r["strategy"] for r in rows))}


def read_rows(path) -> list[dict]:
    """Read a ``rounds.csv`` back (numbers parsed; empty cells as None)."""
    out = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            out.append({"strategy": row["strategy"], "seed": int(row["seed"]),
                        "round": int(row["round"]), "n_labels": int(row["n_labels"]),
                        "metric": float(row["metric"]),
                        "fit_s": float(row["fit_s"]) if row["fit_s"] else None,
                        "query_s": float(row["query_s"]) if row["query_s"] else None})
    return out
