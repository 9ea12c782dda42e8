"""One priority for a new label or a second opinion: plan_second_opinions and next_annotations."""

import numpy as np
import pytest
from modAL.models import ActiveLearner
from sklearn.exceptions import NotFittedError

from modal_ally import (
    Answers,
    PDCLNet,
    ally_query_strategy,
    answers_of,
    next_annotations,
    relabel,
)
from modal_ally.second_opinions import plan_second_opinions
from tests.helpers import MODAL_0421, run_driver


def _answers(n, extra=()):
    answers = Answers.from_labels(np.zeros(n, dtype=int))
    for rows, labels in extra:
        answers = answers.add(rows, labels, annotator="b")
    return answers


def test_clean_labels_no_flag_no_second_opinion():
    plan = plan_second_opinions(_answers(100), np.zeros(100, bool), np.zeros(100), 10)
    assert plan.positions.size == 0 and plan.error_rate == 0


def test_flagged_rows_are_asked_until_the_answers_say_they_were_right():
    flags = np.zeros(100, bool)
    flags[[4, 9, 2]] = True
    scores = np.arange(100, dtype=float)
    plan = plan_second_opinions(_answers(100), flags, scores, 10)
    np.testing.assert_array_equal(plan.positions, [9, 4, 2])  # most suspect first
    assert plan.value_second > plan.value_new
    # five rows asked twice, every second answer agreed: the flags are not trusted any more
    agreed = _answers(100, [([10, 11, 12, 13, 14], [0] * 5)])
    plan = plan_second_opinions(agreed, flags, scores, 10)
    assert plan.positions.size == 0 and plan.value_second < plan.value_new
    # they disagreed: the five tied rows get a third answer first, then the flagged rows
    disagreed = _answers(100, [([10, 11, 12, 13, 14], [1] * 5)])
    np.testing.assert_array_equal(plan_second_opinions(disagreed, flags, scores, 10).positions,
                                  [14, 13, 12, 11, 10, 9, 4, 2])


def test_counting_the_third_answer_a_tie_needs():
    flags = np.zeros(100, bool)
    flags[[4, 9, 2]] = True  # r = 0.03: a new row is worth 0.94
    plain = plan_second_opinions(_answers(100), flags, np.zeros(100), 10)
    counted = plan_second_opinions(_answers(100), flags, np.zeros(100), 10, count_ties=True)
    # the prior d = 0.75: 2 w (1 - r) = 1.44 for a second opinion, which takes 1.75 answers
    assert plain.value_second == pytest.approx(2 * (0.75 - 0.03))
    assert counted.value_second == pytest.approx(plain.value_second / 1.75)
    assert counted.value_new == plain.value_new == pytest.approx(0.94)
    assert plain.positions.size == 3 and counted.positions.size == 0


def test_ties_come_first_and_n_instances_caps():
    answers = _answers(50, [([7, 8], [1, 1])])  # rows 7 and 8: one 0, one 1, tied
    flags = np.zeros(50, bool)
    flags[:20] = True
    plan = plan_second_opinions(answers, flags, np.zeros(50), 5)
    np.testing.assert_array_equal(plan.positions[:2], [7, 8])
    assert plan.positions.size == 5 and len(set(plan.positions.tolist())) == 5


def test_valued_ties_are_asked_only_when_a_third_answer_beats_a_new_row():
    answers = _answers(50, [([7, 8], [1, 1])])  # rows 7 and 8 tied
    low, high = np.zeros(50, bool), np.zeros(50, bool)
    low[[20]] = True  # r = 1/48: the flagged rows' second answers decide (c near 1)
    high[20:40] = True  # r = 20/48 = 0.42: new rows are worth little
    for flags, asked in ((low, False), (high, True)):
        plan = plan_second_opinions(answers, flags, np.zeros(50), 5, value_ties=True)
        r, w = plan.error_rate, plan.wrong_share
        c = w * (1 - r) / (w * (1 - r) + (1 - w) * r)
        assert (2 * (1 - r) * (1 - max(c, 1 - c)) > plan.value_new) is asked
        assert ({7, 8} <= set(plan.positions.tolist())) is asked
        default = plan_second_opinions(answers, flags, np.zeros(50), 5)
        np.testing.assert_array_equal(default.positions[:2], [7, 8])  # asked regardless


def _digits_learner(digits, y, **params):
    return ActiveLearner(PDCLNet(max_epochs=25, random_state=0, **params), ally_query_strategy,
                         X_training=digits["X_train"], y_training=y)


def test_clean_loop_spends_almost_nothing_on_second_opinions(digits):
    learner = _digits_learner(digits, digits["y_train"])
    X_pool, y_pool = digits["X_pool"], digits["y_pool"]
    pool, spent, last = np.arange(len(y_pool)), 0, None
    for round_ in range(4):
        picks, positions = next_annotations(learner, X_pool[pool], 40, random_state=round_)
        assert len(picks) + len(positions) == 40
        spent, last = spent + len(positions), len(positions)
        if len(positions):
            relabel(learner, lambda rows, p: np.asarray(learner.y_training)[p],
                    indices=positions)
        learner.teach(X_pool[pool[picks]], y_pool[pool[picks]])
        pool = np.delete(pool, picks)
    assert spent <= 0.05 * 160 and last == 0


def test_planted_noise_is_found_and_repaired(digits):
    rng = np.random.default_rng(3)
    y_true = digits["y_train"]
    wrong = rng.random(len(y_true)) < 0.2
    noisy = np.where(wrong, (y_true + rng.integers(1, 10, len(y_true))) % 10, y_true)
    learner = _digits_learner(digits, noisy)
    picks, positions = next_annotations(learner, digits["X_pool"], 60, random_state=0)
    assert len(picks) + len(positions) == 60
    assert wrong[positions].mean() >= 0.8 and wrong[positions].sum() >= 0.6 * wrong.sum()
    relabel(learner, lambda rows, p: y_true[p], indices=positions, annotator_id="expert")
    after = np.asarray(learner.y_training)
    assert (after != y_true).sum() <= 0.5 * wrong.sum()
    answers = answers_of(learner)
    assert answers.rows.size == len(y_true) + len(positions)  # every answer kept
    assert {a["annotator"] for a in answers.of_row(int(positions[0]))} == {None, "expert"}


def test_a_regressor_gets_second_opinions_on_replaced_targets(diabetes):
    from modal_ally import PDCLRegressor

    X, y, X_pool, _ = diabetes
    rng = np.random.default_rng(0)
    replaced = rng.random(len(y)) < 0.2
    noisy = np.where(replaced, rng.permutation(y), y)
    learner = ActiveLearner(PDCLRegressor(max_epochs=25, random_state=0), ally_query_strategy,
                            X_training=X, y_training=noisy)
    picks, positions = next_annotations(learner, X_pool, 20, random_state=0)
    assert len(picks) + len(positions) == 20 and len(set(positions.tolist())) == len(positions)
    if len(positions):
        relabel(learner, lambda rows, p: y[p], indices=positions)
        np.testing.assert_allclose(np.asarray(learner.y_training)[positions],
                                   (noisy[positions] + y[positions]) / 2)  # two: their mean


def test_bad_input(digits):
    learner = _digits_learner(digits, digits["y_train"])
    with pytest.raises(ValueError, match="n_instances"):
        next_annotations(learner, digits["X_pool"], 0)
    unfitted = ActiveLearner(PDCLNet(), ally_query_strategy)
    with pytest.raises(NotFittedError):
        next_annotations(unfitted, digits["X_pool"], 5)


def test_modal_uncertainty_strategies_pick_the_new_rows(digits):
    """modAL's margin_sampling passes its **kwargs on to predict_proba: no random_state."""
    from modAL.uncertainty import margin_sampling

    learner = ActiveLearner(PDCLNet(max_epochs=5, random_state=0), margin_sampling,
                            X_training=digits["X_train"], y_training=digits["y_train"])
    picks, positions = next_annotations(learner, digits["X_pool"], 12, random_state=0)
    assert len(picks) + len(positions) == 12
    margins = np.diff(np.sort(learner.predict_proba(digits["X_pool"]), axis=1)[:, -2:])[:, 0]
    assert margins[picks].max() <= np.sort(margins)[len(picks) - 1] + 1e-12


@pytest.mark.parametrize("release", ["0.4.1", "0.4.2.1"])
def test_both_modal_releases(release):
    report = run_driver("second_opinion_driver.py",
                        *([MODAL_0421] if release != "0.4.1" else []))
    assert report["returns_scores"] == (release != "0.4.1")
    active = report["active"]
    for round_ in active["rounds"]:
        assert round_["n_pool"] + round_["n_second"] == 30 and round_["pool_unique"]
        assert round_["dtypes"] == ["int64", "int64"]
    assert active["rounds"][0]["n_second"] >= 10
    assert active["rounds"][0]["wrong_asked"] >= 0.8 * active["rounds"][0]["n_second"]
    assert active["wrong_after_initial"] < 0.5 * active["wrong_before"]
    assert active["n_answers"] == active["n_labeled"] + sum(
        r["n_second"] for r in active["rounds"])
    if release != "0.4.1":
        assert report["deep"]["n_pool"] + report["deep"]["n_second"] == 30


def test_the_neighbour_prior_counts_the_nearest_labeled_rows_labels(digits):
    from sklearn.neighbors import NearestNeighbors

    from modal_ally.label_audit import audit_of
    from modal_ally.relabeling import _prior_of

    learner = _digits_learner(digits, digits["y_train"])
    audit = audit_of(learner, what="relabel")
    rows = np.array([5, 0, 17])
    prior = _prior_of(audit, "neighbors")(rows)
    E = learner.estimator.train_embeddings_
    near = NearestNeighbors(n_neighbors=11).fit(E).kneighbors(E[rows])[1][:, 1:]
    counts = np.stack([np.bincount(digits["y_train"][n], minlength=10) for n in near])
    expected = (counts + learner.estimator.predict_proba(digits["X_train"][rows])) / 11
    np.testing.assert_allclose(prior, expected, atol=1e-6)
    np.testing.assert_allclose(_prior_of(audit, "model")(rows),
                               learner.estimator.predict_proba(digits["X_train"][rows]))
    # a tie goes to the label the row's neighbours carry, whatever the net fitted
    row = 5
    others = np.flatnonzero(counts[0] == 0)
    neighbours_label = int(np.argmax(counts[0]))
    assert counts[0][neighbours_label] >= 6 and others.size
    y = np.array(digits["y_train"], copy=True)
    y[row] = others[0]  # the first answer: a label none of its neighbours has
    learner = _digits_learner(digits, y)
    relabel(learner, lambda X, p: np.full(len(p), neighbours_label), indices=[row],
            consensus_prior="neighbors")
    assert np.asarray(learner.y_training)[row] == neighbours_label
    with pytest.raises(ValueError, match="consensus_prior"):
        relabel(learner, lambda X, p: y[p], indices=[row], consensus_prior="votes")
