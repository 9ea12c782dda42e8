"""benchmarks.headline: the README's headline table from finished runs."""

from __future__ import annotations

import csv

import pytest

from benchmarks import headline

#: Per arm, per seed, a flat learning curve (so the AULC is the value itself).
CURVES = {"ALLY default": [0.90, 0.92, 0.91], "ALLY paper": [0.88, 0.90, 0.92],
          "ALLY default without lambda (ablation)": [0.95, 0.95, 0.95],
          "random": [0.85, 0.86, 0.84], "margin": [0.91, 0.91, 0.90],
          "entropy": [0.80, 0.80, 0.80]}


def _write_run(folder, curves, metric="accuracy"):
    folder.mkdir()
    with (folder / "rounds.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["strategy", "seed", "round", "n_labels", "metric", "fit_s",
                         "query_s"])
        for arm, values in curves.items():
            for seed, value in enumerate(values):
                for round_, n in enumerate((100, 200)):
                    writer.writerow([arm, seed, round_, n, value, 0.1, ""])
    with (folder / "summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["strategy", "metric_name"])
        writer.writerows([arm, metric] for arm in curves)
    return folder


def test_best_other_rank_and_paired_differences(tmp_path):
    row = headline.headline_row(_write_run(tmp_path / "task", CURVES))
    assert row["best"] == "margin"  # ALLY's arms, the ablation too, are never "other"
    mean, std, better = row["vs_best"]
    assert mean == pytest.approx((-0.01 + 0.01 + 0.01) / 3)
    assert better == 2 and std > 0
    # picked by a user: default 0.91, margin 0.9067, paper 0.90, random, entropy
    assert (row["rank"], row["of"]) == (1, 5)
    assert row["ablation"][0] == pytest.approx(0.91 - 0.95) and row["ablation"][2] == 0
    assert row["vs_random"][2] == 3
    text = headline.headline_markdown([row])
    assert "| task | 3 | 0.9100 | margin 0.9067 | +0.0033" in text
    assert "1st of 5" in text


def test_regression_lower_is_better(tmp_path):
    curves = {"ally": [60.0, 61.0], "random": [70.0, 58.0], "coreset": [65.0, 66.0]}
    row = headline.headline_row(_write_run(tmp_path / "parkinsons", curves, "mse"))
    assert row["best"] == "random"  # 64.0 against Core-Set's 65.5
    assert row["vs_best"][2] == 1 and row["rank"] == 1
    assert "(MSE)" in headline.headline_markdown([row])


def test_a_run_without_the_default_is_refused(tmp_path):
    folder = _write_run(tmp_path / "x", {"random": [0.5], "margin": [0.6]})
    with pytest.raises(ValueError, match="no arm 'ally'"):
        headline.headline_row(folder)
