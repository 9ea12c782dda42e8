"""``benchmarks.label_efficiency --baselines-from``: rerun the ALLY arms of a table and
keep its saved baselines, only when the saved run has the same seeds, rounds and sizes."""

import csv

import pytest

from benchmarks.label_efficiency import saved_baselines

FIELDS = ("strategy", "seed", "round", "n_labels", "metric", "fit_s", "query_s")


def _rows(strategy, seeds=(0, 1), sizes=(100, 200)):
    return [{"strategy": strategy, "seed": seed, "round": r, "n_labels": n,
             "metric": 0.5 + 0.1 * r, "fit_s": 1.0, "query_s": None if r == 0 else 0.1}
            for seed in seeds for r, n in enumerate(sizes)]


def _write(folder, rows):
    with open(folder / "rounds.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "query_s": "" if row["query_s"] is None
                             else row["query_s"]})


def test_the_saved_strategies_this_run_lacks_are_added(tmp_path):
    _write(tmp_path, _rows("ALLY default") + _rows("margin") + _rows("random"))
    saved = saved_baselines(tmp_path, _rows("ally"))  # "ally" is shown as ALLY default
    assert {row["strategy"] for row in saved} == {"margin", "random"}
    assert all(isinstance(row["metric"], float) and isinstance(row["fit_s"], float)
               for row in saved)
    assert {row["query_s"] for row in saved if row["round"] == 0} == {None}


@pytest.mark.parametrize("saved", [_rows("margin", seeds=(0,)),
                                   _rows("margin", sizes=(100, 150)),
                                   _rows("ALLY default")])
def test_other_settings_or_nothing_to_add_is_an_error(tmp_path, saved):
    _write(tmp_path, saved)
    with pytest.raises(ValueError, match="baselines-from"):
        saved_baselines(tmp_path, _rows("ally"))


def test_a_folder_without_rounds_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="rounds.csv"):
        saved_baselines(tmp_path, _rows("ally"))


def test_paired_against_reads_the_earlier_ally_arms(tmp_path):
    from benchmarks.paired_against import main

    now, before = tmp_path / "digits", tmp_path / "earlier" / "digits"
    now.mkdir()
    before.mkdir(parents=True)
    _write(now, _rows("ALLY default") + _rows("margin"))
    lower = [{**row, "metric": row["metric"] - 0.01} for row in _rows("ALLY default")]
    _write(before, lower + _rows("margin"))
    main(["--reference", "ALLY default", "--earlier", str(tmp_path / "earlier"), str(now)])
    text = (now / "paired_vs_ALLY default_with_earlier.md").read_text()
    earlier = [line for line in text.splitlines() if line.startswith("| ALLY default (earlier)")]
    assert len(earlier) == 1 and "-0.0100" in earlier[0] and "0/2" in earlier[0]
    assert "margin (earlier)" not in text  # only the ALLY arms are taken from before
