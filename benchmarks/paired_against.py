"""Paired differences of every arm of finished runs against one reference arm.

    python -m benchmarks.paired_against --reference gradw-shrink \\
        docs/results/default_fast/digits docs/results/default_fast/mnist ...

Reads each folder's ``rounds.csv`` (written by ``benchmarks.ally_screen``), computes every
arm's area under the learning curve per seed, and writes ``paired_vs_<reference>.md``
next to it: per arm, mean ± std of the AULC and of the per-seed difference to the
reference (arm - reference; for a regression task lower is better), the seeds on which
the arm is better, and the difference over its standard error. Seeds are those every
arm of the folder finished.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from benchmarks.ally_screen import per_seed_aulc
from benchmarks.harness.metrics import paired_difference
from benchmarks.harness.reporting import markdown_table, write_atomic


def _rows(path: Path):
    rows = list(csv.DictReader(path.open()))
    for row in rows:
        for key in ("seed", "round", "n_labels"):
            row[key] = int(row[key])
        row["metric"] = float(row["metric"])
    return rows


def paired(folder: Path, reference: str, higher: bool) -> list[list]:
    """Table rows for one folder."""
    aulc = per_seed_aulc(_rows(folder / "rounds.csv"))
    if reference not in aulc:
        raise ValueError(f"{folder}: no arm {reference!r} (arms: {', '.join(aulc)})")
    return paired_rows(aulc, reference, higher)


def paired_rows(aulc, reference: str, higher: bool) -> list[list]:
    """Per arm of ``{arm: {seed: AULC}}``: seeds, AULC mean ± std, the paired difference to
    ``reference`` (mean ± std), the seeds on which the arm is better, and the difference
    over its standard error; on the seeds every arm finished."""
    seeds = sorted(set.intersection(*(set(v) for v in aulc.values())))
    ref = np.array([aulc[reference][s] for s in seeds])
    digits = 4 if higher else 2
    out = []
    for arm, per_seed in aulc.items():
        values = np.array([per_seed[s] for s in seeds])
        mean, std, better = paired_difference(values, ref, higher)
        spread = values.std(ddof=1) if len(seeds) > 1 else 0.0
        out.append([arm, len(seeds), f"{values.mean():.{digits}f} ± {spread:.{digits}f}",
                    "—" if arm == reference else f"{mean:+.{digits}f} ± {std:.{digits}f}",
                    "—" if arm == reference else f"{better}/{len(seeds)}",
                    "—" if arm == reference or not std else
                    f"{mean / (std / np.sqrt(len(seeds))):+.2f}"])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--reference", required=True)
    parser.add_argument("--lower-is-better", default="parkinsons,diabetes",
                        help="folders whose name contains one of these hold a regression "
                             "task (MSE: lower is better)")
    args = parser.parse_args(argv)
    lower = [s for s in args.lower_is_better.split(",") if s]
    for folder in map(Path, args.folders):
        higher = not any(name in folder.name for name in lower)
        table = markdown_table(
            ["arm", "seeds", "AULC", f"arm - {args.reference}", "seeds better",
             "difference / its standard error"],
            paired(folder, args.reference, higher))
        text = "\n".join([f"# {folder.name}: every arm against {args.reference}", "",
                          f"AULC of test {'accuracy (higher' if higher else 'MSE (lower'} "
                          "is better), mean ± std over seeds (ddof=1).", ""] + table) + "\n"
        write_atomic(folder / f"paired_vs_{args.reference}.md", text)
        print(text)


if __name__ == "__main__":
    main()
