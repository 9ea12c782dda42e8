"""modAL 0.4.1 and 0.4.2.1 on the oldest and the newest scikit-learn we support, and a
failed ``teach`` that changes nothing (modal_ally.modal_patches).

Four subprocess runs of tests/compat_driver.py: modAL 0.4.1 (the venv's) or 0.4.2.1
(.venv/modal-0.4.2.1), each on the venv's scikit-learn (the newest: `make test`
upgrades it) and on the oldest one (.venv/sklearn-<floor of pyproject.toml>, installed
by `make test` without dependencies, so beside the venv's numpy 2 and scipy).
"""

import sys

import pytest

from tests.helpers import MODAL_0421, SKLEARN_OLD, SKLEARN_OLDEST, run_driver

COMBOS = [("0.4.1", "newest"), ("0.4.2.1", "newest"), ("0.4.1", "oldest"),
          ("0.4.2.1", "oldest")]

#: Every adversarial teach (and one learner.fit) of tests/compat_driver.py.
CASES = ["wrong_label_shape", "epsilon_wrong_length", "nan_in_X", "unknown_label",
         "label_of_another_type", "missing_label", "wrong_feature_count",
         "diverges_in_training", "unknown_fit_option", "only_new_epsilon",
         "learner_fit_epsilon", "pipeline_epsilon"]


def version(text):
    return tuple(int(part) for part in text.split(".")[:2])


@pytest.fixture(scope="module", params=COMBOS, ids=lambda c: f"modAL-{c[0]}-sklearn-{c[1]}")
def report(request):
    release, sklearn = request.param
    paths = []
    if sklearn == "oldest":
        if not (SKLEARN_OLD / "sklearn").is_dir():
            if sys.version_info >= (3, 13):
                pytest.skip(f"scikit-learn {SKLEARN_OLDEST} has no wheel for Python "
                            f"{sys.version_info[0]}.{sys.version_info[1]}")
            pytest.fail(f"scikit-learn {SKLEARN_OLDEST} is missing from {SKLEARN_OLD}: "
                        "run `make test`, which installs it there")
        paths.append(SKLEARN_OLD)
    if release == "0.4.2.1":
        if not (MODAL_0421 / "modAL").is_dir():
            pytest.fail(f"modAL-python 0.4.2.1 is missing from {MODAL_0421}: run `make test`")
        paths.append(MODAL_0421)
    result = run_driver("compat_driver.py", *paths)
    assert (str(MODAL_0421) in result["modal_file"]) == (release == "0.4.2.1")
    assert result["returns_scores"] == (release == "0.4.2.1")
    if sklearn == "oldest":
        assert result["sklearn"] == SKLEARN_OLDEST, result["sklearn_file"]
    else:
        assert version(result["sklearn"]) >= (1, 8), (
            f"the venv has scikit-learn {result['sklearn']}; `make test` installs the newest "
            "(remove .venv/.installed to reinstall)")
    result["combo"] = request.param
    return result


def test_patches_applied_exactly_where_needed(report):
    applied = report["applied"]
    assert ("check_X_y" in applied) == report["ensure_all_finite"]
    assert ("check_X_y" in applied) == (version(report["sklearn"]) >= (1, 6))
    assert ("data_vstack" in applied) == (version(report["pandas"]) >= (2, 0))
    assert "atomic_teach" in applied  # both releases append before they fit


def test_loop_queries_and_teaches_without_warnings(report):
    loop = report["loop"]
    assert loop["ok"], loop.get("traceback")
    assert loop["n_labeled"] == loop["lambdas"] == 80
    assert loop["finite_warnings"] == []  # no force_all_finite FutureWarning either


def test_dataframe_labeled_set_grows(report):
    frame = report["frame"]
    assert frame["ok"], frame.get("traceback")
    assert frame["type"] == "DataFrame" and frame["shape"] == [65, 64]
    assert frame["columns_kept"] and frame["rows_match"]


@pytest.mark.parametrize("case", CASES)
def test_failed_teach_changes_nothing(report, case):
    run = report["cases"][case]
    assert run["ok"], run.get("traceback")
    assert run["raised"], f"{case} did not raise"
    assert run["unchanged"], f"{case} changed {run['changed']}: {run['error']}"
    assert run["n_labeled_after_next_teach"] == 63  # and the next teach works


def test_the_two_issue_cases_name_their_cause(report):
    cases = report["cases"]
    assert "dimensions of the new training data and label" in cases["wrong_label_shape"]["error"]
    assert "epsilon has 60 values but X has 65 rows" in cases["epsilon_wrong_length"]["error"]
    assert "not among the classes" in cases["unknown_label"]["error"]
    assert "NaN" in cases["nan_in_X"]["error"]


def test_deep_active_learner_failed_teach(report):
    if report["combo"][0] == "0.4.1":
        assert report["deep"] is None  # no DeepActiveLearner in 0.4.1
        return
    for name, run in report["deep"].items():
        assert run["raised"] and run["unchanged"], (name, run)


def test_patches_revert_and_are_what_makes_teach_work(report):
    run = report["revert"]
    assert run["ok"], run.get("traceback")
    assert run["after_revert"] == [] and run["after_reapply"] == report["applied"]
    if version(report["sklearn"]) >= (1, 8):
        assert "force_all_finite" in run["unpatched_teach"]  # modAL alone fails here
    else:
        assert run["unpatched_teach"] == "ok"
