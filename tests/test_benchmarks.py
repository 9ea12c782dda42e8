"""Tests for the benchmark scripts (learning_curves.py, speed.py) and the modules they share
(registry, estimators, loop, metrics, reporting).

The scripts run in-process with tiny settings (digits, a few labels, 1-2 epochs); the
speed benchmark spawns its measurement processes as it does for real.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from benchmarks import learning_curves, speed
from benchmarks.harness import estimators, loop, metrics, registry, reporting
from tests.test_datasets import cifar_dir, mnist_dir  # noqa: F401  (fixtures)

TINY = ["--initial", "30", "--budget", "10", "--epochs", "2", "--no-progress"]


def read_csv(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def run_curves(out, *, strategies="ally,random", seeds=1, rounds=2, extra=()):
    return learning_curves.main(["--dataset", "digits", "--strategies", strategies,
                                 "--seeds", str(seeds), "--rounds", str(rounds),
                                 "--out", str(out), *TINY, *extra])


@pytest.fixture(scope="module")
def two_round_run(tmp_path_factory):
    """ally and random, 1 seed, 2 rounds; the output directory and the CSV rows."""
    out = tmp_path_factory.mktemp("curves")
    result = run_curves(out)
    return out, result


# ---------------------------------------------------------------- learning_curves outputs
def test_learning_curves_writes_tables_and_plot(two_round_run):
    out, result = two_round_run
    fields, rows = read_csv(out / "rounds.csv")
    assert tuple(fields) == reporting.ROW_FIELDS
    assert len(rows) == 2 * 1 * 3  # strategies x seeds x rounds 0..2
    assert [r["strategy"] for r in rows] == ["ally"] * 3 + ["random"] * 3
    assert [int(r["n_labels"]) for r in rows] == [30, 40, 50] * 2
    assert [int(r["round"]) for r in rows] == [0, 1, 2] * 2
    for row in rows:
        assert 0.0 <= float(row["metric"]) <= 1.0
        assert float(row["fit_s"]) >= 0
        assert (row["query_s"] == "") == (row["round"] == "0")
    # both strategies start from the same initial labeled set (hence the same round-0 data)
    state = json.loads((out / "state.json").read_text())
    initial = [run["labeled"][:30] for run in state["runs"].values()]
    assert initial[0] == initial[1]

    fields, summary = read_csv(out / "summary.csv")
    assert tuple(fields) == reporting.SUMMARY_FIELDS
    assert [r["strategy"] for r in summary] == ["ally", "random"]
    for row in summary:
        assert row["metric_name"] == "accuracy"
        assert int(row["n_seeds"]) == 1 and int(row["final_n_labels"]) == 50
        assert 30 <= float(row["labels_to_97_mean"]) <= 50
        assert 0.0 <= float(row["aulc_mean"]) <= 1.0
    markdown = (out / "summary.md").read_text()
    assert "97%" in markdown and "| ally |" in markdown
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(result["paths"]) == {"rounds", "summary_csv", "summary_md", "plot"}


def test_learning_curves_prints_table_and_paths(tmp_path, capsys):
    run_curves(tmp_path, strategies="random", rounds=1)
    printed = capsys.readouterr().out
    assert "| random |" in printed
    assert str(tmp_path / "rounds.csv") in printed
    assert str(tmp_path / "learning_curves.png") in printed


# ---------------------------------------------------------------- resume
def test_resume_computes_only_the_missing_round(two_round_run, tmp_path, monkeypatch):
    import shutil

    from modAL.models import ActiveLearner

    out = tmp_path / "resumed"
    shutil.copytree(two_round_run[0], out)
    _, before = read_csv(out / "rounds.csv")

    calls = []
    original = ActiveLearner.query

    def counting_query(self, *args, **kwargs):
        calls.append(kwargs.get("n_instances"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ActiveLearner, "query", counting_query)
    run_curves(out, rounds=3)
    assert calls == [10, 10]  # one query (round 3) per strategy, nothing recomputed
    monkeypatch.undo()

    _, after = read_csv(out / "rounds.csv")
    assert len(after) == 2 * 4
    old = [r for r in after if int(r["round"]) <= 2]
    assert old == before  # rounds 0-2 intact, timings included
    assert [int(r["n_labels"]) for r in after if r["round"] == "3"] == [60, 60]

    # the resumed run equals an uninterrupted one (the refit is reproducible)
    fresh = tmp_path / "fresh"
    run_curves(fresh, rounds=3)
    resumed_state = json.loads((out / "state.json").read_text())
    fresh_state = json.loads((fresh / "state.json").read_text())
    for key, run in fresh_state["runs"].items():
        assert resumed_state["runs"][key]["labeled"] == run["labeled"], key
    _, fresh_rows = read_csv(fresh / "rounds.csv")
    assert [r["metric"] for r in fresh_rows] == [r["metric"] for r in after]


def test_resume_refuses_other_settings(two_round_run, tmp_path, capsys):
    import shutil

    out = tmp_path / "other"
    shutil.copytree(two_round_run[0], out)
    with pytest.raises(SystemExit):
        run_curves(out, rounds=3, extra=["--budget", "20"])
    assert "cannot resume" in capsys.readouterr().err


# ---------------------------------------------------------------- regression
def test_regression_refuses_probability_strategies(tmp_path, capsys):
    with pytest.raises(SystemExit):
        learning_curves.main(["--dataset", "diabetes", "--strategies", "ally,uncertainty,badge",
                              "--out", str(tmp_path), *TINY])
    err = capsys.readouterr().err
    assert "uncertainty, badge" in err and "class probabilities" in err
    assert not (tmp_path / "rounds.csv").exists()


def test_regression_all_skips_probability_strategies():
    names, notes = registry.resolve_strategies("all", "regression")
    assert names == ["ally", "ally-redundancy", "random", "coreset"]
    assert len(notes) == 5 and all("class probabilities" in note for note in notes)
    names, notes = registry.resolve_strategies("all", "classification")
    assert names == list(registry.ALL_STRATEGIES) and notes == []
    with pytest.raises(ValueError, match="unknown strategies"):
        registry.resolve_strategies("ally,bald", "classification")


def test_regression_curve_is_mse(tmp_path):
    result = learning_curves.main(["--dataset", "diabetes", "--strategies", "ally,coreset",
                                   "--seeds", "1", "--rounds", "1", "--out", str(tmp_path),
                                   *TINY])
    assert [r["n_labels"] for r in result["rows"]] == [30, 40, 30, 40]
    assert all(r["metric"] > 100 for r in result["rows"])  # MSE in the target's units
    assert result["summary"][0]["metric_name"] == "mse"


def test_plain_regressor_standardizes_like_pdcl():
    from modal_ally import PDCLRegressor

    data = type("Data", (), {"task": "regression", "n_classes": None, "module": "mlp",
                             "feature_shape": (5,)})()
    plain = estimators.build_estimator("coreset", data, epochs=1, seed=0)
    assert isinstance(plain, estimators.PlainNetRegressor)
    assert isinstance(estimators.build_estimator("ally", data, epochs=1, seed=0), PDCLRegressor)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 5)).astype(np.float32)
    y = (1000 + 50 * X[:, 0]).astype(np.float32)
    plain.fit(X, y)
    np.testing.assert_allclose(plain.y_mean_, [y.mean()], rtol=1e-5)
    np.testing.assert_allclose(plain.y_scale_, [y.std()], rtol=1e-5)
    pred = plain.predict(X)
    assert pred.shape == (50,) and abs(pred.mean() - 1000) < 200


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_plain_net_is_pdcl_without_constraints(task):
    """With one epoch no multiplier is ever used (each row's lambda is still 0 when its
    batch is trained on), so PDCL and the plain net must train identically: same module,
    initialization, optimizer, batches, shuffling and target scaling."""
    data = type("Data", (), {"task": task, "n_classes": 4 if task == "classification"
                             else None, "module": "mlp", "feature_shape": (6,)})()
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 6)).astype(np.float32)
    y = rng.integers(4, size=150) if task == "classification" else \
        (300 + 40 * X[:, 0]).astype(np.float32)
    pdcl = estimators.build_estimator("ally", data, epochs=1, seed=5).fit(X, y)
    plain = estimators.build_estimator("random", data, epochs=1, seed=5).fit(X, y)
    np.testing.assert_allclose(plain.predict_proba(X) if task == "classification" else
                               plain.predict(X),
                               pdcl.predict_proba(X) if task == "classification" else
                               pdcl.predict(X), rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:every dual variable:UserWarning")
def test_plain_net_is_pdcl_with_no_dual_step():
    """What benchmarks/harness/estimators.py says: PDCLNet with epsilon=0 and dual_lr=0 (every
    multiplier stays 0) trains the plain net's network, over several epochs too."""
    data = type("Data", (), {"task": "classification", "n_classes": 4, "module": "mlp",
                             "feature_shape": (6,)})()
    rng = np.random.default_rng(2)
    X = rng.normal(size=(150, 6)).astype(np.float32)
    y = rng.integers(4, size=150)
    pdcl = estimators.build_estimator("ally", data, epochs=4, seed=5, epsilon=0.0,
                                      dual_lr=0.0).fit(X, y)
    plain = estimators.build_estimator("random", data, epochs=4, seed=5).fit(X, y)
    assert not pdcl.lambdas_.any()
    np.testing.assert_allclose(plain.predict_proba(X), pdcl.predict_proba(X), rtol=1e-5,
                               atol=1e-6)


def test_plain_fits_are_reproducible():
    data = type("Data", (), {"task": "classification", "n_classes": 3, "module": "mlp",
                             "feature_shape": (4,)})()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    y = rng.integers(2, size=40)  # class 2 absent: still three outputs
    probas = [estimators.build_estimator("random", data, epochs=2, seed=3).fit(X, y)
              .predict_proba(X) for _ in range(2)]
    assert probas[0].shape == (40, 3)
    np.testing.assert_array_equal(probas[0], probas[1])


# ---------------------------------------------------------------- summaries
def test_summary_definitions():
    assert metrics.learning_curve_area([0, 10, 20], [0.0, 1.0, 1.0]) == pytest.approx(0.75)
    assert metrics.learning_curve_area([5], [0.3]) == 0.3
    assert metrics.labels_to_reach([10, 20, 30], [0.5, 0.9, 0.95], 0.97 * 0.92) == 20
    assert math.isnan(metrics.labels_to_reach([10, 20], [0.5, 0.6], 0.9))
    assert metrics.labels_to_reach([10, 20], [50.0, 9.0], 10.0, higher_is_better=False) == 20

    rows = [{"strategy": s, "seed": seed, "round": r, "n_labels": 10 * (r + 1),
             "metric": m, "fit_s": 1.0, "query_s": None if r == 0 else 0.5}
            for s, curves in {"a": {0: [0.5, 0.9, 1.0], 1: [0.5, 0.7, 0.8]},
                              "b": {0: [0.5, 0.5, 0.6], 1: [0.5, 0.6, 0.6]}}.items()
            for seed, curve in curves.items() for r, m in enumerate(curve)]
    summary = {row["strategy"]: row for row in metrics.summarize(rows, "classification")}
    a, b = summary["a"], summary["b"]
    assert a["final_mean"] == pytest.approx(0.9) and b["final_mean"] == pytest.approx(0.6)
    assert a["final_std"] == pytest.approx(np.std([1.0, 0.8], ddof=1))
    # own curve: a reaches 0.97 x final at 30 (seed 0) and 30 (seed 1: 0.7 < 0.776)
    assert a["labels_to_97_mean"] == 30
    # b's own target (0.97 x 0.6) is reached early: 30 and 20
    assert b["labels_to_97_mean"] == 25
    # common target 0.97 x 0.9 = 0.873: a reaches it with seed 0 only, b never
    assert a["labels_to_97_best_reached"] == 1 and a["labels_to_97_best_mean"] == 20
    assert b["labels_to_97_best_reached"] == 0 and math.isnan(b["labels_to_97_best_mean"])
    assert a["query_s_mean"] == pytest.approx(0.5) and a["fit_s_mean"] == pytest.approx(1.0)


def test_initial_set_is_a_plain_seeded_draw():
    first = loop.initial_indices(1000, 100, seed=0)
    assert np.array_equal(first, loop.initial_indices(1000, 100, seed=0))
    assert not np.array_equal(first, loop.initial_indices(1000, 100, seed=1))
    assert len(np.unique(first)) == 100 and first.min() >= 0 and first.max() < 1000


def test_bad_flags_are_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit):
        learning_curves.main(["--budget", "0", "--out", str(tmp_path)])
    assert "--budget must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        learning_curves.main(["--initial", "5000", "--out", str(tmp_path), "--no-progress"])
    assert "must be smaller than the pool" in capsys.readouterr().err


# ---------------------------------------------------------------- speed
def test_speed_writes_its_table(tmp_path):
    result = speed.main(["--pool-sizes", "2000", "--budgets", "10", "--repeats", "1",
                         "--strategies", "ally,random", "--fit-sizes", "100", "--epochs", "1",
                         "--labeled", "100", "--fit-epochs", "1", "--out", str(tmp_path)])
    fields, rows = read_csv(tmp_path / "speed.csv")
    assert tuple(fields) == speed.FIELDS
    assert [(r["section"], r["method"]) for r in rows] == [
        ("fit", "PDCLNet"), ("fit", "NeuralNetClassifier (RowDataset)"),
        ("fit", "NeuralNetClassifier (default Dataset)"),
        ("forward", speed.FORWARD_METHOD), ("query", "ally"), ("query", "random")]
    assert all(r["status"] == "ok" for r in rows), [r["status"] for r in rows]
    assert all(float(r["seconds"]) > 0 for r in rows)
    fit_ref = [r for r in rows if r["method"] == speed.FIT_REFERENCE][0]
    assert float(fit_ref["ratio"]) == 1.0
    for row in rows[3:]:
        assert row["n_rows"] == "2000"
        assert float(row["peak_rss_mib"]) >= 0 and float(row["peak_traced_mib"]) >= 0
        assert float(row["ratio"]) > 0
    assert (tmp_path / "speed.md").read_text().count("| 2000 |") == 3
    assert result["paths"]["csv"] == tmp_path / "speed.csv"


@pytest.mark.slow
def test_speed_timeout_is_reported():
    job = {"n_rows": 20000, "labeled": 100, "fit_epochs": 1, "device": "cpu", "repeats": 50,
           "strategy": "ranked-batch", "budget": 500}
    assert speed.run_measurement(job, timeout=1.0)["status"] == "timeout"


def test_speed_skip_slow_and_bad_flags(tmp_path, capsys):
    assert speed.skip_reason("ranked-batch", 10**6, 1000, skip_slow=True) == "skipped"
    assert speed.skip_reason("ranked-batch", 10**6, 1000, skip_slow=False) is None
    assert speed.skip_reason("ranked-batch", 10**4, 100, skip_slow=True) is None
    assert speed.skip_reason("coreset", 10**6, 1000, skip_slow=True) is None
    assert speed.skip_reason("ally", 100, 1000, skip_slow=False).startswith("skipped")
    with pytest.raises(SystemExit):
        speed.main(["--parts", "fit,bogus", "--out", str(tmp_path)])
    assert "--parts" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        speed.main(["--pool-sizes", "1e4,abc", "--out", str(tmp_path)])
    assert "--pool-sizes" in capsys.readouterr().err


@pytest.mark.parametrize("dataset,fixture", [("cifar10", "cifar_dir"), ("mnist", "mnist_dir")])
def test_learning_curves_on_torchvision_files(dataset, fixture, request, tmp_path):
    """The loop runs on image sets read from --data-dir (ResNet-18 / MLP backbones)."""
    root, _ = request.getfixturevalue(fixture)
    out = tmp_path / "out"
    result = learning_curves.main([
        "--dataset", dataset, "--data-dir", str(root), "--strategies", "ally,badge,coreset",
        "--initial", "8", "--budget", "4", "--rounds", "1", "--epochs", "1", "--seeds", "1",
        "--out", str(out), "--no-progress"])
    assert {row["strategy"] for row in result["rows"]} == {"ally", "badge", "coreset"}
    assert all(row["n_labels"] in (8, 12) for row in result["rows"])
    assert (out / "learning_curves.png").exists()
