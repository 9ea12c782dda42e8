"""Label audit: how well one PDCL fit finds planted label errors, against K-fold anchors.

For every task, noise kind, noise rate and seed, the benchmark plants label noise in a
labeled set (``benchmarks/harness/label_noise.py``, seeded) and ranks its rows by

- ``package``: :func:`modal_ally.rank_label_issues` on the one PDCL fit (1 fit; its
  default score ``"auto"``), and every candidate score of
  :data:`modal_ally.label_audit.SCORES` on the same fit;
- ``5-fold``: the anchor: self-confidence ``1 - p(given label)`` from 5-fold
  out-of-sample probabilities of the same net trained without constraints (5 fits;
  regression: the out-of-sample absolute residual);
- ``cleanlab``: cleanlab's own ``rank.get_label_quality_scores`` and
  ``filter.find_label_issues`` on those same out-of-sample probabilities (regression:
  ``cleanlab.regression.rank``), when cleanlab is importable (an optional bench
  dependency: put it on PYTHONPATH);
- ``aum``: the area under the margin (Pleiss et al., NeurIPS 2020): each row's margin
  (logit of the given label minus the largest other logit) at the end of every epoch,
  averaged, on a full fit of the unconstrained net (1 fit); ``loss``: that fit's final
  per-row training loss (the same fit).

Scores: AUROC of finding the corrupted rows, precision at k = the number of corrupted
rows, and for the flagged sets (:func:`modal_ally.find_label_issues`, cleanlab's
``find_label_issues``) precision and recall. Results go to ``rows.jsonl`` (one line per
configuration; a rerun skips those done) and ``summary.md`` / ``summary.csv``.

Example::

    python -m benchmarks.label_audit --tasks digits --seeds 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from skorch.callbacks import Callback

from benchmarks.harness.datasets import load_dataset
from benchmarks.harness.estimators import build_estimator
from benchmarks.harness.label_audit_report import REGRESSION, key_of, write_summary
from benchmarks.harness.label_noise import corrupt
from modal_ally._torch_utils import torch_threads

#: task -> (data set, labeled rows); the held-out task (``HELD_OUT``, with the regression
#: tasks in ``benchmarks.harness.label_audit_report``) was never used to choose anything.
TASKS = {"digits": ("digits", 1000), "mnist": ("mnist", 2000),
         "manyclass": ("manyclass", 2000), "parkinsons": ("parkinsons", 2000),
         "breast_cancer": ("breast_cancer", None), "diabetes": ("diabetes", None)}
RATES = (0.0, 0.1, 0.2, 0.4)  # 0: a clean set, for the flagged counts only
N_FOLDS = 5


class MarginRecorder(Callback):
    """Area under the margin: the mean over epochs of each training row's margin
    (given-label logit minus the largest other logit), from an eval-mode pass over the
    training rows at the end of every epoch (``aum_`` after training)."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.X_, self.y_ = X, np.asarray(y, dtype=np.int64)
        self.sum_, self.epochs_ = np.zeros(len(self.y_)), 0

    def on_epoch_end(self, net, **kwargs):
        logits = np.asarray(net.forward(self.X_).detach().cpu().numpy(), dtype=np.float64)
        rows = np.arange(len(self.y_))
        given = logits[rows, self.y_]
        logits[rows, self.y_] = -np.inf
        self.sum_ += given - logits.max(axis=1)
        self.epochs_ += 1

    @property
    def aum_(self):
        return self.sum_ / max(self.epochs_, 1)


def auroc(scores, is_corrupted) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(is_corrupted, scores))


def precision_at_k(scores, is_corrupted) -> float:
    k = int(is_corrupted.sum())
    top = np.lexsort((np.arange(len(scores)), -np.asarray(scores)))[:k]
    return float(is_corrupted[top].mean()) if k else float("nan")


def flagged_metrics(mask, is_corrupted) -> dict:
    mask = np.asarray(mask, dtype=bool)
    hits = int((mask & is_corrupted).sum())
    return {"flagged": int(mask.sum()),
            "precision": hits / mask.sum() if mask.any() else float("nan"),
            "recall": hits / is_corrupted.sum() if is_corrupted.any() else float("nan")}


def _plain_scores(net, X, y, classification):
    """Per-row suspicion of a plain net: ``1 - p(y)`` (classification) or ``|y - y_hat|``."""
    if classification:
        proba = net.predict_proba(X)
        return proba, 1.0 - proba[np.arange(len(y)), y]
    pred = np.asarray(net.predict(X), dtype=np.float64).ravel()
    return pred, np.abs(np.asarray(y, dtype=np.float64) - pred)


def out_of_sample(data, X, y, *, epochs, seed):
    """5-fold out-of-sample probabilities (or predictions) of the unconstrained net."""
    from sklearn.model_selection import KFold, StratifiedKFold

    classification = data.task == "classification"
    folds = (StratifiedKFold if classification else KFold)(N_FOLDS, shuffle=True,
                                                           random_state=seed)
    out = np.zeros((len(y), data.n_classes) if classification else len(y))
    for train, test in folds.split(X, y if classification else None):
        net = build_estimator("random", data, epochs=epochs, seed=seed).fit(X[train], y[train])
        out[test] = _plain_scores(net, X[test], y[test], classification)[0]
    return out


def _cleanlab_rows(data, y, oos, is_corrupted):
    try:
        import cleanlab.filter
        import cleanlab.rank
        import cleanlab.regression.rank
    except ImportError:
        return {}
    if data.task == "classification":
        quality = cleanlab.rank.get_label_quality_scores(y, oos)
        mask = cleanlab.filter.find_label_issues(y, oos)
        return {"auroc:cleanlab": auroc(-quality, is_corrupted),
                "p@k:cleanlab": precision_at_k(-quality, is_corrupted),
                **{f"{k}:cleanlab": v for k, v in flagged_metrics(mask, is_corrupted).items()}}
    quality = cleanlab.regression.rank.get_label_quality_scores(y, oos)
    return {"auroc:cleanlab": auroc(-quality, is_corrupted),
            "p@k:cleanlab": precision_at_k(-quality, is_corrupted)}


def _score_row(row, name, scores, is_corrupted, fits, seconds):
    row[f"auroc:{name}"] = auroc(scores, is_corrupted)
    row[f"p@k:{name}"] = precision_at_k(scores, is_corrupted)
    row[f"fits:{name}"] = fits
    row[f"seconds:{name}"] = seconds


def run_config(task, kind, rate, seed, *, epochs, data_dir, anchors=True) -> dict:
    """One configuration: plant the noise, fit, rank with every method; one result row."""
    from modal_ally import find_label_issues
    from modal_ally.label_audit import SCORES, audit_of, label_issue_scores

    name, n_rows = TASKS[task]
    data = load_dataset(name, data_dir=data_dir, max_pool=n_rows, random_state=seed)
    X, y_clean = data.X_pool, data.y_pool
    classification = data.task == "classification"
    rng = np.random.default_rng([seed, int(round(rate * 1000)), ("symmetric", "pairs",
                                                                 "replaced").index(kind)])
    y, is_corrupted = corrupt(X, y_clean, rate, kind, rng, n_classes=data.n_classes)
    row = {"task": task, "kind": kind, "rate": rate, "seed": seed, "n_rows": len(y),
           "n_corrupted": int(is_corrupted.sum()), "epochs": epochs}
    start = time.perf_counter()
    net = build_estimator("ally", data, epochs=epochs, seed=seed).fit(X, y)
    seconds = time.perf_counter() - start
    for key, value in flagged_metrics(find_label_issues(net, y=y), is_corrupted).items():
        row[f"{key}:package"] = value
    if not is_corrupted.any():  # a clean set: only how many rows are flagged
        return row
    audit = audit_of(net, what="benchmark", X=X, y=y)  # the rows, as a learner gives them
    for score in ("auto", *SCORES):
        _score_row(row, f"pdcl:{score}", label_issue_scores(audit, score), is_corrupted, 1,
                   seconds)
    if not anchors:
        return row
    recorder = MarginRecorder() if classification else None
    start = time.perf_counter()
    plain = build_estimator("random", data, epochs=epochs, seed=seed,
                            callbacks=[recorder] if recorder else [])
    plain.fit(X, y)
    seconds = time.perf_counter() - start
    _score_row(row, "loss", _plain_scores(plain, X, y, classification)[1], is_corrupted, 1,
               seconds)
    if recorder is not None:
        _score_row(row, "aum", -recorder.aum_, is_corrupted, 1, seconds)
    start = time.perf_counter()
    oos = out_of_sample(data, X, y, epochs=epochs, seed=seed)
    seconds = time.perf_counter() - start
    anchor = 1.0 - oos[np.arange(len(y)), y] if classification else np.abs(y - oos)
    _score_row(row, "5-fold", anchor, is_corrupted, N_FOLDS, seconds)
    row.update(_cleanlab_rows(data, y, oos, is_corrupted))
    return row


def configs(tasks, kinds, rates, seeds):
    from benchmarks.harness.datasets import load_dataset as _  # noqa: F401  (fail early on import)

    for task in tasks:
        regression = task in REGRESSION
        for kind in (("replaced",) if regression else kinds):
            for rate in rates:
                if rate == 0 and kind != (("replaced",) if regression else kinds)[0]:
                    continue  # a clean set is the same whatever the noise kind
                for seed in seeds:
                    yield task, kind, rate, seed


def read_rows(path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.label_audit",
                                     description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--tasks", default=",".join(TASKS), help="comma-separated: " + ", ".join(TASKS))
    add("--kinds", default="symmetric,pairs", help="classification noise kinds")
    add("--rates", default=",".join(str(r) for r in RATES))
    add("--seeds", type=int, default=5)
    add("--epochs", type=int, default=50)
    add("--data-dir", default=os.path.join("..", "shared", "data"))
    add("--out", default=os.path.join("docs", "results", "label_audit"))
    add("--threads", type=int, default=1)
    add("--report-only", action="store_true", help="only rewrite the summary")
    add("--anchors-from", default=None,
        help="a rows.jsonl of an earlier run: fit only the package's net and take the "
             "anchors (5-fold, cleanlab, AUM, final loss: nets without constraints, which "
             "a change of the package does not touch) from that run's same configuration")
    return parser


def anchor_columns(row) -> dict:
    """The columns of a result row that come from the unconstrained nets."""
    return {k: v for k, v in row.items() if ":pdcl:" not in k
            and any(k.endswith(f":{m}") for m in ("5-fold", "aum", "loss", "cleanlab"))}


def main(argv=None):
    args = build_parser().parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise SystemExit(f"unknown tasks {unknown}; choose from {', '.join(TASKS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.jsonl"
    done = {key_of(row) for row in read_rows(rows_path)}
    anchors = {key_of(row): anchor_columns(row) for row in read_rows(args.anchors_from)} \
        if args.anchors_from else None
    start = time.perf_counter()
    if not args.report_only:
        with torch_threads(args.threads):
            for task, kind, rate, seed in configs(tasks, args.kinds.split(","),
                                                  [float(r) for r in args.rates.split(",")],
                                                  range(args.seeds)):
                if (task, kind, rate, seed, args.epochs) in done:
                    continue
                row = run_config(task, kind, rate, seed, epochs=args.epochs,
                                 data_dir=args.data_dir, anchors=anchors is None)
                if anchors is not None and rate > 0:
                    row.update(anchors[(task, kind, rate, seed, args.epochs)])
                row["threads"] = args.threads
                with open(rows_path, "a") as stream:
                    stream.write(json.dumps(row) + "\n")
                print(f"{task} {kind} {rate} seed={seed}: package "
                      f"{row.get('auroc:pdcl:auto', float('nan')):.3f} 5-fold "
                      f"{row.get('auroc:5-fold', float('nan')):.3f} flagged "
                      f"{row['flagged:package']}", flush=True)
    write_summary(read_rows(rows_path), out,
                  earlier=read_rows(args.anchors_from) if args.anchors_from else None)
    print(f"wall {time.perf_counter() - start:.0f} s, torch threads {args.threads}")


if __name__ == "__main__":
    main()
