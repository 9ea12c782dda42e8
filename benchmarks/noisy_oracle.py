"""Active learning with annotators who err: every strategy, with and without second opinions.

The oracle (:class:`benchmarks.harness.label_noise.Oracle`) answers each ask of a pool row
with a fresh seeded draw: ``symmetric:<rate>`` (a wrong answer is uniformly another class),
``pairs:<rate>`` (a wrong answer is the class's confusable partner), ``replaced:<rate>``
(regression: another row's target) or ``panel`` (three annotators who err 5, 15 and 35 % of
the time, a second opinion from another of them). Every arm of a seed hears the same k-th
answer for a row (paired), keeps every answer (:class:`modal_ally.Answers`) and trains on
the consensus (ties between answers: :func:`modal_ally.relabel`'s default, the row's nearest
labeled rows, for the PDCL arms; the net's probabilities, 0.3's rule, for the unconstrained
nets and the 0.1 audit arm; screen arms swap them). Every strategy runs through a real
``modAL.models.ActiveLearner`` (same initial rows, nets, epochs and query seeds as
``benchmarks/harness/loop.py``); every arm spends the same annotations a round, a second
opinion counting as one. Test accuracy is on the clean test labels; AULC over the
annotations spent. The arms (:data:`ARMS`): the baselines without second opinions; ALLY at
this release's training and at the 0.1 release's (hard constraints), without second
opinions; the 0.1 release's ALLY + audit (a fixed 20 % of every round); ALLY + second
opinions (:func:`modal_ally.next_annotations`); ActiveLab; margin and BADGE with cleanlab's
relabeling at the annotation share that ALLY + second opinions spent in the same round (see
``benchmarks/harness/noisy_arms.py``).

Output: ``curves.jsonl`` (a rerun skips the curves done), per setting ``paired.md``, and
``summary.md`` with each arm's second-opinion share and compute per round.

Example::

    python -m benchmarks.noisy_oracle --dataset digits --seeds 2 --rounds 3 --threads 1
"""

from __future__ import annotations

import functools
import json
import os
import time
import warnings

import numpy as np

from benchmarks.harness import cli, noisy_arms, registry
from benchmarks.harness.estimators import build_estimator
from benchmarks.harness.label_noise import Oracle
from benchmarks.harness.loop import initial_indices, query_random_state
from benchmarks.harness.metrics import evaluate
from benchmarks.harness.noisy_oracle_report import read_curves
from benchmarks.harness.pool_head_targets import ClippedPoolHeadNet, DroppedPoolHeadNet
from benchmarks.harness.training_screens import CappedMultiplierNet, SuspectsReleasedNet
from modal_ally import PDCLNet

#: display name -> (strategy that picks pool rows, estimator parameters, policy)
ARMS = {
    "random": ("random", {}, "none"),
    "margin": ("margin", {}, "none"),
    "BADGE": ("badge", {}, "none"),
    "ALLY": ("ally", {}, "none"),
    "ALLY 0.1 (hard constraints)": ("ally", {"slack_cost": None}, "none"),
    "ALLY 0.1 + audit 20 %": ("ally", {"slack_cost": None}, "audit"),
    "ALLY + second opinions": ("ally", {}, "ally"),
    "ActiveLab": ("margin", {}, "activelab"),
    "margin + cleanlab": ("margin", {}, "cleanlab"),
    "BADGE + cleanlab": ("badge", {}, "cleanlab"),
    "Core-Set": ("coreset", {}, "none"),
}
#: Screens of the default's settings, run only when named in ``--arms``: the pool head
#: without the audit's suspects' weight (``benchmarks.harness.pool_head_targets``), a lower
#: slack cost, and a cheaper pool head (10 epochs of 256 rows instead of 100 full-batch epochs).
_CHEAP_POOL_HEAD = {"pool_dual_head_epochs": 10, "pool_dual_head_batch_size": 256}
SCREEN_ARMS = {
    "ALLY pool head suspects clipped": ("ally", {"pdcl_class": ClippedPoolHeadNet}, "none"),
    "ALLY pool head suspects dropped": ("ally", {"pdcl_class": DroppedPoolHeadNet}, "none"),
    "ALLY slack cost 0.01": ("ally", {"slack_cost": 0.01}, "none"),
    "ALLY slack cost 0.03": ("ally", {"slack_cost": 0.03}, "none"),
    "ALLY + second opinions (slack cost 0.01)": ("ally", {"slack_cost": 0.01}, "ally"),
    "ALLY pool head 10 epochs": ("ally", _CHEAP_POOL_HEAD, "none"),
    "ALLY slack cost 0.01 + pool head 10 epochs": (
        "ally", {"slack_cost": 0.01, **_CHEAP_POOL_HEAD}, "none"),
    # margin and BADGE drawing on the default PDCL net (resilient constraints) instead of
    # the unconstrained one: the training apart from the selection rule
    "margin (PDCL net)": ("margin", {"pdcl_class": PDCLNet}, "none"),
    "BADGE (PDCL net)": ("badge", {"pdcl_class": PDCLNet}, "none"),
    # a second opinion's value divided by the answers it takes (a third on a tie)
    "ALLY + second opinions (ties counted)": ("ally", {}, "ally-ties-counted"),
    # a tie asked again only when its third answer is worth more than a new row
    "ALLY + second opinions (ties valued)": ("ally", {}, "ally-ties-valued"),
    # 0.3's consensus: ties between answers decided by the net, not the row's neighbours
    "ALLY + second opinions (model prior)": ("ally", {}, "ally-model-prior"),
    "ALLY + second opinions (ties valued + model prior)": (
        "ally", {}, "ally-ties-valued-model-prior"),
    # margin and BADGE + cleanlab with relabel's default consensus (the row's neighbours
    # decide ties)
    "margin + cleanlab (neighbour prior)": ("margin", {}, "cleanlab-neighbors"),
    "BADGE + cleanlab (neighbour prior)": ("badge", {}, "cleanlab-neighbors"),
    # the two halves of a round apart: ALLY's new rows with cleanlab's second opinions,
    # and margin's new rows (on the PDCL net) with next_annotations' second opinions
    "ALLY + cleanlab (neighbour prior)": ("ally", {}, "cleanlab-neighbors"),
    "margin (PDCL net) + second opinions": ("margin", {"pdcl_class": PDCLNet}, "ally"),
    # the rows flagged for a second opinion by the robust spread of the losses
    "ALLY + second opinions (outlier flags)": ("ally", {}, "ally-outliers"),
    # training that weighs a row it cannot fit less (benchmarks.harness.training_screens):
    # multipliers capped at slack_cost * ln 2, or the audit's suspects unconstrained
    "ALLY multipliers capped": ("ally", {"pdcl_class": CappedMultiplierNet}, "none"),
    "ALLY suspects released": ("ally", {"pdcl_class": SuspectsReleasedNet}, "none"),
    "ALLY + second opinions (suspects released)": (
        "ally", {"pdcl_class": SuspectsReleasedNet}, "ally"),
    # the default draw at other temperatures (QUERY_OPTIONS); 1 is the 0.4 default's
    "ALLY (temperature 1)": ("ally", {}, "none"),
    "ALLY (temperature 0.5)": ("ally", {}, "none"),
    "ALLY (temperature 0.125)": ("ally", {}, "none"),
    "ALLY + second opinions (temperature 1)": ("ally", {}, "ally"),
}
#: Query options of the arms that give the strategy any (``ally_query_strategy``'s).
QUERY_OPTIONS = {
    "ALLY (temperature 1)": {"temperature": 1.0},
    "ALLY (temperature 0.5)": {"temperature": 0.5},
    "ALLY (temperature 0.125)": {"temperature": 0.125},
    "ALLY + second opinions (temperature 1)": {"temperature": 1.0},
}
#: The default arms of a classifier (Core-Set is the regressors' diversity baseline).
CLASSIFICATION_ARMS = tuple(name for name in ARMS if name != "Core-Set")
ARMS.update(SCREEN_ARMS)
#: Arms a regressor can run (no class probabilities for margin, BADGE, cleanlab or
#: ActiveLab).
REGRESSION_ARMS = ("random", "Core-Set", "ALLY", "ALLY 0.1 (hard constraints)",
                   "ALLY 0.1 + audit 20 %", "ALLY + second opinions")
CLASSIFICATION_NOISE = ("symmetric:0,symmetric:0.1,symmetric:0.2,symmetric:0.3,"
                        "pairs:0.1,pairs:0.2,pairs:0.3,panel")


def oracle_answers(y_pool, n_classes, rate, seed):
    """``(first, second)``: the symmetric oracle's first and second answer of every row."""
    oracle = Oracle(np.zeros((len(y_pool), 1)), y_pool, f"symmetric:{rate}", seed,
                    n_classes=n_classes)
    rows = np.arange(len(y_pool))
    return [oracle.answer(rows, np.full(len(rows), k))[0] for k in (0, 1)]


class Session:
    """One curve's learner, labeled rows and answers (every answer kept)."""

    def __init__(self, data, name, noise, seed, args):
        from modAL.models import ActiveLearner

        from modal_ally import Answers

        strategy, params, self.policy = ARMS[name]
        self.data, self.name, self.seed, self.args = data, name, seed, args
        self.oracle = Oracle(data.X_pool, data.y_pool, noise, seed, n_classes=data.n_classes)
        self.labeled = [int(i) for i in initial_indices(len(data.y_pool), args.initial, seed)]
        labels, who = self.oracle.answer(self.labeled, np.zeros(len(self.labeled)))
        estimator = build_estimator(registry.Arm(name, strategy), data, epochs=args.epochs,
                                    seed=seed, **params)
        self.pdcl = registry.STRATEGIES[strategy].pdcl or "pdcl_class" in params
        query_strategy = registry.STRATEGIES[strategy].load()
        if name in QUERY_OPTIONS:
            query_strategy = functools.partial(query_strategy, **QUERY_OPTIONS[name])
        self.learner = ActiveLearner(estimator=estimator, query_strategy=query_strategy,
                                     X_training=data.X_pool[self.labeled], y_training=labels)
        classification = data.task == "classification"
        self.learner.answers_ = Answers.empty(classification=classification).add(
            np.arange(len(labels)), labels, annotator=who, round=0)

    @property
    def answers(self):
        return self.learner.answers_

    def remaining(self):
        is_labeled = np.zeros(len(self.data.y_pool), dtype=bool)
        is_labeled[self.labeled] = True
        return np.flatnonzero(~is_labeled)

    def query(self, remaining, n, round_):
        if n <= 0 or not remaining.size:
            return np.zeros(0, dtype=np.int64)
        strategy = ARMS[self.name][0]
        kwargs = {}
        if registry.STRATEGIES[strategy].accepts_random_state:
            kwargs["random_state"] = query_random_state(self.seed, round_)
        picked = self.learner.query(self.data.X_pool[remaining], n_instances=int(n), **kwargs)[0]
        return np.asarray(picked, dtype=np.int64).ravel()

    def ask_again(self, positions, round_):
        """Second opinions on labeled ``positions``; the consensus becomes their label."""
        from modal_ally import relabel

        if not len(positions):
            return
        positions = np.asarray(positions, dtype=np.int64)
        rows = np.asarray(self.labeled)[positions]
        labels, who = self.oracle.answer(rows, self.answers.counts()[positions])
        if self.pdcl:
            options = noisy_arms.RELABEL_OPTIONS.get(self.policy, {})
            relabel(self.learner, lambda X, p: labels, indices=positions, annotator_id=who,
                    round=round_, **options)
            return
        answers = self.answers.add(positions, labels, annotator=who, round=round_)
        revised, consensus = answers.revised(  # as relabel does for a PDCL net
            noisy_arms.baseline_prior(self.learner, self.policy),
            classes=np.arange(self.data.n_classes) if self.data.task == "classification"
            else None)
        y = np.array(self.learner.y_training, copy=True)
        y[revised] = consensus
        self.learner.y_training = y
        self.learner.answers_ = answers

    def teach(self, remaining, picked, round_):
        new = remaining[picked]
        if not new.size:
            self.learner._fit_to_known()  # the second opinions' consensus, refitted
            return
        labels, who = self.oracle.answer(new, np.zeros(new.size))
        answers, start = self.answers, len(self.labeled)
        self.learner.teach(self.data.X_pool[new], labels)
        self.labeled.extend(int(i) for i in new)
        self.learner.answers_ = answers.add(np.arange(start, start + new.size), labels,
                                            annotator=who, round=round_)

    def wrong_labels(self) -> int:
        y_now = np.asarray(self.learner.y_training)
        return int((y_now != np.asarray(self.data.y_pool)[self.labeled]).sum()) \
            if self.data.task == "classification" else int(
                (np.abs(y_now - np.asarray(self.data.y_pool)[self.labeled]) > 1e-9).sum())


def _split(session, round_, shares):
    """``(pool picks, labeled positions)`` of one round under the arm's policy."""
    from modal_ally.second_opinions import _next_annotations

    budget, remaining, policy = session.args.budget, session.remaining(), session.policy
    X, y = session.learner.X_training, np.asarray(session.learner.y_training)
    if policy in noisy_arms.ALLY_POLICIES:
        return _next_annotations(session.learner, session.data.X_pool[remaining], budget,
                                 random_state=query_random_state(session.seed, round_),
                                 **noisy_arms.ALLY_POLICIES[policy][0])
    if policy == "activelab":
        return noisy_arms.activelab_split(session.learner, session.answers, X, y,
                                          session.data.X_pool[remaining],
                                          session.data.n_classes, budget, session.seed)
    positions = np.zeros(0, dtype=np.int64)
    if policy == "audit":
        n_audit = int(round(session.args.audit_fraction * budget))
        positions = noisy_arms.audit_positions(session.learner, session.answers, n_audit)
    elif policy in noisy_arms.CLEANLAB_POLICIES:
        positions = noisy_arms.cleanlab_positions(
            session.learner, session.answers, X, y, session.data.n_classes,
            shares[round_ - 1], session.seed)
    return session.query(remaining, budget - len(positions), round_), positions


def run_curve(data, name, noise, seed, args, shares=None):
    """One (arm, noise, seed) curve: rows of ``(annotations, metric)`` by round."""
    session = Session(data, name, noise, seed, args)
    annotations = len(session.labeled)
    rows = [{"round": 0, "annotations": annotations, "second_opinions": 0,
             "wrong_labels": session.wrong_labels(),
             "metric": evaluate(session.learner.estimator, data.X_test, data.y_test,
                                data.task)}]
    for round_ in range(1, args.rounds + 1):
        start = time.perf_counter()
        picked, positions = _split(session, round_, shares)
        remaining = session.remaining()
        decided = time.perf_counter()
        session.ask_again(positions, round_)
        session.teach(remaining, picked, round_)
        annotations += len(positions) + len(picked)
        rows.append({"round": round_, "annotations": annotations,
                     "second_opinions": int(len(positions)),
                     "wrong_labels": session.wrong_labels(),
                     "query_s": decided - start, "fit_s": time.perf_counter() - decided,
                     "metric": evaluate(session.learner.estimator, data.X_test, data.y_test,
                                        data.task)})
    return rows


def build_parser():
    parser = cli.loop_parser("python -m benchmarks.noisy_oracle", __doc__.splitlines()[0],
                             rounds=5)
    add = parser.add_argument
    add("--noise", default=None, help="comma-separated settings (default: "
        f"{CLASSIFICATION_NOISE}; regression: replaced:0,replaced:0.1,replaced:0.2)")
    add("--arms", default=None,  # argparse reads "%" in a help as a format
        help="comma-separated: " + ", ".join(ARMS).replace("%", "%%"))
    add("--audit-fraction", type=float, default=0.2,
        help="share of every round the 0.1 release's audit arm spends on relabels")
    return parser


def _ordered(names):
    """The cleanlab arms read ALLY + second opinions' shares: run it first."""
    first = [n for n in names if ARMS[n][2] == "ally"]
    return first + [n for n in names if n not in first]


def _shares(curves, noise, seed, settings):
    for curve in curves:
        if curve["settings"] == settings and (curve["arm"], curve["noise"], curve["seed"]) \
                == ("ALLY + second opinions", noise, seed):
            return [row["second_opinions"] for row in curve["rows"][1:]]
    raise ValueError("the cleanlab arms spend the second-opinion share of "
                     "'ALLY + second opinions': run that arm too (--arms)")


def main(argv=None):
    from benchmarks.harness.noisy_oracle_report import write_reports

    parser = build_parser()
    args = cli.parse_loop_args(parser, argv)
    data = cli.load_benchmark_data(args)
    classification = data.task == "classification"
    names = registry.parse_names(args.arms or ",".join(CLASSIFICATION_ARMS if classification
                                                       else REGRESSION_ARMS))
    unknown = [n for n in names if n not in (ARMS if classification else REGRESSION_ARMS)]
    if unknown:
        parser.error(f"unknown arms for this task {unknown}; choose from {', '.join(ARMS)}")
    settings_list = registry.parse_names(args.noise or (
        CLASSIFICATION_NOISE if classification else "replaced:0,replaced:0.1,replaced:0.2"))
    out = cli.out_dir(args, "noisy_oracle", args.dataset)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "curves.jsonl"
    settings = {"dataset": args.dataset, "max_pool": args.max_pool, "initial": args.initial,
                "budget": args.budget, "rounds": args.rounds, "epochs": args.epochs,
                "audit_fraction": args.audit_fraction, "threads": args.threads}
    curves = read_curves(path)
    done = {(c["arm"], c["noise"], c["seed"]) for c in curves if c["settings"] == settings}
    start = time.perf_counter()
    with warnings.catch_warnings(), cli.torch_threads(args.threads):
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        for noise in settings_list:
            for seed in range(args.seeds):
                for name in _ordered(names):
                    if (name, noise, seed) in done:
                        continue
                    shares = _shares(curves, noise, seed, settings) \
                        if ARMS[name][2] in noisy_arms.CLEANLAB_POLICIES else None
                    t0 = time.perf_counter()
                    rows = run_curve(data, name, noise, seed, args, shares)
                    curve = {"arm": name, "noise": noise, "seed": seed, "settings": settings,
                             "seconds": time.perf_counter() - t0, "rows": rows}
                    curves.append(curve)
                    with open(path, "a") as stream:
                        stream.write(json.dumps(curve) + "\n")
                    print(f"{name} {noise} seed={seed}: final {rows[-1]['metric']:.4f}, "
                          f"{sum(r['second_opinions'] for r in rows)} second opinions "
                          f"({curve['seconds']:.0f} s)", flush=True)
    curves = [c for c in curves if c["settings"] == settings]
    write_reports(curves, out, task=data.task, title=(
        f"{args.dataset} (pool {len(data.y_pool)}), initial {args.initial}, {args.budget} "
        f"annotations a round, {args.rounds} rounds, {args.epochs} epochs"))
    print(f"wall {time.perf_counter() - start:.0f} s, torch threads {args.threads}, "
          f"pid {os.getpid()}")


if __name__ == "__main__":
    main()
