"""The label-audit and noisy-oracle benchmarks: planted noise, and tiny runs of both
scripts (digits and breast cancer, a few epochs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import label_audit, noisy_oracle
from benchmarks.harness.label_noise import confusable_partners, corrupt, flip


def test_corrupt_plants_exactly_the_rate():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = np.repeat(np.arange(4), 50)
    for kind in ("symmetric", "pairs"):
        noisy, mask = corrupt(X, y, 0.2, kind, np.random.default_rng(1), n_classes=4)
        assert mask.sum() == 40 and np.all(noisy[mask] != y[mask])
        np.testing.assert_array_equal(noisy[~mask], y[~mask])
    again, _ = corrupt(X, y, 0.2, "pairs", np.random.default_rng(1), n_classes=4)
    np.testing.assert_array_equal(noisy, again)  # seeded


def test_confusable_partner_is_the_nearest_centroid():
    X = np.array([[0.0], [0.1], [1.0], [1.1], [5.0], [5.1]])
    y = np.array([0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(confusable_partners(X, y, 3), [1, 0, 1])


def test_replaced_targets_come_from_other_rows():
    y = np.arange(100, dtype=float)
    noisy = flip(y, np.arange(10), "replaced", np.random.default_rng(0))
    assert set(noisy[:10]) <= set(y) and np.array_equal(noisy[10:], y[10:])
    with pytest.raises(ValueError, match="unknown noise kind"):
        flip(y, [1], "swap", np.random.default_rng(0))


def test_oracle_errs_at_its_rate_and_answers_anew():
    y = np.repeat(np.arange(10), 500)
    first, second = noisy_oracle.oracle_answers(y, 10, 0.2, seed=0)
    assert abs((first != y).mean() - 0.2) < 0.02 and abs((second != y).mean() - 0.2) < 0.02
    assert ((first != y) & (second != y)).mean() < 0.06  # independent draws
    again, _ = noisy_oracle.oracle_answers(y, 10, 0.2, seed=0)
    np.testing.assert_array_equal(first, again)


def test_the_report_pairs_each_configuration_with_the_earlier_run():
    from benchmarks.harness.label_audit_report import earlier_table

    def row(seed, rate, auroc, flagged, key="auroc:pdcl:auto"):
        return {"task": "digits", "kind": "symmetric", "rate": rate, "seed": seed,
                "epochs": 50, "flagged:package": flagged, "auroc:5-fold": 0.9,
                **({key: auroc} if rate else {})}

    now = [row(0, 0.2, 0.98, 10), row(1, 0.2, 0.95, 12), row(2, 0.2, 0.99, 9),
           row(0, 0.0, None, 3)]
    earlier = [row(0, 0.2, 0.97, 11, "auroc:pdcl:lambda_mean"),  # a row before "auto"
               row(1, 0.2, 0.96, 12, "auroc:pdcl:lambda_mean"), row(0, 0.0, None, 5)]
    lines = earlier_table(now, earlier)
    noisy = next(line for line in lines if "| 20% |" in line)
    # seed 2 has no earlier run: two pairs, +0.01 and -0.01
    assert "| 2 |" in noisy and "+0.0000 ± 0.0141 (1/2)" in noisy
    assert noisy.endswith("| 11.0 / 11.5 |")
    clean = next(line for line in lines if "| 0% |" in line)
    assert clean.endswith("| 3.0 / 5.0 |")


def test_the_report_reads_the_default_score_each_row_measured():
    from benchmarks.harness.label_audit_report import package_score

    now = [{"auroc:pdcl:auto": 0.7}, {"auroc:pdcl:auto": 0.8}]
    assert package_score("diabetes", "auto", now) == "auto"
    before = [{"auroc:pdcl:lambda_mean": 0.7}]  # written before "auto" existed
    assert package_score("diabetes", "auto", before) == "lambda_mean+neighbors"
    assert package_score("digits", "auto", before) == "lambda_mean"
    assert package_score("digits", "neighbors", now) == "neighbors"


@pytest.mark.slow
def test_label_audit_script_runs_and_reports(tmp_path):
    label_audit.main(["--tasks", "breast_cancer", "--rates", "0,0.2", "--seeds", "1",
                      "--kinds", "symmetric", "--epochs", "5", "--out", str(tmp_path)])
    rows = label_audit.read_rows(tmp_path / "rows.jsonl")
    assert [r["rate"] for r in rows] == [0.0, 0.2]
    noisy = rows[1]
    assert noisy["fits:pdcl:lambda_mean"] == 1 and noisy["fits:5-fold"] == 5
    assert 0 <= noisy["auroc:pdcl:lambda_mean"] <= 1 and 0 <= noisy["auroc:5-fold"] <= 1
    assert "flagged:package" in rows[0] and "auroc:pdcl:lambda" not in rows[0]
    text = (tmp_path / "summary.md").read_text()
    assert "breast_cancer" in text and "package - 5-fold" in text
    label_audit.main(["--tasks", "breast_cancer", "--rates", "0,0.2", "--seeds", "1",
                      "--kinds", "symmetric", "--epochs", "5", "--out", str(tmp_path)])
    assert len(label_audit.read_rows(tmp_path / "rows.jsonl")) == 2  # resumed, not rerun


@pytest.mark.slow
def test_noisy_oracle_script_spends_the_same_annotations(tmp_path):
    arms = ("ALLY 0.1 + audit 20 %,ALLY + second opinions,margin + cleanlab,margin,"
            "ALLY + second opinions (ties counted),ALLY + second opinions (ties valued)")
    noisy_oracle.main(["--dataset", "digits", "--seeds", "1", "--rounds", "2",
                       "--initial", "30", "--budget", "10", "--epochs", "2",
                       "--noise", "symmetric:0.2,panel", "--arms", arms, "--no-progress",
                       "--out", str(tmp_path)])
    curves = [json.loads(line) for line in (tmp_path / "curves.jsonl").read_text().split("\n")
              if line]
    assert {c["arm"] for c in curves} == set(arms.split(","))
    assert {c["noise"] for c in curves} == {"symmetric:0.2", "panel"}
    for curve in curves:
        assert [r["annotations"] for r in curve["rows"]] == [30, 40, 50]
    by_arm = {(c["arm"], c["noise"]): c for c in curves}
    audited = by_arm[("ALLY 0.1 + audit 20 %", "symmetric:0.2")]
    assert sum(r["second_opinions"] for r in audited["rows"]) == 4  # 20 % of two rounds of 10
    for noise in ("symmetric:0.2", "panel"):  # cleanlab spends ALLY's share, round by round
        ally = [r["second_opinions"] for r in by_arm[("ALLY + second opinions", noise)]["rows"]]
        clean = [r["second_opinions"] for r in by_arm[("margin + cleanlab", noise)]["rows"]]
        assert all(c <= a for c, a in zip(clean, ally))
    assert (tmp_path / "noise_symmetric_0.2" / "paired.md").exists()
    assert "second opinions" in (tmp_path / "summary.md").read_text()


def test_oracle_panel_and_pairs():
    from benchmarks.harness.label_noise import Oracle

    y = np.repeat(np.arange(4), 300)
    X = y[:, None] + np.zeros((1200, 2))
    panel = Oracle(X, y, "panel", seed=0, n_classes=4)
    labels, who = panel.answer(np.arange(1200), np.zeros(1200))
    for name, rate in (("a0", 0.05), ("a1", 0.15), ("a2", 0.35)):
        assert abs((labels[who == name] != y[who == name]).mean() - rate) < 0.06
    again, who2 = panel.answer(np.arange(1200), np.ones(1200))
    assert (who2 != who).all()  # a second opinion comes from another person
    pairs = Oracle(X, y, "pairs:0.3", seed=0, n_classes=4)
    wrong = pairs.answer(np.arange(1200), np.zeros(1200))[0]
    partners = {int(c): set(wrong[(y == c) & (wrong != y)].tolist()) for c in range(4)}
    assert all(len(v) == 1 for v in partners.values())  # always the confusable partner
    with pytest.raises(ValueError, match="unknown noise kind"):
        Oracle(X, y, "swap:0.1", seed=0, n_classes=4)


@pytest.mark.parametrize("name", ["ClippedPoolHeadNet", "DroppedPoolHeadNet"])
def test_the_screens_pool_head_discounts_the_audits_suspects(name, digits, monkeypatch):
    from benchmarks.harness import pool_head_targets
    from modal_ally import PDCLNet
    from modal_ally.label_audit import _dual_gain, auto_threshold, average_losses

    seen = {}

    def record(net, embeddings, targets, y):
        seen.update(targets=targets.numpy().copy(), y=np.asarray(y))

    monkeypatch.setattr(PDCLNet, "_fit_pool_dual_head", record)
    X, y = digits["X_train"], digits["y_train"].copy()
    y[:40] = (y[:40] + 3) % 10  # planted errors: the audit flags rows
    net = getattr(pool_head_targets, name)(max_epochs=20, random_state=0).fit(X, y)
    losses = average_losses(net)
    threshold = auto_threshold(losses, net)
    flagged = losses > threshold
    assert flagged.sum() >= 10
    if name == "ClippedPoolHeadNet":
        cap = _dual_gain(net) * (threshold - float(np.asarray(net.epsilon_).ravel()[0]))
        assert seen["targets"].size == len(y) and seen["targets"].max() <= cap * (1 + 1e-6)
        assert net.lambdas_mean_.max() > cap  # the multipliers themselves are untouched
    else:
        assert seen["targets"].size == (~flagged).sum()
        np.testing.assert_array_equal(seen["y"], y[~flagged])


def test_the_capped_screen_keeps_every_multiplier_under_its_cap(digits):
    from benchmarks.harness.training_screens import CappedMultiplierNet
    from modal_ally import PDCLNet

    X, y = digits["X_train"], digits["y_train"].copy()
    y[:40] = (y[:40] + 3) % 10  # planted errors: rows the net cannot fit
    capped = CappedMultiplierNet(max_epochs=20, random_state=0).fit(X, y)
    free = PDCLNet(max_epochs=20, random_state=0).fit(X, y)
    cap = capped.slack_cost * np.log(2.0)
    assert capped.lambdas_.max() <= cap * (1 + 1e-6)
    assert capped.lambdas_mean_.max() <= cap * (1 + 1e-6)
    assert free.lambdas_mean_.max() > cap  # the default's wrong labels weigh more
    assert free.lambdas_mean_[:40].mean() > capped.lambdas_mean_[:40].mean()


def test_the_released_screen_drops_the_suspects_constraints_until_relabeled(digits):
    from benchmarks.harness.training_screens import SuspectsReleasedNet
    from modal_ally.label_audit import auto_threshold, average_losses

    X, y = digits["X_train"][:600], digits["y_train"][:600].copy()
    y[:40] = (y[:40] + 3) % 10
    net = SuspectsReleasedNet(max_epochs=20, random_state=0).fit(X[:500], y[:500])
    assert net.released_.numel() == 0 and net.lambdas_mean_[:40].max() > 0
    losses = average_losses(net)
    flagged = np.flatnonzero(losses > auto_threshold(losses, net))
    assert flagged.size >= 10 and np.isin(flagged, np.arange(40)).mean() > 0.8
    kept = y.copy()
    kept[flagged[1]] = (y[flagged[1]] + 1) % 10  # a second opinion changed one label
    net.fit(X, kept)  # and the learner appended 100 rows
    released = set(net.released_.tolist())
    assert set(flagged.tolist()) - {int(flagged[1])} == released
    assert np.all(net.lambdas_[net.released_.numpy()] == 0)
    assert np.all(net.lambdas_mean_[net.released_.numpy()] == 0)
    net.fit(X, kept)  # released rows stay released, though their multipliers read 0
    assert released <= set(net.released_.tolist())
    import torch

    before = net.released_.clone()
    bad = np.vstack([X, np.full((1, X.shape[1]), np.nan, dtype=X.dtype)])
    with pytest.raises(ValueError):  # a NaN row: the failed fit changes nothing
        net.fit(bad, np.append(kept, 0))
    assert torch.equal(net.released_, before)


@pytest.mark.parametrize("name, strategy", [("margin (PDCL net)", "margin"),
                                            ("BADGE (PDCL net)", "badge")])
def test_the_screens_run_margin_and_badge_on_the_pdcl_net(name, strategy):
    from benchmarks.harness import registry
    from benchmarks.harness.datasets import load_dataset
    from benchmarks.harness.estimators import PlainNetClassifier, build_estimator
    from modal_ally import PDCLNet

    data = load_dataset("digits", random_state=0)
    picked, params, policy = noisy_oracle.ARMS[name]
    assert (picked, policy) == (strategy, "none")
    net = build_estimator(registry.Arm(name, strategy), data, epochs=1, seed=0, **params)
    assert type(net) is PDCLNet and net.slack_cost == PDCLNet().slack_cost
    plain = build_estimator(registry.Arm(strategy, strategy), data, epochs=1, seed=0)
    assert isinstance(plain, PlainNetClassifier) and not isinstance(plain, PDCLNet)


@pytest.mark.parametrize("name, cost, policy", [
    ("ALLY slack cost 0.01", 0.01, "none"), ("ALLY slack cost 0.03", 0.03, "none"),
    ("ALLY + second opinions (slack cost 0.01)", 0.01, "ally")])
def test_the_slack_cost_screens_train_at_their_cost(name, cost, policy):
    from benchmarks.harness import registry
    from benchmarks.harness.datasets import load_dataset
    from benchmarks.harness.estimators import build_estimator
    from modal_ally import PDCLNet

    data = load_dataset("digits", random_state=0)
    picked, params, arm_policy = noisy_oracle.ARMS[name]
    assert (picked, arm_policy) == ("ally", policy)
    net = build_estimator(registry.Arm(name, picked), data, epochs=1, seed=0, **params)
    assert isinstance(net, PDCLNet) and net.slack_cost == cost != PDCLNet().slack_cost


@pytest.mark.parametrize("name", ["ALLY (temperature 1)",
                                  "ALLY + second opinions (temperature 1)"])
def test_the_temperature_arms_query_at_their_temperature(name, monkeypatch, tmp_path):
    """The screen arms give ally_query_strategy their temperature, on both paths a round
    takes (modAL's query, and next_annotations for the second-opinion arm)."""
    import modal_ally

    seen = []
    real = modal_ally.ally_query_strategy

    def spy(learner, X_pool, n_instances=1, **options):
        seen.append(options.get("temperature"))
        return real(learner, X_pool, n_instances, **options)

    monkeypatch.setattr(modal_ally, "ally_query_strategy", spy)
    noisy_oracle.main(["--dataset", "digits", "--seeds", "1", "--rounds", "1",
                       "--initial", "30", "--budget", "10", "--epochs", "2",
                       "--noise", "symmetric:0.2", "--arms", name, "--no-progress",
                       "--out", str(tmp_path)])
    assert seen and set(seen) == {1.0}


def test_noisy_training_arms_name_their_constraints():
    """'hard' names the hard constraints: PDCLNet's default is resilient since 0.2."""
    from benchmarks.noisy_training import arm_params
    from modal_ally import PDCLNet

    assert PDCLNet().slack_cost is not None
    assert PDCLNet(**arm_params("hard")).slack_cost is None
    assert PDCLNet(**arm_params("slack=0.3")).slack_cost == 0.3
    assert PDCLNet(**arm_params("free")).dual_lr == 0.0
    assert arm_params("plain") == {}  # the loops' unconstrained net, built by its strategy
    with pytest.raises(ValueError, match="unknown arm"):
        arm_params("soft")


def test_noisy_fits_record_measures_flags_and_picks():
    from benchmarks.harness.datasets import load_dataset
    from benchmarks.research.noisy_fits import COLUMNS, one_fit

    data = load_dataset("digits")
    row = one_fit(data, 0.3, 0, size=300, batch=20, epochs=30)
    assert set(COLUMNS) <= set(row)
    assert 60 <= row["wrong"] <= 120  # about 30 % of 300
    assert 0 <= row["ally:among_smallest_margins"] <= 20
    assert 0.0 <= row["badge:margin_percentile"] <= 1.0 and row["factor_cv"] > 0
    assert row["flagged:outliers"] >= row["flagged:auto"]
    # sharpened, the factors spread out again and the default's picks are less certain
    assert row["sharp_factor_cv"] > row["factor_cv"]
    assert row["ally:margin_percentile"] < row["ally-t1:margin_percentile"]
