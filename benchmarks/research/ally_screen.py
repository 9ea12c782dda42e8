"""Screen ALLY selection rules against the baselines (issues 7, 15 and 16), paired per seed.

The research record behind docs/label-efficiency.md's "What changed in the method",
"Stronger duals, and the duals alone" and the tables in ``docs/results/ally_screen*/``:
the loop and the tables of ``benchmarks.label_efficiency`` (the same arms, see there)
with the candidate rules of ``benchmarks/research/ally_candidates.py`` besides
(:data:`SCREEN_ARMS`). A screen can resume a copy of a reproduction run's state: only
the new arms run.

Example::

    python -m benchmarks.research.ally_screen --dataset digits --arms paper,d2,random,badge
"""

from __future__ import annotations

from benchmarks import label_efficiency
from benchmarks.harness import registry

_CANDIDATES = "benchmarks.research.ally_candidates"
for _name, _fn in (("ally-d2", "ally_d2"), ("ally-gradient", "ally_gradient"),
                   ("ally-uncertain", "ally_uncertain"),
                   ("ally-gradient-weighted", "ally_gradient_weighted"),
                   ("ally-gradient-clusters", "ally_gradient_clusters"),
                   ("ally-dask", "ally_dask"),
                   ("ally-reweighted", "ally_reweighted")):
    registry.STRATEGIES.setdefault(_name, registry.StrategySpec(
        _name, f"{_CANDIDATES}:{_fn}", pdcl=True, accepts_random_state=True))

_CHEAP_POOL_HEAD = {"pool_dual_head_epochs": 10, "pool_dual_head_batch_size": 256}

#: The screened arms: name -> (strategy, estimator parameters, query parameters)
SCREEN_ARMS = {
    # the screening arms (run before the default changed, when "ally" was the paper's
    # rule: "paper" ran it; "gradw" is the rule that became the default, pick for pick)
    "paper": ("ally", {}, {}),
    "d2": ("ally-d2", {}, {}),
    "d2-nolambda": ("ally-d2", {}, {"weight": "none"}),
    "d2-sq": ("ally-d2", {}, {"power": 2.0}),
    "d2-labeled": ("ally-d2", {}, {"labeled": True}),
    "d2-labeled-nolambda": ("ally-d2", {}, {"labeled": True, "weight": "none"}),
    "grad": ("ally-gradient", {}, {}),
    "grad-nolambda": ("ally-gradient", {}, {"weight": "none"}),
    "unc": ("ally-uncertain", {}, {}),
    "gradw": ("ally-gradient-weighted", {}, {}),
    "gradw-sqrt": ("ally-gradient-weighted", {}, {"power": 0.5}),
    "grad-sqrt": ("ally-gradient", {}, {"power": 0.5}),
    "paper-eps-auto": ("ally", {"epsilon": "auto"}, {}),
    # regression: the PDCL regressor with a smaller dual step (dual_lr 0.005)
    "ally-r": ("ally", {"dual_lr": 0.005}, {}),
    "ally-paper-r": ("ally", {"dual_lr": 0.005}, {"method": "paper"}),
    "d2-labeled-r": ("ally-d2", {"dual_lr": 0.005}, {"labeled": True}),
    "d2-labeled-nolambda-r": ("ally-d2", {"dual_lr": 0.005},
                              {"labeled": True, "weight": "none"}),
    "d2-labeled-greedy-r": ("ally-d2", {"dual_lr": 0.005},
                            {"labeled": True, "greedy": True}),
    # the paper's rule with k clusters other than b (k = 1: plain top-b by lambda_hat)
    "ally-paper-k1": ("ally", {}, {"method": "paper", "n_clusters": 1}),
    "ally-paper-k20": ("ally", {}, {"method": "paper", "n_clusters": 20}),
    "ally-paper-k50": ("ally", {}, {"method": "paper", "n_clusters": 50}),
    "gradw-shrink": ("ally-gradient-weighted", {}, {"shrink": True}),
    "d2-labeled-shrink-r": ("ally-d2", {"dual_lr": 0.005}, {"labeled": True, "shrink": True}),
    "d2-labeled-greedy-shrink-r": ("ally-d2", {"dual_lr": 0.005},
                                   {"labeled": True, "greedy": True, "shrink": True}),
    # the previous default for a regressor: gradw with the regressor's former dual_lr
    "gradw-dlr05": ("ally-gradient-weighted", {"dual_lr": 0.05}, {}),
    "gradw-shrink-r": ("ally-gradient-weighted", {"dual_lr": 0.005}, {"shrink": True}),
    # issue 16: the previous default (the paper's head read for the pool too), and the
    # default rule's draw with other weights on the label-conditional head's duals
    "ally-paperhead": ("ally", {"pool_dual_head": None}, {}),
    "gradw-sq": ("ally-gradient-weighted", {}, {"power": 2.0}),
    "gclust": ("ally-gradient-clusters", {}, {}),
    # the pool head reading the class's loss alone (no embedding)
    "ally-lossonly": ("ally", {"pool_dual_head__form": "loss"}, {}),
    # the pool head reading the class's loss alone through non-negative weights
    "ally-mono": ("ally", {"pool_dual_head__form": "monotone"}, {}),
    # issue 15: the default rule in the full embedding space (no projection), drawn as
    # the package draws; "gradw-shrink" is the same rule pick by pick as before the
    # default was streamed (float64, one full update per pick)
    "ally-exact": ("ally-exact", {}, {}),
    # the default draw reading the class probabilities as they are (the 0.4 default's
    # temperature 1; the default reads them at 0.25)
    "ally-t1": ("ally", {}, {"temperature": 1.0}),
    "ally-p32r": ("ally-exact", {}, {"n_components": 32, "residual": True}),
    "ally-p64": ("ally-exact", {}, {"n_components": 64}),
    # the shipped rule with the pool head's duals unshrunk, and squared
    "ally-raw": ("ally-reweighted", {}, {}),
    "ally-sq": ("ally-reweighted", {}, {"power": 2.0}),
    # the duals as the only informativeness: the gradient embeddings' directions (norm 1)
    "ally-dir": ("ally-reweighted", {}, {"directions": True}),
    "ally-dir-shrink": ("ally-reweighted", {}, {"directions": True, "shrink": True}),
    "dir-nolambda": ("ally-reweighted", {}, {"directions": True, "weight": "none"}),
    "ally-dir-mono": ("ally-reweighted", {"pool_dual_head__form": "monotone"},
                      {"directions": True}),
    # the duals in place of BADGE's uncertainty |a|, the embedding's norm kept
    "ally-adir": ("ally-reweighted", {}, {"directions": "output"}),
    "ally-adir-mono": ("ally-reweighted", {"pool_dual_head__form": "monotone"},
                       {"directions": "output"}),
    "adir-nolambda": ("ally-reweighted", {}, {"directions": "output", "weight": "none"}),
    # squared duals in place of |a|^2 (BADGE's first-pick score is |a|^2 |z|^2)
    "ally-adir-sq": ("ally-reweighted", {}, {"directions": "output", "power": 2.0}),
    "ally-adir-mono-sq": ("ally-reweighted", {"pool_dual_head__form": "monotone"},
                          {"directions": "output", "power": 2.0}),
    # the default rule on the pool as a Dask array of 8 blocks (two rounds)
    "ally-dask8": ("ally-dask", {}, {}),
    # issue 27: a cheaper pool head (10 epochs of 256 rows), and the 0.1 release's
    # training (hard constraints), alone and together
    "ally-poolhead10": ("ally", _CHEAP_POOL_HEAD, {}),
    "ally-hard": ("ally", {"slack_cost": None}, {}),
    "ally-hard-poolhead10": ("ally", {"slack_cost": None, **_CHEAP_POOL_HEAD}, {}),
}

#: Every arm a screen can run: the reproduction's and the screened ones.
ARMS = {**label_efficiency.ARMS, **SCREEN_ARMS}


def main(argv=None):
    parser = label_efficiency.build_parser("python -m benchmarks.research.ally_screen",
                                           __doc__.splitlines()[0], ARMS)
    return label_efficiency.run(argv, parser=parser, arms=ARMS, default_out="ally_screen",
                                classification_only={"ally-uncertain"})


if __name__ == "__main__":
    main()
