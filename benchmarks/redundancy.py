"""Redundancy experiment (paper section 5.5): accuracy against pool redundancy r.

``digits-redundant`` repeats every pool sample r times. Informativeness-only methods
then spend their budget on copies of the same sample. For each r in ``--redundancies``
(default 1, 2, 4, 8) the script runs, through the same modAL loop as
``benchmarks.learning_curves``:

- ``entropy``: modAL's entropy sampling (informativeness only),
- ``ally``: ALLY with k = b clusters (``--budget``),
- ``ally-lowdiv``: ALLY with k = ``--low-clusters`` < b (little diversity),
- ``ally-redundancy``: the redundancy-aware variant (delta-ball exclusion),

and reports the test accuracy after ``--rounds`` rounds against r.

Outputs in ``--out`` (default ``results/redundancy``): ``redundancy.csv`` and
``redundancy.md`` (mean and std of the final accuracy and of the number of distinct
original samples labeled, per strategy and r), ``redundancy.png``, and one
learning-curve report per r in ``r<r>/`` (resumable like the other benchmarks; its
``rounds.csv`` has a ``distinct_labeled`` column, written by an observer).

Example
-------
::

    python -m benchmarks.redundancy --redundancies 1,2,4,8 --seeds 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.harness import cli
from benchmarks.harness.metrics import mean_std
from benchmarks.harness.registry import Arm
from benchmarks.harness.reporting import figure, markdown_table, write_atomic, write_csv

FIELDS = ("strategy", "redundancy", "n_seeds", "n_labels", "final_mean", "final_std",
          "distinct_mean", "distinct_std")


def build_arms(budget: int, low_clusters: int) -> list:
    """The four arms: entropy, the paper's ALLY with k = ``budget`` clusters, with
    k = ``low_clusters`` < ``budget``, and the redundancy-aware ALLY."""
    if not 1 <= low_clusters < budget:
        raise ValueError(f"--low-clusters must be in [1, budget={budget}), got {low_clusters}")
    return [Arm("entropy", "entropy"),
            # the paper's rule (section 5.5): n_clusters defaults to n_instances = budget
            Arm("ally", "ally", query_params={"method": "paper"}),
            Arm(f"ally-lowdiv (k={low_clusters})", "ally",
                query_params={"method": "paper", "n_clusters": low_clusters}),
            Arm("ally-redundancy", "ally-redundancy")]


def distinct_labeled(learner, X_pool_remaining, n_labels) -> dict:
    """Observer: distinct samples among the labeled rows (by content: copies are exact)."""
    return {"distinct_labeled": int(len(np.unique(learner.X_training, axis=0)))}


def build_parser() -> argparse.ArgumentParser:
    parser = cli.loop_parser("python -m benchmarks.redundancy", __doc__.splitlines()[0],
                             dataset="digits-redundant", seeds=3)
    parser.add_argument("--redundancies", default="1,2,4,8",
                        help="values of r (default: %(default)s)")
    parser.add_argument("--low-clusters", type=int, default=10,
                        help="k of the low-diversity ALLY arm (default: %(default)s)")
    return parser


def main(argv=None) -> dict:
    """Run the experiment; returns ``table`` (rows of redundancy.csv) and ``paths``."""
    parser = build_parser()
    args = cli.parse_loop_args(parser, argv)
    if args.dataset != "digits-redundant":
        parser.error("--dataset must be digits-redundant")
    try:
        redundancies = cli.parse_int_list(args.redundancies, name="--redundancies")
        arms = build_arms(args.budget, args.low_clusters)
    except ValueError as exc:
        parser.error(str(exc))
    out = cli.out_dir(args, "redundancy")
    table = []
    for redundancy in redundancies:
        args.redundancy = redundancy
        rows = cli.run_benchmark(parser, args, cli.load_benchmark_data(args), arms,
                                 out / f"r{redundancy}", print_report=False,
                                 title=f"digits-redundant r={redundancy}",
                                 observers=[distinct_labeled])["rows"]
        table += [_table_row(arm.name, redundancy, rows, args.rounds) for arm in arms]
    paths = write_outputs(table, out, redundancies=redundancies, args=args)
    print(paths["markdown"])
    print(f"table: {paths['csv']} and {paths['md']}\nplot:  {paths['png']}", flush=True)
    return {"table": table, "paths": paths}


def _table_row(name, redundancy, rows, rounds) -> dict:
    last = [r for r in rows if r["strategy"] == name and r["round"] == rounds]
    final = mean_std([r["metric"] for r in last])
    distinct = mean_std([r.get("distinct_labeled") for r in last])
    return {"strategy": name, "redundancy": redundancy, "n_seeds": len(last),
            "n_labels": last[0]["n_labels"] if last else None,
            "final_mean": final[0], "final_std": final[1],
            "distinct_mean": distinct[0], "distinct_std": distinct[1]}


def write_outputs(table, out: Path, *, redundancies, args) -> dict:
    """Write redundancy.csv, redundancy.md and redundancy.png."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "redundancy.csv", "md": out / "redundancy.md",
             "png": out / "redundancy.png"}
    write_csv(paths["csv"], FIELDS, table)
    strategies = list(dict.fromkeys(row["strategy"] for row in table))
    cell = {(row["strategy"], row["redundancy"]): row for row in table}
    header = ["strategy", *(f"r={r}" for r in redundancies)]
    lines = [f"# Redundancy: test accuracy after {args.rounds} rounds of {args.budget} "
             f"queries (initial {args.initial}, {args.seeds} seed(s), mean ± std)", ""]
    lines += markdown_table(header, [[name, *(
        f"{cell[name, r]['final_mean']:.4f} ± {cell[name, r]['final_std']:.4f}"
        for r in redundancies)] for name in strategies])
    lines += ["", "Distinct original samples among the labeled rows (out of "
              f"{table[0]['n_labels'] if table else '?'}):", ""]
    lines += markdown_table(header, [[name, *(
        f"{cell[name, r]['distinct_mean']:.1f}" for r in redundancies)]
        for name in strategies])
    paths["markdown"] = "\n".join(lines) + "\n"
    write_atomic(paths["md"], paths["markdown"])
    with figure(paths["png"], figsize=(6, 4)) as (_, ax):
        for name in strategies:
            ax.errorbar(redundancies, [cell[name, r]["final_mean"] for r in redundancies],
                        yerr=[cell[name, r]["final_std"] for r in redundancies],
                        marker="o", capsize=3, label=name)
        ax.set_xscale("log", base=2)
        ax.set_xticks(redundancies, [str(r) for r in redundancies])
        ax.set_xlabel("redundancy r (copies of each pool sample)")
        ax.set_ylabel(f"test accuracy after {args.rounds} rounds")
        ax.legend()
    return paths


if __name__ == "__main__":
    main()
