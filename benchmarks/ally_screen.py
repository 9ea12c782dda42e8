"""Screen ALLY selection rules against the baselines (issue 7), paired per seed.

Runs named arms through the shared modAL loop (``benchmarks/harness/loop.py``: the same
initial labeled set, test set and network per seed for every arm; ALLY arms train a
PDCLNet, the others the same module without constraints) and writes, besides the usual
``rounds.csv`` / ``summary.md`` / plot, ``paired.md`` and ``paired.csv``: per arm the area
under the learning curve (mean +- std over seeds), on how many seeds it is the best arm,
and its paired difference to ``random``, to the paper's ALLY and to the best other arm
(by mean AULC; mean +- std of the per-seed differences, seeds won).

Example::

    python -m benchmarks.ally_screen --dataset digits --arms paper,d2,random,badge
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import cli, registry
from benchmarks.harness.metrics import curves, learning_curve_area, metric_info, paired_difference
from benchmarks.harness.reporting import write_csv, write_report
from benchmarks.harness.store import STATE_FILE, RunStore, SettingsError
from modal_ally._torch_utils import torch_threads

REFERENCES = ("random", "ALLY paper", "ALLY default without lambda (ablation)")

_CANDIDATES = "benchmarks.ally_candidates"
for _name, _fn in (("ally-d2", "ally_d2"), ("ally-gradient", "ally_gradient"),
                   ("ally-uncertain", "ally_uncertain"),
                   ("ally-gradient-weighted", "ally_gradient_weighted"),
                   ("ally-gradient-clusters", "ally_gradient_clusters"),
                   ("ally-exact", "ally_exact"), ("ally-dask", "ally_dask"),
                   ("ally-reweighted", "ally_reweighted")):
    registry.STRATEGIES.setdefault(_name, registry.StrategySpec(
        _name, f"{_CANDIDATES}:{_fn}", pdcl=True, accepts_random_state=True))

#: name -> (strategy, estimator parameters, query parameters)
ARMS = {
    # the package's ally_query_strategy: its default rule, and the paper's rule
    "ally": ("ally", {}, {}),
    "ally-paper": ("ally", {}, {"method": "paper"}),
    # the screening arms (run before the default changed, when "ally" was the paper's
    # rule: "paper" ran it; "gradw" is the rule that became the default, pick for pick)
    "paper": ("ally", {}, {}),
    "d2": ("ally-d2", {}, {}),
    "d2-nolambda": ("ally-d2", {}, {"weight": "none"}),
    "d2-sq": ("ally-d2", {}, {"power": 2.0}),
    "d2-labeled": ("ally-d2", {}, {"labeled": True}),
    "d2-labeled-nolambda": ("ally-d2", {}, {"labeled": True, "weight": "none"}),
    "grad": ("ally-gradient", {}, {}),
    "grad-nolambda": ("ally-gradient", {}, {"weight": "none"}),
    "unc": ("ally-uncertain", {}, {}),
    "gradw": ("ally-gradient-weighted", {}, {}),
    "gradw-sqrt": ("ally-gradient-weighted", {}, {"power": 0.5}),
    "grad-sqrt": ("ally-gradient", {}, {"power": 0.5}),
    "paper-eps-auto": ("ally", {"epsilon": "auto"}, {}),
    # regression: the PDCL regressor with a smaller dual step (dual_lr 0.005)
    "ally-r": ("ally", {"dual_lr": 0.005}, {}),
    "ally-paper-r": ("ally", {"dual_lr": 0.005}, {"method": "paper"}),
    "d2-labeled-r": ("ally-d2", {"dual_lr": 0.005}, {"labeled": True}),
    "d2-labeled-nolambda-r": ("ally-d2", {"dual_lr": 0.005},
                              {"labeled": True, "weight": "none"}),
    "d2-labeled-greedy-r": ("ally-d2", {"dual_lr": 0.005},
                            {"labeled": True, "greedy": True}),
    # the paper's rule with k clusters other than b (k = 1: plain top-b by lambda_hat)
    "ally-paper-k1": ("ally", {}, {"method": "paper", "n_clusters": 1}),
    "ally-paper-k20": ("ally", {}, {"method": "paper", "n_clusters": 20}),
    "ally-paper-k50": ("ally", {}, {"method": "paper", "n_clusters": 50}),
    "gradw-shrink": ("ally-gradient-weighted", {}, {"shrink": True}),
    "d2-labeled-shrink-r": ("ally-d2", {"dual_lr": 0.005}, {"labeled": True, "shrink": True}),
    "d2-labeled-greedy-shrink-r": ("ally-d2", {"dual_lr": 0.005},
                                   {"labeled": True, "greedy": True, "shrink": True}),
    # the previous default for a regressor: gradw with the regressor's former dual_lr
    "gradw-dlr05": ("ally-gradient-weighted", {"dual_lr": 0.05}, {}),
    "gradw-shrink-r": ("ally-gradient-weighted", {"dual_lr": 0.005}, {"shrink": True}),
    # issue 16: the previous default (the paper's head read for the pool too), and the
    # default rule's draw with other weights on the label-conditional head's duals
    "ally-paperhead": ("ally", {"pool_dual_head": None}, {}),
    "gradw-sq": ("ally-gradient-weighted", {}, {"power": 2.0}),
    "gclust": ("ally-gradient-clusters", {}, {}),
    # the pool head reading the class's loss alone (no embedding)
    "ally-lossonly": ("ally", {"pool_dual_head__form": "loss"}, {}),
    # the pool head reading the class's loss alone through non-negative weights
    "ally-mono": ("ally", {"pool_dual_head__form": "monotone"}, {}),
    # issue 15: the default rule in the full embedding space (no projection), drawn as
    # the package draws; "gradw-shrink" is the same rule pick by pick as before the
    # default was streamed (float64, one full update per pick)
    "ally-exact": ("ally-exact", {}, {}),
    "ally-p32r": ("ally-exact", {}, {"n_components": 32, "residual": True}),
    "ally-p64": ("ally-exact", {}, {"n_components": 64}),
    # the shipped rule with the pool head's duals unshrunk, and squared
    "ally-raw": ("ally-reweighted", {}, {}),
    "ally-sq": ("ally-reweighted", {}, {"power": 2.0}),
    # the duals as the only informativeness: the gradient embeddings' directions (norm 1)
    "ally-dir": ("ally-reweighted", {}, {"directions": True}),
    "ally-dir-shrink": ("ally-reweighted", {}, {"directions": True, "shrink": True}),
    "dir-nolambda": ("ally-reweighted", {}, {"directions": True, "weight": "none"}),
    "ally-dir-mono": ("ally-reweighted", {"pool_dual_head__form": "monotone"},
                      {"directions": True}),
    # the duals in place of BADGE's uncertainty |a|, the embedding's norm kept
    "ally-adir": ("ally-reweighted", {}, {"directions": "output"}),
    "ally-adir-mono": ("ally-reweighted", {"pool_dual_head__form": "monotone"},
                       {"directions": "output"}),
    "adir-nolambda": ("ally-reweighted", {}, {"directions": "output", "weight": "none"}),
    # squared duals in place of |a|^2 (BADGE's first-pick score is |a|^2 |z|^2)
    "ally-adir-sq": ("ally-reweighted", {}, {"directions": "output", "power": 2.0}),
    "ally-adir-mono-sq": ("ally-reweighted", {"pool_dual_head__form": "monotone"},
                          {"directions": "output", "power": 2.0}),
    # the ablation of the shipped default: the same streamed rule, every weight 1
    "ally-nolambda": ("ally-exact", {}, {"n_components": 32, "weighted": False}),
    # the default rule on the pool as a Dask array of 8 blocks (two rounds)
    "ally-dask8": ("ally-dask", {}, {}),
    "random": ("random", {}, {}),
    "uncertainty": ("uncertainty", {}, {}),
    "margin": ("margin", {}, {}),
    "entropy": ("entropy", {}, {}),
    "badge": ("badge", {}, {}),
    "coreset": ("coreset", {}, {}),
}


#: Names in the final tables (arms that are the same rule share a name).
DISPLAY = {"ally": "ALLY default", "gradw": "ALLY default",
           "ally-paper": "ALLY paper", "paper": "ALLY paper",
           "ally-nolambda": "ALLY default without lambda (ablation)",
           "grad-nolambda": "BADGE's draw on the PDCL net (previous ablation)"}


def make_arms(names):
    unknown = [n for n in names if n not in ARMS]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    return [registry.Arm(n, ARMS[n][0], ARMS[n][1], ARMS[n][2]) for n in names]


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


def build_parser():
    parser = cli.loop_parser("python -m benchmarks.ally_screen", __doc__.splitlines()[0])
    parser.add_argument("--arms", default="ally,ally-paper,ally-nolambda,random",
                        help="comma-separated arms: " + ", ".join(ARMS))
    parser.add_argument("--rerun", default="",
                        help="comma-separated arms whose saved curves in --out are "
                             "discarded and run again (after a change to their code)")
    parser.add_argument("--report", default=None,
                        help="also write the report with the final tables' arm names "
                             "(ALLY default, ALLY paper, ...) into this folder")
    return parser


def main(argv=None):
    parser = build_parser()
    args = cli.parse_loop_args(parser, argv)
    try:
        data = cli.load_benchmark_data(args)
        arms = make_arms(registry.parse_names(args.arms))
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    if data.task == "regression":
        arms = [a for a in arms if not registry.STRATEGIES[a.strategy].needs_proba
                and a.strategy != "ally-uncertain"]
    out = Path(args.out or Path("results", "ally_screen", args.dataset))
    title = (f"{args.dataset} (pool {data.n_pool}, test {data.n_test}): initial {args.initial}, "
             f"b = {args.budget}, {args.rounds} rounds, {args.epochs} epochs, "
             f"{args.seeds} seeds")
    start = time.perf_counter()
    if args.rerun:  # under the run's thread count, which the saved state records
        with torch_threads(args.threads):
            discard(parser, args, out, registry.parse_names(args.rerun))
    result = cli.run_benchmark(parser, args, data, arms, out, title=title,
                                  print_report=False)
    table, seeds = paired_table(result["rows"], data.task)
    markdown = paired_markdown(table, seeds, task=data.task, title=title)
    (out / "paired.md").write_text(markdown)
    write_csv(out / "paired.csv", list(dict.fromkeys(k for r in table for k in r)), table)
    print(markdown)
    if args.report:
        rows = [{**row, "strategy": DISPLAY.get(row["strategy"], row["strategy"])}
                for row in result["rows"]]
        report = Path(args.report)
        write_report(rows, report, task=data.task, title=title)
        baselines = {row["strategy"] for row in rows
                     if not row["strategy"].startswith("ALLY")}
        table, seeds = paired_table(rows, data.task, references=REFERENCES,
                                    baselines=baselines)
        (report / "paired.md").write_text(paired_markdown(table, seeds, task=data.task,
                                                          title=title, references=REFERENCES))
        write_csv(report / "paired.csv", list(dict.fromkeys(k for r in table for k in r)),
                  table)
    print(f"wall {time.perf_counter() - start:.0f} s, torch threads {args.threads}, "
          f"pid {os.getpid()}")
    return result


if __name__ == "__main__":
    main()
