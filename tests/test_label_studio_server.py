"""modal_ally.label_studio against a real Label Studio server (never a mock): a full
round (create a project, import tasks, push scores, annotate through the API in the
order the server serves, pull, teach), the error paths, and the example script.

Slow: the server takes 40-90 s to start. ``make test-all`` installs it into its own
venv (.venv/label-studio); see tests/label_studio_server.py.
"""

import pickle
import subprocess
import sys

import numpy as np
import pytest
from modAL.models import ActiveLearner
from sklearn.datasets import load_digits

from modal_ally import PDCLNet, ally_query_strategy
from tests.label_studio_server import ROOT, find_label_studio, label_studio_server

pytestmark = pytest.mark.slow
sdk = pytest.importorskip("label_studio_sdk", reason="the label-studio extra is not "
                          "installed: pip install -e '.[label-studio]' (make test does)")
from modal_ally.label_studio import LabelStudioAuthError, LabelStudioBridge  # noqa: E402

CONFIG = """<View><Text name="text" value="$text"/>
<Choices name="digit" toName="text" choice="single">{}</Choices></View>""".format(
    "".join(f'<Choice value="{d}"/>' for d in range(10)))
N_INITIAL, N_POOL = 40, 60


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    executable, looked = find_label_studio()
    if executable is None:
        pytest.skip("no Label Studio server to test against: `make test-all` installs one "
                    "into .venv/label-studio (its own venv), or set LABEL_STUDIO_BIN; "
                    f"looked for {[path for path in looked if path]}")
    with label_studio_server(executable, tmp_path_factory.mktemp("label-studio")) as running:
        yield running[:2]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


@pytest.fixture
def project(server, digits):
    """A new project whose tasks are digits N_INITIAL..N_INITIAL+N_POOL (as text)."""
    url, token = server
    client = sdk.LabelStudio(base_url=url, api_key=token)
    created = client.projects.create(title="modal_ally test", label_config=CONFIG)
    client.projects.import_tasks(id=created.id, request=[
        {"text": f"digit sample {row}", "row": row} for row in range(N_POOL)])
    rows = {task.id: task.data["row"] for task in client.tasks.list(project=created.id,
                                                                    fields="task_only")}
    return client, created.id, np.array(sorted(rows, key=rows.get), dtype=np.int64)


def new_learner(digits, **net_params):
    X, y = digits
    net = PDCLNet(max_epochs=5, random_state=0, **net_params)
    return ActiveLearner(estimator=net, query_strategy=ally_query_strategy,
                         X_training=X[:N_INITIAL], y_training=y[:N_INITIAL])


def pool(digits):
    X, y = digits
    return X[N_INITIAL:N_INITIAL + N_POOL], y[N_INITIAL:N_INITIAL + N_POOL]


def annotate(client, task, choice):
    client.annotations.create(id=int(task), result=[{
        "from_name": "digit", "to_name": "text", "type": "choices",
        "value": {"choices": [str(choice)]}}])


def next_task(server, client, project):
    """The task Label Studio's labeling stream serves next (as to the annotator)."""
    import httpx

    url, token = server
    access = client.tokens.refresh(refresh=token).access
    answer = httpx.get(f"{url}/api/projects/{project}/next/",
                       headers={"Authorization": f"Bearer {access}"}, timeout=60)
    answer.raise_for_status()
    return answer.json()["id"]


def state(learner):
    return (id(learner.X_training), len(learner.y_training),
            learner.estimator.lambdas_.copy(), dict(vars(learner)).get("label_studio_taught_"))


def assert_same_state(learner, before):
    after = state(learner)
    assert after[:2] == before[:2]
    np.testing.assert_array_equal(after[2], before[2])
    assert after[3] == before[3]


def test_round_trip(server, project, digits):
    client, project_id, task_ids = project
    X_pool, y_pool = pool(digits)
    truth = dict(zip(task_ids.tolist(), y_pool.tolist()))
    learner = new_learner(digits)
    url, token = server
    bridge = LabelStudioBridge(learner, project_id, X_pool, task_ids, labels=range(10),
                               url=url, api_key=token)
    push = bridge.push_scores(5, random_state=0)
    expected, _ = learner.query(X_pool, n_instances=5, random_state=0)
    assert push.task_ids[:5] == task_ids[np.asarray(expected)].tolist()
    assert sorted(push.task_ids) == sorted(task_ids.tolist()) and push.scores[0] == 0.0
    settings = client.projects.get(id=project_id)
    assert settings.sampling == "Uncertainty sampling"
    assert settings.model_version == push.model_version
    stored = {task.id: [(p.model_version, p.score) for p in task.predictions]
              for task in client.tasks.list(project=project_id)}
    assert all(len(rows) == 1 and rows[0][0] == push.model_version for rows in stored.values())
    assert min(stored, key=lambda task: stored[task][0][1]) == push.task_ids[0]

    served = []
    for _ in range(5):  # the annotator labels what the server serves, lowest score first
        served.append(next_task(server, client, project_id))
        annotate(client, served[-1], truth[served[-1]])
    assert served == push.task_ids[:5]

    report = bridge.pull()
    assert report.taught == {task: truth[task] for task in served}
    assert len(learner.y_training) == N_INITIAL + 5
    rows = [task_ids.tolist().index(task) for task in report.taught]
    np.testing.assert_array_equal(learner.X_training[-5:], X_pool[rows])
    assert bridge.pull().taught == {}  # never taught twice
    assert len(learner.y_training) == N_INITIAL + 5

    first, second = str(truth[served[0]]), str((truth[served[0]] + 1) % 10)
    annotate(client, served[0], second)  # a second opinion, different
    with pytest.warns(UserWarning, match="changed after they were taught"):
        report = bridge.pull()
    assert report.changed_after_teach == {served[0]: (first, sorted([first, second]))}
    assert report.taught == {} and len(learner.y_training) == N_INITIAL + 5

    again = bridge.push_scores(5, random_state=1)
    assert again.model_version != push.model_version
    assert len(again.task_ids) == N_POOL - 5 and not set(again.task_ids) & set(served)
    assert next_task(server, client, project_id) == again.task_ids[0]

    restored = pickle.loads(pickle.dumps(learner))  # the ledger travels with the learner
    other = LabelStudioBridge(restored, project_id, X_pool, task_ids, labels=range(10),
                              client=client)
    with pytest.warns(UserWarning, match="changed after"):  # still reported, still untaught
        assert other.pull().taught == {}
    assert len(restored.y_training) == N_INITIAL + 5


def test_errors_teach_nothing(server, project, digits):
    client, project_id, task_ids = project
    X_pool, y_pool = pool(digits)
    url, token = server
    learner = new_learner(digits)
    annotate(client, task_ids[0], y_pool[0])
    annotate(client, task_ids[1], 9)  # a class the learner was not set up for below

    before = state(learner)
    only_nine = LabelStudioBridge(learner, project_id, X_pool, task_ids, labels=range(9),
                                  client=client)
    with pytest.raises(ValueError, match=rf"outside the known classes.*task {task_ids[1]} "
                                         r"chose '9'"):
        only_nine.pull()
    assert_same_state(learner, before)

    partial = LabelStudioBridge(learner, project_id, X_pool[1:], task_ids[1:],
                                labels=range(10), client=client)
    with pytest.raises(ValueError, match=rf"tasks \[{task_ids[0]}\] have annotations but "
                                         "are not in the pool"):
        partial.pull()
    assert_same_state(learner, before)

    for bad_token in ("not-a-token", token[:-6] + "AAAAAA"):  # unknown; a forged signature
        with pytest.raises(LabelStudioAuthError, match="refused the access token"):
            LabelStudioBridge(learner, project_id, X_pool, task_ids, labels=range(10),
                              url=url, api_key=bad_token).pull()
    assert_same_state(learner, before)

    failing = new_learner(digits, epsilon=np.full(N_INITIAL, 0.2))  # fails at the next fit
    before = state(failing)
    bridge = LabelStudioBridge(failing, project_id, X_pool, task_ids, labels=range(10),
                               client=client)
    with pytest.raises(ValueError, match="epsilon has 40 values"):
        bridge.pull()
    assert_same_state(failing, before)
    failing.estimator.set_params(epsilon=0.2)
    assert bridge.pull().taught == {int(task_ids[0]): y_pool[0], int(task_ids[1]): 9}


def test_example_script(server):
    url, token = server
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "label_studio_digits.py"), "--url", url,
         "--api-key", token, "--pool", "120", "--initial", "20", "--rounds", "2",
         "--batch", "5", "--max-epochs", "5", "--simulate-annotator"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert sum("served in the pushed order: True" in line for line in lines) == 2, done.stdout
    assert [line.split()[1] for line in lines if line.startswith("labels")] == [
        "20", "25", "30"], done.stdout



# ---------------------------------------------------------------- journal, second opinions
def test_second_opinions_through_the_journal(server, project, digits, tmp_path):
    """A labeled task pushed for a second opinion is served to a second annotator; both
    annotations reach the journal; the consensus is taught; a resumed learner and bridge
    teach nothing twice."""
    from modal_ally.journal import Journal
    from tests.label_studio_server import personal_access_token

    client, project_id, task_ids = project
    X_pool, y_pool = pool(digits)
    truth = dict(zip(task_ids.tolist(), y_pool.tolist()))
    url, _ = server
    token = personal_access_token(url, f"second-{project_id}@example.com",
                                  "modal-ally-test-2", sign_up=True)
    second = sdk.LabelStudio(base_url=url, api_key=token)
    wrong = set(task_ids[:30:5].tolist())  # six wrong first answers
    for task in task_ids[:30].tolist():
        annotate(client, task, (truth[task] + 3) % 10 if task in wrong else truth[task])

    def new_bridge():
        learner = ActiveLearner(estimator=PDCLNet(max_epochs=30, random_state=0),
                                query_strategy=ally_query_strategy)
        journal = Journal(tmp_path / "answers.sqlite", X_pool, keys=task_ids)
        return LabelStudioBridge(journal.resume(learner), project_id, X_pool, task_ids,
                                 labels=range(10), client=client, journal=journal)

    bridge = new_bridge()
    assert len(bridge.pull().taught) == 30 and len(bridge.learner.y_training) == 30
    push = bridge.push_scores(8, second_opinions=True, random_state=0)
    labeled = set(task_ids[:30].tolist())
    again = [task for task in push.task_ids if task in labeled]
    assert again and push.task_ids[:len(again)] == again, push.task_ids[:10]
    assert all(not client.tasks.get(id=task).is_labeled for task in again)
    assert bridge.pull().waiting == {task: (1, 2) for task in again}

    served = []
    for _ in range(len(again) + 2):  # two annotators: Label Studio draws among the 3 lowest
        served.append(next_task((url, token), second, project_id))
        annotate(second, served[-1], truth[served[-1]])
    assert set(again) <= set(served)
    report = bridge.pull()
    assert set(report.second_opinions) == set(again)
    table = bridge.journal.table()
    for task in again:
        answers = table[table["key"] == task]
        assert len(answers) == 2 and answers["annotator"].nunique() == 2
        assert answers["source"].str.startswith("label-studio ").all()
    labels = dict(zip(task_ids[bridge.journal.labeled].tolist(), bridge.journal.labels()))
    np.testing.assert_array_equal(bridge.learner.y_training, bridge.journal.labels())
    assert all(labels[task] in (truth[task], (truth[task] + 3) % 10) for task in again)
    assert bridge.learner.answers_.counts().max() == 2
    assert bridge.pull().taught == {}  # never twice

    resumed = new_bridge()  # a crash: a new process, the same journal
    np.testing.assert_array_equal(resumed.learner.y_training, bridge.learner.y_training)
    assert resumed.pull().taught == {} and resumed.taught == bridge.taught


def test_url_ending_in_api_and_a_wrong_address(server, project, digits):
    client, project_id, task_ids = project
    url, token = server
    X_pool, _ = pool(digits)
    learner = new_learner(digits)
    bridge = LabelStudioBridge(learner, project_id, X_pool, task_ids, labels=range(10),
                               url=url + "/api/", api_key=token)
    assert bridge.url == url and bridge.pull().taught == {}
    from modal_ally.label_studio import LabelStudioError, connect

    with pytest.raises(LabelStudioError, match="an HTML page of .* the server's root") as error:
        connect(url + "/user", token)
    assert len(str(error.value)) < 600
