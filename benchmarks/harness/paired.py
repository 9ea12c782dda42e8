"""Paired comparisons of the arms of finished runs, per seed: what the label-efficiency
tables, the headline, the noisy-oracle report, the text benchmark and the research
records share.

An arm's area under the learning curve (AULC) per seed (:func:`per_seed_aulc`), the paired
table of every arm against references and the best other arm (:func:`paired_table`,
:func:`paired_markdown`), and the rows of one folder against one reference arm
(:func:`paired_rows`, ``python -m benchmarks.paired_against``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from benchmarks.harness.metrics import curves, learning_curve_area, metric_info, paired_difference

__all__ = ["BEST", "DISPLAY", "paired_markdown", "paired_rows", "paired_table",
           "per_seed_aulc", "read_rounds"]


#: Names in the final tables (arms that are the same rule share a name).
DISPLAY = {"ally": "ALLY default", "gradw": "ALLY default",
           "ally-paper": "ALLY paper", "paper": "ALLY paper",
           "ally-nolambda": "ALLY default without lambda (ablation)",
           "grad-nolambda": "BADGE's draw on the PDCL net (previous ablation)"}


def per_seed_aulc(rows):
    """{arm: {seed: AULC}}."""
    out = {}
    for name, per_seed in curves(rows).items():
        out[name] = {seed: learning_curve_area(n, m) for seed, (n, m) in per_seed.items()}
    return out


def _best_other(matrix, names, i, eligible, higher):
    """The name of the best arm by mean AULC among ``eligible`` ones other than arm i."""
    others = [j for j, name in enumerate(names) if j != i and name in eligible]
    if not others:
        return None
    means = matrix[others].mean(axis=1)
    return names[others[int(means.argmax() if higher else means.argmin())]]


#: The comparisons against the best other arm: column key -> markdown header.
BEST = {"best_other": "vs the best other arm", "best_baseline": "vs the best baseline"}


def paired_table(rows, task, references=("random", "paper"), baselines=None):
    """Rows of the paired comparison (see the module docstring).

    ``baselines`` (names): also compare every arm with the best of these (``best_baseline``).
    """
    _, higher = metric_info(task)
    aulc = per_seed_aulc(rows)
    seeds = sorted(set.intersection(*(set(v) for v in aulc.values())))
    names = list(aulc)
    matrix = np.array([[aulc[n][s] for s in seeds] for n in names])
    best = matrix.argmax(axis=0) if higher else matrix.argmin(axis=0)
    table = []
    for i, name in enumerate(names):
        row = {"arm": name, "n_seeds": len(seeds), "aulc_mean": matrix[i].mean(),
               "aulc_std": matrix[i].std(ddof=1) if len(seeds) > 1 else 0.0,
               "best_on": int((best == i).sum()),
               "best_other": _best_other(matrix, names, i, names, higher)}
        if baselines is not None:
            row["best_baseline"] = _best_other(matrix, names, i, set(baselines), higher)
        for ref in [*references, *BEST]:
            target = row.get(ref) if ref in BEST else ref
            if target in aulc and target != name:
                (row[f"vs_{ref}_mean"], row[f"vs_{ref}_std"],
                 row[f"vs_{ref}_wins"]) = paired_difference(
                    matrix[i], matrix[names.index(target)], higher)
        table.append(row)
    return table, seeds


def paired_markdown(table, seeds, *, task, title, references=("random", "paper")):
    metric, higher = metric_info(task)
    best = [key for key in BEST if any(key in row for row in table)]
    lines = [f"# {title}", "",
             f"AULC of test {metric} ({'higher' if higher else 'lower'} is better), mean ± std "
             f"over {len(seeds)} seeds (ddof=1); *best on*: seeds on which the arm has the "
             "best AULC of all arms; *vs X*: paired per-seed difference (arm - X), mean ± std, "
             "and the seeds on which the arm beats X; *vs the best other arm* (*baseline*): "
             "the same against the arm (the strategy other than ALLY) with the best mean AULC "
             "besides this one, named.", "",
             "| arm | AULC | best on | " + " | ".join(f"vs {r}" for r in references)
             + "".join(f" | {BEST[key]}" for key in best) + " |",
             "|---|---|---|" + "---|" * (len(references) + len(best))]
    digits = 4 if higher else 2
    for row in table:
        cells = []
        for ref in [*references, *best]:
            if f"vs_{ref}_mean" in row:
                cells.append(f"{row[f'vs_{ref}_mean']:+.{digits}f} ± "
                             f"{row[f'vs_{ref}_std']:.{digits}f} "
                             f"({row[f'vs_{ref}_wins']}/{row['n_seeds']})"
                             + (f" {row[ref]}" if ref in BEST else ""))
            else:
                cells.append("—")
        lines.append(f"| {row['arm']} | {row['aulc_mean']:.{digits}f} ± "
                     f"{row['aulc_std']:.{digits}f} | {row['best_on']}/{row['n_seeds']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_rounds(path: Path) -> list[dict]:
    """The rows of a ``rounds.csv`` (seed, round and n_labels as ints, metric a float)."""
    rows = list(csv.DictReader(path.open()))
    for row in rows:
        for key in ("seed", "round", "n_labels"):
            row[key] = int(row[key])
        row["metric"] = float(row["metric"])
    return rows



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
