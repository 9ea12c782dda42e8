"""Both modAL releases drive every strategy through ActiveLearner.query/teach.

modAL-python 0.4.1 (what pip installs beside skorch>=1.0) and 0.4.2.1 (installed by
`make test` into .venv/modal-0.4.2.1 without its skorch==0.9.0 pin) disagree on what a
strategy returns; modal_ally must give each the right shape for n_instances 1, 2 and 3.
"""

import pytest

from tests.helpers import MODAL_0421, run_driver


@pytest.fixture(scope="module", params=["0.4.1", "0.4.2.1"])
def report(request):
    if request.param == "0.4.2.1":
        if not (MODAL_0421 / "modAL").is_dir():
            pytest.fail(f"modAL-python 0.4.2.1 is missing from {MODAL_0421}: run `make test`, "
                        "which installs it there (without its skorch==0.9.0 pin)")
        result = run_driver("modal_driver.py", MODAL_0421)
        assert str(MODAL_0421) in result["modal_file"]
        assert result["returns_scores"] is True
    else:
        result = run_driver("modal_driver.py")
        assert result["returns_scores"] is False
    result["release"] = request.param
    return result


def test_every_strategy_returns_exactly_n_unique_indices(report):
    for run in report["runs"]:
        indices = run["indices"]
        assert len(indices) == run["n_instances"], run
        assert len(set(indices)) == len(indices), run
        assert all(0 <= i < 320 for i in indices), run
        assert run["rows_match"], run


def test_no_deprecation_warning_and_teach_works(report):
    assert not any(run["deprecation"] for run in report["runs"])
    taught = [run for run in report["runs"] if "n_labeled_after_teach" in run]
    assert taught and all(run["n_labeled_after_teach"] == 83 for run in taught)
    assert {run["strategy"] for run in taught} >= {"ally", "ally-redundancy"}


def test_deep_active_learner(report):
    deep = [run for run in report["runs"] if run["learner"] == "DeepActiveLearner"]
    if report["release"] == "0.4.1":
        assert not deep  # 0.4.1 has no DeepActiveLearner
        return
    assert [run["n_instances"] for run in deep] == [1, 2, 3]
    assert report["deep_lambdas"] == 83
