"""Learning curves of ALLY and the baselines: test metric against the number of labels.

Every strategy runs through a real ``modAL.models.ActiveLearner`` loop from the same
random initial labeled set per seed: ``learner.query(X_remaining, n_instances=budget)``,
then ``learner.teach(...)`` (a refit from scratch), for ``--rounds`` rounds. The ALLY
strategies train :class:`modal_ally.PDCLNet` (:class:`modal_ally.PDCLRegressor` for
regression); the others train the same module without constraints (a plain skorch net:
same optimizer, learning rate, batch size, epochs and seeding; see
``benchmarks/harness/estimators.py``).

Outputs in ``--out`` (default ``results/learning_curves/<dataset>``):

``rounds.csv``
    One row per (strategy, seed, round): ``strategy, seed, round, n_labels, metric,
    fit_s, query_s`` (round 0 is the initial fit: no query), then one column per value
    of the observers, if any (rewritten after every round while the run lasts);
    ``--stopping`` adds every stopping criterion's statistic and decision
    (``<criterion>_statistic``, ``<criterion>_stop``; see ``benchmarks/stopping.py``).
``summary.csv``, ``summary.md``
    Per strategy, mean and std over seeds of the area under the learning curve, the
    final metric and the labels needed to reach 97 % of the final metric (definitions in
    the header of ``summary.md``).
``learning_curves.png``
    Mean curve and ± std band per strategy.
``state.json``
    The labeled pool indices and the rows of every (strategy, seed) after its last
    finished round, with torch's thread count and version: rerunning with the same
    ``--out`` resumes (more ``--rounds``, ``--seeds`` or ``--strategies`` compute only
    what is missing; another thread count is refused unless ``--allow-thread-change``).
``run.lock``
    The pid, host and start time of the run using the folder; a second run on the same
    ``--out`` stops at once and names them.

Examples
--------
::

    python -m benchmarks.learning_curves --dataset digits --strategies ally,random,badge
    python -m benchmarks.learning_curves --dataset diabetes --initial 50 --budget 25
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.harness import cli, registry
from benchmarks.harness.metrics import metric_info


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = cli.loop_parser(
        "python -m benchmarks.learning_curves",
        "Active-learning curves (test metric vs labels) of ALLY and baselines.")
    parser.add_argument(
        "--strategies", default="all",
        help="comma-separated strategies, or 'all' (default): "
             + ", ".join(registry.ALL_STRATEGIES))
    parser.add_argument(
        "--stopping", action="store_true",
        help="record every stopping criterion of modal_ally.stopping per round (columns "
             "<criterion>_statistic and <criterion>_stop of rounds.csv)")
    return parser


def main(argv=None, *, observers=None) -> dict:
    """Run the benchmark.

    Parameters
    ----------
    argv : list of str or None
        Command-line arguments (``sys.argv[1:]`` when None).
    observers : sequence of callables or None
        Called after every round's fit; their values become extra columns of
        ``rounds.csv`` (see :mod:`benchmarks.harness.loop`).

    Returns
    -------
    result : dict
        ``rows`` (list of dict, as ``rounds.csv``), ``summary`` (list of dict, as
        ``summary.csv``) and ``paths`` (the files written).
    """
    parser = build_parser()
    args = cli.parse_loop_args(parser, argv)
    try:
        data = cli.load_benchmark_data(args)
        names, notes = registry.resolve_strategies(args.strategies, data.task)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    for note in notes:
        print(f"note: {note}")
    if not names:
        parser.error("no strategy left to run")
    if args.stopping:
        from benchmarks.harness.stopping_criteria import StoppingObserver

        observers = [*(observers or ()), StoppingObserver(
            data.task, budget=args.budget, n_pool=int(data.X_pool.shape[0]))]
    out = Path(args.out) if args.out else Path("results", "learning_curves", args.dataset)
    metric_name, _ = metric_info(data.task)
    title = (f"{args.dataset}: test {metric_name}, initial {args.initial}, "
             f"budget {args.budget}/round, {args.seeds} seed(s)")
    return cli.run_benchmark(parser, args, data, registry.arms_from_names(names), out,
                                title=title, observers=observers)


if __name__ == "__main__":
    main()
