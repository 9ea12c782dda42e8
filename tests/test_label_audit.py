"""The label audit: ranking planted label errors by the multipliers, the flagged set,
and relabeling that changes nothing when it fails."""

import numpy as np
import pytest
import torch
from modAL.models import ActiveLearner
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback

from modal_ally import (
    MLP,
    PDCLNet,
    PDCLRegressor,
    ally_query_strategy,
    find_label_issues,
    rank_label_issues,
    relabel,
)
from modal_ally.label_audit import (
    DEFAULT_SCORE,
    SCORES,
    _dual_gain,
    audit_of,
    average_losses,
    label_issue_scores,
)
from tests.helpers import MODAL_0421, assert_unchanged, run_driver, snapshot


@pytest.fixture(scope="module")
def noisy(digits):
    """200 digits rows, 20 of them with a wrong label; a PDCLNet fitted on them."""
    X, y_true = digits["X_train"], digits["y_train"]
    flipped = np.random.RandomState(3).choice(len(y_true), 20, replace=False)
    y = y_true.copy()
    y[flipped] = (y[flipped] + 1 + np.arange(20) % 9) % 10
    net = PDCLNet(max_epochs=40, random_state=0).fit(X, y)
    return {"X": X, "y": y, "y_true": y_true, "flipped": flipped, "net": net}


def _is_flipped(noisy):
    mask = np.zeros(len(noisy["y"]), dtype=bool)
    mask[noisy["flipped"]] = True
    return mask


# ----------------------------------------------------------------------------- ranking
def test_ranking_finds_planted_label_errors(noisy):
    indices, scores = rank_label_issues(noisy["net"])
    assert sorted(indices.tolist()) == list(range(len(noisy["y"])))
    assert np.all(np.diff(scores) <= 0)
    top = rank_label_issues(noisy["net"], top=20)[0]
    assert np.isin(top, noisy["flipped"]).sum() >= 13  # chance: 2
    auroc = roc_auc_score(_is_flipped(noisy), label_issue_scores(audit_of(noisy["net"],
                                                                          what="t")))
    assert auroc > 0.95


@pytest.mark.parametrize("score", SCORES)
def test_every_candidate_score_ranks_better_than_chance(noisy, score):
    values = label_issue_scores(audit_of(noisy["net"], what="t", X=noisy["X"], y=noisy["y"]),
                                score)
    assert values.shape == (len(noisy["y"]),) and np.isfinite(values).all()
    assert roc_auc_score(_is_flipped(noisy), values) > 0.6


def test_regression_finds_replaced_targets(diabetes):
    X, y, _, _ = diabetes
    rng = np.random.RandomState(0)
    replaced = rng.choice(len(y), 30, replace=False)
    y = y.copy()
    y[replaced] = y[replaced] + rng.choice([-1, 1], 30) * 3 * y.std()
    net = PDCLRegressor(max_epochs=40, random_state=0).fit(X, y)
    mask = np.isin(np.arange(len(y)), replaced)
    top = rank_label_issues(net, top=30)[0]
    assert np.isin(top, replaced).sum() >= 20
    assert roc_auc_score(mask, label_issue_scores(audit_of(net, what="t"))) > 0.85
    flagged = find_label_issues(net)
    assert flagged[mask].mean() > 0.5 and flagged[~mask].mean() < 0.1


def test_regression_default_compares_each_target_with_its_neighbours(diabetes):
    """A regressor's default score mixes the ranks of lambda_mean and "neighbors":
    |y - median of the 10 nearest rows' targets| in the fit's embedding space, in
    target standard deviations; a target replaced by another row's (a plausible value)
    is found."""
    X, y, _, _ = diabetes
    rng = np.random.RandomState(1)
    replaced = rng.choice(len(y), 45, replace=False)
    y = y.copy()
    y[replaced] = y[rng.permutation(replaced)]  # plausible values, wrong rows
    mask = np.isin(np.arange(len(y)), replaced) & (y != diabetes[1])
    net = PDCLRegressor(max_epochs=40, random_state=0).fit(X, y)
    audit = audit_of(net, what="t")
    from scipy.stats import rankdata

    default = label_issue_scores(audit)
    values = label_issue_scores(audit, "neighbors")
    both = rankdata(values) + rankdata(label_issue_scores(audit, "lambda_mean"))
    np.testing.assert_allclose(default, both / (2 * len(y)))
    assert roc_auc_score(mask, default) > 0.65
    E = net.train_embeddings_.astype(np.float64)
    d2 = ((E[:, None, :] - E[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d2, np.inf)
    nearest = np.argsort(d2, axis=1, kind="stable")[:, :10]
    expected = np.abs(y - np.median(y[nearest], axis=1)) / y.std()
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    # the learner's labels and the ones the net kept give the same scores
    np.testing.assert_allclose(
        label_issue_scores(audit_of(net, what="t", y=y), "neighbors"), values)
    assert roc_auc_score(mask, values) > 0.65  # measured 0.72
    flagged = find_label_issues(net)
    assert flagged[mask].mean() > 2 * flagged[~mask].mean()


def test_regression_default_adds_the_input_space_neighbours_where_the_rows_are_known(
        diabetes):
    """With the labeled rows known (a learner's X_training, or X=), a regressor's default
    also ranks by the neighbours in the standardized input space, which the fit cannot
    bend; a bare net without X keeps the two-score default."""
    from scipy.stats import rankdata

    X, y, _, _ = diabetes
    rng = np.random.RandomState(1)
    replaced = rng.choice(len(y), 45, replace=False)
    y = y.copy()
    y[replaced] = y[rng.permutation(replaced)]
    mask = np.isin(np.arange(len(y)), replaced) & (y != diabetes[1])
    learner = ActiveLearner(PDCLRegressor(max_epochs=40, random_state=0), X_training=X,
                            y_training=y)
    net = learner.estimator
    inputs = label_issue_scores(audit_of(learner, what="t"), "input_neighbors")
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    d2 = ((Z[:, None, :].astype(np.float64) - Z[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d2, np.inf)
    nearest = np.argsort(d2, axis=1, kind="stable")[:, :10]
    np.testing.assert_allclose(inputs, np.abs(y - np.median(y[nearest], axis=1)) / y.std(),
                               rtol=1e-6)
    audit = audit_of(net, what="t", X=X)
    three = sum(rankdata(label_issue_scores(audit, s))
                for s in ("lambda_mean", "neighbors", "input_neighbors")) / (3 * len(y))
    np.testing.assert_allclose(rank_label_issues(learner)[1], np.sort(three)[::-1])
    np.testing.assert_allclose(label_issue_scores(audit), three)
    assert roc_auc_score(mask, three) > 0.65
    two = label_issue_scores(audit_of(net, what="t"))  # a bare net, no rows: two scores
    np.testing.assert_allclose(two, label_issue_scores(audit_of(net, what="t"),
                                                       "lambda_mean+neighbors"))
    # the flags do not change: the same rule on the embedding neighbours
    np.testing.assert_array_equal(find_label_issues(learner), find_label_issues(net))
    with pytest.raises(ValueError, match="input_neighbors.*X"):
        label_issue_scores(audit_of(net, what="t"), "input_neighbors")
    X_nan = X.copy()
    X_nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        label_issue_scores(audit_of(net, what="t", X=X_nan), "input_neighbors")
    text = np.array([f"row {i}" for i in range(len(y))], dtype=object)
    np.testing.assert_allclose(label_issue_scores(audit_of(net, what="t", X=text)), two)


def test_classifier_default_mixes_three_ranks_where_the_rows_are_known(noisy):
    from scipy.stats import rankdata

    audit = audit_of(noisy["net"], what="t", X=noisy["X"], y=noisy["y"])
    three = sum(rankdata(label_issue_scores(audit, s)) for s in
                ("lambda_mean", "neighbors", "input_neighbors")) / (3 * len(noisy["y"]))
    np.testing.assert_allclose(label_issue_scores(audit), three)
    assert roc_auc_score(_is_flipped(noisy), three) > 0.95
    # a net fitted without its embeddings kept: the multipliers alone
    net = noisy["net"]
    kept, net.train_embeddings_ = net.train_embeddings_, None
    try:
        np.testing.assert_allclose(label_issue_scores(audit), net.lambdas_mean_)
    finally:
        net.train_embeddings_ = kept


def test_wide_inputs_are_projected_before_the_neighbour_search():
    from modal_ally._neighbors import MAX_INPUT_DIMS, standardized_rows

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3 * MAX_INPUT_DIMS)).astype(np.float32) * rng.uniform(
        0.5, 5.0, 3 * MAX_INPUT_DIMS)
    X[:30] += 1.0  # two groups
    Z = standardized_rows(X, 60)
    assert Z.shape == (60, MAX_INPUT_DIMS)
    full = (X - X.mean(0)) / X.std(0)
    d_full = ((full[:, None] - full[None]) ** 2).sum(-1)[np.triu_indices(60, 1)]
    d_proj = ((Z[:, None] - Z[None]) ** 2).sum(-1)[np.triu_indices(60, 1)]
    assert np.quantile(np.abs(d_proj / d_full - 1), 0.99) < 0.2  # Johnson-Lindenstrauss
    nearest = np.argsort(((Z[:, None] - Z[None]) ** 2).sum(-1) + np.diag([np.inf] * 60), 1)
    assert ((nearest[:, 0] < 30) == (np.arange(60) < 30)).all()  # the groups are kept
    np.testing.assert_allclose(standardized_rows(X, 60), Z)  # seeded: the same each time
    np.testing.assert_allclose(standardized_rows(X[:, :5], 60), full[:, :5], rtol=1e-4,
                               atol=1e-5)


def test_neighbour_score_of_a_classifier_is_the_disagreeing_share(noisy):
    values = label_issue_scores(audit_of(noisy["net"], what="t"), "neighbors")
    assert set(np.round(values * 10).astype(int)) <= set(range(11))
    assert roc_auc_score(_is_flipped(noisy), values) > 0.8


def test_flagged_set_is_precise_on_planted_errors(noisy):
    flagged = find_label_issues(noisy["net"])
    is_flipped = _is_flipped(noisy)
    assert flagged.dtype == bool and flagged.shape == is_flipped.shape
    assert (flagged & is_flipped).sum() >= 0.7 * flagged.sum()
    assert (flagged & is_flipped).sum() >= 10
    manual = find_label_issues(noisy["net"], threshold=np.inf)
    assert not manual.any()


def test_outlier_flags_scale_with_the_losses_spread(noisy):
    from modal_ally.label_audit import auto_threshold, outlier_threshold

    net = noisy["net"]
    losses = average_losses(net)
    median = np.median(losses)
    spread = 3 * 1.4826 * np.median(np.abs(losses - median))
    expected = median + min(np.log(2), spread)
    assert outlier_threshold(losses, net) == pytest.approx(expected)
    assert outlier_threshold(losses, net) <= auto_threshold(losses, net)
    outliers = find_label_issues(net, threshold="outliers")
    np.testing.assert_array_equal(outliers, losses > expected)
    assert (outliers >= find_label_issues(net)).all()  # every "auto" flag is kept
    # losses compressed tenfold (a net that fits wrong labels fast): the spread's rows
    compressed = median + (losses - median) / 10
    np.testing.assert_array_equal(compressed > outlier_threshold(compressed, net),
                                  losses > median + spread)
    assert (losses > median + spread).sum() >= 10
    assert (compressed > auto_threshold(compressed, net)).sum() < 10


def test_dual_gain_closed_forms():
    from types import SimpleNamespace

    hard = SimpleNamespace(history=[{}] * 30, dual_lr=0.05, dual_lr_schedule="constant",
                           slack_cost=None)
    assert _dual_gain(hard) == pytest.approx(0.05 * 31 / 2)  # sum of eta s, averaged
    # with a slack cost: lambda_s = eta rho (1 - rho^s) / (1 - rho), rho = 1 / (1 + eta/a)
    leaky = SimpleNamespace(**{**vars(hard), "slack_cost": 0.1})
    rho = 1 / (1 + 0.05 / 0.1)
    s = np.arange(1, 31)
    assert _dual_gain(leaky) == pytest.approx(np.mean(0.05 * rho * (1 - rho ** s) / (1 - rho)))
    assert _dual_gain(leaky) < 0.1  # bounded by slack_cost per unit of violation


def test_average_losses_read_the_multipliers_back(noisy):
    net = noisy["net"]
    losses = average_losses(net)
    np.testing.assert_allclose(losses, net.epsilon_ + net.lambdas_mean_ / _dual_gain(net),
                               rtol=1e-6)
    assert losses[noisy["flipped"]].mean() > 2 * np.delete(losses, noisy["flipped"]).mean()


def test_learner_positions_and_pipeline(noisy):
    from modAL.models import ActiveLearner

    learner = ActiveLearner(estimator=noisy["net"], query_strategy=ally_query_strategy)
    learner.X_training, learner.y_training = noisy["X"], noisy["y"]  # fitted already
    direct = rank_label_issues(noisy["net"], top=10, X=noisy["X"], y=noisy["y"])
    via = rank_label_issues(learner, top=10)
    np.testing.assert_array_equal(direct[0], via[0])
    # without its rows a bare net ranks by its multipliers alone (no input neighbours)
    np.testing.assert_array_equal(rank_label_issues(noisy["net"], top=10)[0],
                                  rank_label_issues(learner, top=10,
                                                    score="lambda_mean")[0])
    learner.y_training = noisy["y"][:-1]
    with pytest.raises(ValueError, match="last fitted on 200"):
        rank_label_issues(learner)
    pipe = make_pipeline(StandardScaler(), PDCLNet(max_epochs=5, random_state=0))
    pipe.fit(noisy["X"], noisy["y"])
    assert rank_label_issues(pipe, top=3)[0].shape == (3,)


def test_class_normalized_score_needs_the_labels(noisy):
    with pytest.raises(ValueError, match="needs the labels"):
        rank_label_issues(noisy["net"], score="lambda_mean_class")
    assert rank_label_issues(noisy["net"], score="lambda_mean_class", y=noisy["y"],
                             top=5)[0].shape == (5,)
    assert DEFAULT_SCORE == "auto"


# ----------------------------------------------------------------------------- bad input
def test_unfitted_and_non_pdcl_estimators_are_refused(digits):
    with pytest.raises(NotFittedError):
        rank_label_issues(PDCLNet())
    plain = NeuralNetClassifier(MLP, module__input_dim=64, module__output_dim=10,
                                max_epochs=1, train_split=None)
    plain.fit(digits["X_train"], digits["y_train"])
    with pytest.raises(TypeError, match=r"PDCLNet\(module=MLP"):
        rank_label_issues(plain)
    with pytest.raises(TypeError, match="PDCLNet"):
        find_label_issues(object())


@pytest.mark.parametrize("top,error", [(0, ValueError), (-3, ValueError),
                                       (1.5, TypeError), (True, TypeError), ("5", TypeError)])
def test_bad_top(noisy, top, error):
    with pytest.raises(error, match="top"):
        rank_label_issues(noisy["net"], top=top)


def test_top_larger_than_the_labeled_set_warns(noisy):
    with pytest.warns(UserWarning, match="larger than the labeled set"):
        indices, _ = rank_label_issues(noisy["net"], top=1000)
    assert indices.shape == (len(noisy["y"]),)


@pytest.mark.parametrize("kwargs,match", [
    ({"score": "margin"}, "unknown score"), ({"threshold": "median"}, "unknown threshold"),
    ({"threshold": float("nan")}, "threshold must be")])
def test_bad_options(noisy, kwargs, match):
    call = find_label_issues if "threshold" in kwargs else rank_label_issues
    with pytest.raises(ValueError, match=match):
        call(noisy["net"], **kwargs)


# ----------------------------------------------------------------------------- relabel
class FailOnce(Callback):
    """Raises at the end of the second epoch while ``armed``."""

    armed = False

    def on_epoch_end(self, net, **kwargs):
        if FailOnce.armed and len(net.history) == 2:
            raise RuntimeError("injected failure in the refit")


@pytest.fixture
def learner(noisy):
    from modAL.models import ActiveLearner

    FailOnce.armed = False
    estimator = PDCLNet(max_epochs=20, random_state=0, callbacks=[("fail", FailOnce())])
    return ActiveLearner(estimator=estimator, query_strategy=ally_query_strategy,
                         X_training=noisy["X"], y_training=noisy["y"].copy())


def test_relabel_replaces_labels_keeps_the_old_ones_and_refits(learner, noisy):
    old_y, old_lambdas = learner.y_training, learner.estimator.lambdas_.copy()
    done = relabel(learner, lambda rows, positions: noisy["y_true"][positions],
                   n_instances=20)
    assert done.indices.shape == (20,) and np.all(np.diff(done.scores) <= 0)
    np.testing.assert_array_equal(done.previous, noisy["y"][done.indices])
    np.testing.assert_array_equal(learner.y_training[done.indices],
                                  noisy["y_true"][done.indices])
    assert learner.y_training is done.y and old_y is not done.y
    np.testing.assert_array_equal(old_y, noisy["y"])  # the old array is not written to
    assert done.changed.sum() == np.isin(done.indices, noisy["flipped"]).sum() >= 12
    assert not np.array_equal(learner.estimator.lambdas_, old_lambdas)  # refitted


def _assert_learner_unchanged(learner, before, y_before):
    assert learner.y_training is y_before
    np.testing.assert_array_equal(learner.y_training, y_before.copy())
    assert_unchanged(learner.estimator, before)


@pytest.mark.parametrize("annotator,error", [
    (lambda rows, positions: 1 / 0, ZeroDivisionError),
    (lambda rows, positions: np.zeros(len(positions) - 1, dtype=int), ValueError),
    (lambda rows, positions: [None] * len(positions), ValueError)],
    ids=["raises", "too-few-labels", "missing-labels"])
def test_relabel_failing_annotator_changes_nothing(learner, annotator, error):
    before, y_before = snapshot(learner.estimator), learner.y_training
    with pytest.raises(error):
        relabel(learner, annotator, n_instances=5)
    _assert_learner_unchanged(learner, before, y_before)


def test_relabel_failing_refit_changes_nothing(learner, noisy):
    before, y_before = snapshot(learner.estimator), learner.y_training
    FailOnce.armed = True
    try:
        with pytest.raises(RuntimeError, match="injected failure"):
            relabel(learner, lambda rows, positions: noisy["y_true"][positions], n_instances=5)
    finally:
        FailOnce.armed = False
    _assert_learner_unchanged(learner, before, y_before)


def test_relabel_failing_refit_restores_a_pipeline(noisy):
    FailOnce.armed = False
    pipe = make_pipeline(StandardScaler(), PDCLNet(max_epochs=5, random_state=0,
                                                   callbacks=[("fail", FailOnce())]))
    pipe.fit(noisy["X"] * 3 + 1, noisy["y"])
    scaler_mean = pipe[0].mean_
    before = snapshot(pipe[-1])
    FailOnce.armed = True
    try:
        with pytest.raises(RuntimeError, match="injected failure"):
            relabel(pipe, lambda rows, positions: np.zeros(len(positions), dtype=int),
                    indices=[0, 1], X=noisy["X"], y=noisy["y"])
    finally:
        FailOnce.armed = False
    assert pipe[0].mean_ is scaler_mean
    assert_unchanged(pipe[-1], before)


def test_relabel_a_bare_estimator_needs_its_labeled_set(noisy):
    net = PDCLNet(max_epochs=5, random_state=0).fit(noisy["X"], noisy["y"])
    with pytest.raises(ValueError, match="pass X= and y="):
        relabel(net, lambda rows, positions: positions)
    with pytest.raises(ValueError, match="last fitted on 200"):
        relabel(net, lambda rows, positions: positions, X=noisy["X"][:10], y=noisy["y"][:10])
    done = relabel(net, lambda rows, positions: noisy["y_true"][positions], indices=[3, 1],
                   X=noisy["X"], y=noisy["y"])
    np.testing.assert_array_equal(done.indices, [3, 1])
    assert done.scores is None


@pytest.mark.parametrize("indices,match", [([], "empty"), ([0, 0], "repeats"),
                                           ([500], "must lie in"), ([[1]], "1-d")])
def test_relabel_bad_indices(learner, indices, match):
    with pytest.raises((ValueError, TypeError), match=match):
        relabel(learner, lambda rows, positions: positions, indices=indices)


def test_relabel_refuses_a_second_labeled_set(learner, noisy):
    with pytest.raises(ValueError, match="do not pass X= or y="):
        relabel(learner, lambda rows, positions: positions, X=noisy["X"], y=noisy["y"])


# ----------------------------------------------------------------------------- modAL
@pytest.mark.slow
@pytest.mark.parametrize("release", ["0.4.1", "0.4.2.1"])
def test_both_modal_releases(release):
    if release == "0.4.2.1" and not (MODAL_0421 / "modAL").is_dir():
        pytest.fail(f"modAL-python 0.4.2.1 is missing from {MODAL_0421}: run `make test`")
    report = run_driver("label_audit_driver.py", MODAL_0421 if release != "0.4.1" else None)
    assert (str(MODAL_0421) in report["modal_file"]) == (release != "0.4.1")
    runs = [report["active"]] + ([report["deep"]] if release != "0.4.1" else [])
    assert release == "0.4.1" or "deep" in report
    for run in runs:
        assert run["hits"] >= 24 and run["relabeled"] >= 24 and run["n_lambdas"] == 300
    assert report["active"]["previous_kept"] and report["active"]["old_array_untouched"]
    assert report["active"]["y_training_updated"]


def test_tensor_labeled_set(noisy):
    X = torch.as_tensor(noisy["X"])
    net = PDCLNet(max_epochs=3, random_state=0).fit(X, noisy["y"])
    done = relabel(net, lambda rows, positions: noisy["y_true"][positions], n_instances=4,
                   X=X, y=noisy["y"])
    assert done.labels.shape == (4,)
