"""Drive modAL's ActiveLearner with every strategy on a Dask pool; print a JSON report.

Run by tests/test_dask.py in a subprocess, once per modAL release (chosen by
PYTHONPATH, as tests/modal_driver.py).
"""

import json
import warnings
from functools import partial

import dask.array as da
import modAL
import numpy as np
from modAL.models import ActiveLearner
from sklearn.datasets import load_digits

import modal_ally
from modal_ally._compat import modal_returns_scores

STRATEGIES = {"ally": partial(modal_ally.ally_query_strategy, method="paper"),
              "ally-default": modal_ally.ally_query_strategy,
              "ally-redundancy": modal_ally.ally_redundancy_aware_query_strategy,
              "badge": modal_ally.badge_query_strategy,
              "coreset": modal_ally.coreset_query_strategy,
              "random": modal_ally.random_query_strategy}


def main():
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    X0, y0, X_pool, y_pool = X[:80], y[:80], X[80:400], y[80:400]
    pool = da.from_array(X_pool, chunks=64)
    report = {"modal_file": modAL.__file__, "returns_scores": modal_returns_scores(),
              "runs": []}
    for name, strategy in STRATEGIES.items():
        learner = ActiveLearner(estimator=modal_ally.PDCLNet(max_epochs=3, random_state=0),
                                query_strategy=strategy, X_training=X0, y_training=y0)
        for n_instances in (1, 2, 3):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                query_idx, query_X = learner.query(pool, n_instances=n_instances)
            query_idx = np.asarray(query_idx).ravel()
            rows = np.asarray(query_X)
            report["runs"].append({
                "strategy": name, "n_instances": n_instances, "indices": query_idx.tolist(),
                "rows_match": bool(np.array_equal(rows, X_pool[query_idx]))})
        learner.teach(query_X, y_pool[query_idx])
        report["runs"][-1]["n_labeled_after_teach"] = int(len(learner.y_training))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
