"""Active learning under a noisy oracle: every strategy, and ALLY with a label audit.

The oracle gives a wrong label (uniformly one of the other classes) with probability
``rate``, independently for every pool row, drawn once per seed (the same answers for
every arm of a seed: paired). Asked again about a row (a relabel), it answers anew with
the same error rate (a second, independent draw). Every strategy runs through a real
``modAL.models.ActiveLearner`` as in ``benchmarks/loop.py`` (same initial set, network,
epochs and query seeds per seed). The audit arms spend ``--audit-fraction`` of every
round's budget on relabels: :func:`modal_ally.relabel` sends the top suspects of
:func:`modal_ally.rank_label_issues` (rows not audited before) back to the oracle, then
the rest of the budget is queried. A relabel counts as an annotation: every arm spends
the same number of annotations per round. Test accuracy is measured on the clean test
labels; AULC over the annotations spent. Output: ``curves.jsonl`` (a rerun skips the
curves done), ``summary.md``, ``paired.md``/``paired.csv`` (per rate, as in
``benchmarks/ally_screen.py``) and a plot.

Example::

    python -m benchmarks.noisy_oracle --dataset digits --seeds 2 --rounds 3 --threads 1
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks import cli, registry
from benchmarks.estimators import build_estimator
from benchmarks.loop import initial_indices, query_random_state
from benchmarks.metrics import evaluate

#: display name -> (strategy, query parameters, audited)
ARMS = {
    "ALLY default": ("ally", {}, False),
    "ALLY paper": ("ally", {"method": "paper"}, False),
    "BADGE": ("badge", {}, False),
    "margin": ("margin", {}, False),
    "entropy": ("entropy", {}, False),
    "uncertainty": ("uncertainty", {}, False),
    "Core-Set": ("coreset", {}, False),
    "random": ("random", {}, False),
    "ALLY + guard": ("ally", {"skip_top_quantile": "guard"}, False),
    "ALLY + audit": ("ally", {}, True),
    "ALLY + guard + audit": ("ally", {"skip_top_quantile": "guard"}, True),
}


def oracle_answers(y_pool, n_classes, rate, seed):
    """``(first, second)``: the oracle's first and second answer for every pool row."""
    rng = np.random.default_rng([int(seed), int(round(rate * 1000)), 0x0EAC1E])
    answers = []
    for _ in range(2):
        wrong = rng.random(len(y_pool)) < rate
        shift = rng.integers(1, n_classes, size=len(y_pool))
        answers.append(np.where(wrong, (y_pool + shift) % n_classes, y_pool))
    return answers


def _query_kwargs(name, seed, round_, guard):
    strategy, params, _ = ARMS[name]
    kwargs = {k: (guard if v == "guard" else v) for k, v in params.items()}
    if registry.STRATEGIES[strategy].accepts_random_state:
        kwargs["random_state"] = query_random_state(seed, round_)
    return kwargs


def _audit(learner, labeled, audited, n_audit, second):
    """Relabel the ``n_audit`` top suspects not audited before; the rows relabeled."""
    from modal_ally import rank_label_issues, relabel

    order, _ = rank_label_issues(learner)
    fresh = [i for i in order if labeled[i] not in audited][:n_audit]
    if not fresh:
        return []
    relabel(learner, lambda rows, positions: second[np.asarray(labeled)[positions]],
            indices=np.asarray(fresh))
    audited.update(labeled[i] for i in fresh)
    return fresh


def run_curve(data, name, rate, seed, args):
    """One (arm, rate, seed) curve: rows of ``(annotations, accuracy)`` by round."""
    from modAL.models import ActiveLearner

    strategy, _, audited_arm = ARMS[name]
    first, second = oracle_answers(data.y_pool, data.n_classes, rate, seed)
    labeled = [int(i) for i in initial_indices(len(data.y_pool), args.initial, seed)]
    estimator = build_estimator(registry.Arm(name, strategy), data, epochs=args.epochs,
                                seed=seed)
    learner = ActiveLearner(estimator=estimator,
                            query_strategy=registry.STRATEGIES[strategy].load(),
                            X_training=data.X_pool[labeled], y_training=first[labeled])
    annotations, audited, relabels = len(labeled), set(), 0
    rows = [{"round": 0, "annotations": annotations,
             "metric": evaluate(learner.estimator, data.X_test, data.y_test, data.task)}]
    n_audit = int(round(args.audit_fraction * args.budget)) if audited_arm else 0
    for round_ in range(1, args.rounds + 1):
        done = _audit(learner, labeled, audited, n_audit, second) if n_audit else []
        relabels += len(done)
        is_labeled = np.zeros(len(data.y_pool), dtype=bool)
        is_labeled[labeled] = True
        remaining = np.flatnonzero(~is_labeled)
        n_query = args.budget - len(done)
        picked = np.asarray(learner.query(data.X_pool[remaining], n_instances=n_query,
                                          **_query_kwargs(name, seed, round_, args.guard))[0])
        new = remaining[picked.astype(np.int64).ravel()]
        learner.teach(data.X_pool[new], first[new])
        labeled.extend(int(i) for i in new)
        annotations += len(done) + len(new)
        y_now = np.asarray(learner.y_training)
        rows.append({"round": round_, "annotations": annotations, "relabels": relabels,
                     "wrong_labels": int((y_now != data.y_pool[labeled]).sum()),
                     "metric": evaluate(learner.estimator, data.X_test, data.y_test,
                                        data.task)})
    return rows


def build_parser():
    parser = cli.loop_parser("python -m benchmarks.noisy_oracle", __doc__.splitlines()[0],
                             rounds=5)
    add = parser.add_argument
    add("--rates", default="0.1,0.2", help="oracle error rates (default: %(default)s)")
    add("--arms", default=",".join(ARMS), help="comma-separated: " + ", ".join(ARMS))
    add("--audit-fraction", type=float, default=0.2,
        help="share of every round's budget the audit arms spend on relabels")
    add("--guard", type=float, default=0.05,
        help="skip_top_quantile of the guarded ALLY arms (default: %(default)s)")
    return parser


def main(argv=None):
    from benchmarks.noisy_oracle_report import write_reports

    parser = build_parser()
    args = cli.parse_loop_args(parser, argv)
    names = registry.parse_names(args.arms)
    unknown = [n for n in names if n not in ARMS]
    if unknown:
        parser.error(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    data = cli.load_benchmark_data(args)
    out = cli.out_dir(args, "noisy_oracle", args.dataset)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "curves.jsonl"
    settings = {"dataset": args.dataset, "max_pool": args.max_pool, "initial": args.initial,
                "budget": args.budget, "rounds": args.rounds, "epochs": args.epochs,
                "audit_fraction": args.audit_fraction, "guard": args.guard,
                "threads": args.threads}
    done = {(c["arm"], c["rate"], c["seed"]) for c in read_curves(path)
            if c["settings"] == settings}
    start = time.perf_counter()
    with warnings.catch_warnings(), cli.torch_threads(args.threads):
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        for rate in (float(r) for r in args.rates.split(",")):
            for seed in range(args.seeds):
                for name in names:
                    if (name, rate, seed) in done:
                        continue
                    t0 = time.perf_counter()
                    rows = run_curve(data, name, rate, seed, args)
                    curve = {"arm": name, "rate": rate, "seed": seed, "settings": settings,
                             "seconds": time.perf_counter() - t0, "rows": rows}
                    with open(path, "a") as stream:
                        stream.write(json.dumps(curve) + "\n")
                    print(f"{name} rate={rate} seed={seed}: final "
                          f"{rows[-1]['metric']:.4f} ({curve['seconds']:.0f} s)", flush=True)
    curves = [c for c in read_curves(path) if c["settings"] == settings]
    write_reports(curves, out, title=f"{args.dataset} (pool {len(data.y_pool)}), initial "
                  f"{args.initial}, {args.budget} annotations a round, {args.rounds} rounds, "
                  f"{args.epochs} epochs, audit {args.audit_fraction:.0%} of a round, guard "
                  f"skip_top_quantile={args.guard}")
    print(f"wall {time.perf_counter() - start:.0f} s, torch threads {args.threads}, "
          f"pid {os.getpid()}")


def read_curves(path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    main()
