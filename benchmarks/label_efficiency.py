"""Does ALLY save labels? Its default rule, the paper's rule, the ablation and every
baseline through the same modAL loop, paired per seed (docs/label-efficiency.md).

Runs named arms through the shared modAL loop (``benchmarks/harness/loop.py``: the same
initial labeled set, test set and network per seed for every arm; ALLY arms train a
PDCLNet, the others the same module without constraints) and writes, besides the usual
``rounds.csv`` / ``summary.md`` / plot, ``paired.md`` and ``paired.csv``: per arm the area
under the learning curve (mean +- std over seeds), on how many seeds it is the best arm,
and its paired difference to ``random`` and to the best other arm (by mean AULC; mean +-
std of the per-seed differences, seeds won). ``--report DIR`` writes the same with the
tables' names (``ALLY default``, ``ALLY paper``, ...) into ``DIR``: the folders of
``docs/results/ally/`` that ``python -m benchmarks.headline`` reads for the README.

The arms (:data:`ARMS`): ``ally`` (the package's default rule), ``ally-paper``
(``method="paper"``), ``ally-nolambda`` (the default rule with every draw weight 1, its
ablation: :func:`benchmarks.harness.ablation.ally_exact`), and the baselines ``random``,
``uncertainty``, ``margin``, ``entropy``, ``badge``, ``coreset``. The research screens
(``python -m benchmarks.research.ally_screen``) run the same loop with more arms, and can
resume a copy of these runs' states.

Example (the digits row of the tables; every command in docs/label-efficiency.md)::

    python -m benchmarks.label_efficiency --dataset digits --arms \\
        ally,ally-paper,ally-nolambda,badge,random,margin,uncertainty,entropy,coreset \\
        --seeds 5 --threads 1 --out results/final/digits --report docs/results/ally/digits
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks.harness import cli, registry
from benchmarks.harness.paired import DISPLAY, paired_markdown, paired_table, read_rounds
from benchmarks.harness.reporting import write_csv, write_report
from benchmarks.harness.store import STATE_FILE, RunStore, SettingsError
from modal_ally._torch_utils import torch_threads

__all__ = ["ARMS", "REFERENCES", "main", "make_arms", "run"]

#: The references of the ``--report`` tables (their arm names).
REFERENCES = ("random", "ALLY paper", "ALLY default without lambda (ablation)")

registry.STRATEGIES.setdefault("ally-exact", registry.StrategySpec(
    "ally-exact", "benchmarks.harness.ablation:ally_exact", pdcl=True,
    accepts_random_state=True))

#: name -> (strategy, estimator parameters, query parameters)
ARMS = {
    # the package's ally_query_strategy: its default rule, and the paper's rule
    "ally": ("ally", {}, {}),
    "ally-paper": ("ally", {}, {"method": "paper"}),
    # the ablation of the shipped default: the same streamed rule, every weight 1
    "ally-nolambda": ("ally-exact", {}, {"n_components": 32, "weighted": False}),
    "random": ("random", {}, {}),
    "uncertainty": ("uncertainty", {}, {}),
    "margin": ("margin", {}, {}),
    "entropy": ("entropy", {}, {}),
    "badge": ("badge", {}, {}),
    "coreset": ("coreset", {}, {}),
}


def make_arms(names, arms=None):
    """The :class:`~benchmarks.harness.registry.Arm` of every name (of ``arms``, by default
    :data:`ARMS`)."""
    arms = ARMS if arms is None else arms
    unknown = [n for n in names if n not in arms]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {', '.join(arms)}")
    return [registry.Arm(n, arms[n][0], arms[n][1], arms[n][2]) for n in names]


def discard(parser, args, out, names):
    """Drop the saved curves of ``names`` from the state in ``out`` (``--rerun``)."""
    unknown = [n for n in names if n not in registry.parse_names(args.arms)]
    if unknown:
        parser.error(f"--rerun names arms not in --arms: {', '.join(unknown)}")
    if not (out / STATE_FILE).exists():
        return
    try:
        with RunStore(out, cli.loop_config(args),
                      allow_thread_change=args.allow_thread_change) as store:
            dropped = store.discard_runs(names)
    except SettingsError as exc:
        parser.error(str(exc))
    print(f"discarded {len(dropped)} saved curves of {', '.join(names)} in {out}")


def build_parser(prog="python -m benchmarks.label_efficiency", description=None, arms=None):
    parser = cli.loop_parser(prog, description or __doc__.splitlines()[0])
    parser.add_argument("--arms", default="ally,ally-paper,ally-nolambda,random",
                        help="comma-separated arms: " + ", ".join(ARMS if arms is None
                                                                   else arms))
    parser.add_argument("--rerun", default="",
                        help="comma-separated arms whose saved curves in --out are "
                             "discarded and run again (after a change to their code)")
    parser.add_argument("--report", default=None,
                        help="also write the report with the final tables' arm names "
                             "(ALLY default, ALLY paper, ...) into this folder")
    parser.add_argument("--baselines-from", default=None, metavar="DIR",
                        help="add to the paired tables and the report every strategy of "
                             "DIR/rounds.csv (a table of docs/results/ally/) that this run "
                             "does not run: rerun the ALLY arms, keep the saved baselines")
    return parser


def saved_baselines(folder, rows):
    """The rows of ``folder/rounds.csv`` whose strategy ``rows`` (this run's) lacks, checked
    to have the same seeds, rounds and labeled-set sizes (the same settings)."""
    path = Path(folder) / "rounds.csv"
    if not path.exists():
        raise FileNotFoundError(f"--baselines-from: {path} does not exist")
    ran = {DISPLAY.get(row["strategy"], row["strategy"]) for row in rows}
    grid = {(row["seed"], row["round"], row["n_labels"]) for row in rows}
    saved = []
    for row in read_rounds(path):
        if row["strategy"] in ran:
            continue
        for key in ("fit_s", "query_s"):
            row[key] = float(row[key]) if row[key] not in ("", None) else None
        saved.append(row)
    other = {(row["seed"], row["round"], row["n_labels"]) for row in saved}
    if not saved or other != grid:
        raise ValueError(f"--baselines-from: {path} holds no other strategy, or other seeds, "
                         "rounds or labeled-set sizes than this run (run it with the "
                         "settings of that table)")
    return saved


def write_named_report(rows, report, *, task, title):
    """The report and the paired tables with the final tables' arm names (``DISPLAY``)."""
    rows = [{**row, "strategy": DISPLAY.get(row["strategy"], row["strategy"])}
            for row in rows]
    report = Path(report)
    write_report(rows, report, task=task, title=title)
    baselines = {row["strategy"] for row in rows if not row["strategy"].startswith("ALLY")}
    table, seeds = paired_table(rows, task, references=REFERENCES, baselines=baselines)
    (report / "paired.md").write_text(paired_markdown(table, seeds, task=task, title=title,
                                                      references=REFERENCES))
    write_csv(report / "paired.csv", list(dict.fromkeys(k for r in table for k in r)), table)


def run(argv=None, *, parser, arms, default_out, classification_only=()):
    """Run (or resume) the arms ``--arms`` names, then the paired tables: the ``main`` of
    this script and of the research screens (their ``arms``, ``parser`` and default
    output folder ``results/<default_out>/<dataset>``). ``classification_only``: strategy
    names left out on a regression task besides those that need class probabilities."""
    args = cli.parse_loop_args(parser, argv)
    try:
        data = cli.load_benchmark_data(args)
        chosen = make_arms(registry.parse_names(args.arms), arms)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    if data.task == "regression":
        chosen = [a for a in chosen if not registry.STRATEGIES[a.strategy].needs_proba
                  and a.strategy not in classification_only]
    out = Path(args.out or Path("results", default_out, args.dataset))
    title = (f"{args.dataset} (pool {data.n_pool}, test {data.n_test}): initial {args.initial}, "
             f"b = {args.budget}, {args.rounds} rounds, {args.epochs} epochs, "
             f"{args.seeds} seeds")
    start = time.perf_counter()
    if args.rerun:  # under the run's thread count, which the saved state records
        with torch_threads(args.threads):
            discard(parser, args, out, registry.parse_names(args.rerun))
    result = cli.run_benchmark(parser, args, data, chosen, out, title=title,
                               print_report=False)
    if args.baselines_from:
        saved = saved_baselines(args.baselines_from, result["rows"])
        result["rows"] = result["rows"] + saved
        title += (f"; {', '.join(dict.fromkeys(r['strategy'] for r in saved))} as saved in "
                  f"{args.baselines_from}")
    table, seeds = paired_table(result["rows"], data.task)
    markdown = paired_markdown(table, seeds, task=data.task, title=title)
    (out / "paired.md").write_text(markdown)
    write_csv(out / "paired.csv", list(dict.fromkeys(k for r in table for k in r)), table)
    print(markdown)
    if args.report:
        write_named_report(result["rows"], args.report, task=data.task, title=title)
    print(f"wall {time.perf_counter() - start:.0f} s, torch threads {args.threads}, "
          f"pid {os.getpid()}")
    return result


def main(argv=None):
    return run(argv, parser=build_parser(), arms=ARMS, default_out="label_efficiency")


if __name__ == "__main__":
    main()
