"""Where do stopping criteria stop? Learning curves run past saturation, every criterion
checked every round, each stop compared with the best stopping point in hindsight.

For each data set, strategy and seed a ``modAL.models.ActiveLearner`` loop runs until the
pool is used up (``--max-rounds`` caps it): round 0 fits the random initial set, every
round after queries ``budget`` rows of the remaining pool and teaches them (a refit from
scratch). After every fit each criterion of :mod:`modal_ally.stopping` is checked on the
remaining pool (:class:`~modal_ally.stopping.StabilizingPredictions` fixes a stop set of
the round-0 pool) and its statistic and decision are recorded; the loop does not stop, so
every run shows where each criterion would have stopped.

Every strategy trains the same :class:`modal_ally.PDCLNet` (:class:`modal_ally.PDCLRegressor`
for regression; the settings of ``benchmarks/common.py``), so that the dual criterion is
defined in every run; ALLY queries by predicted dual variables, the others do not.

Judging a stop (per run): the *final* metric is the mean of the last three rounds (one
refit is noisy); the *hindsight point* is the first round whose metric is within the
tolerance of it (1 percentage point of accuracy; for MSE, within 2 % of the final MSE).
Per criterion: the share of runs that stop within the tolerance of the final metric, the
mean labels spent past the hindsight point (negative: it stopped before the curve got
there), the metric given up, and the share of runs in which it never stops.

Outputs in ``--out`` (default ``docs/results/stopping``): ``rounds.csv`` (one row per
round, with every criterion's ``<name>_statistic`` and ``<name>_stop``), ``stops.csv``
(one row per run and criterion), ``summary.csv``/``summary.md`` (the table) and
``stopping.png`` (mean curves with each criterion's mean stop marked). ``runs.jsonl``
keeps finished runs: a rerun with the same ``--out`` and settings skips them.

Example
-------
::

    nice -n 10 python -m benchmarks.stopping --datasets digits,breast_cancer,wine,diabetes
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from benchmarks import common
from modal_ally.stopping import (
    DualCriterion,
    LabelBudget,
    MaxConfidence,
    OverallUncertainty,
    StabilizingPredictions,
)

TAIL_ROUNDS = 3
ACCURACY_TOLERANCE = 0.01
MSE_TOLERANCE = 0.02
CLASSIFICATION_ONLY = ("overall_uncertainty", "max_confidence")


def make_criteria(task, *, budget, n_pool):
    """Fresh criteria for one run, by column name (defaults of :mod:`modal_ally.stopping`)."""
    criteria = {"stabilizing_predictions": StabilizingPredictions(),
                "overall_uncertainty": OverallUncertainty(),
                "max_confidence": MaxConfidence(),
                "dual_top_b": DualCriterion(budget),
                "dual_pool_mean": DualCriterion(None),
                "label_budget_half": LabelBudget(max(1, n_pool // 2))}
    if task != "classification":
        for name in CLASSIFICATION_ONLY:
            del criteria[name]
    return criteria


def criteria_row(criteria, learner, X_remaining, n_labeled):
    """Every criterion's statistic and decision this round, as table columns."""
    row = {}
    for name, criterion in criteria.items():
        decision = criterion.check(learner, X_remaining, n_labeled=n_labeled)
        row[f"{name}_statistic"] = decision.statistic
        row[f"{name}_stop"] = decision.stop
    return row


def run_curve(data, strategy, seed, *, initial, budget, epochs, max_rounds):
    """One active-learning run to the end of the pool; one row per round."""
    from modAL.models import ActiveLearner

    spec = common.STRATEGIES[strategy]
    estimator = common.build_estimator(common.Arm(strategy, "ally"), data, epochs=epochs,
                                       seed=seed)
    n_pool = int(data.X_pool.shape[0])
    criteria = make_criteria(data.task, budget=budget, n_pool=n_pool)
    labeled = [int(i) for i in common.initial_indices(n_pool, initial, seed)]
    learner = ActiveLearner(estimator=estimator, query_strategy=spec.load(),
                            X_training=data.X_pool[labeled], y_training=data.y_pool[labeled])
    rows = []
    for round_ in range(max_rounds + 1):
        remaining = np.setdiff1d(np.arange(n_pool), labeled)
        metric = common.evaluate(learner.estimator, data.X_test, data.y_test, data.task)
        row = {"dataset": data.name, "strategy": strategy, "seed": int(seed),
               "round": round_, "n_labels": len(labeled), "metric": metric}
        if remaining.size:  # criteria look at the pool: none is left after the last round
            row.update(criteria_row(criteria, learner, data.X_pool[remaining], len(labeled)))
        rows.append(row)
        if remaining.size == 0 or round_ == max_rounds:
            break
        kwargs = {"random_state": common.query_random_state(seed, round_ + 1)} \
            if spec.accepts_random_state else {}
        picked = learner.query(data.X_pool[remaining], n_instances=min(budget, remaining.size),
                               **kwargs)[0]
        new = remaining[np.asarray(picked, dtype=np.int64).ravel()]
        learner.teach(data.X_pool[new], data.y_pool[new])
        labeled.extend(int(i) for i in new)
    return rows


def criteria_names(rows):
    """The criteria recorded in a run's rows (columns ``<name>_stop``)."""
    return [key[:-len("_stop")] for key in rows[0] if key.endswith("_stop")]


def _close(metric, final, task):
    if task == "classification":
        return metric >= final - ACCURACY_TOLERANCE
    return metric <= final * (1 + MSE_TOLERANCE)


def judge_run(rows, task, criteria):
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
    for name in criteria:
        stops = [i for i, row in enumerate(rows) if row.get(f"{name}_stop")]
        base = {"task": task, **{key: rows[0][key] for key in ("dataset", "strategy", "seed")}}
        base.update(criterion=name, final=final, hindsight_labels=hindsight,
                    n_pool_labels=float(n_labels[-1]))
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
    """Aggregate the outcomes over runs, grouped by ``keys`` (criterion first)."""
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


def summary_markdown(overall, per_dataset, *, header):
    """The Markdown tables: every run together, then per data set and strategy."""
    def cell(value, percent=False):
        if isinstance(value, str):
            return value
        if not np.isfinite(value):
            return "-"
        return f"{100 * value:.0f} %" if percent else f"{value:.1f}"

    columns = [("within_tolerance", "stops within 1 pt of final", True),
               ("labels_past_hindsight", "labels past the 1-pt point (mean)", False),
               ("labels_used_fraction", "share of pool labeled at stop", True),
               ("metric_lost", "metric lost at stop (acc. points / % of MSE)", False),
               ("never_stops", "never stops", True)]
    lines = [header, ""]
    for title, table, keys in (("All runs", overall, ["task", "criterion"]),
                               ("Per data set and strategy", per_dataset,
                                ["dataset", "strategy", "criterion"])):
        lines += [f"### {title}", "",
                  "| " + " | ".join(keys + ["runs"] + [c[1] for c in columns]) + " |",
                  "|" + "---|" * (len(keys) + 1 + len(columns))]
        for row in table:
            lines.append("| " + " | ".join([str(row[k]) for k in keys] + [str(row["runs"])]
                                           + [cell(row[c], p) for c, _, p in columns]) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(rows, outcomes, path):
    """Mean curve per (data set, strategy); each criterion's mean stop marked on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    strategies = list(dict.fromkeys(row["strategy"] for row in rows))
    criteria = list(dict.fromkeys(outcome["criterion"] for outcome in outcomes))
    markers = dict(zip(criteria, "osD^vP*X"))
    fig, axes = plt.subplots(len(datasets), len(strategies), squeeze=False,
                             figsize=(4 * len(strategies), 3 * len(datasets)))
    for (d, dataset), (s, strategy) in ((a, b) for a in enumerate(datasets)
                                        for b in enumerate(strategies)):
        ax = axes[d][s]
        curve = {}
        for row in rows:
            if row["dataset"] == dataset and row["strategy"] == strategy:
                curve.setdefault(row["round"], []).append((row["n_labels"], row["metric"]))
        if not curve:
            ax.set_visible(False)
            continue
        x = np.array([np.mean([p[0] for p in curve[r]]) for r in sorted(curve)])
        y = np.array([np.mean([p[1] for p in curve[r]]) for r in sorted(curve)])
        ax.plot(x, y, color="0.3", lw=1.5)
        for name in criteria:
            stops = [o["stop_labels"] for o in outcomes if o["dataset"] == dataset
                     and o["strategy"] == strategy and o["criterion"] == name and o["stopped"]]
            if stops:
                at = float(np.mean(stops))
                ax.plot(at, np.interp(at, x, y), markers[name], ms=7, label=name,
                        alpha=0.85)
        ax.set_title(f"{dataset} / {strategy}", fontsize="small")
        ax.grid(alpha=0.3)
        ax.set_xlabel("labels", fontsize="small")
    handles, labels = max((ax.get_legend_handles_labels() for ax in axes.ravel()),
                          key=lambda hl: len(hl[1]))
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csv(path, rows):
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stopping",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="digits,breast_cancer,wine,diabetes")
    parser.add_argument("--strategies", default="ally,random,entropy",
                        help="entropy/margin are skipped for regression")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--budget-fraction", type=float, default=0.04,
                        help="labels per round (and initial set) as a share of the pool")
    parser.add_argument("--max-rounds", type=int, default=40)
    parser.add_argument("--max-pool", type=int, default=None)
    parser.add_argument("--out", default="docs/results/stopping")
    return parser


def load_runs(path, settings):
    """Finished runs of ``runs.jsonl`` written with the same settings."""
    runs = {}
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["settings"] == settings:
                runs[tuple(record["key"])] = record["rows"]
    return runs


def run_all(args, out):
    """Run (or reuse) every (data set, strategy, seed); return rows, outcomes and tasks."""
    from benchmarks.datasets import load_dataset

    settings = {"epochs": args.epochs, "budget_fraction": args.budget_fraction,
                "max_rounds": args.max_rounds, "max_pool": args.max_pool}
    store = out / "runs.jsonl"
    done = load_runs(store, settings)
    rows, outcomes = [], []
    for dataset in common.parse_names(args.datasets):
        data = load_dataset(dataset, random_state=0, max_pool=args.max_pool)
        budget = max(2, int(round(args.budget_fraction * data.X_pool.shape[0])))
        names, _ = common.resolve_strategies(args.strategies, "classification")
        if data.task != "classification":
            skipped = [name for name in names if common.STRATEGIES[name].needs_proba]
            names = [name for name in names if name not in skipped]
            print(f"note: {dataset} is a regression task: skipping {', '.join(skipped)}")
        for strategy in names:
            for seed in range(args.seeds):
                key = (dataset, strategy, seed)
                if key not in done:
                    start = time.perf_counter()
                    done[key] = run_curve(data, strategy, seed, initial=budget, budget=budget,
                                          epochs=args.epochs, max_rounds=args.max_rounds)
                    with open(store, "a") as handle:
                        handle.write(json.dumps({"settings": settings, "key": key,
                                                 "rows": done[key]}) + "\n")
                    print(f"{dataset} {strategy} seed={seed}: {len(done[key])} rounds, "
                          f"{time.perf_counter() - start:.0f} s", flush=True)
                rows += done[key]
                outcomes += judge_run(done[key], data.task, criteria_names(done[key]))
    return rows, outcomes


def main(argv=None):
    """Run the benchmark and write its outputs; returns the summary rows."""
    import torch

    torch.set_num_threads(1)
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows, outcomes = run_all(args, out)
    overall = summarize(outcomes, ["task", "criterion"])
    per_dataset = summarize(outcomes, ["dataset", "strategy", "criterion"])
    write_csv(out / "rounds.csv", rows)
    write_csv(out / "stops.csv", outcomes)
    write_csv(out / "summary.csv", [{"dataset": "all", "strategy": "all", **row}
                                    for row in overall] + per_dataset)
    header = (f"Stopping criteria, {args.seeds} seeds, {args.epochs} epochs per fit, "
              f"{args.budget_fraction:.0%} of the pool per round; tolerance: 1 accuracy "
              f"point (MSE: 2 %) of the final metric (mean of the last {TAIL_ROUNDS} rounds)")
    (out / "summary.md").write_text(summary_markdown(overall, per_dataset, header=header))
    plot(rows, outcomes, out / "stopping.png")
    print(f"wrote {out} in {time.perf_counter() - start:.0f} s")
    return overall


if __name__ == "__main__":
    main()
