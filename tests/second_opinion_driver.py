"""A noisy-annotator loop with next_annotations on the installed modAL; print a JSON report.

Run by tests/test_second_opinions.py in a subprocess, once per modAL release (chosen by
PYTHONPATH, as in tests/modal_driver.py): an ActiveLearner (and, on 0.4.2.x, a
DeepActiveLearner) on digits with 20 % of the answers wrong; each round's annotations are
split by ``next_annotations``, the second opinions go through ``relabel`` (a truthful
second annotator), the new rows through ``teach``.
"""

import json
import warnings

import modAL
import numpy as np
import torch
from sklearn.datasets import load_digits

from modal_ally import PDCLNet, ally_query_strategy, answers_of, next_annotations, relabel

torch.set_num_threads(1)


def noisy_digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    rng = np.random.default_rng(0)
    wrong = rng.random(len(y)) < 0.2
    noisy = np.where(wrong, (y + rng.integers(1, 10, len(y))) % 10, y)
    return X, y, noisy


def active_loop(X, y, noisy):
    from modAL.models import ActiveLearner

    labeled, pool = list(range(200)), np.arange(200, 600)
    learner = ActiveLearner(PDCLNet(max_epochs=15, random_state=0), ally_query_strategy,
                            X_training=X[labeled], y_training=noisy[labeled])
    wrong_before = int((noisy[labeled] != y[labeled]).sum())
    rounds = []
    for round_ in range(2):
        picks, positions = next_annotations(learner, X[pool], 30, random_state=round_)
        asked = np.asarray(labeled)[positions]
        rounds.append({"n_pool": len(picks), "n_second": len(positions),
                       "pool_unique": len(set(picks.tolist())) == len(picks),
                       "dtypes": [str(picks.dtype), str(positions.dtype)],
                       "wrong_asked": int((noisy[asked] != y[asked]).sum())})
        if len(positions):
            truth = y[np.asarray(labeled)[positions]]
            relabel(learner, lambda rows, p, truth=truth: truth, indices=positions,
                    annotator_id="second", round=round_)
        new = pool[picks]
        if new.size:
            learner.teach(X[new], noisy[new])
            labeled += new.tolist()
            pool = np.setdiff1d(pool, new)
    answers = answers_of(learner)
    return {"rounds": rounds, "wrong_before": wrong_before,
            "wrong_after_initial": int((np.asarray(learner.y_training)[:200] != y[:200]).sum()),
            "n_answers": int(answers.rows.size), "n_labeled": len(labeled)}


def deep_loop(X, y, noisy):
    from modAL.models import DeepActiveLearner

    learner = DeepActiveLearner(PDCLNet(max_epochs=15, random_state=0), ally_query_strategy)
    learner.teach(X[:200], noisy[:200])
    picks, positions = next_annotations(learner, X[200:600], 30, random_state=0)
    return {"n_pool": len(picks), "n_second": len(positions)}


def main():
    from modal_ally._compat import modal_returns_scores

    warnings.simplefilter("ignore")
    X, y, noisy = noisy_digits()
    report = {"modal_file": modAL.__file__, "returns_scores": modal_returns_scores(),
              "active": active_loop(X, y, noisy)}
    try:
        report["deep"] = deep_loop(X, y, noisy)
    except ImportError:  # modAL 0.4.1 has no DeepActiveLearner
        pass
    print(json.dumps(report))


if __name__ == "__main__":
    main()
