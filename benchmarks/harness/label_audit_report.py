"""The label-audit report: ``summary.md`` and ``summary.csv`` from ``rows.jsonl``.

Per task, noise kind and rate (mean ± std over seeds): AUROC and precision at k of the
package's ranking (:data:`modal_ally.label_audit.DEFAULT_SCORE` on the one PDCL fit), the
5-fold anchor, cleanlab, the area under the margin and the final training loss; the
paired per-seed difference package - 5-fold; the flagged sets' precision and recall; and
the AUROC of every candidate score, tuning tasks and the held-out task apart. Given the
rows of an earlier run (``--anchors-from``), ``vs_earlier.md`` pairs the package's AUROC
and flagged-set size now against that run's, configuration by configuration.
"""

from __future__ import annotations

import numpy as np

from benchmarks.harness.reporting import write_atomic, write_csv

#: Never used to choose anything. (diabetes was added as a held-out regression task with
#: the "neighbors" score; "neighbors" alone fell below the anchor there, and the
#: regression default, "lambda_mean+neighbors", was then chosen on Parkinsons and
#: diabetes together, and so was its successor, "lambda_mean+neighbors+inputs": both
#: are tuning tasks for it.)
HELD_OUT = ("breast_cancer",)
#: The regression tasks (their noise: targets replaced by other rows' targets).
REGRESSION = ("parkinsons", "diabetes")
METHODS = (("package", None), ("5-fold", "5-fold"), ("cleanlab", "cleanlab"),
           ("AUM", "aum"), ("final loss", "loss"))


def key_of(row) -> tuple:
    """A run's configuration: (task, noise kind, rate, seed, epochs)."""
    return row["task"], row["kind"], float(row["rate"]), int(row["seed"]), int(row["epochs"])


def _values(rows, key):
    return np.array([r.get(key, np.nan) for r in rows], dtype=float)


def _mean(rows, key):
    values = _values(rows, key)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def _fmt(values, digits=3, *, paired=False):
    """``mean ± std`` of the finite values; ``paired``: signed, with the runs >= 0."""
    values = values[np.isfinite(values)]
    if not values.size:
        return "—"
    std = values.std(ddof=1) if values.size > 1 else 0.0
    sign = "+" if paired else ""
    text = f"{values.mean():{sign}.{digits}f} ± {std:.{digits}f}"
    return f"{text} ({int((values >= 0).sum())}/{values.size})" if paired else text


def _groups(rows):
    """Rows by (task, noise kind, rate); the clean sets (rate 0) under the kind "none",
    one row per task and seed."""
    groups, seen = {}, set()
    for row in rows:
        kind = row["kind"] if row["rate"] > 0 else "none"
        if kind == "none":
            if (row["task"], row["seed"]) in seen:
                continue
            seen.add((row["task"], row["seed"]))
        groups.setdefault((row["task"], kind, row["rate"]), []).append(row)
    return groups


def _method_key(default, column):
    return f"pdcl:{default}" if column is None else column


def package_score(task, default, rows=()):
    """The score the package's default stands for on ``task``: ``"auto"`` where every
    row measured it, else (rows written before ``"auto"`` existed) ``"lambda_mean"`` for
    a classification task and ``"lambda_mean+neighbors"`` for a regression one."""
    if default != "auto":
        return default
    if rows and all("auroc:pdcl:auto" in r for r in rows):
        return "auto"
    return "lambda_mean+neighbors" if task in REGRESSION else "lambda_mean"


def _paired(rows, default):
    diff = _values(rows, f"auroc:pdcl:{default}") - _values(rows, "auroc:5-fold")
    ok = diff[np.isfinite(diff)]
    if not ok.size:
        return "—", 0, 0
    std = ok.std(ddof=1) if ok.size > 1 else 0.0
    return f"{ok.mean():+.3f} ± {std:.3f} ({int((ok >= 0).sum())}/{ok.size})", ok.mean(), ok.size


def main_table(rows, default_score):
    """Markdown lines and CSV rows of the main comparison."""
    lines = ["| task | noise | rate | seeds | " + " | ".join(
        f"AUROC {name}" for name, _ in METHODS) + " | package - 5-fold (seeds >= 0) | "
        "P@k package | P@k 5-fold | fits package / 5-fold |",
        "|---|---|---|---|" + "---|" * len(METHODS) + "---|---|---|---|"]
    table = []
    for (task, kind, rate), group in sorted(_groups(rows).items()):
        default = package_score(task, default_score, group)
        cells = [_fmt(_values(group, f"auroc:{_method_key(default, c)}")) for _, c in METHODS]
        paired, mean_diff, _ = _paired(group, default)
        lines.append(f"| {task} | {kind} | {rate:.0%} | {len(group)} | " + " | ".join(cells)
                     + f" | {paired} | {_fmt(_values(group, f'p@k:pdcl:{default}'))} | "
                     f"{_fmt(_values(group, 'p@k:5-fold'))} | 1 / 5 |")
        table.append({"task": task, "kind": kind, "rate": rate, "n_seeds": len(group),
                      "diff_vs_5fold": mean_diff, **{
                          f"auroc_{name}": _mean(group, f"auroc:{_method_key(default, c)}")
                          for name, c in METHODS}})
    return lines, table


def flagged_table(rows):
    lines = ["| task | noise | rate | corrupted | flagged (package) | precision | recall | "
             "flagged (cleanlab) | precision | recall |", "|---" * 10 + "|"]
    for (task, kind, rate), group in sorted(_groups(rows).items()):
        lines.append(f"| {task} | {kind} | {rate:.0%} | {_fmt(_values(group, 'n_corrupted'), 0)}"
                     + "".join(f" | {_fmt(_values(group, f'{m}:{who}'), d)}"
                               for who in ("package", "cleanlab")
                               for m, d in (("flagged", 0), ("precision", 3), ("recall", 3)))
                     + " |")
    return lines


def candidate_table(rows):
    from modal_ally.label_audit import SCORES

    names = [f"pdcl:{s}" for s in SCORES]
    lines = ["| tasks | " + " | ".join(SCORES) + " | 5-fold |",
             "|---|" + "---|" * (len(SCORES) + 1)]
    for label, keep in (("tuning", lambda t: t not in HELD_OUT),
                        ("held-out", lambda t: t in HELD_OUT)):
        chosen = [r for r in rows if keep(r["task"])]
        if not chosen:
            continue
        lines.append(f"| {label} ({len(chosen)} runs) | " + " | ".join(
            _cell(chosen, n) for n in [*names, "5-fold"]) + " |")
        for task in sorted({r["task"] for r in chosen}):
            sub = [r for r in chosen if r["task"] == task]
            lines.append(f"| {task} | " + " | ".join(
                _cell(sub, n) for n in [*names, "5-fold"]) + " |")
    return lines + ["", "A mean over the runs that measured the score (a score added "
                    "later was measured on the tasks rerun since: — where none was)."]


def _cell(rows, name):
    value = _mean(rows, f"auroc:{name}")
    return "—" if not np.isfinite(value) else f"{value:.4f}"


def package_auroc(row) -> float:
    """The AUROC of the package's default score in a row of any release: ``"auto"``, or
    in a row written before it existed the multipliers' mean (``lambda_mean``, the
    default then, for classification and regression alike)."""
    for key in ("auroc:pdcl:auto", "auroc:pdcl:lambda_mean"):
        if key in row:
            return float(row[key])
    return float("nan")


def previous_default_table(rows):
    """Markdown lines: the default score against the 0.2 release's on the same fits
    (``lambda_mean`` for a classification task, ``lambda_mean+neighbors`` for a
    regression one), configuration by configuration, paired by seed."""
    lines = ["| task | noise | rate | runs | default | 0.2 default | default - 0.2 default "
             "(runs >=) |", "|---" * 7 + "|"]
    for (task, kind, rate), group in sorted(_groups(rows).items()):
        previous = "lambda_mean+neighbors" if task in REGRESSION else "lambda_mean"
        now, then = (_values(group, f"auroc:pdcl:{k}") for k in ("auto", previous))
        if not np.isfinite(now - then).any():
            continue
        lines.append(f"| {task} | {kind} | {rate:.0%} | {len(group)} | {_fmt(now, 4)} | "
                     f"{_fmt(then, 4)} | {_fmt(now - then, 4, paired=True)} |")
    return lines


def earlier_table(rows, earlier):
    """Markdown lines pairing each configuration of ``rows`` with the same one in
    ``earlier`` (the rows of an earlier run): the package's AUROC now and then, their
    paired difference and the runs at or above, and the rows flagged."""
    before = {key_of(r): r for r in earlier}
    lines = ["| task | noise | rate | runs | AUROC now | AUROC earlier | now - earlier "
             "(runs >=) | AUROC 5-fold | rows flagged now / earlier |", "|---" * 9 + "|"]
    for (task, kind, rate), group in sorted(_groups(rows).items()):
        pairs = [(r, before[key_of(r)]) for r in group if key_of(r) in before]
        if not pairs:
            continue
        now = np.array([package_auroc(a) for a, _ in pairs])
        then = np.array([package_auroc(b) for _, b in pairs])
        paired = _fmt(now - then, 4, paired=True)
        flagged = [_values([p[i] for p in pairs], "flagged:package") for i in (0, 1)]
        lines.append(f"| {task} | {kind} | {rate:.0%} | {len(pairs)} | {_fmt(now, 4)} | "
                     f"{_fmt(then, 4)} | {paired} | "
                     f"{_fmt(_values([a for a, _ in pairs], 'auroc:5-fold'), 4)} | "
                     f"{flagged[0].mean():.1f} / {flagged[1].mean():.1f} |")
    return lines


def write_summary(rows, out, earlier=None):
    from modal_ally.label_audit import DEFAULT_SCORE

    if not rows:
        return
    if earlier:
        write_atomic(out / "vs_earlier.md", "\n".join([
            "# The label audit now against an earlier run", "",
            "The package's default score on the one PDCL fit of each configuration, paired "
            "with the same configuration (task, noise, rate, seed, epochs) of the earlier "
            "run's rows (its default then: the multipliers' mean, `lambda_mean`, in rows "
            "written before `auto`). AUROC mean ± std over the runs; *runs >=*: the runs "
            "on which now is at or above earlier. The clean sets (rate 0) have no AUROC: "
            "only the rows flagged.", "", *earlier_table(rows, earlier), ""]))
    noisy = [r for r in rows if r["rate"] > 0]
    lines, table = main_table(noisy, DEFAULT_SCORE)
    text = "\n".join([
        "# Label audit: finding planted label errors", "",
        f"Package: `rank_label_issues` (score `{DEFAULT_SCORE}`) on the one PDCL fit. "
        "AUROC mean ± std over seeds; *package - 5-fold*: paired per-seed difference, and "
        "the seeds on which the package is at or above the anchor. P@k: precision at "
        "k = number of corrupted rows. Threads: "
        f"{sorted({r.get('threads') for r in rows})}; epochs "
        f"{sorted({r['epochs'] for r in rows})}.", "", *lines, "",
        "## Flagged sets: `find_label_issues` (threshold 'auto') and cleanlab's", "",
        *flagged_table(rows), "",
        "## Candidate scores (mean AUROC; one default chosen on the tuning tasks)", "",
        *candidate_table(noisy), "",
        "## The default against the 0.2 release's default, on the same fits", "",
        "AUROC mean ± std; *runs >=*: the runs on which the default is at or above "
        "(0.2: `lambda_mean` for a classification task, `lambda_mean+neighbors` for a "
        "regression one).", "", *previous_default_table(noisy), ""])
    write_atomic(out / "summary.md", text)
    write_csv(out / "summary.csv", list(dict.fromkeys(k for r in table for k in r)), table)
