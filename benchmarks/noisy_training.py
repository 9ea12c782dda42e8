"""How PDCL training fares on noisy labels, without active learning: the same random rows.

For every seed, noise rate and labeled-set size, one random labeled set is drawn from the
pool and a share ``rate`` of its labels is corrupted (``benchmarks.harness.label_noise``: symmetric,
confusable pairs, or replaced regression targets); every arm trains the same network on the
same rows and noisy labels and is scored on the clean test labels. The mean over the sizes
stands for the area under a learning curve. The arms:

``hard``       the paper's hard constraints (``slack_cost=None``; the 0.1 release's default);
``slack=A``    resilient constraints, ``slack_cost=A`` (a multiplier settles at
               ``A * max(0, l_i - eps)`` instead of growing without bound);
``free``       the same net without constraints (``dual_lr=0``: every multiplier stays 0);
``plain``      the baselines' net of the loops (``PlainNetClassifier``/``PlainNetRegressor``:
               plain skorch, the module trained on its loss, no dual heads).

Also recorded per fit: the AUROC of the label audit's default score (``rank_label_issues``)
for the corrupted rows, so a change of training that helps the model but blinds the audit
shows. Output: ``fits.jsonl`` (a rerun skips the fits done) and ``summary.md``.

Example::

    python -m benchmarks.noisy_training --dataset digits --seeds 5 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import cli
from benchmarks.harness.estimators import build_estimator
from benchmarks.harness.label_noise import corrupt
from benchmarks.harness.metrics import evaluate


def arm_params(name: str) -> dict:
    """The estimator parameters of an arm name (``hard``, ``free``, ``slack=A``)."""
    if name == "hard":  # the defaults are resilient since 0.2: name the hard constraints
        return {"slack_cost": None}
    if name == "free":
        return {"dual_lr": 0.0}
    if name == "plain":
        return {}
    if name.startswith("slack="):
        return {"slack_cost": float(name.split("=", 1)[1])}
    raise ValueError(f"unknown arm {name!r}: hard, free, plain or slack=<cost>")


def audit_auroc(net, is_corrupted) -> float:
    """AUROC of the audit's default ranking for the corrupted rows (nan without both)."""
    from sklearn.metrics import roc_auc_score

    from modal_ally import rank_label_issues

    if is_corrupted.all() or not is_corrupted.any() or not np.any(net.lambdas_mean_ > 0):
        return float("nan")
    order, scores = rank_label_issues(net)
    values = np.empty(len(order))
    values[order] = scores
    return float(roc_auc_score(is_corrupted, values))


def one_fit(data, name, X, y_noisy, is_corrupted, seed, args) -> dict:
    net = build_estimator("margin" if name == "plain" else "ally", data, epochs=args.epochs,
                          seed=seed, **arm_params(name))
    start = time.perf_counter()
    net.fit(X, y_noisy)
    return {"metric": evaluate(net, data.X_test, data.y_test, data.task),
            "auroc": audit_auroc(net, is_corrupted) if name not in ("free", "plain")
            else float("nan"),
            "seconds": time.perf_counter() - start}


def noisy_set(data, size, rate, kind, seed):
    """``(rows, y_noisy, is_corrupted)`` of one seed, size and rate."""
    rng = np.random.default_rng([int(seed), int(size), int(round(rate * 1000)), 0x5EED])
    rows = np.sort(rng.choice(len(data.y_pool), size=size, replace=False))
    X, y = data.X_pool[rows], np.asarray(data.y_pool)[rows]
    if rate == 0:
        return rows, y, np.zeros(size, dtype=bool)
    y_noisy, is_corrupted = corrupt(X, y, rate, kind, rng, n_classes=data.n_classes)
    return rows, y_noisy, is_corrupted


def summarize(fits, arms, path, *, higher=True):
    """Mean over sizes per (rate, seed, arm); paired differences against ``free`` and
    ``hard`` (seeds better: higher, or lower where ``higher`` is False: an error)."""
    lines = ["| kind | rate | arm | metric (mean over sizes) | vs free (seeds better) "
             "| vs hard | audit AUROC |", "|---|---|---|---|---|---|---|"]
    keys = sorted({(f["kind"], f["rate"]) for f in fits})
    for kind, rate in keys:
        per = {}
        for f in fits:
            if (f["kind"], f["rate"]) == (kind, rate):
                per.setdefault(f["arm"], {}).setdefault((f["seed"], f["size"]), f)
        # only the (seed, size) fits every arm has made: a run in progress is paired too
        pairs = set.intersection(*(set(per[a]) for a in arms if a in per))
        seeds = sorted({seed for seed, _ in pairs})
        if not seeds:
            continue

        def mean_of(arm, key, per=per, pairs=pairs, seeds=seeds):
            return np.array([np.nanmean([per[arm][p][key] for p in sorted(pairs)
                                         if p[0] == s]) for s in seeds])

        for arm in arms:
            if arm not in per:
                continue
            m = mean_of(arm, "metric")
            cells = []
            for ref in ("free", "hard"):
                if ref in per and ref != arm:
                    d = m - mean_of(ref, "metric")
                    better = (d > 0) if higher else (d < 0)
                    cells.append(f"{d.mean():+.4f} ± {d.std():.4f} ({better.sum()}/{len(d)})")
                else:
                    cells.append("")
            auroc = np.nanmean([per[arm][p]["auroc"] for p in pairs]) \
                if arm not in ("free", "plain") and rate > 0 else float("nan")
            lines.append(f"| {kind} | {rate:g} | {arm} | {m.mean():.4f} ± {m.std():.4f} | "
                         f"{cells[0]} | {cells[1]} | {auroc:.4f} |")
    Path(path).write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser("python -m benchmarks.noisy_training",
                                     description=__doc__.splitlines()[0])
    cli.add_loop_arguments(parser, seeds=5, epochs=50)
    parser.add_argument("--sizes", default="300,600,1000", help="labeled-set sizes")
    parser.add_argument("--rates", default="0,0.1,0.2,0.3")
    parser.add_argument("--kind", default="symmetric", choices=("symmetric", "pairs"))
    parser.add_argument("--arms", default="hard,free,slack=0.3,slack=1,slack=3")
    args = parser.parse_args(argv)
    cli.check_loop_arguments(parser, args)
    arms = [a for a in args.arms.split(",") if a]
    for arm in arms:
        arm_params(arm)
    data = cli.load_benchmark_data(args)
    out = cli.out_dir(args, "noisy_training", args.dataset)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "fits.jsonl"
    fits = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    settings = {"dataset": args.dataset, "max_pool": args.max_pool, "epochs": args.epochs,
                "threads": args.threads}
    done = {(f["kind"], f["rate"], f["seed"], f["size"], f["arm"]) for f in fits
            if f["settings"] == settings}
    sizes = [int(s) for s in args.sizes.split(",")]
    kind = "replaced" if data.task == "regression" else args.kind
    with cli.torch_threads(args.threads):
        for rate in (float(r) for r in args.rates.split(",")):
            for seed in range(args.seeds):
                for size in sizes:
                    rows, y_noisy, bad = noisy_set(data, size, rate, args.kind, seed)
                    for arm in arms:
                        if (kind, rate, seed, size, arm) in done:
                            continue
                        fit = one_fit(data, arm, data.X_pool[rows], y_noisy, bad, seed, args)
                        fit.update(kind=kind, rate=rate, seed=seed, size=size, arm=arm,
                                   settings=settings)
                        fits.append(fit)
                        with open(path, "a") as stream:
                            stream.write(json.dumps(fit) + "\n")
                        print(f"{kind} rate={rate} seed={seed} n={size} {arm}: "
                              f"{fit['metric']:.4f} auroc={fit['auroc']:.3f}", flush=True)
    fits = [f for f in fits if f["settings"] == settings]
    print(summarize(fits, arms, out / "summary.md", higher=data.task == "classification"))


if __name__ == "__main__":
    main()
