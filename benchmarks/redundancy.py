"""Redundancy experiment (paper section 5.5): accuracy against pool redundancy r.

``digits-redundant`` repeats every pool sample r times. Informativeness-only methods
then spend their budget on copies of the same sample. For each r in ``--redundancies``
(default 1, 2, 4, 8) the script runs, through the same modAL loop as
``benchmarks.learning_curves``:

- ``entropy``: modAL's entropy sampling (informativeness only),
- ``ally``: ALLY with k = b clusters,
- ``ally-lowdiv``: ALLY with k = ``--low-clusters`` < b (little diversity),
- ``ally-redundancy``: the redundancy-aware variant (delta-ball exclusion),

and reports the test accuracy after ``--rounds`` rounds against r.

Outputs in ``--out`` (default ``results/redundancy``): ``redundancy.csv`` and
``redundancy.md`` (mean and std of the final accuracy and of the number of distinct
original samples labeled, per strategy and r), ``redundancy.png``, and one
learning-curve report per r in ``r<r>/`` (resumable like the other benchmarks).

Example
-------
::

    python -m benchmarks.redundancy --redundancies 1,2,4,8 --seeds 3
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from benchmarks import common

FIELDS = ("strategy", "redundancy", "n_seeds", "n_labels", "final_mean", "final_std",
          "distinct_mean", "distinct_std")


def build_arms(budget: int, low_clusters: int) -> list:
    return [common.Arm("entropy", "entropy"),
            common.Arm("ally", "ally"),
            common.Arm(f"ally-lowdiv (k={low_clusters})", "ally",
                       query_params={"n_clusters": low_clusters}),
            common.Arm("ally-redundancy", "ally-redundancy")]


def _distinct_labeled(out_dir: Path, arm: str, seed: int, X_pool) -> int:
    """Distinct samples (by content: the copies are exact) among an arm's labeled rows."""
    import json

    state = json.loads((out_dir / common.STATE_FILE).read_text())
    labeled = state["runs"][common._run_key(arm, seed)]["labeled"]
    return len(np.unique(X_pool[np.asarray(labeled, dtype=np.int64)], axis=0))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redundancy",
                                     description=__doc__.splitlines()[0])
    common.add_loop_arguments(parser, dataset="digits-redundant", seeds=3)
    parser.add_argument("--redundancies", default="1,2,4,8",
                        help="values of r (default: %(default)s)")
    parser.add_argument("--low-clusters", type=int, default=10,
                        help="k of the low-diversity ALLY arm (default: %(default)s)")
    return parser


def main(argv=None) -> dict:
    """Run the experiment; returns ``table`` (rows of redundancy.csv) and ``paths``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    common.check_loop_arguments(parser, args)
    if args.dataset != "digits-redundant":
        parser.error("--dataset must be digits-redundant")
    try:
        redundancies = common.parse_int_list(args.redundancies, name="--redundancies")
    except ValueError as exc:
        parser.error(str(exc))
    if not 1 <= args.low_clusters < args.budget:
        parser.error(f"--low-clusters must be in [1, budget), got {args.low_clusters}")
    out = Path(args.out) if args.out else Path("results", "redundancy")
    arms = build_arms(args.budget, args.low_clusters)
    table = []
    for redundancy in redundancies:
        args.redundancy = redundancy
        data = common.load_benchmark_data(args)
        out_r = out / f"r{redundancy}"
        rows = common.run_benchmark(parser, args, data, arms, out_r, print_report=False,
                                    title=f"digits-redundant r={redundancy}")["rows"]
        for arm in arms:
            last = [r for r in rows if r["strategy"] == arm.name and r["round"] == args.rounds]
            finals = np.array([r["metric"] for r in last], dtype=float)
            distinct = np.array([_distinct_labeled(out_r, arm.name, r["seed"], data.X_pool)
                                 for r in last], dtype=float)
            table.append({
                "strategy": arm.name, "redundancy": redundancy, "n_seeds": len(last),
                "n_labels": last[0]["n_labels"] if last else None,
                "final_mean": finals.mean(), "final_std": finals.std(ddof=1) if len(last) > 1
                else 0.0, "distinct_mean": distinct.mean(),
                "distinct_std": distinct.std(ddof=1) if len(last) > 1 else 0.0})
    paths = write_outputs(table, out, redundancies=redundancies, args=args)
    print(paths["markdown"])
    print(f"table: {paths['csv']} and {paths['md']}\nplot:  {paths['png']}")
    sys.stdout.flush()
    return {"table": table, "paths": paths}


def write_outputs(table, out: Path, *, redundancies, args) -> dict:
    """Write redundancy.csv, redundancy.md and redundancy.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path = (out / "redundancy.csv", out / "redundancy.md",
                                   out / "redundancy.png")
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(table)
    strategies = list(dict.fromkeys(row["strategy"] for row in table))
    lines = [f"# Redundancy: test accuracy after {args.rounds} rounds of {args.budget} "
             f"queries (initial {args.initial}, {args.seeds} seed(s), mean ± std)", "",
             "| strategy | " + " | ".join(f"r={r}" for r in redundancies) + " |",
             "|---|" + "---|" * len(redundancies)]
    cell = {(row["strategy"], row["redundancy"]): row for row in table}
    for name in strategies:
        lines.append(f"| {name} | " + " | ".join(
            f"{cell[name, r]['final_mean']:.4f} ± {cell[name, r]['final_std']:.4f}"
            for r in redundancies) + " |")
    lines += ["", "Distinct original samples among the labeled rows (out of "
              f"{table[0]['n_labels'] if table else '?'}):", "",
              "| strategy | " + " | ".join(f"r={r}" for r in redundancies) + " |",
              "|---|" + "---|" * len(redundancies)]
    for name in strategies:
        lines.append(f"| {name} | " + " | ".join(
            f"{cell[name, r]['distinct_mean']:.1f}" for r in redundancies) + " |")
    markdown = "\n".join(lines) + "\n"
    md_path.write_text(markdown)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in strategies:
        means = np.array([cell[name, r]["final_mean"] for r in redundancies])
        stds = np.array([cell[name, r]["final_std"] for r in redundancies])
        ax.errorbar(redundancies, means, yerr=stds, marker="o", capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(redundancies, [str(r) for r in redundancies])
    ax.set_xlabel("redundancy r (copies of each pool sample)")
    ax.set_ylabel(f"test accuracy after {args.rounds} rounds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return {"csv": csv_path, "md": md_path, "png": png_path, "markdown": markdown}


if __name__ == "__main__":
    main()
