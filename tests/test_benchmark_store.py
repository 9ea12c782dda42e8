"""The benchmarks' run store and loop: the output-folder lock, atomic writes, recovery of
an unreadable state, the recorded torch thread count, and the per-round observers."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from benchmarks import learning_curves
from benchmarks.harness import loop, reporting
from benchmarks.harness.store import LOCK_FILE, STATE_FILE, RunStore

TINY = ["--initial", "30", "--budget", "10", "--epochs", "2", "--no-progress",
        "--dataset", "digits", "--seeds", "1"]


def run_curves(out, *, strategies="random", rounds=1, extra=(), observers=None):
    return learning_curves.main(["--strategies", strategies, "--rounds", str(rounds),
                                 "--out", str(out), *TINY, *extra], observers=observers)


def read_csv(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


# ---------------------------------------------------------------- lock
def test_a_second_run_on_a_locked_folder_fails_at_once_and_names_the_holder(tmp_path,
                                                                            capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from benchmarks.harness.store import RunStore
            RunStore(sys.argv[1], {}).__enter__()
            print("locked", flush=True)
            time.sleep(120)
        """), str(tmp_path)], stdout=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SystemExit):
            run_curves(tmp_path)
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and socket.gethostname() in err
        assert "started 20" in err and "in use by another run" in err
        assert not (tmp_path / STATE_FILE).exists()  # nothing ran
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: its lock is stale and taken over with a warning
    with pytest.warns(RuntimeWarning, match=f"stale lock .* pid {holder.pid}"):
        rows = run_curves(tmp_path)["rows"]
    assert [r["round"] for r in rows] == [0, 1]
    assert (tmp_path / LOCK_FILE).read_text() == ""  # released cleanly at the end


def test_a_clean_release_leaves_no_stale_lock(tmp_path, recwarn):
    with RunStore(tmp_path, {"a": 1}):
        pass
    with RunStore(tmp_path, {"a": 1}) as store:
        assert store.read_runs() == {}
    assert not [w for w in recwarn if "stale" in str(w.message)]


def test_the_store_is_used_inside_a_with_block(tmp_path):
    with pytest.raises(RuntimeError, match="with"):
        RunStore(tmp_path, {}).read_runs()


def _save_many(path, tag, n):
    for i in range(n):
        reporting.write_atomic(path, json.dumps({"writer": tag, "i": i, "pad": "x" * 2000}))


def test_concurrent_writers_never_leave_a_broken_file(tmp_path):
    """Two processes x 200 saves of one file while this one reads it: every save
    succeeds and every read is complete JSON (one shared temporary file broke both)."""
    path = tmp_path / STATE_FILE
    reporting.write_atomic(path, json.dumps({"writer": "start"}))
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_save_many, args=(path, tag, 200)) for tag in "ab"]
    for proc in writers:
        proc.start()
    reads = 0
    while any(proc.is_alive() for proc in writers) or reads < 50:
        json.loads(path.read_text())  # raises on a half-written file
        reads += 1
    for proc in writers:
        proc.join()
        assert proc.exitcode == 0
    assert json.loads(path.read_text())["i"] == 199
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # no temporary left


# ---------------------------------------------------------------- unreadable state
def test_a_truncated_state_is_kept_and_the_rounds_recovered(tmp_path, monkeypatch):
    from modAL.models import ActiveLearner

    first = run_curves(tmp_path, strategies="random,ally")["rows"]
    state = tmp_path / STATE_FILE
    text = state.read_text()
    state.write_text(text[:len(text) // 2])
    calls = []
    original = ActiveLearner.__init__

    def counting_init(self, *args, **kwargs):
        calls.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ActiveLearner, "__init__", counting_init)
    with pytest.warns(RuntimeWarning, match=f"{state}.* cannot be read") as record:
        again = run_curves(tmp_path, strategies="random,ally")["rows"]
    assert calls == []  # every finished round came back from rounds.csv: nothing refitted
    # rounds.csv keeps 10 significant digits
    assert [{k: v for k, v in r.items() if k not in ("metric", "fit_s", "query_s")}
            for r in again] == [{k: v for k, v in r.items()
                                 if k not in ("metric", "fit_s", "query_s")} for r in first]
    for key in ("metric", "fit_s", "query_s"):
        assert [r[key] or 0.0 for r in again] == pytest.approx(
            [r[key] or 0.0 for r in first], rel=1e-9)
    message = str(record[0].message)
    assert "Recovered 4 finished round(s) of 2 curve(s)" in message
    kept = list(tmp_path.glob(f"{STATE_FILE}.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == text[:len(text) // 2]
    assert str(kept[0]) in message
    json.loads(state.read_text())  # a readable state again


def test_a_lost_labeled_set_is_recomputed_to_the_same_curve(tmp_path):
    first = run_curves(tmp_path, rounds=2)["rows"]
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.warns(RuntimeWarning, match="cannot be read"):
        rows = run_curves(tmp_path, rounds=3)["rows"]
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    assert [r["metric"] for r in rows[:3]] == [r["metric"] for r in first]  # recomputed
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert len(state["runs"]["random|seed=0"]["labeled"]) == 60


# ---------------------------------------------------------------- thread count
def test_resuming_with_another_thread_count_is_refused(tmp_path, capsys):
    assert torch.get_num_threads() == 1  # tests/conftest.py
    run_curves(tmp_path)
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["runtime"] == {"torch_threads": 1, "torch_version": torch.__version__}
    with pytest.raises(SystemExit):
        run_curves(tmp_path, rounds=2, extra=["--threads", "2"])
    err = capsys.readouterr().err
    assert "1 torch thread(s) but this run has 2" in err and "--allow-thread-change" in err
    assert torch.get_num_threads() == 1  # restored
    assert json.loads((tmp_path / STATE_FILE).read_text()) == state  # nothing written

    with pytest.warns(RuntimeWarning, match="1 torch thread"):
        rows = run_curves(tmp_path, rounds=2,
                          extra=["--threads", "2", "--allow-thread-change"])["rows"]
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert torch.get_num_threads() == 1
    # the state keeps the count it was started with: a later mix is caught again
    assert json.loads((tmp_path / STATE_FILE).read_text())["runtime"]["torch_threads"] == 1


def test_a_state_without_a_thread_count_warns_and_records_it(tmp_path):
    run_curves(tmp_path)
    path = tmp_path / STATE_FILE
    state = json.loads(path.read_text())
    del state["runtime"]
    state["version"] = 1  # what the benchmarks wrote before the count was recorded
    path.write_text(json.dumps(state))
    with pytest.warns(RuntimeWarning, match="does not record torch's thread count"):
        run_curves(tmp_path, rounds=2)
    assert json.loads(path.read_text())["runtime"]["torch_threads"] == 1


# ---------------------------------------------------------------- observers
class PoolObserver:
    """A toy observer: what it is shown each round, and how often it is called."""

    def __init__(self):
        self.calls = []

    def __call__(self, learner, X_pool_remaining, n_labels):
        self.calls.append((learner, n_labels))  # kept alive: two learners never share an id
        return {"pool_left": X_pool_remaining.shape[0], "n_seen": n_labels,
                "train_rows": len(learner.X_training),
                "top_proba": np.float32(learner.predict_proba(X_pool_remaining[:5]).max())}


def test_observers_add_columns_to_every_round(tmp_path):
    observer = PoolObserver()
    rows = run_curves(tmp_path, strategies="random,ally", rounds=2,
                      observers=[observer])["rows"]
    fields, table = read_csv(tmp_path / "rounds.csv")
    assert tuple(fields) == reporting.ROW_FIELDS + ("pool_left", "n_seen", "train_rows",
                                                    "top_proba")
    n_pool = 1257
    for row in table:
        n_labels = int(row["n_labels"])
        assert int(row["pool_left"]) == n_pool - n_labels
        assert int(row["n_seen"]) == int(row["train_rows"]) == n_labels
        assert 0 < float(row["top_proba"]) <= 1
    assert [r["pool_left"] for r in rows] == [n_pool - n for n in (30, 40, 50)] * 2
    assert isinstance(rows[0]["top_proba"], float)
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["runs"]["ally|seed=0"]["rows"][2]["n_seen"] == 50
    # one learner per curve, its rounds in order
    assert [n for _, n in observer.calls] == [30, 40, 50] * 2
    assert len({id(learner) for learner, _ in observer.calls}) == 2


def test_a_resumed_curve_replays_its_last_fit_to_the_observers(tmp_path):
    run_curves(tmp_path, rounds=1, observers=[PoolObserver()])
    observer = PoolObserver()
    rows = run_curves(tmp_path, rounds=2, observers=[observer])["rows"]
    assert [n for _, n in observer.calls] == [40, 50]  # the refit of round 1, then round 2
    assert [r["n_seen"] for r in rows] == [30, 40, 50]
    fields, _ = read_csv(tmp_path / "rounds.csv")
    assert "n_seen" in fields


@pytest.mark.parametrize("observers, error, match", [
    (lambda learner, X, n: {}, TypeError, "sequence of callables"),
    ([42], TypeError, "callable"),
    ([lambda learner, X, n: [1]], TypeError, "dict of column"),
    ([lambda learner, X, n: {"metric": 1.0}], ValueError, "'metric'"),
    ([lambda learner, X, n: {"a": 1}, lambda learner, X, n: {"a": 2}], ValueError, "'a'"),
    ([lambda learner, X, n: {"a": [1, 2]}], TypeError, "numbers, strings"),
])
def test_bad_observers_are_refused(observers, error, match, tmp_path):
    with pytest.raises(error, match=match):
        run_curves(tmp_path, observers=observers)


def test_check_observers():
    assert loop.check_observers(None) == ()
    assert loop.check_observers([print]) == (print,)


# ---------------------------------------------------------------- rerun after a change
def test_discarded_arms_are_run_again_and_the_others_kept(tmp_path, capsys):
    from benchmarks import label_efficiency

    args = ["--dataset", "digits", "--initial", "30", "--budget", "10", "--epochs", "2",
            "--rounds", "1", "--seeds", "1", "--no-progress", "--out", str(tmp_path)]
    label_efficiency.main([*args, "--arms", "random,margin"])
    before = json.loads((tmp_path / STATE_FILE).read_text())["runs"]
    with pytest.raises(SystemExit):
        label_efficiency.main([*args, "--arms", "random,margin", "--rerun", "badge"])
    assert "--rerun names arms not in --arms: badge" in capsys.readouterr().err

    label_efficiency.main([*args, "--arms", "random,margin", "--rerun", "margin"])
    assert "discarded 1 saved curves of margin" in capsys.readouterr().out
    after = json.loads((tmp_path / STATE_FILE).read_text())["runs"]
    assert after["random|seed=0"] == before["random|seed=0"]  # kept, not rerun
    assert after["margin|seed=0"]["rows"][0]["fit_s"] != before["margin|seed=0"]["rows"][0][
        "fit_s"]  # timed again: it was run again
    assert [r["metric"] for r in after["margin|seed=0"]["rows"]] == [
        r["metric"] for r in before["margin|seed=0"]["rows"]]  # same seeded curve
    rounds = list(csv.DictReader(open(tmp_path / "rounds.csv")))
    assert sorted(r["strategy"] for r in rounds) == ["margin", "margin", "random", "random"]
