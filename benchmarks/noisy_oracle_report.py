"""The noisy-oracle report: per oracle error rate, the learning-curve report
(``benchmarks.reporting.write_report``: rounds, summary, plot) and the paired AULC table
of ``benchmarks.ally_screen`` (against random, ALLY default and the best other arm and
baseline), with the annotations spent (labels plus relabels) on the x axis."""

from __future__ import annotations

from benchmarks.ally_screen import paired_markdown, paired_table
from benchmarks.reporting import write_atomic, write_csv, write_report

REFERENCES = ("random", "ALLY default")


def loop_rows(curves, rate):
    """The curves of one rate as the loop's rows (``n_labels``: annotations spent)."""
    rows = []
    for curve in curves:
        if curve["rate"] != rate:
            continue
        for row in curve["rows"]:
            rows.append({"strategy": curve["arm"], "seed": curve["seed"],
                         "round": row["round"], "n_labels": row["annotations"],
                         "metric": row["metric"], "fit_s": None, "query_s": None,
                         "wrong_labels": row.get("wrong_labels")})
    return rows


def write_reports(curves, out, *, title):
    sections = [f"# Noisy oracle: {title}", ""]
    for rate in sorted({c["rate"] for c in curves}):
        rows = loop_rows(curves, rate)
        folder = out / f"rate_{rate:g}"
        folder.mkdir(parents=True, exist_ok=True)
        write_report(rows, folder, task="classification",
                     title=f"{title}; oracle error rate {rate:.0%}")
        baselines = {r["strategy"] for r in rows if not r["strategy"].startswith("ALLY")}
        table, seeds = paired_table(rows, "classification", references=REFERENCES,
                                    baselines=baselines)
        table.sort(key=lambda r: -r["aulc_mean"])
        markdown = paired_markdown(table, seeds, task="classification",
                                   title=f"oracle error rate {rate:.0%}",
                                   references=REFERENCES)
        write_atomic(folder / "paired.md", markdown)
        write_csv(folder / "paired.csv", list(dict.fromkeys(k for r in table for k in r)),
                  table)
        sections += ["#" + markdown, _wrong_labels(curves, rate), ""]
    write_atomic(out / "summary.md", "\n".join(sections))


def _wrong_labels(curves, rate):
    """Mean wrong labels left in the labeled set after the last round, per arm."""
    import numpy as np

    per_arm = {}
    for curve in curves:
        if curve["rate"] == rate:
            per_arm.setdefault(curve["arm"], []).append(curve["rows"][-1].get("wrong_labels"))
    cells = [f"{arm} {np.mean(v):.1f}" for arm, v in per_arm.items()
             if all(x is not None for x in v)]
    return "Wrong labels left in the labeled set after the last round (mean over seeds): " \
        + "; ".join(cells) + "."
