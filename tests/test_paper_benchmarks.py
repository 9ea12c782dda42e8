"""The epsilon ablation and the redundancy experiment run and write their reports."""

import csv

import pytest

from benchmarks import epsilon_ablation, redundancy

TINY = ["--initial", "30", "--budget", "10", "--rounds", "1", "--epochs", "2", "--seeds", "1",
        "--no-progress"]


def test_parse_epsilons():
    assert epsilon_ablation.parse_epsilons("0.1, auto,1") == [0.1, "auto", 1.0]
    for bad in ("-1", "big", ""):
        with pytest.raises(ValueError, match="epsilons"):
            epsilon_ablation.parse_epsilons(bad)


# two epochs on 30 rows: some fits end with every constraint slack (warned, expected)
@pytest.mark.filterwarnings("ignore:every dual variable:UserWarning")
def test_epsilon_ablation_runs(tmp_path):
    result = epsilon_ablation.main(TINY + ["--epsilons", "0.1,auto", "--out", str(tmp_path)])
    names = {row["strategy"] for row in result["summary"]}
    assert names == {"ally eps=0.1", "ally eps=auto", "random"}
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
    with (tmp_path / "rounds.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 3 * 2


def test_redundancy_runs_and_counts_distinct_samples(tmp_path):
    result = redundancy.main(TINY + ["--redundancies", "1,3", "--low-clusters", "2",
                                     "--out", str(tmp_path)])
    table = result["table"]
    assert {row["redundancy"] for row in table} == {1, 3}
    assert len(table) == 2 * 4
    for row in table:
        assert 0 < row["final_mean"] <= 1
        assert row["distinct_mean"] <= row["n_labels"]
    aware = [r for r in table if r["strategy"] == "ally-redundancy" and r["redundancy"] == 3]
    assert aware[0]["distinct_mean"] == aware[0]["n_labels"]  # never a copy
    assert (tmp_path / "redundancy.png").stat().st_size > 0
    assert "r=3" in (tmp_path / "redundancy.md").read_text()


def test_redundancy_rejects_bad_settings(tmp_path, capsys):
    with pytest.raises(SystemExit):
        redundancy.main(TINY + ["--low-clusters", "10", "--out", str(tmp_path)])
    assert "low-clusters" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:every dual variable:UserWarning")  # dual_lr 0: expected
def test_dual_step_compares_pdcl_with_the_unconstrained_net(tmp_path):
    from benchmarks.research import dual_step

    rows = dual_step.main(["--datasets", "diabetes", "--sizes", "40", "--dual-lrs",
                           "0.05,0", "--seeds", "1", "--epochs", "3", "--out", str(tmp_path)])
    nets = [(r["net"], r["dual_lr"]) for r in rows]
    assert nets == [("unconstrained", 0.0), ("PDCL", 0.05), ("PDCL", 0.0)]
    assert all(r["metric"] > 0 and r["ratio"] == r["metric"] / rows[0]["metric"]
               for r in rows)
    # dual_lr 0 with the default epsilon: every multiplier stays 0, the very same net
    assert rows[2]["ratio"] == pytest.approx(1.0, rel=1e-4)
    assert "| 40 | PDCL | 0.05 |" in (tmp_path / "dual_step.md").read_text()
    assert (tmp_path / "dual_step.csv").exists()


def test_paired_table_names_the_best_other_arm():
    from benchmarks.harness.paired import paired_markdown, paired_table

    level = {"a": [0.5, 0.6, 0.7], "b": [0.55, 0.65, 0.75], "c": [0.4, 0.5, 0.6]}
    rows = [{"strategy": arm, "seed": seed, "round": r, "n_labels": 10 * (r + 1),
             "metric": level[arm][seed] + 0.01 * r}
            for arm in level for seed in range(3) for r in range(2)]
    table, seeds = paired_table(rows, "classification", references=("c",))
    by_arm = {row["arm"]: row for row in table}
    assert seeds == [0, 1, 2]
    assert by_arm["a"]["best_other"] == "b" and by_arm["b"]["best_other"] == "a"
    assert by_arm["a"]["vs_best_other_mean"] == pytest.approx(-0.05)
    assert by_arm["a"]["vs_best_other_wins"] == 0 and by_arm["b"]["vs_best_other_wins"] == 3
    assert by_arm["a"]["vs_c_wins"] == 3 and "vs_c_mean" not in by_arm["c"]
    text = paired_markdown(table, seeds, task="classification", title="t", references=("c",))
    assert "| -0.0500 ± 0.0000 (0/3) b |" in text
    # regression: lower is better, so the best other arm has the lowest AULC
    table, _ = paired_table(rows, "regression", references=())
    assert {row["arm"]: row["best_other"] for row in table} == {"a": "c", "b": "c", "c": "a"}


def test_paired_table_names_the_best_baseline():
    from benchmarks.harness.paired import paired_markdown, paired_table

    level = {"ALLY x": [0.6, 0.7], "b": [0.5, 0.6], "c": [0.58, 0.5]}
    rows = [{"strategy": arm, "seed": seed, "round": 0, "n_labels": 10,
             "metric": level[arm][seed]} for arm in level for seed in range(2)]
    table, seeds = paired_table(rows, "classification", references=(), baselines={"b", "c"})
    by_arm = {row["arm"]: row for row in table}
    assert by_arm["ALLY x"]["best_baseline"] == "b"  # mean 0.55 against c's 0.54
    assert by_arm["ALLY x"]["vs_best_baseline_mean"] == pytest.approx(0.1)
    assert by_arm["b"]["best_baseline"] == "c" and by_arm["b"]["best_other"] == "ALLY x"
    text = paired_markdown(table, seeds, task="classification", title="t", references=())
    assert "| vs the best other arm | vs the best baseline |" in text
    assert "+0.1000 ± 0.0000 (2/2) b |" in text
    plain, _ = paired_table(rows, "classification", references=())
    assert "vs the best baseline" not in paired_markdown(plain, seeds, task="classification",
                                                         title="t", references=())
