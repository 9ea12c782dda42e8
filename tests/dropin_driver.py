"""Run an existing modAL project's loop with modal_ally swapped in; print a JSON report.

Run by tests/test_dropin.py in a subprocess, once per modAL release (the release is
chosen by PYTHONPATH, as in tests/modal_driver.py). Each scenario is what a user of
modAL hits when only the estimator and the query strategy change: their own torch
module, their own skorch net, pandas and lists, a scikit-learn Pipeline, a per-row
epsilon with ``teach``, and (0.4.2.x) ``DeepActiveLearner``. Every scenario records
either its result or the error it raised, so that one failure does not hide the others.
"""

import json
import sys
import traceback
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

import modal_ally
from modal_ally import PDCLNet

torch.set_num_threads(1)

STRATEGIES = {
    "ally": modal_ally.ally_query_strategy,
    "ally-redundancy": modal_ally.ally_redundancy_aware_query_strategy,
    "badge": modal_ally.badge_query_strategy,
    "coreset": modal_ally.coreset_query_strategy,
    "random": modal_ally.random_query_strategy,
}


class ModalStyleNet(nn.Module):
    """Shaped like modAL's PyTorch example model: two ``nn.Sequential`` blocks, a
    ``view`` in ``forward``, no backbone/head. The defaults are that example's sizes
    (MNIST, 1x28x28); the driver uses a small one for 1x8x8 digits."""

    def __init__(self, side=28, channels=(32, 64), hidden=128):
        super().__init__()
        self.flat = ((side - 4) // 2) ** 2 * channels[1]
        self.convs = nn.Sequential(nn.Conv2d(1, channels[0], 3), nn.ReLU(),
                                   nn.Conv2d(channels[0], channels[1], 3), nn.ReLU(),
                                   nn.MaxPool2d(2), nn.Dropout(0.25))
        self.fcs = nn.Sequential(nn.Linear(self.flat, hidden), nn.ReLU(), nn.Dropout(0.5),
                                 nn.Linear(hidden, 10))

    def forward(self, x):
        out = self.convs(x)
        out = out.view(-1, self.flat)
        return self.fcs(out)


def data():
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    return X[:60], y[:60], X[60:260], y[60:260], X[1500:], y[1500:]


def skorch_args():
    return dict(criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
                train_split=None, verbose=0, max_epochs=2, module__side=8,
                module__channels=(8, 16), module__hidden=32)


def indices_of(result):
    return np.asarray(result[0]).ravel().tolist()


def own_module(ActiveLearner):
    X0, y0, X_pool, y_pool, _, _ = data()
    img = X_pool.reshape(-1, 1, 8, 8)
    learner = ActiveLearner(estimator=PDCLNet(ModalStyleNet, random_state=0, **skorch_args()),
                            query_strategy=modal_ally.ally_query_strategy,
                            X_training=X0.reshape(-1, 1, 8, 8), y_training=y0)
    idx = indices_of(learner.query(img, n_instances=3))
    learner.teach(img[idx], y_pool[idx])
    return {"indices": idx, "n_labeled": int(len(learner.y_training)),
            "lambdas": int(learner.estimator.lambdas_.shape[0])}


def deep_own_module(DeepActiveLearner):
    X0, y0, X_pool, y_pool, _, _ = data()
    img = X_pool.reshape(-1, 1, 8, 8)
    learner = DeepActiveLearner(
        estimator=PDCLNet(ModalStyleNet, random_state=0, **skorch_args()),
        query_strategy=modal_ally.ally_query_strategy)
    learner.teach(X0.reshape(-1, 1, 8, 8), y0, warm_start=False)
    idx = indices_of(learner.query(img, n_instances=3))
    return {"indices": idx, "lambdas": int(learner.estimator.lambdas_.shape[0])}


def own_skorch_net(ActiveLearner):
    from skorch import NeuralNetClassifier

    X0, y0, X_pool, _, _, _ = data()
    learner = ActiveLearner(estimator=NeuralNetClassifier(ModalStyleNet, **skorch_args()),
                            query_strategy=modal_ally.ally_query_strategy,
                            X_training=X0.reshape(-1, 1, 8, 8), y_training=y0)
    learner.query(X_pool.reshape(-1, 1, 8, 8), n_instances=3)
    return {}


def pandas_and_lists(ActiveLearner):
    import pandas as pd
    from modAL.uncertainty import uncertainty_sampling

    X0, y0, X_pool, y_pool, X_test, y_test = data()
    columns = [f"pixel{i}" for i in range(X0.shape[1])]
    pool = pd.DataFrame(X_pool, columns=columns)
    out = {}
    for name, strategy in (("ally", modal_ally.ally_query_strategy),
                           ("uncertainty", uncertainty_sampling)):
        learner = ActiveLearner(estimator=PDCLNet(max_epochs=2, random_state=0),
                                query_strategy=strategy, X_training=X0, y_training=y0)
        idx = indices_of(learner.query(pool, n_instances=3))
        learner.teach(pool.iloc[idx], y_pool[idx])
        out[name] = idx
    out["score_list"] = float(learner.score(X_test.tolist(), y_test.tolist()))
    out["score_frame"] = float(learner.score(pd.DataFrame(X_test, columns=columns), y_test))
    idx = indices_of(learner.query(X_pool.tolist(), n_instances=3))
    learner.teach(X_pool[idx].tolist(), y_pool[idx].tolist())
    out["list"] = idx
    out["n_labeled"] = int(len(learner.y_training))
    return out


def pipeline(ActiveLearner, name):
    X0, y0, X_pool, y_pool, X_test, y_test = data()
    X0, X_pool = X0 * 16 + 3, X_pool * 16 + 3  # raw pixel values: the scaler matters
    estimator = make_pipeline(StandardScaler(), PDCLNet(max_epochs=2, random_state=0))
    learner = ActiveLearner(estimator=estimator, query_strategy=STRATEGIES[name],
                            X_training=X0, y_training=y0)
    idx = indices_of(learner.query(X_pool, n_instances=3, random_state=0))
    # the same query on the net alone, on the pool as the pipeline's scaler sees it
    net = learner.estimator[-1]
    direct = STRATEGIES[name](net, learner.estimator[:-1].transform(X_pool), n_instances=3,
                              random_state=0)
    direct = np.asarray(direct[0] if isinstance(direct, tuple) else direct).ravel().tolist()
    learner.teach(X_pool[idx], y_pool[idx])
    return {"indices": idx, "direct": direct, "n_labeled": int(len(learner.y_training))}


def epsilon_teach(ActiveLearner):
    X0, y0, X_pool, y_pool, _, _ = data()

    def per_row(X, y):  # a tighter constraint on the zeros
        return np.where(np.asarray(y) == 0, 0.1, 0.3)

    learner = ActiveLearner(estimator=PDCLNet(epsilon=per_row, max_epochs=2, random_state=0),
                            query_strategy=modal_ally.ally_query_strategy,
                            X_training=X0, y_training=y0)
    idx = indices_of(learner.query(X_pool, n_instances=3))
    learner.teach(X_pool[idx], y_pool[idx])
    net = learner.estimator
    expected = np.where(np.r_[y0, y_pool[idx]] == 0, 0.1, 0.3)
    return {"epsilon_rows": int(net.epsilon_.shape[0]),
            "epsilon_matches": bool(np.allclose(net.epsilon_, expected))}


def epsilon_array_teach(ActiveLearner):
    X0, y0, X_pool, y_pool, _, _ = data()
    learner = ActiveLearner(
        estimator=PDCLNet(epsilon=np.full(len(X0), 0.2), max_epochs=2, random_state=0),
        query_strategy=modal_ally.ally_query_strategy, X_training=X0, y_training=y0)
    idx = indices_of(learner.query(X_pool, n_instances=3))
    learner.teach(X_pool[idx], y_pool[idx])
    return {}


def run(name, fn, *args):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fn(*args)
        return {"ok": True, **result}
    except Exception as exc:  # the report says what a user would see
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-2000:]}


def main():
    from modAL.models import ActiveLearner

    report = {"modal_file": __import__("modAL").__file__}
    report["own_module"] = run("own_module", own_module, ActiveLearner)
    report["own_skorch_net"] = run("own_skorch_net", own_skorch_net, ActiveLearner)
    report["pandas_and_lists"] = run("pandas", pandas_and_lists, ActiveLearner)
    for name in STRATEGIES:
        report[f"pipeline-{name}"] = run(name, pipeline, ActiveLearner, name)
    report["epsilon_teach"] = run("epsilon_teach", epsilon_teach, ActiveLearner)
    report["epsilon_array_teach"] = run("epsilon_array_teach", epsilon_array_teach,
                                        ActiveLearner)
    try:
        from modAL.models import DeepActiveLearner
    except ImportError:
        DeepActiveLearner = None
    if DeepActiveLearner is not None:
        report["deep_own_module"] = run("deep_own_module", deep_own_module,
                                        DeepActiveLearner)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
