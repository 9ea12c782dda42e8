"""The README's noisy-oracle table: ALLY's two arms against the other arms, every task and setting.

    ARMS="random,margin,BADGE,margin + cleanlab (neighbour prior),ALLY,ALLY + second opinions"
    ARMS="$ARMS,BADGE + cleanlab (neighbour prior),ActiveLab,ALLY 0.1 + audit 20 %"
    python -m benchmarks.noisy_headline docs/results/noisy_oracle/temperature/digits \\
        docs/results/noisy_oracle/temperature/mnist ... --arms "$ARMS" \\
        --out docs/results/noisy_oracle/temperature/headline.md

Reads each folder's ``curves.jsonl`` (``benchmarks.noisy_oracle``, classification tasks)
and writes one row per task and followed arm (ALLY + second opinions, ALLY), one column per
noise setting. A cell: the arm's rank by mean AULC among the ``--arms`` the folder ran for
that setting, then the arm minus the best of those arms that is not ALLY's, paired per seed
(mean, and the seeds on which the arm is better / the seeds), marked ``*`` where a paired
t-test (two-sided, 5 %) tells it from zero; under the table, how many of each arm's
differences the test resolves. Then a second table, arm by arm: each followed arm against
each other arm over the noisy cells of every task (the cells where it is ahead, the mean and
range of the cells' paired means, the cells the t-test resolves, a sign test over the
cells). Seeds are those every ranked arm of the setting finished; arms not named in
``--arms`` (screens) are left out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.harness.metrics import resolved, sign_test
from benchmarks.harness.noisy_oracle_report import FOLLOWED, followed_ranks, read_curves
from benchmarks.harness.reporting import markdown_table, ordinal, write_atomic

#: Row titles of the package's benchmark folders (others keep the folder's name).
TASK_NAMES = {"manyclass": "26-class", "mnist": "MNIST MLP", "mnist_cnn": "MNIST CNN"}
#: Column order of the settings (others follow, sorted).
SETTINGS = ("symmetric:0", "symmetric:0.1", "symmetric:0.2", "symmetric:0.3", "pairs:0.1",
            "pairs:0.2", "pairs:0.3", "panel")


def folder_curves(folder: Path) -> list[dict]:
    """The curves of one folder, all of one run's settings (a folder that mixes settings,
    such as another pool size, is refused: its curves would not pair)."""
    curves = read_curves(Path(folder) / "curves.jsonl")
    if not curves:
        raise ValueError(f"{folder}: no curves.jsonl or no curves in it")
    settings = {json.dumps(c["settings"], sort_keys=True) for c in curves}
    if len(settings) != 1:
        raise ValueError(f"{folder}: curves of {len(settings)} different settings")
    return curves


def setting_result(curves, noise, arms) -> dict:
    """{followed arm: (rank, arms ranked, best other arm, (mean, std, better), seeds)}."""
    return _cells(followed_ranks(curves, noise, arms))


def _cells(ranks) -> dict:
    return {arm: (p["rank"], p["of"], p["best"], p["diff"], p["seeds"])
            for arm, p in ranks.items() if p["best"] is not None}


def setting_label(noise: str) -> str:
    """A column title: ``clean``, ``20 %``, ``pairs 20 %``, or the setting as it is."""
    kind, _, rate = noise.partition(":")
    try:
        value = float(rate)
    except ValueError:
        return noise
    if kind == "symmetric" and value == 0:
        return "clean"
    percent = f"{value * 100:g} %"
    return {"symmetric": percent, "pairs": f"pairs {percent}"}.get(kind, noise)


def _cell(result) -> str:
    if result is None:
        return "—"
    rank, of, _, (mean, std, better), seeds = result
    mark = "*" if resolved(mean, std, seeds) else ""
    return f"{ordinal(rank)}/{of} {mean:+.4f}{mark} ({better}/{seeds})"


def _resolved_counts(results) -> str:
    """One sentence per followed arm: its differences that a paired t-test resolves."""
    parts = []
    for arm in FOLLOWED:
        cells = [result[arm] for result in results if arm in result]
        told = [mean for _, _, _, (mean, std, _), seeds in cells
                if resolved(mean, std, seeds)]
        wins, losses = sum(m > 0 for m in told), sum(m < 0 for m in told)
        parts.append(f"{arm}: {wins} resolved wins and {losses} resolved losses "
                     f"of {len(cells)} cells")
    return "; ".join(parts) + "."


def arm_by_arm(cells, arms) -> list[list[str]]:
    """Rows of the second table from ``cells``, ``(noise, followed_ranks)`` pairs of every
    task: each followed arm against each other arm of ``arms`` over the noisy cells (every
    setting but clean) where both ran: the cells where the followed arm's paired mean is
    ahead, the mean and range of those cell means, the cells the paired t-test resolves
    either way, and a sign test over the cells."""
    found = {}
    for noise, ranks in cells:
        if noise == "symmetric:0":
            continue
        for arm, place in ranks.items():
            for other, diff in place["against"].items():
                found.setdefault((arm, other), []).append((diff, place["seeds"]))
    rows = []
    for arm in FOLLOWED:
        for other in arms:
            pairs = found.get((arm, other))
            if not pairs:
                continue
            means = np.array([mean for (mean, _, _), _ in pairs])
            told = [mean for (mean, std, _), seeds in pairs if resolved(mean, std, seeds)]
            ahead, behind = int((means > 0).sum()), int((means < 0).sum())
            rows.append([arm, other, f"{ahead} of {len(pairs)}", f"{means.mean():+.4f}",
                         f"{means.min():+.4f} to {means.max():+.4f}",
                         f"{sum(m > 0 for m in told)} / {sum(m < 0 for m in told)}",
                         f"{sign_test(ahead, behind):.3f}"])
    return rows


def headline_markdown(tasks, arms) -> str:
    """``tasks``: (name, curves) pairs; the table of the module docstring."""
    found = {c["noise"] for _, curves in tasks for c in curves}
    settings = [s for s in SETTINGS if s in found] + sorted(found - set(SETTINGS))
    rows, every, cells = [], [], []
    for name, curves in tasks:
        ranks = {noise: followed_ranks(curves, noise, arms) for noise in settings}
        cells += ranks.items()
        results = {noise: _cells(place) for noise, place in ranks.items()}
        every += results.values()
        for arm in FOLLOWED:
            rows.append([name, arm] + [_cell(results[noise].get(arm)) for noise in settings])
    lines = ["# ALLY under a noisy oracle, every task and setting", "",
             "A cell: the arm's rank by mean AULC among the arms run for that setting (of "
             f"{', '.join(arms)}), then the arm minus the best arm that is not ALLY's, "
             "paired per seed: mean (seeds better / seeds); `*`: a paired t-test (two-sided, "
             "5 %) tells the difference from zero.", ""]
    lines += markdown_table(["task", "arm"] + [setting_label(s) for s in settings], rows)
    lines += ["", "Resolved by the t-test: " + _resolved_counts(every), "",
              "Against each arm, over the noisy cells (every task and setting but clean) "
              "where both ran: the cells where ALLY's arm is ahead (paired mean over the "
              "seeds), the mean and range of the cells' paired means, the cells the t-test "
              "resolves (wins / losses), and a two-sided sign test over the cells (cells "
              "of one task share their seeds' first labels, so they are not independent).",
              ""]
    lines += markdown_table(["arm", "against", "noisy cells ahead", "mean", "range",
                             "resolved wins / losses", "sign test p"],
                            arm_by_arm(cells, arms))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="benchmarks.noisy_oracle output folders")
    parser.add_argument("--arms", required=True,
                        help="comma-separated: the arms to rank (ALLY's two among them)")
    parser.add_argument("--out", help="write the table here too")
    args = parser.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    missing = [a for a in FOLLOWED if a not in arms]
    if missing:
        parser.error(f"--arms must name {' and '.join(missing)}")
    tasks = [(TASK_NAMES.get(Path(f).name, Path(f).name), folder_curves(Path(f)))
             for f in args.folders]
    text = headline_markdown(tasks, arms)
    if args.out:
        write_atomic(Path(args.out), text)
    print(text)


if __name__ == "__main__":
    main()
