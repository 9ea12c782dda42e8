"""Where do stopping criteria stop? Learning curves run past saturation, every criterion
checked every round, each stop compared with the best stopping point in hindsight.

For each data set, strategy and seed the benchmarks' modAL loop
(:func:`benchmarks.harness.loop.run_active_learning`: a ``modAL.models.ActiveLearner``,
``query`` then ``teach``, a refit from scratch each round) runs until the pool is used up
(``--max-rounds`` caps it). A :class:`~benchmarks.harness.stopping_criteria.StoppingObserver`
checks every criterion of :mod:`modal_ally.stopping` after every fit, on the remaining pool
(:class:`~modal_ally.stopping.StabilizingPredictions` fixes a stop set of the round-0 pool),
and records its statistic and decision as columns of the round's row; the loop never
stops early, so every run shows where each criterion would have stopped. The estimators
are those of the learning-curve benchmark: ALLY trains :class:`modal_ally.PDCLNet`
(:class:`modal_ally.PDCLRegressor`), the other strategies the same module without
constraints, so the dual criteria are recorded on the ALLY runs only.

Judging a stop (per run): the *final* metric is the mean of the last three rounds (one
refit is noisy); the *hindsight point* is the first round whose metric is within the
tolerance of it (1 percentage point of accuracy; for MSE, within 2 % of the final MSE).
Per criterion: the share of runs that stop within the tolerance of the final metric, the
mean labels spent past the hindsight point (negative: it stopped before the curve got
there), the metric given up, and the share of runs in which it never stops.

Outputs in ``--out`` (default ``docs/results/stopping``): ``rounds.csv`` (one row per
round, with every criterion's ``<name>_statistic`` and ``<name>_stop``), ``stops.csv``
(one row per run and criterion), ``summary.csv``/``summary.md`` (the tables) and
``stopping.png`` (mean curves with each criterion's mean stop marked). The loop's
resumable state lives in ``--work`` (default ``results/stopping``, one folder per data
set): a rerun with the same settings computes only what is missing.

Example
-------
::

    nice -n 10 python -m benchmarks.stopping --datasets digits,breast_cancer,wine,diabetes
    nice -n 10 python -m benchmarks.stopping --datasets parkinsons,manyclass,mnist \\
        --max-pool 1500 --epochs 30 --budget-fraction 0.08 --out docs/results/stopping_real \\
        --work results/stopping_real
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.harness import registry
from benchmarks.harness.loop import run_active_learning
from benchmarks.harness.reporting import markdown_table, write_atomic, write_csv
from benchmarks.harness.stopping_criteria import StoppingObserver

TAIL_ROUNDS = 3
ACCURACY_TOLERANCE = 0.01
MSE_TOLERANCE = 0.02
# the shared data folder next to the repository (MNIST, Parkinsons)
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def criteria_names(rows):
    """The criteria recorded in a run's rows (columns ``<name>_stop`` with a value)."""
    return [key[:-len("_stop")] for key in rows[0]
            if key.endswith("_stop") and rows[0][key] is not None]


def _close(metric, final, task):
    if task == "classification":
        return metric >= final - ACCURACY_TOLERANCE
    return metric <= final * (1 + MSE_TOLERANCE)


def judge_run(rows, task):
    """Per criterion: where it stopped against the hindsight point of this run's curve."""
    n_labels = np.array([row["n_labels"] for row in rows], dtype=float)
    metric = np.array([row["metric"] for row in rows], dtype=float)
    final = float(metric[-TAIL_ROUNDS:].mean())
    close = np.array([_close(m, final, task) for m in metric])
    hindsight = float(n_labels[np.argmax(close)])
    # metric given up, in accuracy points (classification) or % of the final MSE
    lost = (lambda m: 100 * (final - m)) if task == "classification" \
        else (lambda m: 100 * (m - final) / final)
    outcomes = []
    for name in criteria_names(rows):
        stops = [i for i, row in enumerate(rows) if row.get(f"{name}_stop")]
        base = {"task": task, **{key: rows[0][key] for key in ("dataset", "strategy", "seed")},
                "criterion": name, "final": final, "hindsight_labels": hindsight,
                "n_pool_labels": float(n_labels[-1])}
        if not stops:
            outcomes.append({**base, "stopped": False, "stop_labels": np.nan,
                             "stop_metric": np.nan, "within": False,
                             "labels_past": np.nan, "metric_lost": np.nan})
            continue
        i = stops[0]
        outcomes.append({**base, "stopped": True, "stop_labels": float(n_labels[i]),
                         "stop_metric": float(metric[i]), "within": bool(close[i]),
                         "labels_past": float(n_labels[i] - hindsight),
                         "metric_lost": lost(float(metric[i]))})
    return outcomes


def _mean(values):
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def summarize(outcomes, keys):
    """Aggregate the outcomes over runs, grouped by ``keys``."""
    groups = {}
    for outcome in outcomes:
        groups.setdefault(tuple(outcome[key] for key in keys), []).append(outcome)
    table = []
    for group, runs in groups.items():
        stopped = [run for run in runs if run["stopped"]]
        table.append({
            **dict(zip(keys, group)), "runs": len(runs),
            "within_tolerance": float(np.mean([run["within"] for run in runs])),
            "labels_past_hindsight": _mean([run["labels_past"] for run in stopped]),
            "labels_used_fraction": _mean([run["stop_labels"] / run["n_pool_labels"]
                                           for run in stopped]),
            "metric_lost": _mean([run["metric_lost"] for run in stopped]),
            "never_stops": 1.0 - len(stopped) / len(runs)})
    return table


COLUMNS = (("within_tolerance", "stops within tolerance of final", True),
           ("labels_past_hindsight", "labels past the hindsight point (mean)", False),
           ("labels_used_fraction", "share of pool labeled at stop", True),
           ("metric_lost", "lost at stop (acc. points / % of MSE)", False),
           ("never_stops", "never stops", True))


def _cell(value, percent):
    if not np.isfinite(value):
        return "-"
    return f"{100 * value:.0f} %" if percent else f"{value:.1f}"


def summary_markdown(tables, *, header):
    """Markdown: ``header``, then one table per ``(title, rows, keys)`` of ``tables``."""
    lines = [header, ""]
    for title, table, keys in tables:
        cells = [[str(row[key]) for key in keys] + [str(row["runs"])]
                 + [_cell(row[column], percent) for column, _, percent in COLUMNS]
                 for row in table]
        lines += [f"#### {title}", ""]
        lines += markdown_table(list(keys) + ["runs"] + [c[1] for c in COLUMNS], cells)
        lines.append("")
    return "\n".join(lines)


def _mean_curve(rows, dataset, strategy):
    curve = {}
    for row in rows:
        if row["dataset"] == dataset and row["strategy"] == strategy:
            curve.setdefault(row["round"], []).append((row["n_labels"], row["metric"]))
    return (np.array([np.mean([p[0] for p in curve[r]]) for r in sorted(curve)]),
            np.array([np.mean([p[1] for p in curve[r]]) for r in sorted(curve)]))


def plot(rows, outcomes, path):
    """Mean curve per (data set, strategy); each criterion's mean stop marked on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    strategies = list(dict.fromkeys(row["strategy"] for row in rows))
    criteria = list(dict.fromkeys(outcome["criterion"] for outcome in outcomes))
    markers = dict(zip(criteria, "osD^vP*X"))
    colors = {name: plt.get_cmap("tab10")(i) for i, name in enumerate(criteria)}
    tasks = {row["dataset"]: row.get("task", "classification") for row in rows}
    fig, axes = plt.subplots(len(datasets), len(strategies), squeeze=False,
                             figsize=(3.6 * len(strategies), 2.8 * len(datasets)))
    for d, dataset in enumerate(datasets):
        for s, strategy in enumerate(strategies):
            ax = axes[d][s]
            x, y = _mean_curve(rows, dataset, strategy)
            if not x.size:
                ax.set_visible(False)
                continue
            ax.plot(x, y, color="0.3", lw=1.5)
            for name in criteria:
                stops = [o["stop_labels"] for o in outcomes if o["stopped"] and
                         (o["dataset"], o["strategy"], o["criterion"]) == (dataset, strategy,
                                                                          name)]
                if stops:
                    at = float(np.mean(stops))
                    ax.plot(at, np.interp(at, x, y), markers[name], ms=7, alpha=0.85,
                            color=colors[name], label=name)
            ax.set_title(f"{dataset} / {strategy}", fontsize="small")
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize="x-small")
            if s == 0:
                ax.set_ylabel("test accuracy" if tasks[dataset] == "classification"
                              else "test MSE", fontsize="small")
            if d == len(datasets) - 1:
                ax.set_xlabel("labels", fontsize="small")
    handles = [plt.Line2D([], [], linestyle="", marker=markers[name], color=colors[name])
               for name in criteria]
    fig.legend(handles, criteria, loc="lower center", ncol=len(criteria), fontsize="small")
    fig.suptitle("mean curve over seeds; marker: a criterion's mean stop over the seeds "
                 "where it stops", fontsize="small")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stopping",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="digits,breast_cancer,wine,diabetes")
    parser.add_argument("--strategies", default="ally,random,entropy",
                        help="those that need class probabilities are skipped for regression")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--budget-fraction", type=float, default=0.04,
                        help="labels per round (and initial set) as a share of the pool")
    parser.add_argument("--max-rounds", type=int, default=40)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                        help="folder of the data sets read from disk (mnist: MNIST/raw, "
                             "parkinsons: parkinsons/); default: %(default)s")
    parser.add_argument("--max-pool", type=int, default=None,
                        help="keep at most this many pool rows (seeded subset)")
    parser.add_argument("--out", default="docs/results/stopping")
    parser.add_argument("--work", default="results/stopping")
    return parser


def run_dataset(name, args):
    """Every strategy and seed of one data set; returns the rows (with ``dataset``)."""
    from benchmarks.harness.datasets import load_dataset

    data = load_dataset(name, data_dir=args.data_dir, max_pool=args.max_pool, random_state=0)
    n_pool = int(data.X_pool.shape[0])
    budget = max(2, int(round(args.budget_fraction * n_pool)))
    names = registry.parse_names(args.strategies)
    if data.task != "classification":
        names = [n for n in names if not registry.STRATEGIES[n].needs_proba]
    config = {"dataset": name, "initial": budget, "budget": budget, "epochs": args.epochs,
              "data_random_state": 0, "max_pool": args.max_pool,
              "criteria": "modal_ally.stopping defaults"}
    observer = StoppingObserver(data.task, budget=budget, n_pool=n_pool)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*force_all_finite.*")
        rows = run_active_learning(
            data, registry.arms_from_names(names), list(range(args.seeds)), initial=budget,
            budget=budget, rounds=args.max_rounds, epochs=args.epochs,
            out_dir=Path(args.work) / name, config=config, progress=False,
            observers=[observer], log=lambda message: None)
    return [{"dataset": name, "task": data.task, **row} for row in rows]


def main(argv=None):
    """Run the benchmark and write its outputs; returns the overall summary rows."""
    import torch

    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, outcomes = [], []
    for name in registry.parse_names(args.datasets):
        start = time.perf_counter()
        dataset_rows = run_dataset(name, args)
        print(f"{name}: {len(dataset_rows)} rounds in {time.perf_counter() - start:.0f} s",
              flush=True)
        rows += dataset_rows
        for key in dict.fromkeys((row["strategy"], row["seed"]) for row in dataset_rows):
            run = [row for row in dataset_rows if (row["strategy"], row["seed"]) == key]
            outcomes += judge_run(run, run[0]["task"])
    overall = summarize(outcomes, ["task", "criterion"])
    by_strategy = summarize(outcomes, ["task", "strategy", "criterion"])
    per_dataset = summarize(outcomes, ["dataset", "strategy", "criterion"])
    write_csv(out / "rounds.csv", list(dict.fromkeys(k for row in rows for k in row)), rows)
    write_csv(out / "stops.csv", list(outcomes[0]), outcomes)
    summary = ([{"dataset": "all", "strategy": "all", **row} for row in overall]
               + [{"dataset": "all", **row} for row in by_strategy] + per_dataset)
    write_csv(out / "summary.csv", list(dict.fromkeys(k for row in summary for k in row)),
              summary)
    pool = "" if args.max_pool is None else f"pool capped at {args.max_pool} rows, "
    header = (f"{args.seeds} seeds, {args.epochs} epochs per fit, {pool}initial set and "
              f"{args.budget_fraction:.0%} of the pool per round; tolerance 1 accuracy "
              f"point (MSE: 2 %) of the final metric (mean of the last {TAIL_ROUNDS} rounds)")
    write_atomic(out / "summary.md", summary_markdown(
        [("All runs", overall, ["task", "criterion"]),
         ("Per strategy", by_strategy, ["task", "strategy", "criterion"]),
         ("Per data set and strategy", per_dataset, ["dataset", "strategy", "criterion"])],
        header=header))
    plot(rows, outcomes, out / "stopping.png")
    return overall


if __name__ == "__main__":
    main()
