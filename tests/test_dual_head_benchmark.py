"""benchmarks/research/dual_head.py and the gradient-cluster candidate run and report."""

import numpy as np
import pytest

from benchmarks.research import dual_head


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
    from benchmarks.harness.datasets import load_dataset

    data = load_dataset("diabetes", random_state=0)
    row = dual_head.measure(data, 0, 60, {"paper": dual_head.VARIANTS["paper"],
                                          "loss-mlp": dual_head.VARIANTS["loss-mlp"]})
    assert row["rho_paper"] == pytest.approx(row["rho_loss-mlp"])
    assert "rho_distance_to_labeled" in row and "rho_margin" not in row


def test_gradient_cluster_candidate_returns_unique_picks(fitted_net, digits):
    from benchmarks.research.ally_candidates import ally_gradient_clusters

    picks = ally_gradient_clusters(fitted_net, digits["X_pool"], 30, random_state=0)
    picks = np.asarray(picks[0] if isinstance(picks, tuple) else picks)
    assert picks.shape == (30,) and np.unique(picks).shape == (30,)
    seeds = ally_gradient_clusters(fitted_net, digits["X_pool"], 30, random_state=0,
                                   weight="none")
    seeds = np.asarray(seeds[0] if isinstance(seeds, tuple) else seeds)
    assert not np.array_equal(np.sort(picks), np.sort(seeds))


def test_restart_dual_step_zeroes_the_rows_whose_constraint_is_met():
    import torch

    from benchmarks.research.dual_update import RestartDualState

    state = RestartDualState(np.array([0.5, 0.5, 0.5], dtype=np.float32),
                             np.full(3, 0.2, dtype=np.float32), "cpu")
    state.step(torch.tensor([0, 2]), torch.tensor([0.1, 0.7]), 0.5)
    # row 0 met its constraint: restarted; row 2 ascended; row 1 untouched
    assert state.lambdas.tolist() == pytest.approx([0.0, 0.5, 0.75])


@pytest.mark.filterwarnings("ignore:every dual variable:UserWarning")
def test_dual_update_option_fits_the_nets_with_restarts(tmp_path):
    from modal_ally import _pdcl

    original = _pdcl.DualState
    result = dual_head.main(["--tasks", "digits", "--seeds", "1", "--sizes", "60",
                             "--variants", "paper", "--dual-update", "restart",
                             "--out", str(tmp_path)])
    assert _pdcl.DualState is original  # the package's dual step is put back
    restarted = result["pool"]["active_fraction"].iloc[0]
    plain = dual_head.main(["--tasks", "digits", "--seeds", "1", "--sizes", "60",
                            "--variants", "paper", "--out", str(tmp_path / "plain")])
    # with restarts only the rows violated at their last step keep a multiplier
    assert restarted < plain["pool"]["active_fraction"].iloc[0]
    assert "--dual-update restart" in (tmp_path / "dual_head.md").read_text()


def test_reweighted_candidate_with_shrink_is_the_default_rule(fitted_net, digits):
    from benchmarks.research.ally_candidates import ally_reweighted
    from modal_ally import ally_query_strategy

    def picks(result):
        return np.asarray(result[0] if isinstance(result, tuple) else result)

    # the screen's candidates read the probabilities as they are: the default rule at
    # temperature 1, as it was when they were screened
    default = picks(ally_query_strategy(fitted_net, digits["X_pool"], 30, random_state=4,
                                        temperature=1.0))
    same = picks(ally_reweighted(fitted_net, digits["X_pool"], 30, random_state=4,
                                 shrink=True))
    raw = picks(ally_reweighted(fitted_net, digits["X_pool"], 30, random_state=4))
    np.testing.assert_array_equal(default, same)
    assert np.unique(raw).shape == (30,) and not np.array_equal(raw, default)


def test_layer_features_stack_every_hidden_layer(fitted_net, digits):
    import torch

    X = digits["X_pool"][:7]
    mode = fitted_net.module_.training
    features = dual_head.layer_features(fitted_net, X)
    widths = [m.out_features for m in fitted_net.module_.backbone
              if isinstance(m, torch.nn.Linear)]
    assert features.shape == (7, sum(widths))
    # the last block is the embedding itself
    np.testing.assert_allclose(features[:, -widths[-1]:].numpy(), fitted_net.embed(X),
                               rtol=1e-5, atol=1e-6)
    assert fitted_net.module_.training is mode  # the module's mode is put back


@pytest.mark.filterwarnings("ignore:every dual variable:UserWarning")
def test_layer_variants_are_scored(tmp_path):
    result = dual_head.main(["--tasks", "digits", "--seeds", "1", "--sizes", "60",
                             "--variants", "layers,loss-mlp-layers", "--out",
                             str(tmp_path)])
    pool = result["pool"]
    for name in ("layers", "loss-mlp-layers"):
        assert -1 <= pool[f"rho_{name}"].iloc[0] <= 1


def test_direction_candidates(fitted_net, fitted_regressor, digits, diabetes):
    from benchmarks.research.ally_candidates import _unit_rows, ally_reweighted

    def picks(result):
        return np.asarray(result[0] if isinstance(result, tuple) else result)

    import torch

    rows = _unit_rows(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(rows.numpy(), [[0.6, 0.8], [0.0, 0.0]])
    for directions in (True, "output"):
        got = picks(ally_reweighted(fitted_net, digits["X_pool"], 30, random_state=2,
                                    directions=directions))
        assert np.unique(got).shape == (30,)
    # a regressor's output factor is the same for every row: scaling it to norm 1 leaves
    # the default's geometry, so the picks are those of the same weights without it
    pool = diabetes[2]
    same = picks(ally_reweighted(fitted_regressor, pool, 20, random_state=2,
                                 directions="output"))
    plain = picks(ally_reweighted(fitted_regressor, pool, 20, random_state=2))
    np.testing.assert_array_equal(same, plain)
