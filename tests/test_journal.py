"""The journal of answers: durable before teach, resumable after SIGKILL, bad files refused.

The kill tests run tests/journal_session_driver.py as a subprocess (a PDCL net in a modAL
learner with ALLY's query), kill it with SIGKILL at chosen points (inside a journal
write, inside a fit) and at random moments, resume it, and compare with an uninterrupted
run of the same session.
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from modAL.models import ActiveLearner

from modal_ally import PDCLNet, ally_query_strategy
from modal_ally.journal import Journal, JournalFileError, JournalWriteError
from tests.helpers import MODAL_0421, ROOT

DRIVER = ROOT / "tests" / "journal_session_driver.py"
SHORT = ["--rounds", "4", "--initial", "30", "--batch", "20", "--relabel-every", "3",
         "--relabel", "5"]


# ------------------------------------------------------------------ the driver
def start(journal, args=(), kill_at=None, modal=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join(([str(modal)] if modal else []) + [str(ROOT)])
    env.pop("MODAL_ALLY_KILL_AT", None)
    if kill_at:
        env["MODAL_ALLY_KILL_AT"] = kill_at
    return subprocess.Popen([sys.executable, str(DRIVER), "--journal", str(journal), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lines(process, *, kill_after=None):
    """The driver's printed records, after it ends. ``kill_after = (n, s)``: SIGKILL it
    ``s`` seconds after its n-th acknowledgement (a random moment of a random round:
    a query, a fit, a write)."""
    head = []
    if kill_after is not None:
        n, delay = kill_after
        for line in process.stdout:
            head.append(line)
            n -= line.startswith("ack ")
            if n <= 0:
                time.sleep(delay)
                process.send_signal(signal.SIGKILL)
                break
    out, err = process.communicate(timeout=900)
    out = "".join(head) + out
    records = [(line.split(" ", 1)[0], json.loads(line.split(" ", 1)[1]))
               for line in out.splitlines() if line.split(" ", 1)[0] in
               ("resumed", "ack", "picks", "taught", "done")]
    return process.returncode, records, err


def run_session(journal, args=(), modal=None):
    code, records, err = lines(start(journal, args, modal=modal))
    assert code == 0, err[-3000:]
    return records


def check_acknowledged(path, records):
    """Every answer acknowledged before the kill is in the journal, once."""
    with Journal(path, np.zeros((1797, 1))) as journal:
        table = journal.table()
    seen = table.groupby(["key", "round", "annotator"]).size()
    assert (seen == 1).all(), "an answer was journaled twice"
    for kind, payload in records:
        if kind == "ack" and payload["keys"] == "relabel":
            assert ((table["round"] == payload["round"]) & (table["annotator"] == "b")).any()
        elif kind == "ack":
            mine = table[table["round"] == payload["round"]]
            assert sorted(mine["key"]) == sorted(payload["keys"]), payload["round"]


def check_resumed(reference, records):
    """The rebuilt learner is the uninterrupted one at the same round, and the rest of
    the session picks the same rows and ends in the same labeled set."""
    taught = {p["round"]: p for k, p in reference if k == "taught"}
    picks = {p["round"]: p["rows"] for k, p in reference if k == "picks"}
    resumed = next(p for k, p in records if k == "resumed")
    if resumed["round"] >= 0:
        assert resumed == taught[resumed["round"]]
    for kind, payload in records:
        if kind == "picks":
            assert payload["rows"] == picks[payload["round"]], payload["round"]
        elif kind == "taught":
            assert payload == taught[payload["round"]]
    assert next(p for k, p in records if k == "done") == \
        next(p for k, p in reference if k == "done")


def kill_and_resume(tmp_path, reference, args, *, kill_at=None, kill_after=None, modal=None):
    path = tmp_path / f"trial-{time.monotonic_ns()}.sqlite"
    code, records, err = lines(start(path, args, kill_at, modal), kill_after=kill_after)
    assert code in (-signal.SIGKILL, 0), err[-3000:]
    if path.exists():
        check_acknowledged(path, records)
    resumed = run_session(path, args, modal)
    check_resumed(reference, resumed)
    acked = sum(len(p["keys"]) for k, p in records if k == "ack" and p["keys"] != "relabel")
    print(f"trial kill_at={kill_at} kill_after={kill_after} "
          f"exit={code} acknowledged_rows={acked} resumed_at_round="
          f"{next(p for k, p in resumed if k == 'resumed')['round']}", flush=True)
    return code


@pytest.fixture(scope="module")
def short_reference(tmp_path_factory):
    return run_session(tmp_path_factory.mktemp("ref") / "ref.sqlite", SHORT)


@pytest.mark.parametrize("kill_at", ["fit:3",
                                     pytest.param("insert:2", marks=pytest.mark.slow)])
def test_killed_session_resumes_as_if_uninterrupted(tmp_path, short_reference, kill_at):
    assert kill_and_resume(tmp_path, short_reference, SHORT, kill_at=kill_at) \
        == -signal.SIGKILL


@pytest.mark.parametrize("learner", [pytest.param("active", marks=pytest.mark.slow),
                                     "deep"])
def test_modal_0421_resumes(tmp_path, learner):
    if not (MODAL_0421 / "modAL").is_dir():
        pytest.fail(f"modAL-python 0.4.2.1 is missing from {MODAL_0421}: run `make test`")
    args = SHORT + ["--learner", learner]
    reference = run_session(tmp_path / "ref.sqlite", args, MODAL_0421)
    assert kill_and_resume(tmp_path, reference, args, kill_at="teach-record:3",
                           modal=MODAL_0421) == -signal.SIGKILL


@pytest.mark.slow
def test_kill_at_random_moments_over_a_long_session(tmp_path):
    """24 kills of a 25-round session of 1,000+ answers, at chosen points and at
    random moments (0-1.5 s after a random acknowledgement), each resumed and compared
    with the uninterrupted run."""
    reference = run_session(tmp_path / "ref.sqlite")
    done = next(p for k, p in reference if k == "done")
    assert len(done["labeled"]) >= 1000 and done["round"] >= 20
    chooser = random.Random(26)
    points = [f"{point}:{chooser.randint(1, 20)}" for point in
              ("insert", "commit", "teach-record", "fit") for _ in range(4)]
    codes = [kill_and_resume(tmp_path, reference, [], kill_at=point) for point in points]
    codes += [kill_and_resume(tmp_path, reference, [], kill_after=(
        chooser.randint(1, 24), chooser.uniform(0.0, 1.5))) for _ in range(8)]
    assert codes.count(-signal.SIGKILL) >= 20, codes


# ------------------------------------------------------------------ unit behaviour
@pytest.fixture(scope="module")
def pool(digits):
    return digits["X_pool"][:300], digits["y_pool"][:300]


def new_learner():
    return ActiveLearner(estimator=PDCLNet(max_epochs=2, random_state=0),
                         query_strategy=ally_query_strategy)


def test_teach_then_resume_rebuilds_learner_and_answers(tmp_path, pool):
    X, y = pool
    with Journal(tmp_path / "j.sqlite", X) as journal:
        learner = new_learner()
        journal.teach(learner, np.arange(20), y[:20], annotator="ann", round=0)
        rows = journal.query(learner, 10, random_state=0)
        taught = journal.teach(learner, rows, y[rows], annotator=7)
        assert list(taught) == rows.tolist() and journal.round == 1 and journal.fits == 2
        second = journal.teach(learner, [0, 1], [(y[0] + 1) % 10, y[1]], annotator="b")
        assert set(second) <= {0}  # a tie or a change on row 0; row 1 agrees
    with Journal(tmp_path / "j.sqlite", X) as journal:
        rebuilt = journal.resume(new_learner())
    np.testing.assert_array_equal(rebuilt.X_training, learner.X_training)
    np.testing.assert_array_equal(rebuilt.y_training, learner.y_training)
    np.testing.assert_array_equal(rebuilt.predict_proba(X), learner.predict_proba(X))
    assert rebuilt.answers_.counts()[:3].tolist() == [2, 2, 1]
    assert [a["annotator"] for a in rebuilt.answers_.of_row(0)] == ["ann", "b"]


@pytest.mark.parametrize("scaled", [False, True])
def test_a_tie_goes_to_the_label_the_rows_neighbours_carry(tmp_path, pool, scaled):
    """The journal decides ties as relabel does: the nearest labeled rows' labels in the
    net's embedding, the model's probabilities counted as one more neighbour."""
    from sklearn.neighbors import NearestNeighbors
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from modal_ally._inference import embed

    X, y = pool
    net = PDCLNet(max_epochs=2, random_state=0)
    with Journal(tmp_path / "j.sqlite", X) as journal:
        learner = ActiveLearner(estimator=make_pipeline(StandardScaler(), net) if scaled
                                else net, query_strategy=ally_query_strategy)
        journal.teach(learner, np.arange(120), y[:120], annotator="a")
        E = embed(net, learner.estimator[:-1].transform(X[:120]) if scaled else X[:120])
        near = NearestNeighbors(n_neighbors=11).fit(E).kneighbors(E[:40])[1][:, 1:]
        counts = np.stack([np.bincount(y[n], minlength=10) for n in near])
        # a row whose neighbours all carry its label gets a second, different answer
        row = int(np.flatnonzero(counts[np.arange(40), y[:40]] == 10)[0])
        other = (y[row] + 1) % 10
        real = learner.predict_proba

        def model_sure_of_other(X_rows):  # the model alone would give the tie to `other`
            proba = real(X_rows)
            proba[(X_rows == X[row]).all(axis=1)] = np.eye(10)[other]
            return proba

        learner.predict_proba = model_sure_of_other
        journal.teach(learner, [row], [other], annotator="b")
        assert learner.y_training[row] == y[row]  # 10 neighbours against the model's 1
        assert learner.answers_.counts()[row] == 2


def test_labels_and_keys_round_trip_exactly(tmp_path, pool):
    X, _ = pool
    keys = [f"img-{i:04d}" for i in range(len(X))]
    labels = np.array([0.1, 1 / 3, 2.5e-300, -7.0])
    with Journal(tmp_path / "j.sqlite", X, keys=keys) as journal:
        journal.record([3, 4, 5, 6], labels, annotator=np.int64(5))
        journal.record([7, 8], np.array(["cat", "dog"]), annotator=None)
        table = journal.table()
    assert table["label"].tolist()[:4] == labels.tolist()
    assert table["label"].tolist()[4:] == ["cat", "dog"]
    assert table["key"].tolist() == keys[3:9] and table["annotator"].tolist()[0] == 5
    assert (table["status"] == "pending").all()


def test_failed_teach_keeps_answers_marked_not_taught(tmp_path, pool):
    X, y = pool
    with Journal(tmp_path / "j.sqlite", X) as journal:
        learner = new_learner()
        journal.teach(learner, np.arange(20), y[:20])
        before = learner.y_training.copy()
        learner.estimator.set_params(lr=float("nan"))
        with pytest.raises(ValueError, match="lr must be"):
            journal.teach(learner, [50, 51], y[50:52], annotator="p")
        np.testing.assert_array_equal(learner.y_training, before)
        table = journal.table()
        assert table.loc[table["key"].isin([50, 51]), "status"].tolist() == ["failed"] * 2
        learner.estimator.set_params(lr=1e-3)
        assert journal.teach(learner) == {}
        assert journal.teach(learner, retry_failed=True) == {50: y[50], 51: y[51]}


def test_regression_answers_take_their_median(tmp_path, diabetes):
    from modal_ally import PDCLRegressor

    X, y, _, _ = diabetes
    with Journal(tmp_path / "j.sqlite", X) as journal:
        learner = ActiveLearner(estimator=PDCLRegressor(max_epochs=2, random_state=0),
                                query_strategy=ally_query_strategy)
        journal.teach(learner, np.arange(30), y[:30], annotator="a")
        journal.teach(learner, [0, 0], [y[0] + 10.0, y[0] + 30.0], annotator=["b", "c"])
        assert learner.y_training[0] == y[0] + 10.0  # the median of three answers
        assert journal.labels()[0] == y[0] + 10.0 and learner.answers_.counts()[0] == 3


def test_learner_taught_outside_the_journal_is_refused(tmp_path, pool):
    X, y = pool
    with Journal(tmp_path / "j.sqlite", X) as journal:
        learner = ActiveLearner(estimator=PDCLNet(max_epochs=1), X_training=X[:10],
                                y_training=y[:10], query_strategy=ally_query_strategy)
        with pytest.raises(ValueError, match="journal gave it 0"):
            journal.teach(learner, [20], y[20:21])
        with pytest.raises(ValueError, match="give a new one with no labeled set"):
            journal.resume(learner)


# ------------------------------------------------------------------ bad files
def written_journal(path, X, y):
    with Journal(path, X) as journal:
        journal.record(np.arange(100), y[:100], annotator="a")
    return path.read_bytes()


def test_journal_of_another_pool_is_refused(tmp_path, pool):
    X, y = pool
    written_journal(tmp_path / "j.sqlite", X, y)
    with pytest.raises(JournalFileError, match="not in this pool"):
        Journal(tmp_path / "j.sqlite", X[:50])
    with pytest.raises(JournalFileError, match="not in this pool"):
        Journal(tmp_path / "j.sqlite", X, keys=[str(i) for i in range(len(X))])


@pytest.mark.parametrize("version,message", [(99, "a newer release"), (0, "an older release")])
def test_other_schema_versions_are_refused(tmp_path, pool, version, message):
    X, y = pool
    written_journal(tmp_path / "j.sqlite", X, y)
    with sqlite3.connect(tmp_path / "j.sqlite") as conn:
        conn.execute(f"PRAGMA user_version = {version}")
    before = (tmp_path / "j.sqlite").read_bytes()
    with pytest.raises(JournalFileError, match=message):
        Journal(tmp_path / "j.sqlite", X)
    assert (tmp_path / "j.sqlite").read_bytes() == before


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "empty", "not sqlite",
                                    "another database"])
def test_damaged_files_are_refused_and_left_as_they_are(tmp_path, pool, damage):
    X, y = pool
    path = tmp_path / "j.sqlite"
    data = written_journal(path, X, y)
    if damage == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "corrupted":
        path.write_bytes(data[:4096] + bytes(range(256)) * 16 + data[8192:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not sqlite":
        path.write_text("row,label\n1,2\n")
    else:
        path.unlink()
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE answers (x)")
    before = path.read_bytes()
    with pytest.raises(JournalFileError, match="cannot be used as a journal"):
        Journal(path, X)
    assert path.read_bytes() == before
    assert not (tmp_path / "j.sqlite-wal").exists() or damage == "another database"


def test_full_disk_is_a_clear_error_and_nothing_is_acknowledged(tmp_path, pool):
    X, y = pool
    with Journal(tmp_path / "j.sqlite", X) as journal:
        learner = new_learner()
        journal.teach(learner, np.arange(20), y[:20])
        pages = journal._conn.execute("PRAGMA page_count").fetchone()[0]
        journal._conn.execute(f"PRAGMA max_page_count = {pages}")  # a full database
        labels = np.array(["x" * 500] * 200)
        with pytest.raises(JournalWriteError, match="full. Nothing was saved"):
            journal.teach(learner, np.arange(50, 250), labels)
        assert len(learner.y_training) == 20 and len(journal.table()) == 20
        journal._conn.execute("PRAGMA max_page_count = 1073741823")
        journal.teach(learner, [30], y[30:31])
        assert len(journal.table()) == 21 and len(learner.y_training) == 21


def _append(path, who, n, start=None):
    """One writer process: ``n`` answers of its own and ``n`` shared ones (by source),
    from when every writer has opened the journal (``start``, a barrier), a millisecond
    apart as a person's are far apart (in a tight loop the writer holding SQLite's lock
    takes it again before the other's busy handler wakes, and they need not interleave)."""
    import time

    with Journal(path, np.zeros((1000, 1))) as journal:
        if start is not None:
            start.wait(timeout=60)
        for i in range(n):
            journal.record([i], [i % 10], annotator=who, sources=[f"{who}-{i}"])
            journal.record([i], [i % 10], annotator="shared", sources=[f"shared-{i}"])
            time.sleep(0.001)


def test_two_processes_appending_lose_and_double_nothing(tmp_path):
    import multiprocessing

    path, n = tmp_path / "j.sqlite", 150
    context = multiprocessing.get_context("fork")  # no second import of torch
    start = context.Barrier(2)  # both write at once: a fast writer cannot finish first
    writers = [context.Process(target=_append, args=(path, who, n, start))
               for who in ("p1", "p2")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=300)
        assert writer.exitcode == 0
    with Journal(path, np.zeros((1000, 1))) as journal:
        table = journal.table()
    for who in ("p1", "p2", "shared"):
        mine = table[table["annotator"] == who]
        assert sorted(mine["key"]) == list(range(n)), who
    assert len(table) == 3 * n and table["source"].is_unique
    own = [who for who in table["annotator"] if who != "shared"]
    assert sum(a != b for a, b in zip(own, own[1:])) > 1  # the writers did interleave


def test_readme_recipe_runs_and_resumes(tmp_path, monkeypatch):
    import re

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## A session nothing can lose: the journal\n.*?```python\n(.*?)```",
                      readme, re.S).group(1)
    assert len(block.strip().splitlines()) <= 15
    block = block.replace("journal.round < 20", "journal.round < 2").replace(
        "PDCLNet(random_state=0)", "PDCLNet(max_epochs=2, random_state=0)")
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X_pool = (X[:400] / 16).astype(np.float32)
    truth = {row.tobytes(): label for row, label in zip(X_pool, y)}
    namespace = {"ActiveLearner": ActiveLearner, "PDCLNet": PDCLNet,
                 "ally_query_strategy": ally_query_strategy, "X_pool": X_pool,
                 "ids": [f"digit-{i}" for i in range(400)], "initial_rows": np.arange(20),
                 "initial_labels": y[:20],
                 "ask_a_person": lambda rows: [truth[row.tobytes()] for row in rows]}
    monkeypatch.chdir(tmp_path)
    exec(block, dict(namespace))
    first = Journal("answers.sqlite", X_pool, keys=namespace["ids"])
    assert first.round == 2 and len(first.labeled) == 120
    done = dict(namespace)
    exec(block, done)  # resumed: nothing left to do, the same learner
    assert done["journal"].round == 2 and len(done["learner"].y_training) == 120
    first.close()
    done["journal"].close()
