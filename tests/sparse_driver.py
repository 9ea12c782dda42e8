"""A TF-IDF (and a hashing) Pipeline in modAL's ActiveLearner; print a JSON report.

Run by tests/test_sparse.py in-process (modAL 0.4.1, the venv's) and in a subprocess
with modAL 0.4.2.1 ahead of site-packages (chosen by PYTHONPATH, as in
tests/modal_driver.py). Every strategy queries the raw texts through the pipeline's
vectorizer (a scipy.sparse pool), the learner is taught the answers, and the label audit
(rank_label_issues, find_label_issues, relabel) runs on the labeled texts.
"""

import json
import os
import sys
import warnings

import numpy as np
import torch

TOPICS = ("ball goal match team score league coach season player win",
          "vote party election senate law court minister policy debate bill",
          "gene cell protein virus lab study enzyme sample dna trial")
COMMON = "the a of and to in is it that was for on with as at by".split()


def corpus(n_docs=240, seed=0):
    """Short documents of three topics: 12 words each, drawn from the topic's words and
    common words (a small labeled text set made here; no download)."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, len(TOPICS), n_docs)
    texts = np.array([" ".join(rng.choice(TOPICS[c].split() + COMMON, size=12)) for c in y],
                     dtype=object)
    return texts, y


#: Rows of the initial labeled set given a wrong label.
FLIPPED = [3, 11, 22, 35]


def _indices(result):
    return np.asarray(result[0] if isinstance(result, tuple) else result).ravel()


def text_loop(n_instances=3, *, strategies=None, vectorizers=("tfidf", "hashing")):
    """Each vectorizer and strategy (None: every strategy): query, teach, then (with
    ALLY's default rule) the label audit."""
    from modAL.models import ActiveLearner
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    from modal_ally import (
        PDCLNet,
        ally_query_strategy,
        find_label_issues,
        rank_label_issues,
        relabel,
    )
    from tests.helpers import STRATEGIES

    texts, y = corpus()
    y_given = y.copy()
    y_given[FLIPPED] = (y[FLIPPED] + 1) % len(TOPICS)  # wrong labels for the audit to find
    every = dict(STRATEGIES, paper=lambda learner, X, n_instances=1, **kw:
                 ally_query_strategy(learner, X, n_instances, method="paper", **kw))
    runs = []
    for vectorizer in vectorizers:
        for name in every if strategies is None else strategies:
            strategy = every[name]
            vec = TfidfVectorizer() if vectorizer == "tfidf" else \
                HashingVectorizer(n_features=2**12, alternate_sign=False)
            learner = ActiveLearner(
                estimator=make_pipeline(vec, PDCLNet(max_epochs=40, random_state=0)),
                query_strategy=strategy, X_training=texts[:40], y_training=y_given[:40])
            X_pool, y_pool = texts[40:200], y[40:200]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = learner.query(X_pool, n_instances=n_instances)
            idx = _indices(result)
            learner.teach(X_pool[idx], y_pool[idx])
            run = {"vectorizer": vectorizer, "strategy": name, "indices": idx.tolist(),
                   "n_labeled": len(learner.X_training),
                   "warnings": sorted({type(w.message).__name__ for w in caught}),
                   "accuracy": float(learner.score(texts[200:], y[200:]))}
            if name == "ally":  # the label audit, once per vectorizer
                order, scores = rank_label_issues(learner)
                run["audit_order"] = np.asarray(order).tolist()
                run["audit_finite"] = bool(np.isfinite(scores).all())
                run["issues"] = int(np.asarray(find_label_issues(learner)).sum())
                truth = np.r_[y[:40], y_pool[idx]]
                done = relabel(learner, lambda rows, at, truth=truth: truth[at],
                               n_instances=len(FLIPPED))
                run["labels_right_after_relabel"] = int(
                    (np.asarray(learner.y_training) == truth).sum())
                run["relabeled"] = np.asarray(done.indices).tolist()
                run["relabel_changed"] = int(np.asarray(done.changed).sum())
                run["n_labeled_after_relabel"] = len(learner.X_training)
            runs.append(run)
    return runs


def main():
    import modAL

    from modal_ally._compat import modal_returns_scores

    torch.set_num_threads(1)
    quick = os.environ.get("SPARSE_DRIVER_QUICK") == "1"  # ALLY's rule only
    report = {"modal_version": getattr(modAL, "__version__", None),
              "modal_file": modAL.__file__, "returns_scores": modal_returns_scores(),
              "runs": text_loop(strategies=("ally",) if quick else None)}
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
