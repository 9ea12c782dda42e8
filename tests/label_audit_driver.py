"""Audit and relabel through modAL's learners; print a JSON report.

Run by tests/test_label_audit.py in a subprocess, once per modAL release (chosen by
PYTHONPATH, as in tests/modal_driver.py).
"""

import json
import sys
import warnings

import modAL
import numpy as np
import torch
from sklearn.datasets import load_digits

from modal_ally import PDCLNet, ally_query_strategy, rank_label_issues, relabel

torch.set_num_threads(1)


def noisy_digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)[:300]
    y_true = y[:300]
    rng = np.random.RandomState(0)
    flipped = rng.choice(300, 30, replace=False)
    y_noisy = y_true.copy()
    y_noisy[flipped] = (y_noisy[flipped] + 3) % 10
    return X, y_true, y_noisy, flipped


def active_learner(ActiveLearner):
    X, y_true, y_noisy, flipped = noisy_digits()
    learner = ActiveLearner(estimator=PDCLNet(max_epochs=30, random_state=0),
                            query_strategy=ally_query_strategy, X_training=X,
                            y_training=y_noisy)
    indices, _ = rank_label_issues(learner, top=30)
    before = learner.y_training

    def oracle(rows, positions):
        assert np.array_equal(rows, X[positions])
        return y_true[positions]

    done = relabel(learner, oracle, n_instances=30)
    return {"hits": int(np.isin(indices, flipped).sum()),
            "relabeled": int(done.changed.sum()),
            "previous_kept": bool(np.array_equal(done.previous, y_noisy[done.indices])),
            "old_array_untouched": bool(np.array_equal(before, y_noisy)),
            "y_training_updated": bool(np.array_equal(learner.y_training, done.y)),
            "n_lambdas": int(learner.estimator.lambdas_.shape[0])}


def deep_learner(DeepActiveLearner):
    X, y_true, y_noisy, flipped = noisy_digits()
    learner = DeepActiveLearner(estimator=PDCLNet(max_epochs=30, random_state=0),
                                query_strategy=ally_query_strategy)
    learner.teach(X, y_noisy, warm_start=False)
    indices, _ = rank_label_issues(learner, top=30)
    done = relabel(learner, lambda rows, positions: y_true[positions], n_instances=30,
                   X=X, y=y_noisy)
    return {"hits": int(np.isin(indices, flipped).sum()),
            "relabeled": int(done.changed.sum()),
            "n_lambdas": int(learner.estimator.lambdas_.shape[0])}


def main():
    from modAL.models import ActiveLearner

    report = {"modal_file": modAL.__file__}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report["active"] = active_learner(ActiveLearner)
        try:
            from modAL.models import DeepActiveLearner
        except ImportError:
            DeepActiveLearner = None
        if DeepActiveLearner is not None:
            report["deep"] = deep_learner(DeepActiveLearner)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
