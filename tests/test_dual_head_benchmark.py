"""benchmarks/dual_head.py and the gradient-cluster candidate run and report."""

import numpy as np
import pytest

from benchmarks import dual_head


@pytest.mark.filterwarnings("ignore:every dual variable:UserWarning")
def test_dual_head_benchmark_scores_every_variant(tmp_path):
    result = dual_head.main(["--tasks", "digits", "--seeds", "1", "--sizes", "60",
                             "--variants", "paper,loss-mlp,class", "--own",
                             "--own-sizes", "60", "--own-points", "4", "--out",
                             str(tmp_path)])
    pool, own = result["pool"], result["own"]
    for name in ("paper", "loss-mlp", "class", "margin", "entropy", "gradnorm"):
        assert -1 <= pool[f"rho_{name}"].iloc[0] <= 1
    assert own["n_points"].iloc[0] == 4
    assert {"last_loss-mlp", "mean_loss-mlp", "last_margin"} <= set(own.columns)
    text = (tmp_path / "dual_head.md").read_text()
    assert "| digits | 60 | 1 |" in text and "loss-mlp" in text
    assert (tmp_path / "own.md").exists()


def test_dual_head_benchmark_rejects_unknown_variants(tmp_path, capsys):
    with pytest.raises(SystemExit):
        dual_head.main(["--variants", "paper,nope", "--out", str(tmp_path)])
    assert "nope" in capsys.readouterr().err


def test_regression_variants_fall_back_to_the_plain_head(diabetes):
    from benchmarks.datasets import load_dataset

    data = load_dataset("diabetes", random_state=0)
    row = dual_head.measure(data, 0, 60, {"paper": dual_head.VARIANTS["paper"],
                                          "loss-mlp": dual_head.VARIANTS["loss-mlp"]})
    assert row["rho_paper"] == pytest.approx(row["rho_loss-mlp"])
    assert "rho_distance_to_labeled" in row and "rho_margin" not in row


def test_gradient_cluster_candidate_returns_unique_picks(fitted_net, digits):
    from benchmarks.ally_candidates import ally_gradient_clusters

    picks = ally_gradient_clusters(fitted_net, digits["X_pool"], 30, random_state=0)
    picks = np.asarray(picks[0] if isinstance(picks, tuple) else picks)
    assert picks.shape == (30,) and np.unique(picks).shape == (30,)
    seeds = ally_gradient_clusters(fitted_net, digits["X_pool"], 30, random_state=0,
                                   weight="none")
    seeds = np.asarray(seeds[0] if isinstance(seeds, tuple) else seeds)
    assert not np.array_equal(np.sort(picks), np.sort(seeds))
