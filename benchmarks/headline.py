"""The README's headline table: ALLY's default against every strategy a user could pick.

    python -m benchmarks.headline docs/results/ally/digits docs/results/ally/manyclass ... \\
        --out docs/results/ally/headline.md

Reads each folder's ``rounds.csv`` and ``summary.csv`` (the ``--report`` folders of
``benchmarks.label_efficiency``) and writes one row per folder: the default rule's area
under the learning curve (``ally``), the best strategy other than ALLY's arms by mean AULC, the
paired per-seed difference to it (mean ± std, ddof=1, and the seeds on which the default
is better), the default's rank among the strategies a user can pick (the ablation arms,
which no option selects, are left out of the rank), its paired difference to random
sampling and to the paper's rule, and the ablation: the same rule with every dual weight 1
(``ally-nolambda``), default minus ablation. For a regression task (MSE) lower is better
and every "better" counts that way. Seeds are those every arm of the folder finished.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from benchmarks.harness.metrics import paired_difference
from benchmarks.harness.paired import DISPLAY, per_seed_aulc, read_rounds
from benchmarks.harness.reporting import markdown_table, ordinal, write_atomic

#: Arms that are not a strategy a user can pick (ablations of the default rule).
ABLATIONS = frozenset({"ally-nolambda", "grad-nolambda"})
#: ALLY's own arms (never "the best other strategy").
ALLY_ARMS = frozenset({"ally", "ally-paper", *ABLATIONS})
#: The report folders name arms as the final tables do (``DISPLAY``); back to arm names.
ARM_OF = {"ALLY default": "ally", "ALLY paper": "ally-paper",
          DISPLAY["ally-nolambda"]: "ally-nolambda", DISPLAY["grad-nolambda"]: "grad-nolambda"}


def _higher_is_better(folder: Path) -> bool:
    with (folder / "summary.csv").open() as handle:
        names = {row["metric_name"] for row in csv.DictReader(handle)}
    if len(names) != 1:
        raise ValueError(f"{folder}: summary.csv mixes metrics {sorted(names)}")
    return names.pop() != "mse"


def headline_row(folder: Path, default: str = "ally") -> dict:
    """The comparison of one finished run (see the module docstring)."""
    higher = _higher_is_better(folder)
    aulc = {ARM_OF.get(arm, arm): per_seed
            for arm, per_seed in per_seed_aulc(read_rounds(folder / "rounds.csv")).items()}
    if default not in aulc:
        raise ValueError(f"{folder}: no arm {default!r} (arms: {', '.join(aulc)})")
    seeds = sorted(set.intersection(*(set(v) for v in aulc.values())))
    values = {arm: np.array([per_seed[s] for s in seeds]) for arm, per_seed in aulc.items()}
    means = {arm: v.mean() for arm, v in values.items()}
    others = [arm for arm in values if arm not in ALLY_ARMS]
    if not others:
        raise ValueError(f"{folder}: no strategy other than ALLY's arms")
    pick = max if higher else min
    best = pick(others, key=means.get)
    pickable = [arm for arm in values if arm not in ABLATIONS]
    ordered = sorted(pickable, key=means.get, reverse=higher)
    row = {"task": folder.name, "seeds": len(seeds), "higher": higher,
           "default": means[default], "best": best, "best_mean": means[best],
           "vs_best": paired_difference(values[default], values[best], higher),
           "rank": ordered.index(default) + 1, "of": len(pickable)}
    for name, arm in (("vs_random", "random"), ("vs_paper", "ally-paper"),
                      ("ablation", "ally-nolambda")):
        if arm in values:
            row[name] = paired_difference(values[default], values[arm], higher)
    return row


def _cell(row, key):
    if key not in row:
        return "—"
    mean, std, better = row[key]
    digits = 4 if row["higher"] else 2
    return f"{mean:+.{digits}f} ± {std:.{digits}f} ({better}/{row['seeds']})"


def headline_markdown(rows) -> str:
    cells = []
    for row in rows:
        digits = 4 if row["higher"] else 2
        name = {"badge": "BADGE", "coreset": "Core-Set"}.get(row["best"], row["best"])
        cells.append([row["task"] + ("" if row["higher"] else " (MSE)"), row["seeds"],
                      f"{row['default']:.{digits}f}",
                      f"{name} {row['best_mean']:.{digits}f}", _cell(row, "vs_best"),
                      f"{ordinal(row['rank'])} of {row['of']}", _cell(row, "vs_random"),
                      _cell(row, "vs_paper"), _cell(row, "ablation")])
    lines = ["# ALLY's default against every strategy a user could pick", "",
             "Area under the learning curve (mean test accuracy over the labeling budget; "
             "test MSE where marked, lower is better), mean over seeds. Differences are "
             "paired per seed: default - other, mean ± std (ddof=1), and the seeds on which "
             "the default is better. *Rank*: among the strategies a user can pick (the "
             "ablation is left out). *Ablation*: default - the same rule with every dual "
             "weight 1.", ""]
    lines += markdown_table(["task", "seeds", "ALLY default", "best other strategy",
                             "default - best other", "rank", "default - random",
                             "default - paper rule", "default - ablation"], cells)
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="label_efficiency --report folders")
    parser.add_argument("--out", help="write the table here too")
    args = parser.parse_args(argv)
    text = headline_markdown([headline_row(Path(f)) for f in args.folders])
    if args.out:
        write_atomic(Path(args.out), text)
    print(text)


if __name__ == "__main__":
    main()
