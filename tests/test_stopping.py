"""Stopping criteria: statistics on hand-made cases, state across rounds, reset, pickling,
parameter checks, and use inside modAL loops (0.4.1 and 0.4.2.1, in subprocesses).

Run as a script (``python tests/test_stopping.py``) this file is the modAL driver: it
prints a JSON report of a short loop with every criterion.
"""

import copy
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import cohen_kappa_score

from modal_ally import PDCLNet
from modal_ally.callbacks import dual_targets
from modal_ally.stopping import (
    DualCriterion,
    LabelBudget,
    MaxConfidence,
    OverallUncertainty,
    StabilizingPredictions,
    StopDecision,
    cohen_kappa,
    normalized_entropy,
    prediction_agreement,
)

ROOT = Path(__file__).resolve().parents[1]
MODAL_0421 = ROOT / ".venv" / "modal-0.4.2.1"


class Scripted:
    """A stand-in learner answering from lists, one entry per call (any modAL learner
    exposes the same methods)."""

    _estimator_type = "classifier"

    def __init__(self, predictions=(), probas=(), y_training=None):
        self.predictions, self.probas = list(predictions), list(probas)
        self.y_training = y_training

    def predict(self, X):
        return np.asarray(self.predictions.pop(0))

    def predict_proba(self, X):
        return np.asarray(self.probas.pop(0))


class ScriptedRegressor(Scripted):
    _estimator_type = "regressor"

    def predict_proba(self, X):  # pragma: no cover - must not be called
        raise AssertionError


class FakeDual:
    """A PDCL-like estimator with known multipliers and predicted multipliers."""

    def __init__(self, lambdas, scores):
        self.lambdas_, self.scores = np.asarray(lambdas, float), np.asarray(scores, float)

    def predict_dual(self, X):
        return self.scores[np.asarray(X, dtype=int).ravel()]


X4 = np.zeros((4, 2))


# ------------------------------------------------------------------------ statistics
@pytest.mark.parametrize("seed", range(5))
def test_kappa_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, 60)
    b = np.where(rng.random(60) < 0.7, a, rng.integers(0, 4, 60))
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa(a.astype(str), b.astype(str)) == pytest.approx(cohen_kappa_score(a, b))


def test_kappa_hand_cases():
    assert cohen_kappa([0, 1, 0, 1], [0, 1, 0, 1]) == 1.0
    assert cohen_kappa([0, 1, 0, 1], [1, 0, 1, 0]) == -1.0
    assert cohen_kappa([2, 2, 2], [2, 2, 2]) == 1.0  # sklearn: nan (0/0)
    # p_o = 3/4, p_e = (3/4 * 1/2 + 1/4 * 1/2) = 1/2 -> kappa = 0.5
    assert cohen_kappa([0, 0, 0, 1], [0, 0, 1, 1]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one length"):
        cohen_kappa([0, 1], [0, 1, 1])


def test_prediction_agreement_and_entropy():
    assert prediction_agreement([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    # change^2 = 0.5, spread^2 = 2 -> 1 - 0.25
    assert prediction_agreement([1.5, 2.0, 2.5], [1.0, 2.0, 3.0]) == pytest.approx(0.75)
    assert prediction_agreement([5.0, 5.0], [5.0, 5.0]) == 1.0
    assert prediction_agreement([5.0, 6.0], [5.0, 5.0]) == 0.0
    np.testing.assert_allclose(normalized_entropy([[0.25] * 4, [1, 0, 0, 0], [0.5, 0.5, 0, 0]]),
                               [1.0, 0.0, 0.5])


# ------------------------------------------------------------------------ rounds
def test_stabilizing_predictions_rounds_streak_and_reset():
    rounds = [[0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0],
              [1, 1, 0, 0]]
    learner = Scripted(predictions=rounds)
    criterion = StabilizingPredictions(threshold=0.99, patience=3)
    decisions = [criterion.check(learner, X4) for _ in rounds]
    assert np.isnan(decisions[0].statistic) and not decisions[0].stop
    assert decisions[1].statistic == pytest.approx(cohen_kappa(rounds[1], rounds[0]))
    assert [d.streak for d in decisions] == [0, 0, 1, 2, 3, 0]
    assert [d.stop for d in decisions] == [False, False, False, False, True, False]
    assert [d.round for d in decisions] == list(range(6))
    assert decisions[2].evaluated_on == "stop set" and decisions[2].n_evaluated == 4
    assert criterion.history_ == decisions and criterion.round_ == 6
    criterion.reset()
    assert (criterion.round_, criterion.streak_, criterion.history_) == (0, 0, [])
    assert criterion.stop_set_ is None and criterion.previous_predictions_ is None
    assert np.isnan(criterion.check(Scripted(predictions=[[0, 1]]), X4[:2]).statistic)


def test_stabilizing_predictions_fixes_the_first_pool_as_stop_set():
    seen = []

    class Recorder(Scripted):
        def predict(self, X):
            seen.append(np.array(X))
            return np.zeros(len(X), dtype=int)

    criterion = StabilizingPredictions(stop_set_size=3, random_state=1, patience=1)
    pool = np.arange(20.0).reshape(10, 2)
    criterion.check(Recorder(), pool)
    decision = criterion.check(Recorder(), pool[5:])  # the pool shrank: stop set kept
    np.testing.assert_array_equal(seen[0], seen[1])
    assert seen[0].shape == (3, 2) and decision.stop and decision.statistic == 1.0


def test_stabilizing_predictions_regression():
    learner = ScriptedRegressor(predictions=[[1.0, 2.0, 3.0], [1.5, 2.0, 2.5]])
    criterion = StabilizingPredictions(patience=1)
    criterion.check(learner, X4[:3])
    decision = criterion.check(learner, X4[:3])
    assert decision.statistic == pytest.approx(0.75) and decision.details["agreement"] == "r2"
    assert not decision.stop


def test_uncertainty_criteria_on_hand_made_probabilities():
    probas = [[[0.5, 0.5], [1.0, 0.0]], [[0.9, 0.1], [1.0, 0.0]]]
    overall, maximum = OverallUncertainty(threshold=0.3), MaxConfidence(threshold=0.5)
    for proba in probas:
        d_overall = overall.check(Scripted(probas=[proba]), X4[:2])
        d_max = maximum.check(Scripted(probas=[proba]), X4[:2])
    h = float(normalized_entropy([[0.9, 0.1]])[0])  # 0.469
    assert d_overall.statistic == pytest.approx(h / 2) and d_overall.stop
    assert d_max.statistic == pytest.approx(h) and d_max.stop
    assert [d.stop for d in maximum.history_] == [False, True]
    assert d_overall.evaluated_on == "pool"
    stop_set = OverallUncertainty(X_stop=X4).check(Scripted(probas=[[[1, 0]] * 4]), None)
    assert stop_set.evaluated_on == "stop set" and stop_set.n_evaluated == 4


def test_uncertainty_criteria_need_a_classifier():
    regressor = LinearRegression().fit(X4 + np.arange(4)[:, None], np.arange(4.0))
    with pytest.raises(TypeError, match="predict_proba"):
        OverallUncertainty().check(regressor, X4)


def test_label_budget():
    budget = LabelBudget(100)
    assert not budget.check(Scripted(y_training=np.zeros(99))).stop
    decision = budget.check(None, n_labeled=100)
    assert decision.stop and decision.statistic == 100 and decision.threshold == 100
    with pytest.raises(ValueError, match="n_labeled"):
        budget.check(object())
    assert budget.round_ == 2  # the failed call counted nothing


# ------------------------------------------------------------------------ dual
def test_dual_statistic_on_known_multipliers():
    estimator = FakeDual(lambdas=[1.0, 3.0], scores=[0.5, 4.0, 1.0, 0.0])
    pool = np.arange(4)[:, None]
    top2 = DualCriterion(2, threshold=1.0, patience=1).check(estimator, pool)
    assert top2.statistic == pytest.approx((4.0 + 1.0) / 2 / 2.0) and not top2.stop
    whole = DualCriterion(None, patience=1).check(estimator, pool)
    assert whole.statistic == pytest.approx(5.5 / 4 / 2.0) and whole.stop
    assert whole.details["active_fraction"] == 1.0 and whole.n_labeled == 2
    silent = DualCriterion(1, patience=1).check(FakeDual([0.0, 0.0], [0, 0, 0, 0]), pool)
    assert silent.statistic == 0.0 and silent.stop and silent.details["active_fraction"] == 0


def test_dual_statistic_on_a_fitted_net(fitted_net, digits):
    net = copy.deepcopy(fitted_net)
    net.lambdas_ = np.full_like(net.lambdas_, 2.0)  # known labeled multipliers
    net.lambdas_mean_ = net.lambdas_.copy()  # what the heads learn with a slack cost
    X_pool = digits["X_pool"][:300]
    scores = np.sort(net.predict_dual(X_pool))[::-1]
    criterion = DualCriterion(25, threshold=1.0, patience=2)
    decision = criterion.check(net, X_pool)
    assert decision.statistic == pytest.approx(scores[:25].mean() / 2.0, rel=1e-5)
    assert decision.n_labeled == net.lambdas_.shape[0] == 200
    # the fitted multipliers themselves: ratio against their mean
    real = DualCriterion(25).check(fitted_net, X_pool)
    assert real.statistic == pytest.approx(
        scores[:25].mean() / dual_targets(fitted_net).mean(), rel=1e-4)
    assert 0 <= real.details["active_fraction"] <= 1


def test_dual_on_a_regressor(fitted_regressor, diabetes):
    decision = DualCriterion(10).check(fitted_regressor, diabetes[2])
    assert np.isfinite(decision.statistic) and decision.statistic >= 0


def test_dual_rejects_other_estimators():
    with pytest.raises(TypeError, match="PDCLNet"):
        DualCriterion(5).check(LogisticRegression(), X4)
    with pytest.raises(NotFittedError):
        DualCriterion(5).check(PDCLNet(), X4)


def test_dual_through_a_pipeline(digits):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), PDCLNet(max_epochs=2, dual_head_epochs=10,
                                                          random_state=0))
    pipe.fit(digits["X_train"], digits["y_train"])
    X_pool = digits["X_pool"][:50]
    decision = DualCriterion(5).check(pipe, X_pool)
    scores = np.sort(pipe[-1].predict_dual(pipe[:-1].transform(X_pool)))[::-1]
    assert decision.statistic == pytest.approx(
        scores[:5].mean() / dual_targets(pipe[-1]).mean(), rel=1e-5)


# ------------------------------------------------------------------------ contract
ALL = [StabilizingPredictions(), OverallUncertainty(), MaxConfidence(), DualCriterion(3),
       LabelBudget(10)]


@pytest.mark.parametrize("criterion", ALL, ids=lambda c: c.name)
def test_pickles_mid_run_and_goes_on_identically(criterion):
    def learner():
        fake = FakeDual(lambdas=[1.0, 2.0], scores=[0.1, 2.0, 1.5, 0.2])
        fake.predict = lambda X: np.array([0, 1, 1, 0])[: len(X)]
        fake.predict_proba = lambda X: np.tile([[0.8, 0.2]], (len(X), 1))
        fake.y_training = np.zeros(12)
        fake._estimator_type = "classifier"
        return fake

    criterion = copy.deepcopy(criterion).reset()
    criterion.check(learner(), np.arange(4)[:, None])
    clone = pickle.loads(pickle.dumps(criterion))
    a = criterion.check(learner(), np.arange(4)[:, None])
    b = clone.check(learner(), np.arange(4)[:, None])
    assert isinstance(a, StopDecision)
    assert json.dumps(a.as_dict(), default=str) == json.dumps(b.as_dict(), default=str)
    assert a.round == 1 and a.criterion == criterion.name
    assert clone.round_ == criterion.round_ == 2
    assert repr(criterion).startswith(type(criterion).__name__ + "(")


@pytest.mark.parametrize("make, message", [
    (lambda: StabilizingPredictions(threshold=0), "threshold"),
    (lambda: StabilizingPredictions(threshold=1.5), "threshold"),
    (lambda: StabilizingPredictions(patience=0), "patience"),
    (lambda: StabilizingPredictions(task="ranking"), "task"),
    (lambda: StabilizingPredictions(stop_set_size=0), "stop_set_size"),
    (lambda: StabilizingPredictions(X_stop=np.empty((0, 2))), "X_stop is empty"),
    (lambda: OverallUncertainty(threshold=float("nan")), "threshold"),
    (lambda: MaxConfidence(threshold=-0.1), "threshold"),
    (lambda: MaxConfidence(patience=1.5), "patience"),
    (lambda: DualCriterion(0), "n_instances"),
    (lambda: DualCriterion(5, threshold=0.0), "threshold"),
    (lambda: DualCriterion(5, patience=True), "patience"),
    (lambda: LabelBudget(0), "max_labels"),
    (lambda: LabelBudget("10"), "max_labels"),
])
def test_parameters_are_validated(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_failed_call_changes_nothing():
    criterion = StabilizingPredictions(patience=1)
    criterion.check(Scripted(predictions=[[0, 1, 1, 0]]), X4)
    before = pickle.dumps(criterion)
    with pytest.raises(ValueError, match="changed shape"):
        criterion.check(Scripted(predictions=[[0, 1]]), X4)
    with pytest.raises(ValueError, match="X_pool"):
        OverallUncertainty().check(Scripted(), None)
    assert pickle.dumps(criterion) == before


# ------------------------------------------------------------------------ modAL loops
def drive():
    """A short modAL loop with every criterion; returns a JSON-able report."""
    import modAL
    from modAL.models import ActiveLearner
    from modAL.uncertainty import uncertainty_sampling
    from sklearn.datasets import load_digits

    from modal_ally import ally_query_strategy

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    report = {"modal_version": getattr(modAL, "__version__", None),
              "modal_file": modAL.__file__, "loops": {}}
    setups = {
        "pdcl": (lambda: PDCLNet(max_epochs=3, random_state=0), ally_query_strategy),
        "sklearn": (lambda: LogisticRegression(max_iter=200), uncertainty_sampling)}
    for name, (make, strategy) in setups.items():
        criteria = [StabilizingPredictions(patience=1, threshold=0.5), OverallUncertainty(),
                    MaxConfidence(), LabelBudget(110)]
        if name == "pdcl":
            criteria.append(DualCriterion(10))
        learner = ActiveLearner(estimator=make(), query_strategy=strategy,
                                X_training=X[:80], y_training=y[:80])
        pool = np.arange(80, 400)
        rows = []
        for _ in range(4):
            decisions = [c.check(learner, X[pool]) for c in criteria]
            rows.append([[d.criterion, d.round, d.n_labeled, d.stop, d.statistic]
                         for d in decisions])
            query_idx = np.asarray(learner.query(X[pool], n_instances=10)[0]).ravel()
            learner.teach(X[pool[query_idx]], y[pool[query_idx]])
            pool = np.delete(pool, query_idx)
        report["loops"][name] = rows
    try:
        from modAL.models import DeepActiveLearner
    except ImportError:
        return report
    learner = DeepActiveLearner(estimator=PDCLNet(max_epochs=3, random_state=0),
                                query_strategy=ally_query_strategy)
    learner.teach(X[:80], y[:80], warm_start=False)
    decision = DualCriterion(10).check(learner, X[80:400])
    report["deep"] = [decision.n_labeled, decision.statistic]
    return report


def run_driver(extra_path=None):
    env = dict(os.environ)
    paths = ([str(extra_path)] if extra_path else []) + [str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONWARNINGS"] = "ignore"
    done = subprocess.run([sys.executable, str(Path(__file__).resolve())], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("release", ["0.4.1", "0.4.2.1"])
def test_criteria_inside_a_modal_loop(release):
    if release == "0.4.2.1" and not (MODAL_0421 / "modAL").is_dir():
        pytest.fail(f"modAL-python 0.4.2.1 is missing from {MODAL_0421}: run `make test`")
    report = run_driver(MODAL_0421 if release == "0.4.2.1" else None)
    assert (str(MODAL_0421) in report["modal_file"]) == (release == "0.4.2.1")
    for name, rows in report["loops"].items():
        assert len(rows) == 4, name
        for round_, decisions in enumerate(rows):
            assert {d[1] for d in decisions} == {round_}
            assert {d[2] for d in decisions} == {80 + 10 * round_}
            budget = next(d for d in decisions if d[0] == "label_budget")
            assert budget[3] == (80 + 10 * round_ >= 110)
        assert any(d[0] == "dual" for d in rows[0]) == (name == "pdcl")
        assert np.isnan(rows[0][0][4])  # stabilizing predictions: nothing to compare yet
        assert all(np.isfinite(d[4]) for decisions in rows[1:] for d in decisions)
    if release == "0.4.2.1":
        assert report["deep"][0] == 80 and np.isfinite(report["deep"][1])
    else:
        assert "deep" not in report


@pytest.mark.slow
def test_docs_stopping_example_runs(tmp_path):
    import re

    text = (ROOT / "docs" / "stopping.md").read_text()
    block = re.search(r"# When to stop labeling\n.*?```python\n(.*?)```", text, re.S).group(1)
    (tmp_path / "example.py").write_text(block)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-W", "ignore", str(tmp_path / "example.py")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("stop: [") and len(lines) >= 3
    assert int(lines[-2].split()[0]) <= 1000  # the label budget stops it at the latest


# ------------------------------------------------------------------------ benchmark
def test_benchmark_judges_stops_against_the_hindsight_point():
    from benchmarks.stopping import judge_run, summarize

    metric = [0.50, 0.80, 0.90, 0.95, 0.96, 0.96, 0.95]
    early = [False, True, True, True, True, True, True]  # stops at 20 labels
    late = [False] * 5 + [True, True]  # stops at 60 labels
    rows = [{"dataset": "d", "strategy": "s", "seed": 0, "round": i, "n_labels": 10 * i + 10,
             "metric": m, "a_statistic": 0.0, "a_stop": early[i], "b_statistic": 0.0,
             "b_stop": late[i], "c_statistic": 0.0, "c_stop": False, "d_statistic": None,
             "d_stop": None} for i, m in enumerate(metric)]
    outcomes = {o["criterion"]: o for o in judge_run(rows, "classification")}
    assert set(outcomes) == {"a", "b", "c"}  # d was not recorded (None)
    final = (0.96 + 0.96 + 0.95) / 3  # mean of the last three rounds
    a, b, c = outcomes["a"], outcomes["b"], outcomes["c"]
    assert a["hindsight_labels"] == 40  # first round within 1 point of final: 0.95
    assert (a["stop_labels"], a["within"], a["labels_past"]) == (20, False, -20)
    assert a["metric_lost"] == pytest.approx(100 * (final - 0.80))
    assert (b["stop_labels"], b["within"], b["labels_past"]) == (60, True, 20)
    assert not c["stopped"] and np.isnan(c["labels_past"])
    table = {row["criterion"]: row for row in summarize(list(outcomes.values()),
                                                        ["criterion"])}
    assert table["b"]["within_tolerance"] == 1.0 and table["c"]["never_stops"] == 1.0
    assert table["a"]["labels_used_fraction"] == pytest.approx(20 / 70)


def test_benchmark_passes_data_dir_and_max_pool_to_the_loader(monkeypatch, tmp_path):
    import benchmarks.harness.datasets
    from benchmarks import stopping

    args = stopping.build_parser().parse_args(
        ["--datasets", "mnist", "--data-dir", str(tmp_path), "--max-pool", "123"])
    assert (args.data_dir, args.max_pool) == (str(tmp_path), 123)
    default = stopping.build_parser().parse_args([])
    repo = Path(stopping.__file__).resolve().parents[1]
    assert Path(default.data_dir) == repo.parent / "shared" / "data"
    assert default.max_pool is None
    seen = {}

    def fake_load(name, **kwargs):
        seen.update(kwargs, name=name)
        raise RuntimeError("stop here")

    monkeypatch.setattr(benchmarks.harness.datasets, "load_dataset", fake_load)
    with pytest.raises(RuntimeError, match="stop here"):
        stopping.run_dataset("mnist", args)
    assert seen["name"] == "mnist" and seen["data_dir"] == str(tmp_path)
    assert seen["max_pool"] == 123


def test_benchmark_missing_data_dir_gives_the_loaders_error(tmp_path):
    from benchmarks import stopping

    args = stopping.build_parser().parse_args(
        ["--datasets", "parkinsons", "--data-dir", str(tmp_path / "missing")])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        stopping.run_dataset("parkinsons", args)


@pytest.mark.slow
@pytest.mark.skipif(not (Path("/work/shared/data") / "parkinsons").is_dir(),
                    reason="Parkinsons data not in /work/shared/data")
def test_benchmark_runs_on_a_capped_real_pool(tmp_path):
    import csv

    from benchmarks import stopping

    stopping.main(["--datasets", "parkinsons", "--data-dir", "/work/shared/data",
                   "--max-pool", "60", "--seeds", "1", "--epochs", "1",
                   "--budget-fraction", "0.25", "--max-rounds", "1", "--strategies",
                   "ally,random", "--out", str(tmp_path / "out"),
                   "--work", str(tmp_path / "work")])
    with open(tmp_path / "out" / "rounds.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["dataset"] for row in rows} == {"parkinsons"}
    assert len(rows) == 4  # 2 strategies x (initial fit + 1 round)
    assert max(int(row["n_labels"]) for row in rows) == 30  # 2 x 25 % of the 60-row pool
    assert (tmp_path / "out" / "summary.md").read_text().count("pool capped at 60 rows") == 1


@pytest.mark.slow
def test_learning_curves_record_every_criterion(tmp_path):
    import csv

    from benchmarks import learning_curves

    learning_curves.main(["--dataset", "wine", "--strategies", "ally,random", "--rounds", "2",
                          "--seeds", "1", "--epochs", "2", "--initial", "10", "--budget",
                          "10", "--out", str(tmp_path), "--stopping", "--no-progress"])
    with open(tmp_path / "rounds.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    for row in rows:
        assert row["label_budget_half_statistic"] == row["n_labels"]
        assert row["overall_uncertainty_stop"] in ("True", "False")
        has_dual = row["dual_top_b_statistic"] != ""
        assert has_dual == (row["strategy"] == "ally")  # PDCL nets only
    assert {row["stabilizing_predictions_statistic"] == "" for row in rows
            if row["round"] == "0"} == {True}


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    json.dump(drive(), sys.stdout)
