"""Label digits in Label Studio in the order ALLY asks for them (modal_ally.label_studio).

A person labels in Label Studio's labeling stream; this script pushes ALLY's priority of
the pool as prediction scores before each round, pulls the finished annotations and
teaches them. Needs ``pip install "modal_ally[label-studio]"`` and a running server
(``label-studio start``) with a personal access token (Account & Settings > Personal
Access Token)::

    export LABEL_STUDIO_API_KEY=...   # the personal access token
    python examples/label_studio_digits.py --url http://localhost:8080

It creates a project of 8x8 digit images (scikit-learn's bundled digits), waits for the
first ``--initial`` labels (in the project's own order), then for ``--rounds`` rounds
pushes the scores, waits for ``--batch`` labels and teaches them. With
``--simulate-annotator`` the labels come from the digits' true classes instead of a
person, through the same API (the annotator asks the server for its next task, as the
labeling stream does), which is how tests/test_label_studio_server.py runs it. With
``--journal answers.sqlite`` every annotation is written to that journal before it is
taught (modal_ally.journal). A wrong address or token is reported in one line.
"""

import argparse
import base64
import io
import os
import sys
import time

import numpy as np
import torch
from modAL.models import ActiveLearner
from PIL import Image
from sklearn.datasets import load_digits

from modal_ally import PDCLNet, ally_query_strategy
from modal_ally.journal import Journal
from modal_ally.label_studio import LabelStudioBridge, LabelStudioError, connect

LABEL_CONFIG = """<View>
  <Image name="image" value="$image" zoom="false"/>
  <Choices name="digit" toName="image" choice="single" showInline="true" required="true">
    {choices}
  </Choices>
</View>""".format(choices="\n    ".join(f'<Choice value="{d}"/>' for d in range(10)))


def as_data_uri(pixels):
    """An 8x8 digit (values 0-16) as a 128x128 PNG data URI."""
    image = Image.fromarray((255 - pixels.reshape(8, 8) * 15).astype(np.uint8))
    buffer = io.BytesIO()
    image.resize((128, 128), Image.NEAREST).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def create_project(client, X_raw, title):
    """A project with one task per row of ``X_raw``; returns its id and the task ids."""
    project = client.projects.create(title=title, label_config=LABEL_CONFIG)
    client.projects.import_tasks(id=project.id, request=[
        {"image": as_data_uri(row), "row": i} for i, row in enumerate(X_raw)])
    rows = {task.id: task.data["row"] for task in client.tasks.list(project=project.id,
                                                                     fields="task_only")}
    task_ids = np.array(sorted(rows, key=rows.get), dtype=np.int64)
    return project.id, task_ids


class SimulatedAnnotator:
    """Labels the project's next tasks with the true classes, through the API."""

    def __init__(self, client, api_key, project, truth_of_task):
        import httpx

        access = client.tokens.refresh(refresh=api_key).access
        self.http = httpx.Client(base_url=client._client_wrapper.get_base_url(),
                                 headers={"Authorization": f"Bearer {access}"}, timeout=60)
        self.client, self.project, self.truth = client, project, truth_of_task

    def label(self, n):
        """Ask for the next task and label it, ``n`` times; returns the tasks served."""
        served = []
        for _ in range(n):
            answer = self.http.get(f"/api/projects/{self.project}/next/")
            answer.raise_for_status()
            task = answer.json()["id"]
            self.client.annotations.create(id=task, result=[{
                "from_name": "digit", "to_name": "image", "type": "choices",
                "value": {"choices": [str(self.truth[task])]}}])
            served.append(task)
        return served


def wait_for_labels(bridge, n, poll_s):
    """Pull until ``n`` new labels were taught (a person is labeling)."""
    taught = {}
    while len(taught) < n:
        taught.update(bridge.pull().taught)
        if len(taught) < n:
            print(f"  {len(taught)}/{n} labels so far; waiting for the annotator...", flush=True)
            time.sleep(poll_s)
    return taught


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL",
                                                        "http://localhost:8080"))
    parser.add_argument("--api-key", default=os.environ.get("LABEL_STUDIO_API_KEY"),
                        help="a personal access token (default: $LABEL_STUDIO_API_KEY)")
    parser.add_argument("--pool", type=int, default=300, help="tasks to create")
    parser.add_argument("--initial", type=int, default=20, help="labels before ALLY starts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10, help="labels per round")
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--poll", type=float, default=10.0, help="seconds between pulls")
    parser.add_argument("--simulate-annotator", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--journal", default=None, help="journal every annotation to this "
                        "SQLite file before it is taught")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("give --api-key or set LABEL_STUDIO_API_KEY (a personal access token)")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (LabelStudioError, ValueError) as exc:  # a wrong address, token or project
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args):
    torch.set_num_threads(args.threads)
    X_raw, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    pool, test = order[:args.pool], order[args.pool:]
    X = (X_raw / 16).astype(np.float32)
    client = connect(args.url, args.api_key)  # the address and token checked first
    project, task_ids = create_project(client, X_raw[pool], "modal_ally: digits by ALLY")
    print(f"project {project} at {args.url}: {len(task_ids)} tasks (threads {args.threads})")
    learner = ActiveLearner(estimator=PDCLNet(max_epochs=args.max_epochs, random_state=0),
                            query_strategy=ally_query_strategy)
    journal = None if args.journal is None else Journal(args.journal, X[pool], keys=task_ids)
    bridge = LabelStudioBridge(learner, project, X[pool], task_ids, labels=range(10),
                               client=client, journal=journal)
    annotator = SimulatedAnnotator(client, args.api_key, project, dict(zip(
        task_ids.tolist(), y[pool].tolist()))) if args.simulate_annotator else None

    def get_labels(n):
        if annotator is None:
            return wait_for_labels(bridge, n, args.poll), None
        served = annotator.label(n)
        return bridge.pull().taught, served

    print(f"label {args.initial} tasks to start (the project's own order)")
    get_labels(args.initial)
    score = learner.score(X[test], y[test])
    print(f"labels {len(learner.y_training):4d}  accuracy {score:.3f}")
    for round_ in range(args.rounds):
        push = bridge.push_scores(args.batch, random_state=round_)
        print(f"round {round_}: pushed {len(push.task_ids)} scores as {push.model_version}; "
              f"label first: tasks {push.task_ids[:args.batch]}")
        taught, served = get_labels(args.batch)
        if served is not None:
            print(f"  served in the pushed order: {served == push.task_ids[:args.batch]}")
        score = learner.score(X[test], y[test])
        print(f"labels {len(learner.y_training):4d}  accuracy {score:.3f}  "
              f"(taught {len(taught)})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
