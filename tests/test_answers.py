"""Every answer kept: the Answers log, its consensus, and answers_of on a modAL learner."""

import numpy as np
import pytest

from modal_ally import Answers, answers_of


def test_one_answer_is_the_consensus_whatever_the_model_says():
    answers = Answers.from_labels(np.array([0, 1, 2]))
    proba = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(answers.consensus(proba, classes=[0, 1, 2]), [0, 1, 2])


def test_two_disagreeing_answers_the_model_decides():
    answers = Answers.from_labels(np.array([0, 1])).add([0, 1], [2, 2], annotator="b")
    favour_second = np.array([[0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])
    favour_first = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])
    np.testing.assert_array_equal(answers.consensus(favour_second, classes=[0, 1, 2]), [2, 2])
    np.testing.assert_array_equal(answers.consensus(favour_first, classes=[0, 1, 2]), [0, 1])
    # a class nobody answered cannot win, however sure the model is
    sure_of_one = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    assert answers.consensus(sure_of_one, classes=[0, 1, 2])[0] in (0, 2)


def test_three_answers_the_majority_wins_over_a_confident_model():
    answers = Answers.from_labels(np.array([3])).add([0, 0], [5, 3], annotator=["b", "c"])
    proba = np.zeros((1, 10))
    proba[0, 5], proba[0, 3] = 0.9, 0.05
    assert answers.consensus(proba, classes=np.arange(10))[0] == 3
    assert answers.settled()[0]


def test_annotator_quality_decides_between_two_people():
    # 30 rows answered by three people; "bad" is always wrong, so agreement downweights it
    truth = np.arange(30) % 4
    answers = Answers.empty().add(np.arange(30), truth, annotator="good1")
    answers = answers.add(np.arange(30), truth, annotator="good2")
    answers = answers.add(np.arange(30), (truth + 1) % 4, annotator="bad")
    answers = answers.add([30, 30], [2, 3], annotator=["good1", "bad"])
    accuracy = answers.annotator_accuracy()
    assert accuracy["good1"] > 0.9 > 0.2 > accuracy["bad"]
    assert answers.consensus(classes=np.arange(4))[30] == 2


def test_regression_consensus_is_the_median():
    answers = Answers.from_labels(np.array([1.0, 2.0, 3.0]), classification=False)
    answers = answers.add([0, 1, 1], [3.0, 10.0, 4.0])
    np.testing.assert_allclose(answers.consensus(), [2.0, 4.0, 3.0])


def test_add_keeps_every_answer_and_changes_nothing_in_place():
    answers = Answers.from_labels(np.array(["cat", "dog"]))
    more = answers.add([1], ["cat"], annotator="ann", round=3, when=100.0)
    assert answers.counts().tolist() == [1, 1] and more.counts().tolist() == [1, 2]
    assert more.of_row(1) == [
        {"label": "dog", "annotator": None, "time": more.times[1], "round": -1},
        {"label": "cat", "annotator": "ann", "time": 100.0, "round": 3}]
    table = more.table()
    assert list(table.columns) == ["row", "label", "annotator", "time", "round"]
    assert table.shape == (3, 5)


def test_bad_answers_are_refused():
    answers = Answers.from_labels(np.array([0, 1]))
    with pytest.raises(ValueError, match="expected 2 answers"):
        answers.add([0, 1], [1])
    with pytest.raises(ValueError, match="positions >= 0"):
        answers.add([-1], [1])
    with pytest.raises(ValueError, match="not one of the classes"):
        answers.add([0], [7]).consensus(classes=[0, 1])
    with pytest.raises(ValueError, match="probabilities must have shape"):
        answers.consensus(np.ones((3, 2)), classes=[0, 1])


class _Learner:
    def __init__(self, y):
        self.y_training = y


def test_answers_of_follows_teach_and_refuses_a_shrunk_labeled_set():
    learner = _Learner(np.array([0, 1]))
    assert answers_of(learner).counts().tolist() == [1, 1]
    learner.y_training = np.array([0, 1, 1])  # modAL's teach appends
    answers = answers_of(learner)
    assert answers.counts().tolist() == [1, 1, 1] and learner.answers_ is answers
    learner.y_training = np.array([0])
    with pytest.raises(ValueError, match="rows were removed"):
        answers_of(learner)
