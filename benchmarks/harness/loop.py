"""The active-learning loop of the benchmarks: every (arm, seed) curve, round by round.

Each curve runs through a real ``modAL.models.ActiveLearner``: built on the seed's initial
labeled set (round 0: the first fit), then per round ``learner.query(X_remaining,
n_instances=budget)`` and ``learner.teach(...)`` (a refit from scratch). After every
finished round the curve is saved in the output folder's
:class:`~benchmarks.harness.store.RunStore`, so a stopped run resumes where it was.

Observers
---------
``observers`` are callables ``observer(learner, X_pool_remaining, n_labels) -> dict``,
called after the fit of every round (round 0 included) with the learner, the pool rows
still unlabeled and the number of labels. The dict's keys become extra columns of that
round's row (in ``rounds.csv`` and the state); values must be numbers, strings, booleans
or None. Each curve gets a new learner, and its rounds come in order, so an observer that
keeps state between rounds (a stopping criterion comparing successive models) can key it
by the learner. When a curve is resumed, its learner is refitted on the saved labeled set
(the fit of its last finished round) and the observers are called once on it, their
output discarded: a stateful observer sees the same sequence of fits as in an
uninterrupted run.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.harness.estimators import build_estimator
from benchmarks.harness.metrics import evaluate
from benchmarks.harness.registry import Arm
from benchmarks.harness.reporting import ROW_FIELDS
from benchmarks.harness.store import RunStore, SettingsError, run_key

__all__ = ["check_observers", "initial_indices", "query_random_state",
           "run_active_learning"]


def initial_indices(n_pool: int, n_initial: int, seed: int) -> np.ndarray:
    """The initial labeled set of a seed: a plain uniform draw of pool rows, sorted.

    Not stratified, as in the paper; the same for every strategy of a seed.
    """
    rng = np.random.default_rng([int(seed), 0x1A11])
    return np.sort(rng.choice(int(n_pool), size=int(n_initial), replace=False)).astype(np.int64)


def query_random_state(seed: int, round_: int) -> int:
    """The ``random_state`` given to the query of round ``round_`` of seed ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(round_)]).generate_state(1)[0])


def check_observers(observers) -> tuple:
    """The observers as a tuple of callables (None: none); TypeError otherwise."""
    if observers is None:
        return ()
    if callable(observers) or isinstance(observers, (str, bytes, Mapping)):
        raise TypeError("observers must be a sequence of callables, got "
                        f"{type(observers).__name__}; pass [observer]")
    observers = tuple(observers)
    for observer in observers:
        if not callable(observer):
            raise TypeError(f"every observer must be callable, got {observer!r}")
    return observers


@dataclass
class _Loop:
    """What every curve of one call shares."""

    data: object
    initial: int
    budget: int
    rounds: int
    epochs: int
    device: str
    observers: tuple
    store: RunStore
    bar: object
    log: Callable[[str], None]

    @property
    def n_pool(self) -> int:
        return int(self.data.X_pool.shape[0])


def run_active_learning(data, arms: Sequence[Arm], seeds: Sequence[int], *, initial: int,
                        budget: int, rounds: int, epochs: int, out_dir, config: dict,
                        device: str = "cpu", progress: bool = True, observers=None,
                        allow_thread_change: bool = False,
                        log: Callable[[str], None] = print) -> list[dict]:
    """Run (or resume) every arm for every seed and return the rows of the requested rounds.

    Parameters
    ----------
    data : benchmarks.harness.datasets.ActiveLearningData
    arms : sequence of Arm
    seeds : sequence of int
    initial, budget, rounds, epochs : int
        Initial labeled set size (:func:`initial_indices`, the same for every arm of a
        seed), labels per round, query rounds, epochs per fit.
    out_dir : str or Path
        The output folder: locked while the call runs, holds the resumable state.
    config : dict
        Settings the state must match to be resumed (see ``benchmarks.harness.cli.loop_config``).
    device : str
    progress : bool
        Show a tqdm progress bar over (arm, seed, round).
    observers : sequence of callables or None
        ``observer(learner, X_pool_remaining, n_labels) -> dict`` after every round's fit;
        the dict's items are extra columns of the round's row (see the module docstring).
    allow_thread_change : bool, default False
        Resume a state written with another torch thread count (warns) instead of
        raising :class:`~benchmarks.harness.store.SettingsError`.
    log : callable
        Where notes go (pool exhausted, resumed curves).

    Returns
    -------
    rows : list of dict
        Keys ``benchmarks.harness.reporting.ROW_FIELDS`` (plus the observers' columns) for the
        requested arms, seeds and rounds ``0..rounds``; ``query_s`` is None for round 0.
        ``strategy`` holds the arm's name.

    Raises
    ------
    SettingsError
        Settings that differ from the saved state, another thread count, an initial set
        not smaller than the pool.
    benchmarks.harness.store.OutputLockedError
        Another run holds ``out_dir``.
    """
    from tqdm.auto import tqdm

    observers = check_observers(observers)
    n_pool = int(data.X_pool.shape[0])
    if not 1 <= initial < n_pool:
        raise SettingsError(f"the initial labeled set ({initial}) must be smaller than the "
                            f"pool ({n_pool} rows)")
    with RunStore(out_dir, config, allow_thread_change=allow_thread_change) as store:
        runs = store.read_runs()
        _check_arms(runs, arms, seeds, store.state_path)
        done = sum(_rounds_finished(runs.get(run_key(arm.name, seed)), rounds)
                   for arm in arms for seed in seeds)
        with tqdm(total=len(arms) * len(seeds) * (rounds + 1), initial=done,
                  disable=not progress, desc="rounds", dynamic_ncols=True) as bar:
            loop = _Loop(data, int(initial), int(budget), int(rounds), int(epochs), device,
                         observers, store, bar, log)
            for arm in arms:
                for seed in seeds:
                    key = run_key(arm.name, seed)
                    runs[key] = _run_curve(loop, arm, int(seed), runs.get(key))
    return [dict(row) for arm in arms for seed in seeds
            for row in runs[run_key(arm.name, seed)]["rows"] if row["round"] <= rounds]


def _check_arms(runs, arms, seeds, state_path):
    for arm in arms:
        for seed in seeds:
            run = runs.get(run_key(arm.name, seed))
            if run is not None and run["arm"] is not None and run["arm"] != arm.describe():
                raise SettingsError(f"cannot resume from {state_path}: arm {arm.name!r} was "
                                    f"run as {run['arm']}, now {arm.describe()}; use another "
                                    "--out")


def _rounds_finished(run, rounds) -> int:
    if run is None:
        return 0
    return rounds + 1 if run.get("exhausted") else min(run["rounds_done"], rounds) + 1


def _run_curve(loop: _Loop, arm: Arm, seed: int, run):
    """One (arm, seed) curve from where its saved state ends (``_run_trial``'s place)."""
    if run is not None and (run["rounds_done"] >= loop.rounds or run.get("exhausted")):
        return run
    loop.bar.set_postfix_str(f"{arm.name} seed={seed}")
    learner, run = _start_curve(loop, arm, seed, run)
    for round_ in range(run["rounds_done"] + 1, loop.rounds + 1):
        if not _run_round(loop, arm, learner, run, round_):
            break
    return run


def _start_curve(loop: _Loop, arm: Arm, seed: int, run):
    """The learner of a curve: refitted on the saved labeled set, or a new curve."""
    if run is not None and run["labeled"] is not None:
        loop.log(f"resuming {arm.name} seed={seed} after round {run['rounds_done']} "
                 f"({len(run['labeled'])} labels): refitting on the saved labeled set")
        learner, _ = _fit_learner(loop, arm, seed, run["labeled"])
        _observe(loop.observers, learner, loop.data.X_pool[_remaining(loop, run)],
                 len(run["labeled"]))  # replays the fit to stateful observers
        return learner, run
    if run is not None:
        loop.log(f"recomputing {arm.name} seed={seed} from its initial set: its labeled "
                 "set was lost with the unreadable state")
    labeled = [int(i) for i in initial_indices(loop.n_pool, loop.initial, seed)]
    learner, fit_s = _fit_learner(loop, arm, seed, labeled)
    run = {"arm": arm.describe(), "seed": seed, "labeled": labeled, "rounds_done": -1,
           "exhausted": False, "rows": []}
    _finish_round(loop, arm, learner, run, 0, fit_s, None)
    return learner, run


def _fit_learner(loop: _Loop, arm: Arm, seed: int, labeled):
    """A new ``ActiveLearner`` fitted on ``labeled``, and the seconds its fit took."""
    from modAL.models import ActiveLearner

    estimator = build_estimator(arm, loop.data, epochs=loop.epochs, seed=seed,
                                device=loop.device)
    start = time.perf_counter()
    learner = ActiveLearner(estimator=estimator, query_strategy=arm.spec.load(),
                            X_training=loop.data.X_pool[labeled],
                            y_training=loop.data.y_pool[labeled])
    return learner, time.perf_counter() - start


def _remaining(loop: _Loop, run) -> np.ndarray:
    is_labeled = np.zeros(loop.n_pool, dtype=bool)
    is_labeled[run["labeled"]] = True
    return np.flatnonzero(~is_labeled)


def _run_round(loop: _Loop, arm: Arm, learner, run, round_: int) -> bool:
    """Query, teach, score and save one round; False when the pool is exhausted."""
    remaining = _remaining(loop, run)
    if remaining.size == 0:
        loop.log(f"{arm.name} seed={run['seed']}: the pool is exhausted after round "
                 f"{round_ - 1} ({len(run['labeled'])} labels); stopping this curve")
        run["exhausted"] = True
        loop.store.write_run(run_key(arm.name, run["seed"]), run)
        loop.bar.update(loop.rounds + 1 - round_)
        return False
    n_query = min(loop.budget, int(remaining.size))
    query_kwargs = dict(arm.query_params)
    if arm.spec.accepts_random_state:
        query_kwargs.setdefault("random_state", query_random_state(run["seed"], round_))
    start = time.perf_counter()
    picked = learner.query(loop.data.X_pool[remaining], n_instances=n_query,
                           **query_kwargs)[0]
    query_s = time.perf_counter() - start
    new = remaining[_check_picked(picked, remaining.size, n_query, arm.name)]
    start = time.perf_counter()
    learner.teach(loop.data.X_pool[new], loop.data.y_pool[new])
    fit_s = time.perf_counter() - start
    run["labeled"].extend(int(i) for i in new)
    _finish_round(loop, arm, learner, run, round_, fit_s, query_s)
    return True


def _finish_round(loop: _Loop, arm: Arm, learner, run, round_, fit_s, query_s):
    """Score the round's fit, ask the observers, save the row."""
    metric = evaluate(learner.estimator, loop.data.X_test, loop.data.y_test, loop.data.task)
    row = {"strategy": arm.name, "seed": run["seed"], "round": int(round_),
           "n_labels": len(run["labeled"]), "metric": float(metric),
           "fit_s": _seconds(fit_s), "query_s": _seconds(query_s)}
    row.update(_observe(loop.observers, learner, loop.data.X_pool[_remaining(loop, run)],
                        len(run["labeled"])))
    run["rows"].append(row)
    run["rounds_done"] = int(round_)
    loop.store.write_run(run_key(arm.name, run["seed"]), run)
    loop.bar.update(1)


def _seconds(value):
    return None if value is None or not np.isfinite(value) else float(value)


def _check_picked(picked, n_remaining, n_query, name):
    picked = np.asarray(picked).astype(np.int64).ravel()
    if picked.size != n_query or np.unique(picked).size != picked.size \
            or picked.min() < 0 or picked.max() >= n_remaining:
        raise RuntimeError(f"strategy {name} returned {picked.size} indices "
                           f"({np.unique(picked).size} unique) for {n_query} queries from a "
                           f"pool of {n_remaining}")
    return picked


def _observe(observers, learner, X_pool_remaining, n_labels) -> dict:
    """The observers' columns for one round, checked."""
    columns = {}
    for observer in observers:
        name = getattr(observer, "__name__", repr(observer))
        values = observer(learner, X_pool_remaining, n_labels)
        if not isinstance(values, Mapping):
            raise TypeError(f"observer {name} returned {type(values).__name__}; it must "
                            "return a dict of column -> value")
        for key, value in values.items():
            if not isinstance(key, str) or key in ROW_FIELDS or key in columns:
                raise ValueError(f"observer {name}: column {key!r} must be a new string "
                                 f"(not one of {', '.join(ROW_FIELDS)} or another "
                                 "observer's)")
            columns[key] = _cell_value(value, name, key)
    return columns


def _cell_value(value, name, key):
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"observer {name}: column {key!r} got {type(value).__name__}; "
                    "values must be numbers, strings, booleans or None")
