"""modAL on the installed scikit-learn and pandas, and failed teaches; print a JSON report.

Run by tests/test_sklearn_compat.py in a subprocess, once per (modAL release,
scikit-learn release): the releases are chosen by PYTHONPATH, as in tests/modal_driver.py.
Each adversarial ``teach`` records the error it raised and whether the learner (its
labeled set and its estimator) is exactly as before the call.
"""

import hashlib
import json
import sys
import traceback
import warnings

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modal_ally
from modal_ally import PDCLNet, ally_query_strategy
from modal_ally._compat import modal_returns_scores

torch.set_num_threads(1)


def data():
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    return X[:60], y[:60], X[60:260], y[60:260]


def digest(*arrays):
    h = hashlib.sha1()
    for array in arrays:
        h.update(type(array).__name__.encode())
        if isinstance(array, pd.DataFrame):
            h.update(repr(list(array.columns)).encode())
        array = np.asarray(array)
        h.update(repr((array.dtype.str, array.shape)).encode())
        h.update(repr(array.tolist()).encode() if array.dtype == object else array.tobytes())
    return h.hexdigest()


def fingerprint(learner):
    """Everything a failed teach must leave as it was: the labeled set (values and the
    objects themselves) and the estimator (weights, dual head, multipliers, history,
    a Pipeline's preprocessing)."""
    estimator = learner.estimator
    net = estimator[-1] if hasattr(estimator, "steps") else estimator
    out = {"attributes": sorted(vars(learner))}
    if hasattr(learner, "X_training"):
        out["X_training"] = [id(learner.X_training), digest(learner.X_training),
                             id(learner.y_training), digest(learner.y_training)]
    if getattr(net, "initialized_", False):
        states = [v.detach().cpu().numpy() for v in net.module_.state_dict().values()]
        if getattr(net, "dual_head_", None) is not None:
            states += [v.detach().cpu().numpy() for v in net.dual_head_.state_dict().values()]
        out["net"] = [digest(*states), digest(net.lambdas_), len(net.history),
                      digest(net.epsilon_) if hasattr(net, "epsilon_") else None]
    if hasattr(estimator, "steps"):
        scaler = estimator.steps[0][1]
        out["scaler"] = [digest(scaler.mean_, scaler.scale_), int(scaler.n_samples_seen_),
                         [id(step) for _, step in estimator.steps]]
    return out


def indices_of(result):
    return np.asarray(result[0] if isinstance(result, tuple) else result).ravel()


def loop():
    """The README's loop, small: two rounds of query and teach, warnings recorded."""
    from modAL.models import ActiveLearner

    X0, y0, X_pool, y_pool = data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learner = ActiveLearner(estimator=PDCLNet(max_epochs=3, random_state=0),
                                query_strategy=ally_query_strategy,
                                X_training=X0, y_training=y0)
        for round_ in range(2):
            query_idx, query_X = learner.query(X_pool, n_instances=10, random_state=round_)
            learner.teach(query_X, y_pool[query_idx])
            X_pool, y_pool = np.delete(X_pool, query_idx, axis=0), np.delete(y_pool, query_idx)
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    return {"n_labeled": int(len(learner.y_training)),
            "lambdas": int(learner.estimator.lambdas_.shape[0]),
            "finite_warnings": [m for m in messages if "all_finite" in m]}


def frame_labeled_set():
    """A DataFrame labeled set grown by teach (modAL stacks it with DataFrame.append)."""
    from modAL.models import ActiveLearner

    X0, y0, X_pool, y_pool = data()
    columns = [f"p{i}" for i in range(X0.shape[1])]
    learner = ActiveLearner(estimator=PDCLNet(max_epochs=2, random_state=0),
                            query_strategy=ally_query_strategy,
                            X_training=pd.DataFrame(X0, columns=columns), y_training=y0)
    query_idx, query_rows = learner.query(pd.DataFrame(X_pool, columns=columns), n_instances=5)
    learner.teach(query_rows, y_pool[query_idx])
    frame = learner.X_training
    return {"type": type(frame).__name__, "shape": list(frame.shape),
            "columns_kept": list(frame.columns) == columns,
            "rows_match": bool(np.array_equal(frame.to_numpy()[60:], X_pool[query_idx]))}


def fresh_learner(**net_params):
    from modAL.models import ActiveLearner

    X0, y0, _, _ = data()
    estimator = net_params.pop("estimator", None) or PDCLNet(max_epochs=2, random_state=0,
                                                            **net_params)
    return ActiveLearner(estimator=estimator, query_strategy=ally_query_strategy,
                         X_training=X0, y_training=y0)


def adversarial_cases():
    """(name, learner factory, call) of teaches and fits that must raise."""
    X0, y0, X_pool, y_pool = data()
    X, y = X_pool[:5], y_pool[:5]
    nan_X = X.copy()
    nan_X[2, 7] = np.nan
    huge = np.full_like(X, 1e30)
    pipeline = lambda: fresh_learner(estimator=make_pipeline(  # noqa: E731
        StandardScaler(), PDCLNet(epsilon=np.full(60, 0.2), max_epochs=2, random_state=0)))
    return [
        ("wrong_label_shape", fresh_learner, lambda L: L.teach(X, y.reshape(-1, 1))),
        ("epsilon_wrong_length", lambda: fresh_learner(epsilon=np.full(60, 0.2)),
         lambda L: L.teach(X, y)),
        ("nan_in_X", fresh_learner, lambda L: L.teach(nan_X, y)),
        ("unknown_label", lambda: fresh_learner(classes=list(range(10))),
         lambda L: L.teach(X, np.r_[y[:4], 11])),
        ("label_of_another_type", fresh_learner,
         lambda L: L.teach(X, np.array([1, 2, "seven", 3, 4], dtype=object))),
        ("missing_label", fresh_learner,
         lambda L: L.teach(X, np.array([1, None, 3, 4, 5], dtype=object))),
        ("wrong_feature_count", fresh_learner, lambda L: L.teach(X[:, :60], y)),
        ("diverges_in_training", fresh_learner, lambda L: L.teach(huge, y)),
        ("unknown_fit_option", fresh_learner, lambda L: L.teach(X, y, no_such_option=1)),
        ("only_new_epsilon", lambda: fresh_learner(epsilon=np.full(60, 0.2)),
         lambda L: L.teach(X, y, only_new=True)),
        ("learner_fit_epsilon", lambda: fresh_learner(epsilon=np.full(60, 0.2)),
         lambda L: L.fit(np.r_[X0, X], np.r_[y0, y])),
        ("pipeline_epsilon", pipeline, lambda L: L.teach(X, y)),
    ]


def run_case(make, call):
    learner = make()
    before = fingerprint(learner)
    try:
        call(learner)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    else:
        return {"raised": False}
    X0, y0, X_pool, y_pool = data()
    after = fingerprint(learner)
    unchanged = after == before
    diff = [key for key in before if before[key] != after.get(key)]
    prefix = "pdclnet__" if hasattr(learner.estimator, "steps") else ""
    learner.estimator.set_params(**{f"{prefix}epsilon": 0.2})
    learner.teach(X_pool[10:13], y_pool[10:13])  # the learner still works
    return {"raised": True, "error": error[:300], "unchanged": unchanged, "changed": diff,
            "n_labeled_after_next_teach": int(len(learner.y_training))}


def deep_cases():
    """DeepActiveLearner (0.4.2.x): no labeled set, the net restores itself."""
    try:
        from modAL.models import DeepActiveLearner
    except ImportError:
        return None
    X0, y0, X_pool, y_pool = data()
    out = {}
    for name, warm_start, y, epsilon in (
            ("fit_epsilon", False, y_pool[:5], np.full(60, 0.2)),
            ("partial_fit_unknown_label", True, np.r_[y_pool[:4], 11], 0.2)):
        learner = DeepActiveLearner(
            estimator=PDCLNet(epsilon=epsilon, max_epochs=2, random_state=0,
                              classes=list(range(10))),
            query_strategy=ally_query_strategy)
        learner.teach(X0, y0, warm_start=False)
        before = fingerprint(learner)
        try:
            learner.teach(X_pool[:5], y, warm_start=warm_start)
            out[name] = {"raised": False}
        except Exception as exc:
            out[name] = {"raised": True, "error": f"{type(exc).__name__}: {exc}"[:300],
                         "unchanged": fingerprint(learner) == before}
    return out


def revert_and_reapply():
    """Without the patches, does modAL's teach still work here? Then patch again."""
    modal_ally.modal_patches.revert()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            learner = fresh_learner()
            learner.teach(data()[2][:3], data()[3][:3])
        unpatched = "ok"
    except Exception as exc:
        unpatched = f"{type(exc).__name__}: {exc}"[:300]
    reverted = modal_ally.modal_patches.applied()
    reapplied = modal_ally.modal_patches.apply()
    return {"unpatched_teach": unpatched, "after_revert": list(reverted),
            "after_reapply": list(reapplied)}


def run(fn, *args):
    try:
        return {"ok": True, **fn(*args)}
    except Exception as exc:  # the report says what a user would see
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-2000:]}


def main():
    import inspect

    import modAL

    report = {
        "sklearn": sklearn.__version__, "pandas": pd.__version__,
        "sklearn_file": sklearn.__file__, "modal_file": modAL.__file__,
        "returns_scores": modal_returns_scores(),
        "ensure_all_finite": "ensure_all_finite" in inspect.signature(
            sklearn.utils.check_X_y).parameters,
        "applied": list(modal_ally.modal_patches.applied()),
    }
    report["loop"] = run(loop)
    report["frame"] = run(frame_labeled_set)
    report["cases"] = {name: run(run_case, make, call)
                       for name, make, call in adversarial_cases()}
    report["deep"] = deep_cases()
    report["revert"] = run(revert_and_reapply)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
