"""Assertions, strategies and the modAL driver runner shared by the test modules."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from modal_ally import ally_query_strategy, ally_redundancy_aware_query_strategy
from modal_ally.baselines import (
    badge_query_strategy,
    coreset_query_strategy,
    random_query_strategy,
)

ROOT = Path(__file__).resolve().parents[1]
MODAL_0421 = ROOT / ".venv" / "modal-0.4.2.1"
#: The oldest scikit-learn we support (pyproject's floor); `make test` installs it into
#: .venv/sklearn-<floor> beside the newest one in .venv itself.
SKLEARN_OLDEST = re.search(r'"scikit-learn>=([0-9.]+)', (ROOT / "pyproject.toml").read_text())[1]
SKLEARN_OLD = ROOT / ".venv" / f"sklearn-{SKLEARN_OLDEST}"

STRATEGIES = {
    "ally": ally_query_strategy,
    "ally-redundancy": ally_redundancy_aware_query_strategy,
    "badge": badge_query_strategy,
    "coreset": coreset_query_strategy,
    "random": random_query_strategy,
}


def run_driver(script, *extra_paths):
    """Run ``tests/<script>`` in a subprocess (with the folders ``extra_paths``, e.g. a
    modAL or scikit-learn release, ahead of site-packages) and return the JSON report
    it prints."""
    env = dict(os.environ)
    paths = [str(path) for path in extra_paths if path] + [str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([] if len(paths) > 1 else
                                                 [env.get("PYTHONPATH", "")]))
    env["PYTHONWARNINGS"] = "ignore::FutureWarning"
    done = subprocess.run([sys.executable, str(ROOT / "tests" / script)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def snapshot(net):
    """Everything a failed call must leave unchanged on a fitted net."""
    state = {k: v.detach().clone() for k, v in net.module_.state_dict().items()}
    head = {k: v.detach().clone() for k, v in net.dual_head_.state_dict().items()}
    return state, head, net.lambdas_.copy(), len(net.history)


def assert_unchanged(net, before):
    state, head, lambdas, n_epochs = before
    for key, value in net.module_.state_dict().items():
        assert torch.equal(value, state[key]), key
    for key, value in net.dual_head_.state_dict().items():
        assert torch.equal(value, head[key]), key
    np.testing.assert_array_equal(net.lambdas_, lambdas)
    assert len(net.history) == n_epochs


def mislabeled_setup(digits):
    """A PDCLNet fitted with 15 flipped labels, and a pool of 300 rows plus near-copies
    of the mislabeled rows (the largest lambdas); returns ``net, X_pool, is_outlier``."""
    from modal_ally import PDCLNet

    X, y = digits["X_train"], digits["y_train"].copy()
    rng = np.random.RandomState(1)
    flipped = rng.choice(len(y), 15, replace=False)
    y[flipped] = (y[flipped] + 5) % 10
    net = PDCLNet(max_epochs=30, random_state=0).fit(X, y)
    outliers = X[flipped] + rng.normal(0, 0.01, X[flipped].shape).astype(np.float32)
    X_pool = np.concatenate([digits["X_pool"][:300], outliers])
    return net, X_pool, np.arange(len(X_pool)) >= 300


def assert_no_import_cycle(graph):
    """Depth-first over ``{module: imported modules}``; fails naming the first cycle."""
    state = {}

    def visit(name, path):
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", f"import cycle: {' -> '.join(path + [name])}"
        state[name] = "open"
        for target in sorted(graph.get(name, ())):
            visit(target, path + [name])
        state[name] = "done"

    for name in graph:
        visit(name, [])
