"""benchmarks.noisy_headline: ranks and paired differences from noisy_oracle curves."""

import json

import numpy as np
import pytest

from benchmarks import noisy_headline
from benchmarks.harness.noisy_oracle_report import followed_ranks

SETTINGS = {"dataset": "digits", "max_pool": None, "initial": 100, "budget": 100,
            "rounds": 2, "epochs": 50, "audit_fraction": 0.2, "threads": 1}


def _curve(arm, noise, seed, level, settings=SETTINGS):
    """A flat learning curve at ``level`` (its AULC is ``level``)."""
    rows = [{"round": r, "annotations": 100 * (r + 1), "second_opinions": 0,
             "wrong_labels": 0, "metric": level} for r in range(3)]
    return {"arm": arm, "noise": noise, "seed": seed, "settings": settings, "seconds": 1.0,
            "rows": rows}


def _write(folder, curves):
    folder.mkdir(parents=True)
    (folder / "curves.jsonl").write_text("".join(json.dumps(c) + "\n" for c in curves))
    return folder


LEVELS = {"ALLY + second opinions": [0.90, 0.91, 0.95], "ALLY": [0.80, 0.81, 0.82],
          "margin": [0.92, 0.90, 0.93], "random": [0.70, 0.71, 0.72],
          "screen": [0.99, 0.99, 0.99]}


def test_ranks_and_pairs_each_followed_arm_against_the_best_other(tmp_path):
    curves = [_curve(arm, "symmetric:0.2", seed, level)
              for arm, levels in LEVELS.items() for seed, level in enumerate(levels)]
    arms = ["random", "margin", "ALLY", "ALLY + second opinions"]
    result = noisy_headline.setting_result(curves, "symmetric:0.2", arms)
    rank, of, best, (mean, std, better), seeds = result["ALLY + second opinions"]
    # margin's mean 0.9167 < ALLY + SO's 0.92; the screen arm is not ranked
    assert (rank, of, best, seeds) == (1, 4, "margin", 3)
    diff = np.array([0.90 - 0.92, 0.91 - 0.90, 0.95 - 0.93])
    assert mean == pytest.approx(diff.mean()) and std == pytest.approx(diff.std(ddof=1))
    assert better == 2
    assert result["ALLY"][:3] == (3, 4, "margin") and result["ALLY"][3][2] == 0


def test_only_seeds_every_ranked_arm_finished_are_paired(tmp_path):
    curves = [_curve(arm, "panel", seed, level)
              for arm, levels in LEVELS.items() for seed, level in enumerate(levels)
              if not (arm == "margin" and seed == 2)]
    result = noisy_headline.setting_result(curves, "panel", ["margin", "ALLY",
                                                             "ALLY + second opinions"])
    assert result["ALLY + second opinions"][4] == 2
    assert result["ALLY + second opinions"][3][0] == pytest.approx(((0.90 - 0.92)
                                                                    + (0.91 - 0.90)) / 2)


def test_the_table_has_a_row_per_task_and_arm_and_a_dash_where_nothing_ran(tmp_path):
    digits = _write(tmp_path / "digits", [
        _curve(arm, noise, seed, level) for noise in ("symmetric:0", "panel")
        for arm, levels in LEVELS.items() for seed, level in enumerate(levels)])
    mnist = _write(tmp_path / "mnist", [  # titled as the README's row
        _curve(arm, "symmetric:0", seed, level)
        for arm, levels in LEVELS.items() for seed, level in enumerate(levels)])
    out = tmp_path / "headline.md"
    noisy_headline.main([str(digits), str(mnist), "--arms",
                         "random,margin,ALLY,ALLY + second opinions", "--out", str(out)])
    first, _, second = out.read_text().partition("Resolved by the t-test: ")
    lines = [line for line in first.splitlines() if line.startswith("| ")]
    assert lines[0] == "| task | arm | clean | panel |"
    assert lines[1].startswith("| digits | ALLY + second opinions | 1st/4 +0.0033 (2/3) |")
    assert lines[3] == "| MNIST MLP | ALLY + second opinions | 1st/4 +0.0033 (2/3) | — |"
    # ALLY's -0.12, -0.09, -0.11 against margin: t = 12.1 over 3 seeds, resolved (*)
    assert lines[4] == "| MNIST MLP | ALLY | 3rd/4 -0.1067* (0/3) | — |" and len(lines) == 5
    assert second.startswith(
        "ALLY + second opinions: 0 resolved wins and 0 resolved losses of 3 cells; "
        "ALLY: 0 resolved wins and 3 resolved losses of 3 cells.")
    # the arm-by-arm table counts the one noisy cell (digits' panel) only
    rows = [line for line in second.splitlines() if line.startswith("| ALLY")]
    assert rows[0] == ("| ALLY + second opinions | random | 1 of 1 | +0.2100 | +0.2100 to "
                       "+0.2100 | 1 / 0 | 1.000 |")
    assert rows[1].startswith("| ALLY + second opinions | margin | 1 of 1 | +0.0033 |")
    assert len(rows) == 4


def test_arm_by_arm_counts_noisy_cells_of_every_task():
    curves = []
    for noise, shift in (("symmetric:0", 0.5), ("symmetric:0.2", 0.01),
                         ("panel", -0.02), ("pairs:0.1", 0.03)):
        for seed in range(3):
            curves.append(_curve("margin", noise, seed, 0.8 + 0.01 * seed))
            curves.append(_curve("ALLY", noise, seed, 0.8 + 0.01 * seed + shift))
            curves.append(_curve("ALLY + second opinions", noise, seed,
                                 0.8 + 0.01 * seed + shift + (0.02 if seed else -0.02)))
    settings = ["symmetric:0", "symmetric:0.2", "pairs:0.1", "panel"]
    arms = ["margin", "ALLY", "ALLY + second opinions"]
    cells = [(noise, followed_ranks(curves, noise, arms)) for noise in settings] * 2
    rows = noisy_headline.arm_by_arm(cells, arms)  # two tasks alike
    # clean (+0.5) is left out; six noisy cells, four ahead; ALLY's cells have no spread
    assert rows[1] == ["ALLY", "margin", "4 of 6", "+0.0067", "-0.0200 to +0.0300",
                       "4 / 2", "0.688"]
    # -0.02, +0.02, +0.02 around each shift: t at most 2.75 over 3 seeds, unresolved
    assert rows[0] == ["ALLY + second opinions", "margin", "4 of 6", "+0.0133",
                       "-0.0133 to +0.0367", "0 / 0", "0.688"]
    assert len(rows) == 2


def test_a_sign_test_counts_wins_against_losses():
    from benchmarks.harness.metrics import sign_test

    assert sign_test(10, 0) == pytest.approx(2 / 2 ** 10)
    assert sign_test(0, 10) == sign_test(10, 0)
    assert sign_test(3, 3) == pytest.approx(1.0) and sign_test(0, 0) == 1.0
    assert sign_test(17, 6) == pytest.approx(0.0347, abs=1e-4)
    with pytest.raises(ValueError, match="non-negative"):
        sign_test(-1, 3)


def test_a_paired_t_test_tells_a_difference_from_zero():
    from benchmarks.harness.metrics import resolved

    # ten seeds: Student's t quantile 2.262; t = mean / (std / sqrt(10))
    assert resolved(0.01, 0.01, 10)  # t = 3.16
    assert resolved(-0.01, 0.01, 10)
    assert not resolved(0.005, 0.01, 10)  # t = 1.58
    assert not resolved(0.007, 0.01, 10) and resolved(0.007, 0.01, 10, level=0.1)  # t = 2.21
    assert not resolved(0.5, 0.0, 1) and not resolved(0.0, 0.0, 10)
    assert resolved(0.001, 0.0, 5)  # every seed the same nonzero difference


def test_bad_folders_and_arms_are_refused(tmp_path, capsys):
    mixed = _write(tmp_path / "mixed", [
        _curve("ALLY", "panel", 0, 0.9),
        _curve("margin", "panel", 0, 0.9, settings={**SETTINGS, "max_pool": 5000})])
    with pytest.raises(ValueError, match="2 different settings"):
        noisy_headline.folder_curves(mixed)
    with pytest.raises(ValueError, match="no curves"):
        noisy_headline.folder_curves(tmp_path / "absent")
    with pytest.raises(SystemExit):
        noisy_headline.main([str(mixed), "--arms", "margin,ALLY"])
    assert "ALLY + second opinions" in capsys.readouterr().err


def test_column_titles():
    assert [noisy_headline.setting_label(s) for s in (
        "symmetric:0", "symmetric:0.2", "pairs:0.3", "panel", "replaced:0.1")] == [
        "clean", "20 %", "pairs 30 %", "panel", "replaced:0.1"]


def test_a_non_finite_curve_is_reported_not_ranked():
    curves = [_curve(arm, "panel", 0, level) for arm, level in (
        ("margin", 0.9), ("ALLY", float("nan")), ("ALLY + second opinions", 0.8))]
    with pytest.raises(ValueError, match="non-finite AULC.*ALLY"):
        noisy_headline.setting_result(curves, "panel", ["margin", "ALLY",
                                                        "ALLY + second opinions"])
