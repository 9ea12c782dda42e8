"""The noisy-oracle report: per noise setting, the learning-curve report
(``benchmarks.harness.reporting.write_report``: rounds, summary, plot) and the paired AULC
table of ``benchmarks.harness.paired`` (against random, ALLY, ALLY + second opinions and the
best other arm), with the annotations spent (new rows plus second opinions) on the x axis; then
each arm's second-opinion share, the wrong labels left and the compute per round."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.harness.metrics import paired_difference
from benchmarks.harness.paired import paired_markdown, paired_table, per_seed_aulc
from benchmarks.harness.reporting import write_atomic, write_csv, write_report

REFERENCES = ("random", "ALLY", "ALLY + second opinions")


def loop_rows(curves, noise):
    """The curves of one setting as the loop's rows (``n_labels``: annotations spent)."""
    rows = []
    for curve in curves:
        if curve["noise"] != noise:
            continue
        for row in curve["rows"]:
            rows.append({"strategy": curve["arm"], "seed": curve["seed"],
                         "round": row["round"], "n_labels": row["annotations"],
                         "metric": row["metric"], "fit_s": row.get("fit_s"),
                         "query_s": row.get("query_s"),
                         "wrong_labels": row.get("wrong_labels")})
    return rows


def folder_name(noise: str) -> str:
    return "noise_" + noise.replace(":", "_")


def write_reports(curves, out, *, task, title):
    sections = [f"# Noisy oracle: {title}", "", overview(curves, task), ""]
    for noise in sorted({c["noise"] for c in curves}):
        rows = loop_rows(curves, noise)
        folder = out / folder_name(noise)
        folder.mkdir(parents=True, exist_ok=True)
        write_report(rows, folder, task=task, title=f"{title}; oracle {noise}")
        baselines = {r["strategy"] for r in rows if not r["strategy"].startswith("ALLY")}
        references = [r for r in REFERENCES if any(c["arm"] == r for c in curves)]
        table, seeds = paired_table(rows, task, references=references, baselines=baselines)
        table.sort(key=lambda r: -r["aulc_mean"] if task == "classification"
                   else r["aulc_mean"])
        markdown = paired_markdown(table, seeds, task=task, title=f"oracle {noise}",
                                   references=references)
        write_atomic(folder / "paired.md", markdown)
        write_csv(folder / "paired.csv", list(dict.fromkeys(k for r in table for k in r)),
                  table)
        sections += ["#" + markdown, spend_table(curves, noise), ""]
    write_atomic(out / "summary.md", "\n".join(sections))


def spend_table(curves, noise):
    """Per arm: the share of annotations spent on second opinions, the wrong labels left
    in the labeled set after the last round, and the seconds per round (decide, fit)."""
    per_arm = {}
    for curve in curves:
        if curve["noise"] == noise:
            per_arm.setdefault(curve["arm"], []).append(curve["rows"])
    lines = ["| arm | second opinions (share of the annotations after round 0) | wrong "
             "labels left | decide s/round | ask + fit s/round |", "|---|---|---|---|---|"]
    for arm, runs in per_arm.items():
        spent = [sum(r["second_opinions"] for r in rows[1:]) for rows in runs]
        total = [rows[-1]["annotations"] - rows[0]["annotations"] for rows in runs]
        share = np.mean([s / t if t else 0.0 for s, t in zip(spent, total)])
        wrong = np.mean([rows[-1]["wrong_labels"] for rows in runs])
        decide = np.mean([r.get("query_s", np.nan) for rows in runs for r in rows[1:]])
        fit = np.mean([r.get("fit_s", np.nan) for rows in runs for r in rows[1:]])
        lines.append(f"| {arm} | {share:.1%} ({np.mean(spent):.1f}) | {wrong:.1f} | "
                     f"{decide:.2f} | {fit:.2f} |")
    return "\n".join(lines) + "\n"


#: The arms the overview follows: this release's ALLY with and without second opinions.
FOLLOWED = ("ALLY + second opinions", "ALLY")


def followed_ranks(curves, noise, arms=None, higher=True) -> dict:
    """Each followed arm's place in one setting among ``arms`` (every arm of the setting
    when None), on the seeds all of them finished: ``{arm: {"rank", "of", "mean", "best",
    "best_mean", "diff", "against", "seeds"}}``, ``against`` the arm minus every arm that
    is not followed, paired per seed ``{other: (mean, std, seeds better)}``, ``best`` the
    best of those (None when there is none) and ``diff`` the arm minus it. Empty when no
    followed arm ran; a NaN or infinite AULC is an error."""
    aulc = per_seed_aulc(loop_rows([c for c in curves if arms is None or c["arm"] in arms],
                                   noise))
    present = list(aulc) if arms is None else [arm for arm in arms if arm in aulc]
    if not any(arm in aulc for arm in FOLLOWED):
        return {}
    seeds = sorted(set.intersection(*(set(aulc[arm]) for arm in present)))
    if not seeds:
        return {}
    values = {arm: np.array([aulc[arm][s] for s in seeds]) for arm in present}
    broken = [arm for arm, v in values.items() if not np.isfinite(v).all()]
    if broken:
        raise ValueError(f"{noise}: a non-finite AULC (NaN or inf) for {', '.join(broken)}")
    means = {arm: v.mean() for arm, v in values.items()}
    ordered = sorted(present, key=means.get, reverse=higher)
    best = next((arm for arm in ordered if arm not in FOLLOWED), None)
    ranks = {}
    for arm in FOLLOWED:
        if arm not in values:
            continue
        against = {other: paired_difference(values[arm], values[other], higher)
                   for other in present if other not in FOLLOWED}
        ranks[arm] = {"rank": ordered.index(arm) + 1, "of": len(present),
                      "mean": means[arm], "best": best, "best_mean": means.get(best),
                      "seeds": len(seeds), "against": against, "diff": against.get(best)}
    return ranks


def overview(curves, task):
    """One line per setting: each followed arm's AULC and rank among all arms, the best
    other arm, and the followed arm minus it (paired per seed, seeds won)."""
    lines = ["| setting | seeds | " + " | ".join(f"{a} (rank)" for a in FOLLOWED)
             + " | best other arm | " + " | ".join(f"{a} - best other (seeds won)"
                                                    for a in FOLLOWED)
             + " | second opinions |", "|---|---|" + "---|" * (2 * len(FOLLOWED) + 2)]
    for noise in sorted({c["noise"] for c in curves}):
        ranks = followed_ranks(curves, noise, higher=task == "classification")
        if not ranks:
            continue
        first = next(iter(ranks.values()))
        cells, diffs = [], []
        for arm in FOLLOWED:
            place = ranks.get(arm)
            cells.append(f"{place['mean']:.4f} ({place['rank']}/{place['of']})"
                         if place else "—")
            if place is None or place["diff"] is None:
                diffs.append("—")
                continue
            mean, std, won = place["diff"]
            diffs.append(f"{mean:+.4f} ± {std:.4f} ({won}/{place['seeds']})")
        best = f"{first['best']} {first['best_mean']:.4f}" if first["best"] else "—"
        share = _share(curves, noise, FOLLOWED[0])
        lines.append(f"| {noise} | {first['seeds']} | " + " | ".join(cells) + f" | {best} | "
                     + " | ".join(diffs) + f" | {share} |")
    return "\n".join(lines) + "\n"


def _share(curves, noise, arm):
    runs = [c["rows"] for c in curves if c["noise"] == noise and c["arm"] == arm]
    if not runs:
        return "—"
    spent = [sum(r["second_opinions"] for r in rows[1:]) for rows in runs]
    total = [rows[-1]["annotations"] - rows[0]["annotations"] for rows in runs]
    return f"{np.mean([s / t for s, t in zip(spent, total) if t]):.1%}"


def read_curves(path) -> list[dict]:
    """The curves of ``path``, each (arm, noise, seed, settings) once: two processes that
    share an output folder may both run a curve (the same curve: runs are seeded)."""
    path = Path(path)
    if not path.exists():
        return []
    curves, seen = [], set()
    for line in path.read_text().splitlines():
        if line.strip():
            curve = json.loads(line)
            key = (curve["arm"], curve["noise"], curve["seed"],
                   json.dumps(curve["settings"], sort_keys=True))
            if key not in seen:
                seen.add(key)
                curves.append(curve)
    return curves
