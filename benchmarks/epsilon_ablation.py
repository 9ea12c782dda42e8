"""Epsilon ablation (paper section 5.4): ALLY's learning curves for several epsilon.

Each arm is ALLY (``PDCLNet`` + ``ally_query_strategy``) with one constraint level:
fixed values in nats of cross-entropy (MSE of standardized targets for regression) and
``"auto"`` (epsilon = ``auto_epsilon_factor`` x the mean loss of the same network trained
without constraints: one extra fit per round). Random sampling is run beside them as a
reference. Same loop, outputs and resume behaviour as ``benchmarks.learning_curves``
(``rounds.csv``, ``summary.csv``, ``summary.md``, ``learning_curves.png``, ``state.json``).

Example
-------
::

    python -m benchmarks.epsilon_ablation --epsilons 0.05,0.1,0.2,0.5,1.0,auto --seeds 3
"""

from __future__ import annotations

import argparse

from benchmarks.harness import cli
from benchmarks.harness.metrics import metric_info
from benchmarks.harness.registry import Arm, parse_names

DEFAULT_EPSILONS = "0.05,0.1,0.2,0.5,1.0,auto"


def parse_epsilons(text: str) -> list:
    """``"0.1,auto"`` -> ``[0.1, "auto"]``; rejects negative or unknown values."""
    values = []
    for item in parse_names(text):
        if item == "auto":
            values.append("auto")
            continue
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--epsilons: {item!r} is neither a number nor 'auto'") from None
        if not value >= 0:
            raise ValueError(f"--epsilons: {item!r} must be >= 0")
        values.append(value)
    if not values:
        raise ValueError("--epsilons: give at least one value")
    return values


def build_arms(epsilons, *, with_random: bool = True) -> list:
    """One ALLY arm per epsilon (``"ally eps=0.2"``), plus random sampling."""
    # the paper's ALLY (method="paper"), whose epsilon the paper ablates
    arms = [Arm(f"ally eps={eps}", "ally", {"epsilon": eps}, {"method": "paper"})
            for eps in epsilons]
    if with_random:
        arms.append(Arm("random", "random"))
    return arms


def build_parser() -> argparse.ArgumentParser:
    parser = cli.loop_parser("python -m benchmarks.epsilon_ablation",
                             __doc__.splitlines()[0], seeds=3)
    parser.add_argument("--epsilons", default=DEFAULT_EPSILONS,
                        help="comma-separated epsilon values and/or 'auto' "
                             "(default: %(default)s)")
    parser.add_argument("--no-random", action="store_true",
                        help="leave out the random-sampling reference")
    return parser


def main(argv=None) -> dict:
    """Run the ablation; returns ``rows``, ``summary`` and ``paths`` as learning_curves."""
    parser = build_parser()
    args = cli.parse_loop_args(parser, argv)
    try:
        epsilons = parse_epsilons(args.epsilons)
        data = cli.load_benchmark_data(args)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    out = cli.out_dir(args, "epsilon_ablation", args.dataset)
    metric_name, _ = metric_info(data.task)
    title = (f"epsilon ablation, {args.dataset}: test {metric_name}, initial {args.initial}, "
             f"budget {args.budget}/round, {args.seeds} seed(s)")
    return cli.run_benchmark(parser, args, data,
                                build_arms(epsilons, with_random=not args.no_random), out,
                                title=title)


if __name__ == "__main__":
    main()
