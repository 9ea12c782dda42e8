"""Writing results: CSV tables, Markdown tables and plots, shared by every benchmark.

:func:`write_csv`, :func:`markdown_table` and :func:`figure` are the writers the scripts
reuse (``speed.py`` and ``redundancy.py`` included); :func:`write_report` writes the
learning-curve report (``rounds.csv``, ``summary.csv``, ``summary.md``, the plot).
Every file is written through a unique temporary file and ``os.replace`` (:func:`write_atomic`),
so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from benchmarks.harness.metrics import curves, metric_info, summarize

__all__ = ["ROW_FIELDS", "SUMMARY_FIELDS", "figure", "format_cell", "markdown_table",
           "row_fields", "summary_markdown", "plot_curves", "write_atomic", "write_csv",
           "write_report"]

ROW_FIELDS = ("strategy", "seed", "round", "n_labels", "metric", "fit_s", "query_s")
SUMMARY_FIELDS = (
    "strategy", "metric_name", "n_seeds", "last_round", "final_n_labels",
    "aulc_mean", "aulc_std", "final_mean", "final_std",
    "labels_to_97_mean", "labels_to_97_std",
    "labels_to_97_best_mean", "labels_to_97_best_std", "labels_to_97_best_reached",
    "fit_s_mean", "query_s_mean",
)


def write_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` through a unique temporary file in the same folder and
    ``os.replace``: readers see the old or the new content, never a mix, and writers
    never share a temporary file."""
    path = Path(path)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", newline="") as stream:
            stream.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def format_cell(value, digits=4) -> str:
    """A number for a Markdown table: ``digits`` decimals; None and NaN as blank."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _csv_value(value):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return format(value, ".10g") if isinstance(value, float) else value


def write_csv(path, fields, rows) -> Path:
    """Write ``rows`` (dicts) as CSV with the columns ``fields`` (floats as ``.10g``,
    None and NaN as empty cells; missing keys empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(row.get(key)) for key in fields})
    write_atomic(path, buffer.getvalue())
    return Path(path)


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ... ``11th``, ``21st``."""
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def markdown_table(header, rows) -> list[str]:
    """The lines of a Markdown table: ``header`` (column titles) and ``rows`` (cells)."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(str, cells)) + " |" for cells in rows]


@contextlib.contextmanager
def figure(path, *, figsize=(7, 4.5)):
    """A Matplotlib figure and axes (Agg backend) saved to ``path`` (dpi 120) and closed
    when the block ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    try:
        yield fig, ax
        ax.grid(alpha=0.3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig.tight_layout()
            fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


def row_fields(rows) -> tuple:
    """The columns of ``rounds.csv``: :data:`ROW_FIELDS`, then the observers' columns
    in first-seen order."""
    extra = dict.fromkeys(key for row in rows for key in row if key not in ROW_FIELDS)
    return ROW_FIELDS + tuple(extra)


def summary_markdown(summary, *, task: str, title: str) -> str:
    """The summary as a Markdown document: a header of definitions and one table."""
    metric_name, higher = metric_info(task)
    better = "higher" if higher else "lower"
    reach = ("metric >= 0.97 x final" if higher else "mse <= final / 0.97")
    lines = [
        f"# {title}", "",
        f"Metric: test {metric_name} ({better} is better); mean ± std over seeds (ddof=1).",
        "- **AULC**: area under the learning curve (trapezoid over n_labels) divided by the "
        "label range, i.e. the mean metric over the labeling budget.",
        f"- **labels to 97%**: per seed, the first n_labels with {reach}, *final* being the "
        "last metric of the same curve (the paper's measure; it rewards reaching a plateau "
        "early, whatever its height).",
        f"- **labels to 97% of best**: the same against one common target, {reach} with "
        "*final* the best strategy's mean final metric; `k/n` seeds reached it, the mean "
        "is over those.",
        "- **fit s / query s**: mean seconds per fit and per query.", ""]
    header = ["strategy", "seeds", "AULC", f"final {metric_name}", "labels to 97%",
              "labels to 97% of best", "fit s", "query s"]
    return "\n".join(lines + markdown_table(header, map(_summary_cells, summary))) + "\n"


def _summary_cells(row):
    reached = f"{row['labels_to_97_best_reached']}/{row['n_seeds']}"
    best = ("—" if not row["labels_to_97_best_reached"] else
            f"{row['labels_to_97_best_mean']:.0f} ± {row['labels_to_97_best_std']:.0f}")
    return [row["strategy"], row["n_seeds"],
            f"{row['aulc_mean']:.4f} ± {row['aulc_std']:.4f}",
            f"{row['final_mean']:.4f} ± {row['final_std']:.4f}",
            f"{row['labels_to_97_mean']:.0f} ± {row['labels_to_97_std']:.0f}",
            f"{best} ({reached})", format_cell(row["fit_s_mean"], 2),
            format_cell(row["query_s_mean"], 3)]


def plot_curves(rows, path, *, task: str, title: str) -> None:
    """Mean metric against n_labels per strategy, with a ± std band over seeds."""
    metric_name, _ = metric_info(task)
    with figure(path) as (_, ax):
        for name, per_seed in curves(rows).items():
            length = min(len(n) for n, _ in per_seed.values())
            n_labels = np.mean([n[:length] for n, _ in per_seed.values()], axis=0)
            values = np.array([m[:length] for _, m in per_seed.values()])
            mean = values.mean(axis=0)
            std = values.std(axis=0, ddof=1) if values.shape[0] > 1 else np.zeros_like(mean)
            line, = ax.plot(n_labels, mean, marker="o", markersize=3, label=name)
            ax.fill_between(n_labels, mean - std, mean + std, color=line.get_color(),
                            alpha=0.2)
        ax.set_xlabel("number of labels")
        ax.set_ylabel(f"test {metric_name}")
        ax.set_title(title)
        ax.legend(fontsize="small")


def sorted_rows(rows) -> list[dict]:
    """Rows by strategy (first-seen order), seed and round."""
    first = {name: i for i, name in enumerate(dict.fromkeys(r["strategy"] for r in rows))}
    return sorted(rows, key=lambda r: (first[r["strategy"]], r["seed"], r["round"]))


def write_report(rows, out_dir, *, task: str, title: str, plot_name="learning_curves.png"):
    """Write ``rounds.csv``, ``summary.csv``, ``summary.md`` and the plot into ``out_dir``.

    Returns
    -------
    paths : dict
        ``{"rounds": ..., "summary_csv": ..., "summary_md": ..., "plot": ...}``.
    summary : list of dict
        As :func:`benchmarks.harness.metrics.summarize`.
    markdown : str
        The content of ``summary.md``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"rounds": out_dir / "rounds.csv", "summary_csv": out_dir / "summary.csv",
             "summary_md": out_dir / "summary.md", "plot": out_dir / plot_name}
    write_csv(paths["rounds"], row_fields(rows), sorted_rows(rows))
    summary = summarize(rows, task)
    write_csv(paths["summary_csv"], SUMMARY_FIELDS, summary)
    markdown = summary_markdown(summary, task=task, title=title)
    write_atomic(paths["summary_md"], markdown)
    plot_curves(rows, paths["plot"], task=task, title=title)
    return paths, summary, markdown
