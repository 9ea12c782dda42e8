"""The record of every screened ALLY candidate: paired tables read from the run states.

Reads the ``state.json`` of ``benchmarks.research.ally_screen`` runs (nothing is computed), keeps
the arms whose every seed finished all rounds, and writes one paired table per task
(``python -m benchmarks.research.ally_record OUT_DIR TASK=STATE_DIR ...``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.harness.paired import paired_markdown, paired_table

#: The candidates' one-line descriptions (benchmarks/research/ally_candidates.py).
LEGEND = {
    "paper": "the paper's Algorithm 2 (k-means, k = b, top lambda_hat per cluster)",
    "gradw": "k-means++ in BADGE's gradient space, draws ~ lambda_hat * D^2 "
             "(the default before the shrunk duals)",
    "ally": "the package's ally_query_strategy default when the run was made (on the "
            "*_shrunk and parkinsons_dual_step tables: draws ~ lambda_hat * D^2, as gradw; "
            "on the *_issue16 tables: the shrunk draws on the label-conditional pool head, "
            "form='mlp', the default since)",
    "ally-paper": "the package's method='paper' (Algorithm 2)",
    "gradw-shrink": "as gradw, draws ~ (lambda_hat + mean lambda_hat) * D^2 "
                    "(**the default rule now**; on parkinsons_dual_step it ran with the "
                    "regressor's dual_lr of then, 0.05)",
    "gradw-shrink-r": "gradw-shrink, PDCLRegressor with dual_lr 0.005 "
                      "(**the default now**, regression)",
    "d2-labeled-shrink-r": "d2-labeled with the shrunk weights lambda_hat + mean, "
                           "dual_lr 0.005",
    "d2-labeled-greedy-shrink-r": "d2-labeled-greedy with the shrunk weights, dual_lr 0.005",
    "ally-paper-k1": "the paper's rule with k = 1: top-b by lambda_hat",
    "ally-paper-k20": "the paper's rule with k = 20 clusters (b = 100: 5 picks per cluster)",
    "ally-paper-k50": "the paper's rule with k = 50 clusters (2 picks per cluster)",
    "gradw-dlr05": "gradw with the regressor's former dual_lr 0.05 (the regression "
                   "default before this change)",
    "ally-r": "gradw (the default before), PDCLRegressor with dual_lr 0.005",
    "ally-paper-r": "the paper's Algorithm 2, PDCLRegressor with dual_lr 0.005",
    "d2-labeled": "k-means++ on backbone embeddings, D also to the labeled set, "
                  "draws ~ lambda_hat * D^2",
    "d2-labeled-r": "d2-labeled, PDCLRegressor with dual_lr 0.005",
    "d2-labeled-nolambda-r": "d2-labeled without lambda (D^2 only), dual_lr 0.005",
    "d2-labeled-greedy-r": "d2-labeled, the largest lambda_hat * D^2 at every step "
                           "(weighted k-center greedy), dual_lr 0.005",
    "gradw-sqrt": "as gradw, draws ~ sqrt(lambda_hat) * D^2",
    "grad": "k-means++ in gradient space with embeddings scaled by lambda_hat",
    "grad-sqrt": "as grad, scaled by sqrt(lambda_hat)",
    "ally-nolambda": "the shipped default rule with every draw weight 1 (its ablation)",
    "grad-nolambda": "k-means++ in gradient space, no lambda (= BADGE on the PDCL net; "
                     "the ablation of gradw and grad)",
    "unc": "paper's clusters, top lambda_hat * (1 - max p) per cluster",
    "d2": "k-means++ on backbone embeddings, draws ~ lambda_hat * D^2",
    # issue 16 (the *_issue16 tables)
    "ally-paperhead": "the default rule reading the paper's head (the default before "
                      "issue 16: pool_dual_head=None)",
    "gradw-sq": "as gradw on the pool head, draws ~ lambda_hat^2 * D^2",
    "gclust": "top lambda_hat (pool head) within b clusters of BADGE's k-means++ seeds",
    "ally-lossonly": "the default rule reading a pool head of the class's loss alone "
                     "(pool_dual_head__form='loss')",
    # issue 16, stronger duals and the duals alone (the shipped streamed rule)
    "ally-raw": "the shipped rule with draws ~ lambda_hat * D^2 (unshrunk)",
    "ally-sq": "the shipped rule with draws ~ lambda_hat^2 * D^2",
    "ally-dir": "the shipped rule on the gradient embeddings' directions (norm 1): the "
                "duals are its only informativeness, draws ~ lambda_hat * D^2",
    "ally-dir-shrink": "ally-dir with the default's shrunk weights lambda_hat + mean",
    "dir-nolambda": "ally-dir with every weight 1 (diversity alone; its ablation)",
    "ally-dir-mono": "ally-dir reading the monotone pool head "
                     "(pool_dual_head__form='monotone')",
    "ally-adir": "the shipped rule with the output factor a scaled to norm 1: the duals "
                 "in place of BADGE's uncertainty |a|, the embedding's norm kept",
    "ally-adir-mono": "ally-adir reading the monotone pool head",
    "adir-nolambda": "ally-adir with every weight 1 (its ablation)",
    "ally-adir-sq": "ally-adir with draws ~ lambda_hat^2 * D^2 (the duals squared in place "
                    "of |a|^2)",
    "ally-adir-mono-sq": "ally-adir-sq reading the monotone pool head",
    "badge": "BADGE (plain net)", "random": "random", "margin": "margin (plain net)",
    "uncertainty": "least confidence (plain net)", "entropy": "entropy (plain net)",
    "coreset": "Coreset k-center greedy (plain net)",
}


def complete_rows(state_path):
    """Rows of the arms whose every seed finished the run's largest round count."""
    runs = json.loads(Path(state_path).read_text())["runs"]
    rounds = max(run["rounds_done"] for run in runs.values())
    arms = {}
    for key, run in runs.items():
        arm = key.split("|seed=")[0]
        arms.setdefault(arm, []).append(run)
    seeds = max(len(v) for v in arms.values())
    rows = []
    for arm_runs in arms.values():
        if len(arm_runs) == seeds and all(r["rounds_done"] == rounds for r in arm_runs):
            rows += [dict(row) for run in arm_runs for row in run["rows"]]
    return rows


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.research.ally_record",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the folder the tables are written to")
    parser.add_argument("runs", nargs="*", metavar="TASK=STATE_DIR",
                        help="a table's name and the folder of the screen's state.json")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if any("=" not in spec for spec in args.runs):
        parser.error("every run is TASK=STATE_DIR")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for spec in args.runs:
        task, state_dir = spec.split("=", 1)
        rows = complete_rows(Path(state_dir) / "state.json")
        metric_task = ("regression" if task.startswith(("parkinsons", "diabetes"))
                       else "classification")
        arms = {row["strategy"] for row in rows}
        references = [r for r in ("random", "paper", "ally-paper", "grad-nolambda", "ally")
                      if r in arms]
        table, seeds = paired_table(rows, metric_task, references=references)
        text = paired_markdown(table, seeds, task=metric_task, title=f"Screening: {task}",
                               references=references)
        legend = "\n".join(f"- `{row['arm']}`: {LEGEND.get(row['arm'], '')}"
                           for row in table)
        (out / f"{task}.md").write_text(text + "\nArms:\n\n" + legend + "\n")
        print(text)


if __name__ == "__main__":
    main()
